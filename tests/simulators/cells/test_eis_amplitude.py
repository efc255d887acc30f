"""EIS realism: the Li counter electrode's arc in half cells, and what a finite amplitude does to a spectrum.

A symmetric Butler-Volmer interface, I = 2 I0 sinh(eta/(2 V_T)), under a voltage sine of amplitude dV passes a
fundamental current 4 I0 I_1(a), a = dV/(2 V_T) (sinh(a sin t) = 2 sum_{k odd} +-I_k(a) sin kt), so the charge-
transfer resistance an analyser reads is R_ct a/(2 I_1(a)); under a current sine dI it reads R_ct c_1(b)/b with
b = dI/(2 I0) and c_1 the fundamental of asinh(b sin t). The factors are computed here by quadrature, independently
of the model's closed forms.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.special import iv

from protocols.program import EisStep
from simulators.cells import MODEL_TYPES, build_model
from simulators.cells import impedance as zel

from .helpers import AREA, MA_PER_CM2, MAH_PER_CM2, charge, discharge, until
from .kk import lin_kk_residuals

VT = 8.314462618 * 300.15 / 96485.33212
R_CT = VT / (10.0 * AREA)  # 1 mA/cm^2 exchange current on the 12 mm disk: 22.9 ohm
THETA = np.linspace(0.0, 2 * np.pi, 200001)[:-1]


def potentiostatic_factor(volts: float) -> float:
    a = volts / (2 * VT)
    return a / (2 * iv(1, a))


def galvanostatic_factor(amps: float, i0: float) -> float:
    b = amps / (2 * i0)
    return 2 * float(np.mean(np.arcsinh(b * np.sin(THETA)) * np.sin(THETA))) / b


def plated(model: str, params: dict[str, float] | None = None):
    """A half cell with 1 mAh/cm^2 of Li on its working electrode (both electrodes are then Li metal)."""
    cell = build_model(model, params, area=AREA)
    cell.run_step(discharge(0.5 * MA_PER_CM2, until("voltage", "<=", 0.0)))
    cell.run_step(discharge(0.5 * MA_PER_CM2, until("capacity", ">=", 1.0 * MAH_PER_CM2)))
    return cell


def eis(cell, amplitude: float, mode: str = "potentio", f_start: float = 1e5, f_end: float = 0.1):
    step = EisStep(index=1, mode=mode, f_start=f_start, f_end=f_end, points_per_decade=10, amplitude=amplitude)
    r = cell.run_step(step)
    return r.frequency, r.z_real + 1j * r.z_imag


def fit(circuit: str, guess: list[float], f: np.ndarray, z: np.ndarray) -> np.ndarray:
    circuits = pytest.importorskip("impedance.models.circuits")
    model = circuits.CustomCircuit(circuit, initial_guess=guess)
    model.fit(f, z)
    return np.asarray(model.parameters_)


@pytest.mark.parametrize("model", sorted(MODEL_TYPES))
def test_kramers_kronig_residuals_stay_below_1_percent_at_5_mV(model: str) -> None:
    cell = build_model(model, area=AREA, capacity=2e-3, thickness=45e-6)
    if model.startswith("ncm"):
        cell.run_step(charge(0.2e-3, until("capacity", ">=", 1e-3)))
    f, z = eis(cell, 0.005, f_start=2e4)
    assert lin_kk_residuals(f, z).max() < 0.01


def test_the_half_cell_shows_the_working_and_the_counter_electrode_arcs() -> None:
    cell = plated("li-host")
    f, z = eis(cell, 0.005)
    r0, r1 = cell._r0, cell._r1
    # R0 - working electrode (host double layer, ~60 Hz) - Li foil (~3 kHz) - electrolyte/SEI finite Warburg
    params = fit("R0-p(R1,CPE1)-p(R2,CPE2)-Ws0", [3.0, 20.0, 1e-4, 0.85, 20.0, 5e-6, 0.9, 5.0, 90.0], f, z)
    assert params[0] == pytest.approx(r0, rel=0.05)
    assert params[1] == pytest.approx(R_CT, rel=0.05)  # working electrode, 1 mA/cm^2 on the plated host
    assert params[4] == pytest.approx(R_CT, rel=0.05)  # the Li foil counter electrode, 1 mA/cm^2
    assert params[7] / math.sqrt(params[8]) == pytest.approx(r1 / math.sqrt(3 * 30.0), rel=0.05)  # the 45 deg line
    # the literal two-arc circuit, above the Warburg's frequencies, finds both resistances too
    high = f >= 5.0
    params = fit("R0-p(R1,CPE1)-p(R2,CPE2)", [3.0, 20.0, 1e-4, 0.85, 20.0, 5e-6, 0.9], f[high], z[high])
    assert params[1] == pytest.approx(R_CT, rel=0.05) and params[4] == pytest.approx(R_CT, rel=0.05)


def test_the_counter_electrode_arc_is_thermally_activated_like_li_plating() -> None:
    cold = build_model("li-cu", area=AREA)._eis_circuit().interfaces[1]
    hot = build_model("li-cu", area=AREA, temperature=333.15)._eis_circuit().interfaces[1]
    ea = build_model("li-cu").p.exchange_current_activation_energy
    ratio = (hot.resistance / hot.vt) / (cold.resistance / cold.vt)  # 1/I0 at 60 and 27 degC
    assert ratio == pytest.approx(math.exp(ea / 8.314462618 * (1 / 333.15 - 1 / 300.15)), rel=1e-9)


def bare_interface_cell():
    """A plated Li|Cu cell reduced to its working electrode: no ohmic drop or Warburg beyond the ~0.1 ohm the first
    plating's dead Li adds, a negligible Li foil arc, so the sine falls across one 1 mA/cm^2 Butler-Volmer
    interface at every frequency."""
    return plated(
        "li-cu",
        {"ohmic_resistance": 0.0, "polarisation_resistance": 0.0, "exchange_current": 10.0,
         "li_exchange_current": 1e6},
    )  # fmt: skip


@pytest.mark.parametrize("volts", [0.05, 0.1])
def test_a_large_potentiostatic_amplitude_lowers_the_fitted_charge_transfer_resistance_by_the_bessel_factor(
    volts: float,
) -> None:
    cell = bare_interface_cell()
    f, small = eis(cell, 0.001)
    _, large = eis(cell, volts)
    r_small = fit("R0-p(R1,CPE1)", [0.01, 20.0, 1e-5, 0.85], f, small)[1]
    r_large = fit("R0-p(R1,CPE1)", [0.01, 20.0, 1e-5, 0.85], f, large)[1]
    assert r_small == pytest.approx(R_CT, rel=1e-3)
    factor = potentiostatic_factor(volts)  # 0.65 at 100 mV
    assert r_large / r_small == pytest.approx(factor, rel=0.01)
    assert factor == pytest.approx(zel.bv_potentiostatic_factor(volts, VT), rel=1e-9)


def test_a_large_galvanostatic_amplitude_lowers_the_low_frequency_resistance_by_the_asinh_factor() -> None:
    cell = bare_interface_cell()
    amps = 2 * 10.0 * AREA  # 2 mA/cm^2 peak through a 1 mA/cm^2 interface
    _, z = eis(cell, amps, mode="galvano", f_start=1.0, f_end=1e-4)
    factor = galvanostatic_factor(amps, 10.0 * AREA)
    # 0.1 mHz: the double layer carries nothing; the few 0.1 ohm of dead-Li resistance (linear) add on top
    assert z[-1].real - (cell._r0 + cell._r1) == pytest.approx(R_CT * factor, rel=1e-3)
    assert factor == pytest.approx(zel.bv_galvanostatic_factor(amps, 10.0 * AREA), rel=1e-6)


def test_a_large_amplitude_distorts_the_default_half_cell_spectrum() -> None:
    cell = plated("li-host")
    f, small = eis(cell, 0.005)
    _, large = eis(cell, 0.2)
    assert np.max(np.abs(large / small - 1)) > 0.05
    assert large.real[-1] < small.real[-1]  # both interfaces pass more current than the linear response says
    assert lin_kk_residuals(f, small).max() < 1e-3


def test_the_harmonic_balance_matches_a_time_domain_integration() -> None:
    """R0 + (Butler-Volmer || C) driven by 150 mV at 100 Hz, integrated to its periodic state: the fundamental."""
    r0, i0, c, freq, dv = 20.0, 1e-3, 2e-5, 100.0, 0.15
    w = 2 * np.pi * freq
    circuit = zel.EisCircuit((zel.Interface(i0, VT, c, 1.0),), lambda om: np.full(np.shape(om), r0, dtype=complex))

    def rhs(t: float, y: np.ndarray) -> list[float]:
        i = (dv * math.cos(w * t) - y[0]) / r0
        return [(i - 2 * i0 * math.sinh(y[0] / (2 * VT))) / c]

    periods = 12  # the 0.4 ms RC settles within a period
    sol = solve_ivp(rhs, (0, periods / freq), [0.0], method="Radau", rtol=1e-11, atol=1e-14, dense_output=True,
                    max_step=1 / (200 * freq))  # fmt: skip
    t = (periods - 1 + np.arange(4096) / 4096) / freq
    current = (dv * np.cos(w * t) - sol.sol(t)[0]) / r0
    z_time = (dv * 4096 / 2) / np.fft.rfft(current)[1]
    z_balance = zel.first_harmonic_impedance(circuit, np.array([w]), dv)[0]
    assert z_balance == pytest.approx(z_time, rel=1e-8)
    assert abs(z_balance / circuit.small_signal(np.array([w]))[0] - 1) > 0.05  # a real effect at 150 mV


def test_an_eis_step_reports_the_spectrum_at_its_amplitude() -> None:
    cell = plated("li-cu")
    f, z = eis(cell, 0.1)
    np.testing.assert_allclose(z, cell.measured_impedance(f, 0.1), rtol=1e-12)
    assert not np.allclose(z, cell.impedance(f), rtol=0.01)
    linear = build_model("blocking", area=AREA, thickness=45e-6)  # a linear cell is the same at any amplitude
    np.testing.assert_allclose(eis(linear, 0.5)[1], linear.impedance(f), rtol=1e-12)
