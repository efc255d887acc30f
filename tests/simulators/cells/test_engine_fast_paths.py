"""The step engine's shortcuts (issue 18) give the numbers of the plain computations they replace, bit for bit.

A 1000-cycle dry run makes ~2000 model steps of a few hundred samples each, so the engine avoids per-step Python
and numpy overhead: terminations compare only what they need (a constant current as one number), the energy is
accumulated in place, records on the dense grid take its samples instead of interpolating, and the root finder
reuses the end values its caller already has. Each test computes the plain expression independently and asserts
exact equality (``tobytes``), since the simulated instruments promise reproducible numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from protocols.program import CurrentStep, RecordRule, Termination
from simulators.cells import build_model
from simulators.cells.engine import _Segment
from simulators.cells.full_cell import NcmLiCell
from simulators.cells.roots import find_root
from simulators.cells.terminations import Samples, first_hits

AREA = 1.131e-4


def term(quantity: str, op: str, value: float) -> Termination:
    return Termination(quantity=quantity, op=op, value=value)


def test_find_root_with_known_end_values_gives_the_same_root_with_two_fewer_evaluations() -> None:
    calls: list[float] = []

    def f(x: float) -> float:
        calls.append(x)
        return math.exp(x) - 3.0 - 0.1 * x

    plain = find_root(f, 0.0, 3.0, xtol=1e-12)
    plain_calls = calls.copy()
    calls.clear()
    reused = find_root(f, 0.0, 3.0, xtol=1e-12, fa=f(0.0), fb=f(3.0))
    assert plain_calls[:2] == [0.0, 3.0] and len(plain_calls) > 6
    assert calls == plain_calls  # the two ends evaluated here, by the caller, and not again inside
    assert reused == plain


def test_first_hits_takes_a_constant_as_one_number_and_refuses_a_missing_quantity() -> None:
    v = np.array([3.0, 3.5, 4.1, 4.25, 4.31, 4.5])
    e = np.linspace(0.0, 1.0, 6)
    terms = [term("voltage", ">=", 4.3), term("voltage", ">=", 4.4), term("current", ">=", 0.01)]
    full = Samples(np.arange(6.0), v, np.full(6, 0.005), np.zeros(6), e)
    assert first_hits(terms, Samples(None, v, 0.005, None, e)) == first_hits(terms, full) == (4, [0])
    # a current limit exceeded holds from the first sample, together with nothing else
    assert first_hits(terms, Samples(None, v, 0.02, None, e)) == (0, [2])
    # several terminations holding at the same sample are all reported, lowest index first
    both = [term("voltage", ">=", 4.25), term("energy", ">=", 0.6)]
    assert first_hits(both, Samples(None, v, 0.0, None, e)) == (3, [0, 1])
    assert first_hits(terms, Samples(None, v[:3], 0.005, None, e[:3])) == (-1, [])
    with pytest.raises(ValueError, match="capacity samples are needed"):
        first_hits([term("capacity", ">=", 1.0)], Samples(None, v, 0.005, None, e))


def test_the_in_place_surface_state_equals_the_plain_expression() -> None:
    cell = build_model("ncm622-li", area=AREA)
    cell.run_step(CurrentStep(index=1, kind="charge", current=4e-4, until=(term("time", ">=", 3600.0),)))
    cell.delta = 0.004  # a relaxing diffusion offset, so that every piece of x_s is present
    for current in (4e-4, -9e-4):
        path = cell._constant_current(current)
        t = np.linspace(0.0, 40_000.0, 777)
        ds = path._s_rate * t
        num = ds + (path._num0 + path._d_inf)
        if path._charging and path._t_hw < float(t.max()):
            num -= path._f_irr * np.maximum(ds - path._to_hw, 0.0)
        num += path._e_delta * np.exp(path._k_delta * t)
        plain = num * (1.0 / path._den0) if path._fade_rate == 0.0 else num / (path._den0 - path._fade_rate * t)
        assert path._surface(t).tobytes() == plain.tobytes()


@pytest.mark.parametrize("current", [2.2e-4, -5.6e-4])
def test_cc_energy_on_the_record_grid_is_the_plain_trapezoid_sum(current: float) -> None:
    """With records every 30 s on a 30 s dense grid the records are the dense samples: their energy must be
    e_k = cumsum(I (v_k + v_k-1) / 2 dt) / 3600, evaluated as one plain numpy expression, exactly."""
    cell = build_model("ncm622-li", area=AREA)
    if current < 0:
        cell.run_step(CurrentStep(index=1, kind="charge", current=4e-4, until=(term("voltage", ">=", 4.3),)))
    stop = term("voltage", ">=", 4.3) if current > 0 else term("voltage", "<=", 3.0)
    step = CurrentStep(
        index=2, kind="charge" if current > 0 else "discharge", current=current, until=(stop,),
        record=RecordRule(every_s=30.0),
    )  # fmt: skip
    assert cell._grid_spacing(current) >= 30.0  # the dense grid is the record grid
    result = cell.run_step(step)
    t, v = result.t[:-1], result.voltage[:-1]  # the end record is the exact end state, off the grid
    assert len(t) > 100 and np.array_equal(t, 30.0 * np.arange(len(t)))
    dt = np.diff(t[1:], prepend=t[0])
    plain = 0.0 + np.cumsum(current * 0.5 * (v[1:] + np.append(v[0], v[1:-1])) * dt) / 3600.0
    assert result.energy[1:-1].tobytes() == plain.tobytes()
    assert result.capacity[1:-1].tobytes() == (0.0 + current * t[1:] / 3600.0).tobytes()


def test_records_on_the_dense_grid_are_its_samples_exactly_as_interpolation_gives_them() -> None:
    cell: NcmLiCell = build_model("ncm622-li", area=AREA)  # type: ignore[assignment]
    # a repeated instant (a segment cut at its start) and a signed zero: indexing must pick what np.interp picks
    t = np.array([0.0, 0.0, 30.0, 60.0, 90.0, 95.5])
    q = np.array([-0.0, 1.0, 2.0, 3.5, -4.0, 7.0])
    e = np.array([0.0, -0.0, 1e-300, 2.0, np.inf, 5.0])
    seg = _Segment(t, np.linspace(3.0, 4.0, 6), np.full(6, 0.001), q, e, "termination", 0)
    for times in (np.array([0.0, 30.0, 60.0, 90.0, 95.5]), np.array([0.0, 15.0, 60.0, 95.5])):
        _v, _i, q_rec, e_rec = cell._evaluate([seg], times)
        assert q_rec.tobytes() == np.interp(times, t, q).tobytes()
        assert e_rec.tobytes() == np.interp(times, t, e).tobytes()


def test_a_termination_needing_capacity_still_ends_a_cc_step_exactly() -> None:
    """Capacity samples are only built when a termination asks for them; when one does, it ends the step."""
    cell = build_model("ncm622-li", area=AREA)
    cap = 5e-4
    result = cell.run_step(
        CurrentStep(index=1, kind="charge", current=4e-4, until=(term("capacity", ">=", cap),),
                    record=RecordRule(every_s=60.0))
    )  # fmt: skip
    assert result.end_reason == "termination" and result.ended_by == 0
    # the end instant is found to the engine's 1 us time tolerance: 1.1e-13 Ah at 0.4 mA
    assert result.capacity[-1] == pytest.approx(cap, abs=2e-13)
    assert result.duration == pytest.approx(cap * 3600 / 4e-4, abs=2e-6)
