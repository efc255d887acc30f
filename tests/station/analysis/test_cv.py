"""CV peaks of P6 on the pure-LLTO half cell (2 cycles).

The li-llto model's host OCV is a sum of Nernstian features; 70 % of its capacity sits in the Ti4+/Ti3+ feature at
host_peak1_potential (1.25 V) with width n V_T (n = host_peak_width). Without diffusion or resistance a CV of such
a feature peaks exactly at that potential, in both directions, at the thin-layer current v Q_1/(4 n V_T). The
model's solid-state diffusion (tau = L^2/D = 2250 s, comparable to the 780 s the sweep spends crossing the
feature) lowers and separates the peaks: the cathodic one below the feature, the anodic one above it, both within
two feature widths of it and below the thin-layer height. Capacities come from the cell record (its capacity wins
over the model default), the feature's share and width from the model's defaults.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simulators.cells.half_cell import LiLltoCell
from simulators.cells.physics import SECONDS_PER_HOUR, thermal_voltage
from station.analysis.cv import analyze_cv

BACKGROUND_A = 15e-6
"""The host's capacitive background and SEI share at the feature: about 11 uA either way (the current on the flat
stretch at 2 V), allowed on top of the thin-layer bound."""


def _model(cell, name: str) -> float:
    return float(cell.model_params.get(name, LiLltoCell.PARAMETERS[name].default))


@pytest.fixture(scope="module")
def p6(dry_run):
    return dry_run("p6-cyclic-voltammetry", "llto-li", cycles=2)


def test_one_entry_per_cv_cycle_with_cathodic_then_anodic_peaks(p6) -> None:
    result = analyze_cv(p6)
    assert [c.cv_cycle for c in result.cycles] == [1, 2]
    u1 = _model(p6.cell, "host_peak1_potential")
    width = _model(p6.cell, "host_peak_width") * thermal_voltage(300.15)
    scan = p6.program.step(2).scan_rate
    q1 = _model(p6.cell, "host_peak1_fraction") * p6.cell.capacity * SECONDS_PER_HOUR  # C in the 1.25 V feature
    thin_layer = scan * q1 / (4.0 * width)
    for cycle in result.cycles:
        assert u1 - 2 * width < cycle.cathodic_peak_v < u1 < cycle.anodic_peak_v < u1 + 2 * width
        assert cycle.delta_ep_v == pytest.approx(cycle.anodic_peak_v - cycle.cathodic_peak_v)
        assert 0.0 < cycle.delta_ep_v < 4 * width
        assert -(thin_layer + BACKGROUND_A) < cycle.cathodic_peak_a < -0.5 * thin_layer
        assert 0.5 * thin_layer < cycle.anodic_peak_a < thin_layer + BACKGROUND_A
        assert cycle.warnings == ()
    # the second cycle retraces the first (the SEI wave is at 0.8 V, far from the feature)
    first, second = result.cycles
    assert second.cathodic_peak_v == pytest.approx(first.cathodic_peak_v, abs=2e-3)
    assert second.anodic_peak_v == pytest.approx(first.anodic_peak_v, abs=2e-3)


def test_a_slow_scan_gives_the_thin_layer_peaks_at_the_features_potential(dry_run) -> None:
    """At 0.002 mV/s the sweep spends 39000 s (17 diffusion times) crossing the feature: the host stays
    equilibrated, so both peaks sit at host_peak1_potential and reach the thin-layer height
    v Q (w_1/(4 n V_T) + w_bg/U_pristine), the feature's Nernstian peak on the host's linear background
    (simulators/cells/half_cell.py _host_ocv). Left over: the residual diffusion lag, a few mV (peak separation
    8 mV here, shrinking in proportion to the scan rate) and the 1 mV recording step; ohmic and charge-transfer
    drops are under 0.3 mV at 6 uA. Hence 6 mV on each peak, 2 mV on their midpoint and 3 % on the currents."""
    data = dry_run("p6-cyclic-voltammetry", "llto-li", cycles=1, scan_rate="0.002 mV/s")
    (cycle,) = analyze_cv(data).cycles
    u1 = _model(data.cell, "host_peak1_potential")
    w1, w2 = _model(data.cell, "host_peak1_fraction"), _model(data.cell, "host_peak2_fraction")
    width = _model(data.cell, "host_peak_width") * thermal_voltage(300.15)
    charge = data.cell.capacity * SECONDS_PER_HOUR
    height = data.program.step(2).scan_rate * charge * (
        w1 / (4.0 * width) + (1.0 - w1 - w2) / _model(data.cell, "host_pristine_ocv"))
    assert cycle.cathodic_peak_v == pytest.approx(u1, abs=6e-3)
    assert cycle.anodic_peak_v == pytest.approx(u1, abs=6e-3)
    assert cycle.mid_peak_v == pytest.approx(u1, abs=2e-3)
    assert 0.0 < cycle.delta_ep_v < 0.012
    assert cycle.cathodic_peak_a == pytest.approx(-height, rel=0.03)
    assert cycle.anodic_peak_a == pytest.approx(height, rel=0.03)


def test_peaks_are_the_extreme_currents_of_each_sweep_read_from_the_voltage(p6) -> None:
    """A different route: sweeps split where the recorded voltage turns, not by the program's timing."""
    r = p6.records[p6.records["step_index"] == 2]
    v, i = r["voltage"].astype(float), r["current"].astype(float)
    low = np.nonzero(v <= v.min() + 1e-6)[0]  # the records at the lower vertex (one per cycle)
    high = np.nonzero(v >= 2.5 - 1e-6)[0]
    turn1, top, turn2 = low[0], high[high > low[0]][0], low[-1]
    expected = [(v[:turn1][np.argmin(i[:turn1])], i[:turn1].min(), v[turn1:top][np.argmax(i[turn1:top])],
                 i[turn1:top].max()),
                (v[top:turn2][np.argmin(i[top:turn2])], i[top:turn2].min(), v[turn2:][np.argmax(i[turn2:])],
                 i[turn2:].max())]
    got = [(c.cathodic_peak_v, c.cathodic_peak_a, c.anodic_peak_v, c.anodic_peak_a) for c in analyze_cv(p6).cycles]
    np.testing.assert_allclose(np.array(got), np.array(expected), rtol=1e-12)


def test_records_without_cv_cycle_get_the_same_cycles_from_the_waveform(p6) -> None:
    records = p6.records.copy()
    records["cv_cycle"] = 0
    assert analyze_cv(dataclasses.replace(p6, records=records)) == analyze_cv(p6)


def test_no_cv_step_gives_none(dry_run) -> None:
    assert analyze_cv(dry_run("p7-conductivity", "host-blocking")) is None


def test_anodic_first_waveform_from_corners_without_cv_cycle() -> None:
    """vertex_1 above vertex_2: each cycle is an anodic then a cathodic sweep. Synthetic Gaussian peaks at known
    potentials on each sweep (anodic 1.10 V, cathodic 0.95 V, cycle 2 twice as high) and no cv_cycle field."""
    from protocols.cells import Cell
    from protocols.program import CvStep, RestStep, StepProgram
    from station.analysis.run_data import RunData
    from station.store import RECORD_DTYPE

    cv = CvStep(index=2, scan_rate=1e-3, start=None, vertex_1=1.5, vertex_2=0.5, end=1.0, cycles=2)
    program = StepProgram(protocol="synthetic", cell="c", steps=(RestStep(index=1), cv))
    times, volts = cv.corners(1.0)
    t = np.arange(0.0, times[-1], 0.5)
    v = np.interp(t, times, volts)
    rising = np.gradient(v) > 0
    cycle_no = 1 + (t >= times[2]).astype(int)
    height = 1e-4 * cycle_no
    i = np.where(rising, height * np.exp(-(((v - 1.10) / 0.03) ** 2)),
                 -height * np.exp(-(((v - 0.95) / 0.03) ** 2)))
    rec = np.zeros(1 + len(t), dtype=RECORD_DTYPE)
    rec["step_index"] = [1] + [2] * len(t)
    rec["step_time"] = np.concatenate([[0.0], t])
    rec["voltage"] = np.concatenate([[1.0], v])
    rec["current"] = np.concatenate([[0.0], i])
    data = RunData("synthetic", rec, program, Cell(name="c"))
    result = analyze_cv(data)
    assert [c.cv_cycle for c in result.cycles] == [1, 2]
    for n, c in enumerate(result.cycles, start=1):
        assert c.anodic_peak_v == pytest.approx(1.10, abs=1e-3) and c.anodic_peak_a == pytest.approx(n * 1e-4, rel=1e-3)
        assert c.cathodic_peak_v == pytest.approx(0.95, abs=1e-3)
        assert c.cathodic_peak_a == pytest.approx(-n * 1e-4, rel=1e-3)
        assert c.delta_ep_v == pytest.approx(0.15, abs=2e-3)
