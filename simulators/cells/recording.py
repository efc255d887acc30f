"""Which instants of a step's trajectory become records, under a step's recording rule.

The rule is the instrument's: record every ``every_s`` since the last record, or as soon as V or I has moved
by more than the given change since the last record (OR-ed). The first record is the step start and the last
is the exact end, whatever the rule.

A real instrument also has a fastest sampling period: it cannot log two points closer than that, and the first
point after it switches its control comes one period after the switch. With ``sample_period`` > 0 the records
honour both, so consecutive steps never share an instant and test time is strictly increasing across a run.

A rule with only a time interval gives a regular grid (vectorised); a change rule is inherently sequential
(each threshold is relative to the previous record), so it is scanned record by record with vectorised
searches on the dense trajectory, costing one numpy search per record.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from protocols.program import RecordRule


def record_times(
    t: np.ndarray,
    v: np.ndarray,
    i: np.ndarray,
    rule: RecordRule,
    voltage_at: Callable[[np.ndarray], np.ndarray] | None = None,
    sample_period: float = 0.0,
) -> np.ndarray:
    """Record instants in [t[0], t[-1]] for the dense trajectory (t, v, i), start and end included.

    ``voltage_at`` (exact V at given times) lets a voltage-change record land exactly on the threshold
    instead of on a linear interpolation of the dense samples. ``sample_period`` is the instrument's fastest
    sampling (see the module notes); with it the start record moves to ``t[0] + sample_period``, or is
    dropped when the step is shorter than that.
    """
    start, end = float(t[0]), float(t[-1])
    sp = max(0.0, float(sample_period))
    if end <= start:
        return np.array([end if sp > 0.0 else start])
    if rule.voltage_change is None and rule.current_change is None:
        if rule.every_s is None:
            return _spaced(np.array([start]), start, end, sp)
        every = max(rule.every_s, sp)
        grid = start + every * np.arange(math.ceil((end - start) / every), dtype=float)
        # drop a grid point that would sit within a rounding error of the end
        if len(grid) > 1 and end - grid[-1] < 1e-9 * max(1.0, end):
            grid = grid[:-1]
        return _spaced(grid, start, end, sp)
    return _scan_changes(t, v, i, rule, voltage_at, sp)


def _spaced(grid: np.ndarray, start: float, end: float, sp: float) -> np.ndarray:
    """The interior records ``grid`` (start first) plus the end, moved and thinned to the sample period."""
    if sp > 0.0:
        grid = grid.copy()
        grid[0] = start + sp
        grid = grid[grid <= end - sp]
    times = np.empty(len(grid) + 1)
    times[:-1] = grid
    times[-1] = end
    return times


def _scan_changes(
    t: np.ndarray,
    v: np.ndarray,
    i: np.ndarray,
    rule: RecordRule,
    voltage_at: Callable[[np.ndarray], np.ndarray] | None,
    sp: float = 0.0,
) -> np.ndarray:
    every = rule.every_s if rule.every_s is not None else np.inf
    dv = rule.voltage_change if rule.voltage_change is not None else np.inf
    di = rule.current_change if rule.current_change is not None else np.inf
    end = float(t[-1])
    first = float(t[0]) + sp
    if first > end - sp:  # no room for a record between the switch and the end
        return np.array([end])
    k = int(np.searchsorted(t, first, side="right")) - 1  # dense index at or before t_last
    t_last = first
    exact_first = voltage_at is not None and sp > 0.0
    v_last = float(voltage_at(np.array([first]))[0]) if exact_first else float(np.interp(first, t, v))
    i_last = float(np.interp(first, t, i))
    times = [first]
    n = len(t)
    window = 64
    while True:
        t_next = t_last + every
        found = None
        lo = k + 1
        while lo < n and found is None:
            hi = min(n, lo + window)
            moved = (np.abs(v[lo:hi] - v_last) >= dv) | (np.abs(i[lo:hi] - i_last) >= di)
            hits = np.flatnonzero(moved)
            if hits.size:
                found = lo + int(hits[0])
            elif t[hi - 1] >= t_next:
                break
            lo = hi
            window = min(window * 2, 65536)
        window = 64
        t_change = np.inf
        if found is not None:
            t_change = _crossing_time(t, v, i, found, v_last, i_last, dv, di, voltage_at)
        t_rec = max(min(t_next, t_change), t_last + sp)
        if t_rec >= end - max(sp, 1e-9 * max(1.0, end)):
            break
        times.append(t_rec)
        k = int(np.searchsorted(t, t_rec, side="right")) - 1
        t_last = t_rec
        v_last = float(voltage_at(np.array([t_rec]))[0]) if voltage_at is not None else float(np.interp(t_rec, t, v))
        i_last = float(np.interp(t_rec, t, i))
    times.append(end)
    return np.asarray(times)


def _crossing_time(
    t: np.ndarray,
    v: np.ndarray,
    i: np.ndarray,
    j: int,
    v_last: float,
    i_last: float,
    dv: float,
    di: float,
    voltage_at: Callable[[np.ndarray], np.ndarray] | None,
) -> float:
    """The instant inside (t[j-1], t[j]] where |V - V_last| or |I - I_last| first reaches its threshold."""
    a, b = j - 1, j
    best = float(t[b])
    for y, y_last, thr in ((v, v_last, dv), (i, i_last, di)):
        if not np.isfinite(thr):
            continue
        ya, yb = float(y[a]) - y_last, float(y[b]) - y_last
        if abs(yb) < thr:
            continue
        target = thr if yb > 0 else -thr
        if abs(yb - ya) > 0 and abs(ya) < thr:
            frac = (target - ya) / (yb - ya)
            guess = float(t[a] + frac * (t[b] - t[a]))
            if y is v and voltage_at is not None:
                guess = _exact_crossing(voltage_at, float(t[a]), float(t[b]), y_last + target, guess)
            best = min(best, guess)
        else:
            best = min(best, float(t[b]))
    return best


def _exact_crossing(
    voltage_at: Callable[[np.ndarray], np.ndarray], t_a: float, t_b: float, level: float, guess: float
) -> float:
    """Where the exact voltage crosses ``level`` in [t_a, t_b]: two rounds of 65 points, each evaluated in one
    vectorised call (a model's closed form costs about as much for 65 points as for one), narrow the bracket
    4096-fold; a linear interpolation inside it is then exact to far below any record threshold."""
    lo, hi = t_a, t_b
    f_lo = f_hi = 0.0
    for round_ in range(2):
        ts = np.linspace(lo, hi, 65)
        f = np.asarray(voltage_at(ts), dtype=float) - level
        if round_ == 0 and f[0] * f[-1] > 0.0:
            return guess
        crossed = np.flatnonzero(np.sign(f[1:]) != np.sign(f[0]))
        if not crossed.size:
            return guess
        k = int(crossed[0]) + 1
        lo, hi, f_lo, f_hi = float(ts[k - 1]), float(ts[k]), float(f[k - 1]), float(f[k])
        if f_hi == 0.0:
            return hi
    return lo if f_hi == f_lo else lo + (hi - lo) * (-f_lo) / (f_hi - f_lo)
