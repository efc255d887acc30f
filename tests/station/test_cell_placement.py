"""The cell record reaches the simulated cell: its temperature, its as-assembled OCV, and what the model reports
that no instrument can (Li grown beyond the host's pores) comes back as a stored warning."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from protocols.cells import load_cell
from protocols.library import resolve_cell_path
from station.cli import app
from station.instruments import CellPlacement, InstrumentError
from station.store import Store

runner = CliRunner()


def cell_file(tmp_path, name: str, **changes: str):
    """A library cell file with some lines replaced (``ocv="3.6 V"``)."""
    lines = Path(resolve_cell_path(name)).read_text().splitlines()
    out = []
    for line in lines:
        key = line.split(":", 1)[0]
        out.append(f"{key}: {changes.pop(key)}" if key in changes and not line.startswith(" ") else line)
    out += [f"{k}: {v}" for k, v in changes.items()]
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(out) + "\n")
    return path


def dry_run(tmp_path, protocol: str, cell: str, *sets: str) -> tuple[str, Store]:
    args = ["run", protocol, "--cell", cell, "--dry-run", "--json", "--data-dir", str(tmp_path / "data")]
    for s in sets:
        args += ["--set", s]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["run_id"], Store(tmp_path / "data")


def test_the_cell_records_temperature_in_degc_is_the_models_in_kelvin(tmp_path):
    warm = load_cell(str(cell_file(tmp_path, "predeposited-ncm622", temperature="60 degC")))
    model = CellPlacement.of(warm).build()
    assert model.p.temperature == pytest.approx(333.15)
    assert CellPlacement.of(load_cell(resolve_cell_path("predeposited-ncm622"))).build().p.temperature == (
        pytest.approx(300.15))


@pytest.mark.parametrize(("name", "ocv"), [("predeposited-ncm622", 3.6), ("host-cu-li", 1.5)])
def test_the_model_starts_at_the_cell_records_ocv(tmp_path, name, ocv):
    cell = load_cell(str(cell_file(tmp_path, name, ocv=f"{ocv} V")))
    assert CellPlacement.of(cell).build().open_circuit_voltage() == pytest.approx(ocv, abs=1e-6)


def test_an_ocv_the_model_cannot_reach_is_refused_by_name(tmp_path):
    cell = load_cell(str(cell_file(tmp_path, "predeposited-ncm622", ocv="7 V")))
    with pytest.raises(InstrumentError, match=r"simulated cell: .*ocv.*7"):
        CellPlacement.of(cell).build()


def test_plating_beyond_the_hosts_pores_is_stored_as_a_warning(tmp_path):
    # the host's room: 45 um x 0.46 x 2061 mAh/cm^3 = 4.27 mAh/cm^2; plate 5
    run_id, store = dry_run(tmp_path, "p1-li-deposition", "host-cu-li", "plate_capacity=5mAh/cm^2",
                            "rest_time=1min")
    warnings = [e for e in store.events(run_id) if e.kind == "warning" and "over-plating" in e.message]
    assert len(warnings) == 1, [e.message for e in store.events(run_id)]
    assert warnings[0].message.startswith("simulated cell: over-plating")
    assert store.run(run_id).state == "finished"


def test_plating_within_the_pores_raises_nothing(tmp_path):
    run_id, store = dry_run(tmp_path, "p1-li-deposition", "host-cu-li", "plate_capacity=4mAh/cm^2",
                            "rest_time=1min")
    assert not [e for e in store.events(run_id) if "simulated cell" in e.message]
    assert math.isfinite(store.records(run_id)["voltage"][-1])
