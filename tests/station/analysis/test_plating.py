"""Plating figures: exact numbers on hand-built profiles, and on dry runs of P1 and P2 against the records read
another way (a plain loop over the step's records) and against the simulated cells' parameters."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.cells import Cell
from simulators.cells.registry import MODEL_TYPES
from station.analysis.cycling import cycle_table
from station.analysis.plating import analyze_plating, lithiation_step
from tests.station.analysis.hand_runs import full_cell_program, plating_program, ramp, run, segment

AREA = 1.131e-4


def plate_profile(start: float) -> np.ndarray:
    """A plating step: from ``start`` down through 0 V, a dip to -150 mV at the start, then a -100 mV plateau."""
    above = np.linspace(start, 0.01, 5) if start > 0 else np.zeros(0)
    dip = [-0.05, -0.12, -0.15, -0.13, -0.11]
    return np.r_[above, dip, np.full(96 - len(above), -0.1)]  # 101 records


def test_hand_built_exact() -> None:
    segs = [segment(1, 1, -1e-3, ramp(2.5, 0.0), 0.3),
            segment(2, 2, -1e-3, plate_profile(0.0), 1.0), segment(3, 2, 1e-3, ramp(0.1, 1.0), 0.9),
            segment(2, 3, -1e-3, plate_profile(0.6), 1.0), segment(3, 3, 1e-3, ramp(0.1, 1.0), 0.95)]
    result = analyze_plating(run(plating_program(), segs, Cell(name="hand", area=AREA)))
    assert result.lithiation_step == 1
    assert result.lithiation_ah == pytest.approx(0.3e-3, rel=1e-12)
    assert result.lithiation_ah_per_m2 == pytest.approx(0.3e-3 / AREA, rel=1e-12)
    assert result.lithiation_end_voltage_v == 0.0
    assert [(p.cycle, p.step) for p in result.plating] == [(2, 2), (3, 2)]
    for p in result.plating:
        assert p.plated_ah == pytest.approx(1e-3, rel=1e-12)
        assert p.dip_voltage_v == -0.15 and p.plateau_voltage_v == -0.1
        assert p.nucleation_overpotential_v == pytest.approx(0.05, abs=1e-15)
        assert p.plateau_overpotential_v == 0.1
    first, second = result.plating
    step = 1e-3 / 100  # Ah between records: 1 mAh over 101 records
    assert first.above_zero_ah == 0.0 and first.dip_capacity_ah == pytest.approx(2 * step)
    # the second plating starts at 0.6 V (the strip delithiated the host): 5 records above 0 V go to the host
    assert second.above_zero_ah == pytest.approx(5 * step) and second.dip_capacity_ah == pytest.approx(7 * step)
    assert [s.stripped_ah for s in result.stripping] == pytest.approx([0.9e-3, 0.95e-3], rel=1e-12)
    assert [s.end_voltage_v for s in result.stripping] == [1.0, 1.0]
    assert [s.end_time_s for s in result.stripping] == pytest.approx([0.9 * 3600, 0.95 * 3600])
    assert result.stripping[0].plateau_voltage_v == pytest.approx(0.55, abs=0.005)  # the ramp's middle
    doc = result.to_dict()
    assert doc["plating"][1]["above_zero_ah"] == pytest.approx(5 * step)


def test_without_lithiation_step_plating_is_found_below_zero() -> None:
    segs = [segment(1, 1, -1e-3, plate_profile(0.0), 1.0), segment(2, 1, 1e-3, ramp(0.1, 1.0), 0.9)]
    result = analyze_plating(run(plating_program(lithiation=False), segs))
    assert result.lithiation_step is None and result.lithiation_ah is None
    assert len(result.plating) == 1 and result.plating[0].nucleation_overpotential_v == pytest.approx(0.05)
    assert len(result.stripping) == 1


def test_full_cell_is_not_plating() -> None:
    assert lithiation_step(full_cell_program()) is None
    segs = [segment(5, 4, 2e-3, ramp(3.2, 4.2), 0.4), segment(6, 4, -2e-3, ramp(4.0, 3.0), 0.39)]
    assert analyze_plating(run(full_cell_program(), segs)) is None


def by_loop(records: np.ndarray) -> dict[str, float]:
    """The plating figures of one plating step, read with a plain loop: onset at the first record below 0 V; dip
    the lowest voltage while the charge since the onset is within its first half; plateau the median voltage
    while it is within 25-75 %."""
    volts = [float(v) for v in records["voltage"]]
    charge = [abs(float(q)) for q in records["capacity"]]
    onset = next(k for k, v in enumerate(volts) if v < 0)
    q0, span = charge[onset], charge[-1] - charge[onset]
    dip = min(v for v, q in zip(volts[onset:], charge[onset:], strict=True) if q - q0 <= 0.5 * span)
    middle = sorted(v for v, q in zip(volts[onset:], charge[onset:], strict=True)
                    if 0.25 * span <= q - q0 <= 0.75 * span)
    n = len(middle)
    plateau = middle[n // 2] if n % 2 else (middle[n // 2 - 1] + middle[n // 2]) / 2
    return {"dip": dip, "plateau": plateau, "plated": charge[-1]}


def step_records(data, step: int, cycle: int) -> np.ndarray:
    r = data.records
    return r[(r["step_index"] == step) & (r["cycle"] == cycle)]


def nucleation_parameter(model: str) -> float:
    return MODEL_TYPES[model].PARAMETERS["nucleation_overpotential"].default


@pytest.mark.parametrize("cell, model", [("host-cu-li", "li-host"), ("cu-li", "li-cu")])
def test_p2_plating_and_stripping(dry_run, cell: str, model: str) -> None:
    data = dry_run("p2-plating-stripping-ce", cell, cycles=3)
    result = analyze_plating(data)
    lith = step_records(data, 2, 1)
    assert result.lithiation_step == 2
    assert result.lithiation_ah == pytest.approx(-lith["capacity"][-1], rel=1e-12)
    # the current integrated over the records (the instrument integrates between them too)
    assert result.lithiation_ah == pytest.approx(-np.trapezoid(lith["current"], lith["test_time"]) / 3600, rel=1e-5)
    assert abs(result.lithiation_end_voltage_v) < 1e-3  # the discharge ended at 0 V
    assert [p.cycle for p in result.plating] == [2, 3, 4] and {p.step for p in result.plating} == {3}
    for p in result.plating:
        expected = by_loop(step_records(data, 3, p.cycle))
        assert p.dip_voltage_v == expected["dip"] and p.plateau_voltage_v == expected["plateau"]
        assert p.nucleation_overpotential_v == pytest.approx(expected["plateau"] - expected["dip"])
        assert p.plated_ah == pytest.approx(expected["plated"], rel=1e-12)
        assert p.plated_ah_per_m2 == pytest.approx(20.0, rel=1e-6)  # the protocol's 2 mAh/cm^2
        assert -0.3 < p.plateau_voltage_v < 0  # Li grows below 0 V vs Li/Li+
    # the dip of the first plating is the simulated nucleation overpotential, seen through records taken every
    # 5 mV while the SEI polarisation still builds up: within 20 % of the model's parameter
    first = result.plating[0]
    assert first.nucleation_overpotential_v == pytest.approx(nucleation_parameter(model), rel=0.2)
    # dead Li left by the first cycle seeds the later deposits: their dips are shallower
    assert all(p.nucleation_overpotential_v < first.nucleation_overpotential_v for p in result.plating[1:])
    table = cycle_table(data)
    for s in result.stripping:
        records = step_records(data, 4, s.cycle)
        assert s.stripped_ah == records["capacity"][-1]
        assert s.end_voltage_v == pytest.approx(1.0, abs=1e-3)  # the protocol's strip cut-off
        assert s.end_time_s == records["step_time"][-1]
        assert s.stripped_ah / result.plating[s.cycle - 2].plated_ah == pytest.approx(table.ce[table.row(s.cycle)])


def test_cu_needs_more_nucleation_than_the_host(dry_run) -> None:
    host = analyze_plating(dry_run("p2-plating-stripping-ce", "host-cu-li", cycles=3))
    cu = analyze_plating(dry_run("p2-plating-stripping-ce", "cu-li", cycles=3))
    assert cu.plating[0].nucleation_overpotential_v > 3 * host.plating[0].nucleation_overpotential_v
    # the host lithiates (its LLTO takes Li down to 0 V); Cu takes only its surface's charge
    assert host.lithiation_ah > 5 * cu.lithiation_ah


def test_p1_deposition(dry_run) -> None:
    data = dry_run("p1-li-deposition", "host-cu-li", plate_capacity="0.5mAh/cm^2")
    result = analyze_plating(data)
    assert len(result.plating) == 1 and result.stripping == []
    p = result.plating[0]
    assert (p.cycle, p.step) == (1, 3)
    assert p.plated_ah_per_m2 == pytest.approx(5.0, rel=1e-6)  # 0.5 mAh/cm^2
    expected = by_loop(step_records(data, 3, 1))
    assert (p.dip_voltage_v, p.plateau_voltage_v) == (expected["dip"], expected["plateau"])
    assert p.nucleation_overpotential_v == pytest.approx(nucleation_parameter("li-host"), rel=0.2)
    assert result.lithiation_ah_per_m2 == pytest.approx(-step_records(data, 2, 1)["capacity"][-1] / data.cell.area)


def test_step_that_stays_above_zero_plated_nothing() -> None:
    """A host with room left takes a whole "plating" step into its bulk: no dip, no plateau, all charge in the host."""
    segs = [segment(1, 1, -1e-3, ramp(2.5, 0.0), 0.3), segment(2, 2, -1e-3, ramp(0.3, 0.05), 0.2)]
    (step,) = analyze_plating(run(plating_program(), segs)).plating
    assert step.above_zero_ah == pytest.approx(0.2e-3) == step.plated_ah
    assert np.isnan([step.dip_voltage_v, step.plateau_voltage_v, step.nucleation_overpotential_v]).all()
    assert analyze_plating(run(plating_program(), segs)).to_dict()["plating"][0]["dip_voltage_v"] is None
