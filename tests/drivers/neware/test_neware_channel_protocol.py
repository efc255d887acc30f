"""NewareChannel against the ordered fake transport: the exact dialogue of start, status, data, stop."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from drivers.base import ChannelRanges, ChannelState, DriverError, Refused
from drivers.base import TestHandle as Handle  # aliased: pytest would try to collect a Test* class
from drivers.neware.address import ChannelAddress
from drivers.neware.channel import NewareChannel
from drivers.neware.client import BackupSettings, BtsClient
from drivers.neware.stepfile import compile_program
from protocols.program import (
    Action,
    Comparison,
    CurrentStep,
    LoopStep,
    Quantity,
    RecordRule,
    RestStep,
    StepProgram,
    Termination,
)
from tests.fakes.ordered_transport import OrderedTransport

ADDR = 'ip="127.0.0.1" devtype="27" devid="21" subdevid="1" chlid="2"'
NOIP = 'devtype="27" devid="21" subdevid="1" chlid="2"'
RANGES = ChannelRanges(voltage_min=0.0, voltage_max=5.0, current_max=0.01)
PROGRAM = StepProgram(
    protocol="p",
    cell="c",
    record=RecordRule(every_s=10.0),
    steps=(
        CurrentStep(
            index=1,
            kind="discharge",
            current=-0.001,
            until=(Termination(quantity=Quantity.VOLTAGE, op=Comparison.LE, value=3.0),),
        ),
    ),
)


def inquire_reply(workstatus: str, extra: str = "") -> str:
    return (
        f'<cmd>inquire_resp</cmd>\n<list count="1">\n  <inquire dev="27-21-1-2-0" cycle_id="1" {extra}'
        f'workstatus="{workstatus}" current="-0.001" voltage="3.5" capacity="0.0001" energy="0.00035" '
        'totaltime="360" relativetime="360" open_or_close="0" log_code="102000" />\n</list>'
    )


def test_start_status_read_and_stop_in_order(tmp_path: Path) -> None:
    xml = compile_program(PROGRAM, RANGES).xml
    path = (tmp_path / f"21-1-2_cell_1_{hashlib.sha1(xml).hexdigest()[:10]}.xml").resolve()
    data = (
        f'<cmd>donwload_resp</cmd>\n<download {NOIP} testid="5" startpos="1" count="1000" auxid="0" />\n'
        '<list count="2">\n'
        '  <data seqid="1" stepid="1" cycleid="1" steptype="dc" testtime="0" atime="2025-01-01 00:00:00" volt="3.6" '
        'curr="-0.001" cap="0" eng="0" />\n'
        '  <data seqid="2" stepid="1" cycleid="1" steptype="dc" testtime="10000" atime="2025-01-01 00:00:10" '
        'volt="3.59" curr="-0.001" cap="2.77777777777778E-06" eng="1.0E-05" />\n</list>'
    )
    with OrderedTransport(
        [
            (
                f'<cmd>inquire</cmd><list count="1"><inquire {ADDR} aux="0" barcode="1">true</inquire></list>',
                inquire_reply("finish"),
            ),
            (
                f'<cmd>start</cmd><list count="1"><start {ADDR} barcode="cell#1">{path}</start></list>',
                f'<cmd>start_resp</cmd>\n<list count="1">\n  <start {ADDR}>ok</start>\n</list>',
            ),
            (
                f'<cmd>download</cmd><download {NOIP} auxid="0" testid="0" startpos="0" count="0" />',
                f'<cmd>donwload_resp</cmd>\n<download {NOIP} testid="5" startpos="0" count="0" auxid="0" />\n'
                '<list count="0" />',
            ),
            (
                f'<cmd>inquire</cmd><list count="1"><inquire {ADDR} aux="0" barcode="0">true</inquire></list>',
                inquire_reply("working", 'step_id="1" step_type="dc" '),
            ),
            (
                f'<cmd>inquiredf</cmd><list count="1"><chl {NOIP} testid="0" /></list>',
                f'<cmd>inquiredf_resp</cmd>\n<list count="1">\n  <chl {NOIP} testid="5" count="2">false</chl>\n</list>',
            ),
            (f'<cmd>download</cmd><download {NOIP} auxid="0" testid="5" startpos="1" count="1000" />', data),
            (
                f'<cmd>stop</cmd><list count="1"><stop {ADDR}>true</stop></list>',
                f'<cmd>stop_resp</cmd>\n<list count="1">\n  <stop {ADDR}>ok</stop>\n</list>',
            ),
        ]
    ) as transport:
        channel = NewareChannel(BtsClient(transport), ChannelAddress.parse("21-1-2"), RANGES, step_dir=tmp_path)
        handle = channel.start(PROGRAM, "cell#1")
        assert (handle.channel, handle.test_id, handle.barcode, handle.extra["step_map"]) == (
            "21-1-2",
            "5",
            "cell#1",
            "1:1",
        )
        assert path.read_bytes() == xml
        status = channel.status()
        assert (status.state, status.step_index, status.cycle, status.last_seq) == (ChannelState.RUNNING, 1, 1, 2)
        assert (status.voltage, status.current, status.step_capacity, status.test_time) == (3.5, -0.001, -0.0001, 360.0)
        first, second = channel.read_records(0)
        assert (first.seq, first.test_time, first.step_index, first.cycle, first.capacity) == (1, 0.0, 1, 1, 0.0)
        assert (second.seq, second.test_time, second.step_time) == (2, 10.0, 10.0)
        assert (second.capacity, second.energy) == (-2.77777777777778e-06, -1e-05)  # discharge: signed negative
        channel.stop()


def test_a_busy_channel_is_refused_before_start_is_sent(tmp_path: Path) -> None:
    with OrderedTransport(
        [
            (
                f'<cmd>inquire</cmd><list count="1"><inquire {ADDR} aux="0" barcode="1">true</inquire></list>',
                inquire_reply("working", 'step_id="3" step_type="cc" barcode="other" '),
            )
        ]
    ) as transport:
        channel = NewareChannel(BtsClient(transport), ChannelAddress.parse("21-1-2"), RANGES, step_dir=tmp_path)
        with pytest.raises(DriverError, match=r"channel 21-1-2 is 'working'; .* stop the running test first"):
            channel.start(PROGRAM, "cell#2")


def test_a_refused_start_names_the_file(tmp_path: Path) -> None:
    with OrderedTransport(
        [
            (
                f'<cmd>inquire</cmd><list count="1"><inquire {ADDR} aux="0" barcode="1">true</inquire></list>',
                inquire_reply("stop"),
            ),
            (None, f'<cmd>start_resp</cmd>\n<list count="1">\n  <start {ADDR}>false</start>\n</list>'),
        ]
    ) as transport:
        channel = NewareChannel(BtsClient(transport), ChannelAddress.parse("21-1-2"), RANGES, step_dir=tmp_path)
        with pytest.raises(Refused, match=r"refused to start channel 21-1-2 with .*\.xml; check that the BTS"):
            channel.start(PROGRAM, "cell#3")


# -- step files on another PC, and the <backup> element --------------------------------------------------------


def _start_dialogue(path: str, backup: str = "") -> list[tuple[str, str]]:
    return [
        (
            f'<cmd>inquire</cmd><list count="1"><inquire {ADDR} aux="0" barcode="1">true</inquire></list>',
            inquire_reply("finish"),
        ),
        (
            f'<cmd>start</cmd><list count="1"><start {ADDR} barcode="cell#1">{path}</start>{backup}</list>',
            f'<cmd>start_resp</cmd>\n<list count="1">\n  <start {ADDR}>ok</start>\n</list>',
        ),
        (
            f'<cmd>download</cmd><download {NOIP} auxid="0" testid="0" startpos="0" count="0" />',
            f'<cmd>donwload_resp</cmd>\n<download {NOIP} testid="5" startpos="0" count="0" auxid="0" />\n'
            '<list count="0" />',
        ),
    ]


@pytest.mark.parametrize(
    ("bts_dir", "separator"),
    [
        ("D:\\bts-steps", "\\"),  # a folder on the BTS Client's Windows PC
        ("\\\\labserver\\bts-steps\\", "\\"),  # a share, as that PC names it
        ("D:/bts-steps/", "/"),
        ("/srv/bts-steps", "/"),  # a BTS Client that reads POSIX paths (a test rig, Wine)
    ],
)
def test_start_sends_the_step_file_path_as_the_bts_pc_sees_it(tmp_path: Path, bts_dir: str, separator: str) -> None:
    share = tmp_path / "mounted-share"  # where this PC writes: the same folder, mounted here
    name = f"21-1-2_cell_1_{hashlib.sha1(compile_program(PROGRAM, RANGES).xml).hexdigest()[:10]}.xml"
    expected = bts_dir.rstrip("\\/") + separator + name
    with OrderedTransport(_start_dialogue(expected)) as transport:
        channel = NewareChannel(BtsClient(transport), ChannelAddress.parse("21-1-2"), RANGES, step_dir=share,
                                remote_step_dir=bts_dir)
        handle = channel.start(PROGRAM, "cell#1")
    assert handle.extra["step_file"] == expected
    assert (share / name).read_bytes() == compile_program(PROGRAM, RANGES).xml


def test_start_sends_the_backup_element_exactly(tmp_path: Path) -> None:
    backup = BackupSettings(backupdir="D:\\Neware data", filenametype=1, createdirbydate=1, backupontimeinterval=60)
    path = f"C:\\steps\\21-1-2_cell_1_{hashlib.sha1(compile_program(PROGRAM, RANGES).xml).hexdigest()[:10]}.xml"
    element = ('<backup backupdir="D:\\Neware data" remotedir="" filenametype="1" customfilename="" '
               'addtimewhenrepeat="0" createdirbydate="1" filetype="0" backupontime="1" backupontimeinterval="60" '
               'backupfree="1" />')
    with OrderedTransport(_start_dialogue(path, element)) as transport:
        channel = NewareChannel(BtsClient(transport), ChannelAddress.parse("21-1-2"), RANGES, step_dir=tmp_path,
                                remote_step_dir="C:\\steps", backup=backup)
        channel.start(PROGRAM, "cell#1")


# -- test time on the real BTS's record grid (reference section 9), from hand-written pages ---------------------

LOOPED = StepProgram(
    protocol="grid",
    cell="c",
    record=RecordRule(every_s=10.0),
    steps=(
        RestStep(index=1, until=(Termination(quantity=Quantity.TIME, op=Comparison.GE, value=20.0),)),
        CurrentStep(index=2, kind="charge", current=0.001,
                    until=(Termination(quantity=Quantity.VOLTAGE, op=Comparison.GE, value=4.1),)),
        LoopStep(index=3, target=2, count=2),  # a one-step body: the same stepid twice in a row
        RestStep(index=4, until=(Termination(quantity=Quantity.TIME, op=Comparison.GE, value=10.0),)),
    ),
)
# (seqid, stepid, BTS cycleid, steptype, step time in ms, volt, curr): records at whole multiples of 10 s from each
# step's start, the first at 0.0 s, the last at the step's end; noisy current and a start transient, as measured
GRID = [
    (1, 1, 1, "rest", 0, 3.60002, 0.0), (2, 1, 1, "rest", 10000, 3.60001, 0.0), (3, 1, 1, "rest", 20000, 3.6, 0.0),
    (4, 2, 1, "cc", 0, 3.6512, 0.0009731), (5, 2, 1, "cc", 10000, 3.9, 0.0010002), (6, 2, 1, "cc", 20000, 4.05,
                                                                                    0.0009998),
    (7, 2, 1, "cc", 25500, 4.1, 0.0010001),
    (8, 2, 2, "cc", 0, 4.0, 0.0009802), (9, 2, 2, "cc", 10000, 4.08, 0.0009999), (10, 2, 2, "cc", 14750, 4.1,
                                                                                   0.0010001),
    (11, 4, 2, "rest", 0, 4.09, 0.0), (12, 4, 2, "rest", 10000, 4.07, 0.0),
]
# test time of each record: a step's first repeats the one before it
GRID_TEST_TIMES = [0.0, 10.0, 20.0, 20.0, 30.0, 40.0, 45.5, 45.5, 55.5, 60.25, 60.25, 70.25]


def _page(first: int, last: int, count: int = 1000) -> str:
    rows = "".join(
        f'  <data seqid="{q}" stepid="{s}" cycleid="{c}" steptype="{t}" testtime="{ms}" atime="2025-01-01 00:00:00" '
        f'volt="{v}" curr="{i}" cap="{abs(i) * ms / 3.6e6!r}" eng="0" />\n'
        for q, s, c, t, ms, v, i in GRID[first - 1 : last]
    )
    return (f'<cmd>donwload_resp</cmd>\n<download {NOIP} testid="5" startpos="{first}" count="{count}" auxid="0" />\n'
            f'<list count="{last - first + 1}">\n{rows}</list>')


def _download(startpos: int, count: int = 1000) -> str:
    return f'<cmd>download</cmd><download {NOIP} auxid="0" testid="5" startpos="{startpos}" count="{count}" />'


def _handle(program: StepProgram) -> Handle:
    return Handle("21-1-2", "5", "grid", {"step_map": "1:1,2:2,3:3,4:4", "program": program.model_dump_json()})


def _attached(transport: OrderedTransport, program: StepProgram, tmp_path: Path) -> NewareChannel:
    channel = NewareChannel(BtsClient(transport), ChannelAddress.parse("21-1-2"), RANGES, step_dir=tmp_path)
    channel.attach(_handle(program))
    return channel


ATTACH = [
    (None, inquire_reply("working", 'step_id="2" step_type="cc" barcode="grid" ')),
    (None, f'<cmd>donwload_resp</cmd>\n<download {NOIP} testid="5" startpos="0" count="0" auxid="0" />\n'
           '<list count="0" />'),
]


def test_test_time_repeats_at_step_boundaries_across_pages_as_the_real_bts_records(tmp_path: Path) -> None:
    # pages that end on a step's last record and start on the next step's first, or cut a step in two
    with OrderedTransport([*ATTACH, (_download(1, 3), _page(1, 3, 3)), (_download(4, 5), _page(4, 8, 5)),
                                  (_download(9), _page(9, 12))]) as transport:
        channel = _attached(transport, LOOPED, tmp_path)
        records = channel.read_records(0, 3) + channel.read_records(3, 5) + channel.read_records(8)
    assert [r.seq for r in records] == list(range(1, 13))
    assert [r.test_time for r in records] == GRID_TEST_TIMES
    assert [r.step_time for r in records] == [ms / 1000 for _, _, _, _, ms, _, _ in GRID]
    # the one-step loop body runs twice with the same stepid: the step clock starting over opens the second run,
    # and the program's cycles (the rest with the first pass, then each pass, then the rest after the loop) replace
    # the BTS's counter
    assert [(r.step_index, r.cycle) for r in records] == [(1, 1)] * 3 + [(2, 1)] * 4 + [(2, 2)] * 3 + [(4, 3)] * 2
    assert records[6].capacity == pytest.approx(0.0010001 * 25.5 / 3600)


def test_a_read_that_does_not_continue_the_last_one_seeds_time_and_cycles_from_the_step_layer(tmp_path: Path) -> None:
    layer = (
        f'<cmd>downloadStepLayer_resp</cmd>\n<downloadStepLayer {NOIP} testid="5" />\n<list count="2">\n'
        '  <data startseqid="1" endseqid="3" stepindex="1" stepid="1" cycleid="1" steptype="rest" steptime="20000" '
        'endatime="2025-01-01 00:00:20" startvolt="3.6" endvolt="3.6" startcurr="0" endcurr="0" cap="0" eng="0" '
        'dcir="0" />\n'
        '  <data startseqid="4" endseqid="7" stepindex="2" stepid="2" cycleid="1" steptype="cc" steptime="25500" '
        'endatime="2025-01-01 00:00:45" startvolt="3.65" endvolt="4.1" startcurr="0.001" endcurr="0.001" cap="0" '
        'eng="0" dcir="0" />\n</list>'
    )
    with OrderedTransport([
        *ATTACH, (_download(8), _page(8, 12)),
        (f'<cmd>downloadStepLayer</cmd><downloadStepLayer {NOIP} testid="5" />', layer),
    ]) as transport:
        records = _attached(transport, LOOPED, tmp_path).read_records(7)
    assert [r.test_time for r in records] == GRID_TEST_TIMES[7:]  # the same numbers as a read from the start
    assert [(r.step_index, r.cycle) for r in records] == [(2, 2)] * 3 + [(4, 3)] * 2


def test_cycles_follow_a_conditional_jump_out_of_a_loop(tmp_path: Path) -> None:
    """Step 2 jumps to step 4 on a time condition in its first pass: the data leave the nominal path, and the
    program's cycles follow the jump (leaving the loop ends the cycle, as reaching its loop step would)."""
    jumping = LOOPED.model_copy(update={"steps": (
        LOOPED.steps[0],
        LOOPED.steps[1].model_copy(update={"until": (
            *LOOPED.steps[1].until,
            Termination(quantity=Quantity.TIME, op=Comparison.GE, value=25.5, then=Action.JUMP, target=4))}),
        *LOOPED.steps[2:],
    )})
    rows = [*GRID[:7], (8, 4, 1, "rest", 0, 4.09, 0.0), (9, 4, 1, "rest", 10000, 4.07, 0.0)]
    page = "".join(
        f'  <data seqid="{q}" stepid="{s}" cycleid="{c}" steptype="{t}" testtime="{ms}" atime="2025-01-01 00:00:00" '
        f'volt="{v}" curr="{i}" cap="0" eng="0" />\n' for q, s, c, t, ms, v, i in rows)
    reply = (f'<cmd>donwload_resp</cmd>\n<download {NOIP} testid="5" startpos="1" count="1000" auxid="0" />\n'
             f'<list count="9">\n{page}</list>')
    with OrderedTransport([*ATTACH, (_download(1), reply)]) as transport:
        records = _attached(transport, jumping, tmp_path).read_records(0)
        assert [(r.step_index, r.cycle) for r in records] == [(1, 1)] * 3 + [(2, 1)] * 4 + [(4, 2)] * 2
        assert [r.test_time for r in records] == [0.0, 10.0, 20.0, 20.0, 30.0, 40.0, 45.5, 45.5, 55.5]
