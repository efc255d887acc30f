"""Li | host half cells: "li-host" (LLTO@CNT on Cu), "li-llto" (pure LLTO) and "li-cu" (bare Cu foil).

The cell voltage is the working electrode (host) against the Li counter electrode. Discharge (negative current)
first lithiates the host along its OCV down to 0 V; once the host is full, Li plates on it. Charge strips the
plated Li back (the voltage sits just above 0 V) and, when the plated Li is gone, delithiates the host so that
the voltage rises along the host's OCV to the cut-off. The pieces:

* host OCV: the host's lithiation fraction as a function of potential is a sum of Nernstian (sigmoid) redox
  features plus a capacitive background, x(U) = sum w_k / (1 + exp((U - U_k)/(n V_T))) + w_bg (U_top - U)/U_top.
  Its derivative is the differential capacity that a CV scan turns into current peaks at U_k;
* solid-state diffusion (:mod:`simulators.cells.host_diffusion`): Li enters the host's LLTO through its surface
  and diffuses in (slab, tau = L^2/D, D thermally activated and falling as the host fills); the interface sees
  the surface lithiation, not the mean. So CV peaks go from thin-layer (i_p ~ v) at slow rates to Randles-Sevcik
  (i_p ~ sqrt(v)) at fast ones and separate, a fast lithiation reaches 0 V before the host is full (the surface
  saturates at 0 V and the rest fills while Li plates), and the voltage relaxes at rest;
* first-lithiation SEI: host_sei_capacity is reduced once, irreversibly, in a wave at 0.7-0.8 V in parallel with
  the host's lithiation (the first cathodic CV sweep's extra peak; the host's first-cycle irreversible charge);
* interface kinetics: symmetric Butler-Volmer 2(RT/F) asinh(j/2j0) (the Li plating plateau grows with current
  density, linearly at low j and logarithmically at high j), ohmic R0 and an RC for the SEI / electrolyte
  concentration polarisation;
* nucleation: on a surface without active Li, plating needs an extra overpotential that peaks after a small
  charge (the double layer and SEI charge, nuclei form) and decays as the nuclei grow:
  eta_n(q) = dEta * (1 - exp(-q/q_r)) exp(-q/q_n) / peak, q the areal active Li. A bare Cu surface needs more;
  dead Li left from earlier cycles seeds the next deposit (dEta divides by 1 + D/D_n), so on Cu the first
  cycle's dip is the deepest, as Li||Cu voltage profiles show;
* Li inventory and Coulombic efficiency (:class:`_PlatingLoss`): of the charge P plated since the plated Li was
  last used up (one plating "cycle"), L(P) = k [a P + S P/(P + q_c)] + F P/(P + q_F) becomes dead Li / SEI and
  the rest is active Li that a strip gives back. a is the loss per Ah of Li grown (SEI repair on the volume
  plated); S P/(P + q_c) is the SEI of the surface each cycle's fresh deposit creates, mostly in its first
  ~q_c, so the CE 1 - L(Q)/Q rises towards the plateau 1 - k a with the areal capacity Q per cycle (Adams et
  al., Adv. Energy Mater. 8 (2018) 1702097: higher areal capacity, higher CE). k = (j/j_ref)^n m(D): faster
  plating makes smaller, more numerous nuclei and more surface per Ah (Pei et al., Nano Lett. 17 (2017) 1132),
  and dead Li D raises the loss through the surface and tortuosity it adds (m grows from 1 by a documented
  factor per mAh/cm^2 and saturates; Aurbach's and Chen et al.'s accounts of dead-Li growth on Cu, J. Mater.
  Chem. A 5 (2017) 11671). F is the SEI of a never-plated surface (bare Cu): consumed once, over the first q_F
  plated, so only the first cycle on Cu pays it;
* dead Li also thickens the porous dead-Li/SEI layer the ions cross: ohmic and polarisation resistances grow by
  a documented amount per mAh/cm^2 of dead Li, so plating and stripping overpotentials grow over cycles
  (Lu et al., Adv. Energy Mater. 5 (2015) 1400993; Chen et al. 2017). Within one step they are those of its
  start (dead Li changes by well under 1 % in a step), which keeps every step a closed form;
* Li room: the host's pores hold thickness x porosity x 2061 mAh/cm^3 of Li (active + dead). Li plated beyond
  grows on the host's outer face: that face offers about the geometric area and none of the host's lithiophilic
  LLTO, so its exchange current is lower and the plating plateau moves down to Li-on-a-flat-surface values. The
  plating overpotential blends from the pore value to the outer one as eta_in + (eta_out - eta_in)(1 -
  exp(-excess/w)) (w: the charge that covers the outer face); the step raises one ``over-plating`` CellEvent when
  it starts, and the state keeps ``beyond_host_room``. Stripping keeps the pore kinetics: it draws on every Li
  surface in parallel, and the pore Li offers most of it;
* temperature: ohmic and polarisation resistances, the polarisation time and the exchange currents follow
  Arrhenius laws referred to 27 degC with documented activation energies; the nucleation overpotential shrinks
  with temperature too. ``set_temperature`` keeps the state.

Under constant current the regime boundaries (host full, pores full, plated Li exhausted) fall at known charges,
so the whole trajectory is a closed form evaluated piecewise with numpy ``where``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from simulators.cells import impedance as zel
from simulators.cells.engine import ConstantCurrentPath, SimulatedCell
from simulators.cells.errors import ParameterError
from simulators.cells.host_diffusion import HostDiffusion, SurfaceSei, diffusion_time
from simulators.cells.parameters import Param
from simulators.cells.physics import (
    LI_VOLUMETRIC_CAPACITY,
    SECONDS_PER_HOUR,
    TabulatedCurve,
    arrhenius_factor,
    butler_volmer_overpotential,
    thermal_voltage,
)
from simulators.cells.roots import find_root

#: where the ``ce`` parameter is defined: 1 mA/cm^2 and 1 mAh/cm^2 per cycle (the seed's Fig. S7 conditions)
_REFERENCE_CURRENT_DENSITY = 10.0  # A/m^2
_REFERENCE_AREAL_CAPACITY = 10.0  # Ah/m^2
#: the largest share of a plating current that may go to dead Li and SEI: active Li always grows while plating
_MAX_LOSS_RATE = 0.9


def _saturating_growth(x: float, maximum: float) -> float:
    """1 + x for small x, levelling off at ``maximum`` (the dead-Li factor on the Li loss)."""
    head = maximum - 1.0
    return 1.0 + (head * x / (head + x) if head > 0.0 else 0.0)


def _counter_electrode_parameters() -> dict[str, Param]:
    """The Li foil counter electrode: its own charge-transfer arc in the half cell's impedance."""
    return {
        "li_exchange_current": Param(
            10.0,
            "A/m^2",
            "1 mA/cm^2: Li foil in carbonate electrolyte (0.5-5 mA/cm^2 reported from Li|Li symmetric cells); "
            "R_ct,Li = RT/(F i0) = 2.6 ohm cm^2 at 27 degC",
            1e-6,
        ),
        "li_double_layer_capacitance": Param(
            0.05,
            "F/m^2",
            "5 uF/cm^2: SEI-covered Li foil (1-10 uF/cm^2 reported from Li|Li symmetric-cell EIS); with R_ct,Li its "
            "arc peaks near 1 kHz, above the high-area host's (~60 Hz)",
            1e-9,
        ),
        "li_cpe_alpha": Param(0.9, "1", "CPE exponent of the Li foil arc (a flatter surface than the host)", 0.3, 1.0),
    }


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
            "Li plating/stripping Coulombic efficiency on the lithiophilic host at the reference conditions "
            "(1 mA/cm^2, 1 mAh/cm^2 per cycle, no dead Li yet); assumption, MIEC hosts report 98.5-99.5 %",
            0.0,
            1.0,
        ),
        "ce_current_exponent": Param(
            0.3,
            "1",
            "n in loss ~ (j/1 mA/cm^2)^n: more, smaller nuclei and more surface per Ah at higher current density "
            "(nucleus density grows with overpotential, Pei et al. 2017). The host spreads the current over its "
            "inner surface, so a weaker dependence than bare Cu (assumption)",
            0.0,
            2.0,
        ),
        "ce_surface_share": Param(
            0.5,
            "1",
            "share of the reference loss that is per-cycle surface SEI (S) rather than per-Ah loss (a): sets how "
            "strongly CE rises with the areal capacity per cycle (assumption; Adams et al. 2018 show CE rising "
            "towards a plateau with areal capacity)",
            0.0,
            1.0,
        ),
        "ce_capacity_scale": Param(
            5.0,
            "Ah/m^2",
            "q_c = 0.5 mAh/cm^2: the plated charge over which a cycle's fresh deposit creates most of its surface "
            "(nuclei grow, coalesce and then thicken; assumption)",
            1e-6,
        ),
        "first_plating_sei": Param(
            0.0,
            "Ah/m^2",
            "SEI charge of a never-plated surface, paid once (0 here: the host's surface SEI forms on its first "
            "lithiation, host_sei_capacity)",
            0.0,
        ),
        "first_plating_sei_capacity": Param(
            1.0,
            "Ah/m^2",
            "q_F = 0.1 mAh/cm^2 (0.5 um of dense Li): the first deposit covers the substrate within it, so the "
            "once-only SEI forms early in the first plating (assumption)",
            1e-6,
        ),
        "dead_li_loss_growth": Param(
            0.002,
            "1/(Ah/m^2)",
            "0.02 per mAh/cm^2: growth of the Li loss factor with dead Li. In the mixed ion-electron conducting "
            "host isolated Li stays in electronic contact with the LLTO@CNT scaffold and grows in confined "
            "pores, so the surface hardly grows and CE stays high (seed Fig. S7; assumption)",
            0.0,
        ),
        "dead_li_loss_max": Param(
            5.0,
            "1",
            "largest factor the dead Li can raise the Li loss by (the porous dead-Li layer stops adding new "
            "surface once it is thick; assumption)",
            1.0,
        ),
        "dead_li_ohmic_growth": Param(
            3e-6,
            "ohm m^2/(Ah/m^2)",
            "0.3 ohm cm^2 per mAh/cm^2 of dead Li added to the ohmic resistance (tortuous dead-Li/SEI layer; "
            "small in the host where dead Li sits in the pores, assumption)",
            0.0,
        ),
        "dead_li_polarisation_growth": Param(
            5e-6,
            "ohm m^2/(Ah/m^2)",
            "0.5 ohm cm^2 per mAh/cm^2 of dead Li added to the polarisation resistance (mass transport through "
            "the dead-Li layer, Chen et al. 2017; small in the host, assumption)",
            0.0,
        ),
        "outer_exchange_current": Param(
            3.0,
            "A/m^2",
            "0.3 mA/cm^2: Li plating on the host's outer face once its pores are full; about the geometric area and "
            "no lithiophilic sites, like Li on a flat SEI-covered surface (reported 0.1-1 mA/cm^2; assumption)",
            1e-6,
        ),
        "over_plating_width": Param(
            1.0,
            "Ah/m^2",
            "0.1 mAh/cm^2 (0.5 um of dense Li) beyond the room over which Li covers the outer face and the plateau "
            "moves to the outer value (the pores fill unevenly; assumption)",
            1e-6,
        ),
        "nucleation_seed_capacity": Param(
            0.5,
            "Ah/m^2",
            "D_n = 0.05 mAh/cm^2: dead Li left on the surface seeds the next deposit, so the nucleation overpotential "
            "divides by 1 + D/D_n (later cycles on Cu show much smaller dips than the first; assumption)",
            1e-9,
        ),
        "ohmic_activation_energy": Param(
            20e3,
            "J/mol",
            "Li+ conduction of the electrolyte in the separator (apparent 15-25 kJ/mol near room temperature for "
            "carbonate and ether electrolytes); also sets the polarisation time (electrolyte diffusion)",
            0.0,
        ),
        "polarisation_activation_energy": Param(
            30e3,
            "J/mol",
            "SEI and concentration polarisation: between electrolyte transport (~20) and Li+ transport through the "
            "SEI (~35-60 kJ/mol reported); assumption",
            0.0,
        ),
        "exchange_current_activation_energy": Param(
            50e3,
            "J/mol",
            "Li+ desolvation and charge transfer through the SEI: 50-70 kJ/mol measured at carbon "
            "(Abe et al., J. Electrochem. Soc. 151 (2004) A1120; Xu et al., Langmuir 26 (2010) 11538), taken for "
            "the SEI-covered Li as well",
            0.0,
        ),
        "nucleation_activation_energy": Param(
            15e3,
            "J/mol",
            "the nucleation overpotential falls with temperature (fewer, larger nuclei); 15 kJ/mol makes it about "
            "halve between 20 and 60 degC (assumption)",
            0.0,
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
        # solid-state diffusion and first-cycle SEI reduction in the host (simulators/cells/host_diffusion.py)
        "host_diffusivity": Param(
            1e-15,
            "m^2/s",
            "chemical diffusion coefficient of Li in the host's LLTO at 27 degC: 1e-11 cm^2/s, inside the "
            "1e-12..1e-10 cm^2/s reported for Ti-oxide insertion hosts (Li4Ti5O12, LLTO, anatase) by GITT, EIS and "
            "CV Randles-Sevcik analyses (assumption: the source leaves it open)",
            1e-22,
        ),
        "host_diffusion_length": Param(
            1.5e-6,
            "m",
            "depth Li diffuses into the LLTO of the host (LLTO walls/agglomerates on the CNT, 1-2 um; assumption). "
            "With the diffusivity, tau = L^2/D = 2250 s sets where a CV turns from diffusion-limited "
            "(i_p ~ sqrt(v), above ~0.5 mV/s) to thin-layer (i_p ~ v, below ~0.02 mV/s); 0 = no diffusion",
            0.0,
        ),
        "host_diffusivity_lithiated_ratio": Param(
            0.2,
            "1",
            "D of the full host over D of the empty one; D = D_0 ratio^x in between (log-linear). Li hops through "
            "the LLTO's vacant A sites, which the lithiation fills, so D falls as the host fills (1-2 orders of "
            "magnitude over the lithiation range are reported by GITT on Ti-oxide hosts; assumption). It makes the "
            "anodic and cathodic peaks differ in height and shape",
            1e-3,
            1.0,
        ),
        "host_diffusion_activation_energy": Param(
            40e3,
            "J/mol",
            "0.41 eV: Li+ hopping in LLTO (bulk ~0.3 eV, grain boundary ~0.4 eV reported), applied to the "
            "diffusivity through an Arrhenius factor referred to 27 degC",
            0.0,
        ),
        "host_sei_capacity": Param(
            0.5,
            "Ah/m^2",
            "0.05 mAh/cm^2 of electrolyte reduced irreversibly on the host surface on the first lithiation (SEI on "
            "the CNT and LLTO surface; assumption: ~10-20 % of the host capacity, as first-cycle losses of "
            "high-surface carbon/Ti-oxide electrodes). It is the host's first-cycle irreversible charge",
            0.0,
        ),
        "host_sei_potential": Param(
            0.8,
            "V",
            "surface potential at which half of the SEI has formed (EC-based carbonate electrolytes reduce from "
            "~0.8 V vs Li on carbon and Ti oxides; the first cathodic sweep shows the peak at 0.7-0.75 V, a little "
            "lower because the host's surface runs ahead of the applied potential)",
        ),
        "host_sei_width": Param(
            1.5,
            "RT/F",
            "width of the SEI reduction wave: ~140 mV full width at half height, a broad irreversible wave clear of "
            "the host's 0.55 V feature (assumption)",
            0.1,
        ),
    }
    base.update(_counter_electrode_parameters())
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
        self._host = _host_ocv(p.host_pristine_ocv, p.host_peak1_fraction, p.host_peak2_fraction,
                               p.host_peak1_potential, p.host_peak2_potential, p.host_peak_width * self._vt)
        self._setup_temperature()
        self._c_dl = p.double_layer_capacitance * a
        a_r, a_n = p.nucleation_rise_capacity * a, p.nucleation_decay_capacity * a
        self._nuc_rise, self._nuc_decay = a_r, a_n
        peak = (a_n / (a_r + a_n)) * (a_r / (a_r + a_n)) ** (a_r / a_n)
        self._nuc_scale = p.nucleation_overpotential / peak / self._k_nuc
        self._check_first_plating_sei()
        self._refresh_dead_li()
        self._setup_host_diffusion()

    def _setup_host_diffusion(self) -> None:
        """Diffusion modes (thermally activated D) and the SEI surface solve: the surface sets the OCV, not the mean."""
        p = self.p
        d = p.host_diffusivity * arrhenius_factor(p.host_diffusion_activation_energy, p.temperature)
        self._diffusion = HostDiffusion.build("slab", diffusion_time(p.host_diffusion_length, d))
        self._log_d_ratio = math.log(p.host_diffusivity_lithiated_ratio)
        self.sei_capacity = p.host_sei_capacity * self.area  # Ah
        rho = self.sei_capacity / self.host_capacity
        self._sei = SurfaceSei(self._host, rho, p.host_sei_potential, p.host_sei_width * self._vt)

    def _setup_temperature(self) -> None:
        """Arrhenius factors k(T)/k(27 degC): rates multiply by them, resistances and times divide."""
        p = self.p
        t = p.temperature
        self._k_ohm = arrhenius_factor(p.ohmic_activation_energy, t)
        self._k_pol = arrhenius_factor(p.polarisation_activation_energy, t)
        self._k_ct = arrhenius_factor(p.exchange_current_activation_energy, t)
        self._k_nuc = arrhenius_factor(p.nucleation_activation_energy, t)
        self._i0 = p.exchange_current * self._k_ct * self.area
        self._i0_outer = p.outer_exchange_current * self._k_ct * self.area
        self._tau1 = p.polarisation_time / self._k_ohm

    def _check_first_plating_sei(self) -> None:
        """The once-only SEI may take at most half of what is plated at first, or Li could not grow at all."""
        p = self.p
        if p.first_plating_sei > 0.5 * p.first_plating_sei_capacity:
            raise ParameterError(
                f"model {self.type_name!r}: first_plating_sei {p.first_plating_sei:g} Ah/m^2 must be at most half of "
                f"first_plating_sei_capacity {p.first_plating_sei_capacity:g} Ah/m^2 (the SEI would consume more "
                "than half of the first Li plated)"
            )

    #: a new cell has no dead Li; _setup reads it before _reset_state sets the instance's own value
    dead_li: float = 0.0
    #: whether this cell object has reported over-plating. Deliberately not part of the saved state: an instrument
    #: re-runs a step from a restored state (a second recording pass, a pause), and the physical event happened once
    _over_plating_announced: bool = False

    def _refresh_dead_li(self) -> None:
        """Resistances, Li-loss factor and nucleation overpotential at the present amount of dead Li.

        They are cell attributes (the impedance reads ``_r0`` and ``_r1`` too) refreshed whenever dead Li changes;
        a constant-current path copies them when it is created, so it stays valid after the cell moves on.
        """
        p, a = self.p, self.area
        dead = self.dead_li / a  # Ah/m^2
        self._r0 = (p.ohmic_resistance + p.dead_li_ohmic_growth * dead) / (self._k_ohm * a)
        self._r1 = (p.polarisation_resistance + p.dead_li_polarisation_growth * dead) / (self._k_pol * a)
        self._loss_factor = _saturating_growth(p.dead_li_loss_growth * dead, p.dead_li_loss_max)
        self._nuc_now = self._nuc_scale / (1.0 + dead / p.nucleation_seed_capacity)

    def _reset_state(self) -> None:
        self.q_host = self.p.initial_host_lithiation * self.host_capacity
        self.li = 0.0
        self.dead_li = 0.0
        self.v1 = 0.0
        self.beyond_host_room = False
        self.cycle_plated = 0.0  # Ah plated since the active Li was last used up (this plating "cycle")
        self.cycle_fresh_sei = self.p.first_plating_sei * self.area  # once-only SEI budget at this cycle's start
        self._refresh_dead_li()
        self.host_modes = self._diffusion.zero()  # diffusion mode amplitudes (lithiation fraction), relaxed
        self.sei_share = 0.0  # share of the SEI capacity reduced so far (irreversible)

    # ---- physics ----------------------------------------------------------------------------------------

    def host_ocv(self, q_host: np.ndarray | float) -> np.ndarray:
        """Host potential vs Li (V) at a lithiation charge (Ah)."""
        return self._host(np.asarray(q_host) / self.host_capacity)

    def _nucleation(self, li: np.ndarray, scale: float) -> np.ndarray:
        """Extra plating overpotential (V, positive) on a surface with ``li`` Ah of active Li; ``scale`` from
        ``_nuc_now`` (temperature and dead-Li seeds) when the path was created."""
        return scale * (1.0 - np.exp(-li / self._nuc_rise)) * np.exp(-li / self._nuc_decay)

    def _plating_loss(self, current: float, new_cycle: bool) -> _PlatingLoss:
        """The Li-loss law of a plating step at ``current`` (A, < 0) from the present state.

        ``new_cycle``: the active Li is used up, so this plating starts a cycle; the once-only SEI still unpaid
        by the last cycle carries over to it.
        """
        p, a = self.p, self.area
        loss_ref = 1.0 - p.ce
        per_ah = (1.0 - p.ce_surface_share) * loss_ref
        qc = p.ce_capacity_scale * a
        # S/(Q_ref + q_c) is the surface share of the reference loss at Q_ref per cycle
        surface = p.ce_surface_share * loss_ref * (_REFERENCE_AREAL_CAPACITY * a + qc)
        qf = p.first_plating_sei_capacity * a
        if new_cycle:
            p0, fresh = 0.0, self.cycle_fresh_sei * qf / (self.cycle_plated + qf)
        else:
            p0, fresh = self.cycle_plated, self.cycle_fresh_sei
        j = abs(current) / a
        k = (j / _REFERENCE_CURRENT_DENSITY) ** p.ce_current_exponent * self._loss_factor
        initial = per_ah + surface / qc  # loss rate per unit k at the start of a cycle (its largest)
        if initial > 0.0:
            k = min(k, max(_MAX_LOSS_RATE - fresh / qf, 0.0) / initial)
        return _PlatingLoss(k, per_ah, surface, qc, fresh, qf, p0)

    def _ocv_window(self) -> tuple[float, float, str]:
        """(lowest, highest, why) rest voltage the as-assembled cell can be placed at."""
        return 0.0, self.p.host_pristine_ocv, "the host is full at 0 V and pristine at host_pristine_ocv"

    def _start_at_ocv(self, voltage: float) -> None:
        """Lithiate the host until its OCV equals the cell record's ``ocv``.

        A record's OCV below the pristine one describes a host lithiated down to that potential: its reversible
        lithiation is where the host OCV equals it, and the SEI that reduces at or above that potential is
        counted as formed (a first lithiation would have formed it on the way).
        """
        lo, hi, why = self._ocv_window()
        if not lo - 1e-9 <= voltage <= hi + 1e-9:
            raise ParameterError(
                f"cell model {self.type_name!r} cannot rest at the cell record's ocv {voltage:g} V: valid "
                f"{lo:g} V to {hi:g} V ({why}); correct 'ocv' in the cell record"
            )
        x = self._host_fraction_at(min(max(voltage, lo), hi))
        self.q_host = x * self.host_capacity
        self.sei_share = float(self._sei.equilibrium_share(x))

    def _host_fraction_at(self, voltage: float) -> float:
        """The host lithiation fraction whose OCV is ``voltage`` (the OCV falls monotonically with it)."""
        f = self._host.scalar
        if voltage <= f(1.0):
            return 1.0
        lo = -1.0  # beyond the pristine end the OCV continues steeply upwards (a Cu mixed potential above 3 V)
        while f(lo) < voltage:
            lo *= 2.0
        return find_root(lambda x: f(x) - voltage, lo, 1.0, xtol=1e-15, rtol=4 * np.finfo(float).eps)

    def _constant_current(self, current: float) -> ConstantCurrentPath:
        return _HalfCellPath(self, float(current))

    def _grid_spacing(self, current: float) -> float:
        return 60.0  # narrow features get their own points (_HalfCellPath.feature_times)

    def _current_scale(self) -> float:
        return 10.0 * self.area  # 1 mA/cm^2

    def _double_layer_capacitance(self) -> float:
        return self._c_dl

    def _diffusion_speed(self, q_host: float, offset: float = 0.0) -> float:
        """D(x)/D(0) at the lithiation of ``q_host`` plus ``offset`` (a fraction).

        A path keeps the D of its start (a CV step moves x by well under 1 %; a constant-current step uses the D it
        starts with), taken halfway between the mean and the surface: the region the diffusion flux crosses.
        """
        x = min(max(q_host / self.host_capacity + offset, 0.0), 1.0)
        return math.exp(self._log_d_ratio * x)

    def surface_lithiation(self) -> float:
        """The host's lithiation fraction at its surface (the mean plus the diffusion offset)."""
        return self.q_host / self.host_capacity + float(np.sum(self.host_modes))

    def open_circuit_voltage(self) -> float:
        return 0.0 if self.li > 0.0 else float(self._host(min(self.surface_lithiation(), 1.0)))

    def impedance(self, frequencies: np.ndarray) -> np.ndarray:
        """Small-signal spectrum: ohmic R0, the working electrode's arc, the Li counter electrode's arc, the
        electrolyte/SEI polarisation as a finite Warburg, and, with no Li on the working electrode, the host's
        solid-state diffusion ending in its intercalation capacitance (see :meth:`_eis_circuit`)."""
        return self._eis_circuit().small_signal(zel.angular(frequencies))

    def measured_impedance(self, frequencies: np.ndarray, amplitude: float, mode: str = "potentio") -> np.ndarray:
        """What an analyser reads at ``amplitude``: both Butler-Volmer interfaces solved by harmonic balance."""
        return zel.first_harmonic_impedance(self._eis_circuit(), zel.angular(frequencies), amplitude, mode)

    def counter_electrode_overpotential(self, current: np.ndarray | float) -> np.ndarray:
        """Overpotential (V) of the Li foil counter electrode at cell current ``current``: symmetric Butler-Volmer
        with the foil's exchange current, signed like the current. It belongs in the constant-current path's voltage
        too: only then does the EIS low-frequency resistance equal the small-current DC polarisation (without it
        the DC voltage carries the working electrode's kinetics alone)."""
        return butler_volmer_overpotential(current, self._li_foil_i0(), self._vt)

    def _li_foil_i0(self) -> float:
        """Exchange current (A) of the Li foil; its Arrhenius factor is the Li plating/stripping one (same
        reaction, Li+ + e- <-> Li through the SEI)."""
        return self.p.li_exchange_current * self._k_ct * self.area

    def _eis_circuit(self) -> zel.EisCircuit:
        """The equivalent circuit of the present state: two Butler-Volmer interfaces in series with a linear rest.

        * working electrode: R_ct = RT/(F I0) (plating/stripping on Li, or insertion into the host) with the
          host's double layer (CPE);
        * Li counter electrode: R_ct,Li = RT/(F I0_Li) with the foil's own double layer, a second, smaller and
          faster arc (the foil's SEI-covered surface has far less capacitance than the high-area host);
        * linear rest: R0, the SEI/electrolyte polarisation R1 as a transmissive Warburg with tau = 3 tau1 (its
          low-frequency limit is the RC the time domain uses) and, when no Li is on the working electrode, the
          host's slab diffusion (tau_d = L^2/D(x)) into its intercalation capacitance Q/|dU/dx| at the surface
          lithiation (the same spectral solution the time domain uses; a bare capacitor without diffusion).

        The interfaces are in series (a Voigt chain) rather than nested Randles circuits: the diffusion time
        constants are decades slower than the charge-transfer arcs, where the two forms coincide.
        """
        p = self.p
        foil = zel.Interface(self._li_foil_i0(), self._vt, p.li_double_layer_capacitance * self.area, p.li_cpe_alpha)
        working = zel.Interface(self._i0, self._vt, self._c_dl, p.cpe_alpha)
        r0, r1, tau_w = self._r0, self._r1, 3.0 * self._tau1
        host: tuple[float, float] | None = None
        if self.li <= 0.0:
            # V per unit lithiation, inside the table (round-off just past an end must not pick the steep extension)
            slope = abs(self._host.slope(min(max(self.surface_lithiation(), 0.0), 1.0)))
            tau_d = self._diffusion.tau / self._diffusion_speed(self.q_host)  # D at the present lithiation
            host = (self.host_capacity * SECONDS_PER_HOUR / max(slope, 1e-6), tau_d)

        def linear(w: np.ndarray) -> np.ndarray:
            z = r0 + zel.warburg_transmissive(w, r1, tau_w)
            return z if host is None else z + zel.diffusion_reflective(w, *host)

        return zel.EisCircuit((working, foil), linear)

    # ---- state ------------------------------------------------------------------------------------------

    def _state_vars(self) -> dict[str, Any]:
        return {
            "q_host": self.q_host,
            "li": self.li,
            "dead_li": self.dead_li,
            "v1": self.v1,
            "beyond_host_room": self.beyond_host_room,
            "cycle_plated": self.cycle_plated,
            "cycle_fresh_sei": self.cycle_fresh_sei,
            "host_modes": [float(a) for a in self.host_modes],
            "sei_share": self.sei_share,
        }

    def _load_state_vars(self, state: Mapping[str, Any]) -> None:
        self.q_host = float(state["q_host"])
        self.li = float(state["li"])
        self.dead_li = float(state["dead_li"])
        self.v1 = float(state["v1"])
        self.beyond_host_room = bool(state["beyond_host_room"])
        # states saved before CE had a history: no plating cycle open, the once-only SEI counted as paid
        self.cycle_plated = float(state.get("cycle_plated", 0.0))
        self.cycle_fresh_sei = float(state.get("cycle_fresh_sei", 0.0))
        self._refresh_dead_li()
        # states saved before the host had diffusion and SEI: a relaxed host, SEI not yet formed
        self.host_modes = np.array(state.get("host_modes", self._diffusion.zero()), dtype=float)
        self.sei_share = float(state.get("sei_share", 0.0))


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
        host_sei_capacity=Param(
            0.2, "Ah/m^2", "0.02 mAh/cm^2: no CNT, far less surface for the first-cycle SEI (assumption)", 0.0
        ),
    )


class LiCuCell(LiHostCell):
    """Li | bare Cu foil: no host to lithiate, no room for Li, larger nucleation overpotential, lower CE."""

    type_name = "li-cu"

    def _ocv_window(self) -> tuple[float, float, str]:
        """A mixed potential anywhere from 0 V to the Cu dissolution onset; above 3 V the Cu surface sits a little
        further up its steep capacitive extension (less reduced surface charge), which the first discharge passes."""
        return 0.0, self.p.mixed_potential_max, "Cu rests at a mixed potential and dissolves above mixed_potential_max"

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
        ce=Param(
            0.96,
            "1",
            "bare Cu at 1 mA/cm^2, 1 mAh/cm^2 per cycle before dead Li builds up: the seed's Fig. S7 starts at "
            "~95-97 % (carbonate electrolytes report 85-95 %, ethers 95-99 %)",
            0.0,
            1.0,
        ),
        ce_current_exponent=Param(
            0.5,
            "1",
            "loss ~ sqrt(j): the surface per Ah of Li on a planar substrate scales with the nucleus density, which "
            "rises steeply with the plating overpotential (Pei et al. 2017); CE falls with current density as "
            "Li||Cu studies report (Adams et al. 2018; assumption for the exponent)",
            0.0,
            2.0,
        ),
        first_plating_sei=Param(
            0.3,
            "Ah/m^2",
            "0.03 mAh/cm^2 SEI on the first Li plated on bare Cu: ~30 nm of SEI (~0.005 mAh/cm^2 per cm^2 of "
            "Li surface) on a deposit with ~5x the geometric area; later deposits grow inside the old SEI shells "
            "(assumption), so only the first cycle pays it",
            0.0,
        ),
        dead_li_loss_growth=Param(
            0.045,
            "1/(Ah/m^2)",
            "0.45 per mAh/cm^2 of dead Li: on bare Cu the dead Li forms a porous, high-surface layer that raises the "
            "SEI loss every cycle; calibrated to the seed's Fig. S7 (CE falling from ~96 % to below ~88 % over "
            "100 cycles at 1 mA/cm^2, 1 mAh/cm^2)",
            0.0,
        ),
        dead_li_ohmic_growth=Param(
            1e-5,
            "ohm m^2/(Ah/m^2)",
            "1 ohm cm^2 per mAh/cm^2 of dead Li: the porous dead-Li/SEI layer on Cu lengthens the ionic path "
            "(overpotentials of Li||Cu cells grow by tens of mV over ~100 cycles; Lu et al. 2015, Chen et al. 2017)",
            0.0,
        ),
        dead_li_polarisation_growth=Param(
            1.5e-5,
            "ohm m^2/(Ah/m^2)",
            "1.5 ohm cm^2 per mAh/cm^2 of dead Li: mass transport through the tortuous dead-Li layer (Chen et al. "
            "2017; assumption for the size)",
            0.0,
        ),
        nucleation_overpotential=Param(0.050, "V", "Cu: 30-60 mV reported at 0.5 mA/cm^2", 0.0),
        mixed_potential_max=Param(
            3.5,
            "V",
            "highest rest potential of Cu vs Li: Cu has no Li couple, so its OCV is a mixed potential of trace "
            "reactions (typically 2.5-3.3 V, the library cell says 3.0 V); above ~3.5 V (Cu+/Cu at +0.52 V vs SHE, "
            "Li+/Li at -3.04 V) Cu itself dissolves",
            0.1,
        ),
        host_diffusion_length=Param(0.0, "m", "a Cu foil stores no Li: no solid-state diffusion", 0.0),
        host_sei_capacity=Param(
            0.0, "Ah/m^2", "no separate SEI wave: the small host_capacity of Cu already stands for its SEI charge", 0.0
        ),
    )


@functools.lru_cache(maxsize=64)
def _host_ocv(pristine: float, w1: float, w2: float, u1: float, u2: float, width: float) -> TabulatedCurve:
    """Host potential vs lithiation fraction, by inverting the sigmoid-sum x(U) on a fine potential grid.

    Cached on the numbers it depends on: a simulated instrument restores a cell's state several times per step
    (each restore re-runs ``_setup``), and the table is the same every time."""
    u = np.linspace(0.0, pristine, 4001)
    w_bg = max(1.0 - w1 - w2, 1e-3)

    def x_of(uu: np.ndarray) -> np.ndarray:
        return (
            w1 / (1.0 + np.exp((uu - u1) / width))
            + w2 / (1.0 + np.exp((uu - u2) / width))
            + w_bg * (pristine - uu) / pristine
        )

    x = x_of(u)
    x = (x - x[-1]) / (x[0] - x[-1])  # 1 at 0 V, 0 at the pristine OCV
    # x falls with u: reverse to get an increasing abscissa; drop repeats where the sigmoids saturate
    xs, us = x[::-1], u[::-1]
    keep = np.concatenate([[True], np.diff(xs) > 1e-12])
    return TabulatedCurve(xs[keep], us[keep], slope_lo=-50.0, slope_hi=-50.0, resolution=8001)


@dataclass(frozen=True, slots=True)
class _PlatingLoss:
    """Li lost to dead Li and SEI (Ah) against the charge plated in one step.

    Over the charge P plated in a cycle so far, L(P) = k (a P + s P/(P + qc)) + f P/(P + qf); a step that
    starts at P = p0 and plates p loses L(p0 + p) - L(p0). dL/dP <= 0.9, so active Li grows while plating.
    """

    k: float  # loss factor: (j/j_ref)^n times the dead-Li factor
    a: float  # loss per Ah plated (1)
    s: float  # surface SEI of a fully grown cycle deposit (Ah)
    qc: float  # charge over which a cycle's deposit creates its surface (Ah)
    f: float  # once-only SEI of a never-plated surface still to pay in this cycle (Ah)
    qf: float  # charge over which the first deposit covers the substrate (Ah)
    p0: float  # charge plated earlier in this cycle (Ah)

    def cycle_loss(self, p: np.ndarray | float) -> np.ndarray | float:
        return self.k * (self.a * p + self.s * p / (p + self.qc)) + self.f * p / (p + self.qf)

    def __call__(self, plated: np.ndarray | float) -> np.ndarray | float:
        return self.cycle_loss(self.p0 + plated) - self.cycle_loss(self.p0)

    def rate(self) -> float:
        """dL/dP at the step start: the share of the current lost when this step starts plating."""
        return (
            self.k * (self.a + self.s * self.qc / (self.p0 + self.qc) ** 2)
            + self.f * self.qf / (self.p0 + self.qf) ** 2
        )


class _HalfCellPath(ConstantCurrentPath):
    """A half cell's trajectory under one constant current, from the cell's state when the path is created.

    Discharge: host lithiation (and its first-cycle SEI) up to a known fill charge, then plating, whose Li loss
    (:class:`_PlatingLoss`), nucleation dip and outer-face plateau shift are closed forms in the charge plated.
    Charge: stripping the active Li, then delithiating the host. The voltage is a sum of terms (equilibrium,
    static kinetics, polarisation RC, nucleation, outer face), each vectorised over the sample times.
    """

    __slots__ = (
        *("_a0", "_cell", "_drive", "_host_fill", "_li0", "_q0", "_rate", "_speed", "_static", "_theta0", "_v10"),
        *("_dead0", "_loss", "_nuc", "_outer", "_r1", "_tau1"),
        "current",
    )

    def __init__(self, cell: LiHostCell, current: float) -> None:
        self._cell = cell
        self.current = current
        # the state this path starts from, frozen: the path stays valid after the cell moves on
        self._q0, self._li0, self._v10 = cell.q_host, cell.li, cell.v1
        self._rate = abs(current) / SECONDS_PER_HOUR  # Ah/s
        # the working electrode's kinetics, the Li foil counter electrode's (the cell voltage is WE - CE: while the
        # WE plates the foil strips, both pull the same way) and the ohmic drop; with the foil in the DC voltage
        # too, the EIS low-frequency resistance is the small-current DC polarisation
        self._static = (float(butler_volmer_overpotential(current, cell._i0, cell._vt))
                        + float(cell.counter_electrode_overpotential(current)) + current * cell._r0)
        # resistances, nucleation and losses of the start state (dead Li moves them by < 1 % within a step)
        self._r1, self._tau1, self._nuc, self._dead0 = cell._r1, cell._tau1, cell._nuc_now, cell.dead_li
        self._loss = cell._plating_loss(current, self._li0 <= 0.0) if current < 0.0 else None
        self._outer = self._outer_plateau_shift()
        self._a0, self._theta0 = cell.host_modes, cell.sei_share  # diffusion modes, SEI share (never mutated)
        self._speed = cell._diffusion_speed(self._q0, 0.5 * float(np.sum(self._a0)))  # D between mean and surface
        self._host_fill = self._fill()
        self._drive = self._host_drive()

    def _outer_plateau_shift(self) -> float:
        """eta_out - eta_in (V, < 0) of plating on the host's outer face instead of in its pores; 0 without room."""
        c = self._cell
        if self.current >= 0.0 or c.host_room <= 0.0:
            return 0.0
        outer = butler_volmer_overpotential(self.current, c._i0_outer, c._vt)
        return float(outer - butler_volmer_overpotential(self.current, c._i0, c._vt))

    def _outer_share(self, plated: np.ndarray) -> np.ndarray:
        """Share (0..1) of the plating that has moved to the outer face, from the Li in the host's pores."""
        c = self._cell
        excess = np.maximum(self._li0 + self._dead0 + plated - c.host_room, 0.0)
        return -np.expm1(-excess / (c.p.over_plating_width * c.area))

    def _t_room(self) -> float:
        """Step time (s) at which the Li in the host reaches its room (inf if it does not while plating)."""
        c = self._cell
        free = c.host_room - self._li0 - self._dead0
        if self.current >= 0.0 or c.host_room <= 0.0:
            return math.inf
        return (self._host_fill + max(free, 0.0)) / self._rate

    def _fill(self) -> float:
        """Charge (Ah) a discharge puts into the host before Li plates: its free capacity and the SEI still to form."""
        c = self._cell
        if self.current >= 0.0 or self._li0 > 0.0:
            return 0.0
        sei_left = c.sei_capacity * (c._sei.final_share(self._theta0) - self._theta0)
        return max(c.host_capacity - self._q0, 0.0) + sei_left

    def _host_drive(self) -> tuple[float, float, float]:
        """(rate before, switch time, rate after) of the host's lithiation (fraction/s) that drives its diffusion."""
        r = self._rate / self._cell.host_capacity
        if self.current < 0:
            return r, self._host_fill / self._rate, 0.0  # lithiation, then plating on a full host
        if self.current > 0:
            return 0.0, self._li0 / self._rate, -r  # stripping the plated Li, then delithiation
        return 0.0, math.inf, 0.0

    def _surface(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(surface lithiation fraction, reduced SEI share) at times t: what the interface potential follows."""
        c = self._cell
        charge = self._rate * t
        if self.current < 0:
            into_host = np.minimum(charge, self._host_fill)
        elif self.current > 0:
            into_host = -np.maximum(charge - self._li0, 0.0)
        else:
            into_host = np.zeros_like(charge)
        offset = c._diffusion.offset(self._a0, *self._drive, t, self._speed)
        total = (self._q0 + into_host) / c.host_capacity + offset + c._sei.rho * self._theta0
        return c._sei.solve(total, self._theta0)

    def expected_duration(self) -> float | None:
        """A charge ends once the plated Li and then the host are used up: sizes the engine's first sample chunk,
        so that the host's diffusion modes are not evaluated far past the cut-off."""
        if self.current > 0.0:
            return (self._li0 + max(self._q0, 0.0)) / self._rate
        return None

    def feature_times(self, fine: bool) -> np.ndarray:
        """200 points across each host-(de)lithiation stretch and across the nucleation dip."""
        c = self._cell
        if self.current == 0.0:
            return np.empty(0)
        rate = self._rate
        host = np.linspace(0.0, c.host_capacity / rate, 201)[1:]
        if self.current < 0:
            t_room = self._host_fill / rate
            li_rate = (1.0 - self._loss.rate()) * rate  # type: ignore[union-attr]
            dip = np.linspace(0.0, 5.0 * c._nuc_decay / (li_rate + 1e-300), 401)[1:]
            t_over = self._t_room()
            over = t_over + np.linspace(0.0, 5.0 * c.p.over_plating_width * c.area / rate, 101)
            return np.concatenate([host[host < t_room], [t_room], t_room + dip, over[np.isfinite(over)]])
        t_empty = self._li0 / rate
        return np.concatenate([[t_empty], t_empty + host])

    def _states(
        self, t: np.ndarray, surface: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(host lithiation Ah, active Li Ah, plated-this-step Ah) at times t (``surface``: _surface(t) if known)."""
        c = self._cell
        q0, li0 = self._q0, self._li0
        charge = self._rate * t
        if surface is not None:
            theta = surface[1]
        else:  # once all of the SEI has formed its share stays: no surface solve needed
            theta = self._theta0 if c._sei.complete(self._theta0) else self._surface(t)[1]
        q0 = q0 - c.sei_capacity * (theta - self._theta0)  # charge that went into the SEI is not in the host
        if self.current < 0:
            room = self._host_fill
            plated = np.maximum(charge - room, 0.0)
            return q0 + np.minimum(charge, room), li0 + plated - self._loss(plated), plated  # type: ignore[misc]
        if self.current > 0:
            after = np.maximum(charge - li0, 0.0)
            return q0 - after, np.maximum(li0 - charge, 0.0), np.zeros_like(charge)
        return q0 + np.zeros_like(charge), np.full_like(charge, li0), np.zeros_like(charge)

    def voltage(self, t: np.ndarray) -> np.ndarray:
        c = self._cell
        _, li, plated = self._states(t)
        # the interface sees the surface lithiation; a saturated surface sits at 0 V, where Li plating begins.
        # Where Li covers the host the potential is Li's: the surface is evaluated only where it matters
        host = li <= 0.0
        if host.all():
            e_eq = c._host(np.minimum(self._surface(t)[0], 1.0))
        else:
            e_eq = np.zeros(np.shape(t))
            if host.any():
                e_eq[host] = c._host(np.minimum(self._surface(t[host])[0], 1.0))
        v1 = self.current * self._r1 + (self._v10 - self.current * self._r1) * np.exp(-t / self._tau1)
        v = e_eq + self._static + v1
        if self.current < 0:
            v = v - c._nucleation(li, self._nuc)
            if self._outer:
                v = v + self._outer * self._outer_share(plated)
        return v

    def commit(self, t: float) -> None:
        c = self._cell
        surface = self._surface(np.array([t]))
        q_host, li, plated = (float(x[0]) for x in self._states(np.array([t]), surface))
        c.host_modes = c._diffusion.amplitudes(self._a0, *self._drive, t, self._speed)
        c.sei_share = float(surface[1][0])
        c.v1 = self.current * self._r1 + (self._v10 - self.current * self._r1) * float(np.exp(-t / self._tau1))
        if self._loss is not None:
            c.dead_li = self._dead0 + float(self._loss(plated))
            c.cycle_plated = self._loss.p0 + plated
            c.cycle_fresh_sei = self._loss.f
            c._refresh_dead_li()
        # beyond an empty host q_host goes negative: the steep OCV extension there stands for side reactions.
        # No clamping, so that the state always equals the path the step was solved on (and charge is conserved)
        c.q_host = q_host
        c.li = li
        self._check_room(t)

    def _check_room(self, t: float) -> None:
        """Flag Li grown beyond the host's pores, with one ``over-plating`` event when it first happens."""
        c = self._cell
        inside = c.li + c.dead_li
        if c.host_room <= 0.0 or c.beyond_host_room or inside <= c.host_room:
            return
        c.beyond_host_room = True
        if c._over_plating_announced:  # a re-run of the same step from a restored state: already reported
            return
        c._over_plating_announced = True
        per_cm2 = 1e3 / (c.area * 1e4)  # Ah -> mAh/cm^2
        t_room = min(self._t_room(), t)
        c._raise_event(
            "over-plating",
            f"Li plated beyond the host's room from step time {t_room:.0f} s: {inside * per_cm2:.3f} mAh/cm^2 of Li "
            f"on the host by the end of the step ({c.li * per_cm2:.3f} active + {c.dead_li * per_cm2:.3f} dead) "
            f"against a pore room of {c.host_room * per_cm2:.3f} mAh/cm^2 ({c.thickness * 1e6:g} um x porosity "
            f"{c.p.host_porosity:g} x 2061 mAh/cm^3); the excess plates on the host's outer face at a higher "
            "overpotential",
            t_room,
        )
