"""Differential capacity dQ/dV of one cycle, smoothed the documented way.

How (:func:`dqdv`):

1. Take the cycle's records of the steps of one direction (charging steps for ``"charge"``, discharging steps for
   ``"discharge"``; cycling kinds only, see :data:`station.analysis.steps.CYCLING_KINDS`). The capacity Q is the
   charge passed in that direction since the direction began in the cycle, in Ah, summed over its steps (a CC step
   followed by a CV hold makes one curve).
2. Make the voltage monotonic in the direction of travel (the running maximum on charge, the running minimum on
   discharge), so that measurement noise and relaxation at a step change do not fold the curve back; where
   several records share a voltage, Q is the largest (a CV hold puts all its charge at the hold voltage).
3. Interpolate Q linearly onto a uniform voltage grid of spacing ``step`` (default 1 mV) covering the whole
   multiples of ``step`` inside the swept window.
4. Smooth and differentiate in one operation: a Savitzky-Golay filter (:func:`scipy.signal.savgol_filter`,
   ``deriv=1``) fits a polynomial of order ``polyorder`` (default 2) to each ``window`` volts (default 20 mV,
   i.e. 21 points at 1 mV) and takes its slope; the ends use the polynomial fitted to the first / last window
   (``mode="interp"``). A straight Q(V) therefore comes out exact everywhere.

The result is dQ/dV in Ah/V, with Q the capacity passed, so it is positive on charge (V rises as Q grows) and
negative on discharge (V falls as Q grows): the sign of the usual figures. Multiply by 1000 for mAh/V.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.signal import savgol_filter

from station.analysis.cycling import AnalysisError
from station.analysis.run_data import RunData
from station.analysis.steps import step_runs

DEFAULT_STEP_V = 1e-3
DEFAULT_WINDOW_V = 0.02
DEFAULT_POLYORDER = 2


def dqdv(data: RunData, cycle: int, direction: Literal["discharge", "charge"] = "discharge", *,
         step: float = DEFAULT_STEP_V, window: float = DEFAULT_WINDOW_V,
         polyorder: int = DEFAULT_POLYORDER) -> tuple[np.ndarray, np.ndarray]:
    """(voltage grid in V, dQ/dV in Ah/V) of ``direction`` in stored cycle ``cycle``; see the module docstring."""
    if direction not in ("discharge", "charge"):
        raise AnalysisError(f"dQ/dV direction must be 'charge' or 'discharge', found '{direction}'")
    if not step > 0 or not window > 0:
        raise AnalysisError(f"dQ/dV needs a voltage step and window above 0 V, found step={step}, window={window}")
    voltage, capacity = direction_curve(data, cycle, direction)
    # the voltage made monotonic in the direction of travel (Q keeps growing as V falls on discharge)
    v_mono = np.minimum.accumulate(voltage) if direction == "discharge" else np.maximum.accumulate(voltage)
    # the largest Q at each distinct voltage: the last record reaching it (Q never falls within a direction)
    order = np.lexsort((capacity, v_mono))
    v_sorted, q_sorted = v_mono[order], capacity[order]
    last = np.r_[v_sorted[1:] != v_sorted[:-1], True]
    v_u, q_u = v_sorted[last], q_sorted[last]
    lo, hi = np.ceil(v_u[0] / step - 1e-9), np.floor(v_u[-1] / step + 1e-9)
    points = int(hi - lo) + 1
    window_points = round(window / step) | 1  # an odd count
    if len(v_u) < 2 or points < max(window_points, polyorder + 2):
        raise AnalysisError(f"cycle {cycle} sweeps {v_u[0]:.4f}-{v_u[-1]:.4f} V on {direction}: too narrow for a "
                            f"{window * 1e3:g} mV smoothing window at {step * 1e3:g} mV steps; give a smaller "
                            f"window or step")
    grid = (lo + np.arange(points)) * step
    q_grid = np.interp(grid, v_u, q_u)
    slope = savgol_filter(q_grid, window_points, polyorder, deriv=1, delta=step, mode="interp")
    # Q grows as V falls on discharge: the slope of Q(V) is then negative, the figure's sign, with no flip
    return grid, slope


def direction_curve(data: RunData, cycle: int, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """(voltage V, capacity passed Ah, growing) over the cycle's steps of one direction, in record order."""
    records = data.records
    rows = np.flatnonzero(records["cycle"] == cycle)
    if len(rows) == 0:
        raise AnalysisError(f"the run has no cycle {cycle}; choose a cycle its records carry")
    part = records[rows[0]:rows[-1] + 1]
    runs = step_runs(part, data.program)
    want = 1.0 if direction == "charge" else -1.0
    chosen = np.flatnonzero(runs.counted() & (np.sign(runs.capacity) == want))
    if len(chosen) == 0:
        raise AnalysisError(f"cycle {cycle} has no {direction} step; choose a cycle with one")
    volts, caps = [], []
    offset = 0.0
    for k in chosen:  # one slice per step run (a handful per cycle)
        sl = slice(runs.start[k], runs.end[k] + 1)
        q = np.abs(part["capacity"][sl])
        volts.append(part["voltage"][sl])
        caps.append(offset + q)
        offset += abs(runs.capacity[k])
    return np.concatenate(volts), np.concatenate(caps)
