"""The cell models' own bracketing root finder (Brent's method) against scipy's brentq on hard functions.

scipy is still a dependency of the project, so the tests use it as the reference; the models do not.
"""

from __future__ import annotations

import math

import pytest
from scipy.optimize import brentq

from simulators.cells.host_diffusion import sphere_eigenvalues
from simulators.cells.roots import RootError, find_root

EPS = 2.220446049250313e-16


def _steep(x: float) -> float:
    return math.tanh(1e4 * (x - 0.3141))


def _flat(x: float) -> float:
    return (x - 0.7) ** 9  # flat near the root: the residual underflows long before x is close


def _kinked(x: float) -> float:
    return 2.0 * (x - 0.4) if x < 0.4 else 1e-3 * (x - 0.4)


def _step(x: float) -> float:
    return -1.0 if x < 1.0 / 3.0 else 1.0  # no root, just a sign change: the bracket must still close on it


def _relaxation(t: float) -> float:
    return 4.3 - 4.4 * math.exp(-t / 3600.0)  # a voltage limit in time, solved to the models' 1 us TIME_TOLERANCE


def _tan_eq(k: int):
    def f(lam: float) -> float:
        return math.sin(lam) - lam * math.cos(lam)

    return f, k * math.pi + 1e-9, k * math.pi + 0.5 * math.pi - 1e-12


#: (name, f, a, b, exact root or None, xtol, rtol)
CASES = [
    ("cubic", lambda x: x**3 - 2.0 * x - 5.0, 2.0, 3.0, 2.0945514815423265, 2e-12, 4 * EPS),
    ("steep tanh", _steep, 0.0, 1.0, 0.3141, 2e-12, 4 * EPS),
    ("flat x^9", _flat, 0.0, 1.0, 0.7, 2e-12, 4 * EPS),
    ("kinked", _kinked, -1.0, 3.0, 0.4, 2e-12, 4 * EPS),
    ("step", _step, 0.0, 1.0, 1.0 / 3.0, 2e-12, 4 * EPS),
    ("exp - 1e6", lambda x: math.exp(x) - 1e6, 0.0, 50.0, math.log(1e6), 2e-12, 4 * EPS),
    ("tiny bracket", lambda x: x - 1.0, 1.0 - 1e-13, 1.0 + 3e-13, 1.0, 1e-15, 4 * EPS),
    ("big root", lambda x: x - 1.23456789e9, 0.0, 1e10, 1.23456789e9, 1e-15, 4 * EPS),
    ("time tolerance", _relaxation, 0.0, 9e4, 3600.0 * math.log(4.4 / 4.3), 1e-6, 4 * EPS),
    ("negative side", lambda x: math.atan(x + 5.0), -100.0, 1.0, -5.0, 1e-15, 4 * EPS),
] + [(f"tan(l)=l #{k}", *_tan_eq(k), None, 2e-12, 4 * EPS) for k in (1, 2, 5, 16, 40)]


def _tolerance(root: float, xtol: float, rtol: float) -> float:
    return xtol + rtol * abs(root)


@pytest.mark.parametrize(("name", "f", "a", "b", "exact", "xtol", "rtol"), CASES, ids=[c[0] for c in CASES])
def test_root_agrees_with_scipy_and_meets_its_tolerance(name, f, a, b, exact, xtol, rtol) -> None:
    calls = {"ours": 0, "scipy": 0}

    def counted(key: str):
        def g(x: float) -> float:
            calls[key] += 1
            return f(x)

        return g

    ours = find_root(counted("ours"), a, b, xtol=xtol, rtol=rtol, maxiter=200)
    ref, info = brentq(counted("scipy"), a, b, xtol=xtol, rtol=rtol, maxiter=200, full_output=True)
    assert info.converged
    tol = _tolerance(ref, xtol, rtol)
    assert abs(ours - ref) <= tol, (name, ours, ref)
    if exact is not None:
        # the bracket closed to within the tolerance around the true root (a few ulps of the reference value)
        assert abs(ours - exact) <= tol + 4 * EPS * abs(exact), (name, ours, exact)
    # superlinear like scipy's: never more than a few evaluations beyond it
    assert calls["ours"] <= calls["scipy"] + 3, (name, calls)


def test_tan_eigenvalues_are_the_known_roots() -> None:
    """l_1 = 4.493409457909064, l_2 = 7.725251836937707 (roots of tan l = l, standard tables), and l_k -> (k+1/2) pi."""
    lam = sphere_eigenvalues(40)
    assert lam[0] == pytest.approx(4.493409457909064, abs=4e-12)
    assert lam[1] == pytest.approx(7.725251836937707, abs=4e-12)
    k = 40
    assert lam[-1] == pytest.approx((k + 0.5) * math.pi - 1.0 / ((k + 0.5) * math.pi), abs=1e-6)
    for k, value in enumerate(lam, start=1):
        assert math.tan(value) == pytest.approx(value, rel=1e-8)
        assert brentq(*_tan_eq(k)) == pytest.approx(value, abs=4e-12)


def test_root_at_an_end_is_returned_exactly() -> None:
    assert find_root(lambda x: x - 2.0, 2.0, 5.0) == 2.0
    assert find_root(lambda x: x - 5.0, 2.0, 5.0) == 5.0
    assert find_root(lambda x: x * x - 4.0, 0.0, 2.0) == 2.0


def test_reversed_bracket_works() -> None:
    assert find_root(lambda x: x - 0.25, 1.0, 0.0) == pytest.approx(0.25, abs=2e-12)


def test_no_sign_change_is_a_clear_error() -> None:
    with pytest.raises(RootError, match=r"same sign at both ends of \[0.0, 1.0\]"):
        find_root(lambda x: x * x + 1.0, 0.0, 1.0)


def test_iteration_limit_is_a_clear_error() -> None:
    with pytest.raises(RootError, match="no convergence in 3 iterations"):
        find_root(lambda x: math.exp(x) - 1e6, 0.0, 50.0, maxiter=3)


def test_nan_is_a_clear_error() -> None:
    with pytest.raises(RootError, match="NaN"):
        find_root(lambda x: math.nan if x > 0.5 else -1.0, 0.0, 1.0)
    with pytest.raises(RootError, match="xtol must be > 0"):
        find_root(lambda x: x, -1.0, 1.0, xtol=0.0)
