"""EIS spectra and fits (P5 on a Li half cell, P7 on the blocking cell): the fitted values are checked against the
simulated cells' own parameters, computed here from their defaults and the cell geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.cells.blocking import BLOCKING_PARAMETERS, VACUUM_PERMITTIVITY
from simulators.cells.half_cell import LiLltoCell
from simulators.cells.physics import thermal_voltage
from station.analysis.circuits import CircuitError, default_circuit, elements
from station.analysis.eis import Spectrum, analyze_eis, fit_spectrum, spectra

T_27C = 300.15  # both cells run at 27 degC, the models' reference temperature: no Arrhenius factors apply


def _param(defaults, cell, name: str) -> float:
    return float(cell.model_params.get(name, defaults[name].default))


@pytest.fixture(scope="module")
def llto(dry_run):
    return dry_run("p5-eis", "llto-li", settle="1 min")


@pytest.fixture(scope="module")
def blocking(dry_run):
    return dry_run("p7-conductivity", "host-blocking")


def test_spectra_are_the_eis_rows_as_reported(llto) -> None:
    found = spectra(llto)
    r = llto.records
    rows = np.isfinite(r["frequency"])
    assert len(found) == 1
    s = found[0]
    assert (s.step_index, s.cycle) == (2, 1)
    assert len(s.frequency_hz) == int(rows.sum()) == llto.program.step(2).point_count()
    assert s.frequency_hz[0] == pytest.approx(20e3) and s.frequency_hz[-1] == pytest.approx(0.1)
    np.testing.assert_array_equal(s.z_imag_ohm, r["z_imag"][rows])  # sign as reported: capacitive z_imag < 0
    assert np.all(s.z_imag_ohm < 0)
    assert spectra(llto)[0].to_dict()["z_real_ohm"][0] == pytest.approx(float(r["z_real"][rows][0]))


def test_half_cell_fit_recovers_the_llto_models_resistances_and_double_layers(llto) -> None:
    """R0 + working-electrode arc + Li-foil arc + diffusion tail (simulators/cells/half_cell.py _eis_circuit)."""
    p, cell = LiLltoCell.PARAMETERS, llto.cell
    area = cell.area
    vt = thermal_voltage(T_27C)
    r0 = _param(p, cell, "ohmic_resistance") / area
    r_foil = vt / (_param(p, cell, "li_exchange_current") * area)
    r_host = vt / (_param(p, cell, "exchange_current") * area)
    fit = analyze_eis(llto).fits[0]
    assert fit.circuit == default_circuit("li-llto") == "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3"
    # 10 mV amplitude: each Butler-Volmer arc reads (1 - a^2/8) small, a = eta/2V_T < 0.1 -> < 0.2 %; the
    # polarisation Warburg (R1 = 6 ohm cm^2, tau 90 s) adds < 0.2 % in the arcs' band. Hence 0.5 % on R.
    assert fit.value("R0") == pytest.approx(r0, rel=5e-3)
    assert fit.value("R1") == pytest.approx(r_foil, rel=5e-3)  # the faster arc (foil, 5 uF/cm^2) comes first
    assert fit.value("R2") == pytest.approx(r_host, rel=5e-3)
    assert fit.value("CPE1_0") == pytest.approx(_param(p, cell, "li_double_layer_capacitance") * area, rel=1e-2)
    assert fit.value("CPE1_1") == pytest.approx(_param(p, cell, "li_cpe_alpha"), abs=2e-3)
    assert fit.value("CPE2_0") == pytest.approx(_param(p, cell, "double_layer_capacitance") * area, rel=1e-2)
    assert fit.value("CPE2_1") == pytest.approx(_param(p, cell, "cpe_alpha"), abs=2e-3)
    assert fit.value("CPE3_1") == pytest.approx(0.5, abs=5e-3)  # the tail is a Warburg line (diffusion)
    for param in fit.parameters:
        assert param.ci95_low <= param.value <= param.ci95_high
    assert fit.hf_intercept_source == "fit:R0" and fit.hf_intercept_ohm == fit.value("R0")
    assert fit.rms_relative_residual < 1e-3
    assert fit.kk_max_residual_real < 0.01 and fit.kk_max_residual_imag < 0.01  # a linear causal model
    s = spectra(llto)[0]
    np.testing.assert_allclose(fit.predict(s.frequency_hz), s.z, rtol=5e-3)


def test_blocking_fit_recovers_the_mixed_conductor_line(blocking) -> None:
    """p(R0-W0,C0): R0 = Re||Ri, W0 = R_w/sqrt(2 tau_W) with R_w = Re^2/(Re + Ri), tau_W = L^2/(4 D~), C0 the
    geometric capacitance (simulators/cells/blocking.py)."""
    p, cell = BLOCKING_PARAMETERS, blocking.cell
    length, area = cell.thickness, cell.area
    re = length / (_param(p, cell, "electronic_conductivity") * area)
    ri = length / (_param(p, cell, "ionic_conductivity") * area)
    tau_w = length**2 / (4.0 * _param(p, cell, "chemical_diffusivity"))
    fit = analyze_eis(blocking).fits[0]
    # 0.1 Hz is at omega tau_W = 1060: the finite Warburg is on its 45 degree line, so the semi-infinite one is used
    assert fit.circuit == "p(R0-W0,C0)"
    # the simulated spectrum is exactly this circuit up to tanh(sqrt(j 1060)) = 1 - 1e-20: tight tolerances
    assert fit.value("R0") == pytest.approx(re * ri / (re + ri), rel=1e-5)
    assert fit.value("W0") == pytest.approx(re**2 / (re + ri) / math.sqrt(2.0 * tau_w), rel=1e-4)
    c_geo = VACUUM_PERMITTIVITY * _param(p, cell, "relative_permittivity") * area / length
    assert fit.value("C0") == pytest.approx(c_geo, rel=1e-3)
    assert fit.hf_intercept_ohm == fit.value("R0")


def test_a_given_circuit_overrides_the_default(blocking) -> None:
    s = spectra(blocking)[0]
    fit = fit_spectrum(s, "R0-W0", "blocking")
    assert fit.circuit == "R0-W0"
    assert [p.name for p in fit.parameters] == ["R0", "W0"]
    # without the dielectric arc (omega C R = 0.05 at 100 kHz) R0 still lands within 0.2 % of Re||Ri
    cell, p = blocking.cell, BLOCKING_PARAMETERS
    sigma = _param(p, cell, "electronic_conductivity") + _param(p, cell, "ionic_conductivity")
    assert fit.value("R0") == pytest.approx(cell.thickness / (sigma * cell.area), rel=2e-3)


@pytest.mark.parametrize("bad", ["R0-p(R1,C1", "R0--C1", "R0-X1", "R0-p(R1,R1)", "R-C1", ""])
def test_malformed_circuit_is_a_one_line_error_naming_it(bad: str) -> None:
    with pytest.raises(CircuitError) as err:
        elements(bad)
    message = str(err.value)
    assert "\n" not in message and (repr(bad) in message or "empty" in message)


def test_high_frequency_intercept_interpolates_the_inductive_crossing() -> None:
    """A spectrum with lead inductance: -Z'' crosses zero where jwL cancels the arc's capacitive part."""
    f = np.geomspace(1e5, 1.0, 41)
    w = 2 * np.pi * f
    z = 2.0 + 1j * w * 2e-6 + 10.0 / (1.0 + 1j * w * 10.0 * 1e-5)
    fit = fit_spectrum(Spectrum(1, 1, f, z.real, z.imag), "L0-R0-p(R1,C1)")
    crossing_fine = np.geomspace(1e5, 1.0, 40001)
    wf = 2 * np.pi * crossing_fine
    zf = 2.0 + 1j * wf * 2e-6 + 10.0 / (1.0 + 1j * wf * 1e-4)
    exact = zf.real[np.argmin(np.abs(zf.imag))]
    assert fit.hf_intercept_source == "crossing"
    assert fit.hf_intercept_ohm == pytest.approx(exact, rel=2e-3)
    assert fit.value("L0") == pytest.approx(2e-6, rel=1e-3) and fit.value("R0") == pytest.approx(2.0, rel=1e-3)


def test_no_eis_step_gives_none(dry_run) -> None:
    assert analyze_eis(dry_run("p6-cyclic-voltammetry", "llto-li", cycles=2)) is None


def _blocking_spectrum(cell, **overrides: float) -> tuple[Spectrum, dict[str, float]]:
    """The blocking film's spectrum over P7's band, written out from the Jamnik-Maier formula (not the
    simulator), with the model defaults changed by ``overrides``."""
    p = {name: float(param.default) for name, param in BLOCKING_PARAMETERS.items()} | overrides
    length, area = cell.thickness, cell.area
    re, ri = length / (p["electronic_conductivity"] * area), length / (p["ionic_conductivity"] * area)
    tau_w = length**2 / (4.0 * p["chemical_diffusivity"])
    c_geo = VACUUM_PERMITTIVITY * p["relative_permittivity"] * area / length
    f = np.geomspace(1e5, 0.1, 61)
    x = np.sqrt(2j * np.pi * f * tau_w)
    film = re * ri / (re + ri) + re**2 / (re + ri) * np.tanh(x) / x
    z = 1.0 / (1.0 / film + 2j * np.pi * f * c_geo)
    truth = {"R0": re * ri / (re + ri), "Z0": re**2 / (re + ri), "tau": tau_w, "C0": c_geo}
    return Spectrum(2, 1, f, z.real, z.imag), truth


def test_fast_diffusion_is_fitted_with_the_finite_warburg(blocking) -> None:
    """D~ = 3e-10 m^2/s: tau_W = L^2/(4 D~) = 1.7 s, the line bends to the real axis inside the band."""
    spectrum, truth = _blocking_spectrum(blocking.cell, chemical_diffusivity=3e-10)
    fit = fit_spectrum(spectrum, None, "blocking")
    assert fit.circuit == "p(R0-Ws0,C0)"
    assert fit.value("R0") == pytest.approx(truth["R0"], rel=1e-5)
    assert fit.value("Ws0_0") == pytest.approx(truth["Z0"], rel=1e-4)
    assert fit.value("Ws0_1") == pytest.approx(truth["tau"], rel=1e-4)
    assert fit.value("C0") == pytest.approx(truth["C0"], rel=1e-3)


@pytest.mark.parametrize("overrides", [{"electronic_conductivity": 0.1}, {"ionic_conductivity": 1e-4}])
def test_blocking_plateau_is_found_for_electronic_or_ionic_majority(blocking, overrides) -> None:
    spectrum, truth = _blocking_spectrum(blocking.cell, **overrides)
    assert fit_spectrum(spectrum, None, "blocking").value("R0") == pytest.approx(truth["R0"], rel=1e-5)


def test_noisy_half_cell_fits_reach_the_noise_and_their_intervals_cover_the_truth(llto) -> None:
    """0.3 % multiplicative noise, five fixed seeds: each fit reaches the noise floor (RMS about sqrt(2) x 0.3 %,
    not a local minimum), the arcs' total R1 + R2 stays within 1.5 % of the noiseless fit, and the 95 %
    intervals cover the noiseless values about 95 % of the time (at least 38 of the 45 parameters)."""
    s = spectra(llto)[0]
    clean = fit_spectrum(s, None, "li-llto")
    covered = 0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        z = s.z * (1 + 0.003 * (rng.standard_normal(len(s.z)) + 1j * rng.standard_normal(len(s.z))))
        noisy = fit_spectrum(Spectrum(2, 1, s.frequency_hz, z.real, z.imag), None, "li-llto")
        assert 0.003 < noisy.rms_relative_residual < 0.0055
        arcs = noisy.value("R1") + noisy.value("R2")
        assert arcs == pytest.approx(clean.value("R1") + clean.value("R2"), rel=0.015)
        covered += sum(p.ci95_low <= clean.value(p.name) <= p.ci95_high for p in noisy.parameters)
    assert covered >= 38
