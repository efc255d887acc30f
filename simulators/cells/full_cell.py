"""NCM622 | Li-metal full cells: the Li-pre-deposited cell ("ncm622-li") and the anode-free one ("ncm622-anode-free").

Physics, in the order a current meets it:

* ohmic drop I*R0 (electrolyte, separator, contacts);
* Li-metal anode kinetics: symmetric Butler-Volmer overpotential 2(RT/F) asinh(j/2j0);
* cathode charge transfer: an RC whose resistance rises towards both ends of the state of charge as
  1/sqrt(s(1-s)) (exchange current proportional to sqrt(c(cmax-c)), the Butler-Volmer concentration law);
* cathode solid-state diffusion: the OCV is evaluated at the particle *surface* state s + delta, where delta is
  the three-parameter polynomial approximation of spherical diffusion (Subramanian et al., J. Electrochem. Soc.
  152 (2005) A2002): steady offset (I/Q) tau_d/15 reached with time constant tau_d/30. This is what makes the
  0.5C discharge end visibly earlier than 0.1C: the surface reaches the steep lithiated end of the OCV first;
* Li inventory: every Ah plated on the anode during charge loses (1 - CE) to dead Li and SEI. With an excess
  of pre-deposited Li the loss is paid from the reservoir; once that is gone (or from the first cycle in the
  anode-free cell) the discharge ends when the anode runs out, so capacity fades as Q0 * CE^n.

Under constant current every state has a closed form (linear charge, exponential RC and diffusion offsets),
so a step is one vectorised evaluation. State of charge ``s`` is the cathode's: 0 = fully lithiated
(discharged), 1 = delithiated to the nominal 0.1C window top, and the nominal capacity spans s = 0..1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from simulators.cells import impedance as zel
from simulators.cells.engine import ConstantCurrentPath, SimulatedCell
from simulators.cells.parameters import Param
from simulators.cells.physics import (
    SECONDS_PER_HOUR,
    TabulatedCurve,
    butler_volmer_overpotential,
    thermal_voltage,
)

# NCM622 vs Li OCV (V) against cathode state of charge. Shape from typical published NCM622 GITT/C/25 curves
# (about 3.6 V at 10 %, 3.8 V at 50 %, 4.25 V at full charge to 4.3 V), with the steep lithiated end that
# sets the discharge cut-off. Calibrated so that a 0.1C cycle between 3.0 and 4.3 V spans s = 0..1, i.e. the
# cell's nominal capacity.
NCM622_SOC = [-0.03, -0.02, -0.01, 0.0, 0.01, 0.02, 0.04, 0.07, 0.10, 0.15, 0.20, 0.30, 0.40, 0.50, 0.60,
              0.70, 0.80, 0.90, 0.95, 1.00, 1.01, 1.02, 1.04]  # fmt: skip
NCM622_OCV = [2.40, 2.65, 2.85, 3.02, 3.28, 3.41, 3.51, 3.56, 3.59, 3.63, 3.66, 3.71, 3.75, 3.80, 3.86,
              3.93, 4.01, 4.10, 4.15, 4.225, 4.265, 4.30, 4.40]  # fmt: skip

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
        "8 ohm cm^2: electrolyte-soaked separator plus contacts of a coin cell (7 ohm on 1.131 cm^2)",
        0.0,
    ),
    "cathode_ct_resistance": Param(
        2e-3,
        "ohm m^2",
        "20 ohm cm^2 cathode charge-transfer + CEI resistance at 50 % SOC (typical NCM coin cell)",
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
        "R_p^2/D for 5 um NCM622 particles with D = 3.9e-15 m^2/s (literature 1e-15..1e-14); gives a "
        "~6 % surface offset at 0.5C",
        1.0,
    ),
    "anode_exchange_current": Param(
        10.0,
        "A/m^2",
        "1 mA/cm^2 Li plating/stripping exchange current density (reported 0.5-5 mA/cm^2)",
        1e-6,
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
    "anode_depletion_slope": Param(
        1e5,
        "V",
        "rise of the anode potential per unit of cell capacity drawn after the anode's Li is gone: with no Li left "
        "only the double layer answers, so the potential jumps by volts within ~0.001 % of the capacity",
        1.0,
    ),
    "initial_soc": Param(0.0, "1", "cathode state of charge as assembled (fully lithiated)", -0.02, 1.0),
}


class NcmLiCell(SimulatedCell):
    """NCM622 | Li-metal full cell with a pre-deposited Li reservoir on the anode."""

    type_name = "ncm622-li"
    PARAMETERS: ClassVar[Mapping[str, Param]] = FULL_CELL_PARAMETERS

    def _setup(self) -> None:
        p = self.p
        a = self.area
        self.capacity = self._capacity_given if self._capacity_given is not None else p.areal_capacity * a
        self._ocv = TabulatedCurve(NCM622_SOC, NCM622_OCV, slope_lo=30.0, slope_hi=6.0)
        self._vt = thermal_voltage(p.temperature)
        self._r0 = p.ohmic_resistance / a
        self._r1 = p.cathode_ct_resistance / a
        self._c1 = p.cathode_capacitance * a
        self._tau1 = self._r1 * self._c1
        self._i0_anode = p.anode_exchange_current * a
        self._c_anode = p.anode_capacitance * a
        self._tau_delta = p.diffusion_time / 30.0
        self._coulombs = self.capacity * SECONDS_PER_HOUR

    def _reset_state(self) -> None:
        self.s = float(self.p.initial_soc)
        self.delta = 0.0
        self.v1 = 0.0
        self.li = float(self.p.li_excess) * self.area
        self.dead_li = 0.0

    # ---- physics ----------------------------------------------------------------------------------------

    def _r1_factor(self, s: np.ndarray | float) -> np.ndarray:
        sc = np.minimum(np.maximum(s, 0.02), 0.98)
        return 0.5 / np.sqrt(sc * (1.0 - sc))

    @staticmethod
    def _r1_factor_scalar(s: float) -> float:
        sc = min(max(s, 0.02), 0.98)
        return 0.5 / math.sqrt(sc * (1.0 - sc))

    def _anode_potential(self, li: np.ndarray) -> np.ndarray:
        return np.maximum(-li, 0.0) / self.capacity * self.p.anode_depletion_slope

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
        return float(self._ocv(self.s)) - float(self._anode_potential(np.array(self.li)))

    def impedance(self, frequencies: np.ndarray) -> np.ndarray:
        w = zel.angular(frequencies)
        p = self.p
        r_an = self._vt / self._i0_anode
        r1 = self._r1 * float(self._r1_factor(self.s))
        slope = max(self._ocv.slope(self.s), 1e-3)  # dU/ds, V per unit SOC
        c_int = self._coulombs / slope  # differential capacitance dQ/dU, F
        return (
            self._r0
            + zel.zarc(w, r_an, self._c_anode, p.cpe_alpha)
            + zel.zarc(w, r1, self._c1, p.cpe_alpha)
            + zel.spherical_diffusion(w, c_int, p.diffusion_time)
        )

    # ---- state ------------------------------------------------------------------------------------------

    def _state_vars(self) -> dict[str, Any]:
        return {"s": self.s, "delta": self.delta, "v1": self.v1, "li": self.li, "dead_li": self.dead_li}

    def _load_state_vars(self, state: Mapping[str, Any]) -> None:
        self.s = float(state["s"])
        self.delta = float(state["delta"])
        self.v1 = float(state["v1"])
        self.li = float(state["li"])
        self.dead_li = float(state["dead_li"])

    @property
    def li_inventory(self) -> float:
        """Active Li on the anode, Ah (the reservoir plus what the last charge plated)."""
        return self.li


class AnodeFreeCell(NcmLiCell):
    """NCM622 | Cu-side host with no Li excess: all cyclable Li comes from the cathode, so it fades as CE^n."""

    type_name = "ncm622-anode-free"
    PARAMETERS: ClassVar[Mapping[str, Param]] = {
        **FULL_CELL_PARAMETERS,
        "li_excess": Param(0.0, "Ah/m^2", "anode-free: no Li on the anode as assembled", 0.0),
    }


class _FullCellPath(ConstantCurrentPath):
    __slots__ = (
        "_cell",
        "_d_inf",
        "_delta0",
        "_eta",
        "_li0",
        "_li_rate",
        "_r1_0",
        "_s0",
        "_s_rate",
        "_v10",
        "current",
    )

    def __init__(self, cell: NcmLiCell, current: float) -> None:
        self._cell = cell
        self.current = current
        # the state this path starts from, frozen: the path stays valid after the cell moves on
        self._s0, self._delta0, self._v10, self._li0 = cell.s, cell.delta, cell.v1, cell.li
        self._s_rate = current / cell._coulombs  # 1/s
        self._d_inf = self._s_rate * cell.p.diffusion_time / 15.0
        ce = cell.p.anode_ce if current > 0 else 1.0
        self._li_rate = ce * current / SECONDS_PER_HOUR  # Ah/s into the anode's active Li
        self._eta = float(butler_volmer_overpotential(current, cell._i0_anode, cell._vt)) + current * cell._r0
        self._r1_0 = cell._r1 * cell._r1_factor_scalar(self._s0)  # R1 at the start state

    def feature_times(self, fine: bool) -> np.ndarray:
        """The instant the anode runs dry (a kink), and for change records the ~20 ms charge-transfer RC."""
        points = self._cell._tau1 * _RC_MULTIPLES if fine else np.empty(0)
        if self.current < 0 and self._li0 > 0:
            points = np.append(points, self._li0 / -self._li_rate)
        return points

    def voltage(self, t: np.ndarray) -> np.ndarray:
        c = self._cell
        s = self._s0 + self._s_rate * t
        delta = self._d_inf + (self._delta0 - self._d_inf) * np.exp(-t / c._tau_delta)
        v1 = self.current * c._r1 * c._r1_factor(s) + (self._v10 - self.current * self._r1_0) * np.exp(-t / c._tau1)
        v = c._ocv(s + delta) + self._eta + v1
        if self._li0 < 0 or (self.current < 0 and self._li0 + self._li_rate * float(np.max(t, initial=0.0)) < 0):
            v = v - c._anode_potential(self._li0 + self._li_rate * t)
        return v

    def expected_duration(self) -> float | None:
        """Until the cathode leaves its window or, on discharge, the anode runs out of Li."""
        if self.current == 0.0:
            return None
        s_rate = self._s_rate
        if self.current > 0:
            return max((1.03 - self._s0) / s_rate, 0.0)
        t_cathode = max((self._s0 + 0.03) / -s_rate, 0.0)
        t_anode = max(self._li0 / -self._li_rate, 0.0)
        return min(t_cathode, t_anode)

    def voltage_at(self, t: float) -> float:
        c = self._cell
        s = self._s0 + self._s_rate * t
        delta = self._d_inf + (self._delta0 - self._d_inf) * math.exp(-t / c._tau_delta)
        v1 = self.current * c._r1 * c._r1_factor_scalar(s) + (self._v10 - self.current * self._r1_0) * math.exp(
            -t / c._tau1
        )
        v = c._ocv.scalar(s + delta) + self._eta + v1
        li = self._li0 + self._li_rate * t
        if li < 0:
            v -= -li / c.capacity * c.p.anode_depletion_slope
        return v

    def commit(self, t: float) -> None:
        c = self._cell
        s = self._s0 + self._s_rate * t
        c.v1 = float(
            self.current * c._r1 * c._r1_factor_scalar(s)
            + (self._v10 - self.current * self._r1_0) * math.exp(-t / c._tau1)
        )
        c.delta = self._d_inf + (self._delta0 - self._d_inf) * float(np.exp(-t / c._tau_delta))
        c.s = s
        if self.current > 0:
            c.dead_li += (1.0 - c.p.anode_ce) * self.current * t / SECONDS_PER_HOUR
        # after the anode ran dry li goes (very slightly) negative: that charge came from side reactions and the
        # next charge pays it back first. No clamping, so the state equals the path and charge is conserved
        c.li = self._li0 + self._li_rate * t
