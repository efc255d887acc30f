"""Solid-state diffusion in an intercalation host, and the SEI reduction of its first lithiation, in closed form.

Why this exists: the interface of an insertion host sees the lithiation of its *surface*, not its mean. Under a
current the surface runs ahead of the bulk by a diffusion offset, so a CV peak is limited by diffusion
(Randles-Sevcik, peak current ~ sqrt(scan rate)) when the sweep is fast against the diffusion time, and by the
host's capacity (thin-layer / surface-confined, peak current ~ scan rate) when it is slow; the anodic and cathodic
peaks drift apart as the rate grows, and a constant-current step ends early when the surface saturates.

Diffusion (Fick, constant D) in a slab of thickness L fed through one face, or a sphere of radius R, written as
a spectral (eigenfunction) expansion. With the mean lithiation fraction x_bar rising at r = dx_bar/dt (1/s), the
surface fraction is

    x_s = x_bar + sum_n a_n,        da_n/dt = -k_n a_n + g_n r

    slab   k_n = (n pi)^2 / tau,    g_n = 2,      tau = L^2 / D,  sum g_n/k_n = tau/3
    sphere k_n = lambda_n^2 / tau,  g_n = 2/3,    tau = R^2 / D,  tan(lambda_n) = lambda_n, sum g_n/k_n = tau/15

(Crank, *The Mathematics of Diffusion*, 2nd ed., 1975, ch. 4 and 6; the sphere form is the one of Doyle-Newman
single-particle models). Under a constant r each amplitude is an exponential plus a constant, so the whole
trajectory stays a closed form, as the cell engine's constant-current path requires. The first ``n`` modes are
kept; the rest, fast ones, are lumped into one mode with the same steady offset and the same first moment, so
that the steady (long-time) offset is exact and the short-time sqrt(t) rise is right down to t ~ tau/(n pi)^2.

SEI reduction: on the first lithiation, electrolyte is reduced on the host surface at 0.7-0.8 V vs Li (the
broad first-cycle cathodic peak of carbon and Ti-oxide electrodes). It is a surface reaction in parallel with
insertion, at the same potential, and irreversible: the reduced share theta follows the Nernst-like
sigmoid theta_eq(U) of the surface potential while U falls and never returns. With the SEI charge per host
capacity rho, charge conservation at the surface reads x_s + rho theta = C(t) with C known in closed form, and
theta = max(theta_0, theta_eq(U_host(x_s))); both branches are monotone, so x_s = min(C - rho theta_0,
H^-1(C)) with H(x) = x + rho theta_eq(U_host(x)) tabulated once. The one approximation that keeps this closed
form: the SEI charge drives the diffusion modes as if it had entered the host (the surface offset is slightly
over-estimated while the SEI forms, by at most rho of it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulators.cells.roots import find_root

#: explicit modes kept; the rest are lumped into one (resolves t >= tau / (16 pi)^2 = tau / 2500)
DEFAULT_MODES = 16
_TABLE_POINTS = 4001
#: an SEI share this close to the most a full lithiation forms counts as complete (saves the solve; < 1e-5 of it)
_SEI_COMPLETE = 1e-5


def diffusion_time(length: float, diffusivity: float) -> float:
    """tau = L^2 / D (s): the time scale of the host's solid-state diffusion; 0 for a host without any."""
    if length <= 0.0:
        return 0.0
    return length * length / diffusivity


def sphere_eigenvalues(n: int) -> np.ndarray:
    """The first ``n`` positive roots of tan(l) = l (sphere with a flux boundary), l_k in (k pi, k pi + pi/2)."""

    def f(lam: float) -> float:
        return math.sin(lam) - lam * math.cos(lam)

    return np.array([find_root(f, k * math.pi + 1e-9, k * math.pi + 0.5 * math.pi - 1e-12) for k in range(1, n + 1)])


def _slab_spectrum(tau: float, n: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(rates, gains) of the kept slab modes, and the steady and first-moment sums of the dropped ones.

    The dropped sums are the exact totals minus the kept terms, so the lumped tail mode makes the totals exact.
    """
    lam2 = (np.arange(1, n + 1) * math.pi) ** 2
    rates, gains = lam2 / tau, np.full(n, 2.0)
    # exact totals: sum 2/(n pi)^2 = 1/3, sum 2/(n pi)^4 = 1/45
    steady_tail = tau * (1.0 / 3.0 - float(np.sum(2.0 / lam2)))
    moment_tail = tau * tau * (1.0 / 45.0 - float(np.sum(2.0 / lam2**2)))
    return rates, gains, steady_tail, moment_tail


def _sphere_spectrum(tau: float, n: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The same for a sphere (flux through its whole surface)."""
    lam2 = sphere_eigenvalues(n) ** 2
    rates, gains = lam2 / tau, np.full(n, 2.0 / 3.0)
    # exact totals over the roots of tan l = l: sum 1/l^2 = 1/10, sum 1/l^4 = 1/350
    steady_tail = tau * (2.0 / 3.0) * (0.1 - float(np.sum(1.0 / lam2)))
    moment_tail = tau * tau * (2.0 / 3.0) * (1.0 / 350.0 - float(np.sum(1.0 / lam2**2)))
    return rates, gains, steady_tail, moment_tail


_SPECTRA = {"slab": _slab_spectrum, "sphere": _sphere_spectrum}


@dataclass(frozen=True, slots=True)
class HostDiffusion:
    """The diffusion modes of one host: da_n/dt = -speed rates_n a_n + gains_n r, x_s - x_bar = sum a_n.

    ``rates`` is empty for a host without solid-state diffusion (a metal foil): the surface is the mean.
    ``speed`` = D / D_ref scales every rate at once (a diffusivity that depends on the lithiation or the
    temperature changes how fast the profile relaxes, not its shape: the eigenfunctions do not depend on D).
    """

    tau: float
    rates: np.ndarray
    gains: np.ndarray
    unit: np.ndarray  # gains / rates: each mode's steady amplitude per unit lithiation rate at speed 1 (s)
    unit_sum: float  # their sum: the steady surface offset per unit lithiation rate (tau/3 for a slab)

    @classmethod
    def build(cls, geometry: str, tau: float, modes: int = DEFAULT_MODES) -> HostDiffusion:
        """Modes of a ``"slab"`` or ``"sphere"`` with diffusion time ``tau`` (s); none when tau is 0."""
        if tau <= 0.0:
            return cls(0.0, np.empty(0), np.empty(0), np.empty(0), 0.0)
        rates, gains, steady_tail, moment_tail = _SPECTRA[geometry](tau, modes)
        # one lumped mode for the tail: same steady offset (gain/rate) and first moment (gain/rate^2)
        k_tail = steady_tail / moment_tail
        rates, gains = np.append(rates, k_tail), np.append(gains, k_tail * steady_tail)
        return cls(tau, rates, gains, gains / rates, float(np.sum(gains / rates)))

    @property
    def size(self) -> int:
        return len(self.rates)

    def zero(self) -> np.ndarray:
        """Amplitudes of a relaxed host (uniform lithiation)."""
        return np.zeros(self.size)

    def steady_offset(self, rate: float, speed: float = 1.0) -> float:
        """x_s - x_bar reached under a constant lithiation rate (1/s) held for long (tau/3 r for a slab)."""
        return rate * self.unit_sum / speed

    def offset(
        self, a0: np.ndarray, r1: float, t_switch: float, r2: float, t: np.ndarray, speed: float = 1.0
    ) -> np.ndarray:
        """Surface offset sum_n a_n(t) at the times ``t`` for a drive r1 before ``t_switch`` and r2 after.

        Two pieces cover every regime of a half-cell step: host (de)lithiation, then Li plating on top of it
        (r2 = 0), or stripping first (r1 = 0) then delithiation.
        """
        t = np.asarray(t, dtype=float)
        if not self.size:
            return np.zeros(t.shape)
        if t_switch <= 0.0:  # one piece (a CV step's delithiation, nothing to strip first)
            return self._relaxed(a0, r2, t, speed)
        if t_switch == math.inf or (t.size and t.max() <= t_switch):  # one piece (a CV step's lithiation)
            return self._relaxed(a0, r1, t, speed)
        out = np.empty(t.shape)
        late = t > t_switch
        early = ~late
        if early.any():
            out[early] = self._relaxed(a0, r1, t[early], speed)
        if late.any():
            a_switch = self.amplitudes(a0, r1, math.inf, r1, t_switch, speed)
            out[late] = self._relaxed(a_switch, r2, t[late] - t_switch, speed)
        return out

    def _relaxed(self, a0: np.ndarray, r: float, t: np.ndarray, speed: float) -> np.ndarray:
        """sum_n a_n(t) under one constant drive r: each mode relaxes exponentially to its steady amplitude."""
        s = r / speed
        decay = np.exp(np.multiply.outer(t, -speed * self.rates))
        return decay @ (a0 - s * self.unit) + s * self.unit_sum

    def amplitudes(
        self, a0: np.ndarray, r1: float, t_switch: float, r2: float, t: float, speed: float = 1.0
    ) -> np.ndarray:
        """The mode amplitudes at one time ``t`` (the state a step commits), same drive as :meth:`offset`."""
        if not self.size:
            return a0
        k = speed * self.rates
        s1 = (r1 / speed) * self.unit
        a = s1 + (a0 - s1) * np.exp(-k * min(t, t_switch))
        if t > t_switch:
            s2 = (r2 / speed) * self.unit
            a = s2 + (a - s2) * np.exp(-k * (t - t_switch))
        return a


class SurfaceSei:
    """The host surface with the irreversible SEI reduction in parallel: solves x_s + rho theta = C.

    ``host_potential`` maps a lithiation fraction to the host's potential (V, vectorised). theta_eq is the
    share of the SEI reduced at equilibrium at potential U: 1 / (1 + exp((U - potential) / width)).
    """

    __slots__ = ("_h", "_rho", "_s", "_s_max", "_x")

    def __init__(
        self, host_potential: Callable[[np.ndarray], np.ndarray], rho: float, potential: float, width: float
    ) -> None:
        self._rho = rho
        self._x = np.linspace(0.0, 1.0, _TABLE_POINTS)
        z = np.clip((host_potential(self._x) - potential) / width, -700.0, 700.0)
        self._s = 1.0 / (1.0 + np.exp(z))  # theta_eq along the host's lithiation, rising with x
        self._h = self._x + rho * self._s  # strictly increasing (slope >= 1): invertible by interpolation
        self._s_max = float(self._s[-1])

    @property
    def rho(self) -> float:
        return self._rho

    def equilibrium_share(self, x: np.ndarray | float) -> np.ndarray:
        """theta_eq at the surface lithiation ``x`` (flat beyond the host's window)."""
        return np.interp(x, self._x, self._s)

    def solve(self, c: np.ndarray, theta0: float) -> tuple[np.ndarray, np.ndarray]:
        """(surface fraction x_s, reduced share theta) from C = x_s + rho theta and the share theta0 so far."""
        if self.complete(theta0):  # the surface is the host's alone
            return c - self._rho * theta0, np.full(np.shape(c), theta0)
        # H^-1 on the table, continued with slope 1 outside it (theta_eq is flat there)
        lo, hi = self._h[0], self._h[-1]
        x_h = np.interp(c, self._h, self._x) + np.minimum(c - lo, 0.0) + np.maximum(c - hi, 0.0)
        x_s = np.minimum(c - self._rho * theta0, x_h)
        return x_s, (c - x_s) / self._rho

    def complete(self, theta0: float) -> bool:
        """Whether no more SEI can form from the share ``theta0`` (none to form, or a full lithiation's worth)."""
        return self._rho <= 0.0 or theta0 >= self._s_max - _SEI_COMPLETE

    def final_share(self, theta0: float) -> float:
        """The share reduced once the host is full (its surface at 0 V): what a full lithiation consumes."""
        return theta0 if self.complete(theta0) else self._s_max
