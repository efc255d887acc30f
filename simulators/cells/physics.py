"""Small physical building blocks shared by the cell models: constants, kinetics, tabulated curves.

The reference workload runs at 27 degC (DESIGN section 1), so the thermal voltage RT/F is fixed at that
temperature unless a model's ``temperature`` parameter says otherwise.
"""

from __future__ import annotations

import numpy as np

FARADAY = 96485.33212  # C/mol, CODATA 2018
GAS_CONSTANT = 8.314462618  # J/(mol K), CODATA 2018
REFERENCE_TEMPERATURE = 300.15  # K: 27 degC, the cycling temperature of the reference workload
SECONDS_PER_HOUR = 3600.0
LI_VOLUMETRIC_CAPACITY = 2.061e6  # Ah/m^3 (2061 mAh/cm^3, DESIGN section 1)


def thermal_voltage(temperature: float) -> float:
    """RT/F in V (25.87 mV at 27 degC)."""
    return GAS_CONSTANT * temperature / FARADAY


def arrhenius_factor(activation_energy: float, temperature: float, reference: float = REFERENCE_TEMPERATURE) -> float:
    """k(T)/k(T_ref) = exp(-Ea/R (1/T - 1/T_ref)) for a thermally activated rate (exchange current, diffusivity,
    conductivity); a resistance divides by it. ``activation_energy`` in J/mol."""
    return float(np.exp(-activation_energy / GAS_CONSTANT * (1.0 / temperature - 1.0 / reference)))


def butler_volmer_overpotential(current: np.ndarray | float, exchange_current: float, vt: float) -> np.ndarray:
    """Symmetric Butler-Volmer (alpha = 0.5) overpotential in V, signed like the current.

    eta = 2 (RT/F) asinh(I / (2 I0)) is the exact inverse of I = 2 I0 sinh(eta F / 2RT); it is linear
    (R_ct = RT/(F I0)) at small currents and logarithmic (Tafel) at large ones, which is what makes the Li
    plating plateau grow sub-linearly with current density.
    """
    return 2.0 * vt * np.arcsinh(np.asarray(current, dtype=float) / (2.0 * exchange_current))


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The knot derivatives of the shape-preserving piecewise cubic Hermite interpolant (PCHIP).

    Fritsch & Butland (1984): at an interior knot where the secant slopes on both sides have the same sign, the
    derivative is their weighted harmonic mean (weights 2h_k + h_(k-1) and h_k + 2h_(k-1)); where they differ in
    sign or one is zero the knot is a local extremum and its derivative 0. At the two ends a one-sided three-point
    estimate, set to 0 when its sign differs from the end secant's, and limited to three times that secant when the
    data turn there. Monotone data therefore give a monotone interpolant without overshoot.
    """
    h = np.diff(x)
    delta = np.diff(y) / h
    n = x.size
    d = np.zeros(n)
    if n == 2:
        d[:] = delta[0]
        return d
    d0, d1 = delta[:-1], delta[1:]
    h0, h1 = h[:-1], h[1:]
    same = (np.sign(d0) * np.sign(d1)) > 0.0
    w1 = 2.0 * h1 + h0
    w2 = h1 + 2.0 * h0
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / d0 + w2 / d1)
    d[1:-1] = np.where(same, harmonic, 0.0)
    d[0] = _pchip_end_slope(h[0], h[1], delta[0], delta[1])
    d[-1] = _pchip_end_slope(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _pchip_end_slope(h0: float, h1: float, delta0: float, delta1: float) -> float:
    """The one-sided three-point end derivative, kept shape-preserving (0 against the end secant, at most 3x it)."""
    d = ((2.0 * h0 + h1) * delta0 - h0 * delta1) / (h0 + h1)
    if np.sign(d) != np.sign(delta0):
        return 0.0
    if np.sign(delta0) != np.sign(delta1) and abs(d) > abs(3.0 * delta0):
        return 3.0 * delta0
    return float(d)


def pchip(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The PCHIP interpolant through the knots (``x`` strictly increasing) evaluated at ``at`` inside [x0, xn].

    Each interval is the cubic Hermite polynomial with the knot values and the slopes of :func:`pchip_slopes`,
    evaluated in Horner form in the local coordinate t = at - x_k, so the knots themselves come out exactly.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    at = np.asarray(at, dtype=float)
    if x.ndim != 1 or x.size < 2 or y.shape != x.shape:
        raise ValueError(f"pchip: need at least 2 knots with matching x and y, got x {x.shape} and y {y.shape}")
    if not np.all(np.diff(x) > 0.0):
        raise ValueError("pchip: the knots' x must be strictly increasing; sort them and drop duplicates")
    d = pchip_slopes(x, y)
    h = np.diff(x)
    secant = np.diff(y) / h
    c2 = (3.0 * secant - 2.0 * d[:-1] - d[1:]) / h
    c3 = (d[:-1] + d[1:] - 2.0 * secant) / (h * h)
    k = np.clip(np.searchsorted(x, at, side="right") - 1, 0, x.size - 2)
    t = at - x[k]
    out = ((c3[k] * t + c2[k]) * t + d[:-1][k]) * t + y[k]
    return np.where(at == x[-1], y[-1], out)


class TabulatedCurve:
    """A smooth monotone curve y(x), sampled finely once so that evaluation is a single ``np.interp``.

    The knots are interpolated with a shape-preserving cubic (PCHIP: no overshoot, so an OCV curve stays
    monotone) and resampled on ``resolution`` points; outside the knots the curve continues linearly with
    the given end slopes, which lets a cell pushed beyond its window still reach any voltage limit.
    """

    __slots__ = (
        "_dx",
        "_dy",
        "_slope_hi",
        "_slope_lo",
        "_x",
        "_x_hi",
        "_x_lo",
        "_y",
        "_y_hi",
        "_y_lo",
        "_ylist",
    )

    def __init__(
        self,
        x: np.ndarray | list[float],
        y: np.ndarray | list[float],
        *,
        slope_lo: float,
        slope_hi: float,
        resolution: int = 2001,
    ) -> None:
        xk = np.asarray(x, dtype=float)
        yk = np.asarray(y, dtype=float)
        self._x = np.linspace(xk[0], xk[-1], resolution)
        self._y = pchip(xk, yk, self._x)
        self._dy = np.gradient(self._y, self._x)
        self._x_lo, self._x_hi = float(self._x[0]), float(self._x[-1])
        self._y_lo, self._y_hi = float(self._y[0]), float(self._y[-1])
        self._slope_lo, self._slope_hi = slope_lo, slope_hi
        self._dx = (self._x_hi - self._x_lo) / (resolution - 1)
        self._ylist = self._y.tolist()

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        xa = np.asarray(x, dtype=float)
        y = np.interp(xa, self._x, self._y)
        y = y + np.minimum(xa - self._x_lo, 0.0) * self._slope_lo
        return y + np.maximum(xa - self._x_hi, 0.0) * self._slope_hi

    def scalar(self, x: float) -> float:
        """The curve at one point in plain float arithmetic (the table is uniform: no search needed)."""
        if x <= self._x_lo:
            return self._y_lo + (x - self._x_lo) * self._slope_lo
        if x >= self._x_hi:
            return self._y_hi + (x - self._x_hi) * self._slope_hi
        pos = (x - self._x_lo) / self._dx
        k = min(int(pos), len(self._ylist) - 2)
        y0 = self._ylist[k]
        return y0 + (pos - k) * (self._ylist[k + 1] - y0)

    def slope(self, x: float) -> float:
        """dy/dx at x (the end slopes outside the table)."""
        if x < self._x_lo:
            return self._slope_lo
        if x > self._x_hi:
            return self._slope_hi
        return float(np.interp(x, self._x, self._dy))
