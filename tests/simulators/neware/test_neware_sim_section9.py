"""The reference's section 9 ("semantics found by running third-party and real files"), one test per fact that
concerns the simulator, plus the command semantics of section 2 the simulator chooses (logs, paging, pauses).

The stand-in cell is exact (OCV = 3.0 V + 0.6 V/mAh x q, 10 ohm, 2 mAh), so expected values are arithmetic.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from bts_files import (
    CH,
    ack,
    ask,
    download,
    downloadlog,
    end,
    inquire,
    start,
    status,
    step,
    step_file,
    step_layer,
    values,
    write,
)

from protocols.clock import VirtualClock
from simulators.neware import BtsSimulator, Measurement
from simulators.neware.engine import LOG_FINISH, LOG_PROTECT, LOG_START, LOG_STOP, Budget, ChannelEngine
from simulators.neware.stepfile import check_plan, parse_step_file
from tests.fakes.standin_cell import LinearCell


def simulator(q0_mah: float = 1.0, **options: object) -> BtsSimulator:
    return BtsSimulator(
        devices=1,
        channels=2,
        clock=VirtualClock(),
        model_factory=lambda key: LinearCell(q0=q0_mah / 1000),
        **options,  # type: ignore[arg-type]
    )


def records(sim: BtsSimulator, chlid: int = 1) -> dict[str, np.ndarray]:
    """The channel's records after a request (channels are computed when asked about)."""
    status(sim, chlid)
    engine = sim.channel(f"21-1-{chlid}")
    return engine.records.slice(0, engine.records.count)


# -- CV step type carries direction ------------------------------------------------------------------------------


def test_a_cv_charge_that_would_discharge_the_cell_ends_at_once_with_no_current(tmp_path: Path) -> None:
    """Type 3 only sources current: held at 3.6 V, a cell at 3.9 V would need -30 mA. The current is clamped at 0,
    which meets the cut-off current at step time 0; the program goes on with the next line."""
    steps = step(1, 3, values(Curr=1, Volt=36000, Stop_Curr=0.05, Time=600000)) + step(2, 4, values(Time=30000))
    sim = simulator(1.5)
    assert start(sim, write(tmp_path, step_file(steps + end(3)))) == ["ok"]
    sim.clock.advance(1e4)  # type: ignore[attr-defined]
    assert status(sim) == "finish"
    rows = step_layer(sim)
    assert [(r["stepid"], r["steptype"], r["steptime"]) for r in rows] == [("1", "cv", "0"), ("2", "rest", "30000")]
    assert (float(rows[0]["startcurr"]), float(rows[0]["endcurr"]), float(rows[0]["endvolt"])) == (0.0, 0.0, 3.9)
    first = download(sim, 1)[0]
    assert (first["stepid"], first["testtime"], float(first["curr"]), float(first["volt"])) == ("1", "0", 0.0, 3.9)


def test_a_cv_discharge_that_would_charge_the_cell_ends_at_once(tmp_path: Path) -> None:
    steps = step(1, 19, values(Curr=1, Volt=40000, Stop_Curr=0.05)) + end(2)
    sim = simulator(1.5)
    assert start(sim, write(tmp_path, step_file(steps))) == ["ok"]
    sim.clock.advance(10)  # type: ignore[attr-defined]
    assert status(sim) == "finish"
    assert np.all(records(sim)["curr"] == 0.0) and sim.channel("21-1-1").step_rows[0].steptime == 0.0


def test_a_cv_charge_the_right_way_holds_and_decays(tmp_path: Path) -> None:
    steps = step(1, 3, values(Curr=1, Volt=39050, Stop_Curr=0.05)) + end(2)
    sim = simulator(1.5)  # 5 mV above the OCV: 0.5 mA, decaying with tau = 60 s to 0.05 mA
    assert start(sim, write(tmp_path, step_file(steps))) == ["ok"]
    sim.clock.advance(1e4)  # type: ignore[attr-defined]
    assert status(sim) == "finish"
    row = sim.channel("21-1-1").step_rows[0]
    assert row.steptime == pytest.approx(60 * math.log(10), abs=1e-3)
    assert (row.startcurr, row.endcurr) == (pytest.approx(5e-4), pytest.approx(5e-5, rel=1e-6))
    assert np.all(records(sim)["curr"] > 0)


def test_the_real_cell_model_is_held_to_the_direction_too(tmp_path: Path) -> None:
    from simulators.cells import build_model

    sim = BtsSimulator(
        devices=1,
        channels=1,
        clock=VirtualClock(),
        model_factory=lambda key: build_model("ncm622-li", capacity=0.0022575, seed=3),
    )
    charge = step(1, 1, values(Curr=1, Stop_Volt=40000))  # to 4.0 V, then hold a CV *charge* at 3.7 V
    hold = step(2, 3, values(Curr=1, Volt=37000, Stop_Curr=0.05, Time=3600000))
    assert start(sim, write(tmp_path, step_file(charge + hold + step(3, 4, values(Time=60000)) + end(4)))) == ["ok"]
    sim.clock.advance(1e6)  # type: ignore[attr-defined]
    assert status(sim) == "finish"
    rows = sim.channel("21-1-1").step_rows
    assert [(r.stepid, r.steptime) for r in rows][1] == (2, 0.0)
    data = records(sim)
    assert np.all(data["curr"][data["stepid"] == 2] >= 0.0)  # the cell never discharged in the CV charge step


# -- a zero limit may mean "no limit" ----------------------------------------------------------------------------


def test_zero_limits_are_absent(tmp_path: Path) -> None:
    """A charge with ``Stop_Volt 0`` would end at once if 0 V were a limit (V >= 0 V holds); read the way
    aurora-cycler-manager reads it (absent), it runs its 60 s. ``Time 0`` beside a Stop_Volt is no limit either,
    a protection bound of 0 trips nothing, and a record interval of 0 is the BTS default of 1 s."""
    steps = (
        step(1, 1, values(Curr=1, Stop_Volt=0, Time=60000))
        + step(2, 2, values(Curr=1, Stop_Volt=38000, Time=0))
        + end(3)
    )
    text = step_file(steps, protect='<Volt><Upper Value="0" /><Lower Value="0" /></Volt>', record='<Time Value="0" />')
    plan = parse_step_file(text)
    assert plan.protection.voltage_max is None and plan.record.every_s is None
    assert (plan.step(1).stop_voltage, plan.step(2).time_s) == (None, None)
    sim = simulator(1.5)
    assert start(sim, write(tmp_path, text)) == ["ok"]
    sim.clock.advance(1e5)  # type: ignore[attr-defined]
    assert status(sim) == "finish"
    rows = sim.channel("21-1-1").step_rows
    # step 2: from q = 1.51667 mAh down to OCV - 10 mV = 3.8 V, q = 1.35 mAh
    # (1.51667 - 1.35) mAh at 1 mA: 600 s, in closed form for the linear stand-in cell
    assert [(r.stepid, r.steptime) for r in rows] == [(1, 60.0), (2, pytest.approx(600.0, abs=1e-3))]
    # the default 1 s records: 0..60 s and 0..600 s, each step's first at step time 0
    assert len(download(sim, 1)) == rows[-1].endseqid == 61 + 601
    only_zero = step(1, 2, values(Curr=1, Stop_Volt=0, Time=0)) + end(2)
    assert start(sim, write(tmp_path, step_file(only_zero), "zero.xml"), chlids=(2,)) == ["false"]
    assert "the step has no end condition" in sim.last_start_errors["(21, 1, 2)"]


# -- record timing -----------------------------------------------------------------------------------------------


def test_records_at_whole_multiples_from_the_step_start_and_test_time_repeats(tmp_path: Path) -> None:
    steps = step(1, 4, values(Time=25000)) + step(2, 1, values(Curr=1, Time=31000)) + end(3)
    sim = simulator()
    assert start(sim, write(tmp_path, step_file(steps))) == ["ok"]
    sim.clock.advance(100)  # type: ignore[attr-defined]
    rows = download(sim, 1)
    assert [(r["stepid"], r["testtime"]) for r in rows] == [
        ("1", "0"),
        ("1", "10000"),
        ("1", "20000"),
        ("1", "25000"),  # the step's end, off the grid
        ("2", "0"),  # the next step's first record, at step time 0.0 s ...
        ("2", "10000"),
        ("2", "20000"),
        ("2", "30000"),
        ("2", "31000"),
    ]
    test_time = records(sim)["test_time"]
    assert test_time[3] == test_time[4] == 25.0  # ... repeating the test time of the step before's last record
    assert np.all(np.diff(test_time) >= 0)


def test_change_records_fall_between_the_grid_points(tmp_path: Path) -> None:
    """``Record Time 60 s + Volt 4 mV`` on a 1 mA charge (V rises 1/6 mV/s, 4 mV every 24 s): the 60 s grid from the
    step start, and a change record every 24 s between, none within the channel's 0.1 s sampling of another."""
    steps = step(1, 1, values(Curr=1, Time=300000)) + end(2)
    sim = simulator()
    assert start(sim, write(tmp_path, step_file(steps, record='<Time Value="60000" /><Volt Value="40" />'))) == ["ok"]
    sim.clock.advance(1000)  # type: ignore[attr-defined]
    times = list(records(sim)["step_time"])
    expected = sorted({60.0 * k for k in range(6)} | {24.0 * k for k in range(1, 13) if (24 * k) % 60})
    assert times == pytest.approx(expected, abs=1e-6)


# -- noise and start transient -----------------------------------------------------------------------------------


CCCV = step(1, 7, values(Curr=1, Volt=39500, Stop_Curr=0.05)) + end(2)
#: from q = 0.5 mAh, 1 mA until OCV + 10 mV = 3.95 V (q = 1.56667 mAh): 3840 s of CC, then ~180 s of CV
CC_S = 3840.0


def test_records_are_exact_unless_noise_is_asked_for(tmp_path: Path) -> None:
    exact = simulator(0.5)
    assert start(exact, write(tmp_path, step_file(CCCV, record='<Time Value="1000" />'))) == ["ok"]
    exact.clock.advance(1e4)  # type: ignore[attr-defined]
    data = records(exact)
    cc, cv = data["step_time"] < CC_S - 1, data["step_time"] > CC_S + 1
    assert np.all(data["curr"][cc] == 0.001) and cv.sum() > 100
    assert np.all(np.abs(data["volt"][cv] - 3.95) < 1e-9)


def test_seeded_noise_has_the_real_datas_size_and_repeats_with_its_seed(tmp_path: Path) -> None:
    path = write(tmp_path, step_file(CCCV, record='<Time Value="1000" />'))
    runs = []
    for seed in (1, 1, 2):
        sim = simulator(0.5, measurement=Measurement.realistic(seed))
        assert start(sim, path) == ["ok"]
        sim.clock.advance(1e4)  # type: ignore[attr-defined]
        runs.append(records(sim))
    data = runs[0]
    cc, cv = data["step_time"] < CC_S - 1, data["step_time"] > CC_S + 1
    assert np.std(data["curr"][cc][1:] - 0.001) == pytest.approx(2e-7, rel=0.15)  # ~0.2 uA
    assert np.std(data["volt"][cv] - 3.95) == pytest.approx(5e-4, rel=0.2)  # held within ~0.5 mV
    assert np.array_equal(runs[0]["curr"], runs[1]["curr"]) and not np.array_equal(runs[0]["curr"], runs[2]["curr"])


def test_the_start_transient_lowers_a_current_steps_first_record(tmp_path: Path) -> None:
    sim = simulator(1.5, measurement=Measurement(start_transient=9e-4))
    assert start(sim, write(tmp_path, step_file(CCCV))) == ["ok"]
    sim.clock.advance(100)  # type: ignore[attr-defined]
    current = records(sim)["curr"]
    assert current[0] == pytest.approx(0.001 * (1 - 9e-4), rel=1e-12) and current[1] == 0.001


# -- RateType 105 and MultCap ------------------------------------------------------------------------------------


def test_rate_mode_follows_rate_times_multcap_and_ignores_a_stale_curr(tmp_path: Path) -> None:
    steps = (
        step(1, 1, values(Curr=5, Rate=0.5, Time=60000))
        + step(2, 7, values(Curr=5, Rate=0.5, Volt=42000, Stop_Curr=1, Stop_Rate=0.05))
        + end(3)
    )
    in_rate_mode = parse_step_file(step_file(steps, rate_type=105, mult_cap="7200"))  # 2 mAh
    assert (in_rate_mode.step(1).current, in_rate_mode.mult_cap_ah) == (pytest.approx(0.001), pytest.approx(0.002))
    assert in_rate_mode.step(2).stop_current == pytest.approx(0.0001)
    absolute = parse_step_file(step_file(steps, rate_type=103, mult_cap="7200"))
    assert (absolute.step(1).current, absolute.step(2).stop_current) == (pytest.approx(0.005), pytest.approx(0.001))
    sim = simulator(0.5)
    assert start(sim, write(tmp_path, step_file(steps, rate_type=105))) == ["ok"]
    sim.clock.advance(30)  # type: ignore[attr-defined]
    assert inquire(sim)["current"] == "0.001"


def test_rate_mode_without_multcap_is_refused(tmp_path: Path) -> None:
    text = step_file(step(1, 1, values(Curr=5, Rate=0.5, Time=60000)) + end(2), rate_type=105, mult_cap="0")
    sim = simulator()
    assert start(sim, write(tmp_path, text)) == ["false"]
    assert "RateType 105 makes the current Rate x MultCap, but Head_Info has no MultCap" in str(
        sim.last_start_errors["(21, 1, 1)"]
    )


# -- where the step file lives -----------------------------------------------------------------------------------


def test_the_channel_keeps_the_file_it_was_started_with(tmp_path: Path) -> None:
    original = step_file(step(1, 4, values(Time=60000)) + end(2))
    path = write(tmp_path, original)
    sim = simulator()
    assert start(sim, path) == ["ok"]
    Path(path).write_text(step_file(step(1, 1, values(Curr=9, Time=5000)) + end(2)), "utf-8")  # edited ...
    sim.clock.advance(30)  # type: ignore[attr-defined]
    Path(path).unlink()  # ... and gone
    sim.clock.advance(100)  # type: ignore[attr-defined]
    assert status(sim) == "finish"
    assert sim.step_file("21-1-1") == original.encode("utf-8")
    assert sim.channel("21-1-1").step_path == path
    assert [(r["stepid"], r["steptype"], r["steptime"]) for r in step_layer(sim)] == [("1", "rest", "60000")]


# -- logs --------------------------------------------------------------------------------------------------------


def test_a_stop_writes_102000_and_a_finish_100001(tmp_path: Path) -> None:
    path = write(tmp_path, step_file(step(1, 4, values(Time=60000)) + end(2)))
    sim = simulator()
    assert start(sim, path, chlids=(1, 2)) == ["ok", "ok"]
    sim.clock.advance(30)  # type: ignore[attr-defined]
    assert ack(sim, "stop", 1) == "ok"
    assert downloadlog(sim, 1) == [(1, LOG_START), (4, LOG_STOP)]  # records at 0, 10, 20 and the stop at 30 s
    assert inquire(sim, 1)["log_code"] == str(LOG_STOP)  # a stopped channel shows 102000 (Uni-Lab-OS captures)
    sim.clock.advance(100)  # type: ignore[attr-defined]
    assert downloadlog(sim, 2) == [(1, LOG_START), (7, LOG_FINISH)]


def test_a_protection_trip_writes_its_log_entry(tmp_path: Path) -> None:
    charge = step(1, 1, values(Curr=1, Stop_Volt=46000)) + end(2)
    sim = simulator(1.5)
    text = step_file(charge, protect='<Volt><Upper Value="40000" /></Volt>')
    assert start(sim, write(tmp_path, text), chlids=(1, 2)) == ["ok", "ok"]
    sim.clock.advance(1e5)  # type: ignore[attr-defined]
    assert status(sim, 1) == "protect"  # 4.0 V upper bound before the 4.6 V cut-off
    assert downloadlog(sim, 1)[-1] == (sim.channel("21-1-1").last_seqid, LOG_PROTECT)
    sim.trip("21-1-2")  # already tripped too: an injected trip on a protected channel is refused
    assert downloadlog(sim, 2)[-1][1] == LOG_PROTECT


# -- download paging and cycle numbers ---------------------------------------------------------------------------


def test_a_negative_start_position_returns_the_last_records(tmp_path: Path) -> None:
    sim = simulator()
    assert start(sim, write(tmp_path, step_file(step(1, 4, values(Time=600000)) + end(2)))) == ["ok"]
    sim.clock.advance(1000)  # type: ignore[attr-defined]  # 61 records
    last = download(sim, -9949, 1000)  # what aurora-neware sends for its last 10000 points of a 61-record test
    assert [int(r["seqid"]) for r in last] == list(range(1, 62))
    assert [int(r["seqid"]) for r in download(sim, -5, 10)] == list(range(52, 62))
    assert download(sim, 0, 0) == []


LOOP = (
    step(1, 4, values(Time=10000))
    + step(2, 5, other='<Other><Start_Step Value="1" /><Cycle_Count Value="3" /></Other>')
    + end(3)
)


@pytest.mark.parametrize(("base", "first"), [(0, 0), (1, 1)])
def test_download_numbers_cycles_from_its_switch_while_the_step_layer_counts_from_1(
    tmp_path: Path, base: int, first: int
) -> None:
    sim = simulator(download_cycle_base=base)
    assert start(sim, write(tmp_path, step_file(LOOP))) == ["ok"]
    sim.clock.advance(100)  # type: ignore[attr-defined]
    assert sorted({int(r["cycleid"]) for r in download(sim, 1)}) == [first, first + 1, first + 2]
    assert [r["cycleid"] for r in step_layer(sim)] == ["1", "2", "3"]


def test_the_default_is_the_field_captures_zero_based_download() -> None:
    assert BtsSimulator(devices=1, channels=1, clock=VirtualClock()).download_cycle_base == 0
    with pytest.raises(ValueError, match="download_cycle_base must be 0 or 1"):
        BtsSimulator(devices=1, channels=1, clock=VirtualClock(), download_cycle_base=2)


# -- pauses, reset -----------------------------------------------------------------------------------------------


def test_scheduled_pause_getpause_cancelpause_and_reset(tmp_path: Path) -> None:
    sim = simulator()
    path = write(tmp_path, step_file(LOOP))
    assert start(sim, path) == ["ok"]

    def getpause() -> tuple[str, str, str]:
        body = f"<cmd>getpause</cmd><getpause {CH.format(1)} />"
        element = ask(sim, body).find("list/getpause")
        return element.get("cycleid"), element.get("stepid"), element.text

    assert getpause() == ("-1", "-1", "false")
    assert ack(sim, "setpause", attrs='cycleid="3" stepid="1" timeout=""') == "ok"
    assert getpause() == ("3", "1", "true")
    assert ack(sim, "cancelpause") == "ok" and getpause() == ("-1", "-1", "false")
    assert ack(sim, "cancelpause") == "false"
    assert ack(sim, "setpause", attrs='cycleid="2" stepid="-1" timeout=""') == "ok"
    sim.clock.advance(100)  # type: ignore[attr-defined]
    assert status(sim) == "pause"  # at the start of cycle 2's first step, after cycle 1's 10 s
    assert [r.cycleid for r in sim.channel("21-1-1").step_rows] == [1]
    assert ack(sim, "continue") == "ok"
    sim.clock.advance(100)  # type: ignore[attr-defined]
    assert status(sim) == "finish" and [r.cycleid for r in sim.channel("21-1-1").step_rows] == [1, 2, 3]
    reset = f'<cmd>reset</cmd><reset {CH.format(1)} DBC_CAN="0">{path}</reset>'
    assert ask(sim, reset).find("list/reset").text == "false"


# -- a stop that finds the channel behind the clock --------------------------------------------------------------


def test_a_stop_while_behind_the_clock_is_carried_out_exactly_at_its_time() -> None:
    text = step_file(
        step(1, 4, values(Time=40000))
        + step(2, 1, values(Curr=1, Time=40000))
        + step(3, 4, values(Time=40000))
        + end(4)
    )
    plan = parse_step_file(text)
    check_plan(plan)
    spent = Budget(VirtualClock(), 0.0)  # a request that may compute nothing more

    def engine() -> ChannelEngine:
        e = ChannelEngine(lambda: LinearCell(q0=0.001))
        e.start(plan, "b", 1, 0.0)
        e.advance(10.0)
        return e

    behind, twin = engine(), engine()
    assert behind.stop(55.0, spent) and behind.status == "stop" and behind.lagging(55.0)
    # step 1 (computed before) is closed; step 2, during which the stop falls, is not computed yet
    assert behind.workstatus == "working" and [r.stepid for r in behind.step_rows] == [1]
    assert not behind.stop(56.0, spent)  # stopping a stopped channel: false, as on the real BTS
    behind.advance(1e6)  # caught up later (by a request or the worker) ...
    assert twin.stop(55.0)  # ... it matches a channel stopped without any lag
    for e in (behind, twin):
        assert e.workstatus == "stop" and not e.lagging(1e6)
    assert [(r.stepid, r.steptime) for r in behind.step_rows] == [(r.stepid, r.steptime) for r in twin.step_rows]
    assert [(r.stepid, r.steptime) for r in behind.step_rows] == [(1, 40.0), (2, 15.0)]
    for name in ("test_time", "volt", "curr", "cap"):
        a, b = behind.records.slice(0, 99), twin.records.slice(0, 99)
        assert np.array_equal(a[name], b[name]), name
    assert behind.log == twin.log and behind.log[-1][1] == LOG_STOP
