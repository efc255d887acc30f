"""Data directories written by older stations open, migrate in place, and keep every run, event and record.

The old schemas are written here from frozen copies of what those versions created, not from the store's own
migration table, so a later edit of that table cannot make these tests agree with it by accident.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from protocols.cells import load_cell
from protocols.loader import load_protocol_text
from station.export import export_run, started_at
from station.run_policy import RunState
from station.store import DB_NAME, SCHEMA_VERSION, Store, StoreError

V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL NOT NULL, state TEXT NOT NULL,
    channel TEXT NOT NULL, instrument TEXT NOT NULL, protocol_name TEXT NOT NULL, protocol_file TEXT,
    protocol_source TEXT NOT NULL, parameters TEXT NOT NULL, program TEXT NOT NULL, cell TEXT NOT NULL,
    handle TEXT, dry_run INTEGER NOT NULL DEFAULT 0, last_seq INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '');
CREATE INDEX runs_by_channel ON runs(channel, state);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL REFERENCES runs(id), at REAL NOT NULL,
    test_time REAL, kind TEXT NOT NULL, message TEXT NOT NULL, data TEXT);
CREATE INDEX events_by_run ON events(run_id, id);
CREATE TABLE record_blocks (
    run_id TEXT NOT NULL REFERENCES runs(id), first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    count INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (run_id, first_seq)) WITHOUT ROWID;
"""
V2_SCHEMA = V1_SCHEMA + """
ALTER TABLE runs ADD COLUMN stop_requested TEXT;
ALTER TABLE runs ADD COLUMN contact_lost_at REAL;
"""
V4_SCHEMA = V2_SCHEMA + """
ALTER TABLE runs ADD COLUMN started_at REAL;
CREATE TABLE samples (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at REAL NOT NULL, cell TEXT NOT NULL, cell_file TEXT,
    operator TEXT, notes TEXT, metadata TEXT NOT NULL DEFAULT '{}');
ALTER TABLE runs ADD COLUMN sample_id TEXT REFERENCES samples(id);
CREATE INDEX runs_by_sample ON runs(sample_id, created_at);
"""
#: the on-disk record layout every version so far has written
OLD_RECORD = np.dtype([("seq", "<i8"), ("test_time", "<f8"), ("step_time", "<f8"), ("step_index", "<i8"),
                       ("cycle", "<i8"), ("voltage", "<f8"), ("current", "<f8"), ("capacity", "<f8"),
                       ("energy", "<f8"), ("frequency", "<f8"), ("z_real", "<f8"), ("z_imag", "<f8")])
PROTOCOL = """
protocol: one-step
steps:
  - Charge at 1 mA for 1 hour
"""
CREATED, STARTING, RUNNING = 1_700_000_000.0, 1_700_000_005.0, 1_700_000_007.5


def old_data_dir(path: Path, version: int) -> Path:
    """A data directory as a version-``version`` station left it: a finished run of 300 records in 3 blocks, a
    run that ended before it started, and a run still running, with their state events."""
    path.mkdir()
    program = load_protocol_text(PROTOCOL, "p.yaml").bind(load_cell("predeposited-ncm622")).to_json()
    db = sqlite3.connect(path / DB_NAME)
    db.execute("PRAGMA journal_mode=WAL")  # as every station version has kept it
    db.executescript(V1_SCHEMA if version == 1 else V2_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    # v1 had no "starting" state: the run went validated -> started -> running
    states = ["created", "validated"] + (["starting: sending start to bts/1-1 with barcode"] if version >= 2 else []) \
        + ["started: test 1 on 1-1", "running", "paused: paused at the instrument",
           "running: continued at the instrument", "finished: program completed"]
    times = [CREATED, CREATED + 1] + ([STARTING] if version >= 2 else []) + [STARTING + 2, RUNNING, 8e9, 9e9, 9.5e9]
    runs = [("done", "finished", states, times, 300), ("refused", "failed", ["created", "failed: refused"],
                                                        [CREATED, CREATED + 1], 0),
            ("live", "running", states[:-3], times[:-3], 100)]
    for run_id, state, run_states, at, records in runs:
        db.execute("INSERT INTO runs(id, created_at, updated_at, state, channel, instrument, protocol_name, "
                   "protocol_file, protocol_source, parameters, program, cell, handle, dry_run, last_seq, message) "
                   "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (run_id, CREATED, at[-1], state, f"bts/{run_id}", json.dumps({"kind": "neware"}), "one-step",
                    None, PROTOCOL, "{}", program, json.dumps({"name": "predeposited-ncm622"}),
                    json.dumps({"channel": "1-1", "test_id": "1", "barcode": run_id, "extra": {}}) if records else None,
                    0, records, ""))
        for message, when in zip(run_states, at, strict=True):
            db.execute("INSERT INTO events(run_id, at, kind, message) VALUES (?,?,?,?)",
                       (run_id, when, "state", message))
        for first in range(1, records + 1, 100):
            block = np.zeros(100, dtype=OLD_RECORD)
            block["seq"] = np.arange(first, first + 100)
            block["test_time"] = (block["seq"] - 1) * 10.0
            block["step_index"], block["cycle"], block["voltage"], block["current"] = 1, 1, 3.7, 1e-3
            db.execute("INSERT INTO record_blocks VALUES (?,?,?,?,?)",
                       (run_id, first, first + 99, 100, block.tobytes()))
    db.commit()
    db.close()
    return path


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_data_directory_opens_with_every_run_and_record(tmp_path, version):
    store = Store(old_data_dir(tmp_path / "data", version))
    assert store.schema_version == SCHEMA_VERSION == 9
    assert store.samples() == [] and all(r.sample_id is None for r in store.runs())  # v4: samples, none yet
    assert store.campaigns() == [] and all(r.campaign_id is None for r in store.runs())  # v5: campaigns, none yet
    runs = {r.id: r for r in store.runs()}
    assert {i: r.state for i, r in runs.items()} == {"done": "finished", "refused": "failed", "live": "running"}
    assert runs["live"].state is RunState.RUNNING and runs["live"].active and not runs["done"].active
    assert [r.id for r in store.runs(active_only=True)] == ["live"]
    assert runs["done"].handle["test_id"] == "1" and runs["live"].stop_requested is None
    records = store.records("done")
    assert list(records["seq"]) == list(range(1, 301)) and records["voltage"][0] == 3.7
    assert store.record_count("live") == 100
    assert [e.message for e in store.events("done")][-1] == "finished: program completed"
    # the start time, from the events that were the only record of it: the intent to start where there was one
    expected = STARTING if version >= 2 else RUNNING
    assert runs["done"].started_at == expected and runs["live"].started_at == expected
    assert runs["refused"].started_at is None and started_at(runs["refused"]) == CREATED


def test_an_old_run_exports_with_its_start_time_and_keeps_being_supervised_in_the_new_schema(tmp_path):
    data = old_data_dir(tmp_path / "data", 2)
    store = Store(data)
    path, sidecar = export_run(store, "done", tmp_path / "done.csv")
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 300 and float(rows[1]["Unix Time / s"]) == pytest.approx(STARTING + 10.0)
    assert json.loads(sidecar.read_text())["started_at_unix"] == STARTING
    # the run that was still running carries on in the new schema
    assert store.append_records("live", np.zeros(0, dtype=OLD_RECORD)) == 100
    store.set_state("live", RunState.STOPPED, 9.9e9, "stopped by the operator")
    assert Store(data).run("live").state == "stopped"


def test_opening_again_does_not_migrate_again(tmp_path):
    data = old_data_dir(tmp_path / "data", 2)
    Store(data).close()
    db = sqlite3.connect(data / DB_NAME)
    db.execute("UPDATE runs SET started_at=42.0 WHERE id='done'")  # a value the backfill would not give
    db.commit()
    db.close()
    assert Store(data).run("done").started_at == 42.0


def test_a_newer_schema_is_refused_and_left_alone(tmp_path):
    data = old_data_dir(tmp_path / "data", 2)
    db = sqlite3.connect(data / DB_NAME)
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    before = (data / DB_NAME).read_bytes()
    with pytest.raises(StoreError, match=r"written by a newer station \(schema 99 > 9\); upgrade this program"):
        Store(data)
    assert (data / DB_NAME).read_bytes() == before


def test_a_new_run_stores_the_time_start_was_sent_once(tmp_path):
    store = Store(tmp_path)
    store.create_run(run_id="r1", at=10.0, channel="c/1", instrument={}, protocol_name="p", protocol_file=None,
                     protocol_source="", parameters={}, program="{}", cell={}, dry_run=True)
    assert store.run("r1").started_at is None
    store.set_state("r1", RunState.VALIDATED, 11.0)
    store.set_state("r1", RunState.STARTING, 12.0, "sending start")
    store.set_state("r1", RunState.STARTING, 15.0, "reconciling")  # a second attempt keeps the first time
    store.set_state("r1", RunState.STARTED, 16.0)
    assert store.run("r1").started_at == 12.0


def test_a_version_4_data_directory_gains_campaigns_and_keeps_its_samples_and_runs(tmp_path):
    """v5 adds campaigns (with their steps and events) and links runs to a campaign and stage; a v4 store's samples
    and runs come through unchanged, belong to no campaign, and a campaign can then be stored on an old sample."""
    from station.store import CampaignRow

    data = tmp_path / "data"
    data.mkdir()
    db = sqlite3.connect(data / DB_NAME)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(V4_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema_version', '4')")
    db.execute("INSERT INTO samples VALUES ('S1', 'host #7', 1.0, '{\"name\": \"host-cu-li\"}', NULL, 'ana', NULL, "
               "'{\"batch\": \"B12\"}')")
    db.execute("INSERT INTO runs(id, created_at, updated_at, state, channel, instrument, protocol_name, "
               "protocol_source, parameters, program, cell, last_seq, started_at, sample_id) VALUES ('r1', 2.0, 3.0, "
               "'finished', 'bts/1', '{}', 'p', '', '{}', '{}', '{}', 0, 2.5, 'S1')")
    db.commit()
    db.close()
    store = Store(data)
    assert store.schema_version == 9
    (sample,) = store.samples()
    assert (sample.id, sample.name, sample.operator, sample.metadata) == ("S1", "host #7", "ana", {"batch": "B12"})
    run = store.run("r1")
    assert (run.sample_id, run.started_at, run.state, run.campaign_id, run.campaign_stage) == (
        "S1", 2.5, "finished", None, None)
    store.create_campaign(CampaignRow(id="C1", name="c", sample_id="S1", created_at=4.0, updated_at=4.0,
                                      state="pending", source_file=None, source_text="campaign: c", plan="{}",
                                      started_by="ana"), "started by ana")
    step = store.add_campaign_step("C1", stage=0, stage_name="one", role="run", chunk=None, first_cycle=None,
                                   parameters={"a": "1"}, channel="bts/1", at=5.0)
    store.update_campaign_step(step, run_id="r1", outcome="finished", cycles=[[2, 0.001, 0.0009, 0.9]])
    store.link_run("r1", "C1", "one")
    assert (store.run("r1").campaign_id, store.run("r1").campaign_stage) == ("C1", "one")
    (stored,) = store.campaign_steps("C1")
    assert (stored.run_id, stored.parameters, stored.cycles) == ("r1", {"a": "1"}, [[2, 0.001, 0.0009, 0.9]])
    assert [(e.kind, e.message, e.who) for e in store.campaign_events("C1")] == [("operator", "started by ana", "ana")]
    assert [c.id for c in Store(data).campaigns(active_only=True)] == ["C1"]

