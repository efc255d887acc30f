"""Voltage is monotonic in every constant-current step of every model, at every rate from C/20 to 3C (issue 12).

Under a constant current the state of charge moves one way, and every overpotential either builds up in the
current's direction or was already there: V never rises during a discharge nor falls during a charge. The states
the steps start from are relaxed (after a long rest) or just after a step of the opposite direction. Two real
non-monotonic features are excluded on purpose, because a monotonic model would be wrong there:

* a step following a step of the *same* direction at a higher rate relaxes towards its own smaller polarisation
  (V recovers under current, as in any cell or DFN model);
* the nucleation overpotential of Li plating on a surface without Li (half cells): a dip then a recovery. Half
  cells therefore plate only where Li is already present, or lithiate their host down to 0 V and stop there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.program import Termination
from simulators.cells import MODEL_TYPES, build_model
from simulators.cells.engine import SimulatedCell

from .helpers import AREA, MAH_PER_CM2, charge, discharge, rest, until

FULL_Q = 2.2575e-3  # Ah: the library NCM622 cells (12.9 mg at 175 mAh/g)
HALF_C = 2.0 * MAH_PER_CM2  # A: P2's 2 mA/cm^2, the half cells' "1C" (2 mAh/cm^2 in an hour)
BLOCKING_C = 0.5 * MAH_PER_CM2  # A: 0.5 mA/cm^2 through the P7 film (~0.1 V across its electronic rail)
TOLERANCE = 1e-9  # V
LONG_REST = 6 * 3600.0  # s: far beyond every model's relaxation times (diffusion, RC, chemical diffusion)

Prepare = Callable[[SimulatedCell], None]


@dataclass(frozen=True)
class Start:
    """A state a CC step may start from, and the directions (+1 charge, -1 discharge) allowed from it."""

    name: str
    prepare: Prepare
    directions: tuple[int, ...] = (1, -1)


def _run(cell: SimulatedCell, *steps) -> None:
    for step in steps:
        cell.run_step(step)


def _relax(cell: SimulatedCell) -> None:
    cell.run_step(rest(until("time", ">=", LONG_REST), every=600.0))


# ---- full cells ---------------------------------------------------------------------------------------------


def _formation(cell: SimulatedCell) -> None:
    q = FULL_Q
    _run(cell, charge(0.1 * q, until("voltage", ">=", 4.3)), discharge(0.1 * q, until("voltage", "<=", 3.0)))


def _full_charged(cell: SimulatedCell) -> None:
    _formation(cell)
    _run(cell, charge(0.1 * FULL_Q, until("voltage", ">=", 4.3)))
    _relax(cell)


def _full_discharged(cell: SimulatedCell) -> None:
    _formation(cell)
    _relax(cell)


def _full_half(cell: SimulatedCell) -> None:
    _formation(cell)
    _run(cell, charge(0.2 * FULL_Q, until("capacity", ">=", 0.5 * FULL_Q)))
    _relax(cell)


def _full_just_charged(cell: SimulatedCell) -> None:
    _formation(cell)
    _run(cell, charge(0.5 * FULL_Q, until("voltage", ">=", 4.3)))


def _full_just_discharged(cell: SimulatedCell) -> None:
    _formation(cell)
    _run(cell, charge(0.2 * FULL_Q, until("voltage", ">=", 4.3)), discharge(FULL_Q, until("voltage", "<=", 3.0)))


def _full_hot_half(cell: SimulatedCell) -> None:
    cell.set_temperature(333.15)
    _full_half(cell)


def _full_li_exhausted(cell: SimulatedCell) -> None:
    """Anode-limited: the Li reservoir is used up and the anode's host gives Li back at the end of discharge."""
    for _ in range(4):
        _run(
            cell,
            charge(0.5 * FULL_Q, until("voltage", ">=", 4.2)),
            discharge(0.5 * FULL_Q, until("voltage", "<=", 2.75)),
        )
    assert cell.li < 0.0
    _relax(cell)


FULL_STARTS = (
    Start("as assembled", lambda cell: None),
    Start("charged, rested", _full_charged),
    Start("discharged, rested", _full_discharged),
    Start("half charged, rested", _full_half),
    Start("just charged", _full_just_charged, (-1,)),
    Start("just discharged", _full_just_discharged, (1,)),
    Start("60 degC, half charged, rested", _full_hot_half),
    Start("Li exhausted, rested", _full_li_exhausted),
)

# ---- half cells ---------------------------------------------------------------------------------------------


def _host_lithiated(cell: SimulatedCell) -> None:
    _run(cell, discharge(0.5 * HALF_C, until("voltage", "<=", 0.0)))
    _relax(cell)


def _host_partly_lithiated(cell: SimulatedCell) -> None:
    _run(cell, discharge(0.5 * HALF_C, until("voltage", "<=", 0.0)))
    _run(cell, charge(0.5 * HALF_C, until("voltage", ">=", 0.8)))
    _relax(cell)


def _li_plated(cell: SimulatedCell) -> None:
    _run(cell, discharge(0.5 * HALF_C, until("voltage", "<=", 0.0)))
    _run(cell, discharge(HALF_C, until("capacity", ">=", 1.0 * MAH_PER_CM2)))
    _relax(cell)


HALF_STARTS = (
    Start("pristine", lambda cell: None, (-1,)),  # the pristine host sits above the 2.5 V charge limit
    # plating onto a lithiated host without Li is the nucleation case: only the strip direction
    Start("host lithiated to 0 V, rested", _host_lithiated, (1,)),
    Start("host partly lithiated, rested", _host_partly_lithiated),
    Start("1 mAh/cm2 Li plated, rested", _li_plated),
)

# ---- blocking -----------------------------------------------------------------------------------------------


def _polarised_then_rested(cell: SimulatedCell) -> None:
    _run(cell, charge(BLOCKING_C, until("time", ">=", 1800.0)))
    _relax(cell)


BLOCKING_STARTS = (
    Start("fresh", lambda cell: None),
    Start("polarised, rested", _polarised_then_rested),
)


def _starts(model: str) -> tuple[Start, ...]:
    if model.startswith("ncm622"):
        return FULL_STARTS
    if model == "blocking":
        return BLOCKING_STARTS
    return HALF_STARTS


def _one_c(model: str) -> float:
    if model.startswith("ncm622"):
        return FULL_Q
    return BLOCKING_C if model == "blocking" else HALF_C


def _limits(model: str, direction: int, rate: float) -> tuple[Termination, ...]:
    """Voltage limits beyond each model's working window, and a time cap just past a full window at ``rate``."""
    cap = until("time", ">=", 1.3 * 3600.0 / rate)
    if model.startswith("ncm622"):
        return (until("voltage", ">=", 4.4) if direction > 0 else until("voltage", "<=", 2.5), cap)
    if model == "blocking":
        return (until("voltage", ">=", 2.0) if direction > 0 else until("voltage", "<=", -2.0), cap)
    if direction > 0:
        return (until("voltage", ">=", 2.5), until("capacity", ">=", 3.0 * MAH_PER_CM2), cap)
    # discharge: stop at 0 V when there is no Li yet (no nucleation), else plate 1 mAh/cm^2 more
    return (until("capacity", ">=", 1.0 * MAH_PER_CM2), cap)


_CACHE: dict[tuple[str, str], dict] = {}


def _cell_at(model: str, start: Start) -> SimulatedCell:
    """A fresh cell in the named state (prepared once per model and state, then restored)."""
    params = {"anode_ce": 0.9, "li_excess": 1.0} if start.prepare is _full_li_exhausted else None
    cell = build_model(model, params, area=AREA, capacity=FULL_Q if model.startswith("ncm622") else None, seed=1)
    key = (model, start.name)
    if key not in _CACHE:
        start.prepare(cell)
        _CACHE[key] = cell.state_dict()
    cell.load_state(_CACHE[key])
    return cell


def _half_cell_needs_zero_volt_stop(cell: SimulatedCell) -> bool:
    return getattr(cell, "li", 1.0) <= 0.0


#: model -> observed fault, for a model known to break monotonicity while it is being reworked (marked xfail with
#: that reason, non-strict, so the fix shows as XPASS). Empty: every model passes.
XFAIL: dict[str, str] = {}


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(m, marks=pytest.mark.xfail(strict=False, reason=XFAIL[m])) if m in XFAIL else m
        for m in sorted(MODEL_TYPES)
    ],
)
@settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_voltage_is_monotonic_in_every_constant_current_step(model: str, data: st.DataObject) -> None:
    start = data.draw(st.sampled_from(_starts(model)), label="start")
    direction = data.draw(st.sampled_from(start.directions), label="direction")
    rate = 10.0 ** data.draw(st.floats(np.log10(0.05), np.log10(3.0)), label="log10 C-rate")
    cell = _cell_at(model, start)
    current = rate * _one_c(model)
    terms = _limits(model, direction, rate)
    if direction < 0 and model in {"li-host", "li-llto", "li-cu"} and _half_cell_needs_zero_volt_stop(cell):
        terms = (until("voltage", "<=", 0.0), *terms)
    every = max(1.0, 1.3 * 3600.0 / rate / 400.0)
    # records on voltage changes too, so that a rise between two time records cannot hide (finer for the full
    # cells, whose closed form makes change records cheap)
    change = 0.002 if model.startswith("ncm622") else 0.01
    step = (charge if direction > 0 else discharge)(current, *terms, every=every, voltage_change=change)
    r = cell.run_step(step)
    # a step that ends at once would check nothing: every drawn start must leave room to move
    assert len(r.voltage) >= 3, f"{model} from '{start.name}' at {rate:.3g}C ended at once ({r.end_reason})"
    dv = np.diff(r.voltage) * direction
    worst = int(np.argmin(dv))
    assert dv.min() >= -TOLERANCE, (
        f"{model} from '{start.name}', {'charge' if direction > 0 else 'discharge'} at {rate:.3g}C: V moves "
        f"against the current by {-dv.min():.3g} V at t = {r.t[worst + 1]:.6g} s "
        f"({r.voltage[worst]:.6f} -> {r.voltage[worst + 1]:.6f} V)"
    )
