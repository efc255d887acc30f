"""Budget (issue 15): each export of a 1-million-record run in under 1 s, as a whole operation.

Run: python benchmarks/bench_export.py [--records 1000000]

A store is filled with a P3-shaped run (formation, then 0.2C charge / 0.5C discharge cycles, records every 30 s,
about 390 per step) of the requested size, then exported the way ``station export`` does it: BDF CSV, BDF
Parquet and the per-cycle summary, each with its metadata sidecar. Each time is the whole ``export_run`` call:
reading the records back from SQLite, deriving the test-scope columns (or the analysis library's cycle table),
writing with pyarrow (the one writer) and writing the sidecar.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocols.cells import load_cell
from protocols.loader import load_protocol
from protocols.program import walk
from station import export
from station.exports.records import record_table, time_series
from station.exports.writer import write_table
from station.store import RECORD_DTYPE, Store

PER_STEP = 390  # 3.25 h of 0.2C-ish charge at one record per 30 s


def fill(store: Store, n: int) -> str:
    loaded = load_protocol("p3-full-cell-cycling", {"cycles": "2000"})
    cell = load_cell("predeposited-ncm622")
    program = loaded.bind(cell)
    assert program is not None
    run_id = "bench-export"
    store.create_run(run_id=run_id, at=0.0, channel="bench/1", instrument={"kind": "benchmark"},
                     protocol_name=loaded.name, protocol_file=None, protocol_source=loaded.source.text,
                     parameters=loaded.resolved_parameters(), program=program.to_json(),
                     cell=cell.model_dump(mode="json"), dry_run=True)  # fmt: skip
    for state in ("validated", "started", "running"):
        store.set_state(run_id, state, 0.0)
    seq, t0 = 0, 0.0
    for executed in walk(program):
        if seq >= n:
            break
        k = min(PER_STEP, n - seq)
        block = np.zeros(k, dtype=RECORD_DTYPE)
        step_time = 30.0 * np.arange(1, k + 1)
        current = getattr(executed.step, "current", 0.0) or 0.0
        block["seq"] = seq + 1 + np.arange(k)
        block["test_time"] = t0 + step_time
        block["step_time"] = step_time
        block["step_index"] = executed.step.index
        block["cycle"] = executed.cycle
        block["current"] = current
        block["voltage"] = 3.7 + np.sign(current) * 0.4 * step_time / step_time[-1]
        block["capacity"] = current * step_time / 3600
        block["energy"] = block["capacity"] * block["voltage"]
        block["frequency"] = block["z_real"] = block["z_imag"] = np.nan
        block["temperature"] = block["aux_temperature"] = np.nan  # no chamber, no sensor: no temperature columns
        store.append_records(run_id, block)
        seq += k
        t0 += step_time[-1]
    return run_id


def timed(label: str, action) -> float:
    started = time.perf_counter()
    files = action()
    wall = time.perf_counter() - started
    size = sum(f.stat().st_size for f in files) / 2**20
    print(f"  {label:<34} {wall:6.2f} s  {size:7.1f} MB")
    return wall


def breakdown(store: Store, run_id: str, out: Path) -> None:
    """Where the records CSV's time goes: the store read, the derived columns, the pyarrow writer."""
    started = time.perf_counter()
    records = store.records(run_id)
    read = time.perf_counter()
    series = time_series(records, 0.0)
    derived = time.perf_counter()
    write_table(out / "c.bdf.csv", *record_table(series), "csv")
    written = time.perf_counter()
    print(f"  (records CSV: store read {read - started:.2f} s, derived columns {derived - read:.2f} s, "
          f"pyarrow CSV writer {written - derived:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "data")
        run_id = fill(store, args.records)
        print(f"run with {store.record_count(run_id):,} records")
        out = Path(tmp) / "out"
        out.mkdir()
        # the first export of a process also pays for importing pyarrow and for a cold SQLite page cache
        timed("BDF records CSV (first, cold)", lambda: export.export_run(store, run_id, out / "w.bdf.csv"))
        figures = {
            "records CSV": timed("BDF records CSV", lambda: export.export_run(store, run_id, out / "a.bdf.csv")),
            "records Parquet": timed("BDF records Parquet",
                                     lambda: export.export_run(store, run_id, out / "a.bdf.parquet", "parquet")),
            "summary CSV": timed("cycle summary CSV",
                                 lambda: export.export_run(store, run_id, out / "s.bdf.csv", summary=True)),
        }
        breakdown(store, run_id, out)
        store.close()
    ok = all(v < 1.0 for v in figures.values())
    print(f"budget: < 1 s each for a 1-million-record run ({', '.join(figures)}): {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
