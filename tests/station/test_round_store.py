"""A supervision round stores every channel's new records in one transaction, and keeps the guarantees it had with
one transaction per channel: records are committed before the policy acts on them, last_seq moves only with
committed records, and records that cannot be stored pause their own channel (and only it)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from drivers.base import Record
from protocols.cells import load_cell
from protocols.clock import VirtualClock
from protocols.loader import load_protocol_text
from station import runs as runs_module
from station.runs import RunManager
from station.store import Store, StoreError

from .fakes import ScriptedChannel, cc_records

PROTOCOL = """
protocol: one-step
safety: {voltage: [2.5 V, 4.4 V], current: 5 mA}
steps:
  - Charge at 1 mA for 1 hour
"""


class Killed(BaseException):
    """Stands for SIGKILL inside one process: nothing after it runs."""


class Commits:
    """Counts the COMMITs the store's connection sends (SQLite's own trace of executed statements)."""

    def __init__(self, store: Store):
        self.statements: list[str] = []
        store.db.set_trace_callback(self.statements.append)

    @property
    def count(self) -> int:
        return sum(s.strip().upper() == "COMMIT" for s in self.statements)

    def reset(self) -> None:
        self.statements.clear()


class Watched(ScriptedChannel):
    """A scripted channel that, when told to stop or pause, notes what another process would read in the store
    at that moment (committed data only), so a test can tell whether the decision came after the commit."""

    def __init__(self, clock, records, channel, store_dir):
        super().__init__(clock, records, channel)
        self.store_dir = store_dir
        self.run_id: str | None = None
        self.committed_at_stop: int | None = None

    def stop(self):
        if self.run_id is not None:
            self.committed_at_stop = Store(self.store_dir).run(self.run_id).last_seq
        super().stop()


def launch(tmp_path, scripts: list[list[Record]], *, page: int = 100):
    clock, store = VirtualClock(), Store(tmp_path)
    manager = RunManager(store, clock, page=page)
    drivers, run_ids = [], []
    for n, records in enumerate(scripts, start=1):
        driver = Watched(clock, records, f"fake/{n}", tmp_path)
        loaded = load_protocol_text(PROTOCOL, "p.yaml")
        run_id = manager.create(loaded, load_cell("predeposited-ncm622"), f"fake/{n}", driver,
                                instrument={"kind": "fake"}, dry_run=False)
        manager.start(run_id)
        driver.run_id = run_id
        drivers.append(driver)
        run_ids.append(run_id)
    return clock, store, manager, drivers, run_ids


def seqs(tmp_path, run_id) -> list[int]:
    return Store(tmp_path).records(run_id)["seq"].tolist()


def test_one_round_of_several_channels_commits_once_and_stores_every_record_once(tmp_path):
    clock, store, manager, _drivers, run_ids = launch(tmp_path, [cc_records(1e-3, 3600, every=1.0)] * 4)
    commits = Commits(store)
    for _ in range(5):
        clock.advance(60)
        commits.reset()
        manager.poll_round(run_ids)
        assert commits.count == 1  # 4 channels, 61 new records each: one transaction
        inserts = [s for s in commits.statements if s.lstrip().upper().startswith("INSERT INTO RECORD_BLOCKS")]
        assert len(inserts) == 4  # one block row per run, in that one transaction
    for run_id in run_ids:
        assert seqs(tmp_path, run_id) == list(range(1, 302))
    manager.supervise(run_ids, poll_seconds=60)  # to the end: every record exactly once
    for run_id in run_ids:
        assert Store(tmp_path).run(run_id).state == "finished"
        assert seqs(tmp_path, run_id) == list(range(1, 3602))
        assert Store(tmp_path).run(run_id).last_seq == 3601


def test_a_round_that_would_hold_too_many_records_commits_early_and_decides_last(tmp_path, monkeypatch):
    monkeypatch.setattr(runs_module, "ROUND_RECORDS", 250)  # three pages of 100 per channel: commit every 250
    clock, store, manager, _drivers, run_ids = launch(tmp_path, [cc_records(1e-3, 3600, every=1.0)] * 3)
    commits = Commits(store)
    clock.advance(4000)  # every channel finished with 3601 records nobody read yet
    manager.poll_round(run_ids)
    transitions = [i for i, s in enumerate(commits.statements) if "UPDATE runs SET state=" in s]
    blocks = [i for i, s in enumerate(commits.statements) if "INSERT INTO record_blocks" in s]
    assert len(blocks) > 3  # more than one commit, so memory stays bounded
    assert transitions and min(transitions) > max(blocks)  # "finished" only once every record is stored
    for run_id in run_ids:
        assert Store(tmp_path).run(run_id).state == "finished"
        assert seqs(tmp_path, run_id) == list(range(1, 3602))


@pytest.mark.usefixtures("store_backend")
def test_a_breach_is_stored_before_the_channel_is_stopped_for_it(tmp_path):
    script = cc_records(1e-3, 3600, every=10.0)
    script[30] = Record(**{**{f: getattr(script[30], f) for f in script[30].__slots__}, "voltage": 4.6})
    clock, _store, manager, drivers, run_ids = launch(tmp_path, [cc_records(1e-3, 3600, every=10.0), script])
    clock.advance(600)
    manager.poll_round(run_ids)
    breached = drivers[1]
    assert "stop" in breached.calls and breached.committed_at_stop == 61  # record 31 and the rest of its page
    row = Store(tmp_path).run(run_ids[1])
    assert row.state == "stopped" and any("4.6" in e.message for e in Store(tmp_path).events(run_ids[1]))
    assert "stop" not in drivers[0].calls and Store(tmp_path).run(run_ids[0]).state == "running"


@pytest.mark.usefixtures("store_backend")
def test_a_crash_before_the_round_commits_loses_nothing_the_instrument_still_holds(tmp_path, monkeypatch):
    clock, store, manager, drivers, run_ids = launch(tmp_path, [cc_records(1e-3, 3600, every=10.0)] * 3)
    clock.advance(300)
    manager.poll_round(run_ids)
    assert [Store(tmp_path).run(r).last_seq for r in run_ids] == [31] * 3

    def killed(*_a, **_k):
        raise Killed

    clock.advance(3700)  # every channel finished: the round would end the runs once their records are stored
    monkeypatch.setattr(store, "append_blocks", killed)
    with pytest.raises(Killed):
        manager.poll_round(run_ids)
    manager.close()  # the process is gone: its leases with it
    for run_id in run_ids:  # nothing of the round reached the store, and no decision was taken on it
        row = Store(tmp_path).run(run_id)
        assert (row.state, row.last_seq) == ("running", 31) and seqs(tmp_path, run_id) == list(range(1, 32))

    later = RunManager(Store(tmp_path), clock, page=100)
    for run_id, driver in zip(run_ids, drivers, strict=True):
        later.attach(run_id, driver)
    later.supervise(run_ids, poll_seconds=60)
    for run_id in run_ids:
        assert Store(tmp_path).run(run_id).state == "finished"
        assert seqs(tmp_path, run_id) == list(range(1, 362))


def refuse_records_of(store: Store, run_id: str) -> None:
    """From now on the store cannot take this run's records (as a full disk refuses them), and only its."""
    if store.backend.dialect == "sqlite":
        store.db.execute(f"CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.record_blocks WHEN NEW.run_id = "
                         f"'{run_id}' BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        return
    store.db.execute(f"CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.run_id = '{run_id}' THEN RAISE "
                     f"EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END "
                     f"IF; RETURN NEW; END $$ LANGUAGE plpgsql")
    store.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON record_blocks FOR EACH ROW EXECUTE FUNCTION refuse()")


def test_records_that_cannot_be_stored_pause_their_channel_and_the_others_go_on(tmp_path):
    script = cc_records(1e-3, 3600, every=10.0)
    script[40] = Record(**{**{f: getattr(script[40], f) for f in script[40].__slots__}, "voltage": 4.6})
    clock, store, manager, drivers, run_ids = launch(
        tmp_path, [cc_records(1e-3, 3600, every=10.0), cc_records(1e-3, 3600, every=10.0), script])
    clock.advance(300)
    manager.poll_round(run_ids)
    refuse_records_of(store, run_ids[0])
    clock.advance(300)
    with pytest.raises(StoreError, match=r"the disk is full; .*; channel fake/1 was paused so that "
                                         r"nothing runs unrecorded$"):
        manager.poll_round(run_ids)
    full, fine, breached = (Store(tmp_path).run(r) for r in run_ids)
    assert drivers[0].calls[-1] == "pause"
    assert full.state == "paused" and full.message.startswith("storage failed: cannot write to")
    assert full.last_seq == 31 and seqs(tmp_path, run_ids[0]) == list(range(1, 32))  # its records stay on the BTS
    assert fine.state == "running" and seqs(tmp_path, run_ids[1]) == list(range(1, 62))
    assert breached.state == "stopped" and drivers[2].committed_at_stop == 61  # its decision was still taken
    assert manager.active[run_ids[0]].done
    clock.advance(300)
    manager.poll_round(run_ids)  # the round goes on for the channel that can store
    assert seqs(tmp_path, run_ids[1]) == list(range(1, 92))


def test_a_full_disk_in_the_middle_of_a_round_pauses_every_channel_whose_records_did_not_fit(tmp_path):
    clock, store, manager, drivers, run_ids = launch(tmp_path, [cc_records(1e-3, 36000, every=1.0)] * 3)
    clock.advance(100)
    manager.poll_round(run_ids)
    kept = [store.run(r).last_seq for r in run_ids]
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count={pages + 2}")  # room for state rows, not for pages of records
    clock.advance(1000)
    with pytest.raises(StoreError, match=r"the disk is full; .*; channels fake/1, fake/2, fake/3 were "
                                         r"paused so that nothing runs unrecorded$"):
        manager.poll_round(run_ids)
    fresh = Store(tmp_path)
    for run_id, driver, last in zip(run_ids, drivers, kept, strict=True):
        assert driver.calls[-1] == "pause"
        row = fresh.run(run_id)
        assert row.state == "paused" and row.message.startswith("storage failed: cannot write to")
        records = fresh.records(run_id)
        assert records["seq"].tolist() == list(range(1, last + 1)) and row.last_seq == last  # consistent
        assert np.all(np.diff(records["test_time"]) > 0)


class OwnLink(Watched):
    """A channel on a link of its own that may be observed from another thread (as each BTS Client may)."""

    independent_links = True

    def __init__(self, *args):
        super().__init__(*args)
        self.threads: set[str] = set()
        self.stop_thread: str | None = None

    def read_records(self, after_seq, limit=1000):
        self.threads.add(threading.current_thread().name)
        return super().read_records(after_seq, limit)

    def stop(self):
        self.stop_thread = threading.current_thread().name
        super().stop()


def launch_links(tmp_path, scripts: list[list[Record]]):
    clock, store = VirtualClock(), Store(tmp_path)
    manager = RunManager(store, clock, page=100)
    drivers, run_ids = [], []
    for n, records in enumerate(scripts, start=1):
        driver = OwnLink(clock, records, f"link{n}/1", tmp_path)
        run_id = manager.create(load_protocol_text(PROTOCOL, "p.yaml"), load_cell("predeposited-ncm622"),
                                f"link{n}/1", driver, instrument={"kind": "fake"}, dry_run=False)
        manager.start(run_id)
        driver.run_id = run_id
        drivers.append(driver)
        run_ids.append(run_id)
    return clock, store, manager, drivers, run_ids


def test_independent_links_are_observed_at_once_and_still_commit_once_and_decide_here(tmp_path):
    script = cc_records(1e-3, 3600, every=1.0)
    script[400] = Record(**{**{f: getattr(script[400], f) for f in script[400].__slots__}, "voltage": 4.6})
    clock, store, manager, drivers, run_ids = launch_links(tmp_path, [cc_records(1e-3, 3600, every=1.0)] * 3
                                                           + [script])
    commits = Commits(store)
    try:
        clock.advance(300)
        manager.poll_round(run_ids)
        assert commits.count == 1  # four links observed in threads, one transaction for all of them
        assert all(name.startswith("station-link") for d in drivers for name in d.threads)
        clock.advance(300)
        manager.poll_round(run_ids)  # record 401 of link 4 breaks the voltage limit
        assert drivers[3].stop_thread == threading.current_thread().name  # the policy acts in the round's thread
        assert drivers[3].committed_at_stop == 601 and Store(tmp_path).run(run_ids[3]).state == "stopped"
        manager.supervise(run_ids[:3], poll_seconds=60)
        for run_id in run_ids[:3]:
            assert Store(tmp_path).run(run_id).state == "finished"
            assert seqs(tmp_path, run_id) == list(range(1, 3602))
    finally:
        manager.close()


@pytest.mark.usefixtures("store_backend")
def test_a_link_that_cannot_store_its_catch_up_pauses_only_its_own_channel(tmp_path, monkeypatch):
    monkeypatch.setattr(runs_module, "ROUND_RECORDS", 400)  # 100 per link: each link commits early, on its own
    clock, store, manager, drivers, run_ids = launch_links(tmp_path, [cc_records(1e-3, 3600, every=1.0)] * 4)
    try:
        refuse_records_of(store, run_ids[1])
        clock.advance(600)
        with pytest.raises(StoreError, match=r"the disk is full; .*; channel link2/1 was paused so that nothing "
                                             r"runs unrecorded$"):
            manager.poll_round(run_ids)
        assert drivers[1].calls[-1] == "pause" and Store(tmp_path).run(run_ids[1]).state == "paused"
        assert seqs(tmp_path, run_ids[1]) == [] and Store(tmp_path).run(run_ids[1]).last_seq == 0
        for run_id in (run_ids[0], *run_ids[2:]):
            assert Store(tmp_path).run(run_id).state == "running" and seqs(tmp_path, run_id) == list(range(1, 602))
    finally:
        manager.close()
