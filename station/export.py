"""Export: records as Battery Data Format columns (CSV or Parquet) with a JSON metadata sidecar, and cycle summaries.

Columns use the BDF preferred labels ("Voltage / V"), positive current charging. Derived columns (step count,
step and cycle capacities) are computed here with numpy from the stored records, never stored twice. The fast
writers use pyarrow when it is installed (``pip install "battery-test-station[parquet]"``); CSV falls back to a
pure-Python writer without it, which is correct but slower on million-record runs.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from protocols.program import CurrentStep, EisStep, HoldStep, PowerStep, StepProgram
from station.store import RunRow, Store

BDF_COLUMNS = [
    ("Test Time / s", "test_time"),
    ("Unix Time / s", "unix_time"),
    ("Voltage / V", "voltage"),
    ("Current / A", "current"),
    ("Cycle Count / 1", "cycle"),
    ("Step Count / 1", "step_count"),
    ("Step ID", "step_index"),
    ("Step Type", "step_type"),
    ("Step Time / s", "step_time"),
    ("Record Index / 1", "seq"),
    ("Step Net Capacity / Ah", "capacity"),
    ("Step Charging Capacity / Ah", "step_chg"),
    ("Step Discharging Capacity / Ah", "step_dch"),
    ("Cycle Charging Capacity / Ah", "cycle_chg"),
    ("Cycle Discharging Capacity / Ah", "cycle_dch"),
    ("Step Net Energy / Wh", "energy"),
    ("Frequency / Hz", "frequency"),
    ("Real Impedance / ohm", "z_real"),
    ("Imaginary Impedance / ohm", "z_imag"),
]

SUMMARY_COLUMNS = ["Cycle Count / 1", "Tag", "Charging Capacity / Ah", "Discharging Capacity / Ah",
                   "Coulombic Efficiency / 1", "Charging Energy / Wh", "Discharging Energy / Wh",
                   "Mean Charging Voltage / V", "Mean Discharging Voltage / V"]


class ExportError(Exception):
    pass


class MissingDependency(ExportError):
    """The asked-for format needs an optional package that is not installed; the message says how to install it."""


def step_type(step: Any) -> str:
    if isinstance(step, CurrentStep):
        base = "CCCV" if step.hold_voltage is not None else "CC"
        return f"{base}_{'CHG' if step.current > 0 else 'DCH'}"
    if isinstance(step, PowerStep):
        return "CP_CHG" if step.power > 0 else "CP_DCH"
    if isinstance(step, HoldStep):
        return "CV"
    if isinstance(step, EisStep):
        return "PEIS" if step.mode == "potentio" else "GEIS"
    return {"rest": "REST", "ca": "CA", "cv": "CV_SCAN", "lsv": "LSV"}.get(step.kind, step.kind.upper())


def step_starts(records: np.ndarray) -> np.ndarray:
    """True where a record opens a new step run: another step or cycle, or the step clock starting over (a step
    that loops onto itself)."""
    idx, cyc, st = records["step_index"], records["cycle"], records["step_time"]
    return np.r_[True, (idx[1:] != idx[:-1]) | (cyc[1:] != cyc[:-1]) | (st[1:] < st[:-1])]


def derived_columns(records: np.ndarray, program: StepProgram, started_unix: float) -> dict[str, np.ndarray]:
    """All export columns, vectorised over the run's records."""
    n = len(records)
    cols: dict[str, np.ndarray] = {name: records[name] for name in records.dtype.names}
    cols["unix_time"] = started_unix + records["test_time"]
    if n == 0:
        for name in ("step_count", "step_chg", "step_dch", "cycle_chg", "cycle_dch"):
            cols[name] = np.empty(0)
        cols["step_type"] = np.empty(0, dtype=object)
        return cols
    idx, cyc = records["step_index"], records["cycle"]
    new_step = step_starts(records)
    cols["step_count"] = np.cumsum(new_step)
    cap = records["capacity"]
    cols["step_chg"] = np.maximum(cap, 0.0)
    cols["step_dch"] = np.maximum(-cap, 0.0)
    for key, values in (("cycle_chg", cols["step_chg"]), ("cycle_dch", cols["step_dch"])):
        cols[key] = _cycle_cumulative(values, new_step, cyc)
    types = np.array([step_type(s) for s in program.steps], dtype=object)
    cols["step_type"] = types[np.clip(idx, 1, len(types)) - 1]
    return cols


def _cycle_cumulative(step_values: np.ndarray, new_step: np.ndarray, cycle: np.ndarray) -> np.ndarray:
    """Within each cycle: the finished steps' final values summed, plus the running step's value."""
    starts = np.flatnonzero(new_step)
    ends = np.r_[starts[1:] - 1, len(step_values) - 1]
    finals = step_values[ends]
    step_cycle = cycle[starts]
    cumulative = np.cumsum(finals)
    new_cycle = np.r_[True, step_cycle[1:] != step_cycle[:-1]]
    base = np.maximum.accumulate(np.where(new_cycle, np.r_[0.0, cumulative[:-1]], 0.0))
    before = np.r_[0.0, cumulative[:-1]] - base  # finished steps earlier in the same cycle
    step_of_record = np.cumsum(new_step) - 1
    return before[step_of_record] + step_values


@dataclass
class CycleSummary:
    cycle: np.ndarray
    tag: list[str | None]
    charge_ah: np.ndarray
    discharge_ah: np.ndarray
    ce: np.ndarray
    charge_wh: np.ndarray
    discharge_wh: np.ndarray
    mean_charge_v: np.ndarray
    mean_discharge_v: np.ndarray


def cycle_summary(records: np.ndarray, program: StepProgram) -> CycleSummary:
    """One row per cycle. CE is the capacity returned over the capacity put in, in the cycle's own order: a cycle
    that starts by charging (a full cell) gives discharge/charge, one that starts by discharging (plating on a
    host) gives charge/discharge."""
    if len(records) == 0:
        empty = np.empty(0)
        return CycleSummary(empty, [], empty, empty, empty, empty, empty, empty, empty)
    idx, cyc = records["step_index"], records["cycle"]
    starts = np.flatnonzero(step_starts(records))
    ends = np.r_[starts[1:] - 1, len(records) - 1]
    q_end, e_end = records["capacity"][ends], records["energy"][ends]
    step_cycles = cyc[starts]
    cycles = np.unique(step_cycles)
    position = np.searchsorted(cycles, step_cycles)
    charge_ah = np.bincount(position, np.maximum(q_end, 0), len(cycles))
    discharge_ah = np.bincount(position, np.maximum(-q_end, 0), len(cycles))
    charge_wh = np.bincount(position, np.where(q_end > 0, np.abs(e_end), 0), len(cycles))
    discharge_wh = np.bincount(position, np.where(q_end < 0, np.abs(e_end), 0), len(cycles))
    # which direction each cycle starts with: the first step in it that passed charge
    moved = np.abs(q_end) > 0
    first_dir = np.zeros(len(cycles))
    order = np.flatnonzero(moved)[::-1]  # assign in reverse so the earliest step wins
    first_dir[position[order]] = np.sign(q_end[order])
    with np.errstate(divide="ignore", invalid="ignore"):
        ce = np.where(first_dir > 0, discharge_ah / charge_ah, charge_ah / discharge_ah)
        ce = np.where((charge_ah > 0) & (discharge_ah > 0), ce, np.nan)
        mean_c = np.where(charge_ah > 0, charge_wh / charge_ah, np.nan)
        mean_d = np.where(discharge_ah > 0, discharge_wh / discharge_ah, np.nan)
    tags = []
    for c in cycles:
        step = int(idx[starts[np.searchsorted(step_cycles, c)]])
        tags.append(program.step(step).tag if 1 <= step <= len(program.steps) else None)
    return CycleSummary(cycles, tags, charge_ah, discharge_ah, ce, charge_wh, discharge_wh, mean_c, mean_d)


def started_at(run: RunRow) -> float:
    """The unix time the instrument's test time counts from: when the station sent start (stored with the run);
    a run that never got that far has no records, and its creation time stands in."""
    return run.started_at if run.started_at is not None else run.created_at


def metadata(store: Store, run: RunRow) -> dict[str, Any]:
    program = StepProgram.from_json(run.program)
    return {
        "format": "Battery Data Format (battery-data-alliance) preferred labels; current positive on charge",
        "run_id": run.id,
        "state": run.state,
        "protocol": {"name": run.protocol_name, "file": run.protocol_file, "source": run.protocol_source},
        "parameters": run.parameters,
        "cell": run.cell,
        "channel": run.channel,
        "instrument": run.instrument,
        "test": run.handle,
        "dry_run": run.dry_run,
        "created_at_unix": run.created_at,
        "started_at_unix": started_at(run),
        "cycle_rule": program.cycle_rule,
        "step_program": json.loads(run.program),
        "events": [{"at": e.at, "kind": e.kind, "message": e.message} for e in store.events(run.id)],
    }


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.csv
        import pyarrow.parquet
    except ImportError:
        return None
    import pyarrow as pa

    return pa


def _table(labels: list[str], columns: list[np.ndarray]):
    pa = _pyarrow()
    arrays = [pa.array(c.astype(str) if c.dtype == object else c) for c in columns]
    return pa.table(dict(zip(labels, arrays, strict=True)))


def write_table(path: Path, labels: list[str], columns: list[np.ndarray], fmt: str) -> None:
    pa = _pyarrow()
    if fmt == "parquet":
        if pa is None:
            raise MissingDependency('Parquet export needs pyarrow: pip install "battery-test-station[parquet]"')
        import pyarrow.parquet as pq

        pq.write_table(_table(labels, columns), path)
        return
    if pa is not None:
        import pyarrow.csv as pcsv

        pcsv.write_csv(_table(labels, columns), path)
        return
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(labels)
        lists = [c.tolist() for c in columns]
        writer.writerows(zip(*lists, strict=True))


def export_run(store: Store, run_id: str, out: Path | None, fmt: str = "csv", summary: bool = False) -> list[Path]:
    """Write the run's records (or its cycle summary) and the metadata sidecar; returns the files written."""
    run = store.run(run_id)
    program = StepProgram.from_json(run.program)
    records = store.records(run.id)
    suffix = {"csv": ".csv", "parquet": ".parquet"}[fmt]
    stem = f"{run.id}{'.summary' if summary else ''}.bdf"
    path = Path(out) if out else store.data_dir / "exports" / f"{stem}{suffix}"
    if path.is_dir():
        path = path / f"{stem}{suffix}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if summary:
            table = cycle_summary(records, program)
            columns = [table.cycle, np.array([t or "" for t in table.tag], dtype=object), table.charge_ah,
                       table.discharge_ah, table.ce, table.charge_wh, table.discharge_wh, table.mean_charge_v,
                       table.mean_discharge_v]
            write_table(path, SUMMARY_COLUMNS, columns, fmt)
        else:
            cols = derived_columns(records, program, started_at(run))
            write_table(path, [label for label, _ in BDF_COLUMNS], [cols[key] for _, key in BDF_COLUMNS], fmt)
        sidecar = path.with_name(path.name.removesuffix(suffix) + ".metadata.json")
        sidecar.write_text(json.dumps(metadata(store, run), indent=2))
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror}; choose another --out") from None
    return [path, sidecar]
