"""Exports: BDF columns, derived step/cycle capacities and per-cycle summaries from stored records."""

from __future__ import annotations

import csv
import json

import pytest

from protocols.cells import load_cell
from protocols.clock import VirtualClock
from protocols.loader import load_protocol_text
from station.export import cycle_summary, export_run
from station.runs import RunManager
from station.store import Store

from .fakes import ScriptedChannel, cc_records

PROTOCOL = """
protocol: two-cycles
steps:
  - repeat: 2
    tag: cycling
    steps:
      - Charge at 1 mA for 1 hour
      - Discharge at 0.9 mA for 1 hour
"""


def two_cycles():
    out, seq, t = [], 1, 0.0
    for cycle in (1, 2):
        for step, current in ((1, 1e-3), (2, -0.9e-3)):
            part = cc_records(current, 3600, every=60, step_index=step, cycle=cycle, first_seq=seq, t0=t)
            out += part
            seq += len(part)
            t = part[-1].test_time + 1
    return out


@pytest.fixture
def finished_run(tmp_path):
    clock = VirtualClock()
    store = Store(tmp_path)
    manager = RunManager(store, clock)
    driver = ScriptedChannel(clock, two_cycles())
    run_id = manager.create(load_protocol_text(PROTOCOL, "p.yaml"), load_cell("predeposited-ncm622"), "fake/1",
                            driver, instrument={"kind": "fake"}, dry_run=True)
    manager.start(run_id)
    manager.supervise([run_id], poll_seconds=600)
    return store, run_id


def test_csv_export_has_bdf_columns_and_derived_capacities(finished_run, tmp_path):
    store, run_id = finished_run
    path, sidecar = export_run(store, run_id, tmp_path / "out.csv")
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * 61
    first = rows[0]
    for label in ("Test Time / s", "Voltage / V", "Current / A", "Cycle Count / 1", "Step Count / 1", "Step ID",
                  "Step Type", "Step Net Capacity / Ah", "Cycle Charging Capacity / Ah", "Frequency / Hz",
                  "Real Impedance / ohm", "Imaginary Impedance / ohm"):
        assert label in first
    end_of_cycle_1 = rows[121]
    assert end_of_cycle_1["Step Type"] == "CC_DCH" and end_of_cycle_1["Cycle Count / 1"] == "1"
    assert float(end_of_cycle_1["Cycle Charging Capacity / Ah"]) == pytest.approx(1e-3)
    assert float(end_of_cycle_1["Cycle Discharging Capacity / Ah"]) == pytest.approx(0.9e-3)
    start_of_cycle_2 = rows[122]
    assert float(start_of_cycle_2["Cycle Charging Capacity / Ah"]) == 0.0  # resets with the cycle
    assert [int(r["Step Count / 1"]) for r in rows[::61]] == [1, 2, 3, 4]
    meta = json.loads(sidecar.read_text())
    assert meta["protocol"]["name"] == "two-cycles" and meta["cell"]["name"] == "predeposited-ncm622"
    assert meta["instrument"] == {"kind": "fake"} and meta["parameters"] == {}


def test_cycle_summary_gives_capacities_and_coulombic_efficiency(finished_run, tmp_path):
    store, run_id = finished_run
    from protocols.program import StepProgram

    summary = cycle_summary(store.records(run_id), StepProgram.from_json(store.run(run_id).program))
    assert list(summary.cycle) == [1, 2]
    assert summary.charge_ah == pytest.approx([1e-3, 1e-3])
    assert summary.discharge_ah == pytest.approx([0.9e-3, 0.9e-3])
    assert summary.ce == pytest.approx([0.9, 0.9])  # charge first: discharge / charge
    assert summary.tag == ["cycling", "cycling"]
    assert summary.mean_charge_v[0] == pytest.approx(3.0 + 1e-4 * 3600 / 2, rel=1e-3)
    path, _ = export_run(store, run_id, tmp_path / "summary.csv", summary=True)
    rows = list(csv.DictReader(path.open()))
    assert float(rows[1]["Coulombic Efficiency / 1"]) == pytest.approx(0.9)


def real_grid_cycles():
    """Two cycles as the real BTS records them (reference section 9): each step's first record at step time 0.0 s
    repeats the test time of the step before's last record, so the test time stands still at every boundary."""
    out, seq, t = [], 1, 0.0
    for cycle in (1, 2):
        for step, current in ((1, 1e-3), (2, -0.9e-3)):
            part = cc_records(current, 3600, every=60, step_index=step, cycle=cycle, first_seq=seq, t0=t)
            out += part
            seq += len(part)
            t = part[-1].test_time  # no gap: the next step's first record repeats this instant
    return out


def test_exports_and_summaries_are_right_with_test_times_repeated_at_step_boundaries(tmp_path):
    clock = VirtualClock()
    store = Store(tmp_path / "data")
    manager = RunManager(store, clock)
    script = real_grid_cycles()
    driver = ScriptedChannel(clock, script)
    run_id = manager.create(load_protocol_text(PROTOCOL, "p.yaml"), load_cell("predeposited-ncm622"), "fake/1",
                            driver, instrument={"kind": "fake"}, dry_run=True)
    manager.start(run_id)
    manager.supervise([run_id], poll_seconds=600)
    records = store.records(run_id)
    assert len(records) == 4 * 61 and list(records["seq"]) == list(range(1, 245))  # nothing dropped as a duplicate
    assert list(records["test_time"][[60, 61, 121, 122]]) == [3600.0, 3600.0, 7200.0, 7200.0]
    path, _ = export_run(store, run_id, tmp_path / "out.csv")
    rows = list(csv.DictReader(path.open()))
    assert [int(r["Step Count / 1"]) for r in rows[::61]] == [1, 2, 3, 4]  # one step per run, boundary or not
    assert [r["Test Time / s"] for r in rows[60:62]] == ["3600.0", "3600.0"]
    assert float(rows[121]["Cycle Discharging Capacity / Ah"]) == pytest.approx(0.9e-3)
    assert float(rows[122]["Cycle Charging Capacity / Ah"]) == 0.0
    from protocols.program import StepProgram

    summary = cycle_summary(records, StepProgram.from_json(store.run(run_id).program))
    assert list(summary.cycle) == [1, 2]
    assert summary.charge_ah == pytest.approx([1e-3, 1e-3]) and summary.discharge_ah == pytest.approx([0.9e-3] * 2)
    assert summary.ce == pytest.approx([0.9, 0.9])


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
