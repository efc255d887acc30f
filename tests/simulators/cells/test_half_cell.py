"""Li | host half cells: host lithiation, plating with nucleation, CE, the Li room flag."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.cells import build_model

from .helpers import AREA, MA_PER_CM2, MAH_PER_CM2, charge, discharge, until


def _lithiate(cell, j: float = 0.5 * MA_PER_CM2):
    return cell.run_step(discharge(j, until("voltage", "<=", 0.0), every=10.0))


def test_host_lithiates_from_its_ocv_to_zero_volts_with_a_finite_capacity() -> None:
    cell = build_model("li-host", area=AREA)
    assert cell.open_circuit_voltage() == pytest.approx(2.8)
    r = _lithiate(cell, 0.05 * MA_PER_CM2)
    assert r.voltage[-1] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.diff(r.voltage) < 0)
    # at a low rate nearly all of the host capacity (0.25 mAh/cm^2 default) is used before 0 V
    assert -r.capacity[-1] == pytest.approx(0.25 * MAH_PER_CM2, rel=0.05)


def test_plating_four_mah_per_cm2_at_half_ma_per_cm2_ends_at_eight_hours() -> None:
    cell = build_model("li-host", area=AREA)
    _lithiate(cell)
    r = cell.run_step(discharge(0.5 * MA_PER_CM2, until("capacity", ">=", 4.0 * MAH_PER_CM2), every=60.0))
    assert r.duration / 3600.0 == pytest.approx(8.000, abs=5e-4)
    assert r.t[-1] == r.duration
    assert -r.capacity[-1] == pytest.approx(4.0 * MAH_PER_CM2, rel=1e-9)
    assert np.all(r.voltage[r.t > 600] < 0)  # Li plates below 0 V vs Li
    assert not cell.beyond_host_room  # 4 mAh/cm^2 fits the 4.27 mAh/cm^2 of pore volume


def test_plating_shows_a_nucleation_dip_then_a_plateau() -> None:
    cell = build_model("li-host", area=AREA)
    _lithiate(cell)
    r = cell.run_step(discharge(0.5 * MA_PER_CM2, until("capacity", ">=", 1.0 * MAH_PER_CM2), every=5.0))
    plateau = r.voltage[-1]
    dip = r.voltage.min()
    t_dip = r.t[np.argmin(r.voltage)]
    assert 0 < t_dip < 600  # within the first minutes
    assert plateau - dip == pytest.approx(0.009, abs=0.004)  # ~10 mV nucleation peak on the host
    assert -0.030 < plateau < -0.010


def test_plateau_overpotential_grows_with_current_density() -> None:
    plateaus = []
    for j in (0.25, 0.5, 1.0, 2.0, 4.0):
        cell = build_model("li-host", area=AREA)
        _lithiate(cell, j * MA_PER_CM2)
        r = cell.run_step(discharge(j * MA_PER_CM2, until("capacity", ">=", 1.0 * MAH_PER_CM2)))
        plateaus.append(-r.voltage[-1])
    assert np.all(np.diff(plateaus) > 0)
    assert 0.010 < plateaus[1] < 0.030 and 0.040 < plateaus[3] < 0.090


def test_bare_cu_has_a_larger_nucleation_overpotential_than_the_host() -> None:
    dips = {}
    for model in ("li-host", "li-cu"):
        cell = build_model(model, area=AREA)
        _lithiate(cell)
        r = cell.run_step(discharge(0.5 * MA_PER_CM2, until("capacity", ">=", 1.0 * MAH_PER_CM2), every=2.0))
        dips[model] = r.voltage[-1] - r.voltage.min()
    assert dips["li-cu"] > 3 * dips["li-host"]
    assert dips["li-cu"] == pytest.approx(0.047, abs=0.01)


@pytest.mark.parametrize(("model", "ce", "tol"), [("li-cu", 0.95, 2e-4), ("li-host", 0.99, 1e-3)])
def test_ce_over_fifty_cycles_matches_the_configured_value(model: str, ce: float, tol: float) -> None:
    cell = build_model(model, area=AREA)
    j, q = 2.0 * MA_PER_CM2, 2.0 * MAH_PER_CM2
    cell.run_step(discharge(j, until("voltage", "<=", 0.0)))
    ces = []
    for _ in range(50):
        plate = cell.run_step(discharge(j, until("capacity", ">=", q)))
        strip = cell.run_step(charge(j, until("voltage", ">=", 1.0)))
        assert strip.voltage[-1] == pytest.approx(1.0, abs=1e-6)
        ces.append(strip.capacity[-1] / -plate.capacity[-1])
    # from the second cycle on (the first also returns the first lithiation of the host)
    np.testing.assert_allclose(ces[1:], ce, atol=tol)
    # the Li lost is (1 - CE) of the Li plated; a li-host plate step also re-lithiates the host a little
    assert 0.95 * (1 - ce) * 50 * q < cell.dead_li <= (1 - ce) * 50 * q * (1 + 1e-9)


def test_strip_ends_when_the_plated_li_is_gone_and_the_voltage_rises() -> None:
    cell = build_model("li-cu", area=AREA)
    j = 1.0 * MA_PER_CM2
    cell.run_step(discharge(j, until("voltage", "<=", 0.0)))
    cell.run_step(discharge(j, until("capacity", ">=", 1.0 * MAH_PER_CM2)))
    r = cell.run_step(charge(j, until("voltage", ">=", 1.0), every=1.0))
    li_gone = r.t[np.argmax(r.voltage > 0.1)]
    # 95 % of the plated 1 mAh/cm^2 comes back at 1 mA/cm^2: 0.95 h of stripping, then a fast rise
    assert li_gone / 3600 == pytest.approx(0.95, abs=0.002)
    assert np.all(r.voltage[r.t < li_gone - 60] < 0.05)
    assert r.duration - li_gone < 60


def test_plating_beyond_the_host_room_is_flagged() -> None:
    cell = build_model("li-host", area=AREA)
    _lithiate(cell)
    cell.run_step(discharge(1.0 * MA_PER_CM2, until("capacity", ">=", 4.0 * MAH_PER_CM2)))
    assert not cell.beyond_host_room
    cell.run_step(discharge(1.0 * MA_PER_CM2, until("capacity", ">=", 0.5 * MAH_PER_CM2)))
    assert cell.beyond_host_room
    assert cell.state_dict()["state"]["beyond_host_room"] is True
