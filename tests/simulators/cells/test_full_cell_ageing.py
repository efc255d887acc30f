"""NCM622 | Li full cells over their life: first-cycle loss, gradual cathode fade, Li exhaustion (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.cells import build_model

from .helpers import AREA, charge, discharge, rest, until

Q = 2.2575e-3  # Ah: the library cells' 12.9 mg NCM622 at 175 mAh/g
WINDOWS = {"ncm622-li": (3.0, 4.3), "ncm622-anode-free": (2.75, 4.2)}  # P3 and P4


def _cycle(cell, c_charge: float, c_discharge: float, window: tuple[float, float]):
    v_min, v_max = window
    up = cell.run_step(charge(c_charge * Q, until("voltage", ">=", v_max)))
    down = cell.run_step(discharge(c_discharge * Q, until("voltage", "<=", v_min), every=5.0))
    return up, down


@pytest.mark.parametrize("model", sorted(WINDOWS))
def test_first_cycle_ce_is_85_to_90_percent_and_later_cycles_stay_above_99(model: str) -> None:
    cell = build_model(model, area=AREA, capacity=Q)
    ces = []
    for n in range(5):
        up, down = _cycle(cell, 0.1, 0.1, WINDOWS[model])
        ces.append(-down.capacity[-1] / up.capacity[-1])
        if n == 0:
            # the first charge is the only one that reaches new depths: a first_cycle_loss share of it is lost
            assert cell.loss == pytest.approx(0.125 * cell.s_max, rel=1e-12)
            # and 0.2 % of the charge current oxidised the electrolyte instead of delithiating the cathode
            assert cell.s_max * Q == pytest.approx(0.998 * up.capacity[-1], rel=1e-12)
    assert 0.85 <= ces[0] <= 0.90, ces
    assert all(0.99 < ce < 1.0 for ce in ces[1:]), ces
    # later charges stay within the first one's depth (the fading window shrinks): no more first-cycle loss
    assert cell.loss == pytest.approx(0.125 * cell.s_max, rel=1e-12)


def test_a_deeper_charge_than_ever_before_adds_first_cycle_loss_on_the_new_part_only() -> None:
    cell = build_model("ncm622-li", area=AREA, capacity=Q)
    _cycle(cell, 0.1, 0.1, (3.0, 4.2))
    loss_42, s_max_42 = cell.loss, cell.s_max
    cell.run_step(charge(0.1 * Q, until("voltage", ">=", 4.3)))
    assert cell.s_max > s_max_42
    assert cell.loss - loss_42 == pytest.approx(0.125 * (cell.s_max - s_max_42), rel=1e-9)


def test_capacity_fades_gradually_from_the_cathode_side_over_50_cycles() -> None:
    """P3's cycling (0.2C charge, 0.5C discharge) after two 0.1C formation cycles: the pre-deposited Li lasts
    far longer than 50 cycles, so the fade is the cathode's own: 0.03 % of its active material per cycle."""
    cell = build_model("ncm622-li", area=AREA, capacity=Q)
    for _ in range(2):
        _cycle(cell, 0.1, 0.1, (3.0, 4.3))
    caps, charged, fades = [], [], [cell.fade]
    for _ in range(50):
        up, down = _cycle(cell, 0.2, 0.5, (3.0, 4.3))
        charged.append(up.capacity[-1])
        caps.append(-down.capacity[-1])
        fades.append(cell.fade)
    caps = np.asarray(caps)
    per_cycle = 1.0 - caps[1:] / caps[:-1]
    # no plateau and no knee: every cycle loses a little, all about the same
    assert np.all(per_cycle > 0.0)
    # documented range for cathode-limited NCM622 cells at 3.0-4.3 V: 0.02-0.05 % per cycle
    assert np.all((per_cycle > 2e-4) & (per_cycle < 5e-4)), per_cycle
    assert per_cycle.max() < 1.01 * per_cycle.min()
    assert caps[-1] / caps[0] == pytest.approx(0.985, abs=1e-3)
    # the active material lost is cathode_fade (3e-4) per nominal capacity of charge passed, exactly
    np.testing.assert_allclose(np.diff(fades), 3e-4 * np.asarray(charged) / Q, rtol=1e-9)
    # the discharge capacity follows the remaining material; at 0.5C a touch faster, because the same current
    # on less material is a higher rate on it (a larger diffusion offset)
    np.testing.assert_allclose(
        caps[1:] / caps[:-1], (1 - np.asarray(fades[2:])) / (1 - np.asarray(fades[1:-1])), rtol=5e-5
    )


def _until_li_runs_out(cell, rate: float, window: tuple[float, float], cycles: int, times: int = 1):
    """Cycle until discharges have run the anode's metallic Li out ``times`` times; the last such discharge and
    the Li on the anode before it."""
    for _ in range(cycles):
        cell.run_step(charge(rate * Q, until("voltage", ">=", window[1])))
        li_before = cell.li_inventory
        down = cell.run_step(discharge(rate * Q, until("voltage", "<=", window[0]), every=1.0))
        if cell.li_inventory < 0.0 < li_before:
            times -= 1
            if times == 0:
                return down, li_before
    raise AssertionError("the anode did not run out of Li often enough")


def test_li_exhaustion_ends_the_discharge_in_a_steep_but_finite_decline_at_half_c() -> None:
    """Once the metallic Li is gone, the anode gives back the Li held in its LLTO@CNT host at a rising potential
    (0.25 mAh/cm^2 of reserve): the cell voltage falls by ~0.6 V over a few % of the capacity, minutes at C/2,
    where a bare cut-off would take microseconds."""
    cell = build_model("ncm622-anode-free", {"anode_ce": 0.9}, area=AREA, capacity=Q)
    # the first time the Li runs out the cathode is nearly full too; the third time the anode clearly limits
    down, li_before = _until_li_runs_out(cell, 0.5, (2.75, 4.2), 8, times=3)
    i = 0.5 * Q
    t_dry = li_before / (i / 3600.0)  # the instant the metallic Li runs out
    tail = down.t >= t_dry
    span = down.duration - t_dry
    share = span * i / 3600.0 / Q
    v_dry = float(np.interp(t_dry, down.t, down.voltage))
    print(f"Li runs out at {t_dry:.1f} s and {v_dry:.3f} V; the decline to 2.75 V takes {span:.1f} s, "
          f"{100 * share:.2f} % of the capacity")  # fmt: skip
    assert 60.0 < span < 900.0  # steep, but a finite stretch of the record
    assert 0.01 < share < 0.08
    assert v_dry - 2.75 > 0.5
    # the first 0.2 V of the drop comes fast (the host's Li near 0 V is little), the rest slower
    t_02 = float(np.interp(-(v_dry - 0.2), -down.voltage[tail], down.t[tail]))
    assert t_02 - t_dry < 0.3 * span
    # what came from the host is exactly the charge passed after the Li ran out
    assert -cell.li_inventory == pytest.approx(span * i / 3600.0, rel=1e-9)
    assert np.all(np.diff(down.voltage) <= 1e-9)


def test_li_exhaustion_is_reported_once_at_the_instant_it_happens() -> None:
    cell = build_model("ncm622-anode-free", {"anode_ce": 0.9}, area=AREA, capacity=Q)
    cell.drain_events()
    _, li_before = _until_li_runs_out(cell, 0.5, (2.75, 4.2), 6)
    events = cell.drain_events()
    assert [e.kind for e in events] == ["li-exhausted"]
    assert events[0].step_time == pytest.approx(li_before / (0.5 * Q / 3600.0), rel=1e-12)
    assert "metallic Li is used up" in events[0].message
    _cycle(cell, 0.5, 0.5, (2.75, 4.2))  # anode-limited again: no repeat warning every cycle
    assert cell.drain_events() == []


def test_a_rest_after_li_exhaustion_relaxes_without_moving_the_anode() -> None:
    cell = build_model("ncm622-anode-free", {"anode_ce": 0.9}, area=AREA, capacity=Q)
    _until_li_runs_out(cell, 0.5, (2.75, 4.2), 6)
    li = cell.li_inventory
    r = cell.run_step(rest(until("time", ">=", 7200.0), every=60.0))
    assert cell.li_inventory == li
    assert np.all(np.diff(r.voltage) >= 0.0)  # the discharge polarisation decays: V recovers
    assert r.voltage[-1] == pytest.approx(cell.open_circuit_voltage(), abs=1e-3)
