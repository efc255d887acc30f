"""The paper's figures from runs (DESIGN section 1), as matplotlib figures: ``figure(runs, kind, cycles)``.

One module per figure family (profiles, cycling, impedance, voltammetry, conductivity), each built with the
object API on a bare :class:`matplotlib.figure.Figure` (no pyplot state). This package imports matplotlib only
when a figure is made, so that ``station`` starts without paying for it.

Kinds: ``voltage`` (profiles), ``capacity``, ``ce``, ``retention``, ``dqdv`` (per cycle), ``nyquist``, ``bode``
(EIS, measured points and the fitted circuit), ``cv`` (current against potential per CV cycle, peaks marked),
``conductivity`` (electronic, ionic and total, before/after lithiation). ``cycles`` selects stored cycle numbers
(CV cycle numbers for ``cv``, the cycle an EIS spectrum was measured in for ``nyquist``/``bode``).
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from station.analysis.run_data import RunData
from station.plots.applies import KINDS, applicable_kinds, check_applies
from station.plots.errors import PlotError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FORMATS", "KINDS", "PlotError", "applicable_kinds", "figure", "save"]

#: the module that draws each kind
_MODULES = {"voltage": "profiles", "capacity": "cycling", "ce": "cycling", "retention": "cycling",
            "dqdv": "cycling", "nyquist": "impedance", "bode": "impedance", "cv": "voltammetry",
            "conductivity": "conductivity"}
#: output formats, from the file's suffix
FORMATS = {".png": "png", ".svg": "svg"}


def figure(runs: Sequence[RunData], kind: str, cycles: Collection[int] | None = None) -> Figure:
    """The ``kind`` figure of ``runs`` overlaid, one legend entry per run (its :attr:`RunData.label`).

    Raises :class:`PlotError` (a one-line message) for an unknown kind, a kind that does not apply to one of the
    runs, or cycles a run does not have.
    """
    if kind not in KINDS:
        raise PlotError(f"unknown --kind '{kind}'; choose one of {', '.join(KINDS)}")
    if not runs:
        raise PlotError("no run to plot; give at least one run id")
    for run in runs:
        check_applies(run, kind)
    module = importlib.import_module(f"station.plots.{_MODULES[kind]}")
    return module.figure(list(runs), kind, cycles)


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` in the format its suffix names (.png at 150 dpi, or .svg)."""
    target = Path(path)
    fmt = FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise PlotError(f"--out '{target}' must end in .png or .svg (the suffix chooses the format)")
    fig.savefig(target, format=fmt, dpi=150)
    return target
