"""dQ/dV against curves whose derivative is known analytically, and the conservation of charge on a dry run."""

from __future__ import annotations

import numpy as np
import pytest

from station.analysis.cycling import AnalysisError, cycle_table
from station.analysis.dqdv import dqdv
from tests.station.analysis.hand_runs import full_cell_program, ramp, run, segment

Q_CYCLE = 2e-3  # Ah passed each way in the hand-built cycle (1 h at 2 mA)


def one_cycle(charge_volts: np.ndarray, discharge_volts: np.ndarray):
    """Cycle 4 of the hand-built full-cell program: a 1 h charge at 2 mA, then a 1 h discharge at 2 mA."""
    return run(full_cell_program(), [segment(5, 4, 2e-3, charge_volts, 1.0), segment(6, 4, -2e-3, discharge_volts,
                                                                                      1.0)])


def test_linear_voltage_gives_constant_dqdv() -> None:
    """V linear in Q over 0.5 V: dQ/dV = Q / 0.5 V everywhere, ends included (a quadratic Savitzky-Golay fit
    reproduces a straight line exactly)."""
    data = one_cycle(ramp(3.5, 4.0, 2001), ramp(4.0, 3.5, 2001))
    v, g = dqdv(data, 4, "charge")
    assert v[0] == pytest.approx(3.5) and v[-1] == pytest.approx(4.0) and len(v) == 501  # 1 mV grid
    np.testing.assert_allclose(g, Q_CYCLE / 0.5, rtol=1e-9)
    v, g = dqdv(data, 4, "discharge")
    np.testing.assert_allclose(g, -Q_CYCLE / 0.5, rtol=1e-9)  # discharge: Q grows as V falls
    v, g = dqdv(data, 4, "charge", step=0.005, window=0.05)
    assert len(v) == 101 and np.allclose(g, Q_CYCLE / 0.5, rtol=1e-9)


def logistic_volts(q_fraction: np.ndarray, v0: float, width: float) -> np.ndarray:
    """The voltage at which a single redox feature Q(V) = Q / (1 + exp(-(V - v0) / width)) holds the charge."""
    f = np.clip(q_fraction, 1e-9, 1 - 1e-9)
    return v0 + width * np.log(f / (1 - f))


def test_peak_position_and_height() -> None:
    """One Nernstian feature: dQ/dV peaks at v0 with height Q / (4 width). 20 mV of smoothing widens a 30 mV
    feature by well under 1 %; the position is exact to the 1 mV grid."""
    v0, width = 3.7512, 0.03
    fraction = np.linspace(0.0, 1.0, 20001)
    charge = logistic_volts(fraction, v0, width)
    data = one_cycle(charge, charge[::-1] - 0.05)  # discharge 50 mV lower (polarisation)
    v, g = dqdv(data, 4, "charge")
    peak = np.argmax(g)
    assert abs(v[peak] - v0) <= 0.001
    assert g[peak] == pytest.approx(Q_CYCLE / (4 * width), rel=0.01)
    v, g = dqdv(data, 4, "discharge")
    peak = np.argmin(g)
    assert abs(v[peak] - (v0 - 0.05)) <= 0.001
    assert g[peak] == pytest.approx(-Q_CYCLE / (4 * width), rel=0.01)


def test_noise_does_not_fold_the_curve() -> None:
    """A voltage that steps back by 1 mV now and then (noise, relaxation) still gives a finite, positive dQ/dV on
    charge whose integral is the charge passed."""
    base = ramp(3.5, 4.0, 2001)
    noisy = base - 0.001 * (np.arange(2001) % 50 == 0)
    v, g = dqdv(one_cycle(noisy, ramp(4.0, 3.5, 2001)), 4, "charge")
    assert np.isfinite(g).all()
    assert np.trapezoid(g, v) == pytest.approx(Q_CYCLE, rel=0.01)


def test_bad_requests() -> None:
    data = one_cycle(ramp(3.5, 4.0, 201), ramp(4.0, 3.5, 201))
    with pytest.raises(AnalysisError, match="no cycle 9"):
        dqdv(data, 9)
    with pytest.raises(AnalysisError, match="'charge' or 'discharge'"):
        dqdv(data, 4, "up")  # type: ignore[arg-type]
    with pytest.raises(AnalysisError, match="too narrow"):
        dqdv(one_cycle(ramp(3.5, 3.51, 11), ramp(3.51, 3.5, 11)), 4)
    only_charge = run(full_cell_program(), [segment(5, 4, 2e-3, ramp(3.5, 4.0, 201), 1.0)])
    with pytest.raises(AnalysisError, match="cycle 4 has no discharge step"):
        dqdv(only_charge, 4, "discharge")


def test_dry_run_conserves_charge(dry_run) -> None:
    """On a simulated NCM622 cell the area under dQ/dV is the cycle's capacity (to the under 1 mV the grid leaves
    at each end), and the discharge peak lies below the charge peak."""
    data = dry_run("p3-full-cell-cycling", "predeposited-ncm622", cycles=2)
    table = cycle_table(data)
    row = table.row(4)
    vc, gc = dqdv(data, 4, "charge")
    vd, gd = dqdv(data, 4, "discharge")
    assert np.trapezoid(gc, vc) == pytest.approx(table.charge_ah[row], rel=0.001)
    assert np.trapezoid(gd, vd) == pytest.approx(-table.discharge_ah[row], rel=0.001)
    assert (gc > 0).all() and (gd < 0).all()  # Q grows with V on charge, as V falls on discharge
    assert vd[np.argmin(gd)] < vc[np.argmax(gc)]  # polarisation: the discharge peak sits below the charge peak
