"""`station db copy`: a station's data directory into the lab's PostgreSQL, whole, once, and resumable
(station.store.forward)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from station.store import RECORD_DTYPE, CampaignRow, SampleRow, Store, StoreError
from station.store.forward import forward
from tests.processes import CHILD_ENV

RUN = dict(instrument={"kind": "bts"}, protocol_name="p", protocol_file=None, protocol_source="steps: [rest]",
           parameters={"c": "1 mA"}, program='{"steps": []}', cell={"area": 1.131e-4}, dry_run=False)


def pages(first: int, n: int, page: int = 1000):
    for start in range(first, first + n, page):
        block = np.zeros(min(page, first + n - start), dtype=RECORD_DTYPE)
        block["seq"] = np.arange(start, start + len(block))
        block["test_time"] = 30.0 * block["seq"]
        block["voltage"] = 3.0 + np.sin(block["seq"] / 7.0)
        block["current"] = 1e-3
        block["frequency"] = block["z_real"] = block["z_imag"] = np.nan
        yield block


def a_station(tmp_path) -> Store:
    """A data directory as an older station left it: runs without a station name, a sample, a campaign with a step,
    events, and 25 blocks of records over two runs."""
    store = Store(tmp_path / "old")
    store.create_sample(SampleRow(id="S1", name="coin 1", created_at=1.0, cell={"area": 1.131e-4}))
    store.create_campaign(CampaignRow(id="C1", name="formation", sample_id="S1", created_at=2.0, updated_at=2.0,
                                      state="running", source_file=None, source_text="stages: []", plan="{}"),
                          "started by ana")
    for k, n in ((1, 15_000), (2, 10_000)):
        store.create_run(run_id=f"r{k}", at=2.0 + k, channel=f"bts/{k}", sample_id="S1" if k == 1 else None, **RUN)
        store.set_state(f"r{k}", "running", 3.0 + k)
        for block in pages(1, n):
            store.append_records(f"r{k}", block)
    store.link_run("r1", "C1", "formation")
    step = store.add_campaign_step("C1", stage=0, stage_name="formation", role="run", chunk=None, first_cycle=None,
                                   parameters={}, channel="bts/1", at=3.0)
    store.update_campaign_step(step, run_id="r1")
    store.set_state("r1", "finished", 9.0, "the protocol ended")
    return store


def same(local: Store, central: Store) -> None:
    """Everything of the station is in the lab's database, record for record and event for event."""
    for run in local.runs():
        there = central.run(run.id)
        assert (there.state, there.channel, there.last_seq, there.started_at, there.campaign_id, there.sample_id) == (
            run.state, run.channel, run.last_seq, run.started_at, run.campaign_id, run.sample_id)
        assert there.station == "lab-a" and there.protocol_source == run.protocol_source
        assert central.records(run.id).tobytes() == local.records(run.id).tobytes()
        assert [(e.at, e.kind, e.message, e.data) for e in central.events(run.id)] == [
            (e.at, e.kind, e.message, e.data) for e in local.events(run.id)]
    assert central.sample("S1") == local.sample("S1")
    assert central.campaign("C1") == replace(local.campaign("C1"), station="lab-a")  # runs there, named now
    assert [(s.run_id, s.stage_name) for s in central.campaign_steps("C1")] == [("r1", "formation")]
    assert [e.message for e in central.campaign_events("C1")] == ["started by ana"]


def test_a_data_directory_is_copied_whole_and_a_second_copy_adds_nothing(tmp_path, postgres):
    local, url = a_station(tmp_path), postgres.fresh()
    central = Store(tmp_path / "files", url)
    done = forward(local, central, "lab-a")
    assert (done.samples, done.campaigns, done.runs, done.campaign_steps, done.events, done.campaign_events,
            done.records, done.blocks) == (1, 1, 2, 1, 5, 1, 25_000, 25)
    same(local, central)
    assert forward(local, central, "lab-a").total() == 0

    # the station went on: more records, a state change, a new event; only those go
    for block in pages(10_001, 2000):
        local.append_records("r2", block)
    local.set_state("r2", "stopped", 20.0, "by ana")
    again = forward(local, central, "lab-a")
    assert (again.runs, again.events, again.records, again.blocks) == (1, 1, 2000, 2)
    same(local, central)


def test_a_copy_killed_halfway_goes_on_where_it_stopped_and_copies_nothing_twice(tmp_path, postgres):
    local, url = a_station(tmp_path), postgres.fresh()
    central = Store(tmp_path / "files", url)

    class Killed(Exception):
        pass

    def kill_after_two_batches(done) -> None:
        if done.blocks >= 2:
            raise Killed

    with pytest.raises(Killed):  # batches of about one block: the kill comes after the first batch of records
        forward(local, central, "lab-a", batch_bytes=RECORD_DTYPE.itemsize * 1000, progress=kill_after_two_batches)
    half = central.run("r1")
    assert 0 < half.last_seq < 15_000 and central.record_count("r1") == half.last_seq  # readers see no gap
    rest = forward(local, central, "lab-a", batch_bytes=RECORD_DTYPE.itemsize * 1000)
    # events go after the records (with the runs' changes): all of them came with the second pass
    assert (rest.records, rest.events, rest.campaign_events) == (25_000 - half.last_seq, 5, 1)
    same(local, central)
    seqs = central.records("r1")["seq"]
    assert np.all(np.diff(seqs) == 1) and len(seqs) == 15_000


def test_station_db_copy_on_the_command_line_and_a_copy_under_another_name_is_refused(tmp_path, postgres):
    local, url = a_station(tmp_path), postgres.fresh()
    local.close()
    Store(tmp_path / "files", url).close()

    def copy(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "station", "db", "copy", "--from", str(tmp_path / "old"), "--to",
                               url, *extra], capture_output=True, text=True, env=CHILD_ENV, timeout=120)

    first = copy("--station", "lab-a", "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert (doc["station"], doc["runs"], doc["records"], doc["events"]) == ("lab-a", 2, 25_000, 5)
    assert json.loads(copy("--station", "lab-a", "--json").stdout)["records"] == 0
    other = copy("--station", "lab-b")
    assert other.returncode == 1 and other.stderr.strip().startswith(
        f"error: run r1 is already in {url} from station lab-a (and 1 more); copy this data directory as "
        f"--station lab-a")
    missing = subprocess.run([sys.executable, "-m", "station", "db", "copy", "--from", str(tmp_path / "nowhere"),
                              "--to", url], capture_output=True, text=True, env=CHILD_ENV, timeout=60)
    assert missing.returncode == 2 and missing.stderr.strip() == (
        f"error: {tmp_path / 'nowhere'} holds no station.sqlite; give the data directory of a station with --from")


def test_a_copy_into_a_database_not_yet_upgraded_says_how(tmp_path, postgres):
    local = a_station(tmp_path)
    with pytest.raises(StoreError, match=r"run `station db upgrade` once"):
        forward(local, Store(tmp_path / "files", postgres.empty()), "lab-a")
