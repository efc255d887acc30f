"""The channel engine's work per advance() is bounded, whatever the (admitted) program asks for.

advance() runs inside the server's event loop, so a legitimately long program (many tiny steps, a 90-day step
recorded at 10 Hz) must be caught up with in bounded slices: the channel lags behind the clock and catches up on
later requests, and a long step runs in pieces whose records are exactly those of one long call.
"""

from __future__ import annotations

import numpy as np
import pytest

import simulators.neware.engine as engine_module
from protocols.clock import VirtualClock
from simulators.neware import BtsSimulator
from simulators.neware.engine import MAX_MOVES_PER_ADVANCE, ChannelEngine
from simulators.neware.stepfile import check_plan, parse_step_file
from tests.fakes.standin_cell import LinearCell

FILE = (
    '<?xml version="1.0" encoding="UTF-8"?><root><config type="Step File"><Head_Info><Start_Step Value="1" />'
    '</Head_Info><Whole_Prt><Record><Main><Time Value="{record_ms}" /></Main></Record></Whole_Prt>'
    '<Step_Info Num="{num}">{steps}</Step_Info></config></root>'
)


def plan_of(steps: str, record_ms: int = 1000):
    plan = parse_step_file(FILE.format(record_ms=record_ms, num=steps.count("Step_ID="), steps=steps))
    check_plan(plan)
    return plan


def tiny_steps(passes: int) -> str:
    """A charge and a discharge of 1 ms each, looped ``passes`` times: legitimate, and many steps."""
    return (
        '<Step1 Step_ID="1" Step_Type="1"><Limit><Main><Curr Value="0.1" /><Time Value="1" /></Main></Limit></Step1>'
        '<Step2 Step_ID="2" Step_Type="2"><Limit><Main><Curr Value="0.1" /><Time Value="1" /></Main></Limit></Step2>'
        f'<Step3 Step_ID="3" Step_Type="5"><Limit><Other><Start_Step Value="1" /><Cycle_Count Value="{passes}" />'
        '</Other></Limit></Step3><Step4 Step_ID="4" Step_Type="6" />'
    )


def test_many_tiny_steps_are_caught_up_with_in_bounded_slices() -> None:
    engine = ChannelEngine(lambda: LinearCell(q0=0.001))
    assert engine.start(plan_of(tiny_steps(200)), "tiny", 1, 0.0)
    calls, rows = 0, 0
    while engine.workstatus == "working":
        engine.advance(1e6)  # the clock is far past the end: all of it is due at once
        calls += 1
        assert len(engine.step_rows) - rows <= MAX_MOVES_PER_ADVANCE  # never more per call
        rows = len(engine.step_rows)
    assert engine.workstatus == "finish"
    assert rows == 400 and engine.records.count == 800  # every step ran, a record at its start and its end
    assert calls >= 600 // MAX_MOVES_PER_ADVANCE  # 400 steps + 200 loop passes, 64 moves at most per call
    assert [r.cycleid for r in engine.step_rows[-2:]] == [200, 200]


def run(steps: str, factory, records_per_run: int, monkeypatch: pytest.MonkeyPatch, poll_s: float = 7.3):
    """Run ``steps`` (recording every 10 s) to the end, polled every ``poll_s``; also the most records per call."""
    monkeypatch.setattr(engine_module, "MAX_RECORDS_PER_RUN", records_per_run)
    monkeypatch.setattr(engine_module, "MAX_RECORDS_PER_ADVANCE", records_per_run)
    engine = ChannelEngine(factory)
    engine.start(plan_of(steps + '<Step2 Step_ID="2" Step_Type="6" />', 10_000), "long", 1, 0.0)
    most, polls = 0, 0
    while engine.workstatus == "working" and polls < 100_000:
        polls += 1
        before = engine.records.count
        engine.advance(poll_s * polls)
        most = max(most, engine.records.count - before)
    assert engine.workstatus == "finish"
    return engine, engine.records.slice(0, engine.records.count), most


def real_cell():
    from simulators.cells import build_model

    return build_model("ncm622-li", area=1.131e-4, capacity=0.0022575, seed=3)


CC = '<Step1 Step_ID="1" Step_Type="1"><Limit><Main><Curr Value="1" /><Time Value="3000000" /></Main></Limit></Step1>'


def test_a_long_step_runs_in_pieces_with_the_records_of_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    _, expected, _ = run(CC, lambda: LinearCell(q0=0.0005), 1 << 18, monkeypatch)
    pieces, got, _ = run(CC, lambda: LinearCell(q0=0.0005), 16, monkeypatch)  # 160 s pieces
    assert len(got["test_time"]) == len(expected["test_time"]) == 301  # a record every 10 s and at the end
    for column in ("test_time", "step_time", "volt", "curr", "cap"):
        assert np.allclose(got[column], expected[column], rtol=1e-12, atol=1e-15), column
    assert np.allclose(got["eng"], expected["eng"], rtol=1e-5)  # the stand-in integrates energy on its own grid
    assert (pieces.step_rows[0].steptime, pieces.step_rows[0].endseqid) == (3000.0, 301)


def test_a_far_jump_of_the_clock_yields_one_piece_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    _, records, most = run(CC, lambda: LinearCell(q0=0.0005), 16, monkeypatch, poll_s=1e6)
    # a call computes one piece of 16 records and an end record, and releases it with the one computed before it
    assert most <= 2 * (16 + 1) and len(records["volt"]) == 301


def test_a_cccv_step_cut_into_pieces_holds_on_from_its_state(monkeypatch: pytest.MonkeyPatch) -> None:
    cccv = (
        '<Step1 Step_ID="1" Step_Type="7"><Limit><Main><Curr Value="1" /><Volt Value="42000" />'
        '<Stop_Curr Value="0.05" /></Main></Limit></Step1>'
    )
    whole, expected, _ = run(cccv, real_cell, 1 << 18, monkeypatch)
    pieces, got, _ = run(cccv, real_cell, 64, monkeypatch)  # 640 s pieces through CC and CV
    assert len(got["volt"]) == len(expected["volt"]) > 500
    assert np.allclose(got["volt"], expected["volt"], atol=1e-6)
    assert np.allclose(got["curr"], expected["curr"], atol=1e-7)  # a restarted CV would jump back to 1 mA
    assert pieces.step_rows[0].steptime == pytest.approx(whole.step_rows[0].steptime, abs=0.1)
    assert pieces.step_rows[0].cap == pytest.approx(whole.step_rows[0].cap, rel=1e-5)


def test_a_ramp_cut_into_pieces_goes_on_from_the_voltage_it_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    ramp = (
        '<Step1 Step_ID="1" Step_Type="25"><Limit><Main><Time Value="9000000" /></Main></Limit>'
        '<Slope SlopeType="1" Cycle_Count="1" ItemCount="1"><Slope1 StartValue="30000" EndValue="36000" Value="0.1" />'
        "</Slope></Step1>"
    )
    _, expected, _ = run(ramp, real_cell, 1 << 18, monkeypatch)
    pieces, got, _ = run(ramp, real_cell, 64, monkeypatch)
    assert len(got["volt"]) == len(expected["volt"]) == 601  # 6000 s at 0.1 mV/s, a record every 10 s
    assert np.allclose(got["volt"], expected["volt"], atol=1e-6)  # a restarted sweep would jump back to 3.0 V
    assert pieces.step_rows[-1].steptime == pytest.approx(6000.0)


def test_the_server_answers_while_a_long_program_is_far_behind_the_clock(tmp_path) -> None:
    """What used to wedge the server: the clock jumps far ahead of a program of many tiny steps."""
    path = tmp_path / "tiny.xml"
    path.write_text(FILE.format(record_ms=1000, num=4, steps=tiny_steps(50_000)), "utf-8")
    clock = VirtualClock()
    sim = BtsSimulator(devices=1, channels=2, clock=clock, model_factory=lambda key: LinearCell(q0=0.001))
    head = '<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">'
    ch = 'ip="127.0.0.1" devtype="27" devid="21" subdevid="1" chlid="{}"'
    start = f'<cmd>start</cmd><list count="1"><start {ch.format(1)} barcode="t">{path}</start></list>'
    assert b">ok</start>" in sim.handle((head + start + "</bts>#\r\n").encode())[1]
    clock.advance(1e6)  # 100 000 steps of 1 ms are due
    status = f'<cmd>getchlstatus</cmd><list count="2"><status {ch.format(1)}>true</status>'
    status += f"<status {ch.format(2)}>true</status></list>"
    for polls in range(1, 4):
        reply = sim.handle((head + status + "</bts>#\r\n").encode())[1]
        assert b">working</status>" in reply and b">finish</status>" in reply
        assert len(sim.channel("21-1-1").step_rows) <= polls * MAX_MOVES_PER_ADVANCE
