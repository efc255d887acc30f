"""Li | host half cells: "li-host" (LLTO@CNT on Cu), "li-llto" (pure LLTO) and "li-cu" (bare Cu foil).

The cell voltage is the working electrode (host) against the Li counter electrode. Discharge (negative current)
first lithiates the host along its OCV down to 0 V; once the host is full, Li plates on it. Charge strips the
plated Li back (the voltage sits just above 0 V) and, when the plated Li is gone, delithiates the host so that
the voltage rises along the host's OCV to the cut-off. The pieces:

* host OCV: the host's lithiation fraction as a function of potential is a sum of Nernstian (sigmoid) redox
  features plus a capacitive background, x(U) = sum w_k / (1 + exp((U - U_k)/(n V_T))) + w_bg (U_top - U)/U_top.
  Its derivative is the differential capacity that a CV scan turns into current peaks at U_k;
* interface kinetics: symmetric Butler-Volmer 2(RT/F) asinh(j/2j0) (the Li plating plateau grows with current
  density, linearly at low j and logarithmically at high j), ohmic R0 and an RC for the SEI / electrolyte
  concentration polarisation;
* nucleation: on a surface without active Li, plating needs an extra overpotential that peaks after a small
  charge (the double layer and SEI charge, nuclei form) and decays as the nuclei grow:
  eta_n(q) = dEta * (1 - exp(-q/q_r)) exp(-q/q_n) / peak, q the areal active Li. A bare Cu surface needs more;
* Coulombic efficiency: of each Ah plated, CE becomes active Li and 1 - CE dead Li / SEI, so a strip recovers
  CE of what was plated. Li plated beyond the host's pore volume (thickness x porosity x 2061 mAh/cm^3) is
  allowed and flagged in the state (``beyond_host_room``).

Under constant current the regime boundaries (host full, plated Li exhausted) fall at known charges, so the
whole trajectory is a closed form evaluated piecewise with numpy ``where``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from simulators.cells import impedance as zel
from simulators.cells.engine import ConstantCurrentPath, SimulatedCell
from simulators.cells.parameters import Param
from simulators.cells.physics import (
    LI_VOLUMETRIC_CAPACITY,
    SECONDS_PER_HOUR,
    TabulatedCurve,
    butler_volmer_overpotential,
    thermal_voltage,
)


def _half_cell_parameters(**overrides: Param) -> dict[str, Param]:
    base = {
        "host_capacity": Param(
            2.5,
            "Ah/m^2",
            "0.25 mAh/cm^2 lithiation capacity of the LLTO@CNT layer between its OCV and 0 V "
            "(assumption: the source leaves it open; a few % of the 45 um layer's Li room)",
            1e-6,
        ),
        "host_pristine_ocv": Param(2.8, "V", "OCV of the fresh host vs Li (LLTO/CNT, typical 2.5-3.0 V)", 0.1),
        "host_peak1_potential": Param(1.25, "V", "LLTO Ti4+/Ti3+ lithiation feature vs Li (reported ~1.0-1.5 V)"),
        "host_peak1_fraction": Param(0.45, "1", "share of the host capacity in the 1.25 V feature", 0.0, 1.0),
        "host_peak2_potential": Param(0.55, "V", "low-potential feature (Li insertion into the CNT network)"),
        "host_peak2_fraction": Param(0.25, "1", "share of the host capacity in the second feature", 0.0, 1.0),
        "host_peak_width": Param(
            3.0, "RT/F", "width of the redox features (ideality factor; broad for solid hosts)", 0.5
        ),
        "host_porosity": Param(
            0.46, "1", "host porosity (DESIGN section 1): with the thickness it sets the Li room", 0.0, 1.0
        ),
        "ohmic_resistance": Param(
            4e-4, "ohm m^2", "4 ohm cm^2: electrolyte + separator + contacts of a coin cell", 0.0
        ),
        "exchange_current": Param(
            10.0, "A/m^2", "1 mA/cm^2 Li plating/stripping exchange current density (reported 0.5-5 mA/cm^2)", 1e-6
        ),
        "polarisation_resistance": Param(
            6e-4, "ohm m^2", "6 ohm cm^2 SEI + electrolyte concentration polarisation", 0.0
        ),
        "polarisation_time": Param(
            30.0, "s", "relaxation time of that polarisation (Li+ diffusion across the separator, tens of s)", 1e-6
        ),
        "double_layer_capacitance": Param(1.0, "F/m^2", "100 uF/cm^2: double layer of the high-area CNT host", 1e-9),
        "cpe_alpha": Param(0.85, "1", "CPE exponent of the interface arc", 0.3, 1.0),
        "ce": Param(
            0.99,
            "1",
            "Li plating/stripping Coulombic efficiency on the lithiophilic host (assumption, typical 98.5-99.5 %)",
            0.0,
            1.0,
        ),
        "nucleation_overpotential": Param(
            0.010, "V", "extra plating overpotential at the nucleation peak (lithiophilic hosts: 5-15 mV)", 0.0
        ),
        "nucleation_rise_capacity": Param(0.02, "Ah/m^2", "0.002 mAh/cm^2 plated before the nucleation peak", 1e-9),
        "nucleation_decay_capacity": Param(
            0.2,
            "Ah/m^2",
            "0.02 mAh/cm^2 over which the nuclei coalesce and the overpotential relaxes to the plateau",
            1e-9,
        ),
        "initial_host_lithiation": Param(0.0, "1", "host lithiation fraction as assembled", 0.0, 1.0),
    }
    base.update(overrides)
    return base


class LiHostCell(SimulatedCell):
    """Li | LLTO@CNT host on Cu (the reference workload's host)."""

    type_name = "li-host"
    PARAMETERS: ClassVar[Mapping[str, Param]] = _half_cell_parameters()

    def _setup(self) -> None:
        p = self.p
        a = self.area
        self._vt = thermal_voltage(p.temperature)
        # The cell record's capacity (the host's lithiation to 0 V) wins over the default, so that a plan's
        # estimates and the simulated cell agree on the same number.
        given = self._capacity_given
        self.host_capacity = given if given is not None else p.host_capacity * a  # Ah
        self.host_room = self.thickness * p.host_porosity * LI_VOLUMETRIC_CAPACITY * a  # Ah of Li in the pores
        self._host = _host_ocv(p, self._vt)
        self._r0 = p.ohmic_resistance / a
        self._i0 = p.exchange_current * a
        self._r1 = p.polarisation_resistance / a
        self._tau1 = p.polarisation_time
        self._c_dl = p.double_layer_capacitance * a
        a_r, a_n = p.nucleation_rise_capacity * a, p.nucleation_decay_capacity * a
        self._nuc_rise, self._nuc_decay = a_r, a_n
        peak = (a_n / (a_r + a_n)) * (a_r / (a_r + a_n)) ** (a_r / a_n)
        self._nuc_scale = p.nucleation_overpotential / peak

    def _reset_state(self) -> None:
        self.q_host = self.p.initial_host_lithiation * self.host_capacity
        self.li = 0.0
        self.dead_li = 0.0
        self.v1 = 0.0
        self.beyond_host_room = False

    # ---- physics ----------------------------------------------------------------------------------------

    def host_ocv(self, q_host: np.ndarray | float) -> np.ndarray:
        """Host potential vs Li (V) at a lithiation charge (Ah)."""
        return self._host(np.asarray(q_host) / self.host_capacity)

    def _nucleation(self, li: np.ndarray) -> np.ndarray:
        return self._nuc_scale * (1.0 - np.exp(-li / self._nuc_rise)) * np.exp(-li / self._nuc_decay)

    def _constant_current(self, current: float) -> ConstantCurrentPath:
        return _HalfCellPath(self, float(current))

    def _grid_spacing(self, current: float) -> float:
        return 60.0  # narrow features get their own points (_HalfCellPath.feature_times)

    def _current_scale(self) -> float:
        return 10.0 * self.area  # 1 mA/cm^2

    def _double_layer_capacitance(self) -> float:
        return self._c_dl

    def open_circuit_voltage(self) -> float:
        return 0.0 if self.li > 0.0 else float(self.host_ocv(self.q_host))

    def impedance(self, frequencies: np.ndarray) -> np.ndarray:
        w = zel.angular(frequencies)
        z = (
            self._r0
            + zel.zarc(w, self._vt / self._i0, self._c_dl, self.p.cpe_alpha)
            + zel.warburg_transmissive(w, self._r1, 3.0 * self._tau1)
        )
        if self.li <= 0.0:
            # the host's intercalation capacitance dQ/dU in series: a capacitive low-frequency tail
            x = self.q_host / self.host_capacity
            slope = abs(self._host.slope(x))  # V per unit lithiation
            z = z + zel.capacitor(w, self.host_capacity * SECONDS_PER_HOUR / max(slope, 1e-6))
        return z

    # ---- state ------------------------------------------------------------------------------------------

    def _state_vars(self) -> dict[str, Any]:
        return {
            "q_host": self.q_host,
            "li": self.li,
            "dead_li": self.dead_li,
            "v1": self.v1,
            "beyond_host_room": self.beyond_host_room,
        }

    def _load_state_vars(self, state: Mapping[str, Any]) -> None:
        self.q_host = float(state["q_host"])
        self.li = float(state["li"])
        self.dead_li = float(state["dead_li"])
        self.v1 = float(state["v1"])
        self.beyond_host_room = bool(state["beyond_host_room"])


class LiLltoCell(LiHostCell):
    """Li | pure LLTO (no CNT network): more lithiation capacity in the Ti feature, slower kinetics, lower CE."""

    type_name = "li-llto"
    PARAMETERS: ClassVar[Mapping[str, Param]] = _half_cell_parameters(
        host_capacity=Param(4.0, "Ah/m^2", "0.4 mAh/cm^2: LLTO lithiation to 0 V without the CNT (assumption)", 1e-6),
        host_peak1_fraction=Param(0.70, "1", "most of the capacity in the LLTO Ti4+/Ti3+ feature", 0.0, 1.0),
        host_peak2_fraction=Param(0.05, "1", "no CNT: a small low-potential feature", 0.0, 1.0),
        exchange_current=Param(6.0, "A/m^2", "0.6 mA/cm^2: poorer electronic wiring than with CNT (assumption)", 1e-6),
        double_layer_capacitance=Param(0.3, "F/m^2", "30 uF/cm^2: less surface than the CNT host", 1e-9),
        ce=Param(0.975, "1", "lower than the LLTO@CNT host (assumption, between host and bare Cu)", 0.0, 1.0),
        nucleation_overpotential=Param(0.025, "V", "between the lithiophilic host and bare Cu (assumption)", 0.0),
    )


class LiCuCell(LiHostCell):
    """Li | bare Cu foil: no host to lithiate, no room for Li, larger nucleation overpotential, lower CE."""

    type_name = "li-cu"
    PARAMETERS: ClassVar[Mapping[str, Param]] = _half_cell_parameters(
        host_capacity=Param(
            0.02,
            "Ah/m^2",
            "0.002 mAh/cm^2: SEI formation and double-layer charge on Cu before plating (Cu does not alloy with Li)",
            1e-9,
        ),
        host_pristine_ocv=Param(3.0, "V", "OCV of Cu vs Li in carbonate electrolyte (~3 V)", 0.1),
        host_peak1_fraction=Param(0.0, "1", "no redox feature on Cu", 0.0, 1.0),
        host_peak2_fraction=Param(0.0, "1", "no redox feature on Cu", 0.0, 1.0),
        host_porosity=Param(0.0, "1", "a foil has no pores: no Li room, the flag does not apply", 0.0, 1.0),
        exchange_current=Param(7.0, "A/m^2", "0.7 mA/cm^2: lithiophobic Cu (assumption)", 1e-6),
        double_layer_capacitance=Param(0.1, "F/m^2", "10 uF/cm^2: flat metal double layer", 1e-9),
        ce=Param(0.95, "1", "bare Cu in carbonate electrolyte: 90-97 % reported (assumption 95 %)", 0.0, 1.0),
        nucleation_overpotential=Param(0.050, "V", "Cu: 30-60 mV reported at 0.5 mA/cm^2", 0.0),
    )


def _host_ocv(p: Any, vt: float) -> TabulatedCurve:
    """Host potential vs lithiation fraction, by inverting the sigmoid-sum x(U) on a fine potential grid."""
    u = np.linspace(0.0, p.host_pristine_ocv, 4001)
    w1, w2 = p.host_peak1_fraction, p.host_peak2_fraction
    w_bg = max(1.0 - w1 - w2, 1e-3)
    width = p.host_peak_width * vt

    def x_of(uu: np.ndarray) -> np.ndarray:
        return (
            w1 / (1.0 + np.exp((uu - p.host_peak1_potential) / width))
            + w2 / (1.0 + np.exp((uu - p.host_peak2_potential) / width))
            + w_bg * (p.host_pristine_ocv - uu) / p.host_pristine_ocv
        )

    x = x_of(u)
    x = (x - x[-1]) / (x[0] - x[-1])  # 1 at 0 V, 0 at the pristine OCV
    # x falls with u: reverse to get an increasing abscissa; drop repeats where the sigmoids saturate
    xs, us = x[::-1], u[::-1]
    keep = np.concatenate([[True], np.diff(xs) > 1e-12])
    return TabulatedCurve(xs[keep], us[keep], slope_lo=-50.0, slope_hi=-50.0, resolution=8001)


class _HalfCellPath(ConstantCurrentPath):
    __slots__ = ("_cell", "_li0", "_q0", "_rate", "_static", "_v10", "current")

    def __init__(self, cell: LiHostCell, current: float) -> None:
        self._cell = cell
        self.current = current
        # the state this path starts from, frozen: the path stays valid after the cell moves on
        self._q0, self._li0, self._v10 = cell.q_host, cell.li, cell.v1
        self._rate = abs(current) / SECONDS_PER_HOUR  # Ah/s
        self._static = float(butler_volmer_overpotential(current, cell._i0, cell._vt)) + current * cell._r0

    def feature_times(self, fine: bool) -> np.ndarray:
        """200 points across each host-(de)lithiation stretch and across the nucleation dip."""
        c = self._cell
        if self.current == 0.0:
            return np.empty(0)
        rate = self._rate
        host = np.linspace(0.0, c.host_capacity / rate, 201)[1:]
        if self.current < 0:
            room = max(c.host_capacity - self._q0, 0.0) if self._li0 <= 0.0 else 0.0
            t_room = room / rate
            dip = np.linspace(0.0, 5.0 * c._nuc_decay / (c.p.ce * rate + 1e-300), 401)[1:]
            return np.concatenate([host[host < t_room], [t_room], t_room + dip])
        t_empty = self._li0 / rate
        return np.concatenate([[t_empty], t_empty + host])

    def _states(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(host lithiation Ah, active Li Ah, plated-this-step Ah) at times t."""
        c = self._cell
        q0, li0 = self._q0, self._li0
        charge = self._rate * t
        if self.current < 0:
            room = max(c.host_capacity - q0, 0.0) if li0 <= 0.0 else 0.0
            plated = np.maximum(charge - room, 0.0)
            return q0 + np.minimum(charge, room), li0 + c.p.ce * plated, plated
        if self.current > 0:
            after = np.maximum(charge - li0, 0.0)
            return q0 - after, np.maximum(li0 - charge, 0.0), np.zeros_like(charge)
        return np.full_like(charge, q0), np.full_like(charge, li0), np.zeros_like(charge)

    def voltage(self, t: np.ndarray) -> np.ndarray:
        c = self._cell
        q_host, li, _ = self._states(t)
        e_eq = np.where(li > 0.0, 0.0, c.host_ocv(q_host))
        v1 = self.current * c._r1 + (self._v10 - self.current * c._r1) * np.exp(-t / c._tau1)
        v = e_eq + self._static + v1
        if self.current < 0:
            v = v - c._nucleation(li)
        return v

    def commit(self, t: float) -> None:
        c = self._cell
        q_host, li, plated = (float(x[0]) for x in self._states(np.array([t])))
        c.v1 = self.current * c._r1 + (self._v10 - self.current * c._r1) * float(np.exp(-t / c._tau1))
        c.dead_li += (1.0 - c.p.ce) * plated
        # beyond an empty host q_host goes negative: the steep OCV extension there stands for side reactions.
        # No clamping, so that the state always equals the path the step was solved on (and charge is conserved)
        c.q_host = q_host
        c.li = li
        if c.host_room > 0.0 and c.li + c.dead_li > c.host_room:
            c.beyond_host_room = True
