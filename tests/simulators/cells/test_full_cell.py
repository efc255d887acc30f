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


def test_two_c_discharge_starts_with_a_realistic_drop_and_falls_monotonically() -> None:
    """Issue 12: the polarisation factor was applied to the window SOC, so 4.3 V looked fully delithiated: a
    2C discharge dropped 440 mV and then rose by 40 mV. On the true NCM622 stoichiometry (~36 % Li left at the
    top) the charge-transfer resistance is nearly flat there."""
    cell = build_model("ncm622-li", area=AREA, capacity=Q)
    _cycle(cell, 0.1, 0.1)
    cell.run_step(charge(0.1 * Q, until("voltage", ">=", 4.3)))
    cell.run_step(rest(until("time", ">=", 6 * 3600.0)))
    ocv = cell.open_circuit_voltage()
    i = 2.0 * Q
    r = cell.run_step(discharge(i, until("voltage", "<=", 3.0), every=1.0))
    # at the switch only the electrolyte and the Li anode answer (the cathode's double layer holds its voltage)
    vt = 8.314462618 * 300.15 / 96485.33212
    r0, i0 = 8e-4 / AREA, 20.0 * AREA
    assert ocv - r.voltage[0] == pytest.approx(i * r0 + 2 * vt * np.arcsinh(i / (2 * i0)), rel=1e-9)
    # a second later the cathode's charge transfer (12 ohm cm^2 x ~1.04 near the top) has built up too
    assert 0.080 < ocv - r.voltage[1] < 0.150
    assert np.all(np.diff(r.voltage) <= 1e-9)


def _li_balance(cell) -> float:
    """Li on the anode (active + dead) minus what came out of the cathode and the pre-deposited Li, Ah."""
    return cell.li_inventory + cell.dead_li - (cell.p.li_excess * cell.area + cell.s * Q)


def test_anode_free_capacity_holds_on_the_first_cycle_reservoir_then_fades_as_ce_to_the_n() -> None:
    """The Li the cathode cannot take back after its first charge stays on the anode: a small reservoir that
    the anode's (1 - CE) eats in about 13 cycles; after that every cycle loses (1 - CE) of the Li it plates."""
    ce = 0.98
    cell = build_model("ncm622-anode-free", {"anode_ce": ce}, area=AREA, capacity=Q)
    caps, li_after = [], []
    for _ in range(30):
        _, down = _cycle(cell, 0.1, 0.1, v_max=4.2, v_min=2.75)
        caps.append(-down.capacity[-1])
        li_after.append(cell.li_inventory)
    caps = np.asarray(caps)
    drops = 1.0 - caps[1:] / caps[:-1]
    reservoir = [n for n, li in enumerate(li_after) if li > 0.0]
    assert 4 <= len(reservoir) <= 8  # (1.14 x 0.98 - 1) Q of reservoir, ~0.02 Q eaten per cycle
    # while it lasts: only the cathode's own fade (0.03 % per cycle)
    assert np.all((drops[: reservoir[-1]] > 2e-4) & (drops[: reservoir[-1]] < 4e-4))
    # then the anode limits: the loss per cycle approaches (1 - CE), never a cliff within one cycle
    assert drops[-5:] == pytest.approx(np.full(5, 1.0 - ce), rel=0.15)
    assert drops.max() < 1.3 * (1.0 - ce)
    assert _li_balance(cell) == pytest.approx(0.0, abs=1e-12)


def test_pre_deposited_cell_is_cathode_limited_while_the_reservoir_lasts() -> None:
    cell = build_model("ncm622-li", area=AREA, capacity=Q)
    free = build_model("ncm622-anode-free", area=AREA, capacity=Q)
    caps, caps_free, plated = [], [], 0.0
    for _ in range(30):
        up, down = _cycle(cell, 0.2, 0.5)
        plated += up.capacity[-1]
        caps.append(-down.capacity[-1])
        caps_free.append(-_cycle(free, 0.2, 0.5)[1].capacity[-1])
    # cathode-limited: only the cathode's slow fade, identical for both cells while they have Li to spare
    assert caps[-1] / caps[1] == pytest.approx(1.0 - 28 * 3.05e-4, abs=3e-4)
    assert caps_free[1:6] == pytest.approx(caps[1:6], rel=1e-9)
    # the anode-free cell's small reservoir (the first-cycle loss, plus the Li a 0.5C discharge leaves because it
    # stops short of the fully lithiated cathode) is gone after ~20 cycles, the other's 4 mAh/cm^2 is not
    assert caps_free[-1] / caps_free[1] < 0.95
    assert cell.li_inventory > 0.5 * cell.p.li_excess * AREA
    # the reservoir paid for the loss, (1 - CE) of every Ah plated (the cathode's oxidation share plates nothing)
    assert cell.dead_li == pytest.approx(0.01 * 0.998 * plated, rel=1e-9)
    # Li is conserved: active + dead Li on the anode = the pre-deposited Li + what the cathode gave up (s * Q)
    assert _li_balance(cell) == pytest.approx(0.0, abs=1e-12)
