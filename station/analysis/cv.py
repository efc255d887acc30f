"""Cyclic voltammetry peaks (P6): per CV cycle, the cathodic and anodic peak potential and current and the peak
separation.

A CV cycle is what the instrument counts (EClib's ``cycle`` column, the record field ``cv_cycle``): it ends at each
arrival at the second vertex, so with P6's vertices (low first) every cycle is one cathodic sweep followed by one
anodic sweep. Records without ``cv_cycle`` (0, or an older store) get the same numbering from the step's own
waveform (:meth:`protocols.program.CvStep.corners`) and their step time.

The sweep direction of each record is read from the same waveform: the cathodic sweep is where the set potential
falls. The cathodic peak is the most negative current on the cathodic sweep, the anodic peak the most positive
current on the anodic sweep; a peak that falls on a sweep's first or last point is a vertex current rather than a
peak, and says so in a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols.program import CvStep
from station.analysis.run_data import RunData


@dataclass(frozen=True)
class CvCycle:
    """The peaks of one CV cycle (potentials V, currents A signed: cathodic < 0)."""

    step_index: int
    cv_cycle: int
    cathodic_peak_v: float | None
    cathodic_peak_a: float | None
    anodic_peak_v: float | None
    anodic_peak_a: float | None
    warnings: tuple[str, ...] = ()

    @property
    def delta_ep_v(self) -> float | None:
        """Ep,a - Ep,c: the peak separation."""
        if self.anodic_peak_v is None or self.cathodic_peak_v is None:
            return None
        return self.anodic_peak_v - self.cathodic_peak_v

    @property
    def mid_peak_v(self) -> float | None:
        """(Ep,a + Ep,c)/2: the estimate of the redox feature's formal potential."""
        if self.anodic_peak_v is None or self.cathodic_peak_v is None:
            return None
        return 0.5 * (self.anodic_peak_v + self.cathodic_peak_v)

    def to_dict(self) -> dict[str, Any]:
        return {"step_index": self.step_index, "cv_cycle": self.cv_cycle,
                "cathodic_peak_v": self.cathodic_peak_v, "cathodic_peak_a": self.cathodic_peak_a,
                "anodic_peak_v": self.anodic_peak_v, "anodic_peak_a": self.anodic_peak_a,
                "delta_ep_v": self.delta_ep_v, "mid_peak_v": self.mid_peak_v, "warnings": list(self.warnings)}


@dataclass(frozen=True)
class CvResult:
    cycles: tuple[CvCycle, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"cycles": [c.to_dict() for c in self.cycles]}


def analyze_cv(data: RunData) -> CvResult | None:
    """The peaks of every CV cycle of every CV step (None when the run has no CV records)."""
    r = data.records
    cv_steps = {s.index: s for s in data.program.steps if isinstance(s, CvStep)}
    if len(r) == 0 or not cv_steps:
        return None
    rows = np.nonzero(np.isin(r["step_index"], list(cv_steps)))[0]
    if rows.size == 0:
        return None
    breaks = np.nonzero((np.diff(rows) != 1) | (np.diff(r["step_index"][rows]) != 0))[0] + 1
    out: list[CvCycle] = []
    for block in np.split(rows, breaks):
        out += _step_cycles(data, cv_steps[int(r["step_index"][block[0]])], block)
    return CvResult(tuple(out)) if out else None


def sweep_geometry(data: RunData, step: CvStep, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cycle 1.., direction -1/+1) of each record of one CV step execution.

    The waveform starts at the OCV when the step has no ``start``: the last voltage before the step (or the
    step's first record). The cycle is ``cv_cycle`` when the records carry it, else the count of arrivals at the
    second vertex before the record's step time, plus one, capped at the step's cycles.
    """
    r = data.records
    first = int(block[0])
    ocv = float(r["voltage"][first - 1]) if first > 0 and step.start is None else float(r["voltage"][first])
    times, volts = step.corners(ocv)
    t = np.asarray(r["step_time"][block], dtype=float)
    segment = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    direction = np.sign(volts[segment + 1] - volts[segment])
    arrivals = times[2:-1:2]  # corners 2, 4, ...: each arrival at vertex_2 (the last corner is the end)
    tolerance = 1e-6 * max(float(times[-1]), 1.0)
    derived = 1 + np.searchsorted(arrivals, t - tolerance, side="left")
    derived = np.minimum(derived, step.cycles)
    if "cv_cycle" in (r.dtype.names or ()):
        given = np.asarray(r["cv_cycle"][block], dtype=np.int64)
        if np.all(given > 0):
            return given, direction
    return derived.astype(np.int64), direction


def _step_cycles(data: RunData, step: CvStep, block: np.ndarray) -> list[CvCycle]:
    r = data.records
    cycle, direction = sweep_geometry(data, step, block)
    v = np.asarray(r["voltage"][block], dtype=float)
    i = np.asarray(r["current"][block], dtype=float)
    out = []
    for number in np.unique(cycle):
        inside = cycle == number
        warnings: list[str] = []
        cathodic = _peak(v, i, inside & (direction < 0), -1, warnings, f"CV step {step.index} cycle {number}")
        anodic = _peak(v, i, inside & (direction > 0), +1, warnings, f"CV step {step.index} cycle {number}")
        out.append(CvCycle(step.index, int(number), cathodic[0], cathodic[1], anodic[0], anodic[1], tuple(warnings)))
    return out


def _peak(v: np.ndarray, i: np.ndarray, mask: np.ndarray, sign: int, warnings: list[str],
          where: str) -> tuple[float | None, float | None]:
    idx = np.nonzero(mask)[0]
    if idx.size == 0:
        return None, None
    k = idx[int(np.argmax(sign * i[idx]))]
    name = "cathodic" if sign < 0 else "anodic"
    if idx.size >= 3 and k in (idx[0], idx[-1]):
        warnings.append(f"{where}: the {name} current is largest at the sweep's end ({v[k]:.3f} V), a vertex "
                        "current rather than a peak")
    value = float(i[k])
    return float(v[k]), value if math.isfinite(value) else None
