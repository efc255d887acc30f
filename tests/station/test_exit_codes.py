"""Every documented exit code from the command that earns it (README "Exit codes"): 0, 1 and each kind of 2 here;
3, 4 and 130 in test_run_truth_bts.py, test_cli_runs.py and test_store_damage.py, with real instruments."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from station.cli import app
from station.exports import writer

runner = CliRunner()


def run(*args: str, data_dir=None):
    return runner.invoke(app, [*args, *(["--data-dir", str(data_dir)] if data_dir else [])])


def test_0_for_a_valid_protocol_a_plan_and_a_finished_dry_run(tmp_path):
    assert run("validate", "p1-li-deposition", "--cell", "host-cu-li").exit_code == 0
    assert run("plan", "p5-eis", "--cell", "host-cu-li").exit_code == 0
    done = run("run", "p5-eis", "--cell", "host-cu-li", "--dry-run", data_dir=tmp_path)
    assert done.exit_code == 0, done.output


def test_1_for_a_protocol_with_problems(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("protocol: x\nsteps:\n  - charge: {current: 1 parsec}\n")
    result = run("validate", str(bad))
    assert result.exit_code == 1 and f"{bad}:3:" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("validate", "no-such-protocol"), "protocol 'no-such-protocol' not found"),
    (("plan", "p1-li-deposition", "--cell", "host-cu-li", "--set", "novalue"), "error:"),
    (("status", "NO-SUCH-RUN"), "no run 'NO-SUCH-RUN'"),
    (("stop", "NO-SUCH-RUN"), "no run 'NO-SUCH-RUN'"),
    (("export", "NO-SUCH-RUN"), "no run 'NO-SUCH-RUN'"),
    (("run", "p5-eis", "--cell", "host-cu-li", "--dry-run", "--channel", "nope/9"), "channel 'nope/9' is not "
     "configured"),
    (("run", "p5-eis", "--cell", "host-cu-li", "--dry-run", "--channel", "sim-neware/21-1-1"),
     "cannot run this program"),
    (("library", "copy", "no-such-entry"), "not a library protocol, cell or campaign"),
])
def test_2_for_usage_errors_each_named(tmp_path, args, message):
    result = run(*args, data_dir=tmp_path if args[0] in ("status", "stop", "export", "run") else None)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_2_for_a_format_whose_optional_package_is_missing(tmp_path, monkeypatch):
    done = run("run", "p5-eis", "--cell", "host-cu-li", "--dry-run", "--json", data_dir=tmp_path)
    run_id = json.loads(done.stdout)["run_id"]
    monkeypatch.setattr(writer, "_pyarrow", lambda: None)  # the one writer of every export format
    result = run("export", run_id, "--format", "parquet", data_dir=tmp_path)
    assert result.exit_code == 2 and "pip install --force-reinstall battery-test-station" in result.stderr
