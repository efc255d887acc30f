"""Budget (issue 15, DESIGN section 11): cycle summary and analysis of a 1-million-record run, under 1 s each.

Run: python benchmarks/bench_analysis.py [--records 1000000]

Two synthetic runs are built in numpy (no store, no simulator), each on a real library program so that step kinds,
tags and cycle numbers are the ones a dry run would carry:

* P3-shaped (predeposited-ncm622: formation, then 0.2C charge / 0.5C discharge), ~390 records per step;
* P2-shaped (host-cu-li: lithiation to 0 V, then plate / strip cycles), ~120 records per step, with a nucleation
  dip at the start of each plating step.

Timed: ``cycle_table``, ``dqdv`` of one cycle (both directions), ``analyze_plating``, and ``analyze_run`` (the
whole ``station analyze`` analysis: whatever the program calls for), each the best of three calls.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocols.cells import Cell, load_cell
from protocols.loader import load_protocol
from protocols.program import CurrentStep, StepProgram, walk
from station.analysis.cycling import cycle_table
from station.analysis.dqdv import dqdv
from station.analysis.plating import analyze_plating
from station.analysis.report import analyze_run
from station.analysis.run_data import RunData
from station.store import RECORD_DTYPE

RECORD_FIELDS = RECORD_DTYPE  # the store's record layout; analysis only reads the fields by name


def _program(protocol: str, cell: Cell, cycles: int) -> StepProgram:
    program = load_protocol(protocol, {"cycles": str(cycles)}).bind(cell)
    assert program is not None
    return program


def synthetic(protocol: str, cell_name: str, n: int, per_step: int, cycles: int) -> RunData:
    """A run of ``n`` records on the nominal path of ``protocol``: CC steps with smooth voltage curves."""
    cell = load_cell(cell_name)
    program = _program(protocol, cell, cycles)
    executed = []
    for item in walk(program):
        executed.append(item)
        if len(executed) * per_step >= n:
            break
    steps = np.array([e.step.index for e in executed])
    cyc = np.array([e.cycle for e in executed])
    current = np.array([e.step.current if isinstance(e.step, CurrentStep) else 0.0 for e in executed])
    runs = len(executed)
    counts = np.full(runs, per_step)
    counts[-1] = n - per_step * (runs - 1)
    run_of = np.repeat(np.arange(runs), counts)
    first = np.r_[0, np.cumsum(counts)[:-1]]
    k = np.arange(n) - first[run_of] + 1
    x = k / per_step  # fraction of the step
    records = np.zeros(n, dtype=RECORD_FIELDS)
    step_time = 30.0 * k
    records["seq"] = np.arange(1, n + 1)
    records["step_time"] = step_time
    records["test_time"] = np.cumsum(np.full(n, 30.0))
    records["step_index"] = steps[run_of]
    records["cycle"] = cyc[run_of]
    i = current[run_of]
    records["current"] = i
    if protocol.startswith("p2"):
        plating = i < 0
        dip = -0.03 * np.exp(-x / 0.01) * (1 - np.exp(-x / 0.002))
        volts = np.where(plating, -0.11 + dip, np.where(i > 0, 0.11 + 0.9 * x**8, 2.8))
    else:
        s = np.clip(x, 1e-3, 1 - 1e-3)
        ocv = 3.75 + 0.08 * np.log(s / (1 - s))
        volts = np.where(i > 0, ocv + 0.03, np.where(i < 0, ocv[::-1] - 0.05, 3.0))
    records["voltage"] = volts
    records["capacity"] = i * step_time / 3600
    records["energy"] = records["capacity"] * volts
    records["frequency"] = records["z_real"] = records["z_imag"] = np.nan
    return RunData(run_id=f"bench-{protocol}", records=records, program=program, cell=cell,
                   protocol_name=protocol)


def best_of(label: str, action: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    wall = min(times)
    print(f"  {label:<42} {wall * 1e3:8.1f} ms")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.records
    worst = 0.0
    full = synthetic("p3-full-cell-cycling", "predeposited-ncm622", n, 390, cycles=n // 700 + 2)
    table = cycle_table(full)
    middle = int(table.cycle[len(table) // 2])
    print(f"P3-shaped run: {n} records, {len(table)} cycles")
    worst = max(worst, best_of("cycle_table", lambda: cycle_table(full)))
    worst = max(worst, best_of(f"dqdv cycle {middle} discharge", lambda: dqdv(full, middle, "discharge")))
    worst = max(worst, best_of(f"dqdv cycle {middle} charge", lambda: dqdv(full, middle, "charge")))
    worst = max(worst, best_of("analyze_run (station analyze)", lambda: analyze_run(full)))
    plate = synthetic("p2-plating-stripping-ce", "host-cu-li", n, 120, cycles=n // 240 + 2)
    print(f"P2-shaped run: {n} records, {len(cycle_table(plate))} cycles")
    worst = max(worst, best_of("cycle_table", lambda: cycle_table(plate)))
    worst = max(worst, best_of("analyze_plating", lambda: analyze_plating(plate)))
    worst = max(worst, best_of("analyze_run (station analyze)", lambda: analyze_run(plate)))
    print(f"slowest: {worst:.3f} s (budget 1 s each): {'ok' if worst < 1.0 else 'OVER BUDGET'}")


if __name__ == "__main__":
    main()
