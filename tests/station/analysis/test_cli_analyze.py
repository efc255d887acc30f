"""``station analyze`` on dry runs: the numbers it prints and writes equal those read from the stored records by
another route, several runs compare in one table, and bad input gets one line and exit code 2."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from station.cli import app
from station.cli_common import out
from station.run_data import load_run
from station.store import Store

runner = CliRunner()


@pytest.fixture(scope="module")
def station_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One data directory holding P2 on the host and on Cu, P3 and P5, as a lab's would."""
    data_dir = tmp_path_factory.mktemp("analyze")
    ids = {}
    for name, protocol, cell, sets in (("host", "p2-plating-stripping-ce", "host-cu-li", ["cycles=3"]),
                                       ("cu", "p2-plating-stripping-ce", "cu-li", ["cycles=3"]),
                                       ("full", "p3-full-cell-cycling", "predeposited-ncm622", ["cycles=2"]),
                                       ("eis", "p5-eis", "host-cu-li", [])):
        args = ["run", protocol, "--cell", cell, "--dry-run", "--json", "--data-dir", str(data_dir)]
        for s in sets:
            args += ["--set", s]
        done = runner.invoke(app, args)
        assert done.exit_code == 0, done.output
        ids[name] = json.loads(done.stdout)["run_id"]
    return data_dir, ids


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as a wide terminal shows them: one line per row, so a row's cells can be read back."""
    monkeypatch.setattr(out, "width", 400)


def analyze(data_dir: Path, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["analyze", *args, "--data-dir", str(data_dir)])


def strip_plate_ce(data_dir: Path, run_id: str) -> dict[int, float]:
    """CE per plate/strip cycle from the stored records: the strip step's last capacity over the plate step's."""
    records = load_run(Store(data_dir), run_id).records
    ce = {}
    for cycle in np.unique(records["cycle"][records["step_index"] == 3]):
        plate = records["capacity"][(records["cycle"] == cycle) & (records["step_index"] == 3)][-1]
        strip = records["capacity"][(records["cycle"] == cycle) & (records["step_index"] == 4)][-1]
        ce[int(cycle)] = strip / -plate
    return ce


def row_cells(text: str, first_cell: str) -> list[str]:
    """The cells of the first table row (``│``) holding ``first_cell``."""
    line = next(line for line in text.splitlines() if line.startswith("│") and first_cell in line)
    return [cell.strip() for cell in line.strip("│").split("│")]


def header_cells(text: str, first_header: str) -> list[str]:
    """The headers (``┃`` rows) of the first table whose first header is ``first_header``."""
    line = next(line for line in text.splitlines() if line.startswith(f"┃ {first_header} "))
    return [cell.strip() for cell in line.strip("┃").split("┃")]


def test_json_of_one_plating_run(station_dir) -> None:
    data_dir, ids = station_dir
    done = analyze(data_dir, ids["host"], "--json")
    assert done.exit_code == 0, done.output
    (doc,) = json.loads(done.stdout)
    assert doc["run_id"] == ids["host"] and doc["protocol"] == "plating-stripping-ce"
    assert {"cycling", "plating"} <= doc.keys() and "eis" not in doc
    ce = strip_plate_ce(data_dir, ids["host"])
    rows = {row["cycle"]: row for row in doc["cycling"]["cycles"]}
    assert rows[1]["ce"] is None  # the lithiation cycle returns nothing: null, not NaN, in the JSON
    for cycle, value in ce.items():
        assert rows[cycle]["ce"] == pytest.approx(value, rel=1e-12)
        assert rows[cycle]["starts_with"] == "discharge"
    assert doc["cycling"]["first_cycle_efficiency"] == pytest.approx(ce[2], rel=1e-12)
    assert [p["plated_ah_per_m2"] for p in doc["plating"]["plating"]] == pytest.approx([20.0] * 3, rel=1e-6)


def test_host_against_cu_in_one_table(station_dir, wide) -> None:
    data_dir, ids = station_dir
    done = analyze(data_dir, ids["host"], ids["cu"], "--ce-cycles", "3-4", "--json")
    assert done.exit_code == 0, done.output
    docs = json.loads(done.stdout)
    assert [d["run_id"] for d in docs] == [ids["host"], ids["cu"]]
    for doc in docs:
        ce = strip_plate_ce(data_dir, doc["run_id"])
        avg = doc["cycling"]["average_ce"]
        assert (avg["first_cycle"], avg["last_cycle"], avg["count"]) == (3, 4, 2)
        assert avg["mean"] == pytest.approx(statistics.fmean([ce[3], ce[4]]), rel=1e-12)
        assert avg["std"] == pytest.approx(statistics.stdev([ce[3], ce[4]]), rel=1e-9)
    done = analyze(data_dir, ids["host"], ids["cu"], "--ce-cycles", "3-4")
    assert done.exit_code == 0, done.output
    text = done.stdout
    assert "2 runs of plating-stripping-ce" in text
    header = header_cells(text, "run")
    assert "first-cycle eff. (%)" in header and "average CE (%)" in header and "host lithiation (mAh/cm^2)" in header
    for name in ("host", "cu"):
        cells = dict(zip(header, row_cells(text, ids[name]), strict=True))
        ce = strip_plate_ce(data_dir, ids[name])
        assert cells["first-cycle eff. (%)"] == f"{ce[2] * 100:.2f}"
        assert cells["average CE (%)"] == f"{statistics.fmean([ce[3], ce[4]]) * 100:.3f}"
        assert cells["CE cycles"] == "3-4"
    # Li on Cu needs the larger nucleation overpotential, and the host takes far more charge to lithiate
    host = dict(zip(header, row_cells(text, ids["host"]), strict=True))
    cu = dict(zip(header, row_cells(text, ids["cu"]), strict=True))
    assert float(cu["nucleation overpot., 1st (mV)"]) > float(host["nucleation overpot., 1st (mV)"])
    assert float(host["host lithiation (mAh/cm^2)"]) > float(cu["host lithiation (mAh/cm^2)"])


def test_full_cell_tables_carry_units(station_dir, wide) -> None:
    data_dir, ids = station_dir
    done = analyze(data_dir, ids["full"])
    assert done.exit_code == 0, done.output
    text = done.stdout
    header = header_cells(text, "cycle")
    for column in ("charge (mAh)", "discharge (mAh)", "discharge (mAh/cm^2)", "discharge (mAh/g)", "CE (%)",
                   "mean dch (V)", "hysteresis (mV)", "retention (%)"):
        assert column in header
    data = load_run(Store(data_dir), ids["full"])
    r = data.records
    chg = r["capacity"][(r["cycle"] == 3) & (r["step_index"] == 5)][-1]
    dch = -r["capacity"][(r["cycle"] == 3) & (r["step_index"] == 6)][-1]
    cells = dict(zip(header, row_cells(text, "│     3 │"), strict=True))
    assert cells["tag"] == "cycling"
    assert cells["charge (mAh)"] == f"{chg * 1e3:.4g}" and cells["CE (%)"] == f"{dch / chg * 100:.2f}"
    assert cells["discharge (mAh/g)"] == f"{dch / data.cell.active_mass:.4g}"  # Ah/kg = mAh/g
    assert cells["retention (%)"] == "100.00"  # cycle 3, the first after formation, is the reference
    assert "reference cycle 3:" in text
    assert any(line.startswith("│     1 │") for line in text.splitlines())  # the rest joins formation's cycle 1


def test_eis_run_gets_the_eis_analysis(station_dir, wide) -> None:
    data_dir, ids = station_dir
    (doc,) = json.loads(analyze(data_dir, ids["eis"], "--json").stdout)
    assert "eis" in doc and "cycling" not in doc and "plating" not in doc
    text = analyze(data_dir, ids["eis"]).stdout
    assert "eis spectra" in text and "95 % interval" in text


def test_unknown_run_and_bad_options(station_dir) -> None:
    data_dir, ids = station_dir
    done = analyze(data_dir, "nope")
    assert done.exit_code == 2 and "no run 'nope'" in done.stderr and done.stdout == ""
    done = analyze(data_dir, "nope", "--json")
    assert done.exit_code == 2 and "no run 'nope'" in json.loads(done.stdout)["error"]["message"]
    done = analyze(data_dir, ids["full"], "--ce-cycles", "five")
    assert done.exit_code == 2 and "--ce-cycles must be a cycle range such as 5-100" in done.stderr
    done = analyze(data_dir, ids["full"], "--ce-cycles", "9-3")
    assert done.exit_code == 2 and "write 3-9" in done.stderr
    done = analyze(data_dir, ids["full"], "--reference-cycle", "99")
    assert done.exit_code == 2
    assert f"run {ids['full']}: reference cycle: cycle 99 has no charge or discharge" in done.stderr
    done = analyze(data_dir, ids["eis"], "--circuit", "R0-p(R1")
    assert done.exit_code == 2 and "--circuit" in done.stderr and "Traceback" not in done.output
