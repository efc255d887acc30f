"""The store's one interface on its two backends (DESIGN section 8): the same schema, the same answers, and what
only a database shared by several stations needs (the database, not a read-then-write, keeps a channel to one
active run; a central schema is migrated on purpose by `station db upgrade`)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import psycopg
import pytest

from station.store import (
    DB_NAME,
    RECORD_DTYPE,
    RECORD_DTYPE_V1,
    SCHEMA_VERSION,
    ChannelBusy,
    SampleRow,
    Store,
    StoreError,
    schema,
)
from tests.processes import CHILD_ENV

RUN = dict(instrument={"kind": "bts", "host": "10.0.0.2"}, protocol_name="p", protocol_file=None,
           protocol_source="steps: []", parameters={"c": "1 mA"}, program="{}", cell={"area": 1.131e-4},
           dry_run=False)


def block(first: int, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=RECORD_DTYPE)
    out["seq"] = np.arange(first, first + n)
    out["test_time"] = 30.0 * out["seq"]
    out["voltage"] = 3.0 + 1e-4 * out["seq"]
    out["current"] = -2.262e-3
    out["frequency"] = out["z_real"] = out["z_imag"] = np.nan
    out["cv_cycle"] = out["seq"] // 100
    return out


@pytest.mark.usefixtures("store_backend")
def test_runs_events_samples_and_records_read_back_exactly_on_either_backend(tmp_path, store_backend):
    store = Store(tmp_path)
    assert store.backend.dialect == store_backend and store.schema_version == SCHEMA_VERSION
    store.create_sample(SampleRow(id="S1", name="coin 1", created_at=10.0, cell={"area": 1.131e-4}, operator="ana",
                                  metadata={"batch": 7}))
    store.create_run(run_id="r1", at=11.0, channel="bts/1", sample_id="S1", **RUN)
    store.set_state("r1", "starting", 12.5, handle={"test_id": 4}, data={"barcode": "S1", "marker": 3})
    store.set_state("r1", "running", 13.0)
    # a page, the same page again after a reconnect, an overlapping page, and a page in the layout before cv_cycle
    assert store.append_records("r1", block(1, 250)) == 250
    assert store.append_records("r1", block(1, 250)) == 250
    assert store.append_records("r1", block(200, 100)) == 299
    old = np.zeros(5, dtype=RECORD_DTYPE_V1)
    old["seq"] = np.arange(300, 305)
    assert store.append_blocks({"r1": [old]}) == {"r1": 304}
    records = store.records("r1")
    assert records["seq"].tolist() == list(range(1, 305)) and store.record_count("r1") == 304
    assert records["voltage"][:299].tolist() == (3.0 + 1e-4 * np.arange(1, 300)).tolist()  # bit for bit
    assert records["cv_cycle"][-6:].tolist() == [2, 0, 0, 0, 0, 0] and np.isnan(records["z_real"][0])
    assert [b["seq"][0] for b in store.iter_record_blocks("r1", after_seq=260)] == [261, 300]
    row = store.run("r")  # a unique prefix names the run
    assert (row.id, row.state, row.started_at, row.handle, row.last_seq, row.sample_id, row.parameters) == (
        "r1", "running", 12.5, {"test_id": 4}, 304, "S1", {"c": "1 mA"})
    assert store.start_intent("r1") == {"barcode": "S1", "marker": 3}
    assert [e.message for e in store.events("r1")] == ["created", "starting", "running"]
    assert [e.run_id for e in store.events_after(store.last_event_id() - 2)] == ["r1", "r1"]
    assert store.sample("S1").metadata == {"batch": 7} and [r.id for r in store.runs_of_sample("S1")] == ["r1"]
    store.request_stop("r1", "operator ana", 20.0)
    assert store.stop_requests(["r1", "nope"]) == {"r1": "operator ana"}
    store.set_state("r1", "stopped", 21.0, "by ana")
    assert store.stop_requests(["r1"]) == {} and store.active_run_ids() == set()
    store.create_run(run_id="r2", at=22.0, channel="bts/1", **RUN)  # the channel is free again
    assert [r.id for r in store.runs(active_only=True)] == ["r2"] and len(store.runs(channel="bts/1")) == 2


@pytest.mark.usefixtures("store_backend")
def test_a_campaign_step_gets_its_id_from_the_database(tmp_path):
    store = Store(tmp_path)
    store.create_sample(SampleRow(id="S1", name="S1", created_at=0.0, cell={}))
    from station.store import CampaignRow

    store.create_campaign(CampaignRow(id="C1", name="c", sample_id="S1", created_at=1.0, updated_at=1.0,
                                      state="pending", source_file=None, source_text="x", plan="{}"), "started")
    first = store.add_campaign_step("C1", stage=0, stage_name="a", role="run", chunk=None, first_cycle=None,
                                    parameters={}, channel="bts/1", at=2.0)
    second = store.add_campaign_step("C1", stage=0, stage_name="a", role="chunk", chunk=1, first_cycle=21,
                                     parameters={"cycles": "20"}, channel="bts/1", at=3.0)
    store.update_campaign_step(second, outcome="finished", cycles=[[21, 1e-3, 9.9e-4, 0.99]])
    steps = store.campaign_steps("C1")
    assert [s.id for s in steps] == [first, second] and second == first + 1
    assert steps[1].cycles == [[21, 1e-3, 9.9e-4, 0.99]] and steps[1].parameters == {"cycles": "20"}
    assert store.request_campaign("C1", "confirm", {"by": "ana"}, 4.0, "confirmed by ana", states=["pending"])
    assert not store.request_campaign("C1", "stop", {"by": "bo"}, 5.0, "stop", states=["running"])
    assert store.campaign("C1").confirm_requested == {"by": "ana"}
    assert [e.message for e in store.campaign_events("C1")] == ["started", "confirmed by ana"]


@pytest.mark.usefixtures("store_backend")
def test_two_writers_racing_for_one_channel_get_one_run_and_one_clear_refusal(tmp_path):
    """Two stations (two connections) start a run on one channel at the same moment, 20 times: the database lets
    exactly one through each time, and the other hears which run has the channel."""
    stores = [Store(tmp_path), Store(tmp_path)]
    for attempt in range(20):
        gate = threading.Barrier(2)
        outcome: list[str] = [""] * 2

        def claim(k: int, attempt: int = attempt, gate: threading.Barrier = gate,
                  outcome: list[str] = outcome) -> None:
            gate.wait()
            try:
                stores[k].create_run(run_id=f"r{attempt}-{k}", at=float(attempt), channel="bts/1", **RUN)
                outcome[k] = "ok"
            except ChannelBusy as exc:
                outcome[k] = str(exc)

        threads = [threading.Thread(target=claim, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(o == "ok" for o in outcome) == [False, True], outcome
        winner = f"r{attempt}-{outcome.index('ok')}"
        refusal = next(o for o in outcome if o != "ok")
        assert refusal == (f"channel bts/1 already has run {winner} (created); stop it or wait for it to finish "
                           f"before starting another")
        stores[0].set_state(winner, "failed", float(attempt) + 0.5, "test")
    assert len(stores[0].runs(channel="bts/1")) == 20


def test_both_backends_have_the_same_tables_and_columns(tmp_path, postgres):
    Store(tmp_path / "lite").close()
    lite = sqlite3.connect(tmp_path / "lite" / DB_NAME)
    tables = {t for (t,) in lite.execute("SELECT name FROM sqlite_master WHERE type='table'")} - {"sqlite_sequence"}
    sqlite_columns = {t: [r[1] for r in lite.execute(f"PRAGMA table_info({t})")] for t in tables}
    with psycopg.connect(postgres.fresh()) as pg:
        rows = pg.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
                          "current_schema() ORDER BY table_name, ordinal_position").fetchall()
        indexes = {r[0] for r in pg.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")}
    pg_columns: dict[str, list[str]] = {}
    for table, column in rows:
        pg_columns.setdefault(table, []).append(column)
    assert pg_columns == sqlite_columns and len(tables) == 11
    lite_indexes = {r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")}
    assert lite_indexes <= indexes and "one_active_run_per_channel" in lite_indexes


def test_the_schema_renders_wide_types_for_postgresql():
    """PostgreSQL's REAL is 4 bytes: a Unix time of 2026 in it would be off by up to 64 s."""
    ddl = " ".join(schema.statements(1, "postgresql"))
    assert "DOUBLE PRECISION" in ddl and " REAL" not in ddl and "BYTEA" in ddl and "WITHOUT ROWID" not in ddl
    assert "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY" in ddl and "AUTOINCREMENT" not in ddl
    assert schema.statements(1, "sqlite")[0].startswith("CREATE TABLE IF NOT EXISTS runs")


def test_a_central_database_is_migrated_only_by_station_db_upgrade(tmp_path, postgres):
    url = postgres.empty()
    with pytest.raises(StoreError) as refused:
        Store(tmp_path, url)
    assert str(refused.value) == (f"{url} has schema 0 and this station needs {SCHEMA_VERSION}; run `station db "
                                  f"upgrade` once (stop the stations of older versions first)")

    def upgrade() -> dict:
        done = subprocess.run([sys.executable, "-m", "station", "db", "upgrade", "--database", url, "--data-dir",
                               str(tmp_path), "--json"], capture_output=True, text=True, env=CHILD_ENV, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert upgrade() == {"database": url, "schema_before": 0, "schema": SCHEMA_VERSION}
    assert upgrade() == {"database": url, "schema_before": SCHEMA_VERSION, "schema": SCHEMA_VERSION}  # idempotent
    assert Store(tmp_path, url).schema_version == SCHEMA_VERSION


def test_a_database_of_another_program_or_a_wrong_url_is_refused_in_one_line(tmp_path, postgres):
    url = postgres.empty()
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("CREATE TABLE invoices (id int)")
    with pytest.raises(StoreError, match=r"^postgresql://\S+ is a database of another program \(tables: invoices\); "
                                         r"choose another database$"):
        Store(tmp_path, url, migrate=True)
    with pytest.raises(StoreError, match=r"^database 'mysql://x/y' is not a postgresql:// URL; give one in "
                                         r"station.yaml"):
        Store(tmp_path, "mysql://x/y")


def test_an_unreachable_database_is_named_without_its_password(tmp_path):
    with pytest.raises(StoreError) as failed:
        Store(tmp_path, "postgresql://lab:secret@127.0.0.1:1/runs?connect_timeout=2")
    text = str(failed.value)
    assert text.startswith("cannot reach the database postgresql://lab:***@127.0.0.1:1/runs?connect_timeout=2 (")
    assert "secret" not in text and "\n" not in text and text.endswith(
        "check that the server runs and the address in station.yaml or $STATION_DATABASE")


def test_station_database_wins_over_station_yaml_and_a_url_given_wins_over_both(tmp_path, postgres, monkeypatch):
    from station.config import load_config

    url = postgres.fresh()
    (tmp_path / "station.yaml").write_text(f"data_dir: {tmp_path / 'data'}\ndatabase: postgresql://elsewhere/db\n"
                                           "instruments: [{name: bts, kind: neware, simulated: true, channels: "
                                           "[{id: 1, voltage: [0 V, 5 V], current: 10 mA}]}]\n")
    monkeypatch.setenv("STATION_DATABASE", url)
    cfg = load_config(str(tmp_path / "station.yaml"))[0]
    assert cfg.database == url and Store(cfg.data_dir, cfg.database).backend.dialect == "postgresql"
    monkeypatch.setenv("STATION_DATABASE", "")  # set but empty: the data directory's SQLite
    cfg = load_config(str(tmp_path / "station.yaml"))[0]
    assert cfg.database is None and Store(cfg.data_dir, cfg.database).backend.dialect == "sqlite"
    assert Store(tmp_path / "data", url).backend.dialect == "postgresql"  # `--database URL`, `--to URL`
    monkeypatch.setenv("STATION_DATABASE", url)
    assert Store(tmp_path / "data", local=True).backend.dialect == "sqlite"  # a station's own store
