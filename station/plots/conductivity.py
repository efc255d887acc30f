"""Electronic, ionic and total conductivity (P7) as bars on a log axis in S/cm, one bar per run in each group,
labelled before/after lithiation when the run's campaign says so (the paper's comparison).

The values are :func:`station.analysis.conductivity.analyze_conductivity`'s (sigma_total from the EIS plateau,
sigma_e from the DC steady state, sigma_i their difference). A value that cannot go on a log axis (missing, or a
negative sigma_i when the DC step had not settled) gets no bar and an "n/a" mark at the axis floor, never a
bar of made-up height; each bar carries its value as text.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from matplotlib.figure import Figure

from station.analysis.conductivity import Conductivity, analyze_conductivity
from station.analysis.run_data import RunData
from station.plots.axes import finish, new_figure, run_colours
from station.plots.errors import PlotError

#: 1 S/m in S/cm
S_PER_CM_PER_S_PER_M = 0.01
#: the groups, left to right: (attribute, tick label)
GROUPS = (("sigma_e_s_per_m", "electronic σₑ"), ("sigma_i_s_per_m", "ionic σᵢ"),
          ("sigma_total_s_per_m", "total σ"))


def conductivity_label(run: RunData) -> str:
    """The run's label with its lithiation state: ``"host (P7), before lithiation"``."""
    return f"{run.label}, {run.lithiation} lithiation" if run.lithiation else run.label


def figure(runs: Sequence[RunData], kind: str = "conductivity", cycles: Collection[int] | None = None) -> Figure:
    """Grouped bars of sigma_e, sigma_i and sigma_total for ``runs``."""
    if cycles is not None:
        raise PlotError("--cycles does not apply to --kind conductivity (one value per run); leave it out")
    results = [_analysed(run) for run in runs]
    fig, (ax,) = new_figure()
    width = 0.8 / len(runs)
    centres = np.arange(len(GROUPS), dtype=float)
    drawable = [v for r in results for v in _values(r) if v is not None and v > 0]
    floor = min(drawable) / 10 if drawable else 1e-12
    for k, (run, result, colour) in enumerate(zip(runs, results, run_colours(len(runs)), strict=True)):
        x = centres - 0.4 + width * (k + 0.5)
        values = _values(result)
        shown = [v is not None and v > 0 for v in values]
        heights = [v if ok else np.nan for v, ok in zip(values, shown, strict=True)]
        bars = ax.bar(x, heights, width=width * 0.9, color=colour, label=conductivity_label(run),
                      gid=f"{run.run_id} conductivity")
        ax.bar_label(bars, labels=[f"{v:.2e}" if ok else "" for v, ok in zip(values, shown, strict=True)],
                     fontsize="x-small", padding=2)
        for xi, ok in zip(x, shown, strict=True):
            if not ok:
                ax.text(xi, floor, "n/a", ha="center", va="bottom", fontsize="x-small", gid=f"{run.run_id} n/a")
    ax.set_yscale("log")
    ax.set_ylim(floor, max(drawable) * 4 if drawable else 1.0)  # room above the tallest bar for its value
    ax.set_xticks(centres, [name for _, name in GROUPS])
    ax.set_ylabel("Conductivity (S/cm)")
    return finish(fig, [ax])


def _analysed(run: RunData) -> Conductivity:
    try:
        result = analyze_conductivity(run)
    except ValueError as exc:
        raise PlotError(f"run {run.label}: {exc}") from None
    if result is None:
        raise PlotError(f"run {run.label} has no EIS spectrum or DC polarisation step; --kind conductivity needs "
                        f"a P7 run")
    return result


def _values(result: Conductivity) -> list[float | None]:
    """sigma_e, sigma_i, sigma_total of one run in S/cm (None where unknown)."""
    values = []
    for name, _ in GROUPS:
        v = getattr(result, name)
        values.append(None if v is None or not np.isfinite(v) else v * S_PER_CM_PER_S_PER_M)
    return values
