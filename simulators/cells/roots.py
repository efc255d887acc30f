"""A bracketing root finder (Brent's method) in plain Python, so that no cell model needs scipy at run time.

The cell models solve small scalar equations (the instant a termination starts to hold, a host fraction from its
OCV, the eigenvalues of a sphere, a hold time); importing ``scipy.optimize`` for them costs more start-up time and
memory than a whole short dry run. The functions solved are Python callables, so their evaluations, not this loop,
dominate the cost.

The method is Brent's (R. P. Brent, *Algorithms for Minimization without Derivatives*, 1973, chapter 4): keep a
bracket [b, c] with a sign change and the previous iterate a; try inverse quadratic interpolation through
(a, b, c) (the secant when only two points are distinct), and accept that step only when it falls well inside the
bracket and shrinks faster than the step before last; otherwise bisect. It therefore converges superlinearly on
smooth functions and never worse than about twice bisection on bad ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable

#: defaults equal to the ones the models relied on before (an absolute and a relative tolerance in x)
DEFAULT_XTOL = 2e-12
DEFAULT_RTOL = 4.0 * 2.220446049250313e-16
DEFAULT_MAXITER = 100


class RootError(ValueError):
    """A root could not be found: the bracket has no sign change, or the iteration limit was reached."""


def find_root(
    f: Callable[[float], float],
    a: float,
    b: float,
    *,
    xtol: float = DEFAULT_XTOL,
    rtol: float = DEFAULT_RTOL,
    maxiter: int = DEFAULT_MAXITER,
    fa: float | None = None,
    fb: float | None = None,
) -> float:
    """The x in [a, b] where ``f`` changes sign, to within ``xtol + rtol * |x|``.

    ``f(a)`` and ``f(b)`` must have opposite signs (or one of them be zero). ``maxiter`` bounds the evaluations
    after the two at the ends. A caller that has already evaluated ``f`` at the ends (to see whether there is a
    crossing at all) passes those values as ``fa`` and ``fb``, saving two evaluations of a deterministic ``f``.
    """
    if not xtol > 0.0 or not rtol >= 0.0:
        raise RootError(f"find_root: xtol must be > 0 and rtol >= 0, got xtol={xtol!r}, rtol={rtol!r}")
    fa = float(f(a)) if fa is None else float(fa)
    fb = float(f(b)) if fb is None else float(fb)
    if math.isnan(fa) or math.isnan(fb):
        raise RootError(f"find_root: f is NaN at an end of the bracket [{a!r}, {b!r}] (f(a)={fa!r}, f(b)={fb!r})")
    if fa == 0.0:
        return float(a)
    if fb == 0.0:
        return float(b)
    if (fa > 0.0) == (fb > 0.0):
        raise RootError(
            f"find_root: f has the same sign at both ends of [{a!r}, {b!r}] (f(a)={fa!r}, f(b)={fb!r}); "
            "pass a bracket across which f changes sign"
        )
    # b: the best estimate; c: the other end of the bracket; a: the previous b
    c, fc = a, fa
    d = e = b - a  # the last step and the one before it
    for _ in range(maxiter):
        if abs(fc) < abs(fb):  # keep b the end with the smaller residual
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol = 0.5 * (xtol + rtol * abs(b))
        m = 0.5 * (c - b)  # half the bracket, pointing from b into it
        if abs(m) <= tol or fb == 0.0:
            return b
        if abs(e) < tol or abs(fa) <= abs(fb):
            d = e = m  # the last steps were too small, or did not reduce the residual: bisect
        else:
            s = fb / fa
            if a == c:  # two distinct points: secant
                p = 2.0 * m * s
                q = 1.0 - s
            else:  # three: inverse quadratic interpolation
                qa = fa / fc
                r = fb / fc
                p = s * (2.0 * m * qa * (qa - r) - (b - a) * (r - 1.0))
                q = (qa - 1.0) * (r - 1.0) * (s - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            # accept the interpolated step only inside 3/4 of the bracket and if it beats half the step before last
            if 2.0 * p < 3.0 * m * q - abs(tol * q) and p < abs(0.5 * e * q):
                e, d = d, p / q
            else:
                d = e = m
        a, fa = b, fb
        b = b + (d if abs(d) > tol else math.copysign(tol, m))
        fb = float(f(b))
        if math.isnan(fb):
            raise RootError(f"find_root: f is NaN at x={b!r} inside the bracket")
        if (fb > 0.0) == (fc > 0.0):  # the sign change is now between a and b
            c, fc = a, fa
            d = e = b - a
    raise RootError(
        f"find_root: no convergence in {maxiter} iterations (bracket [{min(b, c)!r}, {max(b, c)!r}]); "
        "raise maxiter or loosen xtol/rtol"
    )
