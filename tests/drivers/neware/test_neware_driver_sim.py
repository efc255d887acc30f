"""The Neware driver against the simulated BTS on loopback, with an exact stand-in cell and a VirtualClock.

These check the driver's bookkeeping (seq, test time, step mapping, cycles, signs), control (pause, continue,
stop, protection) and robustness (re-attach, dropped connections, garbled replies) against arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from neware_harness import Harness, assert_real_time_grid, drain, run_to_end

from drivers.base import CapabilityError, ChannelState, DriverError, TestGone
from drivers.neware.address import ChannelAddress
from drivers.neware.channel import NewareChannel, poll_statuses
from drivers.neware.errors import NewareProtocolError
from protocols.clock import VirtualClock
from protocols.program import (
    Action,
    Comparison,
    CurrentStep,
    EisStep,
    LoopStep,
    Quantity,
    RecordRule,
    RestStep,
    SafetyLimits,
    StepProgram,
    Termination,
    walk,
)
from simulators.neware import BtsSimulator, Fault
from tests.fakes.standin_cell import LinearCell


def _t(quantity: str, op: str, value: float) -> Termination:
    return Termination(quantity=Quantity(quantity), op=Comparison(op), value=value)


CYCLING = StepProgram(
    protocol="linear-cycling",
    cell="linear",
    safety=SafetyLimits(voltage_min=2.5, voltage_max=4.5, current_max=0.01),
    record=RecordRule(every_s=30.0),
    steps=(
        RestStep(index=1, until=(_t("time", ">=", 600.0),)),
        CurrentStep(index=2, kind="charge", current=0.001, until=(_t("voltage", ">=", 4.1),)),
        CurrentStep(index=3, kind="discharge", current=-0.002, until=(_t("voltage", "<=", 3.1),)),
        LoopStep(index=4, target=2, count=3),
        RestStep(index=5, until=(_t("time", ">=", 300.0),)),
    ),
)


@pytest.fixture
def harness(tmp_path: Path):
    clock = VirtualClock()
    sim = BtsSimulator(devices=1, channels=2, clock=clock, model_factory=lambda key: LinearCell(q0=0.001))
    with sim:
        yield Harness(clock=clock, port=sim.port, step_dir=tmp_path), sim


def _step_instances(records):
    """(step_index, cycle, first, last) per executed step, split where step_time restarts."""
    out = []
    for r in records:
        if out and out[-1][0] == r.step_index and r.step_time >= out[-1][3].step_time:
            out[-1][3] = r
        else:
            out.append([r.step_index, r.cycle, r, r])
    return out


def test_a_cycling_program_runs_end_to_end_with_consistent_data(harness) -> None:
    h, sim = harness
    channel = h.channel()
    handle = channel.start(CYCLING, "cell-01")
    assert (handle.channel, handle.test_id, handle.barcode) == ("21-1-1", "1", "cell-01")
    assert channel.status().state is ChannelState.RUNNING
    records = run_to_end(channel, h.clock, poll_s=1800.0)
    assert channel.status().state is ChannelState.FINISHED
    assert [r.seq for r in records] == list(range(1, sim.channel("21-1-1").last_seqid + 1))
    times = np.array([r.test_time for r in records])
    assert_real_time_grid(records, every_s=30.0)  # a step's first record repeats the test time of the one before
    steps = _step_instances(records)
    nominal = [(e.step.index, e.cycle) for e in walk(CYCLING)]
    # the program's rule: the rest before the loop passes no charge and belongs to the first pass, each pass is a
    # cycle, and the rest after the loop is one of its own
    assert [(s[0], s[1]) for s in steps] == nominal == [(1, 1), (2, 1), (3, 1), (2, 2), (3, 2), (2, 3), (3, 3), (5, 4)]
    # the BTS's own loop counter (as the simulator reports it natively) counts the same here; the driver still maps
    # it through the program, as the two differ for other shapes (a lithiation before a loop)
    assert [row.cycleid for row in sim.channel("21-1-1").step_rows] == [1, 1, 1, 2, 2, 3, 3, 4]
    # LinearCell arithmetic: 3.0 V + 1.2 V * q / 2 mAh, R = 10 ohm, q0 = 1 mAh
    charge_end_q = (4.1 - 0.001 * 10 - 3.0) / 600  # Ah where OCV + IR reaches 4.1 V
    discharge_end_q = (3.1 + 0.002 * 10 - 3.0) / 600
    assert steps[1][3].capacity == pytest.approx(charge_end_q - 0.001, rel=1e-3)
    for charge, discharge in zip(steps[3:7:2], steps[4:7:2], strict=True):
        assert charge[3].capacity == pytest.approx(charge_end_q - discharge_end_q, rel=1e-3)
        assert discharge[3].capacity == pytest.approx(-(charge_end_q - discharge_end_q), rel=1e-3)
        assert charge[3].voltage == pytest.approx(4.1, abs=1e-3)
        assert discharge[3].voltage == pytest.approx(3.1, abs=1e-3)
    for step in steps[1:7]:  # capacity equals the integral of the recorded current over step time
        chunk = [r for r in records if step[2].seq <= r.seq <= step[3].seq]
        # the first record is taken at the switch (step time 0.0 s); the current is held from the switch on
        integral = np.trapezoid([r.current for r in chunk], [r.step_time for r in chunk]) / 3600
        assert step[3].capacity == pytest.approx(integral, rel=1e-6)
        assert step[2].step_time == 0.0
        assert step[3].test_time == pytest.approx(step[2].test_time + step[3].step_time, abs=1e-9)
    # the charge steps run at +1 mA and discharge at -2 mA; records are 30 s apart inside a step
    assert {round(r.current, 9) for r in records if r.step_index == 2} == {0.001}
    assert {round(r.current, 9) for r in records if r.step_index == 3} == {-0.002}
    assert records[1].step_time == pytest.approx(30.0)
    assert steps[-1][3].test_time == pytest.approx(times[-1])


def test_a_conditional_jump_runs_on_the_bts_and_the_driver_follows_it(harness) -> None:
    """The discharge's time condition (a step-file Cnd) fires after 100 s, long before 3.1 V: the BTS jumps out of
    the loop to the last rest, and the records carry the program's cycles along the path it took."""
    h, _ = harness
    discharge = CYCLING.steps[2].model_copy(update={"until": (
        *CYCLING.steps[2].until, Termination(quantity=Quantity.TIME, op=Comparison.GE, value=100.0,
                                             then=Action.JUMP, target=5))})
    program = CYCLING.model_copy(update={"steps": (*CYCLING.steps[:2], discharge, *CYCLING.steps[3:])})
    channel = h.channel()
    channel.start(program, "cell-jump")
    records = run_to_end(channel, h.clock, poll_s=1800.0)
    assert channel.status().state is ChannelState.FINISHED
    steps = _step_instances(records)
    assert [(s[0], s[1]) for s in steps] == [(1, 1), (2, 1), (3, 1), (5, 2)]  # not the nominal path
    assert steps[2][3].step_time == pytest.approx(100.0) and steps[2][3].voltage > 3.1
    assert steps[2][3].capacity == pytest.approx(-0.002 * 100 / 3600, rel=1e-6)
    assert_real_time_grid(records, every_s=30.0)


def test_refusals_happen_before_anything_is_sent(harness) -> None:
    h, sim = harness
    channel = h.channel()
    eis = StepProgram(
        protocol="eis",
        cell="c",
        steps=(EisStep(index=1, f_start=1e4, f_end=0.1, points_per_decade=5, amplitude=0.01),),
    )
    with pytest.raises(CapabilityError, match=r"step 1 \(eis\): a Neware channel cannot measure impedance"):
        channel.start(eis, "x")
    too_much = CYCLING.model_copy(
        update={"steps": (CurrentStep(index=1, kind="charge", current=0.05, until=(_t("voltage", ">=", 4.1),)),)}
    )
    with pytest.raises(CapabilityError, match="current 50 mA exceeds the channel's maximum 20 mA"):
        channel.check(too_much)
    assert sim.channel("21-1-1").testid == 0 and list(h.step_dir.iterdir()) == []


def test_pause_continue_and_stop(harness) -> None:
    h, sim = harness
    channel = h.channel()
    channel.start(CYCLING, "cell-02")
    h.clock.advance(1200.0)  # 600 s rest, then 600 s into the first charge
    channel.pause()
    assert channel.status().state is ChannelState.PAUSED
    first = drain(channel, 0)
    h.clock.advance(5000.0)  # paused: no new records, no test time
    assert drain(channel, first[-1].seq) == []
    channel.resume()
    h.clock.advance(600.0)
    status = channel.status()
    assert (status.state, status.step_index, status.cycle) == (ChannelState.RUNNING, 2, 1)  # first pass
    assert status.test_time == pytest.approx(1800.0, abs=0.1)
    more = drain(channel, first[-1].seq)
    charge = [r for r in first + more if r.step_index == 2]
    assert charge[-1].step_time == pytest.approx(1200.0)
    assert charge[-1].capacity == pytest.approx(0.001 * 1200 / 3600, rel=1e-6)  # pause took no charge
    channel.stop()
    channel.stop()  # idempotent
    assert channel.status().state is ChannelState.STOPPED
    assert sim.channel("21-1-1").workstatus == "stop"


def test_reattach_continues_the_download_without_gaps(harness) -> None:
    h, _ = harness
    first = h.channel()
    handle = first.start(CYCLING, "cell-03")
    h.clock.advance(20_000.0)
    before = drain(first, 0)
    # a new process: a new client and driver, knowing only the stored handle and the last stored record
    cut = len(before) // 2 + 7
    second = h.channel()
    second.attach(handle)
    again = drain(second, before[cut - 1].seq)
    assert again == before[cut:]
    h.clock.advance(20_000.0)
    assert drain(second, before[-1].seq)[0].seq == before[-1].seq + 1
    other = h.channel()
    bad = type(handle)(channel=handle.channel, test_id="99", barcode=handle.barcode, extra=handle.extra)
    with pytest.raises(TestGone, match="no longer holds test 99: channel 21-1-1 now holds test 1"):
        other.attach(bad)
    # by barcode alone, as after a crash that lost the test id: the channel's current test is adopted
    by_barcode = type(handle)(channel="21-1-1", test_id="", barcode="cell-03", extra=handle.extra)
    other.attach(by_barcode)
    assert other.handle is not None and other.handle.test_id == "1"
    assert drain(other, before[cut - 1].seq)[: len(before) - cut] == before[cut:]
    with pytest.raises(DriverError, match="reports barcode 'cell-03', not 'cell-99'"):
        h.channel().attach(type(handle)(channel="21-1-1", test_id="0", barcode="cell-99"))


def test_a_dropped_connection_mid_download_loses_and_repeats_nothing(harness) -> None:
    h, sim = harness
    channel = h.channel()
    channel.start(CYCLING.model_copy(update={"record": RecordRule(every_s=5.0)}), "cell-04")
    h.clock.advance(40_000.0)
    sim.inject(Fault("cut", command="download", skip=1))
    sim.inject(Fault("drop", command="download", skip=3))
    records = drain(channel, 0)
    assert [r.seq for r in records] == list(range(1, sim.channel("21-1-1").last_seqid + 1))
    assert len(records) > 1000
    assert [kind for _, kind in sim.faults.applied] == ["cut", "drop"]
    assert channel.client.transport.reconnects == 2


def test_a_garbled_reply_is_retried_and_persistent_garbling_is_reported(harness) -> None:
    h, sim = harness
    channel = h.channel()
    channel.start(CYCLING, "cell-05")
    sim.inject(Fault("garble", command="inquire"))
    assert channel.status().state is ChannelState.RUNNING
    sim.inject(Fault("garble", command="inquire", times=3))
    with pytest.raises(NewareProtocolError, match=r"127\.0\.0\.1:\d+: the reply to 'inquire' is not valid XML"):
        channel.status()
    assert channel.status().state is ChannelState.RUNNING  # the link recovers once the server does


def test_a_slow_reply_times_out_and_is_retried_on_a_fresh_connection(harness) -> None:
    h, sim = harness
    channel = h.channel(timeout_s=0.2)
    sim.inject(Fault("delay", command="inquire", delay_s=0.6))
    assert channel.status().state is ChannelState.IDLE
    assert channel.client.transport.reconnects == 1


def test_a_protection_trip_shows_as_such(harness) -> None:
    h, sim = harness
    channel = h.channel()
    channel.start(CYCLING, "cell-06")
    h.clock.advance(3000.0)
    assert sim.trip("21-1-1", "over-temperature (injected)")
    status = channel.status()
    assert status.state is ChannelState.PROTECTED
    assert "protection" in status.message and "clearflag" in status.message
    assert status.current == 0.0
    channel.stop()  # idempotent on a protected channel: it carries no current
    channel.clear_protection()
    assert channel.status().state is ChannelState.STOPPED


def test_a_safety_limit_in_the_step_file_trips_protect(harness) -> None:
    h, _ = harness
    channel = h.channel()
    tight = CYCLING.model_copy(update={"safety": SafetyLimits(voltage_min=2.5, voltage_max=4.0)})
    channel.start(tight, "cell-07")
    records = run_to_end(channel, h.clock)
    assert channel.status().state is ChannelState.PROTECTED
    assert records[-1].step_index == 2 and records[-1].voltage == pytest.approx(4.0001, abs=5e-4)


def test_two_channels_started_apart_get_their_own_testids(harness) -> None:
    h, _ = harness
    a, b = h.channel("21-1-1"), h.channel("21-1-2")
    assert a.start(CYCLING, "a").test_id == "1"
    assert b.start(CYCLING, "b").test_id == "2"
    with pytest.raises(DriverError, match="is 'working'"):
        a.start(CYCLING, "again")


def test_virtual_time_only_moves_when_someone_sleeps(tmp_path: Path) -> None:
    clock = VirtualClock()
    with BtsSimulator(devices=1, channels=1, clock=clock, model_factory=lambda key: LinearCell()) as sim:
        channel = Harness(clock, sim.port, tmp_path).channel()
        channel.start(CYCLING, "still")
        # no time has passed: only the step's first record, taken at step time 0.0 s as the real BTS does
        assert [(r.seq, r.test_time, r.step_time) for r in drain(channel, 0)] == [(1, 0.0, 0.0)]
        assert channel.status().test_time == 0.0


def test_a_start_whose_reply_is_lost_is_adopted_not_left_unwatched(harness) -> None:
    h, sim = harness
    channel = h.channel()
    sim.inject(Fault("drop", command="start"))
    handle = channel.start(CYCLING, "cell-08")  # the BTS started it; only the reply was lost
    assert (handle.test_id, sim.channel("21-1-1").workstatus) == ("1", "working")
    assert channel.status().state is ChannelState.RUNNING


def test_many_channels_are_polled_in_two_requests(harness) -> None:
    h, sim = harness
    a = h.channel("21-1-1")
    b = NewareChannel(a.client, ChannelAddress.parse("21-1-2"), a.ranges, step_dir=h.step_dir)
    a.start(CYCLING, "a")
    h.clock.advance(700.0)
    before = len(sim.faults.applied)
    sim.inject(Fault("split", command="inquire", segment=50))  # a reply in many small TCP segments
    sim.inject(Fault("split", command="inquiredf", segment=50))
    first, second = poll_statuses([a, b])
    assert len(sim.faults.applied) == before + 2  # exactly one inquire and one inquiredf went out
    # 21 rest records (0..600 s every 30 s) + 4 charge records (0, 30, 60, 90 s)
    assert (first.state, first.step_index, first.cycle, first.last_seq) == (ChannelState.RUNNING, 2, 1, 25)
    assert (second.state, second.last_seq) == (ChannelState.IDLE, None)


def test_mislabelled_and_unrequested_channels_in_replies_are_handled(harness) -> None:
    h, sim = harness
    channel = h.channel("21-1-2")
    channel.start(CYCLING, "cell-09")
    sim.faults.mislabel_subdevid = True  # getchlstatus answers subdevid="1" whatever was asked
    sim.faults.extra_channel = True  # write replies carry a channel nobody asked about
    other = ChannelAddress(21, 3, 7)
    rows = channel.client.getchlstatus([ChannelAddress.parse("21-1-2"), other])
    assert [(r.address, r.workstatus) for r in rows] == [(ChannelAddress.parse("21-1-2"), "working"), (other, "false")]
    channel.pause()  # the ack list has an extra element; ours is found by address
    assert channel.status().state is ChannelState.PAUSED


def test_a_samples_second_run_is_told_from_its_first_by_the_test_id_before_start(harness) -> None:
    """The barcode is the sample's, on every run of it: a crash between sending start and storing the handle is
    settled by the test id the channel had before start, never by the barcode alone."""
    h, sim = harness
    channel = h.channel()
    first = channel.start(CYCLING, "S261130-AB2C")
    channel.stop()
    marker = h.channel().start_marker()
    assert marker == {"test_before": first.test_id}
    # the start never reached the BTS: the channel still holds the sample's first test, which is not ours
    assert h.channel().find_test(CYCLING, "S261130-AB2C", marker) is None
    assert h.channel().find_test(CYCLING, "S261130-AB2C").test_id == first.test_id  # the barcode alone would err
    second = h.channel().start(CYCLING, "S261130-AB2C")
    found = h.channel().find_test(CYCLING, "S261130-AB2C", marker)
    assert (found.test_id, second.test_id) == ("2", "2")
    assert sim.channel("21-1-1").barcode == "S261130-AB2C"
