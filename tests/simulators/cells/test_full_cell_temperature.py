"""NCM622 | Li full cells at other temperatures: Arrhenius resistances, exchange currents and diffusion (issue 12)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.cells import build_model

from .helpers import AREA, charge, discharge, rest, until

Q = 2.2575e-3
R = 8.314462618  # J/(mol K)
F = 96485.33212  # C/mol
T27, T60 = 300.15, 333.15
HF = np.array([1e14])  # Hz: far above every interface arc, where only the ohmic resistance is left
ENERGIES = {  # J/mol, the documented defaults
    "ohmic": 20e3,
    "cathode_ct": 55e3,
    "anode": 60e3,
    "diffusion": 35e3,
}


def _ratio(energy: float, t: float, t_ref: float = T27) -> float:
    """R(t)/R(t_ref) of a resistance whose conductance is thermally activated with ``energy``."""
    return math.exp(energy / R * (1.0 / t - 1.0 / t_ref))


def _half_charged(temperature: float | None = None, params: dict | None = None):
    cell = build_model("ncm622-li", params, area=AREA, capacity=Q, temperature=temperature)
    cell.run_step(charge(0.1 * Q, until("capacity", ">=", 0.5 * Q)))
    cell.run_step(rest(until("time", ">=", 6 * 3600.0)))
    return cell


def test_ohmic_resistance_at_60_over_27_degc_is_the_arrhenius_factor() -> None:
    r27 = build_model("ncm622-li", area=AREA, capacity=Q).impedance(HF)[0].real
    r60 = build_model("ncm622-li", area=AREA, capacity=Q, temperature=T60).impedance(HF)[0].real
    assert r27 == pytest.approx(8e-4 / AREA, rel=1e-6)  # 8 ohm cm^2 on the 12 mm disk
    assert r60 / r27 == pytest.approx(math.exp(ENERGIES["ohmic"] / R * (1 / T60 - 1 / T27)), rel=1e-6)
    assert r60 / r27 == pytest.approx(0.4521, abs=1e-4)


def test_li_exchange_current_follows_its_activation_energy() -> None:
    """At the switch of a current step from rest only R0 and the Li anode's Butler-Volmer overpotential answer;
    with R0 from the high-frequency intercept the anode's exchange current comes out of the step exactly."""
    i0 = {}
    for t in (T27, T60):
        cell = _half_charged(t)
        r0 = cell.impedance(HF)[0].real
        current = 1.0 * Q
        ocv = cell.open_circuit_voltage()
        v0 = cell.run_step(discharge(current, until("time", ">=", 10.0), every=1.0)).voltage[0]
        eta = ocv - v0 - current * r0
        i0[t] = current / (2.0 * math.sinh(eta / (2.0 * R * t / F)))
    assert i0[T27] == pytest.approx(20.0 * AREA, rel=1e-6)  # 2 mA/cm^2 on the disk
    assert i0[T60] / i0[T27] == pytest.approx(1.0 / _ratio(ENERGIES["anode"], T60), rel=1e-6)


def test_every_activation_energy_is_applied_as_documented() -> None:
    """A cell at 60 degC behaves exactly like one at 60 degC whose four thermally activated parameters were
    scaled by hand by their Arrhenius factors and whose activation energies are zero: spectrum and trajectory."""
    hot = build_model("ncm622-li", area=AREA, capacity=Q, temperature=T60)
    scaled = build_model(
        "ncm622-li",
        {
            "ohmic_resistance": 8e-4 * _ratio(ENERGIES["ohmic"], T60),
            "cathode_ct_resistance": 1.2e-3 * _ratio(ENERGIES["cathode_ct"], T60),
            "anode_exchange_current": 20.0 / _ratio(ENERGIES["anode"], T60),
            "diffusion_time": 6480.0 * _ratio(ENERGIES["diffusion"], T60),
            "ohmic_activation_energy": 0.0,
            "cathode_ct_activation_energy": 0.0,
            "anode_activation_energy": 0.0,
            "diffusion_activation_energy": 0.0,
        },
        area=AREA,
        capacity=Q,
        temperature=T60,
    )
    freqs = np.logspace(5, -3, 41)
    for cell in (hot, scaled):
        cell.run_step(charge(0.5 * Q, until("voltage", ">=", 4.3), every=60.0))
    np.testing.assert_allclose(hot.impedance(freqs), scaled.impedance(freqs), rtol=1e-9)
    a = hot.run_step(discharge(2 * Q, until("voltage", "<=", 3.0), every=10.0))
    b = scaled.run_step(discharge(2 * Q, until("voltage", "<=", 3.0), every=10.0))
    np.testing.assert_allclose(a.voltage, b.voltage, rtol=0, atol=1e-9)


def test_a_warm_cell_polarises_less_and_delivers_more_at_2c() -> None:
    out = {}
    for t in (T27, T60):
        cell = build_model("ncm622-li", area=AREA, capacity=Q, temperature=t)
        cell.run_step(charge(0.1 * Q, until("voltage", ">=", 4.3)))
        cell.run_step(rest(until("time", ">=", 6 * 3600.0)))
        ocv = cell.open_circuit_voltage()
        r = cell.run_step(discharge(2 * Q, until("voltage", "<=", 3.0), every=10.0))
        out[t] = (ocv - r.voltage[1], -r.capacity[-1] / Q)
    (drop27, cap27), (drop60, cap60) = out[T27], out[T60]
    assert drop60 < 0.6 * drop27
    assert cap60 > cap27 + 0.05  # faster solid diffusion: the surface reaches the lithiated end later


def test_set_temperature_mid_life_keeps_the_charge_state_and_changes_the_resistances() -> None:
    cell = _half_charged()
    state = cell.state_dict()["state"]
    ocv = cell.open_circuit_voltage()
    z27 = cell.impedance(np.logspace(4, -2, 25))
    cell.set_temperature(T60)
    assert cell.state_dict()["state"] == state  # charge, losses, Li inventory, polarisation: all kept
    assert cell.p.temperature == T60
    assert cell.open_circuit_voltage() == ocv
    r60 = cell.impedance(HF)[0].real
    fresh60 = build_model("ncm622-li", area=AREA, capacity=Q, temperature=T60).impedance(HF)[0].real
    assert r60 == pytest.approx(fresh60, rel=1e-6)
    assert r60 / (8e-4 / AREA) == pytest.approx(_ratio(ENERGIES["ohmic"], T60), rel=1e-6)
    # charging on from the same state: the charge counts on, the cell reaches 4.3 V with the expected total
    up = cell.run_step(charge(0.1 * Q, until("voltage", ">=", 4.3)))
    assert cell.s == pytest.approx(state["s"] + 0.998 * up.capacity[-1] / Q, rel=1e-12)
    cell.set_temperature(T27)
    cell.load_state({**cell.state_dict(), "state": state})
    np.testing.assert_allclose(cell.impedance(np.logspace(4, -2, 25)), z27, rtol=1e-12)
