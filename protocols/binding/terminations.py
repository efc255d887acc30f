"""A step's ``until`` as :class:`~protocols.program.Termination` objects: one table row per quantity.

Each quantity a step can end on differs in three ways only, so each is one row of :data:`RULES`: how its value
becomes SI (directly, or against the cell for a relative current or capacity), which way it is compared (a current
or dV/dt end is met when the value falls to it; a capacity, energy or time end when it grows to it; a voltage end
either way, by the step's direction), and what is said when it is not above zero (nothing for a voltage: ``0 V`` is
a real limit). Which quantities make sense for which step kind is :data:`ALLOWED`, with the reason for the others.

A ``then: <id>`` cannot be resolved before every step id is known, so it comes back as a :class:`Jump` that the step
binder resolves at the end (:meth:`protocols.binding.steps.StepBinder.resolve_jumps`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocols import model as m
from protocols.binding.context import Binding
from protocols.binding.quantities import resolve
from protocols.errors import Path
from protocols.fields import Threshold
from protocols.program import Action, Comparison, Quantity, Termination
from protocols.units import Capacity, Current, Scalar

#: which terminations make sense for each step kind
ALLOWED: dict[str, frozenset[str]] = {
    "rest": frozenset({"time", "voltage", "dvdt"}),
    "charge": frozenset({"voltage", "capacity", "energy", "time"}),
    "discharge": frozenset({"voltage", "capacity", "energy", "time"}),
    "hold": frozenset({"current", "time", "capacity", "energy"}),
    "power": frozenset({"voltage", "current", "capacity", "energy", "time"}),
    "ca": frozenset({"current", "time", "capacity"}),
}
#: why the others do not, where there is more to say than "a <kind> step cannot end on <quantity>"
WHY_NOT = {
    ("charge", "current"): "the current of a constant-current step never changes; use then_hold for CCCV",
    ("discharge", "current"): "the current of a constant-current step never changes; use then_hold for CCCV",
    ("hold", "voltage"): "the voltage of a hold never changes",
    ("ca", "voltage"): "the voltage of a CA step never changes",
    ("rest", "current"): "no current flows during a rest",
    ("rest", "capacity"): "no charge passes during a rest",
    ("rest", "energy"): "no energy passes during a rest",
}
#: the comparison a charge or discharge makes its voltage limit: the voltage rises while charging
NATURAL_VOLTAGE_OP = {"charge": Comparison.GE, "discharge": Comparison.LE}


def _as_given(b: Binding, value: Scalar | Current | Capacity, path: Path) -> float | None:
    return value.value


def _on_the_cell(b: Binding, value: Scalar | Current | Capacity, path: Path) -> float | None:
    assert isinstance(value, Current | Capacity)
    return resolve(b, value, path)


@dataclass(frozen=True, slots=True)
class EndRule:
    """How a limit on one quantity becomes a termination.

    ``op`` is the comparison (``None`` for a voltage: the step's direction or the limit's own ``<``/``>`` decide;
    a limit written with the other comparison is refused); ``si`` turns the written value into SI; ``not_positive``
    is the message, and ``positive`` what was expected, when the limit must be above zero (``None``: every value is
    a real limit).
    """

    quantity: Quantity
    op: Comparison | None
    si: Callable[[Binding, Scalar | Current | Capacity, Path], float | None]
    not_positive: str | None = None
    positive: str | None = None
    shown: str = ""


RULES: dict[str, EndRule] = {
    "voltage": EndRule(Quantity.VOLTAGE, None, _as_given),
    "current": EndRule(Quantity.CURRENT, Comparison.LE, _on_the_cell,
                       "a current end at or below zero is never reached", "a current above 0"),
    "capacity": EndRule(Quantity.CAPACITY, Comparison.GE, _on_the_cell, "a capacity end must be above zero",
                        "a capacity above 0"),
    "energy": EndRule(Quantity.ENERGY, Comparison.GE, _as_given, "an energy end must be above zero",
                      "an energy above 0"),
    "time": EndRule(Quantity.TIME, Comparison.GE, _as_given, "a step time limit must be above zero",
                    "a duration above 0 s"),
    "dvdt": EndRule(Quantity.DVDT, Comparison.LE, _as_given, "a dV/dt end must be above zero",
                    "a rate above 0 such as '1 mV/h'", shown="dV/dt"),
}


@dataclass(frozen=True, slots=True)
class Jump:
    """A termination whose ``then`` names a step id: it becomes a jump once the id's step index is known."""

    termination: Termination
    label: str
    path: Path


@dataclass(frozen=True, slots=True)
class Ends:
    """The terminations of one ``until`` (``None`` when one of them could not be bound: reported) and the jumps
    among them (kept either way, so that every ``then`` is checked)."""

    terminations: list[Termination] | None
    jumps: list[Jump]


def bind_until(b: Binding, until: m.Limits | list[m.LimitEntry] | None, kind: str, path: Path,
               direction: str | None) -> Ends:
    """The terminations of a step of ``kind`` at ``path``; ``direction`` is ``charge``/``discharge`` where the step
    has one (it decides which way a plain voltage limit is crossed)."""
    entries: list[tuple[m.Limits, str, Path]] = []
    if isinstance(until, list):
        entries = [(e, e.then, (*path, "until", i)) for i, e in enumerate(until)]
    elif until is not None:
        entries = [(until, "next", (*path, "until"))]
    result: list[Termination] = []
    jumps: list[Jump] = []
    ok = True
    for limits, then, where in entries:
        for name, limit in limits.given().items():
            t = _termination(b, name, limit, kind, (*where, name), direction)
            if t is None:
                ok = False
                continue
            if then == "end":
                t = t.model_copy(update={"then": Action.END})
            elif then != "next":
                jumps.append(Jump(t, then, (*where, "then")))
            result.append(t)
    return Ends(result if ok else None, jumps)


def _termination(b: Binding, name: str, limit: m.LimitValue, kind: str, path: Path,
                 direction: str | None) -> Termination | None:
    if name not in ALLOWED.get(kind, ()):
        why = WHY_NOT.get((kind, name), f"a {kind} step cannot end on {name}")
        b.problem(path, f"a {kind} step cannot end on {name}: {why}",
                  expected="one of " + ", ".join(sorted(ALLOWED.get(kind, ()))), found=name, key=True)
        return None
    rule = RULES[name]
    quantity = limit.quantity if isinstance(limit, Threshold) else limit
    written = limit.text
    if rule.op is None:
        op = _voltage_op(b, limit, kind, path, direction)
    else:
        op = rule.op
        if isinstance(limit, Threshold) and limit.op not in (None, op.value):
            shown = rule.shown or name
            falls = "falls to" if op is Comparison.LE else "grows to"
            b.problem(path, f"a {shown} end is met when |{shown}| {falls} the value, so this comparison is the wrong "
                      "way round", expected=f"'{quantity.text}' or '{op.value[0]} {quantity.text}'",
                      found=repr(written))
            return None
    if op is None:
        return None
    if rule.not_positive is not None and quantity.value <= 0:
        b.problem(path, rule.not_positive, rule.positive, repr(written))
        return None
    value = rule.si(b, quantity, path)
    if rule.not_positive is not None and value is not None and value <= 0:  # a tiny relative value x a tiny property
        b.problem(path, rule.not_positive, rule.positive, repr(written))
        return None
    if rule.quantity is Quantity.VOLTAGE and value is not None and not _reachable(b, value, op, path, written):
        return None
    return Termination(quantity=rule.quantity, op=op, value=value if value is not None else 0)


def _voltage_op(b: Binding, limit: m.LimitValue, kind: str, path: Path, direction: str | None) -> Comparison | None:
    """The comparison of a voltage limit: the one written, else the step's natural one (a charge ends rising)."""
    assert isinstance(limit, Threshold)
    value_text = limit.quantity.text
    natural = NATURAL_VOLTAGE_OP.get(direction or "")
    if limit.op is None and natural is None:
        b.problem(path, f"cannot tell whether a {kind} step ends above or below {value_text}",
                  expected=f"an explicit operator: '< {value_text}' or '> {value_text}'", found=repr(limit.text))
        return None
    if limit.op is not None and natural is not None and limit.op != natural.value:
        rises = "rises" if direction == "charge" else "falls"
        b.problem(path, f"the voltage of a {direction} step {rises}, so this limit is on the wrong side",
                  expected=f"'{natural.value} {value_text}' (or just '{value_text}')", found=repr(limit.text))
        return None
    return Comparison(limit.op) if limit.op is not None else natural


def _reachable(b: Binding, value: float, op: Comparison, path: Path, text: str) -> bool:
    """A voltage end the safety/cell window stops the run before, or one met the moment the step starts, is a
    mistake: the first stops the channel instead of ending the step, the second skips the step."""
    low, high = b.safety.voltage_min, b.safety.voltage_max
    if op is Comparison.GE and high is not None and value >= high:
        b.problem(path, f"the limit {text} is never reached: the safety/cell limit stops the run at {high:g} V "
                  "first", expected=f"a voltage below {high:g} V, or a higher safety limit", found=repr(text))
        return False
    if op is Comparison.LE and low is not None and value <= low:
        b.problem(path, f"the limit {text} is never reached: the safety/cell limit stops the run at {low:g} V "
                  "first", expected=f"a voltage above {low:g} V, or a lower safety limit", found=repr(text))
        return False
    if op is Comparison.GE and low is not None and value <= low:
        b.problem(path, f"a rising limit at {text} is at or below the lowest allowed voltage {low:g} V, so it is "
                  "met the moment the step starts", expected=f"a voltage above {low:g} V", found=repr(text))
        return False
    if op is Comparison.LE and high is not None and value >= high:
        b.problem(path, f"a falling limit at {text} is at or above the highest allowed voltage {high:g} V, so it "
                  "is met the moment the step starts", expected=f"a voltage below {high:g} V", found=repr(text))
        return False
    return True
