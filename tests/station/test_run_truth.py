"""The station's idea of a run matches the instrument's: each case first reproduces a way the two came apart.

A scripted channel stands in for the instrument here; the same cases run through the real Neware driver and the
simulated BTS in test_run_truth_bts.py.
"""

from __future__ import annotations

import math

import pytest

from drivers.base import ChannelState, ChannelStatus, InstrumentTimeout, Record, Refused
from protocols.cells import load_cell
from protocols.clock import VirtualClock
from protocols.loader import load_protocol_text
from station.runs import RunError, RunManager
from station.store import Store, StoreError

from .fakes import ScriptedChannel, cc_records

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and on PostgreSQL

PROTOCOL = """
protocol: one-step
safety: {voltage: [2.5 V, 4.4 V], current: 5 mA}
steps:
  - Charge at 1 mA for 1 hour
"""


class Killed(BaseException):
    """Stands for SIGKILL inside one process: nothing after it runs, no handler sees it."""


class Instrument(ScriptedChannel):
    """A scripted channel whose link can fail and whose replies can lie, one switch per fault."""

    def __init__(self, clock, records, channel="fake/1"):
        super().__init__(clock, records, channel)
        self.unreachable = False
        self.forgot = False  # the instrument was reset: it holds no test and no records
        self.renumber: dict[int, int] = {}  # seq -> the number one reply carries instead (consumed once)
        self.reading: float | None = None  # a live voltage to report instead of the real one

    def _link(self, what: str) -> None:
        if self.unreachable:
            raise InstrumentTimeout(f"{self.channel} did not reply to {what} within 30 s")

    def start(self, program, barcode):
        self._link("start")
        return super().start(program, barcode)

    def start_marker(self):
        self._link("inquire")
        return super().start_marker()

    def find_test(self, program, barcode, marker=None):
        self._link("inquire")
        return None if self.forgot else super().find_test(program, barcode, marker)

    def status(self):
        self._link("inquire")
        if self.forgot:
            return ChannelStatus(state=ChannelState.FINISHED, test_id="0", last_seq=0)
        status = super().status()
        status = ChannelStatus(**{**{f: getattr(status, f) for f in status.__slots__}, "test_id": "7"})
        if self.reading is not None:
            return ChannelStatus(state=status.state, voltage=self.reading, test_id="7")
        return status

    def read_records(self, after_seq, limit=1000):
        self._link("download")
        page = super().read_records(after_seq, limit)
        out = []
        for r in page:
            seq = self.renumber.pop(r.seq, r.seq)
            out.append(Record(**{**{f: getattr(r, f) for f in r.__slots__}, "seq": seq}))
        return out

    def stop(self):
        self._link("stop")
        super().stop()


def setup(tmp_path, records, protocol=PROTOCOL, page=100):
    clock = VirtualClock()
    store = Store(tmp_path)
    manager = RunManager(store, clock, page=page)
    driver = Instrument(clock, records)
    loaded = load_protocol_text(protocol, "p.yaml")
    run_id = manager.create(loaded, load_cell("predeposited-ncm622"), "fake/1", driver,
                            instrument={"kind": "fake"}, dry_run=False)
    return clock, store, manager, driver, run_id


def events(store, run_id, kind=None):
    return [e.message for e in store.events(run_id) if kind is None or e.kind == kind]


# -- 1. killed between "validated" and "started" -----------------------------------------------------------------

def test_a_station_killed_after_start_reached_the_instrument_adopts_the_test_by_barcode(tmp_path, monkeypatch):
    clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))

    def killed(*_a, **_k):
        raise Killed

    monkeypatch.setattr(manager, "_record_started", killed)
    with pytest.raises(Killed):
        manager.start(run_id)
    manager.close()  # the process is gone: the OS releases its lease
    row = store.run(run_id)
    assert (row.state, row.handle) == ("starting", None)  # the intent was written before start was sent
    assert driver.state is ChannelState.RUNNING and driver.barcode == run_id  # the instrument cycles the cell

    clock.advance(1000)
    later = RunManager(Store(tmp_path), clock, page=100)
    later.attach(run_id, driver)
    assert later.store.run(run_id).handle["test_id"] == "7"
    later.supervise([run_id], poll_seconds=60)
    row = later.store.run(run_id)
    assert row.state == "finished"
    assert list(later.store.records(run_id)["seq"]) == list(range(1, 362))
    assert any("reconciled: the instrument runs test 7 with barcode" in m for m in events(later.store, run_id))


def test_a_start_that_never_reached_the_instrument_fails_the_run_and_frees_the_channel(tmp_path, monkeypatch):
    clock, _store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))

    def killed(*_a, **_k):
        raise Killed

    monkeypatch.setattr(driver, "start", killed)  # killed after the intent, before start left the PC
    with pytest.raises(Killed):
        manager.start(run_id)
    manager.close()
    later = RunManager(Store(tmp_path), clock)
    with pytest.raises(RunError, match="never started on the instrument"):
        later.attach(run_id, driver)
    row = later.store.run(run_id)
    assert row.state == "failed" and "holds no test with barcode" in row.message
    assert "stop" not in driver.calls
    again = later.create(load_protocol_text(PROTOCOL, "p.yaml"), load_cell("predeposited-ncm622"), "fake/1",
                         Instrument(clock, cc_records(1e-3, 60)), instrument={}, dry_run=False)
    assert later.store.run(again).state == "validated"  # the channel is free again


def test_a_run_another_process_is_starting_is_not_reconciled(tmp_path, monkeypatch):
    clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    monkeypatch.setattr(driver, "start", lambda *a, **k: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        manager.start(run_id)
    # the first process is alive (it holds the lease) and may still send start: nobody else may decide
    other = RunManager(Store(tmp_path), clock)
    with pytest.raises(RunError, match="being started or supervised by another station process"):
        other.reconcile(run_id, driver)
    assert store.run(run_id).state == "starting"


def test_reconciling_with_an_unreachable_instrument_changes_nothing(tmp_path, monkeypatch):
    clock, _store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    monkeypatch.setattr(manager, "_record_started", lambda *a, **k: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        manager.start(run_id)
    manager.close()
    driver.unreachable = True
    later = RunManager(Store(tmp_path), clock)
    with pytest.raises(InstrumentTimeout):
        later.reconcile(run_id, driver)
    assert later.store.run(run_id).state == "starting"  # "cannot tell" is never read as "never started"
    assert later.lease_free(run_id)


# -- 2. a stop that did not reach the instrument -----------------------------------------------------------------

def test_a_stop_the_instrument_did_not_hear_stays_pending_until_it_confirms(tmp_path):
    clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    manager.start(run_id)
    manager.supervise([run_id], poll_seconds=60, should_stop=lambda: clock.now() >= 600)
    driver.unreachable = True
    assert manager.stop(run_id) is False
    row = store.run(run_id)
    assert row.state == "running" and row.stop_requested == "stopped by the operator"
    alarm = events(store, run_id, "alarm")[-1]
    assert "could not reach channel fake/1 to stop it" in alarm and "the cell may still be running" in alarm
    assert driver.state is ChannelState.RUNNING
    for _ in range(3):  # the outage goes on: polls fail, nothing is decided, one warning for the whole outage
        clock.advance(60)
        assert manager.poll(run_id).state == "running"
    assert len(events(store, run_id, "warning")) == 1
    driver.unreachable = False
    clock.advance(60)
    progress = manager.poll(run_id)
    assert progress.state == "stopped" and driver.state is ChannelState.STOPPED
    row = store.run(run_id)
    assert (row.state, row.message, row.stop_requested) == ("stopped", "stopped by the operator", None)
    assert list(store.records(run_id)["seq"]) == list(range(1, row.last_seq + 1)) and row.last_seq > 60


def test_a_stop_asked_by_another_process_is_carried_out_by_the_supervisor(tmp_path):
    clock, _store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    manager.start(run_id)
    manager.poll(run_id)
    Store(tmp_path).request_stop(run_id, "stopped by the operator", clock.unix())  # `station stop` elsewhere
    clock.advance(60)
    assert manager.poll(run_id).state == "stopped"
    assert driver.calls[-1] == "stop"


# -- 3. an instrument that forgot the test ---------------------------------------------------------------------

def test_a_channel_that_forgot_the_test_fails_the_run_and_keeps_every_record(tmp_path):
    clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    manager.start(run_id)
    manager.supervise([run_id], poll_seconds=60, should_stop=lambda: clock.now() >= 1200)
    kept = store.run(run_id).last_seq
    driver.forgot = True  # the instrument restarted with its state lost: "finished", no test, no records
    clock.advance(60)
    assert manager.poll(run_id).state == "failed"
    row = store.run(run_id)
    assert row.message == "the instrument no longer holds test 7: channel fake/1 now holds no test"
    assert any("every record stored so far (121) is kept" in m for m in events(store, run_id, "alarm"))
    assert kept == 121 and list(store.records(run_id)["seq"]) == list(range(1, 122))
    assert "stop" not in driver.calls  # not ours to stop


def test_fewer_records_on_the_instrument_than_stored_is_not_a_finished_run(tmp_path):
    clock, store, manager, _driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    manager.start(run_id)
    manager.supervise([run_id], poll_seconds=60, should_stop=lambda: clock.now() >= 600)
    status = ChannelStatus(state=ChannelState.FINISHED, last_seq=10, test_id="7")
    manager._after_status(manager.active[run_id], status)
    row = store.run(run_id)
    assert row.state == "failed"
    assert row.message == "the instrument no longer holds test 7: it reports 10 records, 61 are already stored"


# -- 4. NaN readings -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_reading_that_is_not_a_number_is_a_breach(tmp_path, bad):
    records = cc_records(1e-3, 3600)
    records[50] = Record(**{**{f: getattr(records[50], f) for f in records[50].__slots__}, "voltage": bad})
    _clock, store, manager, driver, run_id = setup(tmp_path, records)
    manager.start(run_id)
    manager.supervise([run_id], poll_seconds=60)
    row = store.run(run_id)
    assert row.state == "stopped"
    assert row.message.startswith(f"safety: record 51: the instrument reported an invalid reading (V {bad}")
    assert driver.calls[-1] == "stop"


def test_a_live_reading_that_is_not_a_number_stops_the_channel(tmp_path):
    clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    manager.start(run_id)
    driver.reading = math.nan
    clock.advance(60)
    assert manager.poll(run_id).state == "stopped"
    assert store.run(run_id).message == "safety: live voltage nan is not a number: the channel cannot measure its cell"


def test_capacity_and_step_time_limits_are_checked_on_every_record(tmp_path):
    protocol = PROTOCOL.replace("current: 5 mA}", "current: 5 mA, capacity: 0.5 mAh}")
    _clock, store, manager, _driver, run_id = setup(tmp_path, cc_records(1e-3, 3600), protocol)
    manager.start(run_id)
    manager.supervise([run_id], poll_seconds=60)
    # 1 mA passes 0.5 mAh at 1800 s: record 182 (t = 1810 s) is the first above it
    assert store.run(run_id).message.startswith("safety: record 182: step capacity 0.000502778 Ah above the "
                                                "safety limit 0.0005 Ah")


# -- 8. a refused run never touches the channel ---------------------------------------------------------------------

def test_a_refused_start_never_sends_stop(tmp_path, monkeypatch):
    _clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))

    def busy(program, barcode):
        driver.calls.append("start")
        raise Refused("channel fake/1 is 'working'; stop the running test first")

    monkeypatch.setattr(driver, "start", busy)
    with pytest.raises(RunError, match="stop the running test first"):
        manager.start(run_id)
    assert driver.calls == ["check", "start"]
    assert store.run(run_id).state == "failed"


# -- 9. record numbers are checked ---------------------------------------------------------------------------------

@pytest.mark.parametrize("wrong", [100300, 10**30, 299, 301])
def test_a_renumbered_record_is_an_instrument_error_and_nothing_is_lost(tmp_path, wrong):
    _clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600, every=1.0, dv_ds=1e-5),
                                                   page=1000)
    driver.renumber = {300: wrong}
    manager.start(run_id)
    manager.supervise([run_id], poll_seconds=600)
    row = store.run(run_id)
    assert row.state == "finished"
    assert list(store.records(run_id)["seq"]) == list(range(1, 3602))  # every record, each once
    warnings = events(store, run_id, "warning")
    assert len(warnings) == 1 and f"sent record {wrong} where record 300 belongs" in warnings[0]


def test_a_page_past_the_end_of_a_finished_test_is_not_data(tmp_path):
    clock, store, manager, _driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    manager.start(run_id)
    clock.advance(4000)
    status = ChannelStatus(state=ChannelState.FINISHED, last_seq=300, test_id="7")  # but 361 records come
    manager._after_status(manager.active[run_id], status)
    assert store.run(run_id).last_seq == 300 and store.run(run_id).state == "running"  # pages of 100: 1..300
    assert "past the 300 records its ended test holds" in events(store, run_id, "warning")[0]


def test_pages_that_can_never_be_trusted_stop_the_channel(tmp_path):
    clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    manager.start(run_id)
    original = driver.read_records

    def always_renumbered(after_seq, limit=1000):
        return [Record(**{**{f: getattr(r, f) for f in r.__slots__}, "seq": r.seq + 5}) for r in
                original(after_seq, limit)]

    driver.read_records = always_renumbered
    for _ in range(RunManager.MAX_DATA_FAILURES):
        clock.advance(60)
        manager.poll(run_id)
    row = store.run(run_id)
    assert row.state == "failed" and row.message.startswith("instrument error: 5 pages in a row could not be trusted")
    assert driver.calls[-1] == "stop" and row.last_seq == 0


# -- 10. stuck runs -------------------------------------------------------------------------------------------------

def test_any_failure_while_checking_ends_the_run_as_failed(tmp_path, monkeypatch):
    clock, store = VirtualClock(), Store(tmp_path)
    driver = Instrument(clock, cc_records(1e-3, 60))
    monkeypatch.setattr(driver, "check", lambda program: 1 / 0)
    manager = RunManager(store, clock)
    with pytest.raises(RunError, match="ZeroDivisionError"):
        manager.create(load_protocol_text(PROTOCOL, "p.yaml"), load_cell("predeposited-ncm622"), "fake/1", driver,
                       instrument={}, dry_run=False)
    (row,) = store.runs()
    assert row.state == "failed" and not store.runs(active_only=True)


def test_any_failure_during_start_is_settled_by_asking_the_instrument(tmp_path, monkeypatch):
    _clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    original = driver.start

    def starts_then_fails(program, barcode):
        original(program, barcode)
        raise KeyError("step_map")  # our bug after the instrument accepted start

    monkeypatch.setattr(driver, "start", starts_then_fails)
    with pytest.raises(RunError, match="could not start: KeyError"):
        manager.start(run_id)
    row = store.run(run_id)
    assert row.state == "failed" and "the instrument had started the test, so it was stopped" in row.message
    assert driver.state is ChannelState.STOPPED
    assert driver.calls == ["check", "start", "find_test", "attach", "stop"]


def test_force_stop_abandons_only_a_run_whose_test_is_gone(tmp_path):
    clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    manager.start(run_id)
    manager.poll(run_id)
    other = RunManager(Store(tmp_path), clock)
    with pytest.raises(RunError, match=r"the instrument still runs test 7 of run .*`station stop"):
        other.abandon(run_id, driver, "operator says the test is gone")
    driver.forgot = True
    other.abandon(run_id, driver, "the test is gone from the instrument")
    row = store.run(run_id)
    assert row.state == "failed" and row.message == "abandoned by the operator: the test is gone from the instrument"
    assert "abandoned by the operator (stop --force)" in events(store, run_id, "operator")[-1]
    assert "stop" not in driver.calls


def test_force_stop_cannot_decide_while_the_instrument_is_unreachable(tmp_path):
    clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    manager.start(run_id)
    driver.unreachable = True
    with pytest.raises(InstrumentTimeout):
        RunManager(Store(tmp_path), clock).abandon(run_id, driver, "gone?")
    assert store.run(run_id).state == "running"


# -- 12. honest states during failures ------------------------------------------------------------------------------

def test_an_outage_shows_lost_contact_once_and_its_end(tmp_path):
    clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 3600))
    manager.start(run_id)
    manager.poll(run_id)
    driver.unreachable = True
    progress = None
    for _ in range(8):
        clock.advance(60)
        progress = manager.poll(run_id)
    assert progress.contact_lost_s == 420.0  # since the first failed poll
    assert store.run(run_id).contact_lost_at is not None
    assert len(events(store, run_id, "warning")) == 1 and len(events(store, run_id, "alarm")) == 1
    driver.unreachable = False
    clock.advance(60)
    progress = manager.poll(run_id)
    assert progress.contact_lost_s is None and store.run(run_id).contact_lost_at is None
    assert events(store, run_id, "info") == ["contact restored after 8 failed polls (480 s)"]


@pytest.mark.sqlite_only  # the full disk is made with SQLite's max_page_count
def test_a_full_disk_pause_is_recorded_as_paused(tmp_path):
    clock, store, manager, driver, run_id = setup(tmp_path, cc_records(1e-3, 36000, every=1))
    manager.start(run_id)
    manager.supervise([run_id], poll_seconds=60, should_stop=lambda: clock.now() > 100)
    kept = store.run(run_id).last_seq
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count={pages + 2}")  # room for a state row, not for a page of records
    with pytest.raises(StoreError, match=r"disk is full; .*was paused so that nothing runs unrecorded"):
        manager.supervise([run_id], poll_seconds=3600)
    assert driver.calls[-1] == "pause"
    row = Store(tmp_path).run(run_id)
    assert row.state == "paused" and row.message.startswith("storage failed: cannot write to")
    assert list(Store(tmp_path).records(run_id)["seq"]) == list(range(1, kept + 1))


@pytest.mark.sqlite_only  # the ballast belongs to a SQLite data directory
def test_the_disk_reserve_is_given_up_for_the_pause(tmp_path):
    store = Store(tmp_path)
    assert store.reserve_path.stat().st_size == 1024 * 1024
    assert store.release_reserve() and not store.reserve_path.exists()
    assert not store.release_reserve()
    Store(tmp_path)  # a new process puts the ballast back
    assert store.reserve_path.exists()


def test_a_run_whose_station_died_before_checking_it_frees_its_channel(tmp_path, monkeypatch):
    clock, store = VirtualClock(), Store(tmp_path)
    driver = Instrument(clock, cc_records(1e-3, 60))
    manager = RunManager(store, clock)

    def killed(program):
        raise Killed

    monkeypatch.setattr(driver, "check", killed)
    with pytest.raises(Killed):
        manager.create(load_protocol_text(PROTOCOL, "p.yaml"), load_cell("predeposited-ncm622"), "fake/1", driver,
                       instrument={}, dry_run=False)
    manager.close()
    (row,) = store.runs()
    assert row.state == "created" and row.unconfirmed
    assert RunManager(Store(tmp_path), clock).reconcile(row.id, driver) == "failed"
    assert store.run(row.id).message.endswith("nothing was sent to the instrument")
    assert driver.calls == []
