"""NewareChannel against the ordered fake transport: the exact dialogue of start, status, data, stop."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from ordered_transport import OrderedTransport

from drivers.base import ChannelRanges, ChannelState, DriverError, Refused
from drivers.neware.address import ChannelAddress
from drivers.neware.channel import NewareChannel
from drivers.neware.client import BtsClient
from drivers.neware.stepfile import compile_program
from protocols.program import Comparison, CurrentStep, Quantity, RecordRule, StepProgram, Termination

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
    transport = OrderedTransport(
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
    )
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
    transport.assert_done()


def test_a_busy_channel_is_refused_before_start_is_sent(tmp_path: Path) -> None:
    transport = OrderedTransport(
        [
            (
                f'<cmd>inquire</cmd><list count="1"><inquire {ADDR} aux="0" barcode="1">true</inquire></list>',
                inquire_reply("working", 'step_id="3" step_type="cc" barcode="other" '),
            )
        ]
    )
    channel = NewareChannel(BtsClient(transport), ChannelAddress.parse("21-1-2"), RANGES, step_dir=tmp_path)
    with pytest.raises(DriverError, match=r"channel 21-1-2 is 'working'; .* stop the running test first"):
        channel.start(PROGRAM, "cell#2")
    transport.assert_done()


def test_a_refused_start_names_the_file(tmp_path: Path) -> None:
    transport = OrderedTransport(
        [
            (
                f'<cmd>inquire</cmd><list count="1"><inquire {ADDR} aux="0" barcode="1">true</inquire></list>',
                inquire_reply("stop"),
            ),
            (None, f'<cmd>start_resp</cmd>\n<list count="1">\n  <start {ADDR}>false</start>\n</list>'),
        ]
    )
    channel = NewareChannel(BtsClient(transport), ChannelAddress.parse("21-1-2"), RANGES, step_dir=tmp_path)
    with pytest.raises(Refused, match=r"refused to start channel 21-1-2 with .*\.xml; check that the BTS"):
        channel.start(PROGRAM, "cell#3")
    transport.assert_done()
