"""Which figure kinds a run can give, from its records and step program alone (cheap: no matplotlib, no fits), so
that a wrong ``--kind`` fails at once with the kinds that do apply."""

from __future__ import annotations

import numpy as np

from station.analysis.run_data import RunData
from station.analysis.steps import CYCLING_KINDS, step_runs

KINDS = ("voltage", "capacity", "ce", "retention", "dqdv", "nyquist", "bode", "cv", "conductivity")

#: what a run lacks when a kind does not apply, for the error message
_NEEDS = {
    "voltage": "charging or discharging step",
    "capacity": "cycle with both a charge and a discharge",
    "ce": "cycle with both a charge and a discharge",
    "retention": "cycle with both a charge and a discharge",
    "dqdv": "cycle with both a charge and a discharge",
    "nyquist": "EIS spectrum",
    "bode": "EIS spectrum",
    "cv": "CV step",
    "conductivity": "EIS spectrum with a DC polarisation (ca) step on a cell with area and thickness",
}


def applicable_kinds(run: RunData) -> list[str]:
    """The kinds of :data:`KINDS` that ``run`` has data for, in that order."""
    records = run.records
    runs = step_runs(records, run.program)
    moved = runs.counted() & np.isin(runs.kind, list(CYCLING_KINDS))
    kinds: list[str] = []
    if moved.any():
        kinds.append("voltage")
    if _has_complete_cycle(runs.cycle[moved], runs.capacity[moved]):
        kinds += ["capacity", "ce", "retention", "dqdv"]
    has_eis = bool(np.isfinite(records["frequency"]).any()) if len(records) else False
    if has_eis:
        kinds += ["nyquist", "bode"]
    if _has_cv(run):
        kinds.append("cv")
    has_ca = bool(np.isin(runs.kind, ["ca"]).any())
    if has_eis and has_ca and run.cell.area and run.cell.thickness:
        kinds.append("conductivity")
    return kinds


def check_applies(run: RunData, kind: str) -> None:
    """Raise :class:`PlotError` naming the run, what it lacks and the kinds that do apply to it."""
    from station.plots.errors import PlotError

    kinds = applicable_kinds(run)
    if kind not in kinds:
        raise PlotError(f"--kind {kind} does not apply to run {run.label}: it has no {_NEEDS[kind]}; kinds that "
                        f"apply to it: {', '.join(kinds) or 'none'}")


def _has_complete_cycle(cycles: np.ndarray, capacity: np.ndarray) -> bool:
    charged = set(cycles[capacity > 0].tolist())
    discharged = set(cycles[capacity < 0].tolist())
    return bool(charged & discharged)


def _has_cv(run: RunData) -> bool:
    cv_steps = [s.index for s in run.program.steps if s.kind == "cv"]
    return bool(np.isin(run.records["step_index"], cv_steps).any())
