"""The protocol-wide parts of a document: the cell properties it requires, its safety limits, its default recording.

The safety limits are bound first because every step is checked against them: a set-point outside the window, or
an end the window stops the run before, is a problem of the step. The protocol's limits and the cell's are combined
by taking the tighter of each, so neither a protocol nor a cell can loosen the other.
"""

from __future__ import annotations

from collections.abc import Callable

from protocols import model as m
from protocols.binding.context import Binding
from protocols.binding.quantities import positive_capacity, positive_current, record_rule
from protocols.errors import Path
from protocols.program import RecordRule, SafetyLimits
from protocols.units import Duration


def bind_header(b: Binding, doc: m.ProtocolDoc) -> RecordRule:
    """Check ``requires`` against the cell, set ``b.safety``, and return the protocol's default recording rule."""
    cell = b.cell
    if cell is not None:
        for i, prop in enumerate(doc.requires):
            if not cell.has(prop):
                b.problem(("requires", i), f"the protocol requires the cell's {prop}, which cell '{cell.name}' does "
                          "not give", expected=f"a cell with {prop}", found=f"no {prop} in {cell.source or cell.name}")
    s = doc.safety
    v_min = v_max = None
    if s.voltage:
        low, high = s.voltage
        v_min, v_max = low.value, high.value
        if v_min >= v_max:
            b.problem(("safety", "voltage"), "the safety voltage window is empty",
                      expected="[min, max] with min < max", found=f"[{low.text}, {high.text}]")
    current_max = positive_current(b, s.current, ("safety", "current"), "the safety current")
    b.safety = SafetyLimits(
        voltage_min=_tighter(v_min, cell.voltage_min if cell else None, max),
        voltage_max=_tighter(v_max, cell.voltage_max if cell else None, min),
        current_max=_tighter(current_max, cell.current_max if cell else None, min),
        temperature_max=_tighter(s.temperature.value if s.temperature else None,
                                 cell.temperature_max if cell else None, min),
        capacity_max=positive_capacity(b, s.capacity, ("safety", "capacity"), "the safety capacity"),
        step_duration_max=_positive_duration(b, s.step_duration, ("safety", "step_duration"), "a step"),
        run_duration_max=_positive_duration(b, s.duration, ("safety", "duration"), "the run"),
    )
    return record_rule(b, doc.record, ("record",)) or RecordRule()


def _positive_duration(b: Binding, spec: Duration | None, path: Path, what: str) -> float | None:
    if spec is None:
        return None
    if spec.value <= 0:
        b.problem(path, f"the longest {what} may take must be above zero", "a duration above 0 s", repr(spec.text))
        return None
    return spec.value


def _tighter(a: float | None, b: float | None, pick: Callable[[float, float], float]) -> float | None:
    """The tighter of two limits (``pick`` is ``min`` for upper limits, ``max`` for lower ones); ``None`` is none."""
    if a is None:
        return b
    if b is None:
        return a
    return pick(a, b)
