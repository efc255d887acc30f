"""station.load(run_id): a stored run's records as a pandas DataFrame with BDF labels, checked against the store."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import station
from protocols.program import StepProgram
from station.cli import app
from station.loading import COLUMNS, LoadError
from station.store import Store, UnknownRun

runner = CliRunner()


@pytest.fixture(scope="module")
def eis_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A dry run of the library's P5 (a rest, then a spectrum at OCV) on the host-vs-Li cell; (data dir, run id)."""
    data_dir = tmp_path_factory.mktemp("load")
    done = runner.invoke(app, ["run", "p5-eis", "--cell", "host-cu-li", "--dry-run", "--json", "--data-dir",
                               str(data_dir)])
    assert done.exit_code == 0, done.output
    return data_dir, json.loads(done.stdout)["run_id"]


def test_frame_is_the_stored_records(eis_run: tuple[Path, str]) -> None:
    data_dir, run_id = eis_run
    frame = station.load(run_id[:15], data_dir)  # a unique prefix, as every command takes it
    store = Store(data_dir)
    row, records = store.run(run_id), store.records(run_id)
    store.close()
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == len(records) == row.last_seq > 0
    for label, name in (("Record Index / 1", "seq"), ("Test Time / s", "test_time"), ("Step Time / s", "step_time"),
                        ("Step ID", "step_index"), ("Cycle Count / 1", "cycle"), ("Voltage / V", "voltage"),
                        ("Current / A", "current"), ("Step Net Capacity / Ah", "capacity"),
                        ("Step Net Energy / Wh", "energy"), ("Frequency / Hz", "frequency"),
                        ("Real Impedance / ohm", "z_real"), ("Imaginary Impedance / ohm", "z_imag"),
                        ("CV Cycle / 1", "cv_cycle")):
        np.testing.assert_allclose(frame[label].to_numpy(), records[name], rtol=1e-12, atol=1e-15, err_msg=label)
        assert frame[label].dtype == records.dtype[name], label
    # the frame is the records export's table, column for column (station/exports builds both)
    export = data_dir / "load-export.csv"
    assert runner.invoke(app, ["export", run_id, "--out", str(export), "--data-dir", str(data_dir)]).exit_code == 0
    exported = pd.read_csv(export)
    assert list(exported.columns) == list(frame.columns[:len(exported.columns)])
    for label in ("Step Charging Capacity / Ah", "Cycle Net Energy / Wh", "Step Index / 1"):
        np.testing.assert_allclose(exported[label], frame[label], rtol=1e-12, err_msg=label)
    assert frame["Unix Time / s"].tolist() == (row.started_at + records["test_time"]).tolist()
    # the step types follow the program: rows of the EIS step are EIS and carry impedance, the others do not
    program = StepProgram.from_json(row.program)
    eis_steps = {s.index for s in program.steps if s.kind == "eis"}
    in_eis = frame["Step ID"].isin(eis_steps).to_numpy()
    assert in_eis.any() and (~in_eis).any()
    assert set(frame["Step Type"][in_eis]) == {"EIS"}
    assert set(frame["Step Type"][~in_eis]) == {"REST"}
    assert frame["Frequency / Hz"][in_eis].notna().all() and frame["Frequency / Hz"][~in_eis].isna().all()
    assert (frame["Imaginary Impedance / ohm"][in_eis] < 0).any()  # Im Z of a capacitive cell
    # step count: one more at every change of step or cycle, counted here record by record
    expected, count, last = [], 0, None
    for r in records:
        key = (int(r["step_index"]), int(r["cycle"]))
        count += key != last
        last = key
        expected.append(count)
    assert frame["Step Count / 1"].tolist() == expected
    assert frame.attrs["run_id"] == run_id and frame.attrs["protocol"] == row.protocol_name
    assert StepProgram.from_json(frame.attrs["program"]) == program


def test_imported_run_loads_with_vendor_step_types(tmp_path: Path) -> None:
    pytest.importorskip("fastnda")
    from tests.station.vendor_files import neware

    points = neware.cycling_points()
    path = neware.write_nda(tmp_path / "cell.nda", points)
    done = runner.invoke(app, ["import", str(path), "--cell", "host-cu-li", "--data-dir", str(tmp_path / "d"),
                               "--json"])
    assert done.exit_code == 0, done.output
    run_id = json.loads(done.stdout)["imported"][0]["run_id"]
    frame = station.load(run_id, tmp_path / "d")
    types = {1: "REST", 2: "CC_DCH", 3: "CC_CHG", 4: "CCCV_CHG"}
    assert frame["Step Type"].tolist() == [types[p.step] for p in points]
    assert frame["Voltage / V"].tolist() == [p.voltage_v for p in points]
    assert frame["Cycle Count / 1"].tolist() == [p.cycle for p in points]
    # a step looped twice (steps 2 and 3 in cycles 1 and 2) counts as two steps: 1 + 2 + 2 + 1 passes
    assert frame["Step Count / 1"].iloc[-1] == 6
    # the first record, 10 s into the test that started at 08:00:00 on the instrument's clock (taken as UTC)
    assert frame["Unix Time / s"].iloc[0] == neware.START.replace(tzinfo=UTC).timestamp() + 10
    np.testing.assert_allclose(frame["Step Net Capacity / Ah"],
                               [(p.charge_mah - p.discharge_mah) / 1000 for p in points], rtol=1e-6, atol=1e-12)


def test_unknown_run_is_named(eis_run: tuple[Path, str]) -> None:
    with pytest.raises(UnknownRun, match="no run 'nope'"):
        station.load("nope", eis_run[0])


def test_without_pandas_says_how_to_install(eis_run: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(LoadError, match=r'pip install "pandas>=2"'):
        station.load(eis_run[1], eis_run[0])


def test_import_station_stays_cheap_and_analysis_imports() -> None:
    """``import station`` (every CLI start) loads neither pandas nor the loader; a notebook's imports work."""
    code = ("import sys, station; assert 'pandas' not in sys.modules and 'station.loading' not in sys.modules; "
            "import station.analysis; from station.analysis import RunData; assert callable(station.load); "
            "assert 'station.loading' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
