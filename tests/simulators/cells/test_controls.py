"""Voltage-, power- and sweep-controlled steps: CCCV, hold, power, CA, CV, LSV."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.program import CaStep, CurrentStep, CvStep, HoldStep, LsvStep, PowerStep, RecordRule
from simulators.cells import build_model

from .helpers import AREA, charge, until

Q = 2.0e-3


def _full_cell():
    return build_model("ncm622-li", area=AREA, capacity=Q)


def test_cccv_charges_at_constant_current_then_holds_the_voltage_until_the_current_limit() -> None:
    cell = _full_cell()
    step = CurrentStep(
        index=1,
        kind="charge",
        current=0.5 * Q,
        hold_voltage=4.2,
        until=(until("current", "<=", Q / 50),),
        record=RecordRule(every_s=5.0),
    )
    r = cell.run_step(step)
    assert r.end_reason == "termination" and r.ended_by == 0
    assert r.current[-1] == pytest.approx(Q / 50, rel=1e-6)
    assert r.voltage.max() <= 4.2 + 1e-9
    cc = r.voltage < 4.2 - 1e-9
    np.testing.assert_allclose(r.current[cc], 0.5 * Q)  # CC phase at the set current
    cv = ~cc
    np.testing.assert_allclose(r.voltage[cv], 4.2, atol=1e-9)  # CV phase at the set voltage
    assert np.all(np.diff(r.current[cv]) <= 1e-12)  # the current only decays
    integral = np.trapezoid(r.current, r.t) / 3600.0
    assert r.capacity[-1] == pytest.approx(integral, rel=1e-4)
    # CCCV at 0.5C puts in more than plain CC to 4.2 V would
    plain = _full_cell().run_step(charge(0.5 * Q, until("voltage", ">=", 4.2)))
    assert r.capacity[-1] > plain.capacity[-1] + 0.05 * Q


def test_power_step_holds_the_power_and_ends_on_the_voltage_limit() -> None:
    cell = _full_cell()
    cell.run_step(charge(0.2 * Q, until("voltage", ">=", 4.3)))
    power = -0.5 * Q * 3.7
    r = cell.run_step(
        PowerStep(index=1, power=power, until=(until("voltage", "<=", 3.0),), record=RecordRule(every_s=30))
    )
    np.testing.assert_allclose(r.voltage * r.current, power, rtol=1e-6)
    assert r.voltage[-1] == pytest.approx(3.0, abs=1e-6)
    assert r.energy[-1] == pytest.approx(power * r.duration / 3600.0, rel=1e-6)
    # the current rises in magnitude as the voltage falls
    assert np.all(np.diff(np.abs(r.current)) >= -1e-12)


def test_hold_current_decays_to_the_relaxation_of_the_cell() -> None:
    cell = _full_cell()
    cell.run_step(charge(0.2 * Q, until("capacity", ">=", 0.5 * Q)))
    v_hold = cell.open_circuit_voltage() + 0.05
    r = cell.run_step(
        HoldStep(index=1, voltage=v_hold, until=(until("time", ">=", 7200.0),), record=RecordRule(every_s=60))
    )
    np.testing.assert_allclose(r.voltage, v_hold, atol=1e-9)
    assert np.all(np.diff(r.current) < 0) and r.current[-1] > 0
    assert r.current[-1] < 0.02 * r.current[0]
    # the charge passed moved the OCV up to the hold voltage, as dQ = C_diff dV predicts roughly
    assert cell.open_circuit_voltage() == pytest.approx(v_hold, abs=0.01)


def test_hold_with_a_current_limit_starts_at_that_limit() -> None:
    cell = _full_cell()
    r = cell.run_step(
        HoldStep(
            index=1,
            voltage=3.9,
            current_limit=0.1 * Q,
            until=(until("current", "<=", 0.01 * Q),),
            record=RecordRule(every_s=60),
        )
    )
    assert r.current.max() <= 0.1 * Q * (1 + 1e-12)
    assert r.current[0] == pytest.approx(0.1 * Q)
    assert r.current[-1] == pytest.approx(0.01 * Q, rel=1e-6)


def test_ca_relative_to_ocv_applies_the_offset_from_the_rest_voltage() -> None:
    cell = build_model("li-host", area=AREA)
    v0 = cell.open_circuit_voltage()
    r = cell.run_step(
        # 2 h: Li diffuses into the host's LLTO with slowest time constant 4 L^2/(pi^2 D) ~ 15 min at a fixed
        # surface potential, so the host needs about 5 of them to fill up to the held potential
        CaStep(index=1, voltage=-0.1, vs_ocv=True, until=(until("time", ">=", 7200.0),), record=RecordRule(every_s=10))
    )
    np.testing.assert_allclose(r.voltage, v0 - 0.1, atol=1e-9)
    assert r.current[0] < -1e-3 and np.all(r.current <= 1e-9)  # below its OCV the host lithiates
    # until the host's OCV has come down to the held voltage: the charge is the host's between the two
    x = np.linspace(0, 0.2, 20001)
    q_needed = np.interp(v0 - 0.1, cell.host_ocv(x * cell.host_capacity)[::-1], x[::-1]) * cell.host_capacity
    assert -r.capacity[-1] == pytest.approx(q_needed, rel=0.01)
    assert cell.open_circuit_voltage() == pytest.approx(v0 - 0.1, abs=1e-4)


def _cv(rate: float, **params: float):
    cell = build_model("li-host", params or None, area=AREA)
    step = CvStep(
        index=1, scan_rate=rate, vertex_1=0.01, vertex_2=2.5, cycles=2, record=RecordRule(voltage_change=0.002)
    )
    r = cell.run_step(step)
    t1 = (2.8 - 0.01 + (2.5 - 0.01)) / rate  # the second cycle: vertex 2 -> vertex 1 -> vertex 2
    second = (r.t >= t1) & (r.t <= t1 + 2 * (2.5 - 0.01) / rate)
    v, i = r.voltage[second], r.current[second]
    return r, v[np.argmin(i)], v[np.argmax(i)]


def test_cv_peaks_sit_on_the_host_ocv_feature_and_separate_with_scan_rate() -> None:
    # 0.01 mV/s: slow against the host's solid-state diffusion (tau = L^2/D = 2250 s), the thin-layer limit where
    # the peaks nearly meet; at 1 mV/s diffusion and iR drop pull them apart (tests/simulators/cells/test_host_cv.py)
    _, cat_slow, an_slow = _cv(1e-5)
    _, cat_fast, an_fast = _cv(1e-3)
    # the host's 1.25 V lithiation feature; at 1 mV/s the delithiation lags more (D falls as the host fills)
    for cat, an, tol in ((cat_slow, an_slow, 0.02), (cat_fast, an_fast, 0.03)):
        assert cat < an
        assert 0.5 * (cat + an) == pytest.approx(1.25, abs=tol)
    assert an_fast - cat_fast > 3 * (an_slow - cat_slow)
    assert an_slow - cat_slow < 0.05


def test_cv_peaks_follow_the_ocv_curve_when_it_moves() -> None:
    _, cat, an = _cv(1e-5, host_peak1_potential=1.6)
    assert 0.5 * (cat + an) == pytest.approx(1.6, abs=0.02)


def test_cv_scans_the_programmed_triangle_and_is_reversible_at_a_slow_rate() -> None:
    r, _, _ = _cv(1e-4)
    assert r.end_reason == "complete"
    ocv = 2.8
    assert r.duration == pytest.approx(((ocv - 0.01) + 3 * (2.5 - 0.01) + abs(2.5 - ocv)) / 1e-4, rel=1e-9)
    assert r.voltage.min() == pytest.approx(0.01, abs=1e-9)
    assert np.any(np.abs(r.voltage - 2.5) < 1e-9) and r.voltage[-1] == pytest.approx(ocv)  # vertex 2, then the end
    # the second cycle returns the charge it took (no plating above 0 V, the host is reversible)
    t1 = (ocv - 0.01 + (2.5 - 0.01)) / 1e-4  # end of the first cycle, at vertex 2
    t2 = t1 + 2 * (2.5 - 0.01) / 1e-4
    second = (r.t >= t1 - 1e-6) & (r.t <= t2 + 1e-6)
    q = r.capacity[second]
    assert abs(q[-1] - q[0]) < 0.01 * (q.max() - q.min())


def test_lsv_sweeps_to_its_end_at_the_scan_rate() -> None:
    cell = build_model("li-host", area=AREA)
    r = cell.run_step(LsvStep(index=1, scan_rate=1e-3, start=2.0, end=3.0, record=RecordRule(every_s=10)))
    assert r.duration == pytest.approx(1000.0)
    np.testing.assert_allclose(r.voltage, 2.0 + 1e-3 * r.t, atol=1e-9)
    assert r.end_reason == "complete"
