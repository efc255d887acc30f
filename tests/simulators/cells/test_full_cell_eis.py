"""NCM622 | Li full cells in EIS: the spectrum's parts, and what a finite amplitude does to it."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.cells import build_model

from .helpers import AREA, charge, rest, until
from .kk import lin_kk_residuals

Q = 2.2575e-3
FREQ = np.logspace(np.log10(2e4), -1, 41)  # P5: 20 kHz to 0.1 Hz


def _half_charged():
    cell = build_model("ncm622-li", area=AREA, capacity=Q)
    cell.run_step(charge(0.1 * Q, until("capacity", ">=", 0.5 * Q)))
    cell.run_step(rest(until("time", ">=", 6 * 3600.0)))
    return cell


def test_a_small_amplitude_measures_the_small_signal_spectrum() -> None:
    cell = _half_charged()
    z = cell.impedance(FREQ)
    z10 = cell.measured_impedance(FREQ, 0.010)
    np.testing.assert_allclose(z10, z, rtol=3e-3)
    assert lin_kk_residuals(FREQ, z10).max() < 5e-3


def test_a_large_amplitude_shrinks_the_li_anode_arc_only() -> None:
    """The Li anode is a Butler-Volmer interface: at a large amplitude its current grows faster than the voltage,
    so its arc (~1 kHz here) reads smaller. The ohmic intercept and the cathode's linear arc stay put."""
    cell = _half_charged()
    f = np.array([1e5, 1e3, 0.1])
    z = cell.impedance(f)
    big = cell.measured_impedance(f, 0.3)
    assert big[0].real == pytest.approx(z[0].real, rel=1e-3)  # ohmic: linear
    assert big[1].real < 0.95 * z[1].real  # the anode arc
    # in galvanostatic mode the amplitude is a current: 2 mA through the anode is ~the exchange current
    galvano = cell.measured_impedance(f, 2e-3, "galvano")
    assert galvano[1].real < z[1].real
