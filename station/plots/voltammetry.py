"""Cyclic voltammograms: current (mA, positive anodic) against potential (V vs the counter electrode, Li/Li+ for
the library's half cells), one curve per CV cycle, with the cathodic and anodic peaks of
:func:`station.analysis.cv.analyze_cv` marked (downward and upward triangles), so that the marks are the numbers
``station analyze`` reports.

A CV cycle is the records' ``cv_cycle`` (1.. inside a CV step); ``--cycles`` picks CV cycles. A run with several
CV steps labels its curves with the step as well, since each step counts its CV cycles from 1.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from protocols.program import CvStep
from station.analysis.cv import CvResult, analyze_cv, sweep_geometry
from station.analysis.run_data import RunData
from station.plots.axes import Colour, cycle_colours, finish, new_figure, run_colours
from station.plots.selection import pick

MA_PER_A = 1e3


def cv_segments(run: RunData) -> list[tuple[int, int, np.ndarray]]:
    """(step index, CV cycle, record rows) of every CV cycle of the run, in record order.

    The CV cycle is the records' ``cv_cycle``; records that lack it (0, an older store or an import) are numbered
    from the step's own waveform by :func:`station.analysis.cv.sweep_geometry`, the numbering the peaks use."""
    records = run.records
    cv_steps = {s.index: s for s in run.program.steps if isinstance(s, CvStep)}
    rows = np.flatnonzero(np.isin(records["step_index"], list(cv_steps)))
    if len(rows) == 0:
        return []
    breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(records["step_index"][rows]) != 0)) + 1
    segments = []
    for block in np.split(rows, breaks):  # one block per execution of a CV step
        step = int(records["step_index"][block[0]])
        numbers, _direction = sweep_geometry(run, cv_steps[step], block)
        cuts = np.flatnonzero(np.diff(numbers) != 0) + 1
        for part, number in zip(np.split(block, cuts), np.split(numbers, cuts), strict=True):
            segments.append((step, int(number[0]), part))
    return segments


def cv_peaks(run: RunData) -> CvResult | None:
    """The CV analysis of the run: the cathodic and anodic peak of every CV cycle."""
    return analyze_cv(run)


def figure(runs: Sequence[RunData], kind: str = "cv", cycles: Collection[int] | None = None) -> Figure:
    """The CV curves of ``runs`` overlaid, peaks marked."""
    fig, (ax,) = new_figure()
    for run, colour in zip(runs, run_colours(len(runs)), strict=True):
        segments = cv_segments(run)
        picked = set(pick(run, sorted({c for _, c, _ in segments}), cycles, "CV cycle"))
        chosen = [s for s in segments if s[1] in picked]
        several_steps = len({s for s, _, _ in segments}) > 1
        shades = cycle_colours(None if len(runs) == 1 else colour, len(chosen))
        for (step, cycle, rows), shade in zip(chosen, shades, strict=True):
            label = f"{run.label}, cycle {cycle}" + (f" (step {step})" if several_steps else "")
            ax.plot(run.records["voltage"][rows], run.records["current"][rows] * MA_PER_A, color=shade,
                    linewidth=1.1, label=label, gid=f"{run.run_id} step {step} cv cycle {cycle}")
        _mark_peaks(ax, run, chosen, shades)
    ax.axhline(0.0, color="0.6", linewidth=0.6)
    ax.set_xlabel("Potential (V)")
    ax.set_ylabel("Current (mA)")
    return finish(fig, [ax])


def _mark_peaks(ax: Axes, run: RunData, chosen: list[tuple[int, int, np.ndarray]], shades: list[Colour]) -> None:
    result = cv_peaks(run)
    if result is None:
        return
    colour_of = {(step, cycle): shade for (step, cycle, _), shade in zip(chosen, shades, strict=True)}
    for peaks in result.cycles:
        key = (peaks.step_index, peaks.cv_cycle)
        if key not in colour_of:
            continue
        for name, marker, volts, amps in (("cathodic", "v", peaks.cathodic_peak_v, peaks.cathodic_peak_a),
                                          ("anodic", "^", peaks.anodic_peak_v, peaks.anodic_peak_a)):
            if volts is None or amps is None:
                continue
            ax.plot([volts], [amps * MA_PER_A], linestyle="none", marker=marker, markersize=7, color=colour_of[key],
                    markeredgecolor="black", markeredgewidth=0.6,
                    gid=f"{run.run_id} step {key[0]} cv cycle {key[1]} {name} peak")
