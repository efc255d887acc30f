"""Samples: a physical cell with a printable id, its cell record and story; runs belong to it, and the run lists
say which sample, since when, for how long and why they ended."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from station.cli import app
from station.store import Store

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and on PostgreSQL

runner = CliRunner()


def cli(tmp_path, *args: str):
    return runner.invoke(app, [*args, "--data-dir", str(tmp_path)])


def test_a_sample_is_registered_run_and_shown_with_its_runs(tmp_path):
    made = cli(tmp_path, "sample", "new", "--cell", "host-cu-li", "--name", "host #7", "--operator", "ana",
               "--notes", "pressed at 1 t", "--meta", "batch=B12", "--json")
    assert made.exit_code == 0, made.output
    sample = json.loads(made.stdout)
    sid = sample["sample_id"]
    assert re.fullmatch(r"S\d{6}-[2-9A-HJKMNP-Z]{4}", sid)
    assert (sample["name"], sample["cell"], sample["operator"], sample["metadata"]) == (
        "host #7", "host-cu-li", "ana", {"batch": "B12"})
    run = cli(tmp_path, "run", "p1-li-deposition", "--sample", sid, "--dry-run", "--json", "--set",
              "plate_capacity=0.1mAh/cm^2", "--set", "rest_time=1min")
    assert run.exit_code == 0, run.output
    run_id = json.loads(run.stdout)["run_id"]
    row = Store(tmp_path).run(run_id)
    assert row.sample_id == sid and row.cell["name"] == "host-cu-li"
    shown = json.loads(cli(tmp_path, "sample", "show", sid, "--json").stdout)
    assert [r["run_id"] for r in shown["runs"]] == [run_id]
    assert shown["runs"][0]["end_reason"] == "program completed"
    (listed,) = json.loads(cli(tmp_path, "runs", "--json").stdout)["runs"]
    assert listed["sample"] == sid and listed["duration_s"] > 0 and listed["started_at"].endswith("Z")
    assert [s["sample_id"] for s in json.loads(cli(tmp_path, "sample", "list", "--json").stdout)["samples"]] == [sid]


def test_a_run_takes_a_cell_or_a_sample_and_a_wrong_sample_is_named(tmp_path):
    both = cli(tmp_path, "run", "p5-eis", "--cell", "host-cu-li", "--sample", "S1", "--dry-run")
    assert both.exit_code == 2 and "--cell" in both.stderr and "--sample" in both.stderr
    neither = cli(tmp_path, "run", "p5-eis", "--dry-run")
    assert neither.exit_code == 2
    unknown = cli(tmp_path, "run", "p5-eis", "--sample", "S000000-XXXX", "--dry-run")
    assert unknown.exit_code == 2 and "no sample 'S000000-XXXX'" in unknown.stderr
    missing = cli(tmp_path, "sample", "show", "S000000-XXXX")
    assert missing.exit_code == 2 and "'station sample list' lists them" in missing.stderr
    bad_meta = cli(tmp_path, "sample", "new", "--cell", "host-cu-li", "--meta", "novalue")
    assert bad_meta.exit_code == 2 and "is not KEY=VALUE" in bad_meta.stderr
    no_cell = cli(tmp_path, "sample", "new", "--cell", "no-such-cell")
    assert no_cell.exit_code == 2 and "not found" in no_cell.stderr
