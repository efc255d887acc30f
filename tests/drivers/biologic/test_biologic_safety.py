"""The protocol's safety limits inside the instrument: compiled into the limit tests, and honoured by the simulated
firmware at its own acquisition rate whatever the station's poll period."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.base import ChannelState, Record
from drivers.biologic.channel import BiologicChannel, BiologicConfig
from drivers.biologic.codes import ParamType
from drivers.biologic.compiler import ChannelCapabilities, compile_program
from drivers.biologic.limits import Enforcement, LimitComparison, LimitTest, LimitVariable, plan_safety
from drivers.biologic.params import ParamValue
from drivers.biologic.records import RecordBuilder
from protocols.cells import load_cell_text
from protocols.loader import build_program
from protocols.program import CurrentStep, SafetyLimits, StepProgram, Termination
from simulators.biologic import firmware as fw
from simulators.biologic.eclib import SimChannel, SimDevice, SimulatedEClib
from simulators.biologic.runner import RunConfig
from simulators.cells.dummy import DummyCell, DummyCellParams

CELL = load_cell_text("name: test-cell\ndiameter: 12 mm\n")
WINDOW = """\
safety:
  voltage: [2.5 V, 4.0 V]
  current: 5 mA
record: {every: 10 s}
"""
EVERY_KIND = WINDOW + (
    """\
steps:
  - rest: 10 min
  - charge: {current: 1 mA, until: {time: 1 h}}
  - discharge: {current: 1 mA, until: {voltage: 3.0 V}}
  - ca: {voltage: 50 mV, vs: ocv, until: {time: 10 min}}
  - hold: {voltage: 3.9 V, until: {current: 0.1 mA, time: 1 h}}
  - lsv: {scan_rate: 1 mV/s, from: 3.0 V, to: 3.9 V}
  - eis: {from: 10 kHz, to: 1 Hz, points_per_decade: 5, amplitude: 10 mV}
  - cv: {scan_rate: 1 mV/s, vertices: [3.0 V, 3.9 V]}
"""
)
# reference 3.9: Ewe > x -> 5, Ewe < x -> 1, I > x -> 101, I < x -> 97 (add 2 for AND)
EWE_ABOVE_4, EWE_BELOW_2_5 = (5, 4.0), (1, 2.5)
I_ABOVE_5MA, I_BELOW_MINUS_5MA = (101, 0.005), (97, -0.005)
INACTIVE = (0, 0.0)
NEXT_TECHNIQUE, STOP = 1, 2


def build(tmp_path, text: str, name: str = "p.yaml") -> StepProgram:
    path = tmp_path / name
    path.write_text("protocol: safety-test\ndescription: safety limits in the instrument\n" + text)
    return build_program(str(path), CELL)


def loaded_tests(technique, entry: int = 0) -> tuple[list[tuple[int, float]], int]:
    v = technique.values
    return [(v[f"Test{n}_Config"][entry], v[f"Test{n}_Value"][entry]) for n in (1, 2, 3)], v["Exit_Cond"][entry]


def test_the_safety_window_rides_in_every_technique_that_takes_limit_tests(tmp_path):
    compiled = compile_program(build(tmp_path, EVERY_KIND), ChannelCapabilities())
    by_step = {t.step_index: t for t in compiled.techniques}
    assert [by_step[n].spec.name for n in range(1, 9)] == [
        "OCV", "CPLIMIT", "CPLIMIT", "CALIMIT", "CALIMIT", "VSCANLIMIT", "PEIS", "CV"]  # fmt: skip
    # a timed charge: both voltage limits stop the channel; its current is the technique's own set point
    assert loaded_tests(by_step[2]) == ([EWE_ABOVE_4, EWE_BELOW_2_5, INACTIVE], STOP)
    # a CA relative to the OCV: the current pair first, then the limit its +50 mV heads for; no slot is left
    assert loaded_tests(by_step[4]) == ([I_ABOVE_5MA, I_BELOW_MINUS_5MA, EWE_ABOVE_4], STOP)
    # a sweep between known points: the current pair on both entries
    for entry in (0, 1):
        assert loaded_tests(by_step[6], entry) == ([I_ABOVE_5MA, I_BELOW_MINUS_5MA, INACTIVE], STOP)
    # own ends that go on to the next step keep their exit, and no safety test rides with them (one exit per step)
    assert loaded_tests(by_step[3]) == ([(1, 3.0), INACTIVE, INACTIVE], NEXT_TECHNIQUE)
    assert loaded_tests(by_step[5]) == ([(97, 1e-4), (103, -1e-4), INACTIVE], NEXT_TECHNIQUE)
    # and they reach the DLL through the setter of each label's declared type
    params = set(by_step[2].params)
    int32, single = ParamType.INT32, ParamType.SINGLE
    assert {ParamValue("Test1_Config", int32, 5, 0), ParamValue("Test1_Value", single, 4.0, 0),
            ParamValue("Test2_Config", int32, 1, 0), ParamValue("Test2_Value", single, 2.5, 0),
            ParamValue("Exit_Cond", int32, 2, 0)} <= params  # fmt: skip


def test_the_compile_result_names_what_relies_on_polling(tmp_path):
    compiled = compile_program(build(tmp_path, EVERY_KIND), ChannelCapabilities())
    assert compiled.polled() == {
        1: ("voltage_max", "voltage_min"),  # OCV takes no limit tests
        3: ("voltage_max",),  # its own 3.0 V end goes on; its falling end covers voltage_min
        4: ("voltage_min",),  # three tests taken
        5: ("current_max",),  # its own |I| end goes on
        7: ("voltage_max", "voltage_min", "current_max"),  # PEIS takes no limit tests
        8: ("current_max",),  # CV takes no limit tests; its vertices bound the voltage
    }
    coverage = {(s.step_index, c.limit): c for s in compiled.safety for c in s.coverage}
    assert coverage[1, "voltage_max"].reason.startswith("OCV has no limit tests (reference 3.1)")
    assert coverage[7, "current_max"].reason == "PEIS has no limit tests (reference 3.5)"
    assert coverage[8, "current_max"].reason == "CV has no limit tests (reference 3.7)"
    assert "one Exit_Cond for all its limit tests (reference 3.4)" in coverage[3, "voltage_max"].reason
    assert coverage[3, "voltage_min"].enforcement is Enforcement.STEP_LIMIT
    assert coverage[2, "current_max"].enforcement is Enforcement.CONTROL
    assert coverage[6, "voltage_max"].enforcement is Enforcement.CONTROL
    assert coverage[2, "voltage_max"].enforcement is Enforcement.INSTRUMENT


def test_an_end_that_stops_the_run_shares_the_stop_exit_with_the_safety_tests(tmp_path):
    program = build(tmp_path, WINDOW + "steps:\n  - charge: {current: 1 mA, until: [{voltage: 3.9 V, then: end}]}\n")
    (technique,) = compile_program(program, ChannelCapabilities()).techniques
    # its own rising end below 4.0 V reaches first, so only the lower limit needs a test of its own
    assert loaded_tests(technique) == ([(5, 3.9), EWE_BELOW_2_5, INACTIVE], STOP)


def test_other_limits_have_no_test_variable_and_rely_on_polling():
    step = CurrentStep(index=1, kind="charge", current=1e-3, until=(Termination(quantity="time", op=">=", value=60),))
    safety = SafetyLimits(temperature_max=45.0, capacity_max=1e-3, step_duration_max=7200.0, run_duration_max=1e5)
    plan = plan_safety(StepProgram(protocol="t", cell="c", steps=(step,), safety=safety))[1]
    assert plan.tests == () and plan.polled == ("temperature_max", "capacity_max", "step_duration_max",
                                                "run_duration_max")  # fmt: skip


def test_a_set_current_beyond_the_safety_current_is_caught_at_the_first_acquisition():
    # the binder refuses this protocol; a hand-made program still cannot run past the limit
    step = CurrentStep(index=1, kind="discharge", current=-8e-3, until=(Termination(quantity="time", op=">=",
                       value=60),))  # fmt: skip
    program = StepProgram(protocol="t", cell="c", steps=(step,), safety=SafetyLimits(current_max=5e-3))
    (technique,) = compile_program(program, ChannelCapabilities()).techniques
    assert loaded_tests(technique) == ([I_BELOW_MINUS_5MA, INACTIVE, INACTIVE], STOP)


def test_a_record_breaks_an_instrument_test_exactly_as_the_instrument_compares():
    above = LimitTest(LimitVariable.EWE, LimitComparison.GT, 4.2)
    four_two = float(np.float32(4.2))  # 4.19999980926..., the single the instrument holds and records
    assert not above.holds(four_two, 0.0)
    assert above.holds(float(np.nextafter(np.float32(4.2), np.float32(5))), 0.0)
    current = LimitTest(LimitVariable.I, LimitComparison.GT, 1e-3)
    assert not current.holds(float(np.float32(1e-3)), 0.0) and current.holds(0.0, 0.0) is False


def test_a_reattached_record_builder_knows_the_tests_the_compiler_loaded(tmp_path):
    program = build(tmp_path, EVERY_KIND)
    compiled = compile_program(program, ChannelCapabilities())
    builder = RecordBuilder(StepProgram.from_json(program.to_json()), [0] * 8, reattached=True)
    assert builder.instrument_tests == {s.step_index: s.tests for s in compiled.safety if s.tests}


# -- end to end: a constant-current charge that passes 4.0 V between two polls ---------------------------------

E0, R0, R1, C2 = 3.5, 10.0, 1000.0, 0.1  # V, ohm, ohm, F: tau = R1 * C2 = 100 s, heading for 4.51 V at 1 mA
CURRENT = 1e-3
LIMIT = 4.0
POLL_S = 1800.0  # a station poll far longer than the ~67 s the cell takes to reach the limit
CHARGE = WINDOW + "steps:\n  - charge: {current: 1 mA, until: {time: 1 h}}\n"


@pytest.mark.parametrize("board", [fw.ESSENTIAL, fw.PREMIUM, fw.DIGICORE])
def test_the_instrument_stops_a_charge_at_the_safety_limit_within_one_acquisition(tmp_path, board):
    from protocols.clock import VirtualClock

    program = build(tmp_path, CHARGE)
    clock = VirtualClock()
    model = DummyCell(DummyCellParams(e0=E0, r0=R0, r1=R1, r2=0.0, c2=C2))
    channel = SimChannel(model, board=board, max_bandwidth=7 if board == fw.ESSENTIAL else 9)
    sim = SimulatedEClib(clock, {"USB0": SimDevice(5 if board == fw.ESSENTIAL else 20, {0: channel})})
    driver = BiologicChannel(sim, BiologicConfig("USB0", 0), clock)
    assert driver.compile(program).techniques[0].spec.name == "CPLIMIT"
    driver.start(program, "safety")
    records: list[Record] = []
    for _ in range(3):
        clock.advance(POLL_S)
        records += driver.read_records(records[-1].seq if records else 0)
        status = driver.status()
        if status.state is not ChannelState.RUNNING:
            break
    assert status.state is ChannelState.PROTECTED
    assert "the instrument's own limit test Ewe > 4 V stopped the channel" in status.message

    # The circuit: V = E0 + I R0 + vc, dvc/dt = (I R1 - vc) / (R1 C2). At the limit vc* = LIMIT - E0 - I R0, and
    # dV/dt only falls as vc rises, so one acquisition past the crossing adds at most dV/dt(vc*) * sample period.
    sample_period = RunConfig(board, channel.timebase).sample_period
    vc_limit = LIMIT - E0 - CURRENT * R0
    one_acquisition = (CURRENT * R1 - vc_limit) / (R1 * C2) * sample_period
    # The firmware compares and stores singles: the acquisition before the stop read at most 4.0 V as a single
    # (at most half a unit in the last place above it), and the stored word rounds by at most another half.
    ulp = float(np.spacing(np.float32(LIMIT)))
    voltages = np.array([r.voltage for r in records])
    assert voltages.max() - LIMIT <= one_acquisition + ulp
    assert voltages[-1] == voltages.max() > LIMIT  # the stop is the acquisition that broke the limit
    # and it came at the acquisition after the crossing, long before any poll (the driver's own stop, its
    # fallback, could only have come at a poll, POLL_S or later)
    crossing = -R1 * C2 * math.log(1 - vc_limit / (CURRENT * R1))
    timebase = float(np.float32(channel.timebase))  # record times count whole ticks of it
    assert crossing - timebase <= records[-1].test_time <= crossing + sample_period
    assert records[-1].step_index == 1 and len(records) == math.floor(crossing / 10) + 2  # every 10 s + the stop
