"""Exports of a scripted two-cycle run, whose every number is known in closed form: 1 mA charge and 0.9 mA
discharge for 1 h each, 61 records per step, the voltage rising 0.1 mV/s from 3.0 V, so a step's charge is I t
and its energy I t (3.0 V + 0.18 V). The vocabulary is checked against the vendored BDF 1.2.0 ontology with
rdflib, and every file against the official ``batterydf`` validator reading that same ontology."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from protocols.cells import load_cell
from protocols.clock import VirtualClock
from protocols.loader import load_protocol_text
from protocols.program import CaStep, CurrentStep, CvStep, EisStep, HoldStep, PowerStep, RestStep, StepProgram
from station.export import export_run, started_at
from station.exports import vocabulary, writer
from station.exports.records import record_table, time_series
from station.exports.step_types import step_type
from station.runs import RunManager
from station.store import RECORD_DTYPE, Store

from .bdf_validation import ONTOLOGY, validate
from .fakes import ScriptedChannel, cc_records

PROTOCOL = """
protocol: two-cycles
parameters: {current: 1 mA}
steps:
  - repeat: 2
    tag: cycling
    steps:
      - charge: {current: "${current}", until: {time: 1 h}}
      - Discharge at 0.9 mA for 1 hour
"""
MEAN_V = 3.0 + 1e-4 * 3600 / 2  # the mean voltage of every step (linear from 3.0 V over 1 h)
PER_STEP = 61
RECORD_LABELS = [label for label, _ in vocabulary.RECORD_COLUMNS]
UNITLESS = ["Step ID", "Step Type"]  # the two 1.2.0 prefLabels batterydf 0.1.0 cannot load (no " / unit")
BDF = "https://w3id.org/battery-data-alliance/ontology/battery-data-format#"


def two_cycles(repeat_boundary_time: bool = False):
    """Four steps of 61 records each; with ``repeat_boundary_time`` each step's first record repeats the test time
    of the step before's last, as the real BTS records them (reference neware-bts-api.md section 9)."""
    out, seq, t = [], 1, 0.0
    for cycle in (1, 2):
        for step, current in ((1, 1e-3), (2, -0.9e-3)):
            part = cc_records(current, 3600, every=60, step_index=step, cycle=cycle, first_seq=seq, t0=t)
            out += part
            seq += len(part)
            t = part[-1].test_time + (0 if repeat_boundary_time else 1)
    return out


def finish(data_dir, script):
    clock = VirtualClock()
    store = Store(data_dir / "data")
    manager = RunManager(store, clock)
    driver = ScriptedChannel(clock, script)
    run_id = manager.create(load_protocol_text(PROTOCOL, "p.yaml"), load_cell("predeposited-ncm622"), "fake/1",
                            driver, instrument={"kind": "fake", "firmware": "7.6.0"}, dry_run=True)
    manager.start(run_id)
    manager.supervise([run_id], poll_seconds=600)
    return store, run_id


@pytest.fixture
def finished_run(tmp_path):
    return finish(tmp_path, two_cycles())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The scripted run exported once as records CSV and Parquet and as a cycle summary, each file read back by
    batterydf against the vendored ontology (one validator process for all three)."""
    base = tmp_path_factory.mktemp("export")
    store, run_id = finish(base, two_cycles())
    files = {"csv": export_run(store, run_id, base / "out.bdf.csv"),
             "parquet": export_run(store, run_id, base / "p.bdf.parquet", "parquet"),
             "summary": export_run(store, run_id, base / "s.csv", summary=True)}
    reports = validate(base, files["csv"][0], files["parquet"][0], files["summary"][0])
    return {"store": store, "run_id": run_id, "files": files,
            "reports": dict(zip(("csv", "parquet", "summary"), reports, strict=True)),
            "frame": pd.read_csv(files["csv"][0])}


@pytest.fixture(scope="module")
def ontology():
    rdflib = pytest.importorskip("rdflib")  # installed with batterydf
    graph = rdflib.Graph()
    graph.parse(ONTOLOGY, format="turtle")
    return graph


def _one(graph, subject: str, predicate):
    from rdflib import URIRef

    values = [str(v) for v in graph.objects(URIRef(subject), predicate)]
    assert len(values) <= 1, (subject, predicate, values)
    return values[0] if values else None


def test_the_vendored_ontology_is_release_1_2_0_unchanged(ontology):
    from rdflib import OWL, RDF, URIRef

    text = ONTOLOGY.read_text(encoding="utf-8")
    assert len(text) == 167_688  # the source's length in characters (commit 0f689430, battery-data-format.ttl)
    assert hashlib.sha256(ONTOLOGY.read_bytes()).hexdigest() == vocabulary.ONTOLOGY_SHA256
    assert _one(ontology, vocabulary.ONTOLOGY_IRI, OWL.versionInfo) == "1.2.0" == vocabulary.ONTOLOGY_VERSION
    assert _one(ontology, vocabulary.ONTOLOGY_IRI, OWL.versionIRI) == vocabulary.ONTOLOGY_VERSION_IRI
    license_ = URIRef("http://purl.org/dc/terms/license")
    assert _one(ontology, vocabulary.ONTOLOGY_IRI, license_) == "http://www.apache.org/licenses/LICENSE-2.0"
    classes = set(ontology.subjects(RDF.type, OWL.Class))
    assert len(classes) == 68 and len({c for c in classes if str(c).startswith(BDF)}) == 58


def test_every_label_unit_and_iri_of_the_vocabulary_is_the_ontologys(ontology):
    from rdflib import OWL, RDF, SKOS, URIRef

    unit_code = URIRef("https://schema.org/unitCode")
    classes = set(ontology.subjects(RDF.type, OWL.Class))
    for term in vocabulary.TERMS.values():
        assert term.iri == BDF + term.name and URIRef(term.iri) in classes, term
        assert _one(ontology, term.iri, SKOS.prefLabel) == term.label, term
        assert _one(ontology, term.iri, OWL.deprecated) in (None, "false"), term
        assert _one(ontology, term.iri, unit_code) == term.unit, term
    # every column of every file is a term of the table
    for columns in (vocabulary.RECORD_COLUMNS, vocabulary.EIS_COLUMNS, vocabulary.SUMMARY_BDF_COLUMNS):
        assert all(vocabulary.TERMS[name].label == label for label, name in columns)
    # the definitions the choices rest on: the program's step is step_id, Step Index is the position in a step
    definition = {name: _one(ontology, BDF + name, SKOS.definition) for name in ("step_id", "step_index", "step_type")}
    assert "defined in the test program" in definition["step_id"]
    assert "within a step" in definition["step_index"] and "maps to step_id" in definition["step_index"]
    assert all(value in definition["step_type"] for value in vocabulary.ONTOLOGY_STEP_TYPES)
    # the formulas the derived columns implement (net and cumulative; phase; |Z|)
    formula = URIRef(BDF + "latexFormula")
    assert r"Q_\mathrm{chg}^\mathrm{step}(t) - Q_\mathrm{dchg}^\mathrm{step}(t)" in _one(
        ontology, BDF + "step_net_capacity_ah", formula)
    assert r"Q_\mathrm{chg}^\mathrm{cyc}(t) + Q_\mathrm{dchg}^\mathrm{cyc}(t)" in _one(
        ontology, BDF + "cycle_cumulative_capacity_ah", formula)
    assert r"\operatorname{atan2}" in _one(ontology, BDF + "phase_degree", formula)
    assert r"\sqrt{Z_\mathrm{re}^2 + Z_\mathrm{im}^2}" in _one(ontology, BDF + "absolute_impedance_ohm", formula)


def test_batterydf_reads_every_records_column_as_canonical_but_the_two_unitless_labels(exported):
    frame = exported["frame"]
    assert list(frame.columns) == RECORD_LABELS and len(frame) == 4 * PER_STEP
    for fmt in ("csv", "parquet"):
        report = exported["reports"][fmt]
        assert report["ok"] and report["missing"] == [] and report["legacy_labels"] == []
        assert report["extras"] == UNITLESS
        assert report["time_stats"]["monotonic"] and report["rows"] == 4 * PER_STEP
        # with the ontology, batterydf knows every other header; it has no slot for a label without a unit
        assert set(RECORD_LABELS) - set(UNITLESS) <= set(report["required"]) | set(report["optional"])
        assert not set(UNITLESS) & set(report["optional"])
    # bdf.read keeps every column, the two it does not know included
    assert set(exported["reports"]["csv"]["read_columns"]) == set(RECORD_LABELS)


def test_positions_and_counters_of_the_scripted_run(exported):
    frame, store = exported["frame"], exported["store"]
    records = store.records(exported["run_id"])
    assert frame["Record Index / 1"].tolist() == list(range(1, 4 * PER_STEP + 1))
    assert frame["Step Count / 1"].tolist() == [k for k in (1, 2, 3, 4) for _ in range(PER_STEP)]
    assert frame["Step ID"].tolist() == [k for k in (1, 2, 1, 2) for _ in range(PER_STEP)]  # the program's step
    assert frame["Step Index / 1"].tolist() == list(range(1, PER_STEP + 1)) * 4  # position within the step
    assert frame["Cycle Count / 1"].tolist() == [1] * 2 * PER_STEP + [2] * 2 * PER_STEP
    assert frame["Step Time / s"].tolist() == records["step_time"].tolist() == [60.0 * k for k in range(61)] * 4
    offset = frame["Unix Time / s"] - frame["Test Time / s"]
    assert offset.to_numpy() == pytest.approx(started_at(store.run(exported["run_id"])), abs=1e-5)


def test_running_capacities_and_energies_in_closed_form(exported):
    frame = exported["frame"]
    ends = [PER_STEP * k - 1 for k in (1, 2, 3, 4)]  # last record of each step
    q_chg, q_dch = 1e-3, 0.9e-3

    def at_ends(label):
        return frame[label].to_numpy()[ends]

    # test scope: never reset; at the end, the sum of the charge (discharge) steps' capacities
    assert at_ends("Charging Capacity / Ah") == pytest.approx([q_chg, q_chg, 2 * q_chg, 2 * q_chg], rel=1e-12)
    assert at_ends("Discharging Capacity / Ah") == pytest.approx([0, q_dch, q_dch, 2 * q_dch], rel=1e-12)
    assert at_ends("Charging Energy / Wh")[-1] == pytest.approx(2 * q_chg * MEAN_V, rel=1e-12)
    assert at_ends("Discharging Energy / Wh")[-1] == pytest.approx(2 * q_dch * MEAN_V, rel=1e-12)
    # step scope: each step's own charge, restarted at every step
    assert at_ends("Step Charging Capacity / Ah") == pytest.approx([q_chg, 0, q_chg, 0], rel=1e-12)
    assert at_ends("Step Discharging Capacity / Ah") == pytest.approx([0, q_dch, 0, q_dch], rel=1e-12)
    assert at_ends("Step Net Capacity / Ah") == pytest.approx([q_chg, -q_dch] * 2, rel=1e-12)
    assert at_ends("Step Net Energy / Wh") == pytest.approx([q_chg * MEAN_V, -q_dch * MEAN_V] * 2, rel=1e-12)
    assert frame["Step Charging Capacity / Ah"].iloc[PER_STEP] == 0.0  # the discharge step's first record
    # cycle scope: restarted at cycle 2; the end-of-cycle net is the cycle's coulombic slippage
    assert at_ends("Cycle Charging Capacity / Ah") == pytest.approx([q_chg] * 4, rel=1e-12)
    assert at_ends("Cycle Discharging Capacity / Ah") == pytest.approx([0, q_dch, 0, q_dch], rel=1e-12, abs=1e-18)
    assert at_ends("Cycle Net Capacity / Ah")[[1, 3]] == pytest.approx([q_chg - q_dch] * 2, rel=1e-9)
    assert at_ends("Cycle Net Energy / Wh")[[1, 3]] == pytest.approx([(q_chg - q_dch) * MEAN_V] * 2, rel=1e-9)
    # by another route: within a step, the step net capacity is the instrument's step-relative capacity I t
    records = exported["store"].records(exported["run_id"])
    assert frame["Step Net Capacity / Ah"].to_numpy() == pytest.approx(records["capacity"], rel=1e-12, abs=1e-18)
    assert frame["Step Net Energy / Wh"].to_numpy() == pytest.approx(records["energy"], rel=1e-12, abs=1e-18)


def test_step_and_cycle_variants_follow_the_ontologys_definitions_exactly(exported):
    frame = exported["frame"]
    before_step = frame["Step Count / 1"].diff().fillna(1) != 0  # a step execution's first record
    before_cycle = frame["Cycle Count / 1"].diff().fillna(1) != 0
    for quantity in ("Capacity / Ah", "Energy / Wh"):
        for scope, first in (("Step", before_step), ("Cycle", before_cycle)):
            chg, dch = frame[f"{scope} Charging {quantity}"], frame[f"{scope} Discharging {quantity}"]
            assert (frame[f"{scope} Net {quantity}"] == chg - dch).all()  # Q_net = Q_chg - Q_dchg
            assert f"{scope} Cumulative {quantity}" not in frame  # Q_chg + Q_dchg: derivable, left out
            for direction in ("Charging", "Discharging"):
                total = frame[f"{direction} {quantity}"]
                # the integral from the start of the current step (cycle): test scope minus its value before it
                start_value = total.shift(fill_value=0.0).where(first).ffill()
                assert (frame[f"{scope} {direction} {quantity}"] == total - start_value).all()
    # direction gating: charging values grow only on charging records, never decrease
    chg, current = frame["Charging Capacity / Ah"], frame["Current / A"]
    assert (chg.diff().fillna(0) >= 0).all() and (chg.diff()[current < 0] == 0).all()


def test_step_types_come_from_the_step_program():
    assert [step_type(s) for s in (
        CurrentStep(index=1, kind="charge", current=1e-3), CurrentStep(index=1, kind="discharge", current=-1e-3),
        CurrentStep(index=1, kind="charge", current=1e-3, hold_voltage=4.2),
        CurrentStep(index=1, kind="discharge", current=-1e-3, hold_voltage=3.0),
        HoldStep(index=1, voltage=4.2, direction="charge"), RestStep(index=1),
        EisStep(index=1, f_start=1e5, f_end=1, points_per_decade=5, amplitude=0.01),
        PowerStep(index=1, power=-0.01), CaStep(index=1, voltage=0.01, vs_ocv=True),
        CvStep(index=1, scan_rate=1e-3, vertex_1=0.0, vertex_2=1.0))] == [
        "CC_CHG", "CC_DCH", "CCCV_CHG", "CCCV_DCH", "CV_CHG", "REST", "EIS", "CP_DCH", "CA", "CYCLIC_VOLTAMMETRY"]
    assert step_type(HoldStep(index=1, voltage=3.0)) is None  # no direction: each execution's charge decides
    assert set(vocabulary.ONTOLOGY_STEP_TYPES) - {"OCV"} <= set(vocabulary.STEP_TYPES)


def test_an_undirected_hold_is_typed_by_the_charge_each_execution_passed():
    program = StepProgram(protocol="hold", cell="x", steps=[RestStep(index=1), HoldStep(index=2, voltage=3.0)])
    records = np.zeros(6, dtype=RECORD_DTYPE)
    records["step_index"] = [1, 2, 2, 2, 2, 2]
    records["cycle"] = [1, 1, 1, 1, 2, 2]  # the hold runs twice: once per cycle
    records["step_time"] = [0, 0, 10, 20, 0, 10]
    records["capacity"] = [0, 0, -1e-6, -2e-6, 0, 1e-6]  # first execution discharges, second charges
    series = time_series(records, 0.0, program)
    assert series["step_type"].values().tolist() == ["REST", "CV_DCH", "CV_DCH", "CV_DCH", "CV_CHG", "CV_CHG"]
    # without a program the type is unknown, never guessed
    assert set(time_series(records, 0.0)["step_type"].values()) == {""}


def test_the_records_step_types_are_those_of_the_run_program(exported, tmp_path):
    store, run_id = exported["store"], exported["run_id"]
    run = store.run(run_id)
    series = time_series(store.records(run_id), started_at(run), StepProgram.from_json(run.program))
    writer.write_table(tmp_path / "t.csv", *record_table(series), "csv")
    types = pd.read_csv(tmp_path / "t.csv")["Step Type"]
    assert types.tolist() == [k for k in ("CC_CHG", "CC_DCH") * 2 for _ in range(PER_STEP)]


def test_export_run_writes_the_programs_step_types(exported):
    assert set(exported["frame"]["Step Type"]) == {"CC_CHG", "CC_DCH"}


def test_parquet_holds_the_same_table_as_the_csv(exported):
    from_csv = exported["frame"].copy()
    from_parquet = pq.read_table(exported["files"]["parquet"][0]).to_pandas()
    assert list(from_parquet.columns) == list(from_csv.columns)
    # the CSV's shortest round-trip decimals give back every double exactly (a whole 3600.0 is written "3600")
    # (an unknown Step Type is an empty string, which a CSV reader gives back as missing)
    from_csv["Step Type"] = from_csv["Step Type"].astype(object).fillna("")
    pd.testing.assert_frame_equal(from_parquet, from_csv, check_exact=True, check_dtype=False)


def test_metadata_sidecar_names_the_pinned_ontology_and_each_columns_iri(exported):
    store, run_id = exported["store"], exported["run_id"]
    meta = json.loads(exported["files"]["csv"][-1].read_text())
    run = store.run(run_id)
    assert meta["bdf"]["ontology_version"] == "1.2.0"
    assert meta["bdf"]["ontology_version_iri"] == (
        "https://w3id.org/battery-data-alliance/ontology/battery-data-format/1.2.0/battery-data-format")
    assert meta["bdf"]["ontology_file"] == {"name": "battery-data-format-1.2.0.ttl",
                                            "sha256": hashlib.sha256(ONTOLOGY.read_bytes()).hexdigest()}
    assert meta["bdf"]["validated_with"]["package"] == "batterydf"
    columns = meta["bdf"]["columns"]["records"]
    assert [c["label"] for c in columns] == RECORD_LABELS
    assert all(c["iri"] == BDF + c["name"] for c in columns)
    assert meta["files"] == {"records": "out.bdf.csv", "eis": None}
    assert meta["protocol"]["name"] == "two-cycles"
    assert meta["protocol"]["sha256"] == hashlib.sha256(run.protocol_source.encode()).hexdigest()
    assert meta["protocol"]["parameters"]["current"] == {"text": "1 mA", "value": pytest.approx(1e-3), "unit": "A"}
    assert [(s["index"], s["type"]) for s in meta["protocol"]["steps"]] == [(1, "CC_CHG"), (2, "CC_DCH"),
                                                                             (3, "LOOP")]
    assert set(meta["bdf"]["step_types"]["values"]) == set(vocabulary.STEP_TYPES)
    assert meta["cell"]["area"] == {"value": pytest.approx(1.131e-4, rel=1e-3), "unit": "m^2"}
    assert meta["instrument"] == {"kind": "fake", "firmware": "7.6.0"}
    assert meta["software"]["name"] == "battery-test-station"
    assert meta["started_at_unix"] == run.started_at


def test_cycle_summary_uses_cycle_scope_terms_and_project_columns_for_what_1_2_0_defers(exported):
    path, sidecar = exported["files"]["summary"]
    frame = pd.read_csv(path)
    meta = json.loads(sidecar.read_text())
    assert meta["files"] == {"summary": "s.csv"}
    described = meta["bdf"]["columns"]["summary"]
    assert {c["label"] for c in described} == set(frame.columns)
    project = {c["label"] for c in described if c["iri"] is None}
    assert project == set(vocabulary.SUMMARY_PROJECT_COLUMNS)
    assert all("defers" in c["why_no_iri"] for c in described if c["iri"] is None)
    assert list(frame["Cycle Count / 1"]) == [1, 2]
    assert list(frame["Cycle Tag"]) == ["cycling", "cycling"]
    assert frame["Cycle Charging Capacity / Ah"].tolist() == pytest.approx([1e-3, 1e-3], rel=1e-12)
    assert frame["Cycle Discharging Capacity / Ah"].tolist() == pytest.approx([0.9e-3, 0.9e-3], rel=1e-12)
    assert frame["Cycle Net Capacity / Ah"].tolist() == pytest.approx([0.1e-3, 0.1e-3], rel=1e-9)
    assert frame["Cycle Net Energy / Wh"].tolist() == pytest.approx([0.1e-3 * MEAN_V] * 2, rel=1e-9)
    assert frame["Coulombic Efficiency / 1"].tolist() == pytest.approx([0.9, 0.9], rel=1e-12)
    assert frame["Energy Efficiency / 1"].tolist() == pytest.approx([0.9, 0.9], rel=1e-12)  # same mean voltages
    assert frame["Mean Charging Voltage / V"].tolist() == pytest.approx([MEAN_V] * 2, rel=1e-12)
    assert frame["Voltage Hysteresis / V"].tolist() == pytest.approx([0.0, 0.0], abs=1e-12)
    # the end-of-cycle values of the records file's cycle-scope columns
    records = exported["frame"].groupby("Cycle Count / 1").last()
    for label in ("Cycle Charging Capacity / Ah", "Cycle Net Energy / Wh"):
        assert frame[label].to_numpy() == pytest.approx(records[label].to_numpy(), rel=1e-9)
    # batterydf with the ontology knows every BDF column; not a time series, it has none of the three required;
    # the project columns are exactly the non-canonical ones
    report = exported["reports"]["summary"]
    assert report["missing"] == ["Test Time / s", "Voltage / V", "Current / A"]
    assert sorted(report["extras"]) == sorted(vocabulary.SUMMARY_PROJECT_COLUMNS)


def test_exports_are_right_with_test_times_repeated_at_step_boundaries(tmp_path):
    store, run_id = finish(tmp_path, two_cycles(repeat_boundary_time=True))
    records = store.records(run_id)
    assert list(records["test_time"][[60, 61, 121, 122]]) == [3600.0, 3600.0, 7200.0, 7200.0]
    path, _ = export_run(store, run_id, tmp_path / "out.csv")
    rows = list(csv.DictReader(path.open()))
    assert [int(r["Step Count / 1"]) for r in rows[::61]] == [1, 2, 3, 4]  # one step per run, boundary or not
    assert [int(r["Step Index / 1"]) for r in rows[60:62]] == [61, 1]
    assert [r["Test Time / s"] for r in rows[60:62]] == ["3600", "3600"]
    assert float(rows[-1]["Discharging Capacity / Ah"]) == pytest.approx(1.8e-3, rel=1e-12)
    assert float(rows[122]["Charging Capacity / Ah"]) == pytest.approx(1e-3, rel=1e-12)
    assert float(rows[122]["Cycle Charging Capacity / Ah"]) == 0.0
    report = validate(tmp_path, path)[0]
    assert report["time_stats"]["monotonic"] and report["extras"] == UNITLESS


def test_unix_time_counts_from_the_stored_start_not_from_event_messages(finished_run, tmp_path):
    store, run_id = finished_run
    run = store.run(run_id)
    starting = [e.at for e in store.events(run_id) if e.kind == "state" and e.message.startswith("starting")]
    assert run.started_at is not None and run.started_at == starting[0]
    store.db.execute("UPDATE events SET message='reworded' WHERE run_id=?", (run_id,))  # no message to match
    path, sidecar = export_run(store, run_id, tmp_path / "out.csv")
    rows = list(csv.DictReader(path.open()))
    assert float(rows[5]["Unix Time / s"]) == pytest.approx(run.started_at + float(rows[5]["Test Time / s"]))
    assert json.loads(sidecar.read_text())["started_at_unix"] == run.started_at


def test_an_unwritable_place_is_one_clear_error(finished_run, tmp_path):
    from station.export import ExportError

    store, run_id = finished_run
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ExportError, match="choose another --out"):
        export_run(store, run_id, blocker / "out.csv")


def test_an_installation_without_pyarrow_gets_one_line_saying_how_to_repair_it(finished_run, tmp_path, monkeypatch):
    from station.export import MissingDependency

    store, run_id = finished_run
    monkeypatch.setattr(writer, "_pyarrow", lambda: None)
    with pytest.raises(MissingDependency, match="pip install --force-reinstall battery-test-station"):
        export_run(store, run_id, tmp_path / "out.csv")


def test_the_sidecars_battery_section_is_valid_against_batterydfs_own_schema(exported):
    fastjsonschema = pytest.importorskip("fastjsonschema")  # installed with batterydf (through nbformat)
    from importlib import resources

    meta = json.loads(exported["files"]["csv"][-1].read_text())
    schema = json.loads(resources.files("bdf").joinpath("schemas/battery.schema.json").read_text())
    fastjsonschema.compile(schema, formats={"uri": lambda _: True})(meta["battery"])
    assert meta["battery"]["cells"] == [{"name": "predeposited-ncm622", "id": exported["run_id"]}]
    assert meta["battery"]["spec"]["rated_capacity_ah"] == pytest.approx(2.2575e-3)
    with pytest.raises(fastjsonschema.JsonSchemaException):  # the schema does check: a cell needs a name
        fastjsonschema.compile(schema)({"cells": [{"id": "x"}], "spec": {}})


@pytest.mark.parametrize(("rows", "slice_rows"), [(10_007, 1000), (2000, 1000), (1001, 1000), (1000, 1000), (3, 1000)])
def test_a_long_csv_written_in_slices_is_byte_for_byte_one_write(tmp_path, rows, slice_rows):
    """Slices formatted on threads and joined in order: the same file as one pyarrow call, quoting included."""
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(rows)
    kinds = writer.Categorical(rng.integers(0, 3, rows).astype(np.int8), ["REST", "CC_CHG", 'a,"b'])
    table = writer.arrow_table(["Test Time / s", "Step Type", "Record Index / 1"],
                               [rng.random(rows) * 1e4, kinds, np.arange(1, rows + 1)])
    pcsv.write_csv(table, str(tmp_path / "one.csv"))
    writer.write_csv(tmp_path / "sliced.csv", table, slice_rows=slice_rows)
    assert (tmp_path / "sliced.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
