"""An instrument's fastest sampling: no two records closer, none at the instant the control switches."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.cells import build_model
from tests.simulators.cells.helpers import AREA, MA_PER_CM2, charge, discharge, rest, until


def _full_cell():
    return build_model("ncm622-li", area=AREA, capacity=2.2575e-3, seed=None)


@pytest.mark.parametrize(
    "rule", [{"every": 30.0}, {"every": 30.0, "voltage_change": 1e-3}, {"every": None, "voltage_change": 5e-4}]
)
def test_records_keep_the_sample_period_and_the_exact_end(rule):
    cell = _full_cell()
    step = charge(0.1 * 2.2575e-3, until("voltage", ">=", 4.3), **rule)
    res = cell.run_step(step, sample_period=0.1)
    assert res.t[0] == pytest.approx(0.1)  # the first sample one period after the switch
    assert np.all(np.diff(res.t) >= 0.1 - 1e-9)
    assert res.voltage[-1] == pytest.approx(4.3, abs=1e-3)  # the end is still found exactly
    # the capacity is still the charge passed since the switch, counted from the switch, not the first record
    assert res.capacity[0] == pytest.approx(res.current[0] * 0.1 / 3600, rel=1e-9)
    assert res.capacity[-1] == pytest.approx(res.current[-1] * res.duration / 3600, rel=1e-9)


def test_consecutive_steps_never_share_an_instant():
    cell = _full_cell()
    t0, times = 0.0, []
    for step in (rest(until("time", ">=", 600.0), every=60.0),
                 charge(0.5 * 2.2575e-3, until("voltage", ">=", 4.3), every=60.0),
                 discharge(0.5 * 2.2575e-3, until("voltage", "<=", 3.0), every=60.0)):  # fmt: skip
        res = cell.run_step(step, sample_period=0.1)
        times.extend(t0 + res.t)
        t0 += res.duration
    assert np.all(np.diff(times) > 0)


def test_a_step_shorter_than_the_period_has_only_its_end():
    res = _full_cell().run_step(rest(until("time", ">=", 0.05), every=1.0), sample_period=0.1)
    assert list(res.t) == pytest.approx([0.05])


def test_without_a_period_the_first_record_is_the_switch():
    res = _full_cell().run_step(discharge(0.5 * MA_PER_CM2, until("time", ">=", 100.0), every=10.0))
    assert res.t[0] == 0.0 and res.capacity[0] == 0.0
