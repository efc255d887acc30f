"""NCM622 | Li-metal full cells: the Li-pre-deposited cell ("ncm622-li") and the anode-free one ("ncm622-anode-free").

Physics, in the order a current meets it:

* ohmic drop I*R0 (electrolyte, separator, contacts);
* Li-metal anode kinetics: symmetric Butler-Volmer overpotential 2(RT/F) asinh(j/2j0);
* cathode charge transfer: an RC whose resistance follows the Butler-Volmer concentration law, exchange current
  proportional to sqrt(y(1-y)) with y the Li content of the particle *surface* (Li_y Ni0.6Mn0.2Co0.2O2). The
  nominal window does not span y = 0..1: at 4.3 V NCM622 still holds ~36 % Li, so the resistance is nearly flat
  at the top of charge and rises only towards the lithiated (discharged) end, where it is bounded because the
  last few % of sites are never reached;
* cathode solid-state diffusion: the OCV and the exchange current are evaluated at the particle surface, offset
  from the mean by delta, the polynomial approximation of spherical diffusion (Subramanian et al., J.
  Electrochem. Soc. 152 (2005) A2002): steady offset (rate) tau_d/15 reached with time constant tau_d/30;
* cathode ageing: the first delithiation is partly irreversible (first-cycle CE ~87 %), every charge loses a
  little active material (gradual fade) and a little charge to electrolyte oxidation (CE just below 1);
* Li inventory on the anode: of the Li plated on charge (1 - CE) becomes dead Li / SEI. With an excess of
  pre-deposited Li the loss is paid from the reservoir; once the metallic Li is gone the anode gives back the
  Li held in its host at a rising potential, so that the discharge ends in a steep but finite decline.
* temperature: every resistance, exchange current and diffusion time follows an Arrhenius law.

Coordinates. ``s`` is the charge taken out of the cathode since assembly in units of the nominal capacity Q
(the cell record's capacity: the reversible 0.1C discharge capacity between 3.0 and 4.3 V). ``loss`` is the
part of it that can never go back (first-cycle loss), ``fade`` the fraction of the cathode's active material
lost. The window state x = (s - loss) / (1 - fade) is 0 at the discharged end (3.0 V) and 1 at the top (4.3 V)
of the *present* reversible window; the OCV is a function of x. The surface state is
x_s = (s - loss + delta) / (1 - fade), delta in nominal capacities too, so the same current is a higher rate on a
faded cathode. ``li`` is the active Li on the anode (Ah): metallic Li above zero, Li given back by the host
below it.

What is left out, with reasons: the OCV's entropic (temperature) term (a few mV between 27 and 60 degC, below
the kinetic changes); the anode's double layer in the time domain (a ~0.1 ms RC, below any instrument's
sampling; it is in the impedance); electrolyte concentration polarisation (folded into R0 and the cathode arc at
the rates of the reference protocols).

Under constant current every state has a closed form (piecewise linear charge, exponential RC and diffusion
offsets), so a step is one vectorised evaluation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from simulators.cells import impedance as zel
from simulators.cells.engine import ConstantCurrentPath, SimulatedCell
from simulators.cells.errors import ParameterError
from simulators.cells.parameters import Param
from simulators.cells.physics import (
    SECONDS_PER_HOUR,
    TabulatedCurve,
    arrhenius_factor,
    thermal_voltage,
)

# NCM622 vs Li OCV (V) against the window state x. Shape from typical published NCM622 GITT/C/25 curves
# (about 3.6 V at 10 %, 3.8 V at 50 %, 4.25 V at full charge to 4.3 V), with the steep lithiated end that
# sets the discharge cut-off. Calibrated so that a 0.1C cycle between 3.0 and 4.3 V spans x = 0..1, i.e. the
# cell's nominal capacity.
NCM622_SOC = [-0.03, -0.02, -0.01, 0.0, 0.01, 0.02, 0.04, 0.07, 0.10, 0.15, 0.20, 0.30, 0.40, 0.50, 0.60,
              0.70, 0.80, 0.90, 0.95, 1.00, 1.01, 1.02, 1.04]  # fmt: skip
NCM622_OCV = [2.40, 2.65, 2.85, 3.02, 3.28, 3.41, 3.51, 3.56, 3.59, 3.63, 3.66, 3.71, 3.75, 3.80, 3.86,
              3.93, 4.01, 4.10, 4.15, 4.225, 4.265, 4.30, 4.40]  # fmt: skip
_OCV_RESOLUTION = 2001  # TabulatedCurve's own grid: inverting on it is exact

# Anode potential vs Li (V) against the fraction of the anode's Li reserve given back once its metallic Li is
# gone: the delithiation curve of the LLTO@CNT host (the "li-host" model's host OCV with its default parameters,
# read from 0 V upwards: the CNT feature near 0.5 V, the LLTO Ti4+/Ti3+ feature near 1.25 V, then the pristine
# ~2.8 V). A full cell's discharge ends on the first part of it (the cut-off is reached near 0.7 V).
RESERVE_FRACTION = [0.0, 0.02, 0.05, 0.10, 0.15, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 1.0]
RESERVE_POTENTIAL = [0.0, 0.17, 0.33, 0.45, 0.51, 0.57, 0.71, 1.06, 1.18, 1.24, 1.31, 1.41, 1.87, 2.33, 2.8]
#: V per unit reserve fraction beyond an empty reserve: only the Cu/SEI double layer and side reactions answer,
#: 1 V per 5 % of the reserve (~45 s at C/2 on the default cell): steep, still a finite slope
_RESERVE_EXHAUSTED_SLOPE = 20.0

_RC_MULTIPLES = np.array([0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0])

FULL_CELL_PARAMETERS: dict[str, Param] = {
    "areal_capacity": Param(
        18.0,
        "Ah/m^2",
        "1.8 mAh/cm^2 when the cell record gives no capacity: ~11 mg/cm^2 NCM622 (90 % active) at "
        "~180 mAh/g (assumption; the source leaves the cathode loading open)",
        1e-3,
    ),
    "ohmic_resistance": Param(
        8e-4,
        "ohm m^2",
        "8 ohm cm^2 at 27 degC: electrolyte-soaked separator plus contacts of a coin cell (7 ohm on 1.131 cm^2)",
        0.0,
    ),
    "ohmic_activation_energy": Param(
        20e3,
        "J/mol",
        "conductivity of LiPF6 in carbonate electrolytes, 15-25 kJ/mol between 0 and 60 degC (Arrhenius fits of "
        "LP30/LP57 conductivity data); the separator's tortuosity is temperature independent",
        0.0,
    ),
    "cathode_ct_resistance": Param(
        1.2e-3,
        "ohm m^2",
        "12 ohm cm^2 cathode charge-transfer + CEI resistance at half lithiation, 27 degC (NCM coin cells show "
        "10-30 ohm cm^2). With R0 and the anode it gives ~110-130 mV instantaneous polarisation at 2C, close to "
        "the ~80 mV of PyBaMM's DFN for comparable cells and within what coin cells show",
        0.0,
    ),
    "cathode_ct_activation_energy": Param(
        55e3,
        "J/mol",
        "interfacial Li+ transfer between a layered oxide and EC-based electrolytes: 50-60 kJ/mol from the "
        "temperature dependence of the charge-transfer arc (Ogumi, Abe and co-workers' EIS studies); the middle",
        0.0,
    ),
    "cathode_capacitance": Param(
        10.0,
        "F/m^2",
        "1 mF/cm^2 double layer of the porous cathode (about 10 uF/cm^2 of particle surface times "
        "~100 cm^2 of surface per cm^2 of electrode)",
        1e-9,
    ),
    "cpe_alpha": Param(
        0.85, "1", "CPE exponent of the interface arcs (depressed semicircles of porous electrodes)", 0.3, 1.0
    ),
    "diffusion_time": Param(
        6480.0,
        "s",
        "R_p^2/D at 27 degC for 5 um NCM622 particles with D = 3.9e-15 m^2/s (literature 1e-15..1e-14); gives a "
        "~6 % surface offset at 0.5C",
        1.0,
    ),
    "diffusion_activation_energy": Param(
        35e3,
        "J/mol",
        "solid-state Li diffusion in layered NCM, 30-50 kJ/mol from GITT/PITT between 0 and 60 degC; the lower "
        "part of the range, as the effective value includes fast grain-boundary paths (assumption within it)",
        0.0,
    ),
    "cathode_li_charged": Param(
        0.36,
        "1",
        "Li content y of Li_yNi0.6Mn0.2Co0.2O2 at the top of the window (4.3 V): NCM622 still holds 35-40 % Li "
        "there, (1 - 0.36) x 277 mAh/g (theoretical) = 177 mAh/g being about what it cycles between 3.0 and "
        "4.3 V; sets where along the window the kinetics slow down",
        0.01,
        0.99,
    ),
    "cathode_li_discharged": Param(
        0.96,
        "1",
        "Li content at the discharged end of the window (3.0 V at 0.1C): (0.96 - 0.36) x 277 mAh/g = 166 mAh/g, "
        "about the reversible capacity; the few % short of 1 are the kinetically blocked last sites",
        0.01,
        0.999,
    ),
    "cathode_li_bound": Param(
        0.05,
        "1",
        "the surface Li content in the exchange-current law sqrt(y(1-y)) is kept this far from 0 and 1: the "
        "dilute-site law overstates the slowdown at the ends (measured NCM R_ct rises 2-3x towards the "
        "discharged end, not without bound); 0.05 caps the rise at 2.3x the half-lithiated value",
        1e-4,
        0.45,
    ),
    "first_cycle_loss": Param(
        0.125,
        "1",
        "fraction of the cathode's first delithiation that never goes back: NCM622 shows 85-90 % first-cycle CE at "
        "0.1C, 3.0-4.3 V (~200 mAh/g charge, ~175 mAh/g discharge). Mostly kinetic: Li cannot be reinserted into "
        "the nearly full lattice at the end of discharge (Kasnatscheew et al., Phys. Chem. Chem. Phys. 18 (2016) "
        "3956), plus surface reconstruction and CEI. Charged once beyond its deepest point, the cathode loses this "
        "fraction of the extra charge",
        0.0,
        0.9,
    ),
    "cathode_ce": Param(
        0.998,
        "1",
        "share of the charge current that delithiates the cathode; the rest oxidises the electrolyte and is "
        "shuttled back (charge end-point slippage: Smith, Burns, Xiong and Dahn, 'Interpreting high precision "
        "coulometry results on Li-ion cells', J. Electrochem. Soc. 2011). "
        "NCM622 | Li coin cells in carbonate electrolyte cycle at 99.5-99.9 % CE; 0.2 % per charge",
        0.5,
        1.0,
    ),
    "cathode_fade": Param(
        3e-4,
        "1",
        "fraction of the cathode's active material lost per nominal capacity of charge passed (particle cracking, "
        "rock-salt surface layer): 0.03 % per full cycle. Cathode-limited NCM622 cells (Li excess or graphite "
        "counter electrodes, 3.0-4.3 V) keep 85-90 % after 500 cycles, i.e. 0.02-0.05 % per cycle",
        0.0,
        0.1,
    ),
    "anode_exchange_current": Param(
        20.0,
        "A/m^2",
        "2 mA/cm^2 Li plating/stripping exchange current density at 27 degC (reported 0.5-5 mA/cm^2; the high-area "
        "LLTO@CNT host sits in the upper half)",
        1e-6,
    ),
    "anode_activation_energy": Param(
        60e3,
        "J/mol",
        "Li+ transfer across the SEI on Li metal in carbonate electrolytes, 55-70 kJ/mol from the temperature "
        "dependence of the interface arc (assumption within the reported range)",
        0.0,
    ),
    "anode_capacitance": Param(0.1, "F/m^2", "10 uF/cm^2 double layer of the Li | SEI interface", 1e-9),
    "anode_ce": Param(
        0.99,
        "1",
        "Coulombic efficiency of Li plating/stripping on the anode (99 %, carbonate electrolyte on a "
        "lithiophilic host; assumption)",
        0.0,
        1.0,
    ),
    "li_excess": Param(
        40.0,
        "Ah/m^2",
        "4 mAh/cm^2 of Li pre-deposited into the host (P1's largest capacity, the host's room)",
        0.0,
    ),
    "anode_reserve_capacity": Param(
        2.5,
        "Ah/m^2",
        "0.25 mAh/cm^2 of Li the anode gives back after its metallic Li is gone, at a rising potential: the "
        "LLTO@CNT host's lithiation (the 'li-host' model's host_capacity default). It turns Li exhaustion into a "
        "decline over a few % of the capacity instead of a cliff",
        1e-6,
    ),
    "initial_soc": Param(0.0, "1", "cathode window state x as assembled (0: fully lithiated)", -0.02, 1.0),
}


class _CathodeTable:
    """The cathode OCV U(x) and charge-transfer factor f(x) on one uniform grid, for fast exact evaluation.

    Vector and scalar evaluation interpolate the same table, so the engine's dense samples and its root finder
    see the same trajectory to rounding. Beyond the tabulated range U continues with the curve's end slopes and
    f stays at its end value; far points (x = +-100) carry that linear extension through a single ``np.interp``.
    """

    __slots__ = (
        "_combined",
        "_dx",
        "_f",
        "_flist",
        "_slope_hi",
        "_slope_lo",
        "_u",
        "_ulist",
        "_x_ext",
        "_x_hi",
        "_x_lo",
    )

    def __init__(
        self, ocv: TabulatedCurve, factor: Callable[[np.ndarray], np.ndarray], resolution: int = _OCV_RESOLUTION
    ) -> None:
        x = np.linspace(NCM622_SOC[0], NCM622_SOC[-1], resolution)
        self._u = ocv(x)
        self._f = factor(x)
        self._x_lo, self._x_hi = float(x[0]), float(x[-1])
        self._dx = (self._x_hi - self._x_lo) / (resolution - 1)
        self._slope_lo, self._slope_hi = ocv.slope(self._x_lo - 1.0), ocv.slope(self._x_hi + 1.0)
        self._ulist, self._flist = self._u.tolist(), self._f.tolist()
        far = 100.0
        self._x_ext = np.concatenate([[-far], x, [far]])
        self._u = np.concatenate(
            [
                [self._u[0] + (-far - self._x_lo) * self._slope_lo],
                self._u,
                [self._u[-1] + (far - self._x_hi) * self._slope_hi],
            ]
        )
        self._f = np.concatenate([[self._f[0]], self._f, [self._f[-1]]])
        self._combined: dict[float, np.ndarray] = {}

    @property
    def grid(self) -> np.ndarray:
        return self._x_ext[1:-1]

    def ocv(self, x: np.ndarray) -> np.ndarray:
        return np.interp(x, self._x_ext, self._u)

    @property
    def abscissa(self) -> np.ndarray:
        return self._x_ext

    def combined(self, ir1: float) -> np.ndarray:
        """U + ir1 f on the abscissa: the quasi-static cathode voltage under current as one interpolation table.

        Kept for the few currents a protocol repeats (a cycling program uses two or three)."""
        table = self._combined.get(ir1)
        if table is None:
            if len(self._combined) >= 8:
                self._combined.clear()
            table = self._combined[ir1] = self._u + ir1 * self._f
        return table

    def scalar(self, x: float) -> tuple[float, float]:
        """(U, f) at one point in plain float arithmetic."""
        if x <= self._x_lo:
            return self._ulist[0] + (x - self._x_lo) * self._slope_lo, self._flist[0]
        if x >= self._x_hi:
            return self._ulist[-1] + (x - self._x_hi) * self._slope_hi, self._flist[-1]
        pos = (x - self._x_lo) / self._dx
        k = min(int(pos), len(self._ulist) - 2)
        frac = pos - k
        u0, f0 = self._ulist[k], self._flist[k]
        return u0 + frac * (self._ulist[k + 1] - u0), f0 + frac * (self._flist[k + 1] - f0)


@functools.lru_cache(maxsize=1)
def _curves() -> tuple[TabulatedCurve, TabulatedCurve]:
    """The NCM622 OCV and the anode reserve's potential: parameter-free, built once per process (a simulated
    instrument restores a cell's state, and so re-derives its constants, at every step)."""
    ocv = TabulatedCurve(NCM622_SOC, NCM622_OCV, slope_lo=30.0, slope_hi=6.0, resolution=_OCV_RESOLUTION)
    reserve = TabulatedCurve(RESERVE_FRACTION, RESERVE_POTENTIAL, slope_lo=0.0, slope_hi=_RESERVE_EXHAUSTED_SLOPE)
    return ocv, reserve


@functools.lru_cache(maxsize=16)
def _cathode_table(li_discharged: float, li_charged: float, bound: float) -> _CathodeTable:
    """The cathode's table for one set of stoichiometry parameters (shared by every cell that has them)."""
    span = li_discharged - li_charged

    def factor(x: np.ndarray) -> np.ndarray:
        """R_ct(y)/R_ct(0.5) = 0.5/sqrt(y(1-y)): i0 ~ sqrt(c(cmax-c)), y bounded away from 0 and 1."""
        y = np.clip(li_discharged - span * x, bound, 1.0 - bound)
        return 0.5 / np.sqrt(y * (1.0 - y))

    return _CathodeTable(_curves()[0], factor)


class NcmLiCell(SimulatedCell):
    """NCM622 | Li-metal full cell with a pre-deposited Li reservoir on the anode."""

    type_name = "ncm622-li"
    PARAMETERS: ClassVar[Mapping[str, Param]] = FULL_CELL_PARAMETERS

    def _setup(self) -> None:
        p = self.p
        a = self.area
        t = p.temperature
        self.capacity = self._capacity_given if self._capacity_given is not None else p.areal_capacity * a
        self._ocv, self._reserve = _curves()
        self._vt = thermal_voltage(t)
        self._r0 = p.ohmic_resistance / a / arrhenius_factor(p.ohmic_activation_energy, t)
        self._r1 = p.cathode_ct_resistance / a / arrhenius_factor(p.cathode_ct_activation_energy, t)
        self._c1 = p.cathode_capacitance * a
        self._tau1 = self._r1 * self._c1
        self._i0_anode = p.anode_exchange_current * a * arrhenius_factor(p.anode_activation_energy, t)
        self._c_anode = p.anode_capacitance * a
        self._tau_d = p.diffusion_time / arrhenius_factor(p.diffusion_activation_energy, t)
        self._tau_delta = self._tau_d / 30.0
        self._coulombs = self.capacity * SECONDS_PER_HOUR
        self._reserve_ah = p.anode_reserve_capacity * a
        # U(x) and the charge-transfer factor at the surface Li content y = y_dis - (y_dis - y_charged) x
        self._table = _cathode_table(p.cathode_li_discharged, p.cathode_li_charged, p.cathode_li_bound)

    def _reset_state(self) -> None:
        self.s = float(self.p.initial_soc)
        self.loss = 0.0
        self.s_max = self.s
        self.fade = 0.0
        self.delta = 0.0
        self.v1 = 0.0
        self.li = float(self.p.li_excess) * self.area
        self.dead_li = 0.0
        self.li_exhausted = False

    def _start_at_ocv(self, voltage: float) -> None:
        """Place the as-assembled cathode where the OCV curve equals ``voltage`` (the anode is at 0 V vs Li).

        The curve is inverted on its own interpolation grid, so the placed cell reads back exactly ``voltage``.
        As assembled nothing is lost yet: the first-cycle loss applies to delithiation beyond this point."""
        lo, hi = self.ocv_range()
        if not lo <= voltage <= hi:
            raise ParameterError(
                f"cell model {self.type_name!r} cannot start at the cell record's ocv {voltage:g} V: its NCM622 "
                f"cathode's OCV spans {lo:.3f}-{hi:.3f} V; correct 'ocv' in the cell record"
            )
        grid = self._table.grid
        x = float(np.interp(voltage, self._table.ocv(grid), grid))
        self.s = self.s_max = x
        self.loss = self.fade = self.delta = self.v1 = 0.0

    def ocv_range(self) -> tuple[float, float]:
        """The equilibrium voltages (V) the model can start at: the tabulated NCM622 OCV curve's ends."""
        return NCM622_OCV[0], NCM622_OCV[-1]

    # ---- physics ----------------------------------------------------------------------------------------

    @property
    def window_state(self) -> float:
        """x: 0 at the discharged end, 1 at the top of the present reversible window."""
        return (self.s - self.loss) / (1.0 - self.fade)

    @property
    def surface_state(self) -> float:
        """x at the cathode particles' surface: the window state shifted by the diffusion offset."""
        return (self.s - self.loss + self.delta) / (1.0 - self.fade)

    @property
    def reversible_capacity(self) -> float:
        """The cathode's present reversible capacity between 3.0 and 4.3 V at 0.1C, Ah."""
        return self.capacity * (1.0 - self.fade)

    def _anode_potential(self, li: np.ndarray) -> np.ndarray:
        """Anode vs Li (V): 0 on metallic Li, then along the host's delithiation as the reserve is given back."""
        return self._reserve(np.maximum(-li, 0.0) / self._reserve_ah)

    def _anode_potential_scalar(self, li: float) -> float:
        return 0.0 if li >= 0.0 else self._reserve.scalar(-li / self._reserve_ah)

    def _constant_current(self, current: float) -> ConstantCurrentPath:
        return _FullCellPath(self, float(current))

    def _grid_spacing(self, current: float) -> float:
        if current == 0.0:
            return 60.0
        return min(120.0, 0.01 * self._coulombs / abs(current))

    def _current_scale(self) -> float:
        return self.capacity / 10.0  # C/10 in A

    def _double_layer_capacitance(self) -> float:
        return self._c1 * self._c_anode / (self._c1 + self._c_anode)

    def open_circuit_voltage(self) -> float:
        return self._table.scalar(self.window_state)[0] - self._anode_potential_scalar(self.li)

    def impedance(self, frequencies: np.ndarray) -> np.ndarray:
        """Small-signal spectrum at the present state (see :meth:`_eis_circuit`)."""
        return self._eis_circuit().small_signal(zel.angular(frequencies))

    def measured_impedance(self, frequencies: np.ndarray, amplitude: float, mode: str = "potentio") -> np.ndarray:
        """What an analyser reads at ``amplitude``: the Li anode's Butler-Volmer interface is nonlinear (its arc
        shrinks at large amplitudes); the cathode's charge transfer is linear in this model, in DC as in EIS."""
        return zel.first_harmonic_impedance(self._eis_circuit(), zel.angular(frequencies), amplitude, mode)

    def _eis_circuit(self) -> zel.EisCircuit:
        """Ohmic R0; the Li anode's Butler-Volmer interface (R_ct = RT/(F I0) with its double layer); the
        cathode's charge-transfer arc at the surface stoichiometry; spherical solid-state diffusion into the
        cathode's differential capacitance dQ/dU (its low-frequency resistance tau_d/(15 C) is the DC model's
        diffusion offset); and, once the anode's metallic Li is gone, the host's intercalation capacitance."""
        p = self.p
        x = self.window_state
        anode = zel.Interface(self._i0_anode, self._vt, self._c_anode, p.cpe_alpha)
        r0, c1, alpha, tau_d = self._r0, self._c1, p.cpe_alpha, self._tau_d
        r1 = self._r1 * self._table.scalar(self.surface_state)[1]
        c_int = self._coulombs * (1.0 - self.fade) / max(self._ocv.slope(x), 1e-3)  # dQ/dU, F
        c_host = math.inf
        if self.li < 0.0:
            c_host = self._reserve_ah * SECONDS_PER_HOUR / max(self._reserve.slope(-self.li / self._reserve_ah), 1e-3)

        def linear(w: np.ndarray) -> np.ndarray:
            return r0 + zel.zarc(w, r1, c1, alpha) + zel.spherical_diffusion(w, c_int, tau_d) + zel.capacitor(w, c_host)

        return zel.EisCircuit((anode,), linear)

    # ---- state ------------------------------------------------------------------------------------------

    def _state_vars(self) -> dict[str, Any]:
        return {
            "s": self.s,
            "loss": self.loss,
            "s_max": self.s_max,
            "fade": self.fade,
            "delta": self.delta,
            "v1": self.v1,
            "li": self.li,
            "dead_li": self.dead_li,
            "li_exhausted": self.li_exhausted,
        }

    def _load_state_vars(self, state: Mapping[str, Any]) -> None:
        self.s = float(state["s"])
        self.loss = float(state["loss"])
        self.s_max = float(state["s_max"])
        self.fade = float(state["fade"])
        self.delta = float(state["delta"])
        self.v1 = float(state["v1"])
        self.li = float(state["li"])
        self.dead_li = float(state["dead_li"])
        self.li_exhausted = bool(state["li_exhausted"])

    @property
    def li_inventory(self) -> float:
        """Active Li on the anode, Ah (the reservoir plus what the last charge plated; negative: host Li given)."""
        return self.li


class AnodeFreeCell(NcmLiCell):
    """NCM622 | host-on-Cu full cell with no Li excess: all cyclable Li comes from the cathode.

    The Li the cathode cannot take back after its first charge (the first-cycle loss) stays on the anode as a
    small reservoir, so capacity holds for a few cycles and then fades as the anode CE^n once it is used up (the
    behaviour reported for anode-free NMC cells by Dahn's group, e.g. Genovese et al., J. Electrochem. Soc. 2018).
    As assembled the host counts as lithiated (the cell record gives the cathode's 3.0 V); its first
    lithiation is not simulated."""

    type_name = "ncm622-anode-free"
    PARAMETERS: ClassVar[Mapping[str, Param]] = {
        **FULL_CELL_PARAMETERS,
        "li_excess": Param(0.0, "Ah/m^2", "anode-free: no Li on the anode as assembled", 0.0),
    }


class _FullCellPath(ConstantCurrentPath):
    """The closed-form trajectory under constant current, from a frozen start state.

    The surface state is x_s(t) = (s(t) - loss(t) + delta(t)) / (1 - fade(t)): s linear in t, loss accruing at
    first_cycle_loss x ds once s passes its high-water mark, fade linear in t (charge only), and the diffusion
    offset delta(t) = d_inf + (delta0 - d_inf) exp(-t/tau_delta) with d_inf = (ds/dt) tau_d/15, all in nominal
    capacities. Every piece composes exactly (running t1 then t2 equals running t1 + t2), which the engine's hold
    solver and a simulated instrument's piecewise runs rely on. Dividing by the remaining material last makes the
    same current a higher rate on a faded cathode.
    """

    __slots__ = (
        "_a1",
        "_cell",
        "_charging",
        "_d_inf",
        "_den0",
        "_e_delta",
        "_f_irr",
        "_fade0",
        "_fade_rate",
        "_flux",
        "_ir1",
        "_k1",
        "_k_delta",
        "_li0",
        "_loss0",
        "_num0",
        "_s0",
        "_s_rate",
        "_static",
        "_t_fill",
        "_t_hw",
        "_t_rc",
        "_table_y",
        "_to_hw",
        "_x0",
        "_x_rate",
        "current",
    )

    def __init__(self, cell: NcmLiCell, current: float) -> None:
        c = cell
        p = c.p
        self._cell = cell
        self.current = current
        self._charging = charging = current > 0.0
        self._s0, self._loss0, self._fade0, self._li0 = c.s, c.loss, c.fade, c.li
        nominal = current / c._coulombs  # nominal capacities per s, signed
        self._s_rate = nominal * p.cathode_ce if charging else nominal  # cathode delithiation
        self._fade_rate = p.cathode_fade * nominal if charging else 0.0
        self._f_irr = p.first_cycle_loss if charging else 0.0
        self._num0 = c.s - c.loss  # s - loss at t = 0
        self._den0 = 1.0 - c.fade
        self._to_hw = c.s_max - c.s  # charge (in Q) before the first-cycle loss accrues again
        self._t_hw = self._to_hw / self._s_rate if charging else math.inf
        self._x0 = self._num0 / self._den0
        self._x_rate = self._s_rate / self._den0
        # the surface offset is driven by the Li flux through the particle surface
        self._d_inf = self._s_rate * c._tau_d / 15.0
        self._e_delta = c.delta - self._d_inf
        self._k_delta = -1.0 / c._tau_delta
        self._k1 = -1.0 / c._tau1 if c._tau1 > 0.0 else -math.inf
        self._t_rc = 40.0 * c._tau1  # beyond it the RC transient is below 1e-17 of its start
        # Li arriving at the anode, Ah/s: the cathode's flux (the oxidation share is shuttled, it plates nothing)
        self._flux = current / SECONDS_PER_HOUR * (p.cathode_ce if charging else 1.0)
        self._t_fill = max(-c.li, 0.0) / self._flux if charging else math.inf  # host reserve refilled
        # butler_volmer_overpotential in scalar form (a path is built for every solver step of a hold)
        self._static = 2.0 * c._vt * math.asinh(current / (2.0 * c._i0_anode)) + current * c._r0
        self._ir1 = current * c._r1
        self._a1 = c.v1 - self._ir1 * c._table.scalar(c.surface_state)[1]
        self._table_y: np.ndarray | None = None

    # ---- states along the path --------------------------------------------------------------------------

    def _surface(self, t: np.ndarray) -> np.ndarray:
        """x_s at times t (vectorised; the same operations as the plain expressions, in place)."""
        ds = self._s_rate * t
        num = ds + (self._num0 + self._d_inf)
        if self._charging and t.size and self._t_hw < float(t.max()):
            loss = ds - self._to_hw
            np.maximum(loss, 0.0, out=loss)
            loss *= self._f_irr
            num -= loss
        if self._e_delta != 0.0:
            relax = self._k_delta * t
            np.exp(relax, out=relax)
            relax *= self._e_delta
            num += relax
        if self._fade_rate == 0.0:
            num *= 1.0 / self._den0
            return num
        den = self._fade_rate * t
        np.subtract(self._den0, den, out=den)
        num /= den
        return num

    def _surface_at(self, t: float) -> float:
        """x_s at one instant, in float arithmetic."""
        ds = self._s_rate * t
        num = self._num0 + ds + self._d_inf + self._e_delta * math.exp(self._k_delta * t)
        if self._charging:
            num -= self._f_irr * max(ds - self._to_hw, 0.0)
        return num / (self._den0 - self._fade_rate * t)

    def _li_at(self, t: np.ndarray) -> np.ndarray:
        if not self._charging:
            return self._li0 + self._flux * t
        ce = self._cell.p.anode_ce
        tf = np.minimum(t, self._t_fill)
        return self._li0 + self._flux * (tf + ce * (t - tf))

    def _li_scalar(self, t: float) -> float:
        if not self._charging:
            return self._li0 + self._flux * t
        tf = min(t, self._t_fill)
        return self._li0 + self._flux * (tf + self._cell.p.anode_ce * (t - tf))

    def _anode_involved(self, t: np.ndarray) -> bool:
        """Whether li < 0 anywhere on t (li is monotonic along a path: its extreme tells)."""
        if self._li0 < 0.0:
            return True
        return self.current < 0.0 and bool(t.size) and self._li0 + self._flux * float(t.max()) < 0.0

    # ---- ConstantCurrentPath ----------------------------------------------------------------------------

    def feature_times(self, fine: bool) -> np.ndarray:
        """Kinks of V: the anode's metallic Li running out, its reserve spent or refilled; and for change records
        the ~10 ms charge-transfer RC and a fine grid along the window. (The first-cycle loss setting in only
        bends V slightly: no sample needed there.)"""
        c = self._cell
        points = [c._tau1 * _RC_MULTIPLES] if fine else []
        if fine and self.current != 0.0:
            # every 0.1 % of the window (a few mV on the OCV), so that change-based records never fall between
            # coarse samples where the OCV is steep; the engine refines only a few steep intervals per chunk
            horizon = 1.1 * (self.expected_duration() or 0.0)
            points.append(np.arange(1, min(horizon * abs(self._x_rate) / 1e-3, 20000.0)) * (1e-3 / abs(self._x_rate)))
        if self.current < 0.0 and self._li0 > 0.0:
            t_dry = self._li0 / -self._flux
            t_empty = (self._li0 + c._reserve_ah) / -self._flux
            points.append(np.array([t_dry, t_empty]))
        if self._charging and 0.0 < self._t_fill < math.inf:
            points.append(np.array([self._t_fill]))
        return np.concatenate(points) if points else np.empty(0)

    def voltage(self, t: np.ndarray) -> np.ndarray:
        if t.size == 1:  # the engine's start sample: scalar math beats numpy's per-call overhead
            return np.array([self.voltage_at(float(t.flat[0]))]).reshape(t.shape)
        c = self._cell
        if self._table_y is None:
            self._table_y = c._table.combined(self._ir1)
        v = np.interp(self._surface(t), c._table.abscissa, self._table_y)
        v += self._static
        if self._a1 != 0.0 and t.size and float(t.min()) < self._t_rc:
            v += self._a1 * np.exp(self._k1 * t)
        if self._anode_involved(t):
            v -= c._anode_potential(self._li_at(t))
        return v

    def voltage_at(self, t: float) -> float:
        c = self._cell
        # x_s as in _surface_at, inlined: the root finders evaluate this ~10 times at every step end
        ds = self._s_rate * t
        num = self._num0 + ds + self._d_inf + self._e_delta * math.exp(self._k_delta * t)
        if self._charging:
            num -= self._f_irr * max(ds - self._to_hw, 0.0)
        u, f = c._table.scalar(num / (self._den0 - self._fade_rate * t))
        v = u + self._static + self._ir1 * f
        if t < self._t_rc:
            v += self._a1 * math.exp(self._k1 * t)
        if self._li0 >= 0.0 and (self._charging or self._li0 + self._flux * t >= 0.0):
            return v  # metallic Li on the anode: 0 V vs Li
        li = self._li_scalar(t)
        return v - c._reserve.scalar(-li / c._reserve_ah) if li < 0.0 else v

    def expected_duration(self) -> float | None:
        """Until the cathode leaves its window or, on discharge, the anode's reserve is spent."""
        if self.current == 0.0:
            return None
        if self._charging:
            return max((1.03 - self._x0) / (self._x_rate * (1.0 - self._f_irr)), 0.0)
        t_cathode = max((self._x0 + 0.03) / -self._x_rate, 0.0)
        t_anode = max((self._li0 + self._cell._reserve_ah) / -self._flux, 0.0)
        return min(t_cathode, t_anode)

    def commit(self, t: float) -> None:
        c = self._cell
        ds = self._s_rate * t
        f = c._table.scalar(self._surface_at(t))[1]
        c.v1 = self._ir1 * f + (self._a1 * math.exp(self._k1 * t) if t < self._t_rc else 0.0)
        c.delta = self._d_inf + self._e_delta * math.exp(self._k_delta * t)
        c.s = self._s0 + ds
        if self._charging:
            c.loss = self._loss0 + self._f_irr * max(ds - self._to_hw, 0.0)
            c.s_max = max(c.s_max, c.s)
            c.fade = self._fade0 + self._fade_rate * t
            c.dead_li += (1.0 - c.p.anode_ce) * self._flux * max(t - self._t_fill, 0.0)
        # li may go below zero: the host's Li given back, paid back first by the next charge (no clamping, so
        # the state equals the path and charge is conserved)
        c.li = self._li_scalar(t)
        if c.li < 0.0 <= self._li0 and not c.li_exhausted:
            c.li_exhausted = True
            c._raise_event(
                "li-exhausted",
                f"the anode's metallic Li is used up ({c.dead_li * 1e3:.3f} mAh lost to dead Li and SEI so far): "
                "from now on the anode limits the discharge and the capacity fades with the Li CE",
                self._li0 / -self._flux,
            )
