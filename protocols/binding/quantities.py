"""Quantities of a protocol as SI floats for one cell, with the checks a single value allows.

The models already hold parsed values (:mod:`protocols.fields`); what is left for binding is what needs the cell or
the safety limits: a relative current or capacity (C-rate, per area, per mass) becomes amperes or ampere-hours by the
cell's property, a magnitude must be above zero, a set-point must lie within the safety/cell window. Each function
reports what is wrong through the :class:`~protocols.binding.context.Binding` and returns ``None`` for a value that
cannot be used, so the caller goes on and the pass finds every problem.
"""

from __future__ import annotations

from protocols import model as m
from protocols.binding.context import Binding
from protocols.errors import Path
from protocols.program import RecordRule
from protocols.units import Capacity, Current, format_si

#: what the user can add to a cell file to give each property a relative quantity needs
_HOW_TO_GIVE = {"capacity": "capacity (or active_mass and specific_capacity)", "area": "area or diameter",
                "active_mass": "active_mass"}


def resolve(b: Binding, spec: Current | Capacity, path: Path) -> float | None:
    """``spec`` in A or Ah: an absolute value as is, a relative one times the cell's property (a C-rate in 1/h
    times the capacity in Ah, a current density in A/m^2 times the area in m^2, ...).

    ``None`` when there is no cell to resolve against, or when the cell lacks the property (reported at ``path``).
    """
    if spec.needs is None:
        return spec.value
    cell = b.cell
    if cell is None:
        return None
    if isinstance(spec, Current):
        value = spec.resolve(capacity=cell.capacity, area=cell.area, mass=cell.active_mass)
    else:
        value = spec.resolve(area=cell.area, mass=cell.active_mass)
    if value is None:
        b.problem(path, f"'{spec.text}' needs the cell's {spec.needs}, which cell '{cell.name}' does not give",
                  expected=f"a cell with {_HOW_TO_GIVE[spec.needs]}",
                  found=f"no {spec.needs} in {cell.source or cell.name}")
    return value


def positive_current(b: Binding, spec: Current | None, path: Path, what: str) -> float | None:
    """A current magnitude (a limit, a recording step) that must be above zero, in A. The sign of a relative one is
    known before the cell is, so a zero or negative one is reported even without a cell."""
    if spec is None:
        return None
    if spec.value <= 0:
        b.problem(path, f"{what} must be above zero (it is a magnitude)", "a current above 0 A", repr(spec.text))
        return None
    return resolve(b, spec, path)


def positive_capacity(b: Binding, spec: Capacity | None, path: Path, what: str) -> float | None:
    """A capacity magnitude that must be above zero, in Ah (see :func:`positive_current`)."""
    if spec is None:
        return None
    if spec.value <= 0:
        b.problem(path, f"{what} must be above zero", "a capacity above 0 Ah", repr(spec.text))
        return None
    return resolve(b, spec, path)


def record_rule(b: Binding, spec: m.RecordSpec | None, path: Path) -> RecordRule | None:
    """A recording rule in SI; an interval or a change of zero or less would record without end, so each is
    reported and left out."""
    if spec is None:
        return None
    every = dv = None
    if spec.every is not None:
        every = spec.every.value
        if every <= 0:
            b.problem((*path, "every"), "the recording interval must be above zero", "> 0 s", repr(spec.every.text))
            every = None
    if spec.voltage_change is not None:
        dv = spec.voltage_change.value
        if dv <= 0:
            b.problem((*path, "voltage_change"), "a recording voltage step must be above zero",
                      "a voltage above 0 V such as '5 mV'", repr(spec.voltage_change.text))
            dv = None
    di = positive_current(b, spec.current_change, (*path, "current_change"), "a recording current step")
    return RecordRule(every_s=every, voltage_change=dv, current_change=di)


def check_current_setpoint(b: Binding, value: float | None, path: Path, spec: Current) -> None:
    """A current set-point (a magnitude: the step gives the direction) must be above zero and within the
    safety/cell current limit. ``None``: not known yet (no cell), nothing to check."""
    if value is None:
        return
    limit = b.safety.current_max
    if value <= 0:
        b.problem(path, "a current set-point must be above zero (the direction comes from the step)",
                  "a positive magnitude", repr(spec.text))
    elif limit is not None and value > limit * (1 + 1e-9):
        b.problem(path, f"{format_si(value, 'A')} is above the safety/cell current limit {format_si(limit, 'A')}",
                  expected=f"at most {format_si(limit, 'A')}", found=with_value(spec.text, value, "A"))


def check_setpoint_voltage(b: Binding, value: float, path: Path, text: str) -> None:
    """A voltage the instrument drives the cell to must lie within the safety/cell voltage window."""
    low, high = b.safety.voltage_min, b.safety.voltage_max
    if (low is not None and value < low) or (high is not None and value > high):
        b.problem(path, f"{text} is outside the safety/cell voltage window",
                  expected=f"a voltage within [{low if low is not None else '-inf'}, "
                  f"{high if high is not None else 'inf'}] V", found=repr(text))


def with_value(text: str, value: float, unit: str) -> str:
    """'0.5C' -> '0.5C = 875 uA': a relative value with what it came to for this cell; an absolute one as given."""
    rendered = format_si(value, unit)
    return text if text.replace(" ", "") == rendered.replace(" ", "") else f"{text} = {rendered}"
