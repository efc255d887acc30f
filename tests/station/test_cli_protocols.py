"""validate / plan / schema through the CLI: exit codes, the stable --json shape and clean errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from station.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_validate_exit_codes(tmp_path):
    assert run("validate", "p1-li-deposition", "--cell", "host-cu-li").exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("protocol: x\nsteps:\n  - charge: {current: 4 mAh, until: {voltage: 4 V}}\n")
    result = run("validate", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:3:23: steps[0].charge.current: '4 mAh' is a capacity" in result.stderr
    assert "Traceback" not in result.output
    assert run("validate", str(tmp_path / "missing.yaml")).exit_code == 2
    assert run("validate", "p1-li-deposition", "--set", "novalue").exit_code == 2
    assert run("validate", "--no-such-option").exit_code == 2


def test_plan_json_has_the_documented_shape_and_exact_numbers():
    result = run("plan", "p1-li-deposition", "--cell", "host-cu-li", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["protocol"] == "li-deposition" and doc["cell"] == "host-cu-li"
    plate = doc["steps"][2]
    assert set(plate) >= {"index", "kind", "tag", "control", "until", "estimated_s"}
    assert plate["kind"] == "discharge" and plate["index"] == 3 and plate["tag"] is None
    assert plate["control"]["quantity"] == "current"
    assert plate["control"]["value"] == pytest.approx(-0.5655e-3, abs=5e-8)
    assert plate["until"] == [{"quantity": "capacity", "op": ">=", "value": pytest.approx(4.524e-3, abs=5e-7),
                               "then": "next"}]
    assert plate["estimated_s"] == pytest.approx(8 * 3600)
    assert doc["estimated_duration_s"] == pytest.approx(10 * 3600)


def test_plan_with_set_and_a_mass_cell(tmp_path):
    cell = tmp_path / "cell.yaml"
    cell.write_text("name: m\ndiameter: 12 mm\nactive_mass: 10 mg\nspecific_capacity: 175 mAh/g\n")
    result = run("plan", "p4-anode-free-cycling", "--cell", str(cell), "--set", "cycles=3", "--json")
    doc = json.loads(result.stdout)
    charge = doc["steps"][1]
    assert charge["control"]["value"] == pytest.approx(0.175e-3)
    assert doc["steps"][3]["kind"] == "loop" and doc["steps"][3]["count"] == 3


def test_plan_refuses_a_missing_cell_property_with_exit_1(tmp_path):
    cell = tmp_path / "cell.yaml"
    cell.write_text("name: no-area\ncapacity: 2 mAh\n")
    result = run("plan", "p1-li-deposition", "--cell", str(cell))
    assert result.exit_code == 1
    assert "requires the cell's area" in result.stderr


def test_plan_table_lists_every_step():
    result = run("plan", "p3-full-cell-cycling", "--cell", "predeposited-ncm622")
    assert result.exit_code == 0
    assert "formation" in result.stdout and "cycling" in result.stdout and "total:" in result.stdout


def test_schema_is_json_schema_for_both_files():
    doc = json.loads(run("schema").stdout)
    assert doc["protocol"]["title"] == "ProtocolDoc" and "steps" in doc["protocol"]["properties"]
    assert "diameter" in doc["cell"]["properties"]


def test_installed_console_script_runs_as_a_subprocess():
    result = subprocess.run([sys.executable, "-m", "station", "validate", "p2-plating-stripping-ce", "--cell",
                             "host-cu-li"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "valid with cell 'host-cu-li'" in result.stderr


def test_an_error_on_line_100_is_named_by_its_number_not_drawn_as_an_emoji(tmp_path) -> None:
    """rich reads ':100:' as an emoji code unless told not to: the place of the error must stay text."""
    path = tmp_path / "p.yaml"
    path.write_text("protocol: x\nsteps:\n" + "  - rest: 1 h\n" * 97 + "  - rest: {bogus: 1}\n")
    result = run("validate", str(path))
    assert result.exit_code == 1
    assert f"{path}:100:12: steps[97].rest.bogus: unknown key 'bogus'" in result.output
    assert "\N{HUNDRED POINTS SYMBOL}" not in result.output
