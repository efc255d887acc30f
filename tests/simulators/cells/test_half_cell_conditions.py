"""Li | host and Li | Cu half cells under the lab's conditions: temperature, the cell record's OCV, a saved and
restored channel, and constant-current steps whose voltage moves one way only."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import brentq

from simulators.cells import ParameterError, build_model
from simulators.cells.physics import GAS_CONSTANT, arrhenius_factor, thermal_voltage

from .helpers import AREA, MA_PER_CM2, MAH_PER_CM2, charge, discharge, rest, until

MODELS = ["li-host", "li-llto", "li-cu"]
T27, T60 = 300.15, 333.15


# ---- temperature ----------------------------------------------------------------------------------------------


def _jump(cell, j: float) -> float:
    """The instantaneous voltage change (V, > 0) when a discharge of j mA/cm^2 starts from rest; state untouched."""
    saved = cell.state_dict()
    v0 = cell.open_circuit_voltage()
    r = cell.run_step(discharge(j * MA_PER_CM2, until("time", ">=", 1.0)))
    cell.load_state(saved)
    return v0 - float(r.voltage[0])


def measured_r0_and_i0(cell) -> tuple[float, float]:
    """R0 (ohm) and the Li working electrode's I0 (A) from the jumps of two current steps.

    At t = 0 the jump is dV = R0 I + eta_WE(I) + eta_foil(I): the working electrode's and the Li foil counter
    electrode's Butler-Volmer overpotentials, 2 (RT/F) asinh(I / 2 I0) each. Both are the same reaction (Li+ + e-
    <-> Li through an SEI), so they share one Arrhenius factor k: I0 = k x the documented 27 degC values. Two
    currents separate the linear ohmic drop from k, as a lab would with current interrupts at two rates."""
    i1, i2 = 0.5 * MA_PER_CM2, 5.0 * MA_PER_CM2
    d1, d2 = _jump(cell, 0.5), _jump(cell, 5.0)
    vt = thermal_voltage(cell.p.temperature)
    we, foil = cell.p.exchange_current * AREA, cell.p.li_exchange_current * AREA  # documented, at 27 degC

    def eta(i: float, k: float) -> float:
        return 2.0 * vt * (math.asinh(i / (2.0 * k * we)) + math.asinh(i / (2.0 * k * foil)))

    def mismatch(k: float) -> float:
        return (d1 - eta(i1, k)) / i1 * i2 + eta(i2, k) - d2

    k = brentq(mismatch, 1e-6, 1e6, xtol=1e-20, rtol=1e-15)
    return (d1 - eta(i1, k)) / i1, k * we


@pytest.mark.parametrize("model", MODELS)
def test_ohmic_resistance_and_exchange_current_follow_arrhenius_between_27_and_60_degc(model: str) -> None:
    cold = build_model(model, area=AREA, temperature=T27)
    warm = build_model(model, area=AREA, temperature=T60)
    r_cold, i_cold = measured_r0_and_i0(cold)
    r_warm, i_warm = measured_r0_and_i0(warm)
    assert r_cold * AREA * 1e4 == pytest.approx(4.0, rel=1e-6)  # the documented 4 ohm cm^2 at 27 degC
    ea_ohm, ea_ct = 20e3, 50e3  # documented activation energies (J/mol)
    assert r_warm / r_cold == pytest.approx(math.exp(ea_ohm / GAS_CONSTANT * (1 / T60 - 1 / T27)), rel=1e-6)
    assert i_warm / i_cold == pytest.approx(math.exp(-ea_ct / GAS_CONSTANT * (1 / T60 - 1 / T27)), rel=1e-6)


def test_a_warm_cell_plates_and_strips_at_a_smaller_overpotential() -> None:
    plateaus = {}
    for t in (T27 - 20.0, T27, T60):
        cell = build_model("li-cu", area=AREA, temperature=t)
        cell.run_step(discharge(MA_PER_CM2, until("voltage", "<=", 0.0)))
        r = cell.run_step(discharge(MA_PER_CM2, until("capacity", ">=", MAH_PER_CM2), every=10.0))
        plateaus[t] = -r.voltage[-1]
    assert plateaus[T27 - 20.0] > plateaus[T27] > plateaus[T60] > 0.0


def test_set_temperature_mid_life_keeps_the_charge_state_and_back_at_27_degc_nothing_changed() -> None:
    cell = build_model("li-host", area=AREA, capacity=0.5 * MAH_PER_CM2, seed=1)
    twin = build_model("li-host", area=AREA, capacity=0.5 * MAH_PER_CM2, seed=1)
    for c in (cell, twin):
        c.run_step(discharge(MA_PER_CM2, until("voltage", "<=", 0.0)))
        c.run_step(discharge(MA_PER_CM2, until("capacity", ">=", 2.0 * MAH_PER_CM2)))
        c.run_step(charge(MA_PER_CM2, until("capacity", ">=", 0.5 * MAH_PER_CM2)))
    before = cell.state_dict()["state"]
    cell.set_temperature(T60)
    assert cell.p.temperature == T60
    assert cell.state_dict()["state"] == before  # Li, host lithiation, dead Li, SEI, cycle history: all kept
    cell.set_temperature(T27)
    assert cell.state_dict() == twin.state_dict()
    step = discharge(MA_PER_CM2, until("capacity", ">=", MAH_PER_CM2))
    np.testing.assert_array_equal(cell.run_step(step).voltage, twin.run_step(step).voltage)
    li = cell.li
    cell.set_temperature(T60)
    warm = cell.run_step(charge(MA_PER_CM2, until("voltage", ">=", 0.5), every=10.0))
    cold = twin.run_step(charge(MA_PER_CM2, until("voltage", ">=", 0.5), every=10.0))
    # the same Li comes back, then the host's (a little more of it warm: faster solid-state diffusion) ...
    assert li < cold.capacity[-1] < warm.capacity[-1] < cold.capacity[-1] * 1.01
    # ... at a smaller overpotential
    assert 0.0 < warm.voltage[5] < cold.voltage[5]


# ---- the cell record's OCV ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["li-host", "li-llto"])
@pytest.mark.parametrize("ocv", [2.8, 2.3, 1.25, 0.6, 0.05, 0.0])
def test_a_host_starts_lithiated_to_where_its_ocv_is_the_records(model: str, ocv: float) -> None:
    cell = build_model(model, area=AREA, ocv=ocv)
    assert cell.open_circuit_voltage() == pytest.approx(ocv, abs=1e-9)
    assert cell.li == 0.0 and cell.dead_li == 0.0
    fresh = build_model(model, area=AREA)
    # lithiating the fresh host down to that OCV slowly takes the charge the placed host already holds
    r = fresh.run_step(discharge(0.002 * MA_PER_CM2, until("voltage", "<=", ocv + 1e-3)))
    held = cell.q_host + cell.sei_capacity * cell.sei_share
    assert -r.capacity[-1] == pytest.approx(held, rel=0.02, abs=2e-3 * cell.host_capacity)


@pytest.mark.parametrize(("model", "ocv"), [("li-host", 2.9), ("li-host", -0.05), ("li-llto", 3.0)])
def test_a_host_refuses_an_ocv_outside_its_window_naming_the_range(model: str, ocv: float) -> None:
    with pytest.raises(ParameterError, match=rf"ocv {ocv:g} V: valid 0 V to 2\.8 V"):
        build_model(model, area=AREA, ocv=ocv)


@pytest.mark.parametrize("ocv", [3.0, 3.2, 2.5])
def test_cu_accepts_the_mixed_potential_of_the_record(ocv: float) -> None:
    cell = build_model("li-cu", area=AREA, ocv=ocv)
    assert cell.open_circuit_voltage() == pytest.approx(ocv, abs=1e-9)
    r = cell.run_step(discharge(MA_PER_CM2, until("voltage", "<=", 0.0)))
    assert r.voltage[-1] == pytest.approx(0.0, abs=1e-9)


def test_cu_refuses_a_rest_potential_at_which_it_would_dissolve() -> None:
    with pytest.raises(ParameterError, match=r"ocv 3\.6 V: valid 0 V to 3\.5 V \(Cu rests at a mixed potential"):
        build_model("li-cu", area=AREA, ocv=3.6)


@pytest.mark.parametrize("name", ["host-cu-li", "llto-li", "cu-li"])
def test_library_half_cells_start_at_their_records_ocv(name: str) -> None:
    from protocols.cells import load_cell
    from protocols.library import resolve_cell_path

    record = load_cell(resolve_cell_path(name))
    cell = build_model(
        record.model_type, record.model_params, area=record.area, capacity=record.capacity,
        thickness=record.thickness, temperature=record.temperature + 273.15, ocv=record.ocv,  # the record in degC
    )  # fmt: skip
    assert cell.open_circuit_voltage() == pytest.approx(record.ocv, abs=1e-9)
    assert record.ocv == (3.0 if name == "cu-li" else 2.8)


# ---- saved state ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_a_saved_and_restored_cell_continues_identically_mid_history(model: str) -> None:
    a = build_model(model, area=AREA, capacity=0.3 * MAH_PER_CM2, seed=4)
    a.run_step(discharge(2 * MA_PER_CM2, until("voltage", "<=", 0.0)))
    for q in (2.0, 3.0, 1.0):
        a.run_step(discharge(2 * MA_PER_CM2, until("capacity", ">=", q * MAH_PER_CM2)))
        a.run_step(charge(2 * MA_PER_CM2, until("capacity", ">=", 0.6 * q * MAH_PER_CM2)))  # a partial strip
    a.drain_events()
    saved = json.loads(json.dumps(a.state_dict()))
    for key in ("cycle_plated", "cycle_fresh_sei", "dead_li", "beyond_host_room", "sei_share", "host_modes"):
        assert key in saved["state"]
    b = build_model(model, area=AREA, seed=99)
    b.load_state(saved)
    steps = [
        discharge(3 * MA_PER_CM2, until("capacity", ">=", 4.0 * MAH_PER_CM2), every=60.0),
        rest(until("time", ">=", 600.0)),
        charge(MA_PER_CM2, until("voltage", ">=", 1.0), every=60.0),
        discharge(0.5 * MA_PER_CM2, until("capacity", ">=", MAH_PER_CM2), every=60.0),
    ]
    for step in steps:
        ra, rb = a.run_step(step), b.run_step(step)
        np.testing.assert_array_equal(ra.voltage, rb.voltage)
        np.testing.assert_array_equal(ra.capacity, rb.capacity)
    assert a.state_dict() == b.state_dict()
    assert a.drain_events() == b.drain_events()


# ---- constant-current steps are monotonic ----------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_voltage_moves_one_way_in_every_constant_current_step_but_the_nucleation_dip(model: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cell = build_model(model, area=AREA, capacity=0.4 * MAH_PER_CM2, temperature=float(rng.uniform(280, 340)))
    p = cell.p
    nucleation = p.nucleation_overpotential / arrhenius_factor(p.nucleation_activation_energy, p.temperature)
    for _ in range(16):
        j = float(rng.choice([0.1, 0.5, 2.0, 5.0])) * MA_PER_CM2
        q = float(rng.uniform(0.05, 3.0)) * MAH_PER_CM2
        li_before = cell.li
        if rng.random() < 0.55:
            r = cell.run_step(discharge(j, until("capacity", ">=", q), until("voltage", "<=", -1.0), every=20.0))
            v = r.voltage
            if li_before <= 0.0 or li_before < 0.3 * MAH_PER_CM2:
                # the one documented exception: the nucleation dip on a fresh surface, a minimum then a recovery
                # of at most the nucleation overpotential (50 mV on Cu at 27 degC, more in the cold)
                k = int(np.argmin(v))
                assert np.all(np.diff(v[: k + 1]) <= 1e-12)
                assert v[-1] - v[k] <= nucleation + 1e-9
                v = v[k:][np.argmax(v[k:]) :]
            assert np.all(np.diff(v) <= 1e-12), (model, seed)
        else:
            r = cell.run_step(charge(j, until("capacity", ">=", q), until("voltage", ">=", 1.5), every=20.0))
            assert np.all(np.diff(r.voltage) >= -1e-12), (model, seed)
        cell.run_step(rest(until("time", ">=", 1800.0)))
