"""BiologicChannel against the simulated EClib on a dummy cell, under a virtual clock."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.base import CapabilityError, ChannelState, DriverError
from drivers.biologic.channel import BiologicChannel, BiologicConfig
from drivers.biologic.codes import BoardType
from drivers.biologic.errors import EClibError, EClibLoadError
from protocols.clock import VirtualClock
from protocols.program import (
    CaStep,
    CurrentStep,
    CvStep,
    EisStep,
    LoopStep,
    RecordRule,
    RestStep,
    SafetyLimits,
    StepProgram,
    Termination,
    walk,
)
from simulators.biologic import firmware as fw
from simulators.biologic.eclib import SimChannel, SimDevice, SimulatedEClib
from simulators.cells.dummy import DummyCell, DummyCellParams


def T(quantity, op, value, then="next"):
    return Termination(quantity=quantity, op=op, value=value, then=then)


def program(*steps, safety=None):
    numbered = [s.model_copy(update={"index": n}) for n, s in enumerate(steps, start=1)]
    return StepProgram(protocol="t", cell="c", steps=tuple(numbered), safety=safety or SafetyLimits())


EVERY_5S = RecordRule(every_s=5)
REST = RestStep(index=1, until=(T("time", ">=", 20),), record=EVERY_5S)
CHARGE = CurrentStep(index=1, kind="charge", current=1e-3, until=(T("time", ">=", 30),), record=EVERY_5S)
DISCHARGE = CurrentStep(index=1, kind="discharge", current=-2e-3, until=(T("time", ">=", 10),), record=EVERY_5S)


@pytest.fixture
def clock():
    return VirtualClock()


@pytest.fixture
def cell():
    return DummyCell(DummyCellParams(e0=1.0, r0=100.0, r1=1e-9, r2=0.0, c2=1e-9))  # 100 ohm on a 1 V source


@pytest.fixture
def sim(clock, cell):
    channels = {0: SimChannel(cell), 1: SimChannel(DummyCell(), zboard=False, max_i_range=9)}
    return SimulatedEClib(clock, {"10.0.0.5": SimDevice(5, channels)})


@pytest.fixture
def driver(sim, clock):
    return BiologicChannel(sim, BiologicConfig("10.0.0.5", 0), clock)


def harvest(driver, clock, step=7.0, limit=10_000):
    records, last = [], 0
    for _ in range(limit):
        clock.advance(step)
        new = driver.read_records(last)
        if new:
            records += new
            last = new[-1].seq
        if driver.status().state is ChannelState.FINISHED:
            return records
    raise AssertionError("never finished")


def test_connect_loads_the_kernel_and_reads_capabilities(driver, sim):
    caps = driver.connect()
    assert sim.devices["10.0.0.5"].channels[0].firmware == fw.FIRMWARE_KERNEL
    assert (caps.has_eis, int(caps.max_i_range), caps.max_bandwidth) == (True, 10, 7)


def test_a_program_runs_to_finished_with_step_cycle_and_capacity(driver, clock):
    prog = program(REST, CHARGE, DISCHARGE, LoopStep(index=1, target=2, count=2))
    handle = driver.start(prog, "cell-7")
    assert handle.barcode == "cell-7" and handle.channel == "10.0.0.5/0"
    records = harvest(driver, clock)
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    # per step: rest 5 rows (0..20 s every 5 s), charge 7 (0..30), discharge 3 (0..10)
    expected = [(e.step.index, e.cycle) for e in walk(prog)]
    seen = []
    for r in records:
        if not seen or seen[-1] != (r.step_index, r.cycle):
            seen.append((r.step_index, r.cycle))
    assert seen == expected  # the program's own cycle rule, via walk()
    assert [step for step, _ in seen] == [1, 2, 3, 2, 3]
    charge = [r for r in records if r.step_index == 2 and r.cycle == expected[3][1]]
    assert 200e-6 <= charge[0].step_time < 0.01  # first point one acquisition period (200 us) in, or later
    assert [r.step_time for r in charge[1:]] == pytest.approx([5, 10, 15, 20, 25, 30], abs=1e-4)
    assert charge[-1].capacity == pytest.approx(1e-3 * 30 / 3600, rel=1e-5)  # times carry a 24 us tick
    assert charge[-1].voltage == pytest.approx(1.1, abs=1e-6)
    assert charge[-1].energy == pytest.approx(1.1 * 1e-3 * 30 / 3600, rel=1e-5)
    discharge = [r for r in records if r.step_index == 3]
    assert discharge[-1].voltage == pytest.approx(0.8, abs=1e-6)
    assert discharge[-1].capacity == pytest.approx(-2e-3 * 10 / 3600, rel=1e-5)
    assert records[-1].test_time == pytest.approx(20 + 2 * 40, abs=1e-3)


def test_status_reads_starting_then_running_then_finished_only_once_drained(driver, clock):
    driver.start(program(REST), "b")
    first = driver.status()
    assert (first.state, first.message) == (ChannelState.RUNNING, "starting")  # the transient STOP
    clock.advance(5)
    assert driver.status().state is ChannelState.RUNNING
    clock.advance(100)
    pending = driver.status()
    assert pending.state is ChannelState.RUNNING and "data still to read" in pending.message
    assert len(driver.read_records(0)) == 5
    done = driver.status()
    assert done.state is ChannelState.FINISHED and done.last_seq == 5 and done.step_index == 1


def test_stop_leaves_the_channel_stopped_and_keeps_its_data(driver, sim, clock):
    driver.start(program(CHARGE.model_copy(update={"until": (T("time", ">=", 3600),)})), "b")
    driver.status()
    clock.advance(12.5)
    driver.stop()
    driver.stop()  # idempotent
    assert not sim.devices["10.0.0.5"].channels[0].running(clock.now())
    assert driver.status().state is ChannelState.STOPPED
    records = driver.read_records(0)
    assert records[-1].step_time == pytest.approx(12.5, abs=1e-4)
    assert driver.read_records(records[-1].seq) == []


def test_capability_problems_are_raised_before_anything_is_loaded(sim, clock):
    driver = BiologicChannel(sim, BiologicConfig("10.0.0.5", 1), clock)
    eis = EisStep(index=1, f_start=1e4, f_end=1, points_per_decade=5, amplitude=0.01)
    big = CurrentStep(index=1, kind="charge", current=0.5, until=(T("time", ">=", 1),))
    with pytest.raises(CapabilityError, match=r"step 1 \(eis\): impedance needs .*step 2 \(charge\): needs a 0.5 A"):
        driver.start(program(eis, big), "b")
    assert sim.devices["10.0.0.5"].channels[1].techniques == []


def test_a_busy_channel_is_refused_without_touching_it(driver, sim, clock):
    other = BiologicChannel(sim, BiologicConfig("10.0.0.5", 0), clock)
    other.start(program(REST), "first")
    other.status()
    with pytest.raises(DriverError, match="already running an experiment; stop it first"):
        driver.start(program(CHARGE), "second")
    assert [t.stem for t in sim.devices["10.0.0.5"].channels[0].techniques] == ["ocv"]
    status = driver.status()
    assert (status.state, status.message) == (ChannelState.RUNNING, "running an experiment this driver did not start")


def test_a_failed_start_leaves_the_channel_stopped(driver, sim, clock):
    sim.fail_next("BL_StartChannel", -200)
    with pytest.raises(EClibError, match=r"BL_StartChannel on channel 0 failed with ERR_COMM_COMMFAILED \(-200\)"):
        driver.start(program(REST), "b")
    assert not sim.devices["10.0.0.5"].channels[0].running(clock.now())


def test_a_refused_technique_names_the_file_and_the_fix(driver, sim):
    sim.fail_next("BL_LoadTechnique", -401)
    with pytest.raises(EClibError, match=r"channel 0 \(ocv.ecc\) failed with ERR_TECH_INCOMPATIBLEECC"):
        driver.start(program(REST), "b")


def test_eclab_firmware_on_the_channel_is_a_clear_error(sim, clock):
    sim.devices["10.0.0.5"].channels[0].firmware = fw.FIRMWARE_ECLAB
    driver = BiologicChannel(sim, BiologicConfig("10.0.0.5", 0), clock)
    with pytest.raises(EClibError, match=r"ERR_GEN_ECLAB_LOADED .*close EC-Lab and power-cycle"):
        driver.connect()


def test_unplugged_channel_and_unknown_address(sim, clock):
    with pytest.raises(DriverError, match="channel 4 is not plugged"):
        BiologicChannel(sim, BiologicConfig("10.0.0.5", 4), clock).connect()
    with pytest.raises(EClibError, match="ERR_COMM_CONNECTIONFAILED"):
        BiologicChannel(sim, BiologicConfig("10.9.9.9", 0), clock).connect()


def test_pause_is_refused_because_eclib_has_none(driver):
    with pytest.raises(CapabilityError, match="EClib has no pause"):
        driver.pause()


def test_reattach_after_a_crash_continues_numbering_and_loses_nothing(driver, sim, clock):
    prog = program(REST, CHARGE)
    handle = driver.start(prog, "b")
    driver.status()
    clock.advance(12)
    before = driver.read_records(0)
    assert [r.seq for r in before] == [1, 2, 3]  # rest at 0, 5, 10 s
    del driver  # the PC crashes; the instrument keeps running
    clock.advance(100)
    again = BiologicChannel(sim, BiologicConfig("10.0.0.5", 0), clock)
    again.attach(handle)
    after = again.read_records(3)
    assert [r.seq for r in after] == list(range(4, 4 + 2 + 7))
    assert [r.step_index for r in after] == [1, 1] + [2] * 7
    assert again.status().state is ChannelState.FINISHED


def test_attach_refuses_a_channel_holding_another_experiment(driver, sim, clock):
    handle = driver.start(program(REST, CHARGE), "b")
    other = BiologicChannel(sim, BiologicConfig("10.0.0.5", 0), clock)
    clock.advance(100)
    other.start(program(REST), "replacement")
    with pytest.raises(DriverError, match=r"holds 1 techniques, test .* loaded 2"):
        BiologicChannel(sim, BiologicConfig("10.0.0.5", 0), clock).attach(handle)


def test_the_instrument_stops_on_its_own_safety_test_and_the_driver_reports_it(driver, sim, clock):
    prog = program(CHARGE.model_copy(update={"until": (T("time", ">=", 3600),)}),
                   safety=SafetyLimits(voltage_max=1.05))  # fmt: skip
    driver.start(prog, "b")
    driver.status()
    clock.advance(10)
    assert driver.status().message == "finished on the instrument; data still to read"  # it stopped on its own
    (record,) = driver.read_records(0)
    # its first acquisition (1.1 V through 100 ohm at once), 200 us in, stamped in whole 24 us time-base ticks
    assert record.test_time == pytest.approx(math.floor(200 / 24) * float(np.float32(24e-6)), rel=1e-9)
    status = driver.status()
    assert status.state is ChannelState.PROTECTED
    stop = "safety limit: the instrument's own limit test Ewe > 1.05 V stopped the channel at 1.10000002 V"
    assert stop in status.message  # 1.1 V as the single the instrument recorded


def test_a_breach_only_polling_watches_stops_the_channel_as_protected(driver, sim, clock):
    # the step's own end goes on to the next step, so it has no exit left for the safety test: polling only
    prog = program(CHARGE.model_copy(update={"until": (T("time", ">=", 3600), T("voltage", ">=", 1.2))}),
                   safety=SafetyLimits(voltage_max=1.05))  # fmt: skip
    assert driver.compile(prog).polled() == {1: ("voltage_max",)}
    driver.start(prog, "b")
    driver.status()
    clock.advance(10)
    assert sim.devices["10.0.0.5"].channels[0].running(clock.now())
    driver.read_records(0)
    status = driver.status()
    assert status.state is ChannelState.PROTECTED
    assert "safety limit: voltage 1.1000 V above the safety limit 1.05 V" in status.message
    assert not sim.devices["10.0.0.5"].channels[0].running(clock.now())


def test_dc_polarisation_relative_to_ocv(clock):
    cell = DummyCell(DummyCellParams(e0=2.0, r0=10.0, r1=490.0, r2=0.0, c2=1e-9))
    sim = SimulatedEClib(clock, {"USB0": SimDevice(5, {0: SimChannel(cell)})})
    driver = BiologicChannel(sim, BiologicConfig("USB0", 0), clock)
    driver.start(program(CaStep(index=1, voltage=0.05, vs_ocv=True, until=(T("time", ">=", 60),),
                                record=RecordRule(every_s=10))), "b")  # fmt: skip
    records = harvest(driver, clock)
    assert [r.voltage for r in records] == pytest.approx([2.05] * 7, abs=1e-6)
    assert records[-1].current == pytest.approx(0.05 / 500, rel=1e-5)


class _NoSweeps(DummyCell):
    def run_step(self, step, **kw):
        if step.kind == "cv":
            raise ValueError("this cell cannot sweep")
        return super().run_step(step, **kw)


def test_a_technique_the_cell_cannot_run_ends_as_error_with_the_reason(clock):
    sim = SimulatedEClib(clock, {"USB0": SimDevice(5, {0: SimChannel(_NoSweeps())})})
    driver = BiologicChannel(sim, BiologicConfig("USB0", 0), clock)
    driver.start(program(REST, CvStep(index=1, scan_rate=1e-3, vertex_1=0.0, vertex_2=0.5)), "b")
    driver.status()  # the transient STOP poll
    clock.advance(100)
    assert len(driver.read_records(0)) == 5
    status = driver.status()
    assert status.state is ChannelState.ERROR
    assert status.message == "the instrument stopped the run: technique 1 failed: this cell cannot sweep"


def test_reattach_mid_loop_recovers_the_cycle_number(driver, sim, clock):
    prog = program(REST, CHARGE, DISCHARGE, LoopStep(index=1, target=2, count=3), REST)
    nominal = [(e.step.index, e.cycle) for e in walk(prog)]
    handle = driver.start(prog, "b")
    driver.status()
    clock.advance(20 + 40 + 15)  # into the charge of the second pass
    last = driver.read_records(0)[-1]
    assert (last.step_index, last.cycle) == nominal[3]
    again = BiologicChannel(sim, BiologicConfig("10.0.0.5", 0), clock)
    again.attach(handle)  # a new process: it only has the handle
    clock.advance(1000)
    after = again.read_records(last.seq)
    seen = []
    for r in after:
        if not seen or seen[-1] != (r.step_index, r.cycle):
            seen.append((r.step_index, r.cycle))
    assert seen == nominal[3:]
    assert after[0].step_time == pytest.approx(20.0, abs=1e-4)  # the rest of the interrupted charge


def test_unreadable_data_stop_the_channel(driver, sim, clock):
    driver.start(program(REST.model_copy(update={"until": (T("time", ">=", 3600),)})), "b")
    driver.status()
    clock.advance(10)
    driver._board = BoardType.PREMIUM  # as if the board type had been misreported: OCV rows have 4 words, not 3
    with pytest.raises(DriverError, match="on a PREMIUM board has 3 columns; the instrument sent 4"):
        driver.read_records(0)
    assert not sim.devices["10.0.0.5"].channels[0].running(clock.now())
    status = driver.status()
    assert status.state is ChannelState.PROTECTED and status.message.startswith("unreadable data, channel stopped")


def test_wrappers_of_one_library_share_one_lock(sim, clock):
    a = BiologicChannel(sim, BiologicConfig("10.0.0.5", 0), clock)
    b = BiologicChannel(sim, BiologicConfig("10.0.0.5", 1), clock)
    assert a.eclib._lock is b.eclib._lock


def test_a_rest_ending_on_voltage_runs_as_zero_current_with_a_limit(clock):
    cell = DummyCell(DummyCellParams(e0=0.0, r0=0.0, r1=1000.0, r2=0.0, c2=0.01))  # tau = 10 s
    sim = SimulatedEClib(clock, {"USB0": SimDevice(5, {0: SimChannel(cell)})})
    driver = BiologicChannel(sim, BiologicConfig("USB0", 0), clock)
    relax = RestStep(index=1, until=(T("voltage", "<=", 0.5),), record=RecordRule(every_s=1))
    driver.start(program(CHARGE, relax, REST), "b")
    records = harvest(driver, clock)
    rest = [r for r in records if r.step_index == 2]
    v_start = 1 - math.exp(-3)  # the capacitor after 30 s at 1 mA
    assert rest[0].voltage == pytest.approx(v_start * math.exp(-rest[0].step_time / 10), rel=1e-4)
    assert rest[-1].step_time == pytest.approx(10 * math.log(v_start / 0.5), abs=0.01)
    assert rest[-1].voltage <= 0.5 and all(r.current == 0.0 for r in rest)
    assert [r.step_index for r in records][-1] == 3  # and the program went on


@pytest.mark.parametrize(("board", "kernel"), [(fw.ESSENTIAL, "kernel.bin"), (fw.PREMIUM, "kernel4.bin"),
                                               (fw.DIGICORE, "kernel5.bin")])  # fmt: skip
def test_firmware_files_follow_the_board_type(clock, board, kernel):
    """The simulated firmware accepts the kernel the driver picks for each board (why kernel5.bin for DIGICORE:
    ``drivers.biologic.codes.FIRMWARE_FILES``) and refuses another one."""
    sim = SimulatedEClib(clock, {"USB0": SimDevice(20, {0: SimChannel(DummyCell(), board=board)})})
    BiologicChannel(sim, BiologicConfig("USB0", 0), clock).connect()
    assert sim.devices["USB0"].channels[0].firmware == fw.FIRMWARE_KERNEL
    wrong = SimulatedEClib(clock, {"USB0": SimDevice(20, {0: SimChannel(DummyCell(), board=board)})})
    other = "kernel.bin" if kernel == "kernel4.bin" else "kernel4.bin"  # a kernel built for another board
    with pytest.raises(EClibError, match=r"BL_LoadFirmware on channel 0 failed with ERR_FIRM_FIRMINVALIDFILE"):
        BiologicChannel(wrong, BiologicConfig("USB0", 0, kernel_file=other), clock).connect()


def test_a_load_the_firmware_refuses_in_its_messages_is_an_error(driver, sim, clock):
    original = sim.BL_LoadTechnique

    def accepted_but_refused(*args):
        code = original(*args)
        sim.devices["10.0.0.5"].channels[0].messages.append("cannot load experiment after make")
        return code

    sim.BL_LoadTechnique = accepted_but_refused
    with pytest.raises(DriverError, match=r"refused technique 0 \(OCV, step 1\): cannot load experiment after make"):
        driver.start(program(REST), "b")
    assert not sim.devices["10.0.0.5"].channels[0].running(clock.now())


def test_from_dll_reports_a_dll_that_cannot_load(tmp_path):
    with pytest.raises(EClibLoadError, match=r"EClib not found at .*EClib64.dll; give the path of the EClib64.dll"):
        BiologicChannel.from_dll(tmp_path / "EClib64.dll", BiologicConfig("USB0", 0))


def test_a_safety_stop_that_did_not_take_is_never_reported_as_ended(driver, sim, clock, monkeypatch):
    """Safety first: the channel is PROTECTED (ended) only once the instrument reports STOP; until then the stop is
    sent again on every status and the channel reads as still running."""
    prog = program(CHARGE.model_copy(update={"until": (T("time", ">=", 3600), T("voltage", ">=", 1.2))}),
                   safety=SafetyLimits(voltage_max=1.05))  # fmt: skip
    driver.start(prog, "b")
    driver.status()
    clock.advance(10)
    real_stop = driver.eclib.stop_channel
    attempts: list[int] = []

    def lost_stop(device, channel):  # the stop is lost on the way twice, then reaches the instrument
        attempts.append(channel)
        if len(attempts) <= 2:
            raise DriverError("BL_StopChannel: no reply")
        return real_stop(device, channel)

    monkeypatch.setattr(driver.eclib, "stop_channel", lost_stop)
    driver.read_records(0)  # finds the breach, tries to stop: lost
    channel = sim.devices["10.0.0.5"].channels[0]
    status = driver.status()  # stop sent again: lost again
    assert channel.running(clock.now())
    assert status.state is ChannelState.RUNNING and "not yet confirmed by the instrument" in status.message
    assert driver.status().state is ChannelState.RUNNING  # this status's stop reached it; STOP shows next time
    assert not channel.running(clock.now())
    status = driver.status()
    assert status.state is ChannelState.PROTECTED and len(attempts) == 3
    assert "safety limit: voltage 1.1000 V above the safety limit 1.05 V" in status.message
