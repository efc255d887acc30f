"""One constructor for all models, clear errors, and state that survives a JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulators.cells import MODEL_TYPES, CellModel, ParameterError, StateError, UnknownModelError, build_model

from .helpers import AREA, MA_PER_CM2, MAH_PER_CM2, charge, discharge, rest, until

ALL = ["ncm622-li", "ncm622-anode-free", "li-host", "li-cu", "li-llto", "blocking"]


def test_all_model_types_are_registered_and_build() -> None:
    assert sorted(MODEL_TYPES) == sorted(ALL)
    for name in ALL:
        cell = build_model(name, area=AREA, capacity=2e-3, thickness=45e-6, seed=1)
        assert isinstance(cell, CellModel)
        assert cell.type_name == name
        assert np.isfinite(cell.open_circuit_voltage())


def test_unknown_model_and_parameter_names_are_refused_with_the_valid_names() -> None:
    with pytest.raises(UnknownModelError, match=r"'nmc'.*valid models: blocking, li-cu"):
        build_model("nmc")
    with pytest.raises(ParameterError, match=r"no parameter 'ce_anode'; valid parameters: .*anode_ce"):
        build_model("ncm622-li", {"ce_anode": 0.9})
    with pytest.raises(ValueError, match=r"'ce' = 1.5 1 is above its maximum 1"):
        build_model("li-host", {"ce": 1.5})
    with pytest.raises(ValueError, match=r"area must be a positive number in m\^2"):
        build_model("li-host", area=-1.0)


def test_parameters_override_the_defaults() -> None:
    ratios = {}
    for ce in (0.8, None):
        cell = build_model("li-cu", {"ce": ce} if ce else None, area=AREA)
        j = MA_PER_CM2
        cell.run_step(discharge(j, until("voltage", "<=", 0.0)))
        plate = cell.run_step(discharge(j, until("capacity", ">=", 1.0 * MAH_PER_CM2)))
        strip = cell.run_step(charge(j, until("voltage", ">=", 1.0)))
        ratios[ce] = strip.capacity[-1] / -plate.capacity[-1]
    # ce is the CE at its reference conditions (1 mA/cm^2, 1 mAh/cm^2 per cycle, no dead Li); a first plating on
    # bare Cu also pays its once-only SEI, 0.03 x 1/(1 + 0.1) mAh/cm^2; the tiny Cu "host" capacity comes back
    assert ratios[0.8] == pytest.approx(0.8 - 0.03 / 1.1, abs=2e-3)
    assert ratios[None] > ratios[0.8] + 0.1


@pytest.mark.parametrize("name", ALL)
def test_state_survives_a_json_round_trip_and_the_run_continues_identically(name: str) -> None:
    a = build_model(name, area=AREA, capacity=2e-3, seed=3)
    a.run_step(discharge(1e-4, until("time", ">=", 1800.0)))
    saved = json.loads(json.dumps(a.state_dict()))
    b = build_model(name, area=AREA, capacity=2e-3, seed=99)
    b.load_state(saved)
    for cell in (a, b):
        cell.run_step(rest(until("time", ">=", 600.0)))
    ra = a.run_step(charge(2e-4, until("time", ">=", 3000.0)))
    rb = b.run_step(charge(2e-4, until("time", ">=", 3000.0)))
    np.testing.assert_array_equal(ra.voltage, rb.voltage)
    assert a.state_dict() == b.state_dict()


def test_loading_a_state_of_another_model_is_refused() -> None:
    with pytest.raises(StateError, match=r"'li-cu'.*not 'li-host'"):
        build_model("li-host").load_state(build_model("li-cu").state_dict())


def test_noise_is_reproducible_from_the_seed_and_has_the_configured_size() -> None:
    params = {"noise_voltage": 1e-3, "noise_current": 1e-7}
    runs = []
    for seed in (7, 7, 8):
        cell = build_model("ncm622-li", params, area=AREA, capacity=2e-3, seed=seed)
        runs.append(cell.run_step(charge(2e-4, until("time", ">=", 36000.0), every=10.0)))
    np.testing.assert_array_equal(runs[0].voltage, runs[1].voltage)
    assert not np.array_equal(runs[0].voltage, runs[2].voltage)
    clean = build_model("ncm622-li", area=AREA, capacity=2e-3).run_step(
        charge(2e-4, until("time", ">=", 36000.0), every=10.0)
    )
    noise = runs[0].voltage - clean.voltage
    assert np.std(noise) == pytest.approx(1e-3, rel=0.1)
    assert np.std(runs[0].current - clean.current) == pytest.approx(1e-7, rel=0.1)
    # the state (and so the physics) is untouched by noise
    np.testing.assert_array_equal(runs[0].capacity, clean.capacity)


def test_max_duration_cuts_a_step_and_rerunning_from_the_saved_state_is_deterministic() -> None:
    cell = build_model("ncm622-li", area=AREA, capacity=2e-3)
    before = cell.state_dict()
    full = cell.run_step(charge(4e-4, until("voltage", ">=", 4.3)))
    cell.load_state(before)
    part = cell.run_step(charge(4e-4, until("voltage", ">=", 4.3)), max_duration=1000.0)
    assert part.end_reason == "max_duration" and part.ended_by is None and part.duration == 1000.0
    np.testing.assert_allclose(part.voltage[:-1], full.voltage[: len(part) - 1], rtol=0, atol=1e-12)
    assert part.voltage[-1] == pytest.approx(np.interp(1000.0, full.t, full.voltage), abs=2e-4)
