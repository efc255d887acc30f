"""Jump conditions and Control steps are executed as the reference describes, or refused at start with the reason.

Reference section 9: "Jump conditions are real control flow ... A reader that skips them runs a different program
from the BTS ... Anything a simulator cannot execute must be refused at start, never run silently."

Expected step sequences are worked out here by hand from the stand-in cell's closed form (OCV = 3.0 V + 0.6 V/mAh
x q, V = OCV + I x 10 ohm, 2 mAh), an independent reading of each file.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
from bts_files import (
    ack,
    cnd,
    download,
    downloadlog,
    end,
    other,
    start,
    status,
    step,
    step_file,
    step_layer,
    values,
    write,
)

from protocols.clock import VirtualClock
from simulators.neware import BtsSimulator
from simulators.neware.engine import LOG_FINISH, LOG_PROTECT, LOG_START, LOG_STOP, MAX_IDLE_ENTRIES
from tests.fakes.standin_cell import LinearCell

V_PER_MAH, R = 0.6, 10.0


def ocv(q_mah: float) -> float:
    return 3.0 + V_PER_MAH * q_mah


def simulator(q0_mah: float) -> BtsSimulator:
    return BtsSimulator(
        devices=1, channels=2, clock=VirtualClock(), model_factory=lambda key: LinearCell(q0=q0_mah / 1000)
    )


def run(sim: BtsSimulator, tmp_path: Path, text: str, seconds: float = 1e6) -> list[tuple[int, float, int]]:
    """Start the file, let ``seconds`` pass, and return the executed steps as (Step_ID, step time s, cycle)."""
    assert start(sim, write(tmp_path, text)) == ["ok"], sim.last_start_errors
    sim.clock.advance(seconds)  # type: ignore[attr-defined]
    status(sim)
    return [(r.stepid, round(r.steptime, 3), r.cycleid) for r in sim.channel("21-1-1").step_rows]


def test_neware_utils_rest_until_v_below_3v6_then_next_line(tmp_path: Path) -> None:
    """neware-utils' documented example (a rest with ``Cnd1 type=1 CmpType=5 Value=36000 Jump_Line=65526``): the
    rest ends as soon as V < 3.6 V and the program goes on with the next line."""
    steps = (
        step(1, 1, values(Curr=1, Stop_Volt=45000, Time=120000))
        + step(2, 4, values(Time=300000), other(cnd(1, 1, 5, 36000, 65526)))
        + step(3, 7, values(Curr=1, Volt=36000, Stop_Curr=0.05))
        + step(4, 2, values(Curr=1, Stop_Volt=32000))
        + end(5)
    )
    sim = simulator(0.2)
    rows = run(sim, tmp_path, step_file(steps))
    # step 1: 120 s at 1 mA -> q = 0.2333 mAh; step 2: OCV 3.14 V < 3.6 V already, the rest ends at step time 0;
    # step 3: CC until OCV + 10 mV = 3.6 V (q = 0.98333 mAh: 2700 s), then CV from 1 mA to 0.05 mA, tau = 60 s;
    # step 4: discharge until OCV - 10 mV = 3.2 V (q = 0.35 mAh)
    cv_s = 60.0 * math.log(1 / 0.05)
    q_after_cccv = 0.98333333 + 1.0 * 60.0 * (1 - 0.05) / 3600
    assert [(s, t) for s, t, _ in rows] == [
        (1, 120.0),
        (2, 0.0),
        (3, pytest.approx(2700.0 + cv_s, abs=0.05)),
        (4, pytest.approx((q_after_cccv - 0.35) * 3600, abs=0.5)),
    ]
    # the record grid: every step starts at step time 0, records at multiples of 10 s, the exact end last; the
    # condition's step is one record; test times repeat at the boundaries
    records = download(sim, 1)
    by_step: dict[int, list[float]] = {}
    for r in records:
        by_step.setdefault(int(r["stepid"]), []).append(float(r["testtime"]) / 1000)
    assert by_step[1] == [10.0 * k for k in range(13)]
    assert by_step[2] == [0.0]
    inner = by_step[3][:-1]
    assert inner == [10.0 * k for k in range(len(inner))] and by_step[3][-1] == pytest.approx(2700.0 + cv_s, abs=0.05)
    assert status(sim) == "finish"


def test_a_condition_jumps_to_a_step_and_out_of_a_loop_whose_passes_are_forgotten(tmp_path: Path) -> None:
    """Charge in a 3-pass loop until V > 3.45 V, then jump out of it to a discharge; an outer loop runs it twice."""
    steps = (
        step(1, 1, values(Curr=1, Time=360000), other(cnd(1, 1, 3, 34500, 3)))
        + step(2, 5, other='<Other><Start_Step Value="1" /><Cycle_Count Value="3" /></Other>')
        + step(3, 2, values(Curr=1, Time=700000))
        + step(4, 5, other='<Other><Start_Step Value="1" /><Cycle_Count Value="2" /></Other>')
        + end(5)
    )
    sim = simulator(0.5)
    # V > 3.45 V <=> q > 0.73333 mAh. Pass A: 0.5 -> 0.6 -> 0.7, then 120 s to 0.7333 and the jump to step 3 (700 s:
    # back to 0.53889). Pass B: 0.53889 -> 0.63889, the inner loop counts afresh (the jump left it), then 340 s to
    # 0.7333 and the jump. Had the inner loop kept its 2 passes, pass B would have left it after one charge.
    # Cycles: +1 at every Cycle step reached after another step ran.
    assert run(sim, tmp_path, step_file(steps)) == [
        (1, 360.0, 1),
        (1, 360.0, 2),
        (1, 120.0, 3),
        (3, 700.0, 3),
        (1, 360.0, 4),
        (1, 340.0, 5),
        (3, 700.0, 5),
    ]
    assert status(sim) == "finish"


@pytest.mark.parametrize(
    ("jump", "state", "code"), [(65533, "stop", LOG_STOP), (65534, "protect", LOG_PROTECT)], ids=["stop", "protect"]
)
def test_a_condition_can_stop_the_test_or_trip_protection(tmp_path: Path, jump: int, state: str, code: int) -> None:
    steps = step(1, 2, values(Curr=1, Time=3600000), other(cnd(1, 1, 5, 36000, jump))) + step(2, 4, values(Time=1000))
    sim = simulator(1.5)
    rows = run(sim, tmp_path, step_file(steps + end(3)))
    assert rows == [(1, 1740.0, 1)]  # 1 mA down from OCV 3.9 V to V < 3.6 V: 0.48333 mAh, 1740 s; step 2 never runs
    assert status(sim) == state
    log = downloadlog(sim)
    assert log[0] == (1, LOG_START) and log[-1] == (len(download(sim, 1)), code)
    assert LOG_FINISH not in [c for _, c in log]


def test_a_current_and_a_time_condition(tmp_path: Path) -> None:
    """A CV hold ends when |I| < 0.2 mA (type 2, mA) and jumps over step 2; a rest ends after 42 s (type 3, ms)."""
    steps = (
        step(1, 3, values(Curr=1, Volt=39050, Time=3600000), other(cnd(1, 2, 5, 0.2, 3)))
        + step(2, 4, values(Time=100000))
        + step(3, 4, values(Time=600000), other(cnd(1, 3, 3, 42000, 65526)))
        + end(4)
    )
    sim = simulator(1.5)  # OCV 3.9 V: the 3.905 V hold starts at 0.5 mA and decays with tau = 60 s
    rows = run(sim, tmp_path, step_file(steps))
    assert [(s, t) for s, t, _ in rows] == [(1, pytest.approx(60 * math.log(2.5), abs=1e-3)), (3, 42.0)]


def test_a_control_step_waits_on_its_conditions_with_no_current(tmp_path: Path) -> None:
    steps = (
        step(1, 21, other=other(cnd(1, 3, 3, 25000, 65526)))
        + step(2, 21)  # nothing to control, nothing to wait for: passed at once
        + step(3, 4, values(Time=10000))
        + end(4)
    )
    sim = simulator(1.0)
    assert run(sim, tmp_path, step_file(steps)) == [(1, 25.0, 1), (3, 10.0, 1)]
    records = download(sim, 1)
    assert [r["steptype"] for r in records[:4]] == ["control"] * 4
    assert {float(r["curr"]) for r in records} == {0.0}


REFUSED = {
    "expression test (type 22)": (
        cnd(1, 22, 5, 0, 65526, ExpressionName="timeLimit", Expression="(2*User3)-StepTime"),
        "a expression test condition (type 22) is not simulated",
    ),
    "set user variable (type 23)": (
        cnd(1, 23, 4, 0, 0, ExpressionName="user1", Expression="0", GlobleUserID="71", GLobleType="2"),
        "a set user variable condition (type 23) is not simulated",
    ),
    "type 10": (cnd(1, 10, 5, 55, 65526), "a type 10 condition (type 10) is not simulated"),
    "CmpType 4": (cnd(1, 1, 4, 36000, 65526), "CmpType 4 is not a comparison the simulator knows"),
    "Jump_Line 0": (cnd(1, 1, 5, 36000, 0), "Jump_Line 0 (no jump) on a voltage condition"),
    "an expression on a voltage condition": (
        cnd(1, 1, 5, 36000, 65526, Expression="User1"),
        "Expression='User1' changes what the condition does",
    ),
    "an auxiliary channel": (cnd(1, 1, 5, 36000, 65526, Aux="1"), "Aux='1' changes what the condition does"),
    "a global variable": (cnd(1, 1, 5, 36000, 65526, GlobalVar="4"), "GlobalVar='4' changes what the condition"),
    "a negative current": (cnd(1, 2, 5, -5, 65526), "a negative current condition (-5 mA)"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_the_reference_does_not_define_is_refused_at_start(
    case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    condition, reason = REFUSED[case]
    steps = step(1, 4, values(Time=60000), other(condition)) + end(2)
    sim = simulator(1.0)
    caplog.set_level(logging.WARNING, logger="simulators.neware.server")
    assert start(sim, write(tmp_path, step_file(steps))) == ["false"]
    assert reason in sim.last_start_errors["(21, 1, 1)"], sim.last_start_errors
    assert any(
        "start refused on channel (21, 1, 1)" in r.getMessage() and reason in r.getMessage() for r in caplog.records
    )
    assert status(sim) == "finish"


@pytest.mark.parametrize(
    ("steps", "reason"),
    [
        (
            step(
                1,
                21,
                other=other(cnd(1, 1, 5, 36000, 65526)),
                extra='<ControlStepValue ControlType="5" TempValue="50" />',
            )
            + end(2),
            "ControlStepValue (ControlType 5, TempValue 50): the Control step sets an external device",
        ),
        (
            step(1, 4, values(Time=60000), '<Other CndCount="2">' + cnd(1, 1, 5, 36000, 65526) + "</Other>") + end(2),
            "CndCount='2' but the step holds 1 Cnd conditions",
        ),
        (step(1, 4, values(Time=60000), other(cnd(1, 1, 5, 36000, 9))) + end(2), "Jump_Line='9' names no step"),
        (
            step(1, 4, values(Time=60000))
            + step(
                2,
                5,
                other='<Other><Start_Step Value="1" /><Cycle_Count Value="2" />'
                + cnd(1, 1, 5, 36000, 65526)
                + "</Other>",
            )
            + end(3),
            "Step2/Limit/Other: a cycle step with jump conditions has no documented meaning",
        ),
    ],
    ids=["chamber control", "CndCount", "jump to nowhere", "condition on a loop"],
)
def test_structural_and_device_refusals(steps: str, reason: str, tmp_path: Path) -> None:
    sim = simulator(1.0)
    assert start(sim, write(tmp_path, step_file(steps))) == ["false"]
    assert reason in sim.last_start_errors["(21, 1, 1)"]


def test_a_num_that_does_not_match_the_steps_is_refused(tmp_path: Path) -> None:
    sim = simulator(1.0)
    steps = step(1, 4, values(Time=60000)) + end(2)
    assert start(sim, write(tmp_path, step_file(steps, num=3))) == ["false"]
    assert "Step_Info Num=3 but the file holds 2 steps (Num counts End)" in sim.last_start_errors["(21, 1, 1)"]
    assert start(sim, write(tmp_path, step_file(steps, num=2))) == ["ok"]


def test_a_jump_loop_of_steps_that_take_no_time_trips_the_channel(tmp_path: Path) -> None:
    """Two rests that each end at once (V < 3.6 V holds at step time 0) jumping to each other forever."""
    steps = (
        step(1, 4, values(Time=60000), other(cnd(1, 1, 5, 36000, 2)))
        + step(2, 4, values(Time=60000), other(cnd(1, 1, 5, 36000, 1)))
        + end(3)
    )
    sim = simulator(0.5)
    assert start(sim, write(tmp_path, step_file(steps))) == ["ok"]
    for _ in range(MAX_IDLE_ENTRIES // 64 + 2):  # each request does a bounded slice of the work
        status(sim)
    assert status(sim) == "protect"
    assert "a jump loop" in sim.channel("21-1-1").protect_reason
    assert downloadlog(sim)[-1][1] == LOG_PROTECT


def test_goto_jumps_a_running_channel(tmp_path: Path) -> None:
    steps = step(1, 4, values(Time=600000)) + step(2, 4, values(Time=600000)) + step(3, 4, values(Time=30000)) + end(4)
    sim = simulator(1.0)
    assert start(sim, write(tmp_path, step_file(steps))) == ["ok"]
    sim.clock.advance(100)  # type: ignore[attr-defined]
    assert ack(sim, "goto", attrs='step="3"') == "ok"
    assert ack(sim, "goto", attrs='step="9"') == "false"  # no such step
    sim.clock.advance(1000)  # type: ignore[attr-defined]
    assert status(sim) == "finish"
    assert [(int(r["stepid"]), float(r["steptime"])) for r in step_layer(sim)] == [(1, 100000.0), (3, 30000.0)]
