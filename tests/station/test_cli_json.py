"""`--json` on every command, errors included: stdout then holds exactly one JSON object whatever happened, with
times as ISO 8601 UTC."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import pytest
from typer.testing import CliRunner

from station.cli import app
from tests.processes import interrupt, popen

runner = CliRunner()


def one_json(result) -> dict:
    """stdout is exactly one JSON object (on one line or indented)."""
    doc, end = json.JSONDecoder().raw_decode(result.stdout.lstrip())
    assert not result.stdout.lstrip()[end:].strip(), result.stdout
    return doc


@pytest.mark.parametrize(("args", "code", "message"), [
    (["status", "NO-RUN"], 2, "no run 'NO-RUN'"),
    (["pause", "NO-RUN"], 2, "no run 'NO-RUN'"),
    (["continue", "NO-RUN"], 2, "no run 'NO-RUN'"),
    (["stop", "NO-RUN"], 2, "no run 'NO-RUN'"),
    (["export", "NO-RUN"], 2, "no run 'NO-RUN'"),
    (["run", "p5-eis", "--cell", "host-cu-li", "--dry-run", "--channel", "nope/1"], 2, "is not configured"),
    (["plan", "no-such-protocol", "--cell", "host-cu-li"], 2, "not found"),
    (["library", "copy", "no-such-entry"], 2, "not a library protocol, cell or campaign"),
    (["schema", "nothing"], 2, "unknown schema"),
])
def test_errors_are_one_json_object_with_the_exit_code(tmp_path, args, code, message):
    extra = ["--data-dir", str(tmp_path)] if args[0] in ("status", "pause", "continue", "stop", "export", "run") \
        else []
    result = runner.invoke(app, [*args, *extra, "--json"])
    assert result.exit_code == code
    error = one_json(result)["error"]
    assert error["exit_code"] == code and message in error["message"]
    assert message in result.stderr  # the one-line message is still on stderr for a person


def test_an_invalid_protocol_under_json_is_one_answer_not_two(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("protocol: x\nsteps:\n  - charge: {current: 1 mA, until: {voltage: 9 V}}\n")
    result = runner.invoke(app, ["validate", str(bad), "--cell", "host-cu-li", "--json"])
    assert result.exit_code == 1
    doc = one_json(result)
    assert doc["valid"] is False and doc["problems"]


def test_runs_and_status_give_times_in_iso_8601_utc(tmp_path):
    done = runner.invoke(app, ["run", "p5-eis", "--cell", "host-cu-li", "--dry-run", "--json",
                               "--data-dir", str(tmp_path)])
    run_id = one_json(done)["run_id"]
    (row,) = one_json(runner.invoke(app, ["runs", "--json", "--data-dir", str(tmp_path)]))["runs"]
    assert row["run_id"] == run_id
    for key in ("created_at", "started_at", "updated_at"):
        assert row[key].endswith("Z")
        assert datetime.fromisoformat(row[key].replace("Z", "+00:00")).utcoffset().total_seconds() == 0


def test_a_finished_run_cannot_be_paused_and_says_so_in_json(tmp_path):
    done = runner.invoke(app, ["run", "p5-eis", "--cell", "host-cu-li", "--dry-run", "--json",
                               "--data-dir", str(tmp_path)])
    run_id = one_json(done)["run_id"]
    result = runner.invoke(app, ["pause", run_id, "--json", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "is finished; there is nothing to pause" in one_json(result)["error"]["message"]


def test_sim_says_where_it_listens_in_json():
    proc = popen([sys.executable, "-m", "station", "sim", "neware", "--port", "0", "--channels", "3", "--json"],
                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        doc = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        assert doc["host"] == "127.0.0.1" and doc["port"] > 0 and doc["channels"] == 3
        assert doc["cell"] == "predeposited-ncm622"
    finally:
        assert interrupt(proc) == 0
