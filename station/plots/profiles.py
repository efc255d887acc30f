"""Voltage profiles: V against capacity per cycle for a cycling run, V against time for a run without cycles.

A run whose program loops (P2-P4) is drawn per cycle: every charging and discharging step of a cycle from zero
capacity, the capacity counted on across the cycle's steps of the same direction (a CC step followed by its CV
hold continues one curve), in the unit of :func:`station.plots.axes.capacity_unit`. A run without a loop (P1: rest,
lithiation, plating) is one voltage-time trace over all its records, which shows the lithiation slope, the
nucleation dip and the plating plateau the paper compares on the host and on Cu.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from protocols.program import LoopStep
from station.analysis.run_data import RunData
from station.analysis.steps import CYCLING_KINDS, StepRuns, step_runs
from station.plots.axes import Colour, capacity_unit, cycle_colours, finish, new_figure, run_colours
from station.plots.errors import PlotError
from station.plots.selection import pick

#: cycles drawn by default when a run has many: the first two, then these (where the run has them), then the last
DEFAULT_CYCLES = (10, 20, 50, 100, 200, 500, 1000)
SECONDS_PER_HOUR = 3600.0


def has_cycles(run: RunData) -> bool:
    """True when the run's program loops: its profile is drawn per cycle."""
    return any(isinstance(step, LoopStep) for step in run.program.steps)


def profile_cycles(run: RunData, runs: StepRuns | None = None) -> list[int]:
    """The stored cycles in which a charging or discharging step moved charge, in order."""
    runs = runs if runs is not None else step_runs(run.records, run.program)
    keep = runs.counted() & np.isin(runs.kind, list(CYCLING_KINDS))
    return sorted({int(c) for c in runs.cycle[keep]})


def default_cycles(available: Sequence[int]) -> list[int]:
    """All cycles when there are up to five; else the first two, the run's 10th, 20th, 50th, ... and its last:
    a figure stays readable however long the run."""
    if len(available) <= 5:
        return list(available)
    first = available[0]
    wanted = {available[0], available[1], available[-1]}
    wanted |= {first - 1 + n for n in DEFAULT_CYCLES if first - 1 + n in set(available)}
    return sorted(wanted)


def figure(runs: Sequence[RunData], kind: str = "voltage", cycles: Collection[int] | None = None) -> Figure:
    """Voltage profiles of ``runs`` overlaid (legend from each run's label)."""
    fig, (ax,) = new_figure()
    cycling = [has_cycles(r) for r in runs]
    if any(cycling) and not all(cycling):
        names = ", ".join(r.label for r, c in zip(runs, cycling, strict=True) if not c)
        raise PlotError(f"runs without cycles ({names}) are drawn against time and cycling runs against capacity; "
                        f"plot them in separate figures")
    colours = run_colours(len(runs))
    if not all(cycling):
        if cycles is not None:
            raise PlotError("--cycles does not apply: these runs have no cycles (their voltage is drawn against "
                            "time); leave --cycles out")
        for run, colour in zip(runs, colours, strict=True):
            ax.plot(run.records["test_time"] / SECONDS_PER_HOUR, run.records["voltage"], color=colour,
                    label=run.label, linewidth=1.2, gid=f"{run.run_id} time")
        ax.set_xlabel("Time (h)")
    else:
        unit = capacity_unit(runs)
        for run, colour in zip(runs, colours, strict=True):
            _draw_cycles(ax, run, cycles, unit.scale(run), None if len(runs) == 1 else colour)
        ax.set_xlabel(unit.label())
    ax.set_ylabel("Voltage (V)")
    return finish(fig, [ax])


def cycle_curves(run: RunData, cycle: int, scale: float,
                 runs: StepRuns | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(direction, capacity in axis units, voltage) per charging or discharging step of ``cycle``: the capacity
    from zero and continued across the cycle's steps of the same direction. ``runs``: the run's step runs, when
    the caller has them already (cutting a long run into steps once, not once per cycle)."""
    records = run.records
    runs = runs if runs is not None else step_runs(records, run.program)
    keep = runs.counted() & np.isin(runs.kind, list(CYCLING_KINDS)) & (runs.cycle == cycle)
    passed = {"charge": 0.0, "discharge": 0.0}
    curves = []
    for start, end, q in zip(runs.start[keep], runs.end[keep], runs.capacity[keep], strict=True):
        direction = "charge" if q > 0 else "discharge"
        part = records[start:end + 1]
        x = passed[direction] + np.abs(part["capacity"]) * scale
        curves.append((direction, x, part["voltage"].astype(float)))
        passed[direction] = float(x[-1])
    return curves


def _draw_cycles(ax: Axes, run: RunData, cycles: Collection[int] | None, scale: float, base: Colour | None) -> None:
    steps = step_runs(run.records, run.program)
    available = profile_cycles(run, steps)
    picked = pick(run, available, cycles, "cycle", default_cycles(available))
    for cycle, colour in zip(picked, cycle_colours(base, len(picked)), strict=True):
        label = f"{run.label}, cycle {cycle}"
        for direction, x, v in cycle_curves(run, cycle, scale, steps):
            ax.plot(x, v, color=colour, linewidth=1.2, label=label, gid=f"{run.run_id} cycle {cycle} {direction}")
            label = "_nolegend_"
