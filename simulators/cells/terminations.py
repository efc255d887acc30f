"""Termination checks on sampled trajectories, and exact location of the crossing between two samples.

Semantics follow protocols/program.py: voltage is signed; current, capacity, energy and dV/dt compare
magnitudes; time is the time since the step started. A step ends at the first instant any termination holds,
found by root finding on the model's own trajectory between the last sample where none held and the first
where one did, so the end value is exact to the solver tolerance rather than one sample late.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from protocols.program import Quantity, Termination
from simulators.cells.roots import find_root

#: time resolution of the end of a step, s: a microsecond, far below any instrument's sampling period (at the
#: steepest end of a step, ~10 V/s when a cell runs dry, that is 10 uV)
TIME_TOLERANCE = 1e-6
_RTOL = 4 * float(np.finfo(float).eps)


class Samples(NamedTuple):
    """Trajectory values at sample instants: step time, V, |I|, signed Q (Ah), signed E (Wh), |dV/dt|.

    A quantity that is the same at every sample (|I| under constant current) may be given as one float, and one
    that no termination compares may be left out (``None``): a step end is searched on a few hundred samples some
    2000 times in a long cycling run, where filling and scanning arrays nobody needs is most of the work. (A tuple:
    a hold's integrator builds one per time step.)
    """

    t: np.ndarray | None
    v: np.ndarray | None
    i_abs: np.ndarray | float | None
    q: np.ndarray | None
    e: np.ndarray | None
    dvdt: np.ndarray | None = None


def measured(term: Termination, s: Samples) -> np.ndarray | float:
    q = term.quantity
    if q is Quantity.VOLTAGE:
        values: np.ndarray | float | None = s.v
    elif q is Quantity.CURRENT:
        values = s.i_abs
    elif q is Quantity.CAPACITY:
        values = None if s.q is None else np.abs(s.q)
    elif q is Quantity.ENERGY:
        values = None if s.e is None else np.abs(s.e)
    elif q is Quantity.TIME:
        values = s.t
    else:
        values = s.dvdt
    if values is None:
        raise ValueError(f"{q.value} samples are needed for a {q.value} termination")
    return values


def first_hits(terms: Sequence[Termination], s: Samples) -> tuple[int, list[int]]:
    """The first sample index at which any termination holds, and the terminations holding there.

    Returns (-1, []) when none holds anywhere in ``s``.
    """
    best = -1
    who: list[int] = []
    for n, term in enumerate(terms):
        values = measured(term, s)
        if isinstance(values, float):  # the same at every sample: it holds from the first or never
            if not term.op.holds(values, term.value):
                continue
            k = 0
        elif not values.size:
            continue
        else:
            mask = term.op.holds(values, term.value)
            k = int(mask.argmax())  # the first True, or 0 when there is none
            if not mask[k]:
                continue
        if best < 0 or k < best:
            best, who = k, [n]
        elif k == best:
            who.append(n)
    return best, who


def refine(term: Termination, quantity_at: Callable[[float], float], t_a: float, t_b: float) -> float:
    """The instant in (t_a, t_b] at which ``term`` starts to hold, given the quantity as a function of time."""
    if term.quantity is Quantity.TIME:
        return min(max(term.value, t_a), t_b)

    value = term.value
    if term.quantity is Quantity.VOLTAGE:  # signed; every other quantity compares its magnitude

        def f(t: float) -> float:
            return quantity_at(t) - value

    else:

        def f(t: float) -> float:
            return abs(quantity_at(t)) - value

    fa, fb = f(t_a), f(t_b)
    if fb == 0.0 or fa * fb > 0.0:
        return t_b
    return find_root(f, t_a, t_b, xtol=TIME_TOLERANCE, rtol=_RTOL, maxiter=200, fa=fa, fb=fb)
