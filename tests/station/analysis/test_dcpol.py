"""DC polarisation on the blocking cell (P7's ``ca`` step): the steady current is V/Re once the ionic transient has
decayed, and a short hold is flagged. Expected currents come from the model's parameters and the closed-form
potentiostatic decay I(t) = V/Re (1 + eps(t)) of the film (simulators/cells/blocking.py), not from the records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.cells.blocking import BLOCKING_PARAMETERS, dc_polarisation_error
from station.analysis.dcpol import DECAY_THRESHOLD, WINDOW_FRACTION, analyze_dc


def _film(cell) -> tuple[float, float, float]:
    """(Re, b, tau) of the film: electronic resistance, shape factor R_par/R_w, diffusion time L^2/(pi^2 D~)."""
    p = {name: float(cell.model_params.get(name, param.default)) for name, param in BLOCKING_PARAMETERS.items()}
    re = cell.thickness / (p["electronic_conductivity"] * cell.area)
    ri = cell.thickness / (p["ionic_conductivity"] * cell.area)
    r_par, r_w = re * ri / (re + ri), re**2 / (re + ri)
    return re, r_par / r_w, cell.thickness**2 / (math.pi**2 * p["chemical_diffusivity"])


def _expected_window_mean(cell, dv: float, hold: float) -> float:
    re, b, tau = _film(cell)
    t = np.linspace((1 - WINDOW_FRACTION) * hold, hold, 2001)
    return float(np.mean(dv / re * (1.0 + dc_polarisation_error(t, tau, b))))


def test_one_hour_hold_reaches_the_electronic_current(dry_run) -> None:
    data = dry_run("p7-conductivity", "host-blocking")
    result = analyze_dc(data)
    assert result is not None and len(result.steps) == 1
    step = result.last
    assert step.step_index == 3 and step.delta_v_v == pytest.approx(0.050)
    assert step.duration_s == pytest.approx(3600.0, abs=1.0)
    re, _, _ = _film(data.cell)
    # eps(3240 s) = 2e-6: the mean over the last 360 s is V/Re to 1e-5
    assert step.steady_current_a == pytest.approx(0.050 / re, rel=1e-5)
    assert step.resistance_ohm == pytest.approx(re, rel=1e-5)
    assert step.warning is None and step.decayed
    assert step.to_dict()["steady_current_a"] == step.steady_current_a


def test_ten_minute_hold_is_flagged_and_reads_the_decaying_current(dry_run) -> None:
    data = dry_run("p7-conductivity", "host-blocking", dc_time="10 min")
    step = analyze_dc(data).last
    # the window mean equals the model's closed-form decay averaged over the same window (engine vs residues)
    assert step.steady_current_a == pytest.approx(_expected_window_mean(data.cell, 0.050, 600.0), rel=1e-3)
    re, _, _ = _film(data.cell)
    assert step.steady_current_a > 1.1 * 0.050 / re  # eps(540 s) is about 15 %: far from steady
    assert step.relative_change > DECAY_THRESHOLD
    assert step.warning is not None and "not decayed" in step.warning and "\n" not in step.warning


def test_no_ca_step_gives_none(dry_run) -> None:
    assert analyze_dc(dry_run("p6-cyclic-voltammetry", "llto-li", cycles=2)) is None


def _synthetic(step, v_before: float, t: np.ndarray, current: np.ndarray, voltage: float):
    """A RunData of a 10-record rest at ``v_before`` and then ``step`` with the given current."""
    from protocols.cells import Cell
    from protocols.program import RestStep, StepProgram
    from station.analysis.run_data import RunData
    from station.store import RECORD_DTYPE

    program = StepProgram(protocol="synthetic", cell="c", steps=(RestStep(index=1), step))
    rec = np.zeros(10 + len(t), dtype=RECORD_DTYPE)
    rec["seq"] = np.arange(1, len(rec) + 1)
    rec["step_index"] = [1] * 10 + [2] * len(t)
    rec["cycle"] = 1
    rec["step_time"] = np.concatenate([np.arange(10.0), t])
    rec["voltage"] = np.concatenate([np.full(10, v_before), np.full(len(t), voltage)])
    rec["current"] = np.concatenate([np.zeros(10), current])
    for name in ("frequency", "z_real", "z_imag"):
        rec[name] = np.nan
    return RunData("synthetic", rec, program, Cell(name="c", area=1e-4, thickness=1e-5))


def test_absolute_step_is_taken_against_the_voltage_before_it_and_the_window_is_the_last_tenth() -> None:
    """I(t) = I_inf (1 + a exp(-t/tau)); over the window [0.9 T, T] its least-squares slope and mean are
    computed here by integrals of the exponential, independently of the analysis' polyfit."""
    from protocols.program import CaStep

    i_inf, a, tau, hold = 1e-4, 0.5, 100.0, 1000.0
    t = np.linspace(0.0, hold, 100001)
    current = i_inf * (1.0 + a * np.exp(-t / tau))
    step = analyze_dc(_synthetic(CaStep(index=2, voltage=0.3), 0.25, t, current, 0.3)).last
    assert step.delta_v_v == pytest.approx(0.05)
    t0, w = 0.9 * hold, 0.1 * hold
    mean = i_inf * (1.0 + a * tau / w * (np.exp(-t0 / tau) - np.exp(-hold / tau)))
    assert step.window_s == pytest.approx(w, rel=1e-4)
    assert step.steady_current_a == pytest.approx(mean, rel=1e-6)
    # least-squares slope of a smooth function on a uniform window: 12/w^3 * integral (t - t_mid) I dt
    s = np.linspace(t0, hold, 200001)
    slope = 12.0 / w**3 * np.trapezoid((s - (t0 + w / 2)) * i_inf * (1.0 + a * np.exp(-s / tau)), s)
    assert step.relative_change == pytest.approx(abs(slope) * w / mean, rel=1e-3)
    # a e^-9 (1 - e^-1) = 4e-5 relative change: decayed; the same with tau = 300 s is not
    assert step.warning is None
    slow = i_inf * (1.0 + a * np.exp(-t / 300.0))
    assert analyze_dc(_synthetic(CaStep(index=2, voltage=0.3), 0.25, t, slow, 0.3)).last.warning is not None
