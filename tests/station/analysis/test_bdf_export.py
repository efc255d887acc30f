"""Exports of dry runs (P3 full-cell cycling, P5 EIS, P7 EIS + DC polarisation, P6 CV) read back with the official
``batterydf`` validator against the vendored BDF 1.2.0 ontology, and their numbers checked against the step
program and the records by other routes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from protocols.program import StepProgram
from station.export import export_run
from station.exports import vocabulary
from station.store import Store

from ..bdf_validation import validate

pytest.importorskip("bdf")

Exported = Callable[..., dict]
RECORD_LABELS = [label for label, _ in vocabulary.RECORD_COLUMNS]
EIS_LABELS = [label for label, _ in vocabulary.EIS_COLUMNS]
UNITLESS = ["Step ID", "Step Type"]  # 1.2.0 prefLabels without a unit, which batterydf 0.1.0 cannot load


@pytest.fixture(scope="module")
def exported(dry_run_stored: Callable[..., tuple[Store, str]]) -> Exported:
    """``exported("p5-eis", "llto-li", fmt="csv")``: a dry run of the protocol, exported once per module; returns
    its files by role (records, eis, metadata, summary), the store and run id, and batterydf's report on each file
    (``reports[role]``, one validator process per export)."""
    made: dict[tuple, dict] = {}

    def export(protocol: str, cell: str, fmt: str = "csv", **params: object) -> dict:
        key = (protocol, cell, tuple(sorted(params.items())), fmt)
        if key not in made:
            store, run_id = dry_run_stored(protocol, cell, **params)
            out = store.data_dir / f"out-{fmt}"
            out.mkdir()
            files = export_run(store, run_id, out, fmt)
            summary = export_run(store, run_id, out, fmt, summary=True)
            roles = {"records": files[0], "eis": files[1] if len(files) == 3 else None, "summary": summary[0]}
            present = {role: path for role, path in roles.items() if path is not None}
            reports = dict(zip(present, validate(out, *present.values()), strict=True))
            made[key] = {"store": store, "run_id": run_id, "metadata": files[-1], "reports": reports, **roles}
        return made[key]

    return export


def read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_p3_records_are_canonical_bdf_with_test_scope_capacities_from_the_program(exported, fmt):
    files = exported("p3-full-cell-cycling", "predeposited-ncm622", fmt, cycles=2)
    report = files["reports"]["records"]
    assert report["ok"] and report["missing"] == [] and report["legacy_labels"] == []
    assert report["extras"] == UNITLESS  # batterydf knows every other 1.2.0 label we write
    assert report["time_stats"]["monotonic"]
    frame = read(files["records"])
    assert list(frame.columns) == RECORD_LABELS
    store, run_id = files["store"], files["run_id"]
    records = store.records(run_id)
    assert len(frame) == len(records) == report["rows"]
    program = StepProgram.from_json(store.run(run_id).program)
    # by another route: each (cycle, program step) of P3 runs once; its charge is the program's current times its
    # duration (the step clock at its last record)
    charge = discharge = 0.0
    for cycle, index in sorted({(int(c), int(i)) for c, i in zip(records["cycle"], records["step_index"],
                                                                  strict=True)}):
        rows = (records["cycle"] == cycle) & (records["step_index"] == index)
        current = getattr(program.step(index), "current", 0.0)
        q = current * records["step_time"][rows][-1] / 3600
        charge, discharge = charge + max(q, 0.0), discharge + max(-q, 0.0)
    assert frame["Charging Capacity / Ah"].iloc[-1] == pytest.approx(charge, rel=1e-6)
    assert frame["Discharging Capacity / Ah"].iloc[-1] == pytest.approx(discharge, rel=1e-6)
    # relations: never reset; grow only while the current has that sign; unix time = start + test time
    chg, dch, current = frame["Charging Capacity / Ah"], frame["Discharging Capacity / Ah"], frame["Current / A"]
    assert (chg.diff().fillna(0) >= 0).all() and (dch.diff().fillna(0) >= 0).all()
    assert (chg.diff().fillna(0)[current <= 0] == 0).all() and (dch.diff().fillna(0)[current >= 0] == 0).all()
    offset = frame["Unix Time / s"] - frame["Test Time / s"]
    assert np.ptp(offset) < 1e-5 and offset.iloc[0] == pytest.approx(store.run(run_id).started_at)
    # Step Count steps by one exactly where the program step (Step ID) or the cycle changes; Step Index restarts
    changed = (frame["Step ID"].diff() != 0) | (frame["Cycle Count / 1"].diff() != 0)
    assert (frame["Step Count / 1"].diff().fillna(1) == changed.astype(int)).all()
    assert (frame["Step Index / 1"][changed] == 1).all() and (frame["Step Index / 1"].diff()[~changed] == 1).all()
    assert frame["Step Count / 1"].iloc[-1] == 9  # rest, 2 x 2 formation steps, 2 x 2 cycling steps
    assert (frame["Record Index / 1"] == np.arange(1, len(frame) + 1)).all()
    # a step's running net capacity is the instrument's step-relative capacity
    assert frame["Step Net Capacity / Ah"].to_numpy() == pytest.approx(records["capacity"], rel=1e-9, abs=1e-15)


def test_p3_cycle_variants_restart_at_each_cycle_and_end_at_the_summarys_totals(exported):
    files = exported("p3-full-cell-cycling", "predeposited-ncm622", "csv", cycles=2)
    frame, summary = read(files["records"]), read(files["summary"])
    first = frame["Cycle Count / 1"].diff().fillna(1) != 0
    for direction in ("Charging", "Discharging"):
        for quantity in ("Capacity / Ah", "Energy / Wh"):
            total = frame[f"{direction} {quantity}"]
            # the integral from the start of the current cycle: the test-scope value minus its value before it
            assert (frame[f"Cycle {direction} {quantity}"] == total - total.shift(fill_value=0.0)
                    .where(first).ffill()).all()
    ends = frame.groupby("Cycle Count / 1").last().loc[summary["Cycle Count / 1"]]
    for label in ("Cycle Charging Capacity / Ah", "Cycle Discharging Capacity / Ah", "Cycle Net Capacity / Ah",
                  "Cycle Charging Energy / Wh", "Cycle Discharging Energy / Wh", "Cycle Net Energy / Wh"):
        assert summary[label].to_numpy() == pytest.approx(ends[label].to_numpy(), rel=1e-9), label


def test_p3_summary_agrees_with_the_records_file_cycle_by_cycle(exported):
    files = exported("p3-full-cell-cycling", "predeposited-ncm622", "csv", cycles=2)
    records = pd.read_csv(files["records"])
    summary = pd.read_csv(files["summary"])
    labels = [label for label, _ in vocabulary.SUMMARY_BDF_COLUMNS]
    assert set(labels) | set(vocabulary.SUMMARY_PROJECT_COLUMNS) == set(summary.columns)
    # with the ontology batterydf knows every BDF column of the summary; the efficiency, mean-voltage and tag
    # columns are the project's (1.2.0 defers end-of-cycle aggregates and efficiencies); it is no time series
    report = files["reports"]["summary"]
    assert sorted(report["extras"]) == sorted(vocabulary.SUMMARY_PROJECT_COLUMNS)
    assert report["missing"] == ["Test Time / s", "Voltage / V", "Current / A"]
    # P3: the rest joins formation's first pass: formation cycles 1-2, cycling 3-4; cycles never renumbered
    assert list(summary["Cycle Count / 1"]) == [1, 2, 3, 4]
    assert list(summary["Cycle Tag"]) == ["formation", "formation", "cycling", "cycling"]
    # a cycle's total is the change of the never-reset test-scope value over the cycle (cycles are contiguous)
    ends = records.groupby("Cycle Count / 1").last()
    for cycle_label, test_label in (("Cycle Charging Capacity / Ah", "Charging Capacity / Ah"),
                                    ("Cycle Discharging Capacity / Ah", "Discharging Capacity / Ah"),
                                    ("Cycle Charging Energy / Wh", "Charging Energy / Wh"),
                                    ("Cycle Discharging Energy / Wh", "Discharging Energy / Wh")):
        per_cycle = ends[test_label] - ends[test_label].shift(fill_value=0.0)
        assert summary[cycle_label].to_numpy() == pytest.approx(per_cycle.loc[[1, 2, 3, 4]].to_numpy(), rel=1e-9)
    ce = summary["Cycle Discharging Capacity / Ah"] / summary["Cycle Charging Capacity / Ah"]
    assert summary["Coulombic Efficiency / 1"].to_numpy() == pytest.approx(ce.to_numpy(), rel=1e-12)
    assert 0.8 < ce.iloc[0] < ce.iloc[1] <= 1.0  # first-cycle loss, then near-reversible


@pytest.mark.parametrize(("protocol", "cell"), [("p5-eis", "llto-li"), ("p7-conductivity", "host-blocking")])
def test_eis_spectra_have_their_own_bdf_file(exported, protocol, cell):
    files = exported(protocol, cell)
    store, run_id = files["store"], files["run_id"]
    records = store.records(run_id)
    program = StepProgram.from_json(store.run(run_id).program)
    eis_step = next(s for s in program.steps if s.kind == "eis")
    report = files["reports"]["eis"]
    # with the 1.2.0 ontology batterydf knows every column, the impedance quantities included
    assert report["ok"] and report["missing"] == [] and report["extras"] == [] and report["legacy_labels"] == []
    assert report["time_stats"]["monotonic"]
    frame = read(files["eis"])
    assert list(frame.columns) == EIS_LABELS
    # points_per_decade per decade, spaced evenly in log from the start to the end frequency
    decades = np.log10(eis_step.f_start / eis_step.f_end)
    n = round(float(decades) * eis_step.points_per_decade) + 1
    expected = np.geomspace(eis_step.f_start, eis_step.f_end, n)
    assert frame["Frequency / Hz"].to_numpy() == pytest.approx(expected, rel=1e-6)
    re, im = frame["Real Impedance / ohm"].to_numpy(), frame["Imaginary Impedance / ohm"].to_numpy()
    assert (frame["Absolute Impedance / ohm"].to_numpy() == np.hypot(re, im)).all()  # |Z| = sqrt(Z'^2 + Z''^2)
    assert (frame["Phase / deg"].to_numpy() == np.degrees(np.arctan2(im, re))).all()  # atan2(Z'', Z') 180/pi
    assert frame["Phase / deg"].to_numpy() == pytest.approx(np.angle(re + 1j * im, deg=True), rel=1e-12)
    assert (im < 0).all()  # capacitive, sign as reported
    # the records file keeps the EIS points as records; Record Index places each point in it
    rec = read(files["records"])
    assert files["reports"]["records"]["extras"] == UNITLESS and len(rec) == len(records)
    at = rec.iloc[frame["Record Index / 1"].to_numpy() - 1]
    for label in ("Test Time / s", "Step Count / 1", "Voltage / V"):
        assert (at[label].to_numpy() == frame[label].to_numpy()).all()
    assert (at["Step ID"] == eis_step.index).all()
    assert not set(vocabulary.IMPEDANCE_COLUMNS) & set(rec.columns)
    meta = json.loads(files["metadata"].read_text())
    assert meta["files"]["eis"] == files["eis"].name
    described = meta["bdf"]["columns"]["eis"]
    assert [c["label"] for c in described] == EIS_LABELS
    assert all(c["iri"] == f"{vocabulary.ONTOLOGY_IRI}#{c['name']}" for c in described)
    assert meta["protocol"]["steps"][eis_step.index - 1]["type"] == "EIS"


def test_p7_parameters_resolve_to_si_numbers_in_the_sidecar(exported):
    meta = json.loads(exported("p7-conductivity", "host-blocking")["metadata"].read_text())
    params = meta["protocol"]["parameters"]
    assert params["eis_amplitude"] == {"text": "50 mV", "value": pytest.approx(0.05), "unit": "V"}
    assert params["dc_time"] == {"text": "1 h", "value": pytest.approx(3600.0), "unit": "s"}
    assert meta["cell"]["thickness"]["unit"] == "m" and meta["cell"]["area"]["unit"] == "m^2"
    assert meta["instrument"]["kind"] == "biologic" and "firmware" in meta["instrument"]
    assert meta["bdf"]["ontology_version"] == "1.2.0"


def test_p6_a_cv_step_whose_current_changes_sign_splits_into_charging_and_discharging(exported):
    files = exported("p6-cyclic-voltammetry", "host-cu-li", scan_rate="1 mV/s", cycles=1)
    report = files["reports"]["records"]
    assert report["extras"] == UNITLESS and report["time_stats"]["monotonic"] and files["eis"] is None
    frame = read(files["records"])
    records = files["store"].records(files["run_id"])
    cv = frame["Step ID"] == 2
    assert frame["Step Count / 1"][cv].nunique() == 1  # one step, the current crossing zero inside it
    assert (frame["Current / A"][cv] > 0).any() and (frame["Current / A"][cv] < 0).any()
    chg, dch = frame["Charging Capacity / Ah"].iloc[-1], frame["Discharging Capacity / Ah"].iloc[-1]
    assert chg > 0 and dch > 0
    # by another route: the net charge is the integral of the current over the test time
    net = np.trapezoid(records["current"], records["test_time"]) / 3600
    assert chg - dch == pytest.approx(net, rel=1e-6)
    assert chg - dch == pytest.approx(records["capacity"][-1], rel=1e-9)  # rest before: the CV step's own net
    # within the CV step both directions accumulate, and the step's net is their difference
    step_chg, step_dch = frame["Step Charging Capacity / Ah"][cv], frame["Step Discharging Capacity / Ah"][cv]
    assert step_chg.iloc[-1] > 0 and step_dch.iloc[-1] > 0
    assert (frame["Step Net Capacity / Ah"][cv] == step_chg - step_dch).all()
    assert frame["Step Net Capacity / Ah"][cv].iloc[-1] == pytest.approx(records["capacity"][-1], rel=1e-9)
