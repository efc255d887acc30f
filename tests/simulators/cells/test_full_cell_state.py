"""NCM622 | Li full cells: placed at the cell record's OCV, and saved/restored anywhere in their life."""

from __future__ import annotations

import json

import numpy as np
import pytest

from protocols.cells import load_cell
from protocols.library import resolve_cell_path
from simulators.cells import ParameterError, build_model

from .helpers import AREA, charge, discharge, rest, until

Q = 2.2575e-3
MODELS = ("ncm622-li", "ncm622-anode-free")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("ocv", [2.5, 3.0, 3.3, 3.6, 3.8, 4.0, 4.25, 4.4])
def test_the_cell_starts_exactly_at_the_record_ocv(model: str, ocv: float) -> None:
    cell = build_model(model, area=AREA, capacity=Q, ocv=ocv)
    assert cell.open_circuit_voltage() == pytest.approx(ocv, abs=1e-12)
    assert cell.rest_voltage() == pytest.approx(ocv, abs=1e-12)
    # as assembled: nothing lost yet, and the first-cycle loss applies beyond this point only
    assert cell.loss == 0.0 and cell.fade == 0.0 and cell.s_max == cell.s


def test_a_cell_placed_higher_on_its_ocv_needs_correspondingly_less_first_charge() -> None:
    low = build_model("ncm622-li", area=AREA, capacity=Q, ocv=3.0)
    mid = build_model("ncm622-li", area=AREA, capacity=Q, ocv=3.8)
    s_low, s_mid = low.s, mid.s
    q_low = low.run_step(charge(0.1 * Q, until("voltage", ">=", 4.3))).capacity[-1]
    q_mid = mid.run_step(charge(0.1 * Q, until("voltage", ">=", 4.3))).capacity[-1]
    # 3.8 V is x = 0.5 of the window: half the window's charge, stretched by the first-cycle loss on the new part
    # (rel 1e-3: the cathode fade of the longer charge shifts its top a hair)
    assert (q_low - q_mid) / Q == pytest.approx((s_mid - s_low) / (0.998 * (1.0 - 0.125)), rel=1e-3)
    assert s_mid - s_low == pytest.approx(0.5, abs=2e-3)


@pytest.mark.parametrize("ocv", [2.0, 2.39, 4.41, 5.0])
def test_an_ocv_outside_the_ncm622_curve_is_refused_naming_the_valid_range(ocv: float) -> None:
    with pytest.raises(ParameterError, match=r"ocv .* V: its NCM622 cathode's OCV spans 2\.400-4\.400 V"):
        build_model("ncm622-li", area=AREA, capacity=Q, ocv=ocv)


@pytest.mark.parametrize("name", ["predeposited-ncm622", "anode-free-ncm622"])
def test_the_library_cells_start_at_their_3_v(name: str) -> None:
    record = load_cell(resolve_cell_path(name))
    cell = build_model(record.model_type, record.model_params, area=record.area, capacity=record.capacity, ocv=3.0)
    assert cell.open_circuit_voltage() == pytest.approx(3.0, abs=1e-12)
    up = cell.run_step(charge(0.1 * record.capacity, until("voltage", ">=", 4.3)))
    assert 1.10 < up.capacity[-1] / record.capacity < 1.20  # the first charge: ~200 of 175 mAh/g


def _life(cell) -> None:
    """Formation, a deep cycle, and a half charge: every new state variable away from its start."""
    for c_rate in (0.1, 0.5):
        cell.run_step(charge(c_rate * Q, until("voltage", ">=", 4.3)))
        cell.run_step(discharge(c_rate * Q, until("voltage", "<=", 2.75)))
    cell.run_step(charge(0.3 * Q, until("capacity", ">=", 0.4 * Q)))


@pytest.mark.parametrize(
    ("model", "params"),
    [("ncm622-li", None), ("ncm622-anode-free", None), ("ncm622-anode-free", {"anode_ce": 0.85})],
)
def test_a_saved_and_restored_cell_continues_identically(model: str, params: dict | None) -> None:
    a = build_model(model, params, area=AREA, capacity=Q, seed=3, temperature=310.0)
    _life(a)
    a.set_temperature(320.0)
    a.drain_events()
    saved = json.loads(json.dumps(a.state_dict()))
    assert {"s", "loss", "s_max", "fade", "delta", "v1", "li", "dead_li", "li_exhausted"} <= set(saved["state"])
    b = build_model(model, area=AREA, capacity=Q, seed=99)
    b.load_state(saved)
    assert b.state_dict() == a.state_dict()
    for step in (
        rest(until("time", ">=", 600.0)),
        discharge(Q, until("voltage", "<=", 2.75), every=5.0),
        charge(0.2 * Q, until("voltage", ">=", 4.3), every=30.0),
        discharge(0.5 * Q, until("voltage", "<=", 2.75), every=None, voltage_change=0.005),
    ):
        ra, rb = a.run_step(step), b.run_step(step)
        np.testing.assert_array_equal(ra.voltage, rb.voltage)
        np.testing.assert_array_equal(ra.t, rb.t)
        assert a.drain_events() == b.drain_events()
    assert a.state_dict() == b.state_dict()
    np.testing.assert_array_equal(a.impedance(np.logspace(4, -2, 13)), b.impedance(np.logspace(4, -2, 13)))
