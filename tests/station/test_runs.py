"""The supervisor and the store with a scripted channel: states, records, safety, busy channels, attach."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from protocols.cells import load_cell
from protocols.clock import VirtualClock
from protocols.loader import load_protocol_text
from station.runs import RunError, RunManager
from station.store import ChannelBusy, Store, StoreError

from .fakes import ScriptedChannel, cc_records

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and on PostgreSQL

PROTOCOL = """
protocol: one-step
safety: {voltage: [2.5 V, 4.4 V], current: 5 mA}
steps:
  - Charge at 1 mA for 1 hour
"""


def setup(tmp_path, records, protocol=PROTOCOL):
    clock = VirtualClock()
    store = Store(tmp_path)
    manager = RunManager(store, clock, page=100)
    driver = ScriptedChannel(clock, records)
    loaded = load_protocol_text(protocol, "p.yaml")
    run_id = manager.create(loaded, load_cell("predeposited-ncm622"), "fake/1", driver,
                            instrument={"kind": "fake"}, dry_run=True)
    return clock, store, manager, driver, run_id


def states(store, run_id):
    return [e.message.split(":")[0] for e in store.events(run_id) if e.kind == "state"]


def test_a_run_goes_through_every_state_and_keeps_every_record(tmp_path):
    _clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    manager.start(run_id)
    manager.supervise([run_id], poll_seconds=60)
    assert states(store, run_id) == ["created", "validated", "starting", "started", "running", "finished"]
    records = store.records(run_id)
    assert len(records) == 361 and np.all(np.diff(records["seq"]) == 1)
    # capacity is the integral of I dt
    assert records["capacity"][-1] == pytest.approx(np.trapezoid(records["current"], records["test_time"]) / 3600)
    assert driver.calls == ["check", "start"]
    assert store.run(run_id).last_seq == 361


def test_a_safety_breach_stops_the_channel_within_one_poll_and_is_recorded(tmp_path):
    records = cc_records(1e-3, 3600, v0=4.3, dv_ds=1e-4)  # crosses 4.4 V at t = 1000 s
    clock, store, manager, driver, run_id = setup(tmp_path, records)
    manager.start(run_id)
    manager.supervise([run_id], poll_seconds=300)
    run = store.run(run_id)
    assert run.state == "stopped" and run.message.startswith("safety: record 102: voltage 4.4010 V")
    assert "stop" in driver.calls
    alarms = [e for e in store.events(run_id) if e.kind == "alarm"]
    assert alarms and "safety limit broken" in alarms[0].message
    assert any(e.kind == "safe-state" for e in store.events(run_id))
    assert clock.now() <= 1200  # the poll after the breach at 1000 s (polls every 300 s)


def test_a_second_run_on_a_busy_channel_is_refused(tmp_path):
    _clock, _store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    manager.start(run_id)
    loaded = load_protocol_text(PROTOCOL, "p.yaml")
    with pytest.raises(ChannelBusy, match="channel fake/1 already has run"):
        manager.create(loaded, load_cell("predeposited-ncm622"), "fake/1", driver, instrument={}, dry_run=True)


def test_a_program_the_channel_cannot_run_fails_before_start(tmp_path):
    clock = VirtualClock()
    store = Store(tmp_path)
    driver = ScriptedChannel(clock, cc_records(1e-3, 60))
    driver.refuse = "step 1: current 1 mA above the channel range"
    with pytest.raises(RunError, match="cannot run this program: step 1"):
        RunManager(store, clock).create(load_protocol_text(PROTOCOL, "p.yaml"), load_cell("predeposited-ncm622"),
                                        "fake/1", driver, instrument={}, dry_run=True)
    (run,) = store.runs()
    assert run.state == "failed" and "start" not in driver.calls


def test_attach_after_a_crash_catches_up_without_gap_or_duplicate(tmp_path):
    clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    manager.start(run_id)
    manager.supervise([run_id], poll_seconds=60, should_stop=lambda: clock.now() > 1500)
    stored_before = store.run(run_id).last_seq
    assert 100 < stored_before < 361
    # the station process dies (the OS releases its run lease); a new one opens the store and attaches
    manager.close()
    store2 = Store(tmp_path)
    manager2 = RunManager(store2, clock, page=50)
    clock.advance(900)
    manager2.attach(run_id, driver)
    manager2.supervise([run_id], poll_seconds=60)
    seqs = store2.records(run_id)["seq"]
    assert list(seqs) == list(range(1, 362))
    assert store2.run(run_id).state == "finished"
    assert "attach" in driver.calls


def test_pause_continue_and_stop_are_operator_events(tmp_path):
    _clock, store, manager, _driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    manager.start(run_id)
    manager.pause(run_id)
    manager.resume(run_id)
    manager.stop(run_id)
    assert states(store, run_id)[-3:] == ["paused", "running", "stopped"]
    assert [e.message for e in store.events(run_id) if e.kind == "operator"] == ["pause", "continue", "stop"]
    with pytest.raises(RunError, match="cannot become running"):
        manager.resume(run_id)


def test_an_unusable_data_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    with pytest.raises(StoreError, match=r"cannot create the data directory .*not-a-dir/data: .*choose another"):
        Store(blocker / "data")


class _SharedLink(ScriptedChannel):
    """Channels on one link that report their status together, as a BTS does for all its channels."""

    rounds: ClassVar[list[int]] = []

    def __init__(self, clock, records, channel):
        super().__init__(clock, records, channel)
        self.reads = 0

    def batch_key(self):
        return "bts"

    @classmethod
    def statuses(cls, drivers):
        cls.rounds.append(len(drivers))
        return [d.status() for d in drivers]

    def read_records(self, after_seq, limit=1000):
        self.reads += 1
        return super().read_records(after_seq, limit)


def test_channels_on_one_link_are_polled_together_and_idle_ones_are_not_downloaded(tmp_path):
    clock, store = VirtualClock(), Store(tmp_path)
    manager = RunManager(store, clock)
    _SharedLink.rounds = []
    busy = _SharedLink(clock, cc_records(1e-3, 3600, every=10.0), "fake/1")  # a record every 10 s
    quiet = _SharedLink(clock, cc_records(1e-3, 3600, every=1200.0), "fake/2")  # one every 20 min
    run_ids = []
    for n, driver in enumerate((busy, quiet), start=1):
        loaded = load_protocol_text(PROTOCOL, "p.yaml")
        run_ids.append(manager.create(loaded, load_cell("predeposited-ncm622"), f"fake/{n}", driver,
                                      instrument={"kind": "fake"}, dry_run=True))
        manager.start(run_ids[-1])
    manager.supervise(run_ids, poll_seconds=60)
    rounds = len(_SharedLink.rounds)
    assert rounds == 61  # 0, 60, ... 3600 s: one status exchange per round for both channels
    assert _SharedLink.rounds[0] == 2
    assert busy.reads >= rounds - 1  # new records every round
    assert quiet.reads <= 4 + 1  # only when it had one: at 0, 1200, 2400, 3600 s (and the final catch-up)
    for run_id, n in zip(run_ids, (361, 4), strict=True):
        assert store.run(run_id).state == "finished" and len(store.records(run_id)) == n
