"""Cyclic voltammetry on the Li | LLTO@CNT host: solid-state diffusion and the first-cycle SEI reduction (issue 12).

Physical facts, not snapshots:

* the diffusion modes reproduce Crank's exact series for a slab and a sphere under a constant flux;
* the peak current of the host's 1.25 V feature grows as sqrt(scan rate) when the sweep is fast against the
  diffusion time (Randles-Sevcik) and linearly when it is slow (thin-layer limit);
* the anodic-cathodic peak separation grows with the scan rate, and the two peaks differ;
* the first cycle reduces the SEI once (a cathodic wave at 0.7-0.8 V and exactly its charge), the next do not;
* at rest the surface relaxes to the mean with the slowest mode, pi^2 D / L^2, thermally activated;
* a restored cell continues identically.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from protocols.program import CvStep, RecordRule
from simulators.cells import build_model
from simulators.cells.host_diffusion import HostDiffusion, SurfaceSei, sphere_eigenvalues
from simulators.cells.physics import GAS_CONSTANT

from .helpers import AREA, MA_PER_CM2, MAH_PER_CM2, discharge, rest, until

V_LOW, V_HIGH = 0.01, 2.5


def _cv(cell, rate: float, cycles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(t, V, I, Q) of a CV from the cell's OCV, ending at the upper vertex."""
    step = CvStep(
        index=1,
        scan_rate=rate,
        vertex_1=V_LOW,
        vertex_2=V_HIGH,
        cycles=cycles,
        end=V_HIGH,
        record=RecordRule(voltage_change=0.001),
    )
    r = cell.run_step(step)
    return r.t, r.voltage, r.current, r.capacity


def _peak(v: np.ndarray, i: np.ndarray, sign: int) -> tuple[float, float]:
    """(potential, height) of the 1.25 V feature's peak in one sweep; sign -1 cathodic, +1 anodic.

    The height is taken above the baseline the sweep brings with it (the current 0.35 V before the peak, where
    the feature has not started yet), as an electrochemist reads i_p off a CV.
    """
    window = (v > 0.9) & (v < 1.7)
    k = int(np.argmax(sign * i[window]))
    vp, ip = float(v[window][k]), float(sign * i[window][k])
    order = np.argsort(v)
    base = float(sign * np.interp(vp - sign * 0.35, v[order], i[order]))
    return vp, ip - base


RATES = (0.005e-3, 0.02e-3, 1e-3, 10e-3)  # V/s: 0.005 and 0.02 mV/s (slow), 1 and 10 mV/s (fast)


@pytest.fixture(scope="module")
def peaks() -> dict[float, tuple[tuple[float, float], tuple[float, float]]]:
    """Per scan rate: the cathodic and anodic peaks of one CV cycle from the relaxed host (SEI left out here)."""
    out = {}
    for rate in RATES:
        cell = build_model("li-host", {"host_sei_capacity": 0.0}, area=AREA)
        t_vertex = (cell.open_circuit_voltage() - V_LOW) / rate
        t, v, i, _ = _cv(cell, rate, cycles=1)
        down, up = t <= t_vertex, t >= t_vertex
        out[rate] = (_peak(v[down], i[down], -1), _peak(v[up], i[up], 1))
    return out


def _slope(peaks: dict, lo: float, hi: float, which: int) -> float:
    return math.log(peaks[hi][which][1] / peaks[lo][which][1]) / math.log(hi / lo)


# ---- the diffusion modes ------------------------------------------------------------------------------------


def _crank_slab(tau: float, t: np.ndarray, terms: int = 200_000) -> np.ndarray:
    """Surface minus mean fraction of a slab fed at r = 1/s through one face (Crank eq. 4.54 rearranged)."""
    lam2 = (np.arange(1, terms + 1) * math.pi) ** 2
    return np.array([tau / 3.0 - 2.0 * tau * np.sum(np.exp(-lam2 * x / tau) / lam2) for x in t])


def _crank_sphere(tau: float, t: np.ndarray, terms: int = 20_000) -> np.ndarray:
    """The same for a sphere (Crank eq. 6.59 rearranged): tau/15 - (2 tau/3) sum exp(-l^2 t/tau)/l^2."""
    lam2 = sphere_eigenvalues(terms) ** 2
    return np.array([tau / 15.0 - (2.0 * tau / 3.0) * np.sum(np.exp(-lam2 * x / tau) / lam2) for x in t])


@pytest.mark.parametrize(("geometry", "exact"), [("slab", _crank_slab), ("sphere", _crank_sphere)])
def test_the_modes_match_the_exact_diffusion_series_from_tau_over_1000_on(geometry: str, exact) -> None:
    tau = 2000.0
    modes = HostDiffusion.build(geometry, tau)
    t = tau * np.array([1e-3, 1e-2, 0.1, 1.0, 10.0])
    got = modes.offset(modes.zero(), 1.0, math.inf, 0.0, t)
    np.testing.assert_allclose(got, exact(tau, t), rtol=0.005)
    assert modes.steady_offset(1.0) == pytest.approx(tau / 3.0 if geometry == "slab" else tau / 15.0, rel=1e-12)


def test_the_modes_stop_feeding_at_the_switch_and_then_only_relax() -> None:
    modes = HostDiffusion.build("slab", 1000.0)
    a0 = modes.zero()
    t = np.array([50.0, 200.0, 800.0])
    two_piece = modes.offset(a0, 1e-4, 300.0, 0.0, t)
    at_switch = modes.amplitudes(a0, 1e-4, math.inf, 1e-4, 300.0)
    one_piece = modes.offset(at_switch, 0.0, math.inf, 0.0, t[t > 300.0] - 300.0)
    np.testing.assert_allclose(two_piece[t > 300.0], one_piece, rtol=1e-12)
    np.testing.assert_allclose(two_piece[:2], modes.offset(a0, 1e-4, math.inf, 0.0, t[:2]), rtol=1e-12)


def test_the_sei_share_follows_the_falling_potential_and_never_returns() -> None:
    sei = SurfaceSei(lambda x: 2.0 - 2.0 * np.asarray(x), rho=0.2, potential=0.7, width=0.05)
    x = np.linspace(0.0, 1.0, 11)
    c = x + 0.2 * sei.equilibrium_share(x)
    x_s, theta = sei.solve(c, 0.0)
    np.testing.assert_allclose(x_s, x, atol=1e-6)  # on the way down the share is the equilibrium one
    # back up from a surface at 0.9 (theta ~ 1): the share stays and the surface gives back only host Li
    theta_top = float(theta[-2])
    x_back, theta_back = sei.solve(np.array([0.3, 0.1]) + 0.2 * theta_top, theta_top)
    np.testing.assert_allclose(theta_back, theta_top)
    np.testing.assert_allclose(x_back, [0.3, 0.1])


# ---- CV -----------------------------------------------------------------------------------------------------


def test_peak_current_grows_as_sqrt_of_the_scan_rate_when_fast(peaks) -> None:
    # Randles-Sevcik: semi-infinite diffusion into the host's LLTO (tau = 2250 s against ~10-80 s per peak)
    assert _slope(peaks, 1e-3, 10e-3, 0) == pytest.approx(0.5, abs=0.1)  # cathodic
    assert _slope(peaks, 1e-3, 10e-3, 1) == pytest.approx(0.5, abs=0.1)  # anodic


def test_peak_current_grows_linearly_with_the_scan_rate_when_slow(peaks) -> None:
    # thin-layer limit: the whole host follows its OCV, i_p = Q v dx/dU
    assert _slope(peaks, 0.005e-3, 0.02e-3, 0) > 0.8
    assert _slope(peaks, 0.005e-3, 0.02e-3, 1) > 0.8


def test_peak_separation_grows_with_the_scan_rate_about_the_host_feature(peaks) -> None:
    separations = [peaks[rate][1][0] - peaks[rate][0][0] for rate in RATES]
    assert np.all(np.diff(separations) > 0)
    assert separations[0] < 0.03  # nearly reversible in the thin-layer limit
    assert separations[-1] > 0.15
    for rate in RATES:
        assert 0.5 * (peaks[rate][0][0] + peaks[rate][1][0]) == pytest.approx(1.25, abs=0.03)


def test_anodic_and_cathodic_peaks_are_not_mirror_images_where_diffusion_matters(peaks) -> None:
    # D falls as the host lithiates, so delithiating a lithiated bulk lags more than lithiating an empty one:
    # the anodic peak sits further from the feature's 1.25 V than the cathodic one, and the heights differ
    for rate in (0.02e-3, 1e-3, 10e-3):
        (v_cat, i_cat), (v_an, i_an) = peaks[rate]
        assert (v_an - 1.25) - (1.25 - v_cat) > 0.005
        assert abs(i_cat - i_an) > 0.03 * max(i_cat, i_an)


def test_the_first_cycle_reduces_the_sei_once_in_a_wave_near_0p75_volts() -> None:
    cell = build_model("li-host", area=AREA)
    rate = 0.01e-3  # slow: the diffusion lag between cycles is well under 1 % of the SEI charge
    ocv = cell.open_circuit_voltage()
    t, v, i, q = _cv(cell, rate, cycles=3)
    t_start = (ocv - V_HIGH) / rate  # the first sweep passes the upper vertex potential here
    period = 2.0 * (V_HIGH - V_LOW) / rate
    grid = np.linspace(0.05, 2.45, 481)
    net, cathodic = [], []
    for k in range(3):
        t0 = t_start + k * period
        net.append(float(np.interp(t0 + period, t, q) - np.interp(t0, t, q)))
        down = (t >= t0) & (t <= t0 + period / 2)
        cathodic.append(np.interp(grid, v[down][::-1], i[down][::-1]))
    sei = 0.5 * MAH_PER_CM2 / 10.0  # host_sei_capacity: 0.05 mAh/cm^2
    # cycle 1 keeps exactly the SEI charge; cycle 2 is closed
    assert net[1] - net[0] == pytest.approx(sei, rel=0.02)
    assert abs(net[2] - net[1]) < 1e-3 * sei
    # the extra cathodic current of cycle 1 peaks at the SEI potential and is absent from cycle 2 on
    excess = cathodic[0] - cathodic[1]
    assert 0.65 <= grid[np.argmin(excess)] <= 0.85  # host_sei_potential 0.8 V, the surface a little ahead
    assert np.max(np.abs(cathodic[1] - cathodic[2])) < 0.01 * np.max(np.abs(excess))
    assert cell.sei_share == pytest.approx(1.0, abs=1e-4)


# ---- constant current and rest ------------------------------------------------------------------------------


def test_a_fast_lithiation_reaches_0_v_with_less_of_the_host_and_keeps_monotonic() -> None:
    capacities = []
    for j in (0.05, 0.5, 2.0):
        cell = build_model("li-host", {"host_sei_capacity": 0.0}, area=AREA)
        r = cell.run_step(discharge(j * MA_PER_CM2, until("voltage", "<=", 0.0), every=10.0))
        assert np.all(np.diff(r.voltage) < 0)
        capacities.append(-r.capacity[-1])
    assert np.all(np.diff(capacities) < 0)  # the surface saturates before the bulk: diffusion limits the rate
    assert capacities[0] > 0.9 * 0.25 * MAH_PER_CM2


def test_the_surface_relaxes_to_the_mean_with_the_slowest_mode_thermally_activated() -> None:
    def relaxation_rate(kelvin: float) -> float:
        cell = build_model("li-host", {"host_diffusivity_lithiated_ratio": 1.0}, area=AREA, temperature=kelvin)
        cell.run_step(discharge(0.1 * MA_PER_CM2, until("capacity", ">=", 0.1 * MAH_PER_CM2)))
        offsets = []
        for duration in (900.0, 300.0):  # the first rest leaves only the slowest mode
            cell.run_step(rest(until("time", ">=", duration)))
            offsets.append(cell.surface_lithiation() - cell.q_host / cell.host_capacity)
        assert 0.0 < offsets[1] < offsets[0]
        return math.log(offsets[0] / offsets[1]) / 300.0

    p = build_model("li-host", area=AREA).p
    slowest = math.pi**2 * p.host_diffusivity / p.host_diffusion_length**2  # 1/s, slab, flux boundary
    assert relaxation_rate(300.15) == pytest.approx(slowest, rel=0.01)
    hot = 333.15
    expected = math.exp(p.host_diffusion_activation_energy / GAS_CONSTANT * (1.0 / 300.15 - 1.0 / hot))
    assert relaxation_rate(hot) / relaxation_rate(300.15) == pytest.approx(expected, rel=0.01)


def test_the_rest_voltage_after_lithiation_rises_to_the_ocv_of_the_mean() -> None:
    cell = build_model("li-host", area=AREA)
    cell.run_step(discharge(0.5 * MA_PER_CM2, until("voltage", "<=", 0.8)))
    r = cell.run_step(rest(until("time", ">=", 5 * 3600.0), every=60.0))
    assert np.all(np.diff(r.voltage[r.t > 300]) >= 0)  # Li spreads into the bulk, the surface empties
    assert r.voltage[-1] - r.voltage[r.t > 300][0] > 0.01
    mean_ocv = float(cell.host_ocv(cell.q_host))
    assert r.voltage[-1] == pytest.approx(mean_ocv, abs=1e-4)
    assert cell.open_circuit_voltage() == pytest.approx(mean_ocv, abs=1e-4)


def test_bare_cu_has_neither_diffusion_nor_a_separate_sei_wave() -> None:
    cell = build_model("li-cu", area=AREA)
    assert cell.host_modes.size == 0 and cell.sei_capacity == 0.0


# ---- state --------------------------------------------------------------------------------------------------


def test_a_cell_restored_mid_sei_and_mid_diffusion_continues_identically() -> None:
    cell = build_model("li-host", area=AREA, seed=3)
    cell.run_step(discharge(0.5 * MA_PER_CM2, until("voltage", "<=", 0.7)))  # half-way through the SEI wave
    assert 0.05 < cell.sei_share < 0.95 and abs(float(np.sum(cell.host_modes))) > 1e-3
    saved = json.loads(json.dumps(cell.state_dict()))
    twin = build_model("li-host", area=AREA)
    twin.load_state(saved)
    step = CvStep(
        index=1, scan_rate=2e-3, vertex_1=0.4, vertex_2=1.0, cycles=1, record=RecordRule(voltage_change=0.002)
    )
    for model in (cell, twin):
        model.run_step(rest(until("time", ">=", 300.0)))
    a, b = cell.run_step(step), twin.run_step(step)
    np.testing.assert_array_equal(a.t, b.t)
    np.testing.assert_array_equal(a.voltage, b.voltage)
    np.testing.assert_array_equal(a.current, b.current)
    assert cell.state_dict() == twin.state_dict()
