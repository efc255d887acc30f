"""Per-cycle figures: exact numbers on hand-built runs, and physical facts on dry runs of P2 and P3 checked against
the records by another route (the current integrated over time, step by step)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from protocols.cells import Cell
from station.analysis.cycling import (
    AnalysisError,
    OptionError,
    analyze_cycling,
    average_ce,
    cycle_table,
    cycles_counted,
    cycles_to,
    default_reference,
    first_cycle_efficiency,
    retention,
)
from tests.station.analysis.hand_runs import full_cell_program, plating_program, ramp, run, segment

AREA, MASS = 1.131e-4, 12.9e-6  # m^2, kg


def eis_records(cycle: int) -> np.ndarray:
    """An EIS step: current both ways, a tiny net charge left over (as a real instrument reports)."""
    rec = segment(7, cycle, 0.0, np.full(21, 3.7), 0.1)
    rec["current"] = 1e-4 * np.sin(np.arange(21))
    rec["capacity"] = 1e-12 * np.arange(21)
    rec["energy"] = 4e-12 * np.arange(21)
    return rec


@pytest.fixture(scope="module")
def full():
    """Formation (cycles 2-3, 1 mA) and cycling (4-6, 2 mA); cycle 5's charge restarts its step clock once."""
    segs = [segment(1, 1, 0.0, np.full(5, 3.0), 0.1),
            segment(2, 2, 1e-3, ramp(3.0, 4.2), 1.0), segment(3, 2, -1e-3, ramp(4.1, 3.0), 0.8),
            segment(2, 3, 1e-3, ramp(3.0, 4.2), 0.85), segment(3, 3, -1e-3, ramp(4.1, 3.0), 0.84),
            segment(5, 4, 2e-3, ramp(3.2, 4.2), 0.4), segment(6, 4, -2e-3, ramp(4.0, 3.0), 0.39), eis_records(4),
            segment(5, 5, 2e-3, ramp(3.2, 3.7), 0.2), segment(5, 5, 2e-3, ramp(3.7, 4.2), 0.2),
            segment(6, 5, -2e-3, ramp(4.0, 3.0), 0.37), eis_records(5),
            segment(5, 6, 2e-3, ramp(3.2, 4.2), 0.4), segment(6, 6, -2e-3, ramp(4.0, 3.0), 0.30), eis_records(6)]
    return run(full_cell_program(), segs, Cell(name="hand", area=AREA, active_mass=MASS))


def test_hand_full_cell_exact(full) -> None:
    t = cycle_table(full)
    assert t.cycle.tolist() == [2, 3, 4, 5, 6]  # the rest-only cycle 1 has no row; nothing renumbered
    assert t.tag == ["formation", "formation", "cycling", "cycling", "cycling"]
    charge = [1.0e-3, 0.85e-3, 0.8e-3, 0.8e-3, 0.8e-3]
    discharge = [0.8e-3, 0.84e-3, 0.78e-3, 0.74e-3, 0.60e-3]
    np.testing.assert_allclose(t.charge_ah, charge, rtol=1e-12)  # the EIS net charge (2e-11 Ah) is not counted
    np.testing.assert_allclose(t.discharge_ah, discharge, rtol=1e-12)
    np.testing.assert_allclose(t.ce, np.divide(discharge, charge), rtol=1e-12)
    assert t.first_direction.tolist() == [1] * 5
    # linear ramps at constant current: the mean voltage is the ramp's middle; cycle 5 charges in two halves
    mean_c = [3.6, 3.6, 3.7, (3.45 + 3.95) / 2, 3.7]
    mean_d = [3.55, 3.55, 3.5, 3.5, 3.5]
    np.testing.assert_allclose(t.mean_charge_v, mean_c, rtol=1e-12)
    np.testing.assert_allclose(t.mean_discharge_v, mean_d, rtol=1e-12)
    np.testing.assert_allclose(t.hysteresis_v, np.subtract(mean_c, mean_d), rtol=1e-9)
    np.testing.assert_allclose(t.charge_wh, np.multiply(charge, mean_c), rtol=1e-12)
    np.testing.assert_allclose(t.energy_efficiency, np.multiply(discharge, mean_d) / np.multiply(charge, mean_c),
                               rtol=1e-12)
    # per area in Ah/m^2 (x0.1 = mAh/cm^2) and per mass in Ah/kg (= mAh/g)
    np.testing.assert_allclose(t.areal("discharge_ah"), np.divide(discharge, AREA), rtol=1e-12)
    np.testing.assert_allclose(t.specific("charge_ah"), np.divide(charge, MASS), rtol=1e-12)
    assert cycle_table(run(full.program, [full.records])).areal("charge_ah") is None  # a cell without an area


def test_hand_full_cell_retention_and_statistics(full) -> None:
    t = cycle_table(full)
    assert default_reference(t) == 4  # the first cycle of the cycling group, after formation
    assert default_reference(t, tag="formation") == 2
    np.testing.assert_allclose(retention(t), np.divide([0.8, 0.84, 0.78, 0.74, 0.60], 0.78), rtol=1e-12)
    np.testing.assert_allclose(retention(t, reference_cycle=2), np.divide([0.8, 0.84, 0.78, 0.74, 0.60], 0.8))
    assert cycles_to(t) == 6  # 0.60 / 0.78 = 0.769 < 0.8; 0.74 / 0.78 = 0.949 is not
    assert cycles_to(t, 0.5) is None
    assert cycles_counted(t, 4, 6) == 3
    assert first_cycle_efficiency(t) == pytest.approx(0.8, rel=1e-12)
    ce_cycling = [0.78 / 0.8, 0.74 / 0.8, 0.60 / 0.8]
    avg = average_ce(t)
    assert (avg.first, avg.last, avg.count) == (4, 6, 3)
    assert avg.mean == pytest.approx(statistics.fmean(ce_cycling), rel=1e-12)
    assert avg.std == pytest.approx(statistics.stdev(ce_cycling), rel=1e-9)
    formation = average_ce(t, 2, 3)
    assert formation.mean == pytest.approx((0.8 + 0.84 / 0.85) / 2, rel=1e-12)
    one = average_ce(t, 5, 5)
    assert one.count == 1 and math.isnan(one.std)
    with pytest.raises(OptionError, match="empty"):
        average_ce(t, 6, 4)
    with pytest.raises(AnalysisError, match=r"cycle 9 has no charge or discharge.*2-6"):
        retention(t, reference_cycle=9)


def test_hand_plating_cycles_start_with_discharge() -> None:
    """A cycle that starts by discharging (plating) returns its charge: CE = strip / plate; energy below 0 V
    keeps its sign, so the mean plating voltage is negative and no energy efficiency is claimed."""
    segs = [segment(1, 1, -1e-3, ramp(2.5, 0.0), 0.3),
            segment(2, 2, -1e-3, np.full(11, -0.1), 1.0), segment(3, 2, 1e-3, np.full(11, 0.1), 0.9),
            segment(2, 3, -1e-3, np.full(11, -0.1), 1.0), segment(3, 3, 1e-3, np.full(11, 0.12), 0.95)]
    t = cycle_table(run(plating_program(), segs))
    assert t.cycle.tolist() == [1, 2, 3]
    assert t.tag == [None, "plating-stripping", "plating-stripping"]
    assert t.first_direction.tolist() == [-1, -1, -1]
    assert math.isnan(t.ce[0])  # lithiation only: nothing returned
    np.testing.assert_allclose(t.ce[1:], [0.9, 0.95], rtol=1e-12)
    np.testing.assert_allclose(t.mean_discharge_v, [1.25, -0.1, -0.1], rtol=1e-12)
    np.testing.assert_allclose(t.mean_charge_v[1:], [0.1, 0.12], rtol=1e-12)
    np.testing.assert_allclose(t.hysteresis_v[1:], [0.2, 0.22], rtol=1e-12)
    assert np.isnan(t.energy_efficiency).all()
    np.testing.assert_allclose(t.returned_ah, [0.0, 0.9e-3, 0.95e-3], rtol=1e-12)
    assert default_reference(t) == 2
    assert first_cycle_efficiency(t) == pytest.approx(0.9)


def test_a_nudge_the_other_way_does_not_flip_the_cycle() -> None:
    """A step the program does not know (an imported one) that passes 1 nAh of discharge before a 1 mAh charge
    counts in the discharge, but the cycle still starts by charging: CE = discharge / charge."""
    segs = [segment(99, 4, -1e-6, np.full(5, 3.5), 0.001), segment(5, 4, 1e-3, ramp(3.2, 4.2), 1.0),
            segment(6, 4, -1e-3, ramp(4.0, 3.0), 0.9)]
    t = cycle_table(run(full_cell_program(), segs))
    assert t.first_direction.tolist() == [1]
    assert t.discharge_ah[0] == pytest.approx(0.9e-3 + 1e-9, rel=1e-12)
    assert t.ce[0] == pytest.approx((0.9e-3 + 1e-9) / 1e-3, rel=1e-12)


def test_empty_run_has_no_rows() -> None:
    t = cycle_table(run(plating_program(), [segment(1, 1, 0.0, [], 0.0)]))
    assert len(t) == 0 and default_reference(t) is None and average_ce(t) is None


def _by_integration(data) -> dict[int, tuple[float, float]]:
    """(charge Ah, discharge Ah) per cycle: the current integrated over test time, step run by step run."""
    r = data.records
    cut = np.flatnonzero(np.r_[True, (np.diff(r["step_index"]) != 0) | (np.diff(r["cycle"]) != 0)])
    totals: dict[int, list[float]] = {}
    for a, b in zip(cut, np.r_[cut[1:], len(r)], strict=True):
        q = np.trapezoid(r["current"][a:b], r["test_time"][a:b]) / 3600
        if data.program.step(int(r["step_index"][a])).kind in ("charge", "discharge") and q != 0:
            entry = totals.setdefault(int(r["cycle"][a]), [0.0, 0.0])
            entry[0 if q > 0 else 1] += abs(q)
    return {c: (v[0], v[1]) for c, v in totals.items()}


def test_p3_full_cell(dry_run) -> None:
    data = dry_run("p3-full-cell-cycling", "predeposited-ncm622", cycles=2)
    t = cycle_table(data)
    # the rest before the formation loop passes no charge, so it belongs to formation's first pass (the program's
    # cycle rule): formation is 1-2, cycling 3-4
    assert t.cycle.tolist() == [1, 2, 3, 4]
    assert t.tag == ["formation", "formation", "cycling", "cycling"]
    integrated = _by_integration(data)
    np.testing.assert_allclose(t.charge_ah, [integrated[c][0] for c in t.cycle], rtol=1e-6)
    np.testing.assert_allclose(t.discharge_ah, [integrated[c][1] for c in t.cycle], rtol=1e-6)
    np.testing.assert_allclose(t.ce, t.discharge_ah / t.charge_ah, rtol=1e-12)  # charge first: dch / chg
    assert (t.first_direction == 1).all()
    # the first formation cycle loses Li to the SEI: the lowest CE of the run; later cycles are near 1
    assert t.ce[0] == t.ce.min() < 0.95 and (t.ce[[1, 3]] > 0.99).all()
    # 0.1C and 0.2C charge on 3.0-4.3 V NCM622: mean voltages inside the window, charge above discharge
    assert ((t.mean_discharge_v > 3.0) & (t.mean_discharge_v < t.mean_charge_v) & (t.mean_charge_v < 4.3)).all()
    # the 0.5C discharge of cycling shows more hysteresis than the 0.1C formation
    assert t.hysteresis_v[2:].min() > t.hysteresis_v[:2].max()
    # specific capacity of the 0.1C formation discharge close to the cell's 175 mAh/g
    assert t.specific("discharge_ah")[1] == pytest.approx(data.cell.specific_capacity, rel=0.05)
    result = analyze_cycling(data)
    assert result.reference_cycle == 3 and result.first_cycle_efficiency == pytest.approx(t.ce[0])
    assert result.average_ce.first == 3 and result.average_ce.last == 4
    doc = result.to_dict()
    assert [row["cycle"] for row in doc["cycles"]] == [1, 2, 3, 4]
    assert doc["capacity_at_reference_ah_per_kg"] == pytest.approx(t.discharge_ah[2] / data.cell.active_mass)


def test_p2_on_host(dry_run) -> None:
    data = dry_run("p2-plating-stripping-ce", "host-cu-li", cycles=3)
    t = cycle_table(data)
    # cycle 1 holds the rest and the lithiation to 0 V; each plate/strip pass is its own cycle from 2 on
    assert t.cycle.tolist() == [1, 2, 3, 4]
    assert t.tag == [None] + ["plating-stripping"] * 3
    assert (t.first_direction == -1).all()
    integrated = _by_integration(data)
    strip = np.array([integrated[c][0] for c in (2, 3, 4)])
    plate = np.array([integrated[c][1] for c in (2, 3, 4)])
    np.testing.assert_allclose(t.ce[1:], strip / plate, rtol=1e-6)  # CE = strip / plate
    assert math.isnan(t.ce[0])
    # plated 2 mAh/cm^2 per cycle (the protocol's default), on the cell's area
    np.testing.assert_allclose(t.areal("discharge_ah")[1:], 20.0, rtol=1e-6)
    assert (t.mean_discharge_v[1:] < 0).all() and (t.mean_charge_v[1:] > 0).all()  # Li plates below 0 V
    assert default_reference(t) == 2
    assert first_cycle_efficiency(t) == pytest.approx(t.ce[1])


def test_p1_has_no_cycling(dry_run) -> None:
    assert analyze_cycling(dry_run("p1-li-deposition", "host-cu-li", plate_capacity="0.2mAh/cm^2")) is None


def test_reference_cycle_the_run_lacks(dry_run) -> None:
    data = dry_run("p3-full-cell-cycling", "predeposited-ncm622", cycles=2)
    with pytest.raises(OptionError, match="cycle 9 has no charge or discharge in this run"):
        analyze_cycling(data, reference_cycle=9)
