"""`station import`: Neware .nda/.ndax and Biologic .mpr files, written from known values by the fixture writers in
tests/station/vendor_files/, read back with the reader packages themselves and then through `station import`, with
every stored value checked against the values the files were made from."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from protocols.cells import load_cell
from protocols.clock import RealClock
from protocols.library import resolve_cell_path
from protocols.program import StepProgram
from station.cli import app
from station.run_data import load_run
from station.samples import register_sample
from station.store import Store
from tests.station.vendor_files import biologic as mpr
from tests.station.vendor_files import neware

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and on PostgreSQL

fastnda = pytest.importorskip("fastnda")
galvani = pytest.importorskip("galvani")

runner = CliRunner()


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, str]:
    """A data directory with one sample on the library cell host-cu-li; (directory, sample id)."""
    store = Store(tmp_path / "data")
    sample = register_sample(store, RealClock(), load_cell(resolve_cell_path("host-cu-li")), name="coin 7")
    store.close()
    return tmp_path / "data", sample.id


def _import(data_dir: Path, *args: str) -> tuple[int, dict | None, str]:
    done = runner.invoke(app, ["import", *args, "--data-dir", str(data_dir), "--json"])
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return done.exit_code, json.loads(lines[0]) if lines else None, done.stderr


def _stored(data_dir: Path, run_id: str):  # type: ignore[no-untyped-def]
    store = Store(data_dir)
    try:
        records = store.records(run_id)
        # a vendor file's records have no chamber or sensor temperature here: no reading, never 0 degC
        assert np.isnan(records["temperature"]).all() and np.isnan(records["aux_temperature"]).all()
        return store.run(run_id), records
    finally:
        store.close()


def _nothing_stored(data_dir: Path) -> None:
    store = Store(data_dir)
    try:
        assert store.runs() == []
        assert store.db.execute("SELECT COUNT(*) FROM record_blocks").fetchone()[0] == 0
    finally:
        store.close()


# -- Neware ------------------------------------------------------------------------------------------------------

#: format -> (suffix, writer, the version the import names)
NEWARE_FORMATS = {
    "nda 29": (".nda", neware.write_nda, "nda 29"),
    "nda 130": (".nda", neware.write_bts9, "nda 130 (record version 19)"),
    "ndax": (".ndax", neware.write_ndax, "ndax (data.ndc version 2, file type 1)"),
}


@pytest.mark.parametrize("form", NEWARE_FORMATS)
def test_neware_file_reads_back_with_fastnda_as_written(tmp_path: Path, form: str) -> None:
    points = neware.cycling_points()
    suffix, write, _ = NEWARE_FORMATS[form]
    path = write(tmp_path / f"cell{suffix}", points)
    df = fastnda.read(path, cycle_mode="raw", raw_categories=True)
    assert df.height == len(points) == 18
    # 0.1 mV counts scaled in float32 by the reader: equal to within two float32 steps
    np.testing.assert_allclose(df["voltage_V"].to_numpy(), [p.voltage_v for p in points], rtol=2.4e-7)
    assert df["current_mA"].to_list() == [p.current_ma for p in points]  # -1, +1, 0.5 mA: exact in float32
    assert df["cycle_count"].to_list() == [p.cycle for p in points]
    assert df["step_index"].to_list() == [p.step for p in points]
    assert df["step_type"].to_list() == [p.step_type for p in points]
    np.testing.assert_allclose(df["capacity_mAh"].to_numpy(), [p.charge_mah - p.discharge_mah for p in points],
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(df["energy_mWh"].to_numpy(), [p.charge_mwh - p.discharge_mwh for p in points],
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(df["total_time_s"].to_numpy(), [p.test_time_s for p in points])


@pytest.mark.parametrize("form", NEWARE_FORMATS)
def test_neware_import_stores_our_convention_and_a_program(data: tuple[Path, str], tmp_path: Path,
                                                           form: str) -> None:
    data_dir, sample = data
    points = neware.cycling_points()
    suffix, write, version = NEWARE_FORMATS[form]
    path = write(tmp_path / f"cell{suffix}", points)
    code, doc, stderr = _import(data_dir, str(path), "--sample", sample)
    assert code == 0, stderr
    (result,) = doc["imported"]  # type: ignore[index]
    assert result["records"] == 18 and result["vendor"] == "Neware" and result["sample"] == sample
    row, records = _stored(data_dir, result["run_id"])
    assert str(row.state) == "finished" and not row.dry_run and row.sample_id == sample
    assert row.instrument["kind"] == "import" and row.instrument["reader"] == "fastnda 1.3.1"
    assert row.instrument["file"] == path.name
    assert row.instrument["file_version"] == version
    # SI, positive current charging, values as the instrument recorded them
    assert records["voltage"].tolist() == [p.voltage_v for p in points]
    assert records["current"].tolist() == [p.current_ma / 1000 for p in points]
    assert records["cycle"].tolist() == [p.cycle for p in points]  # the file's counter, from 1, never renumbered
    assert records["step_index"].tolist() == [p.step for p in points]  # vendor steps 1..4 are program steps 1..4
    assert records["test_time"].tolist() == [p.test_time_s for p in points]
    assert records["step_time"].tolist() == [p.step_time_s for p in points]
    assert records["seq"].tolist() == list(range(1, 19))
    # capacity and energy signed since the step started: 1 mA for 60 s = 1/60 mAh = 16.667 uAh
    signed_ah = [(p.charge_mah - p.discharge_mah) / 1000 for p in points]
    np.testing.assert_allclose(records["capacity"], signed_ah, rtol=1e-6, atol=1e-12)
    assert records["capacity"][5] == pytest.approx(-0.001 * 180 / 3600, rel=1e-6)  # end of the first discharge
    np.testing.assert_allclose(records["energy"], [(p.charge_mwh - p.discharge_mwh) / 1000 for p in points],
                               rtol=1e-6, atol=1e-12)
    assert np.isnan(records["frequency"]).all() and (records["cv_cycle"] == 0).all()
    program = StepProgram.from_json(row.program)
    assert [s.kind for s in program.steps] == ["rest", "discharge", "charge", "charge"]
    assert [getattr(s, "current", None) for s in program.steps] == [None, -0.001, 0.001, 0.0005]
    assert program.steps[3].hold_voltage == 4.2 and program.steps[2].hold_voltage is None  # CCCV_Chg
    assert program.steps[1].label == "Neware step 2: CC_DChg"
    # the test started at 08:00:00 on the instrument's clock (taken as UTC) and ended 930 s later
    start = neware.START.replace(tzinfo=UTC).timestamp()
    assert row.started_at == start and row.updated_at == start + 930
    # analysis reads it like any run
    store = Store(data_dir)
    run = load_run(store, row.id)
    store.close()
    assert run.cell.name == "host-cu-li" and run.sample_id == sample and len(run.records) == 18


# -- Biologic ----------------------------------------------------------------------------------------------------


def test_mpr_files_read_back_with_galvani_as_written(tmp_path: Path) -> None:
    from galvani.BioLogic import MPRfile

    made = mpr.cycling()
    read = MPRfile(str(mpr.write_mpr(tmp_path / "gcpl.mpr", made)))
    assert read.version == 2 and len(read.data) == 12
    assert read.get_flag("mode").tolist() == made.mode.tolist()
    assert read.data["Ns"].tolist() == made.values["Ns"].tolist()
    assert read.data["Ewe/V"].tolist() == [np.float32(v) for v in made.values["Ewe/V"]]
    assert read.data["(Q-Qo)/mA.h"].tolist() == made.values["(Q-Qo)/mA.h"].tolist()
    assert read.timestamp == mpr.START
    spectrum = MPRfile(str(mpr.write_mpr(tmp_path / "peis.mpr", mpr.impedance())))
    assert spectrum.data["freq/Hz"][0] == 10000 and spectrum.data["-Im(Z)/Ohm"][0] > 0


def test_mpr_cycling_import(data: tuple[Path, str], tmp_path: Path) -> None:
    data_dir, sample = data
    made = mpr.cycling()
    code, doc, stderr = _import(data_dir, str(mpr.write_mpr(tmp_path / "gcpl.mpr", made)), "--sample", sample)
    assert code == 0, stderr
    row, records = _stored(data_dir, doc["imported"][0]["run_id"])  # type: ignore[index]
    assert row.instrument["vendor"] == "Biologic" and row.instrument["file_version"] == "data module version 2"
    assert row.instrument["reader"] == "galvani 0.5.0"
    t, i_ma, v = made.values["time/s"], made.values["I/mA"], made.values["Ewe/V"]
    assert records["voltage"].tolist() == v.tolist()
    assert records["current"].tolist() == (i_ma / 1000).tolist()
    assert records["cycle"].tolist() == [0] * 12  # EC-Lab counts from 0; kept as the file has it
    assert records["step_index"].tolist() == (made.values["Ns"] + 1).tolist()  # Ns 0..3 -> steps 1..4
    assert records["test_time"].tolist() == t.tolist()
    # each point's current held since the point before; a step starts where the previous one's last point was
    step_start = np.array([30, 30, 30, 90, 90, 90, 180, 180, 180, 270, 270, 270], dtype=float)
    step_start[:3] = 30.0
    assert records["step_time"].tolist() == (t - step_start).tolist()
    charge_since_step = np.array([0, 0, 0, -0.5 * 30, -0.5 * 60, -0.5 * 90, 0.5 * 30, 0.5 * 60, 0.5 * 90,
                                  0.2 * 30, 0.2 * 30 + 0.1 * 30, 0.2 * 30 + 0.1 * 30 + 0.05 * 30]) / 3600 / 1000
    np.testing.assert_allclose(records["capacity"], charge_since_step, rtol=1e-12, atol=1e-15)
    energy = np.array([0, 0, 0, -0.5 * 3.1, -0.5 * (3.1 + 3.0), -0.5 * (3.1 + 3.0 + 2.9), 0.5 * 3.5,
                       0.5 * (3.5 + 3.6), 0.5 * (3.5 + 3.6 + 3.7), 0.2 * 3.8, 0.3 * 3.8, 0.35 * 3.8]) * 30 / 3600e3
    np.testing.assert_allclose(records["energy"], energy, rtol=1e-9, atol=1e-15)
    program = StepProgram.from_json(row.program)
    assert [s.kind for s in program.steps] == ["rest", "discharge", "charge", "ca"]
    assert program.steps[1].current == -0.0005 and program.steps[2].current == 0.0005
    assert program.steps[3].voltage == 3.8
    assert row.started_at == mpr.START.replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("data_version", "new_header", "declared"), [
    (2, True, "data module version 2 (EC-Lab >= 11.50)"),
    (3, True, "data module version 3 (EC-Lab >= 11.50)"),
])
def test_mpr_of_later_ec_lab_versions(data: tuple[Path, str], tmp_path: Path, data_version: int, new_header: bool,
                                      declared: str) -> None:
    data_dir, sample = data
    made = mpr.cycling()
    path = mpr.write_mpr(tmp_path / "new.mpr", made, data_version=data_version, new_header=new_header)
    code, doc, stderr = _import(data_dir, str(path), "--sample", sample)
    assert code == 0, stderr
    assert doc["imported"][0]["file_version"] == declared  # type: ignore[index]
    _, records = _stored(data_dir, doc["imported"][0]["run_id"])  # type: ignore[index]
    assert records["voltage"].tolist() == made.values["Ewe/V"].tolist()
    assert records["current"].tolist() == (made.values["I/mA"] / 1000).tolist()


def test_mpr_impedance_import(data: tuple[Path, str], tmp_path: Path) -> None:
    data_dir, sample = data
    code, doc, stderr = _import(data_dir, str(mpr.write_mpr(tmp_path / "peis.mpr", mpr.impedance())),
                                "--sample", sample)
    assert code == 0, stderr
    row, records = _stored(data_dir, doc["imported"][0]["run_id"])  # type: ignore[index]
    freq = np.logspace(4, 0, 13)
    z = 10.0 + 100.0 / (1 + 1j * 2 * np.pi * freq * 100.0 * 10e-6)  # the cell the file was made from
    np.testing.assert_allclose(records["frequency"], freq, rtol=1e-6)
    np.testing.assert_allclose(records["z_real"], z.real, rtol=1e-6)
    np.testing.assert_allclose(records["z_imag"], z.imag, rtol=1e-6)  # Im Z, negative: the file's -Im(Z) negated
    assert (records["z_imag"] < 0).all()
    (step,) = StepProgram.from_json(row.program).steps
    assert step.kind == "eis" and (step.f_start, step.f_end, step.points_per_decade) == (10000.0, 1.0, 3)
    assert step.amplitude == 0.01 and step.frequencies() == pytest.approx(freq.tolist(), rel=1e-6)


def test_mpr_voltammetry_import(data: tuple[Path, str], tmp_path: Path) -> None:
    data_dir, sample = data
    made = mpr.voltammetry()
    code, doc, stderr = _import(data_dir, str(mpr.write_mpr(tmp_path / "cv.mpr", made)), "--sample", sample)
    assert code == 0, stderr
    row, records = _stored(data_dir, doc["imported"][0]["run_id"])  # type: ignore[index]
    (step,) = StepProgram.from_json(row.program).steps
    assert step.kind == "cv"
    assert (step.scan_rate, step.vertex_1, step.vertex_2, step.cycles) == (0.01, 2.5, 1.5, 2)
    assert records["cv_cycle"].tolist() == [1] * 40 + [2] * 40
    assert records["current"].tolist() == pytest.approx(((made.values["Ewe/V"] - 2.0) / 1000).tolist(), abs=1e-12)


# -- versions, damage, bad input: one line, nothing stored ------------------------------------------------------


def test_unknown_nda_version_names_it_and_stores_nothing(data: tuple[Path, str], tmp_path: Path) -> None:
    data_dir, sample = data
    path = neware.write_nda(tmp_path / "new.nda", neware.cycling_points(), version=31)
    code, doc, stderr = _import(data_dir, str(path), "--sample", sample)
    assert code == 2 and doc["imported"] == []  # type: ignore[index]
    message = doc["failed"][0]["error"]  # type: ignore[index]
    assert "version nda 31 is not supported by fastnda 1.3.1" in message and "nothing was imported" in message
    assert "Traceback" not in stderr
    _nothing_stored(data_dir)


def test_unknown_ndc_version_in_ndax(data: tuple[Path, str], tmp_path: Path) -> None:
    data_dir, sample = data
    path = neware.write_ndax(tmp_path / "new.ndax", neware.cycling_points(), ndc_version=99)
    code, doc, _ = _import(data_dir, str(path), "--sample", sample)
    assert code == 2 and "data.ndc version 99" in doc["failed"][0]["error"]  # type: ignore[index]
    _nothing_stored(data_dir)


def test_version_fastnda_reads_unconfirmed_imports_with_a_warning(data: tuple[Path, str], tmp_path: Path) -> None:
    """fastnda reads data.ndc version 4 with the version-2 layout but has not seen a real one: the import goes on,
    with the same values, and says so."""
    data_dir, sample = data
    path = neware.write_ndax(tmp_path / "v4.ndax", neware.cycling_points(), ndc_version=4)
    code, doc, stderr = _import(data_dir, str(path), "--sample", sample)
    assert code == 0, stderr
    (result,) = doc["imported"]  # type: ignore[index]
    assert result["file_version"] == "ndax (data.ndc version 4, file type 1)"
    assert len(result["warnings"]) == 1 and "ndc version 4 filetype 1 has not been verified" in result["warnings"][0]
    assert stderr.count("warning:") == 1
    _, records = _stored(data_dir, result["run_id"])
    assert records["voltage"].tolist() == [p.voltage_v for p in neware.cycling_points()]


def test_unknown_mpr_data_module_version(data: tuple[Path, str], tmp_path: Path) -> None:
    data_dir, sample = data
    path = mpr.write_mpr(tmp_path / "new.mpr", mpr.cycling(), data_version=7)
    code, doc, _ = _import(data_dir, str(path), "--sample", sample)
    message = doc["failed"][0]["error"]  # type: ignore[index]
    assert code == 2 and "data module version 7 is not supported by galvani 0.5.0" in message
    _nothing_stored(data_dir)


def test_truncated_mpr_fails_whole(data: tuple[Path, str], tmp_path: Path) -> None:
    data_dir, sample = data
    whole = mpr.mpr_bytes(mpr.cycling())
    path = tmp_path / "cut.mpr"
    path.write_bytes(whole[: len(whole) - 700])  # the log module and the last points gone
    code, doc, stderr = _import(data_dir, str(path), "--sample", sample)
    assert code == 2 and "cannot be read as a Biologic .mpr file" in doc["failed"][0]["error"]  # type: ignore[index]
    assert "Traceback" not in stderr
    _nothing_stored(data_dir)


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("folder.nda", None, "not a file"),
    ("table.csv", b"a,b\n1,2\n", "'.csv' is not a vendor file"),
    ("empty.mpr", b"", "the file is empty"),
    ("noise.nda", bytes(range(256)) * 4, "not a Neware .nda file"),
    ("noise.ndax", bytes(range(256)) * 4, "not a Neware .ndax file"),
    ("noise.mpr", bytes(range(256)) * 4, "not a Biologic .mpr file"),
    ("missing.nda", "absent", "no such file"),
])
def test_bad_input_is_one_line(data: tuple[Path, str], tmp_path: Path, name: str, content: bytes | str | None,
                               expected: str) -> None:
    data_dir, sample = data
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    done = runner.invoke(app, ["import", str(path), "--sample", sample, "--data-dir", str(data_dir)])
    assert done.exit_code == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0] and str(path) in errors[0]
    assert "Traceback" not in done.output
    _nothing_stored(data_dir)


def test_one_bad_file_does_not_stop_the_others(data: tuple[Path, str], tmp_path: Path) -> None:
    data_dir, sample = data
    good = neware.write_nda(tmp_path / "good.nda", neware.cycling_points())
    bad = tmp_path / "bad.nda"
    bad.write_bytes(b"NEWARE" + bytes(10))
    code, doc, _ = _import(data_dir, str(bad), str(good), "--sample", sample)
    assert code == 2 and len(doc["imported"]) == 1 and doc["failed"][0]["file"] == str(bad)  # type: ignore[index]


def test_store_import_is_one_transaction(tmp_path: Path) -> None:
    """A failure while the records are written (here a block that collides with another) leaves no run row."""
    from station.store import RECORD_DTYPE, StoreError

    store = Store(tmp_path)
    block = np.zeros(70_000, dtype=RECORD_DTYPE)
    block["seq"] = np.r_[np.arange(1, 65_537), np.arange(1, 70_000 - 65_536 + 1)]  # second block starts at seq 1
    with pytest.raises(StoreError):
        store.import_run(run_id="r1", at=1.0, channel="import", instrument={"kind": "import"}, protocol_name="x",
                         protocol_file=None, protocol_source="", program="{}", cell={}, sample_id=None,
                         started_at=None, ended_at=None, records=block, message="imported")
    assert store.runs() == [] and store.db.execute("SELECT COUNT(*) FROM record_blocks").fetchone()[0] == 0
    assert store.db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
    store.close()


# -- samples, readers, repeats ----------------------------------------------------------------------------------


def test_sample_must_exist_or_be_made_from_a_cell(data: tuple[Path, str], tmp_path: Path) -> None:
    data_dir, _ = data
    path = neware.write_nda(tmp_path / "coin9.nda", neware.cycling_points())
    done = runner.invoke(app, ["import", str(path), "--sample", "S000000-XXXX", "--data-dir", str(data_dir)])
    assert done.exit_code == 2 and "no sample 'S000000-XXXX'" in done.stderr
    done = runner.invoke(app, ["import", str(path), "--data-dir", str(data_dir)])
    assert done.exit_code == 2 and "--sample" in done.stderr
    done = runner.invoke(app, ["import", str(path), "--cell", "no-such-cell", "--data-dir", str(data_dir)])
    assert done.exit_code == 2 and "cell 'no-such-cell' not found" in done.stderr
    bad = tmp_path / "bad.nda"
    bad.write_bytes(b"garbage")
    code, doc, _ = _import(data_dir, str(bad), "--cell", "host-cu-li")
    assert code == 2 and doc["sample"] is None  # type: ignore[index]  # no file read: no sample registered
    code, doc, stderr = _import(data_dir, str(path), "--cell", "host-cu-li")
    assert code == 0, stderr
    store = Store(data_dir)
    assert len(store.samples()) == 2  # the fixture's and this one
    made = store.sample(doc["sample"])  # type: ignore[index]
    assert made.name == "coin9" and made.cell["name"] == "host-cu-li"
    assert [r.id for r in store.runs_of_sample(made.id)] == [doc["imported"][0]["run_id"]]  # type: ignore[index]
    store.close()


def test_same_file_twice_is_refused(data: tuple[Path, str], tmp_path: Path) -> None:
    data_dir, sample = data
    path = neware.write_nda(tmp_path / "a.nda", neware.cycling_points())
    first = _import(data_dir, str(path), "--sample", sample)
    code, doc, _ = _import(data_dir, str(path), "--sample", sample)
    assert first[0] == 0 and code == 2
    assert f"already imported for sample {sample} as run {first[1]['imported'][0]['run_id']}" in \
        doc["failed"][0]["error"]  # type: ignore[index]


def test_missing_reader_says_how_to_install(data: tuple[Path, str], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    data_dir, sample = data
    path = mpr.write_mpr(tmp_path / "x.mpr", mpr.cycling())
    monkeypatch.setitem(sys.modules, "galvani", None)  # as if not installed
    done = runner.invoke(app, ["import", str(path), "--sample", sample, "--data-dir", str(data_dir)])
    assert done.exit_code == 2
    assert 'needs the galvani package, which is not installed; pip install "battery-test-station[import]"' \
        in done.stderr
    _nothing_stored(data_dir)
