"""Hostile step files fed to the simulated BTS over a real socket: each start is refused for its channel only.

A client may name any path in ``start``. Whatever it names (an entity bomb, absurd values, a bad encoding, a wrong
``Num``, a jump to nowhere, a FIFO, /dev/zero, a file too big), the server answers ``false`` for that channel, logs
the channel, the path and the reason, and goes on serving: another channel of the same server then starts a valid
file and answers inquire and download correctly. The requests are written by hand with a minimal client of this
test's own, as an independent client would write them (no driver code).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
import pytest

import simulators.neware.server as server_module
from protocols.clock import VirtualClock
from simulators.neware import BtsSimulator, DeviceRanges
from simulators.neware.stepfile import (
    MAX_ELEMENTS,
    MAX_EXECUTED_STEPS,
    MAX_FILE_BYTES,
    MAX_LOOP_PASSES,
    StepFileError,
    check_plan,
    executed_steps,
    parse_step_file,
    read_step_file,
)
from tests.fakes.standin_cell import LinearCell

HEAD = '<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">'
TRAILER = b"\n\n#\r\n"
CH = 'ip="127.0.0.1" devtype="27" devid="21" subdevid="1" chlid="{}"'


class Client:
    """The least a BTS client needs: one TCP connection, a request out, one framed reply back."""

    def __init__(self, port: int):
        self.conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def close(self) -> None:
        self.conn.close()

    def ask(self, body: str) -> Element:
        self.conn.sendall((HEAD + body + "</bts>").encode("utf-8") + TRAILER)
        while TRAILER not in self.buffer:
            chunk = self.conn.recv(65536)
            assert chunk, "the server closed the connection"
            self.buffer += chunk
        frame, _, self.buffer = self.buffer.partition(TRAILER)
        return SafeET.fromstring(frame)

    def start(self, chlid: int, path: str) -> str:
        reply = self.ask(
            f'<cmd>start</cmd><list count="1"><start {CH.format(chlid)} barcode="cell-{chlid}">{path}</start></list>'
        )
        return reply.find("list/start").text

    def status(self, chlid: int) -> str:
        return (
            self.ask(f'<cmd>getchlstatus</cmd><list count="1"><status {CH.format(chlid)}>true</status></list>')
            .find("list/status")
            .text
        )

    def inquire(self, chlid: int) -> dict[str, str]:
        body = (
            f'<cmd>inquire</cmd><list count="1"><inquire {CH.format(chlid)} aux="0" barcode="1">true</inquire></list>'
        )
        return dict(self.ask(body).find("list/inquire").attrib)

    def download(self, chlid: int, startpos: int, count: int) -> list[dict[str, str]]:
        body = (
            f'<cmd>download</cmd><download devtype="27" devid="21" subdevid="1" chlid="{chlid}" auxid="0" testid="0" '
            f'startpos="{startpos}" count="{count}"/>'
        )
        return [dict(e.attrib) for e in self.ask(body).findall("list/data")]


def step_file(steps: str, num: str | None = None, *, encoding: str = "UTF-8", prolog: str = "", head: str = "") -> str:
    """A step file around ``steps`` (``Num`` counted unless given), in the layout of a real BTS file."""
    count = steps.count("Step_ID=") if num is None else num
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\r\n{prolog}<root>\r\n'
        '  <config type="Step File" version="17" client_version="BTS Client 8.0.0.478(2024.06.24)(R3)">\r\n'
        f'    <Head_Info><Start_Step Value="1" Hide_Ctrl_Step="0" /><RateType Value="103" />{head}</Head_Info>\r\n'
        '    <Whole_Prt><Record><Main><Time Value="10000" /></Main></Record></Whole_Prt>\r\n'
        f'    <Step_Info Num="{count}">\r\n{steps}\r\n    </Step_Info>\r\n'
        '    <SMBUS><SMBUS_Info Num="0" AdjacentInterval="0" /></SMBUS>\r\n'
        "  </config>\r\n</root>\r\n"
    )


def cc(step_id: int, curr: str = "1", time_ms: str = "60000") -> str:
    return (
        f'      <Step{step_id} Step_ID="{step_id}" Step_Type="1"><Limit><Main><Curr Value="{curr}" />'
        f'<Time Value="{time_ms}" /></Main></Limit></Step{step_id}>\r\n'
    )


def loop(step_id: int, start: str = "1", count: str = "2") -> str:
    return (
        f'      <Step{step_id} Step_ID="{step_id}" Step_Type="5"><Limit><Other><Start_Step Value="{start}" />'
        f'<Cycle_Count Value="{count}" /></Other></Limit></Step{step_id}>\r\n'
    )


def end(step_id: int) -> str:
    return f'      <Step{step_id} Step_ID="{step_id}" Step_Type="6" />'


#: 1 mA for 60 s, recording every 10 s: the valid file the other channel runs
VALID = step_file(cc(1) + end(2))

LAUGHS = "".join(f'<!ENTITY l{i + 1} "{f"&l{i};" * 10}">' for i in range(9))
#: 10^9 "ha" from a few hundred bytes, referenced from the Remark
BILLION_LAUGHS = step_file(
    cc(1) + end(2), prolog=f'<!DOCTYPE root [<!ENTITY l0 "ha">{LAUGHS}]>\r\n', head='<Remark Value="&l9;" />'
)
EXTERNAL_ENTITY = step_file(
    cc(1) + end(2),
    prolog='<!DOCTYPE root [<!ENTITY x SYSTEM "file:///etc/passwd">]>\r\n',
    head='<Remark Value="&x;" />',
)
JUMP_TO_NOWHERE = cc(1).replace(
    "</Main></Limit>", '</Main><Other CndCount="1"><Cnd1 type="1" CmpType="5" Jump_Line="999" /></Other></Limit>'
)


def nested(depth: int, passes: int) -> str:
    """``depth`` loops nested around one CC step, each of ``passes`` passes."""
    steps = cc(1)
    for level in range(depth):
        steps += loop(2 + level, "1", str(passes))
    return steps + end(depth + 2)


def write(text: str | bytes, encoding: str = "utf-8") -> Callable[[Path], str]:
    def make(tmp_path: Path) -> str:
        path = tmp_path / "hostile.xml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
        return str(path)

    return make


def fifo(tmp_path: Path) -> str:
    path = tmp_path / "steps.fifo"
    os.mkfifo(path)
    return str(path)


def oversized(tmp_path: Path) -> str:
    path = tmp_path / "huge.xml"
    text = VALID.encode("utf-8")
    path.write_bytes(text + b" " * (MAX_FILE_BYTES + 1 - len(text)))  # a valid file, padded past the limit
    return str(path)


def element_bomb(tmp_path: Path) -> str:
    return write(step_file(cc(1) + "<x/>" * (MAX_ELEMENTS + 1) + end(2)))(tmp_path)


#: case -> (make the path in tmp_path, the reason the log must give)
HOSTILE: dict[str, tuple[Callable[[Path], str], str]] = {
    "billion laughs": (write(BILLION_LAUGHS), "has a DTD"),
    "external entity": (write(EXTERNAL_ENTITY), "has a DTD"),
    "element bomb": (element_bomb, f"more than {MAX_ELEMENTS} elements"),
    "1e30 mA": (write(step_file(cc(1, curr="1e30") + end(2))), "Step1/Limit/Main/Curr 1e+30 mA is outside"),
    "1e15 ms step": (write(step_file(cc(1, time_ms="1e15") + end(2))), "Step1/Limit/Main/Time 1e+15 ms is outside"),
    "1e12-pass loop of 1 ms steps": (
        write(step_file(cc(1, time_ms="1") + loop(2, "1", "1000000000000") + end(3))),
        f"Cycle_Count 1000000000000 is more passes than the simulated BTS runs ({MAX_LOOP_PASSES})",
    ),
    "nested loops multiplying past the limit": (write(step_file(nested(3, 1000))), "executes more than"),
    "crossing loops": (
        write(step_file(cc(1) + cc(2) + loop(3, "1") + loop(4, "2") + end(5))),
        "the loops of Step3 and Step4 cross",
    ),
    "255+ steps": (
        write(step_file("".join(cc(i) for i in range(1, 300)) + end(300))),
        "the file holds 300 steps; the BTS runs at most 254 plus End",
    ),
    "UTF-16 declared": (write(step_file(cc(1) + end(2), encoding="UTF-16")), "declares encoding 'utf-16'"),
    "not a text codec": (write(step_file(cc(1) + end(2), encoding="rot13")), "declares encoding 'rot13'"),
    "invalid UTF-8 bytes": (
        write(step_file(cc(1) + end(2)).encode("utf-8").replace(b"Step File", b"Step \xff\xfe File")),
        "is not valid utf-8 text",
    ),
    "Num mismatch": (write(step_file(cc(1) + end(2), num="7")), "Step_Info Num=7 but the file holds 2 steps"),
    "Num past int()": (write(step_file(cc(1) + end(2), num="9" * 5000)), "Step_Info needs Num"),
    "loop back to a later step": (
        write(step_file(cc(1) + loop(2, "9") + end(3))),
        "Step_Info/Step2: Start_Step 9 must name an earlier step",
    ),
    "loop back to step 0": (
        write(step_file(cc(1) + loop(2, "0") + end(3))),
        "Step_Info/Step2: Start_Step 0 must name an earlier step",
    ),
    "jump condition to nowhere": (
        write(step_file(JUMP_TO_NOWHERE + end(2))),
        "Cnd1: Jump_Line='999' names no step (the file has 2)",
    ),
    "start step out of range": (
        write(step_file(cc(1) + end(2)).replace('<Start_Step Value="1"', '<Start_Step Value="300"')),
        "Head_Info/Start_Step 300 names no step",
    ),
    "FIFO": (fifo, "the path is a FIFO, not a regular step file"),
    "/dev/zero": (lambda tmp_path: "/dev/zero", "the path is a character device, not a regular step file"),
    "a directory": (lambda tmp_path: str(tmp_path), "the path is a directory"),
    "file too big": (oversized, f"a step file may have at most {MAX_FILE_BYTES}"),
    "missing file": (lambda tmp_path: str(tmp_path / "missing.xml"), "No such file or directory"),
}


@pytest.fixture
def sim() -> Iterator[BtsSimulator]:
    simulator = BtsSimulator(
        devices=1, channels=2, clock=VirtualClock(), model_factory=lambda key: LinearCell(q0=0.001)
    ).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim: BtsSimulator) -> Iterator[Client]:
    c = Client(sim.port)
    yield c
    c.close()


def assert_serves_a_valid_start(sim: BtsSimulator, client: Client, tmp_path: Path, chlid: int = 2) -> None:
    """A valid file still starts, and inquire/download answer with the values the stand-in cell gives."""
    valid = tmp_path / "valid.xml"
    valid.write_text(VALID, "utf-8")
    assert client.start(chlid, str(valid)) == "ok"
    sim.clock.advance(30.0)  # type: ignore[attr-defined]
    live = client.inquire(chlid)
    assert (live["workstatus"], live["step_id"], live["step_type"], live["barcode"]) == (
        "working",
        "1",
        "cc",
        f"cell-{chlid}",
    )
    # LinearCell: 3.0 V + 1.2 V x (1 mAh + 1 mA x 30 s) / 2 mAh + 1 mA x 10 ohm
    assert (live["current"], live["voltage"], live["relativetime"]) == ("0.001", "3.615", "30")
    rows = client.download(chlid, 1, 100)
    assert [r["seqid"] for r in rows] == ["1", "2", "3", "4"]
    assert [r["testtime"] for r in rows] == ["0", "10000", "20000", "30000"]  # the grid from step time 0
    assert float(rows[-1]["cap"]) == pytest.approx(0.001 * 30 / 3600, rel=1e-9)
    assert float(rows[-1]["volt"]) == pytest.approx(3.615, abs=1e-9)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_start_is_refused_for_its_channel_and_the_server_serves_on(
    case: str, sim: BtsSimulator, client: Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make, reason = HOSTILE[case]
    path = make(tmp_path)
    caplog.set_level(logging.WARNING, logger="simulators.neware.server")
    assert client.start(1, path) == "false"
    refusals = [r.getMessage() for r in caplog.records if "start refused on channel (21, 1, 1)" in r.getMessage()]
    assert len(refusals) == 1, refusals
    assert repr(path) in refusals[0] and reason in refusals[0], refusals[0]
    assert client.status(1) == "finish"  # the refused channel did not move
    assert_serves_a_valid_start(sim, client, tmp_path)
    assert client.start(1, str(tmp_path / "valid.xml")) == "ok"  # and the refused channel can still start


def test_a_refusal_in_a_batch_leaves_the_other_channels_start_alone(
    sim: BtsSimulator, client: Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    valid, bomb = tmp_path / "valid.xml", tmp_path / "bomb.xml"
    valid.write_text(VALID, "utf-8")
    bomb.write_text(BILLION_LAUGHS, "utf-8")
    items = (
        f'<start {CH.format(1)} barcode="a">{bomb}</start><start {CH.format(2)} barcode="b">{valid}</start>'
        f'<start {CH.format(9)} barcode="c">{valid}</start>'
    )
    caplog.set_level(logging.INFO, logger="simulators.neware.server")
    reply = client.ask(f'<cmd>start</cmd><list count="3">{items}</list>')
    assert [(e.get("chlid"), e.text) for e in reply.find("list")] == [("1", "false"), ("2", "ok"), ("9", "false")]
    messages = [r.getMessage() for r in caplog.records]
    assert any("(21, 1, 1)" in m and "has a DTD" in m for m in messages)
    assert any("(21, 1, 9)" in m and "no such channel" in m for m in messages)
    assert [client.status(1), client.status(2)] == ["finish", "working"]


def test_a_slow_step_file_read_does_not_hold_up_other_clients(
    sim: BtsSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read happens off the event loop: while one start waits on its file, other connections are answered."""
    reading, release = threading.Event(), threading.Event()
    real_load = server_module.load_step_file

    def slow_load(path: str, ranges: object) -> object:
        reading.set()
        assert release.wait(10), "the test never released the read"
        return real_load(path, ranges)  # type: ignore[arg-type]

    monkeypatch.setattr(server_module, "load_step_file", slow_load)
    valid = tmp_path / "valid.xml"
    valid.write_text(VALID, "utf-8")
    starter, other = Client(sim.port), Client(sim.port)
    try:
        body = f'<cmd>start</cmd><list count="1"><start {CH.format(1)} barcode="a">{valid}</start></list>'
        starter.conn.sendall((HEAD + body + "</bts>").encode() + TRAILER)
        assert reading.wait(10)
        assert other.status(2) == "finish"  # answered while the start's file read is still blocked
        assert other.inquire(1)["workstatus"] == "finish"
        release.set()
        while TRAILER not in starter.buffer:
            starter.buffer += starter.conn.recv(65536)
        frame = starter.buffer.partition(TRAILER)[0]
        assert SafeET.fromstring(frame).find("list/start").text == "ok"
    finally:
        release.set()
        starter.close()
        other.close()


# -- the layers underneath, directly --------------------------------------------------------------------------


def test_a_fifo_swapped_in_after_the_stat_neither_blocks_nor_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the non-blocking open exists for: stat saw a regular file, open finds a FIFO with no writer."""
    regular = tmp_path / "regular.xml"
    regular.write_text(VALID, "utf-8")
    pipe = fifo(tmp_path)
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda path, *a, **k: real_stat(regular) if str(path) == pipe else real_stat(path))
    with pytest.raises(StepFileError, match="the path is a FIFO"):
        read_step_file(pipe)


def test_reads_stop_at_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "steps.xml"
    path.write_bytes(b"x" * 101)
    with pytest.raises(StepFileError, match="at most 100"):
        read_step_file(str(path), max_bytes=100)
    assert read_step_file(str(path), max_bytes=101) == b"x" * 101
    with pytest.raises(StepFileError, match="cannot open"):
        read_step_file("a\0b")


def test_executed_steps_multiply_nested_loops_without_walking_them() -> None:
    plan = parse_step_file(step_file(cc(1) + cc(2) + loop(3, "2", "10") + loop(4, "1", "3") + end(5)))
    # step 1: 3 passes; step 2 and its loop step 3: 10 x 3; loop step 4: 3; End once
    assert executed_steps(plan.steps) == 3 + 30 + 30 + 3 + 1
    huge = parse_step_file(step_file(nested(20, 10**11)))  # 1e220 visits, counted in a few multiplications
    assert executed_steps(huge.steps) == MAX_EXECUTED_STEPS + 1


def test_well_formed_but_odd_values_are_refused_with_the_element_named() -> None:
    cases = {
        cc(1, curr="-1e30"): "Curr 1e+30 mA is outside",  # Curr is read as a magnitude; still absurd
        cc(1, time_ms="-5"): "Time -5 ms is outside",
        cc(1).replace("<Time", '<Stop_Volt Value="9e9" /><Time'): "Stop_Volt 900000 V is outside",
    }
    for steps, reason in cases.items():
        plan = parse_step_file(step_file(steps + end(2)))
        with pytest.raises(StepFileError, match=re.escape(reason)):
            check_plan(plan)
    with pytest.raises(StepFileError, match="is not a whole number"):
        parse_step_file(step_file(cc(1) + loop(2, "1", "2.5") + end(3)))
    with pytest.raises(StepFileError, match="nests elements more than 32 deep"):
        parse_step_file(step_file(cc(1) + "<a>" * 40 + "</a>" * 40 + end(2)))


def test_the_device_ranges_a_simulator_is_given_bound_its_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 20 mA, 0..5 V channel (like the harness's) refuses 25 mA and 6 V, and runs 20 mA."""
    ranges = DeviceRanges(current_max=0.02, voltage_min=0.0, voltage_max=5.0)
    caplog.set_level(logging.WARNING, logger="simulators.neware.server")
    with BtsSimulator(
        devices=1, channels=2, clock=VirtualClock(), model_factory=lambda key: LinearCell(), ranges=ranges
    ) as sim:
        client = Client(sim.port)
        try:
            for name, text, answer in [
                ("25ma.xml", step_file(cc(1, curr="25") + end(2)), "false"),
                ("6v.xml", step_file(cc(1).replace("<Time", '<Stop_Volt Value="60000" /><Time') + end(2)), "false"),
                ("20ma.xml", step_file(cc(1, curr="20") + end(2)), "ok"),
            ]:
                (tmp_path / name).write_text(text, "utf-8")
                assert client.start(1, str(tmp_path / name)) == answer, name
        finally:
            client.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any("25ma.xml" in m and "Curr 25 mA is outside what the device accepts (0..20)" in m for m in messages)
    assert any("6v.xml" in m and "Stop_Volt 6 V is outside what the device accepts (0..5)" in m for m in messages)
