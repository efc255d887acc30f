"""Li | host half cells: host lithiation, plating with nucleation, stripping, and Li grown beyond the host's room.

CE with history, temperature, the record's OCV and the saved state have their own files (test_half_cell_*.py).
"""

from __future__ import annotations

import math

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
    # at a low rate nearly all of the host capacity (0.25 mAh/cm^2 default) and its first-cycle SEI (0.05) are
    # used before 0 V
    assert -r.capacity[-1] == pytest.approx(0.30 * MAH_PER_CM2, rel=0.05)


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
    _lithiate(cell, 0.01 * MA_PER_CM2)  # slowly: the host's bulk is full when its surface reaches 0 V
    r = cell.run_step(discharge(0.5 * MA_PER_CM2, until("capacity", ">=", 1.0 * MAH_PER_CM2), every=5.0))
    plateau = r.voltage[-1]
    dip = r.voltage.min()
    t_dip = r.t[np.argmin(r.voltage)]
    assert 0 < t_dip < 600  # within the first minutes
    assert plateau - dip == pytest.approx(0.009, abs=0.004)  # ~10 mV nucleation peak on the host
    # both Li interfaces (the host's deposit and the foil counter electrode) and the ohmic drop: 20-40 mV
    assert -0.040 < plateau < -0.020


def test_plateau_overpotential_grows_with_current_density() -> None:
    plateaus = []
    for j in (0.25, 0.5, 1.0, 2.0, 4.0):
        cell = build_model("li-host", area=AREA)
        _lithiate(cell, j * MA_PER_CM2)
        r = cell.run_step(discharge(j * MA_PER_CM2, until("capacity", ">=", 1.0 * MAH_PER_CM2)))
        plateaus.append(-r.voltage[-1])
    assert np.all(np.diff(plateaus) > 0)
    # both Li interfaces (host deposit and foil counter electrode, 1 mA/cm^2 exchange current each) and 4 ohm cm^2:
    # 2 x 2 (RT/F) asinh(j / 2 j0) + R0 j is 31 mV at 0.5 mA/cm^2 and 111 mV at 2 mA/cm^2 at 27 degC
    assert 0.020 < plateaus[1] < 0.040 and 0.080 < plateaus[3] < 0.140


def test_bare_cu_has_a_larger_nucleation_overpotential_than_the_host() -> None:
    dips = {}
    for model in ("li-host", "li-cu"):
        cell = build_model(model, area=AREA)
        _lithiate(cell)
        r = cell.run_step(discharge(0.5 * MA_PER_CM2, until("capacity", ">=", 1.0 * MAH_PER_CM2), every=2.0))
        dips[model] = r.voltage[-1] - r.voltage.min()
    assert dips["li-cu"] > 3 * dips["li-host"]
    assert dips["li-cu"] == pytest.approx(0.047, abs=0.01)


def test_strip_ends_when_the_plated_li_is_gone_and_the_voltage_rises() -> None:
    cell = build_model("li-cu", area=AREA)
    j = 1.0 * MA_PER_CM2
    cell.run_step(discharge(j, until("voltage", "<=", 0.0)))
    cell.run_step(discharge(j, until("capacity", ">=", 1.0 * MAH_PER_CM2)))
    r = cell.run_step(charge(j, until("voltage", ">=", 1.0), every=1.0))
    li_gone = r.t[np.argmax(r.voltage > 0.1)]
    # the first 1 mAh/cm^2 on Cu at 1 mA/cm^2 (the CE law's reference conditions) loses 1 - CE = 4 % (a 2 % per Ah
    # and S/(Q + q_c) = 2 % of cycle surface SEI) and the once-only SEI of bare Cu, 0.03 Q/(Q + 0.1) mAh/cm^2:
    # 0.9327 h of stripping, then a fast rise
    assert li_gone / 3600 == pytest.approx(1.0 - 0.04 - 0.03 / 1.1, abs=0.002)
    assert np.all(r.voltage[r.t < li_gone - 60] < 0.08)  # stripping overpotential of both Li interfaces
    assert r.duration - li_gone < 60


def _p1(plate: float, j: float = 0.5 * MA_PER_CM2, every: float = 60.0):
    """P1 on the library host record (0.5 mAh/cm^2 of host capacity): lithiate to 0 V, plate ``plate`` mAh/cm^2."""
    cell = build_model("li-host", area=AREA, capacity=0.5 * MAH_PER_CM2, ocv=2.8)
    _lithiate(cell, j)
    r = cell.run_step(discharge(j, until("capacity", ">=", plate * MAH_PER_CM2), every=every))
    return cell, r


def test_plating_beyond_the_host_room_moves_the_plateau_to_the_outer_face() -> None:
    cell, r = _p1(5.0)
    room = 45e-6 * 0.46 * 2.061e6 * AREA  # Ah: 4.27 mAh/cm^2 of pore volume on the disk
    assert cell.host_room == pytest.approx(room, rel=1e-12)
    [event] = cell.drain_events()
    inside = r.t < event.step_time
    plateau = r.voltage[inside & (r.t > 3600)]
    # within the pores the plateau is flat (the dip and the RC are long over) ...
    np.testing.assert_allclose(plateau, plateau[-1], atol=1e-9)
    # ... and from the moment the pores are full it moves down, to Li plating on the host's outer face
    after = r.voltage[~inside]
    assert np.all(after < plateau[-1]) and np.all(np.diff(after) < 0)
    vt = 8.314462618 * 300.15 / 96485.33212
    i = 0.5 * MA_PER_CM2

    def eta(j0: float) -> float:  # Butler-Volmer at exchange current density j0 (A/m^2)
        return 2 * vt * math.asinh(i / (2 * j0 * AREA))

    shift = eta(3.0) - eta(10.0)  # outer face 0.3 mA/cm^2 against 1 mA/cm^2 in the pores
    assert 0.020 < shift < 0.035
    excess = cell.li + cell.dead_li - room
    width = 0.1 * MAH_PER_CM2
    assert plateau[-1] - r.voltage[-1] == pytest.approx(shift * (1 - math.exp(-excess / width)), abs=1e-9)


def test_over_plating_raises_one_event_with_plated_and_room_when_it_starts() -> None:
    cell, r = _p1(5.0)
    events = cell.drain_events()
    assert [e.kind for e in events] == ["over-plating"]
    event = events[0]
    assert cell.beyond_host_room and cell.state_dict()["state"]["beyond_host_room"] is True
    per_cm2 = 1e3 / (AREA * 1e4)
    assert f"{(cell.li + cell.dead_li) * per_cm2:.3f} mAh/cm^2 of Li" in event.message
    assert "pore room of 4.266 mAh/cm^2" in event.message
    # it starts where the Li in the pores reaches the room: the charge left to plate after the event is the excess
    left = (r.duration - event.step_time) * 0.5 * MA_PER_CM2 / 3600
    assert left == pytest.approx(cell.li + cell.dead_li - cell.host_room, rel=1e-9)
    # plating on beyond the room again, or stripping and re-plating, raises nothing new
    cell.run_step(discharge(0.5 * MA_PER_CM2, until("capacity", ">=", 0.2 * MAH_PER_CM2)))
    cell.run_step(charge(0.5 * MA_PER_CM2, until("voltage", ">=", 1.0)))
    cell.run_step(discharge(0.5 * MA_PER_CM2, until("capacity", ">=", 5.0 * MAH_PER_CM2)))
    assert cell.drain_events() == []


def test_plating_within_the_room_raises_nothing_and_keeps_the_plateau() -> None:
    cell, r = _p1(4.0)
    assert not cell.beyond_host_room
    assert cell.drain_events() == []
    late = r.voltage[r.t > 3600]
    # 4 mAh/cm^2 fills the pores to within ~0.27 mAh/cm^2: no outer-face plating to speak of (< 0.1 mV)
    assert np.ptp(late) < 1e-4


def test_bare_cu_has_no_room_and_never_reports_over_plating() -> None:
    cell = build_model("li-cu", area=AREA)
    _lithiate(cell)
    r = cell.run_step(discharge(1.0 * MA_PER_CM2, until("capacity", ">=", 8.0 * MAH_PER_CM2), every=600))
    assert cell.host_room == 0.0 and not cell.beyond_host_room
    assert cell.drain_events() == []
    assert np.ptp(r.voltage[r.t > 3600]) < 1e-6


def test_a_step_re_run_from_its_saved_state_reports_over_plating_once() -> None:
    # an instrument runs a step twice from the same state (a change-record pass, or a cut at a pause): the cell
    # over-plated once
    cell = build_model("li-host", area=AREA, capacity=0.5 * MAH_PER_CM2)
    _lithiate(cell)
    saved = cell.state_dict()
    step = discharge(0.5 * MA_PER_CM2, until("capacity", ">=", 5.0 * MAH_PER_CM2))
    first = cell.run_step(step)
    cell.load_state(saved)
    assert not cell.beyond_host_room
    second = cell.run_step(step)
    np.testing.assert_array_equal(first.voltage, second.voltage)
    assert cell.beyond_host_room
    assert [e.kind for e in cell.drain_events()] == ["over-plating"]
