"""Where the runs live: --data-dir, then station.yaml's data_dir, then $STATION_DATA over both, else the per-user
data folder; never the working directory by accident. Every command that reads it says which it is."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from station.cli import app
from station.config import default_data_dir, load_config

runner = CliRunner()


def test_the_default_is_the_per_user_data_folder_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("STATION_DATA", raising=False)
    monkeypatch.delenv("STATION_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    config, _ = load_config(None)
    assert config.data_dir == default_data_dir()
    assert Path(default_data_dir()).parts[-1] == "battery-test-station"
    assert Path(default_data_dir()).is_relative_to(os.environ["XDG_DATA_HOME"])  # the suite's private folder


def test_runs_started_in_one_folder_are_found_from_another(tmp_path, monkeypatch):
    monkeypatch.delenv("STATION_DATA", raising=False)
    monkeypatch.delenv("STATION_CONFIG", raising=False)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    done = runner.invoke(app, ["run", "p5-eis", "--cell", "host-cu-li", "--dry-run", "--json"])
    assert done.exit_code == 0, done.output
    run_id = json.loads(done.stdout)["run_id"]
    assert f"data: {default_data_dir()}" in done.stderr
    assert not (tmp_path / "a" / "station-data").exists()
    monkeypatch.chdir(tmp_path / "b")
    listed = runner.invoke(app, ["runs", "--json"])
    assert run_id in [r["run_id"] for r in json.loads(listed.stdout)["runs"]]
    assert f"data: {default_data_dir()}" in listed.stderr


def test_data_dir_and_station_data_move_it_and_commands_say_where(tmp_path, monkeypatch):
    monkeypatch.setenv("STATION_DATA", str(tmp_path / "env-data"))
    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0, status.output
    assert f"data: {tmp_path / 'env-data'}" in status.stderr
    explicit = runner.invoke(app, ["runs", "--data-dir", str(tmp_path / "given")])
    assert f"data: {tmp_path / 'given'}" in explicit.stderr


def test_a_new_store_has_16_kb_pages(tmp_path):
    """Record blocks are blobs of up to ~120 KB: 16 KB pages append a catch-up faster than SQLite's 4 KB."""
    from station.store import Store

    store = Store(tmp_path / "new")
    try:
        assert store.db.execute("PRAGMA page_size").fetchone()[0] == 16384
    finally:
        store.close()
