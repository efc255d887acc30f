"""Impedance: every model's spectrum is the analytic circuit, Kramers-Kronig consistent, and state dependent."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.program import EisStep
from simulators.cells import MODEL_TYPES, build_model

from .helpers import AREA, MA_PER_CM2, MAH_PER_CM2, charge, discharge, until
from .kk import lin_kk_residuals

FREQ = np.logspace(np.log10(2e4), -1, 41)  # P5: 20 kHz to 0.1 Hz
VT = 8.314462618 * 300.15 / 96485.33212


def _eis_step() -> EisStep:
    return EisStep(index=1, f_start=2e4, f_end=0.1, points_per_decade=10, amplitude=0.01)


@pytest.mark.parametrize("model", sorted(MODEL_TYPES))
def test_every_spectrum_passes_a_kramers_kronig_check(model: str) -> None:
    cell = build_model(model, area=AREA, capacity=2e-3)
    if model.startswith("ncm"):
        cell.run_step(charge(0.2e-3, until("capacity", ">=", 1e-3)))
    z = cell.impedance(FREQ)
    assert np.all(z.imag <= 1e-12)  # capacitive or resistive everywhere, never inductive
    assert lin_kk_residuals(FREQ, z).max() < 5e-3


def test_the_kk_check_rejects_an_inconsistent_spectrum() -> None:
    z = build_model("li-cu", area=AREA).impedance(FREQ)
    broken = z.real + 1j * z.imag * np.where(FREQ < 10, 1.5, 1.0)  # imaginary part not matching the real part
    assert lin_kk_residuals(FREQ, broken).max() > 2e-2


def test_li_cu_spectrum_equals_two_arcs_and_a_finite_warburg() -> None:
    cell = build_model("li-cu", area=AREA)
    j = 0.5 * MA_PER_CM2
    cell.run_step(discharge(j, until("voltage", "<=", 0.0)))
    cell.run_step(discharge(j, until("capacity", ">=", 1.0 * MAH_PER_CM2)))
    w = 2 * np.pi * FREQ
    r0, r_w = cell._r0, cell._r1  # ohmic and polarisation resistances (they grow with dead Li: read, not assumed)
    r_ct = VT / (7.0 * AREA)  # Butler-Volmer linearised at the exchange current 0.7 mA/cm^2 (plated Li on Cu)
    q, alpha = 0.1 * AREA, 0.85
    r_li = VT / (10.0 * AREA)  # the Li foil counter electrode: exchange current 1 mA/cm^2
    q_li, alpha_li = 0.05 * AREA, 0.9  # its 5 uF/cm^2 double layer
    tau_w = 90.0
    x = np.sqrt(1j * w * tau_w)
    expected = (
        r0
        + r_ct / (1 + r_ct * q * (1j * w) ** alpha)
        + r_li / (1 + r_li * q_li * (1j * w) ** alpha_li)
        + r_w * np.tanh(x) / x
    )
    np.testing.assert_allclose(cell.impedance(FREQ), expected, rtol=1e-12)
    # low-frequency limit: all the DC resistances in series, the counter electrode's included
    assert cell.impedance(np.array([1e-6]))[0].real == pytest.approx(r0 + r_ct + r_li + r_w, rel=1e-4)


def test_eis_step_reports_one_row_per_frequency_with_a_plausible_duration() -> None:
    cell = build_model("li-host", area=AREA)
    v0 = cell.open_circuit_voltage()
    r = cell.run_step(_eis_step())
    freq = np.asarray(_eis_step().frequencies())
    assert len(r) == len(freq) == len(r.frequency) == len(r.z_real) == len(r.z_imag)
    np.testing.assert_allclose(r.frequency, freq)
    # the analyser's first-harmonic impedance at the step's 10 mV: close to the small-signal one, since no
    # interface's R_ct can fall by more than a^2/8 = 0.5 % (a = 10 mV / 2 V_T)
    np.testing.assert_allclose(r.z_real + 1j * r.z_imag, cell.measured_impedance(freq, 0.01), rtol=1e-9)
    np.testing.assert_allclose(r.z_real + 1j * r.z_imag, cell.impedance(freq), rtol=5e-3)
    # two periods per point, at least 0.25 s: dominated by the 0.1 Hz end (20 s there)
    expected = np.sum(np.maximum(2.0 / freq, 0.25))
    assert r.duration == pytest.approx(expected)
    assert np.all(np.diff(r.t) > 0) and r.t[-1] == pytest.approx(r.duration)
    np.testing.assert_allclose(r.voltage, v0, atol=1e-9)  # at OCV: no DC current, no drift
    np.testing.assert_allclose(r.current, 0.0, atol=1e-15)
    assert r.end_reason == "complete"


def test_full_cell_charge_transfer_arc_grows_towards_empty() -> None:
    cell = build_model("ncm622-li", area=AREA, capacity=2e-3)
    mid_f = np.array([5.0])  # the cathode arc's apex region
    cell.run_step(charge(0.2e-3, until("capacity", ">=", 0.05 * 2e-3)))
    low = -cell.impedance(mid_f)[0].imag
    cell.run_step(charge(0.2e-3, until("capacity", ">=", 0.45 * 2e-3)))
    mid = -cell.impedance(mid_f)[0].imag
    assert low > 1.5 * mid


def test_full_cell_eis_low_frequency_resistance_matches_the_dc_polarisation() -> None:
    q = 2e-3
    cell = build_model("ncm622-li", area=AREA, capacity=q)
    cell.run_step(charge(0.2 * q, until("capacity", ">=", 0.5 * q)))
    cell.run_step(discharge(1e-9, until("time", ">=", 20000.0)))  # relax fully
    # the resistive part of Z at f -> 0, without the intercalation capacitor's 1/(j w C)
    z_dc = cell.impedance(np.array([1e-7]))[0].real
    i = 0.02 * q  # C/50: small signal
    r = cell.run_step(charge(i, until("time", ">=", 1500.0)))  # >> the 216 s diffusion lag, << a full charge
    polarisation = r.voltage[-1] - cell.open_circuit_voltage()
    assert polarisation / i == pytest.approx(z_dc, rel=0.03)
