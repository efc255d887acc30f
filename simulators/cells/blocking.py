"""A mixed ion-electron conductor between Li-ion blocking electrodes ("blocking"): the P7 measurement cell.

Electrons cross the (stainless steel) electrodes freely, Li ions do not. The film is the Jamnik-Maier transmission
line of a mixed conductor: an electronic rail (Re = L/(sigma_e A)) and an ionic rail (Ri = L/(sigma_i A)) coupled
along the thickness L by the chemical capacitance, the ionic rail open at both ion-blocking ends (J. Jamnik,
J. Maier, Phys. Chem. Chem. Phys. 3 (2001) 1668; the DC picture is Hebb-Wagner / Yokota polarisation, J. Maier,
"Physical Chemistry of Ionic Materials", Wiley 2004, ch. 7). Solving the line (symmetric about the centre):

    Z(w) = R_c + R_par + R_w tanh(x)/x,   x = (pi/2) sqrt(j w tau),   tau = L^2/(pi^2 D~)
    R_par = Re Ri/(Re + Ri),   R_w = Re^2/(Re + Ri)

so Z(inf) = R_c + Re||Ri (the total conductivity EIS measures), Z(0) = R_c + Re (only electrons pass a blocked
film) and in between a finite-length (transmissive) Warburg: the 45 degree line of chemical diffusion, bending
to the real axis at w ~ 1/tau. D~ is the chemical diffusion coefficient of Li (ambipolar Li+ and e-).

tanh(x)/x = sum_m 8/((2m+1)^2 pi^2) / (1 + j w tau/(2m+1)^2) (its partial fractions), so the film is exactly a
series of RC modes with R_m = R_w 8/((2m+1)^2 pi^2) and tau_m = tau/(2m+1)^2 (the odd-harmonic series of the
finite diffusion solution). Under constant current each mode relaxes exponentially, which is the closed form the
engine needs; the state is the mode voltages (the stoichiometry polarisation of the film, mode by mode).

A DC potentiostatic step V (P7) is what the engine's hold solver computes from these modes. Its exact current,
by residues of V/(s Z(s)), is I(t) = V/(R_c + Re) (1 + eps(t)) with

    eps(t) = sum_m 2 (1 + b) / (1 + b + b^2 y_m^2) exp(-4 y_m^2 t / (pi^2 tau)),   b = (R_c + R_par)/R_w

where y_m in ((m - 1/2) pi, m pi) solves tan y = -b y (:func:`dc_polarisation_error`): the electronic
conductivity read from the current after a hold t is (1 + eps(t)) times the true one. With b -> inf the roots
tend to the odd harmonics (a current-driven film); for an ionic-majority film (b = sigma_e/sigma_i small) the
potentiostatic decay is faster than tau, by (pi/(2 y_1))^2.

Left out, with reasons: the ion-blocking interfaces' double layers. They would shunt the ionic rail's ends, but
at 57 uF each they are small against the chemical capacitance of the layer diffusion reaches at any measured
frequency (the whole film holds L^2/(D~ (Re + Ri)) = 25 F; even at 100 kHz its sqrt(D~/w) skin holds ~0.4 mF),
so their effect on Z stays below 1e-4. And, in the time domain only, the bulk dielectric capacitance (nF: a
~100 ns time constant; it stays in the impedance, where it matters above ~1 MHz).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from simulators.cells import impedance as zel
from simulators.cells.engine import ConstantCurrentPath, SimulatedCell
from simulators.cells.parameters import Param
from simulators.cells.physics import arrhenius_factor
from simulators.cells.roots import find_root

VACUUM_PERMITTIVITY = 8.8541878128e-12  # F/m, CODATA 2018
MODES = 48
"""Diffusion modes kept explicitly; the rest (under 1 % of R_w, all faster than tau/9000) form one lumped mode."""
DC_TOLERANCE = 0.01
"""Relative error of the electronic conductivity a DC polarisation hold should reach (1 %)."""

BLOCKING_PARAMETERS: dict[str, Param] = {
    "electronic_conductivity": Param(
        2e-3,
        "S/m",
        "2e-5 S/cm at 27 degC: CNT network wrapped in LLTO, electronically percolating but throttled (assumption; "
        "the P7 measurement is what determines it)",
        1e-12,
    ),
    "ionic_conductivity": Param(
        1e-2,
        "S/m",
        "1e-4 S/cm at 27 degC: LLTO total (bulk + grain boundary) ionic conductivity in a porous film, reported "
        "1e-5..1e-3 S/cm",
        1e-12,
    ),
    "chemical_diffusivity": Param(
        3e-13,
        "m^2/s",
        "3e-9 cm^2/s at 27 degC: chemical diffusion of Li in the LLTO@CNT film (Li in titanates and LLTO: "
        "1e-8..1e-11 cm^2/s reported). Chosen with the 45 um film so that tau = L^2/(pi^2 D~) = 11 min and P7's "
        "1 h DC hold (5 tau) is needed, as the protocol assumes",
        1e-20,
    ),
    "electronic_activation_energy": Param(
        5e3,
        "J/mol",
        "0.05 eV: electron transport through a CNT network is weakly activated (fluctuation-induced tunnelling "
        "between tubes, 10-50 meV reported)",
        0.0,
    ),
    "ionic_activation_energy": Param(
        34e3,
        "J/mol",
        "0.35 eV: LLTO Li+ conduction, 0.3 eV in the bulk and 0.4 eV across grain boundaries (reported)",
        0.0,
    ),
    "diffusivity_activation_energy": Param(
        40e3,
        "J/mol",
        "0.41 eV: chemical diffusion of Li in titanate hosts, 0.3-0.5 eV reported (assumption within that range)",
        0.0,
    ),
    "relative_permittivity": Param(100.0, "1", "LLTO's high bulk permittivity (order 100)", 1.0),
    "contact_resistance": Param(0.0, "ohm", "series lead/contact resistance (0: ideal sputtered contacts)", 0.0),
}


@dataclass(frozen=True, slots=True)
class DcRelaxation:
    """How the current of a DC potentiostatic step on a blocking cell relaxes: tau and the shape factor b."""

    tau: float
    """L^2/(pi^2 D~), s: the longest diffusion time constant (the galvanostatic one)."""
    shape: float
    """b = (R_c + Re||Ri)/R_w, the instantaneous over the diffusion resistance (sigma_e/sigma_i without contact)."""

    def error(self, t: float | np.ndarray) -> np.ndarray:
        """Relative error of the electronic conductivity read from the current after holding ``t`` s."""
        return dc_polarisation_error(t, self.tau, self.shape)

    def hold_needed(self, tolerance: float = DC_TOLERANCE) -> float:
        """The shortest hold (s) after which the electronic conductivity is within ``tolerance``."""
        return dc_hold_needed(self.tau, self.shape, tolerance)


class BlockingCell(SimulatedCell):
    """Host film between Li-ion blocking electrodes (stainless steel or Au)."""

    type_name = "blocking"
    PARAMETERS: ClassVar[Mapping[str, Param]] = BLOCKING_PARAMETERS

    def _setup(self) -> None:
        p = self.p
        t = p.temperature
        sigma_e = p.electronic_conductivity * arrhenius_factor(p.electronic_activation_energy, t)
        sigma_i = p.ionic_conductivity * arrhenius_factor(p.ionic_activation_energy, t)
        self.diffusivity = p.chemical_diffusivity * arrhenius_factor(p.diffusivity_activation_energy, t)
        self.re = self.thickness / (sigma_e * self.area)
        self.ri = self.thickness / (sigma_i * self.area)
        self.r_par = self.re * self.ri / (self.re + self.ri)
        self.r_w = self.re**2 / (self.re + self.ri)
        self.c_geo = VACUUM_PERMITTIVITY * p.relative_permittivity * self.area / self.thickness
        self.tau = self.thickness**2 / (math.pi**2 * self.diffusivity)
        self._r_modes, self._tau_modes = diffusion_modes(self.r_w, self.tau)
        self._r_inst = p.contact_resistance + self.r_par
        self._affine_cache: tuple[np.ndarray, float, float, float] | None = None  # see _BlockingPath.voltage_at

    def _reset_state(self) -> None:
        self.v_modes = np.zeros(len(self._r_modes))  # no stoichiometry gradient as assembled

    def dc_relaxation(self) -> DcRelaxation:
        """tau and b of a DC polarisation of this film (what ``station plan`` warns with)."""
        return DcRelaxation(self.tau, self._r_inst / self.r_w)

    def _constant_current(self, current: float) -> ConstantCurrentPath:
        return _BlockingPath(self, float(current))

    def _grid_spacing(self, current: float) -> float:
        return min(60.0, self.tau / 20.0)

    def _current_scale(self) -> float:
        return 0.05 / self._r_inst  # the current of a 50 mV step

    def open_circuit_voltage(self) -> float:
        return 0.0  # symmetric electrodes: no equilibrium voltage

    def impedance(self, frequencies: np.ndarray) -> np.ndarray:
        w = zel.angular(frequencies)
        film = zel.mixed_conductor_blocking(w, self.re, self.ri, self.tau)
        return self.p.contact_resistance + 1.0 / (1.0 / film + 1j * w * self.c_geo)

    def _state_vars(self) -> dict[str, Any]:
        return {"v_modes": [float(v) for v in self.v_modes]}

    def _load_state_vars(self, state: Mapping[str, Any]) -> None:
        if "v_modes" in state:
            self.v_modes = np.array(state["v_modes"], dtype=float)
        else:  # a state saved by the double-layer model: its polarisation v_c, spread as a steady gradient
            self.v_modes = float(state["v_c"]) * self._r_modes / self.r_w


def diffusion_modes(r_w: float, tau: float, modes: int = MODES) -> tuple[np.ndarray, np.ndarray]:
    """(R_m, tau_m) of the RC modes of R_w tanh(x)/x: ``modes`` odd harmonics and one lumped tail.

    The tail mode takes the rest of R_w (so that the DC resistance is exact) and the time constant that keeps the
    first moment sum R_m tau_m = R_w tau pi^2/12 exact (so the low-frequency capacitance is right too); at t = 0
    it carries no voltage, like the modes it stands for.
    """
    k = 2.0 * np.arange(modes) + 1.0
    weights = 8.0 / (math.pi**2 * k**2)
    tail = 1.0 - float(weights.sum())
    tail_moment = math.pi**2 / 12.0 - float(np.sum(weights / k**2))
    r = np.append(weights, tail) * r_w
    taus = np.append(tau / k**2, tau * tail_moment / tail)
    return r, taus


def potentiostatic_roots(shape: float, count: int) -> np.ndarray:
    """The first ``count`` positive roots y_m of tan y = -b y, one in each ((m - 1/2) pi, m pi).

    Bracketed by sign changes of sin y + b y cos y (the same equation without the poles) and bisected: robust for
    any b > 0, vectorised over m.
    """
    m = np.arange(1, count + 1, dtype=float)
    lo, hi = (m - 0.5) * math.pi, m * math.pi

    def g(y: np.ndarray) -> np.ndarray:
        return np.sin(y) + shape * y * np.cos(y)

    g_lo = g(lo)
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        g_mid = g(mid)
        same = np.sign(g_mid) == np.sign(g_lo)
        lo = np.where(same, mid, lo)
        g_lo = np.where(same, g_mid, g_lo)
        hi = np.where(same, hi, mid)
    return 0.5 * (lo + hi)


def dc_polarisation_error(t: float | np.ndarray, tau: float, shape: float, terms: int = 400) -> np.ndarray:
    """eps(t) = I(t)/I(inf) - 1 of a DC potentiostatic step on the film (module docstring), for t >= 0.

    ``tau`` = L^2/(pi^2 D~), ``shape`` = b. At t = 0 the series sums to 1/b (the current jumps to V/(R_c + R_par));
    at t > 0 it converges exponentially, so ``terms`` roots are plenty.
    """
    y = potentiostatic_roots(shape, terms)
    amplitude = 2.0 * (1.0 + shape) / (1.0 + shape + shape**2 * y**2)
    tt = np.atleast_1d(np.asarray(t, dtype=float))
    rates = 4.0 * y**2 / (math.pi**2 * tau)
    return np.exp(-np.outer(tt, rates)) @ amplitude


def dc_hold_needed(tau: float, shape: float, tolerance: float = DC_TOLERANCE) -> float:
    """The hold time (s) after which eps(t) <= ``tolerance`` (eps falls monotonically from 1/b)."""
    if 1.0 / shape <= tolerance:
        return 0.0

    def excess(t: float) -> float:
        return math.log(float(dc_polarisation_error(t, tau, shape)[0]) / tolerance)

    hi = tau
    while excess(hi) > 0.0:
        hi *= 2.0
    return find_root(excess, 0.0, hi, xtol=1e-9 * tau)


class _BlockingPath(ConstantCurrentPath):
    """Under constant I each mode relaxes as v_m -> R_m I with its time constant tau_m; V = R_inst I + sum v_m.

    V is affine in I at a given t: V = I (R_inst + sum R_m (1 - e_m)) + sum v0_m e_m with e_m = exp(-t/tau_m).
    The hold solver tries several currents over the same interval, so the two sums are cached per (start
    state, t) on the cell and a trial costs two float operations. The start state is the cell's mode array,
    which is replaced, never changed in place, so holding a reference freezes it.
    """

    __slots__ = ("_cell", "_v0", "current")

    def __init__(self, cell: BlockingCell, current: float) -> None:
        self._cell = cell
        self.current = current
        self._v0 = cell.v_modes

    def feature_times(self, fine: bool) -> np.ndarray:
        return self._cell.tau * np.geomspace(1e-5, 20.0, 60)

    def _modes(self, t: np.ndarray) -> np.ndarray:
        c = self._cell
        target = c._r_modes * self.current
        decay = np.exp(-np.divide.outer(t, c._tau_modes))
        return target + (self._v0 - target) * decay

    def voltage(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        return self._cell._r_inst * self.current + self._modes(t).sum(axis=-1)

    def voltage_at(self, t: float) -> float:
        c = self._cell
        cached = c._affine_cache
        if cached is None or cached[0] is not self._v0 or cached[1] != t:
            decay = np.exp(-t / c._tau_modes)
            slope = c._r_inst + float(c._r_modes.sum() - np.dot(c._r_modes, decay))
            cached = c._affine_cache = (self._v0, t, slope, float(np.dot(self._v0, decay)))
        return self.current * cached[2] + cached[3]

    def commit(self, t: float) -> None:
        self._cell.v_modes = self._modes(np.asarray(float(t)))
