"""NCM622 | Li full cells: capacity at two rates, Li-inventory fade, exact terminations, Coulomb counting."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.cells import build_model

from .helpers import AREA, charge, discharge, rest, until

Q = 2.0e-3  # Ah, nominal capacity given by the cell record


def _cycle(cell, c_charge: float, c_discharge: float, v_max: float = 4.3, v_min: float = 3.0):
    up = cell.run_step(charge(c_charge * Q, until("voltage", ">=", v_max)))
    down = cell.run_step(discharge(c_discharge * Q, until("voltage", "<=", v_min)))
    return up, down


def test_tenth_c_discharge_capacity_is_within_a_few_percent_of_nominal() -> None:
    cell = build_model("ncm622-li", area=AREA, capacity=Q)
    _cycle(cell, 0.1, 0.1)
    _, down = _cycle(cell, 0.1, 0.1)
    assert abs(down.capacity[-1]) / Q == pytest.approx(1.0, abs=0.03)
    assert down.end_reason == "termination" and down.ended_by == 0


def test_half_c_discharge_delivers_visibly_less_than_tenth_c() -> None:
    slow = build_model("ncm622-li", area=AREA, capacity=Q)
    fast = build_model("ncm622-li", area=AREA, capacity=Q)
    _cycle(slow, 0.1, 0.1)
    _cycle(fast, 0.1, 0.1)
    _, d_slow = _cycle(slow, 0.1, 0.1)
    _, d_fast = _cycle(fast, 0.1, 0.5)
    ratio = d_fast.capacity[-1] / d_slow.capacity[-1]
    assert 0.85 < ratio < 0.97  # a few % to ~15 % lower, as coin cells show
    # and the mean discharge voltage is lower at the higher rate (polarisation)
    assert d_fast.energy[-1] / d_fast.capacity[-1] < d_slow.energy[-1] / d_slow.capacity[-1] - 0.02


def test_voltage_terminations_are_exact() -> None:
    cell = build_model("ncm622-li", area=AREA, capacity=Q)
    up, down = _cycle(cell, 0.2, 0.5)
    assert up.voltage[-1] == pytest.approx(4.3, abs=1e-6)
    assert down.voltage[-1] == pytest.approx(3.0, abs=1e-6)
    # the sample before the end has not yet reached the limit
    assert up.voltage[-2] < 4.3 and down.voltage[-2] > 3.0


def test_capacity_and_time_terminations_are_exact() -> None:
    cell = build_model("ncm622-li", area=AREA, capacity=Q)
    r = cell.run_step(charge(0.2 * Q, until("capacity", ">=", 0.5 * Q)))
    assert abs(r.capacity[-1]) == pytest.approx(0.5 * Q, rel=1e-9)
    assert r.duration == pytest.approx(0.5 / 0.2 * 3600.0, rel=1e-9)
    r = cell.run_step(discharge(0.2 * Q, until("time", ">=", 1234.5)))
    assert r.duration == 1234.5 and r.t[-1] == 1234.5


def test_coulomb_counting_matches_the_integral_of_current() -> None:
    cell = build_model("ncm622-li", area=AREA, capacity=Q)
    for step in (
        charge(0.2 * Q, until("voltage", ">=", 4.3), every=7.0),
        rest(until("time", ">=", 3600.0), every=60.0),
        discharge(0.5 * Q, until("voltage", "<=", 3.0), every=None, voltage_change=0.005),
    ):
        r = cell.run_step(step)
        integral = np.trapezoid(r.current, r.t) / 3600.0
        assert r.capacity[-1] == pytest.approx(integral, rel=1e-4, abs=1e-12)
        e_integral = np.trapezoid(r.current * r.voltage, r.t) / 3600.0
        assert r.energy[-1] == pytest.approx(e_integral, rel=2e-3, abs=1e-12)


def test_records_follow_the_time_rule_with_exact_first_and_last_sample() -> None:
    cell = build_model("ncm622-li", area=AREA, capacity=Q)
    r = cell.run_step(charge(0.2 * Q, until("voltage", ">=", 4.3), every=30.0))
    steps = np.diff(r.t)
    assert r.t[0] == 0.0 and r.t[-1] == r.duration
    np.testing.assert_allclose(steps[:-1], 30.0, rtol=1e-9)
    assert 0.0 < steps[-1] <= 30.0
    assert len(r) == int(np.ceil(r.duration / 30.0)) + 1


def test_voltage_change_rule_records_each_step_of_the_given_size() -> None:
    cell = build_model("ncm622-li", area=AREA, capacity=Q)
    r = cell.run_step(charge(0.2 * Q, until("voltage", ">=", 4.3), every=None, voltage_change=0.01))
    dv = np.abs(np.diff(r.voltage))[1:-1]  # the first includes the IR jump, the last is cut by the end
    assert dv == pytest.approx(np.full_like(dv, 0.01), abs=5e-4)


def test_rest_relaxes_towards_the_ocv_and_dvdt_termination_is_met() -> None:
    cell = build_model("ncm622-li", area=AREA, capacity=Q)
    cell.run_step(charge(0.5 * Q, until("capacity", ">=", 0.5 * Q)))
    r = cell.run_step(rest(until("dvdt", "<=", 1e-6), every=10.0))
    assert np.all(np.diff(r.voltage) < 0)  # the charge polarisation decays monotonically
    dvdt_end = abs(r.voltage[-1] - r.voltage[-2]) / (r.t[-1] - r.t[-2])
    assert dvdt_end == pytest.approx(1e-6, rel=0.2)
    assert r.voltage[-1] - cell.open_circuit_voltage() < 0.01


def test_anode_free_capacity_fades_as_ce_to_the_n() -> None:
    ce = 0.98
    cell = build_model("ncm622-anode-free", {"anode_ce": ce}, area=AREA, capacity=Q)
    caps = []
    for _ in range(30):
        _, down = _cycle(cell, 0.1, 0.1, v_max=4.2, v_min=2.75)
        caps.append(-down.capacity[-1])
    first_charge_like = caps[0] / ce
    n = np.arange(1, 31)
    np.testing.assert_allclose(caps, first_charge_like * ce**n, rtol=5e-3)


def test_pre_deposited_cell_holds_capacity_while_the_reservoir_lasts() -> None:
    cell = build_model("ncm622-li", area=AREA, capacity=Q)
    free = build_model("ncm622-anode-free", area=AREA, capacity=Q)
    caps, caps_free, plated = [], [], 0.0
    for _ in range(20):
        up, down = _cycle(cell, 0.2, 0.5)
        plated += up.capacity[-1]
        caps.append(-down.capacity[-1])
        caps_free.append(-_cycle(free, 0.2, 0.5)[1].capacity[-1])
    assert caps[-1] / caps[1] == pytest.approx(1.0, abs=1e-3)
    # at 0.5C the discharge stops on cathode polarisation and leaves some Li on the bare anode, which buffers
    # the loss for a while: slower than 0.99^18 = 0.83 at first, but clearly fading
    assert caps_free[-1] / caps_free[1] < 0.9
    # the reservoir paid for the loss, (1 - CE) of every Ah plated during the charges
    assert cell.dead_li == pytest.approx(0.01 * plated, rel=1e-9)
    # Li is conserved: active + dead Li on the anode = the pre-deposited Li + what the cathode gave up (s * Q)
    assert cell.li_inventory + cell.dead_li == pytest.approx(4e-3 * 1.131 + cell.s * Q, rel=1e-9)
