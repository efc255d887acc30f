"""P7 physics: between ion-blocking electrodes the ionic current decays by chemical diffusion across the film.

The reference formulas are rebuilt here independently of the model (roots by scipy's brentq, series summed to
convergence): the film is the Jamnik-Maier line Z = R_par + R_w tanh(x)/x, x = (pi/2) sqrt(j w tau),
tau = L^2/(pi^2 D~), R_par = Re Ri/(Re + Ri), R_w = Re^2/(Re + Ri). Under a DC voltage step V its current is

    I(t) = (V/Re) (1 + eps(t)),  eps(t) = sum_m 2 (1 + b)/(1 + b + b^2 y_m^2) exp(-4 y_m^2 t/(pi^2 tau))

with b = R_par/R_w = sigma_e/sigma_i and y_m the roots of tan y = -b y in ((m - 1/2) pi, m pi): the residues of
V/(s Z(s)). The electronic conductivity read as L/(A V/I(t)) is (1 + eps(t)) sigma_e.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import brentq

from protocols.program import CaStep, RecordRule, Termination
from simulators.cells import build_model

from .helpers import charge, rest, until

AREA, THICKNESS = 1.131e-4, 45e-6
SIGMA_E, SIGMA_I, D_CHEM = 2e-3, 1e-2, 3e-13  # S/m, S/m, m^2/s: the documented defaults
TAU = THICKNESS**2 / (math.pi**2 * D_CHEM)  # 684 s
RE = THICKNESS / (SIGMA_E * AREA)
RI = THICKNESS / (SIGMA_I * AREA)
R_PAR = RE * RI / (RE + RI)
R_W = RE**2 / (RE + RI)
GAS = 8.314462618


def predicted_error(t: float, shape: float = SIGMA_E / SIGMA_I, tau: float = TAU, terms: int = 200) -> float:
    """eps(t) of the module docstring, roots by brentq one at a time."""
    total = 0.0
    for m in range(1, terms + 1):
        y = brentq(lambda x: math.sin(x) + shape * x * math.cos(x), (m - 0.5) * math.pi, m * math.pi, xtol=1e-15)
        total += 2 * (1 + shape) / (1 + shape + shape**2 * y**2) * math.exp(-4 * y**2 * t / (math.pi**2 * tau))
    return total


def dc_step(cell, hold: float, every: float = 1.0, volts: float = 0.05):
    step = CaStep(index=1, voltage=volts, vs_ocv=True, until=(Termination(quantity="time", op=">=", value=hold),),
                  record=RecordRule(every_s=every))  # fmt: skip
    return cell.run_step(step)


def blocking(**params: float):
    return build_model("blocking", params or None, area=AREA, thickness=THICKNESS)


def electronic_conductivity(result, volts: float = 0.05) -> float:
    return THICKNESS / (AREA * volts / result.current[-1])


def test_the_time_constant_is_l_squared_over_pi_squared_d() -> None:
    cell = blocking()
    assert cell.tau == pytest.approx(TAU, rel=1e-12)
    assert 10 * 60 < TAU < 12 * 60  # about 11 min, so that P7's 1 h hold is 5 tau
    assert cell.dc_relaxation().shape == pytest.approx(SIGMA_E / SIGMA_I, rel=1e-12)


def test_electronic_conductivity_after_5_tau_is_within_1_percent() -> None:
    result = dc_step(blocking(), 5 * TAU)
    assert electronic_conductivity(result) == pytest.approx(SIGMA_E, rel=0.01)
    assert predicted_error(5 * TAU) < 1e-5  # what is left of the ionic current after 5 tau


def test_electronic_conductivity_after_half_tau_is_off_by_the_series() -> None:
    result = dc_step(blocking(), 0.5 * TAU)
    eps = predicted_error(0.5 * TAU)
    assert 0.3 < eps < 0.5  # 39 %: far from settled
    assert electronic_conductivity(result) == pytest.approx(SIGMA_E * (1 + eps), rel=1e-3)
    assert float(blocking().dc_relaxation().error(0.5 * TAU)[0]) == pytest.approx(eps, rel=1e-9)


@pytest.mark.parametrize("sigmas", [(2e-3, 1e-2), (5e-2, 5e-3)], ids=["ionic-majority", "electronic-majority"])
def test_the_whole_dc_current_follows_the_series(sigmas: tuple[float, float]) -> None:
    sigma_e, sigma_i = sigmas
    cell = blocking(electronic_conductivity=sigma_e, ionic_conductivity=sigma_i)
    result = dc_step(cell, 2 * TAU, every=0.25)
    re = THICKNESS / (sigma_e * AREA)
    re_ri = re * THICKNESS / (sigma_i * AREA) / (re + THICKNESS / (sigma_i * AREA))
    assert result.current[0] == pytest.approx(0.05 / re_ri, rel=1e-9)  # the instantaneous response, V/(Re||Ri)
    assert np.all(np.diff(result.current) <= 0)
    for t in (0.1 * TAU, 0.3 * TAU, TAU, 2 * TAU):
        k = int(np.argmin(np.abs(result.t - t)))
        expected = 0.05 / re * (1 + predicted_error(result.t[k], shape=sigma_e / sigma_i))
        assert result.current[k] == pytest.approx(expected, rel=3e-4)


def test_constant_current_charges_the_odd_harmonic_diffusion_modes() -> None:
    """Galvanostatic: V(t) = I (R_par + R_w (1 - sum 8/((2m+1)^2 pi^2) exp(-(2m+1)^2 t/tau)))."""
    cell = blocking()
    i = 1e-5
    result = cell.run_step(charge(i, until("time", ">=", 3 * TAU), every=1.0))
    k = 2 * np.arange(5000) + 1
    for t in (0.01 * TAU, 0.2 * TAU, TAU, 3 * TAU):
        n = int(np.argmin(np.abs(result.t - t)))
        modes = np.sum(8 / (k**2 * math.pi**2) * np.exp(-(k**2) * result.t[n] / TAU))
        assert result.voltage[n] == pytest.approx(i * (R_PAR + R_W * (1 - modes)), rel=1e-6)


def test_the_film_relaxes_after_the_dc_step_by_the_same_diffusion() -> None:
    cell = blocking()
    dc_step(cell, 600.0)
    after = cell.run_step(rest(until("time", ">=", 5 * TAU), every=5.0))
    assert after.voltage[0] > 0.01  # the stoichiometry gradient holds a voltage once the current stops
    assert 0 < after.voltage[-1] < 0.01 * after.voltage[0]  # at open circuit the modes decay as exp(-t/tau) at most
    assert np.all(np.diff(after.voltage) <= 1e-15)


def test_eis_limits_are_re_at_dc_and_the_total_at_high_frequency() -> None:
    cell = blocking(contact_resistance=2.0)
    z = cell.impedance(np.array([1e-9, 1e4]))
    assert z[0].real == pytest.approx(2.0 + RE, rel=1e-6)
    assert z[1].real == pytest.approx(2.0 + R_PAR, rel=1e-3)


def test_eis_has_the_45_degree_warburg_of_chemical_diffusion() -> None:
    cell = blocking()
    f = np.logspace(-2, 0, 21)  # well above 1/(2 pi tau'), below the bulk dielectric arc
    z = cell.impedance(f)
    slope = -np.diff(z.imag) / np.diff(z.real)
    np.testing.assert_allclose(slope, 1.0, atol=0.02)
    np.testing.assert_allclose(np.angle(z - R_PAR, deg=True), -45.0, atol=1.0)
    # not an ideal semicircle + capacitor: the imaginary part stays finite at DC and the spectrum ends on the axis
    low = cell.impedance(np.array([1e-9]))[0]
    assert abs(low.imag) < 1e-5 * RE and low.real == pytest.approx(RE, rel=1e-6)


def test_eis_is_the_laplace_image_of_the_time_domain_modes() -> None:
    """The spectrum and the DC step come from one model: the modal RC sum equals the tanh form."""
    cell = blocking()
    f = np.logspace(-5, -1, 30)
    w = 2 * np.pi * f
    modes = cell._r_inst + np.sum(cell._r_modes / (1 + 1j * np.outer(w, cell._tau_modes)), axis=1)
    np.testing.assert_allclose(modes, cell.impedance(f), rtol=2e-4)


def test_conductivities_and_diffusion_are_arrhenius() -> None:
    cold, hot = blocking(), build_model("blocking", area=AREA, thickness=THICKNESS, temperature=333.15)
    t1, t2 = 300.15, 333.15
    expected_re = math.exp(5e3 / GAS * (1 / t2 - 1 / t1))
    assert hot.re / cold.re == pytest.approx(expected_re, rel=1e-12)
    assert hot.ri / cold.ri == pytest.approx(math.exp(34e3 / GAS * (1 / t2 - 1 / t1)), rel=1e-12)
    assert hot.tau / cold.tau == pytest.approx(math.exp(40e3 / GAS * (1 / t2 - 1 / t1)), rel=1e-12)


def test_state_mid_relaxation_survives_a_json_round_trip() -> None:
    a = blocking()
    dc_step(a, 300.0)
    saved = json.loads(json.dumps(a.state_dict()))
    b = blocking()
    b.load_state(saved)
    ra, rb = (c.run_step(rest(until("time", ">=", 600.0))) for c in (a, b))
    np.testing.assert_array_equal(ra.voltage, rb.voltage)
    assert a.state_dict() == b.state_dict()


def test_a_state_saved_by_the_double_layer_model_loads_as_a_settled_gradient() -> None:
    old = blocking().state_dict()
    old["state"] = {"v_c": 0.02}
    cell = blocking()
    cell.load_state(old)
    assert float(np.sum(cell.v_modes)) == pytest.approx(0.02, rel=1e-12)
