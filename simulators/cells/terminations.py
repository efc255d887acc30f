"""Termination checks on sampled trajectories, and exact location of the crossing between two samples.

Semantics follow protocols/program.py: voltage is signed; current, capacity, energy and dV/dt compare
magnitudes; time is the time since the step started. A step ends at the first instant any termination holds,
found by root finding on the model's own trajectory between the last sample where none held and the first
where one did, so the end value is exact to the solver tolerance rather than one sample late.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from protocols.program import Comparison, Quantity, Termination
from simulators.cells.roots import find_root

#: time resolution of the end of a step, s: a microsecond, far below any instrument's sampling period (at the
#: steepest end of a step, ~10 V/s when a cell runs dry, that is 10 uV)
TIME_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class Samples:
    """Trajectory values at sample instants: step time, V, |I|, signed Q (Ah), signed E (Wh), |dV/dt|."""

    t: np.ndarray
    v: np.ndarray
    i_abs: np.ndarray
    q: np.ndarray
    e: np.ndarray
    dvdt: np.ndarray | None = None


def measured(term: Termination, s: Samples) -> np.ndarray:
    q = term.quantity
    if q is Quantity.VOLTAGE:
        return s.v
    if q is Quantity.CURRENT:
        return s.i_abs
    if q is Quantity.CAPACITY:
        return np.abs(s.q)
    if q is Quantity.ENERGY:
        return np.abs(s.e)
    if q is Quantity.TIME:
        return s.t
    if s.dvdt is None:
        raise ValueError("dV/dt samples are needed for a dvdt termination")
    return s.dvdt


def holds(term: Termination, values: np.ndarray) -> np.ndarray:
    return values <= term.value if term.op is Comparison.LE else values >= term.value


def first_hits(terms: Sequence[Termination], s: Samples) -> tuple[int, list[int]]:
    """The first sample index at which any termination holds, and the terminations holding there.

    Returns (-1, []) when none holds anywhere in ``s``.
    """
    best = -1
    who: list[int] = []
    for n, term in enumerate(terms):
        idx = np.flatnonzero(holds(term, measured(term, s)))
        if idx.size == 0:
            continue
        k = int(idx[0])
        if best < 0 or k < best:
            best, who = k, [n]
        elif k == best:
            who.append(n)
    return best, who


def refine(term: Termination, quantity_at: Callable[[float], float], t_a: float, t_b: float) -> float:
    """The instant in (t_a, t_b] at which ``term`` starts to hold, given the quantity as a function of time."""
    if term.quantity is Quantity.TIME:
        return min(max(term.value, t_a), t_b)

    def f(t: float) -> float:
        x = quantity_at(t)
        if term.quantity is not Quantity.VOLTAGE:
            x = abs(x)
        return x - term.value

    fa, fb = f(t_a), f(t_b)
    if fb == 0.0 or fa * fb > 0.0:
        return t_b
    return find_root(f, t_a, t_b, xtol=TIME_TOLERANCE, rtol=4 * np.finfo(float).eps, maxiter=200)
