"""DC polarisation (the ``ca`` step of P7): the applied step, the steady-state current, and whether the transient
had decayed when the step ended.

With ion-blocking electrodes the current of a potentiostatic step falls from the total (ionic + electronic) value
to the electronic one as the film polarises; only the end of the step measures the electronic conductivity, and
only if the step was long enough. So the analysis reads the current over the last part of the step and checks
that it no longer moves there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols.program import CaStep
from station.analysis.run_data import RunData

WINDOW_FRACTION = 0.1
"""The steady state is the mean current over the last 10 % of the step's duration: long enough to average the
recording's noise and resolution, short enough that a decaying current has moved little within it."""
MIN_WINDOW_POINTS = 5
"""A window holds at least this many records (the last ones of the step) however short the step."""
DECAY_THRESHOLD = 0.002
"""Relative change of the current across the window (fitted slope x window duration / mean) above which the
transient has not decayed: 0.2 %. An exponential tail exp(-t/tau_d) that still changes by x across a window of w
is off its end value by about x tau_d/w; with w = 10 % of the step and tau_d up to a fifth of the step (the
shortest hold a measurement should use, 5 tau_d), 0.2 % bounds the error of the steady state near 1 %."""


@dataclass(frozen=True)
class DcStep:
    """One ``ca`` step: its applied voltage step and its steady-state current."""

    step_index: int
    cycle: int
    delta_v_v: float
    """The applied step relative to the voltage before it (the program's value for a step relative to OCV; for
    an absolute step, the set voltage less the last voltage before the step)."""
    steady_current_a: float
    """Mean current over the window."""
    window_s: float
    duration_s: float
    relative_change: float
    """Fitted current slope x window duration / mean current, over the window."""
    resistance_ohm: float
    """delta V / steady current: the DC (electronic, with blocking electrodes) resistance."""
    warning: str | None

    @property
    def decayed(self) -> bool:
        return self.warning is None

    def to_dict(self) -> dict[str, Any]:
        return {"step_index": self.step_index, "cycle": self.cycle, "delta_v_v": _num(self.delta_v_v),
                "steady_current_a": _num(self.steady_current_a), "window_s": _num(self.window_s),
                "duration_s": _num(self.duration_s), "relative_change": _num(self.relative_change),
                "resistance_ohm": _num(self.resistance_ohm), "decayed": self.decayed, "warning": self.warning}


@dataclass(frozen=True)
class DcResult:
    """Every ``ca`` step execution of a run."""

    steps: tuple[DcStep, ...]

    @property
    def last(self) -> DcStep:
        return self.steps[-1]

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps]}


def analyze_dc(data: RunData) -> DcResult | None:
    """The steady state of every ``ca`` step execution (None when the run has none)."""
    r = data.records
    ca = {s.index: s for s in data.program.steps if isinstance(s, CaStep)}
    if len(r) == 0 or not ca:
        return None
    rows = np.nonzero(np.isin(r["step_index"], list(ca)))[0]
    if rows.size == 0:
        return None
    steps, cycles = r["step_index"][rows], r["cycle"][rows]
    breaks = np.nonzero((np.diff(rows) != 1) | (np.diff(steps) != 0) | (np.diff(cycles) != 0))[0] + 1
    out = [_one(data, ca[int(r["step_index"][block[0]])], block) for block in np.split(rows, breaks)]
    return DcResult(tuple(out))


def _one(data: RunData, step: CaStep, block: np.ndarray) -> DcStep:
    r = data.records
    t = np.asarray(r["step_time"][block], dtype=float)
    current = np.asarray(r["current"][block], dtype=float)
    before = float(r["voltage"][block[0] - 1]) if block[0] > 0 else float("nan")
    delta_v = step.voltage if step.vs_ocv else step.voltage - before
    duration = float(t[-1] - t[0])
    start = t[-1] - WINDOW_FRACTION * duration
    inside = t >= start
    if inside.sum() < MIN_WINDOW_POINTS:
        inside = np.zeros(len(t), dtype=bool)
        inside[-min(MIN_WINDOW_POINTS, len(t)) :] = True
    tw, iw = t[inside], current[inside]
    mean = float(np.mean(iw))
    window = float(tw[-1] - tw[0])
    slope = float(np.polyfit(tw - tw[0], iw, 1)[0]) if len(tw) >= 2 and window > 0 else 0.0
    change = abs(slope * window / mean) if mean != 0 else math.inf
    warning = None
    if not math.isfinite(change) or change > DECAY_THRESHOLD:
        warning = (f"DC step {step.index}: the current still changes by {change:.2%} over the last {window:g} s "
                   f"(threshold {DECAY_THRESHOLD:.1%}): the transient has not decayed, so the steady-state current "
                   "and the electronic conductivity from it are too high; hold the step longer")
    resistance = delta_v / mean if mean != 0 else math.inf
    return DcStep(step.index, int(r["cycle"][block[0]]), float(delta_v), mean, window, duration, change,
                  float(resistance), warning)


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
