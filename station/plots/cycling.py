"""Figures against cycle number (capacity, CE, retention) and differential capacity (dQ/dV), from the cycling
analysis (:mod:`station.analysis.cycling`, :mod:`station.analysis.dqdv`): the figures draw its numbers and never
recompute them, so a figure and ``station analyze`` always agree.

* ``capacity``: charge (open markers) and discharge (filled) capacity of every cycle that passed charge in that
  direction, in the unit of :func:`station.plots.axes.capacity_unit`.
* ``ce``: Coulombic efficiency in % of every complete cycle, in the cycle's own order (discharge/charge for a full
  cell, strip/plate for plating); the 100 % line dotted.
* ``retention``: returned capacity over the default reference cycle's (the first complete cycle of the main
  cycling group, after formation), in %, for the reference and the later cycles of its group, with the 80 %
  end-of-life line dashed; the legend names the reference.
* ``dqdv``: dQ/dV against voltage for charge and discharge of each chosen cycle (default: as the voltage
  profiles choose), on the capacity scale per volt.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from matplotlib.figure import Figure

from station.analysis.cycling import AnalysisError, CycleTable, cycle_table, default_reference, retention
from station.analysis.dqdv import dqdv
from station.analysis.run_data import RunData
from station.plots.axes import capacity_unit, cycle_colours, finish, new_figure, run_colours
from station.plots.errors import PlotError
from station.plots.profiles import default_cycles
from station.plots.selection import pick

PERCENT = 100.0
#: the end-of-life line of the retention figure
END_OF_LIFE = 0.8


def figure(runs: Sequence[RunData], kind: str, cycles: Collection[int] | None = None) -> Figure:
    """The ``kind`` (capacity, ce, retention or dqdv) figure of ``runs`` overlaid."""
    if kind == "dqdv":
        return _dqdv_figure(runs, cycles)
    fig, (ax,) = new_figure()
    unit = capacity_unit(runs)
    for run, colour in zip(runs, run_colours(len(runs)), strict=True):
        table = cycle_table(run)
        ref = default_reference(table) if kind == "retention" else None
        rows = _rows(run, table, cycles, _group_from(table, ref) if ref is not None else None)
        x = table.cycle[rows]
        if kind == "capacity":
            scale = unit.scale(run)
            for name, face in (("discharge", colour), ("charge", "none")):
                y = getattr(table, f"{name}_ah")[rows] * scale
                shown = y > 0
                ax.plot(x[shown], y[shown], linestyle="none", marker="o", markersize=4, color=colour,
                        markerfacecolor=face, label=f"{run.label}, {name}", gid=f"{run.run_id} {name}")
        elif kind == "ce":
            y = table.ce[rows] * PERCENT
            shown = np.isfinite(y)
            ax.plot(x[shown], y[shown], linestyle="none", marker="o", markersize=4, color=colour, label=run.label,
                    gid=f"{run.run_id} ce")
        else:
            y = _retention(run, table)[rows] * PERCENT
            shown = np.isfinite(y)
            ax.plot(x[shown], y[shown], marker="o", markersize=3, linewidth=1, color=colour,
                    label=f"{run.label} (vs cycle {ref})", gid=f"{run.run_id} retention")
    ax.set_xlabel("Cycle number")
    if kind == "capacity":
        ax.set_ylabel(unit.label())
    elif kind == "ce":
        ax.axhline(PERCENT, color="0.5", linestyle=":", linewidth=1, gid="100 %")
        ax.set_ylabel("Coulombic efficiency (%)")
    else:
        ax.axhline(END_OF_LIFE * PERCENT, color="0.4", linestyle="--", linewidth=1, gid="80 %")
        ax.set_ylabel("Capacity retention (%)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    return finish(fig, [ax])


def _rows(run: RunData, table: CycleTable, cycles: Collection[int] | None,
          among: np.ndarray | None = None) -> np.ndarray:
    """The table rows of the chosen cycles (all of them by default), among the rows ``among`` when given."""
    among = np.arange(len(table)) if among is None else among
    picked = pick(run, [int(c) for c in table.cycle[among]], cycles)
    return among[np.isin(table.cycle[among], picked)]


def _group_from(table: CycleTable, reference: int) -> np.ndarray:
    """The rows retention is drawn for: the reference cycle and the later cycles of its tag group (formation
    before the main cycling is left out; its capacity over the cycling reference says nothing about fade)."""
    start = table.row(reference)
    group = table.tag[start]
    return np.array([k for k in range(start, len(table)) if table.tag[k] == group], dtype=np.int64)


def _retention(run: RunData, table: CycleTable) -> np.ndarray:
    try:
        return retention(table)
    except AnalysisError as exc:
        raise PlotError(f"run {run.label}: {exc}") from None


def _dqdv_figure(runs: Sequence[RunData], cycles: Collection[int] | None) -> Figure:
    fig, (ax,) = new_figure()
    unit = capacity_unit(runs)
    for run, colour in zip(runs, run_colours(len(runs)), strict=True):
        table = cycle_table(run)
        complete = [int(c) for c in table.cycle[np.isfinite(table.ce)]]
        picked = pick(run, complete, cycles, "complete cycle", default_cycles(complete))
        drawn, problems = 0, []
        for cycle, shade in zip(picked, cycle_colours(None if len(runs) == 1 else colour, len(picked)),
                                strict=True):
            label = f"{run.label}, cycle {cycle}"
            for direction in ("charge", "discharge"):
                try:
                    volts, slope = dqdv(run, cycle, direction)
                except AnalysisError as exc:
                    problems.append(f"run {run.label}: {exc}")
                    continue
                ax.plot(volts, slope * unit.scale(run), color=shade, linewidth=1.1, label=label,
                        gid=f"{run.run_id} cycle {cycle} {direction}")
                label, drawn = "_nolegend_", drawn + 1
        if problems and (cycles is not None or not drawn):
            raise PlotError(problems[0])
    ax.axhline(0.0, color="0.6", linewidth=0.6)
    ax.set_xlabel("Voltage (V)")
    ax.set_ylabel(f"dQ/dV ({unit.per_volt()})")
    return finish(fig, [ax])
