"""What every figure shares: a bare Agg figure, colours per run and per cycle, and the capacity unit.

Figures use matplotlib's object API only (no pyplot): a figure made here is independent of any global state, so
the CLI, tests and a notebook can make many in one process without them leaking into each other.

Capacity unit (one rule for every capacity axis, so that overlaid runs share one scale):

* **per active mass (mAh/g)** when every run's cell has an ``active_mass``: the full cells (P3, P4) have one and the
  paper reports their capacity per gram of NCM622, which also holds when the cell has an area too;
* else **per area (mAh/cm²)** when every run's cell has an ``area``: the half cells of the plating experiments
  (P1, P2), whose paper figures are areal;
* else **mAh**: a mix of cells that do not share a normalisation is drawn in absolute capacity rather than with
  two units on one axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from station.analysis.run_data import RunData

#: an RGBA colour as matplotlib gives it
Colour = tuple[float, float, float, float]

#: 1 Ah in mAh
MAH_PER_AH = 1e3
#: 1 m^2 in cm^2
CM2_PER_M2 = 1e4
#: 1 kg in g
G_PER_KG = 1e3


def new_figure(rows: int = 1, *, sharex: bool = False, height: float = 4.2) -> tuple[Figure, list[Axes]]:
    """A figure with ``rows`` stacked axes; rendering goes through Agg (PNG) or the SVG backend at save time."""
    fig = Figure(figsize=(6.4, height), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False)[:, 0]
    return fig, list(axes)


@dataclass(frozen=True)
class CapacityUnit:
    """How capacities in Ah become the numbers on a capacity axis: see the module docstring for the rule."""

    per: str
    """``"mass"``, ``"area"`` or ``"cell"``"""
    unit: str
    """the axis unit, e.g. ``"mAh/g"``"""

    def scale(self, run: RunData) -> float:
        """Multiply Ah of ``run`` by this to get the axis unit."""
        if self.per == "mass":
            return MAH_PER_AH / (run.cell.active_mass * G_PER_KG)
        if self.per == "area":
            return MAH_PER_AH / (run.cell.area * CM2_PER_M2)
        return MAH_PER_AH

    def label(self, what: str = "capacity") -> str:
        """``"Specific capacity (mAh/g)"``, ``"Areal capacity (mAh/cm²)"`` or ``"Capacity (mAh)"``."""
        prefix = {"mass": "Specific ", "area": "Areal ", "cell": ""}[self.per]
        text = f"{prefix}{what}" if prefix else what
        return f"{text[0].upper()}{text[1:]} ({self.unit})"

    def per_volt(self) -> str:
        """The unit of dQ/dV on this scale: ``"mAh g⁻¹ V⁻¹"``, ``"mAh cm⁻² V⁻¹"`` or ``"mAh V⁻¹"``."""
        return {"mass": "mAh g⁻¹ V⁻¹", "area": "mAh cm⁻² V⁻¹", "cell": "mAh V⁻¹"}[self.per]


def capacity_unit(runs: Sequence[RunData]) -> CapacityUnit:
    """The one capacity unit all ``runs`` share (mass before area before absolute)."""
    if runs and all(r.cell.active_mass for r in runs):
        return CapacityUnit("mass", "mAh/g")
    if runs and all(r.cell.area for r in runs):
        return CapacityUnit("area", "mAh/cm²")
    return CapacityUnit("cell", "mAh")


def run_colours(count: int) -> list[Colour]:
    """A distinct colour per run (matplotlib's categorical tab10, then tab20 for more runs)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(k % cmap.N) for k in range(count)]


def cycle_colours(base: Colour | None, count: int) -> list[Colour]:
    """A colour per cycle of one run: along viridis when the run is alone in the figure, else shades of the run's
    own colour from light (first cycle) to full (last), so that overlaid runs stay told apart by hue."""
    from matplotlib import colormaps

    if count == 0:
        return []
    if base is None:
        cmap: Colormap = colormaps["viridis"]
        return [tuple(cmap(x)) for x in np.linspace(0.0, 0.9, count)] if count > 1 else [tuple(cmap(0.0))]
    rgb = np.asarray(base[:3])
    weights = np.linspace(0.45, 1.0, count) if count > 1 else np.array([1.0])
    shades = [1.0 - w * (1.0 - rgb) for w in weights]  # mixed with white: w = 1 is the run's colour
    return [(float(r), float(g), float(b), 1.0) for r, g, b in shades]


def finish(fig: Figure, axes: Sequence[Axes], title: str | None = None) -> Figure:
    """Legend on every axes that has labelled artists, and the figure title."""
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", frameon=False)
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig
