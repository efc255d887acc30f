"""The models' own shape-preserving cubic (PCHIP) against scipy's PchipInterpolator, which it replaces at run time.

Both implement Fritsch & Butland's derivative rule with the one-sided three-point end rule, so they must agree to
rounding on every curve the models tabulate and on random data; monotone data must stay monotone, knots exact.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator

from protocols.library import cell_names
from simulators.biologic.placement import build_cell
from simulators.cells import MODEL_TYPES, build_model, full_cell, half_cell, physics
from simulators.cells.physics import TabulatedCurve, pchip

#: relative agreement with scipy (measured: worst 2.8e-15 on random data, 2.0e-16 on the five model curves)
REL = 1e-12


def _scale(y: np.ndarray) -> float:
    return max(float(np.max(np.abs(y))), 1e-300)


def _model_curve_knots(monkeypatch: pytest.MonkeyPatch) -> list[tuple[np.ndarray, np.ndarray]]:
    """The knots of every curve the library cells and the default models tabulate, caught as they are built."""
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    original = physics.pchip

    def recording(x, y, at):
        seen.append((np.array(x, dtype=float), np.array(y, dtype=float)))
        return original(x, y, at)

    monkeypatch.setattr(physics, "pchip", recording)
    full_cell._curves.cache_clear()
    half_cell._host_ocv.cache_clear()
    try:
        for name in cell_names():
            build_cell(name)
        for type_name in MODEL_TYPES:
            build_model(type_name)
    finally:
        full_cell._curves.cache_clear()
        half_cell._host_ocv.cache_clear()
    return seen


def test_every_model_curve_matches_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    curves = _model_curve_knots(monkeypatch)
    # the NCM622 OCV, the anode reserve, and a host OCV for each distinct host parameter set
    assert len(curves) >= 3
    for x, y in curves:
        at = np.linspace(x[0], x[-1], 8001)
        ours, ref = pchip(x, y, at), PchipInterpolator(x, y)(at)
        assert np.max(np.abs(ours - ref)) <= REL * _scale(ref)
        assert np.array_equal(pchip(x, y, x), y)


def test_tabulated_curve_table_is_scipys_table() -> None:
    x = np.array([0.0, 0.1, 0.35, 0.5, 0.8, 1.0])
    y = np.array([3.0, 3.55, 3.7, 3.76, 4.0, 4.3])
    curve = TabulatedCurve(x, y, slope_lo=30.0, slope_hi=6.0, resolution=2001)
    grid = np.linspace(0.0, 1.0, 2001)
    ref = PchipInterpolator(x, y)(grid)
    assert np.max(np.abs(curve(grid) - ref)) <= REL * _scale(ref)
    assert curve.scalar(0.35) == pytest.approx(3.7, abs=1e-15)


@pytest.mark.parametrize("seed", range(40))
def test_random_data_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    x = np.cumsum(rng.uniform(1e-3, 2.0, n)) - 3.0  # uneven spacing, strictly increasing
    monotone = seed % 2 == 0
    y = np.cumsum(rng.exponential(1.0, n)) if monotone else rng.normal(0.0, 1.0, n)
    if seed % 5 == 0:
        y[n // 2 :] = y[n // 2]  # a flat run: zero secants must give zero slopes
    at = np.concatenate([np.linspace(x[0], x[-1], 3001), x])
    ours, ref = pchip(x, y, at), PchipInterpolator(x, y)(at)
    assert np.max(np.abs(ours - ref)) <= REL * _scale(ref)
    assert np.array_equal(pchip(x, y, x), y)  # knots exactly
    if monotone:
        fine = pchip(x, y, np.linspace(x[0], x[-1], 20001))
        assert np.all(np.diff(fine) >= 0.0)
        assert fine.min() >= y[0] and fine.max() <= y[-1]  # no overshoot


def test_two_knots_are_a_straight_line() -> None:
    at = np.linspace(1.0, 3.0, 5)
    assert np.allclose(pchip(np.array([1.0, 3.0]), np.array([2.0, 6.0]), at), 2.0 * at, rtol=0, atol=1e-15)


def test_extremum_is_not_overshot() -> None:
    """A peak in the data is a knot with zero slope: the curve never rises above the largest datum."""
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([0.0, 1.0, 5.0, 1.0, 0.0])
    fine = pchip(x, y, np.linspace(0.0, 4.0, 4001))
    assert fine.max() == 5.0
    assert fine.min() >= 0.0


def test_bad_knots_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        pchip(np.array([0.0, 1.0, 1.0]), np.array([0.0, 1.0, 2.0]), np.array([0.5]))
    with pytest.raises(ValueError, match="at least 2 knots"):
        pchip(np.array([0.0]), np.array([0.0]), np.array([0.0]))
