"""PyBaMM-style step strings ("Discharge at C/10 until 0 V"), read strictly.

We accept PyBaMM's grammar so existing experiment strings carry over, but each of its silent traps becomes an
error here: no hidden default durations, no voltage limit without an operator on rest or hold steps, no
"Charge at 4.2 V" (a voltage set-point that PyBaMM negates), no negative magnitudes, no current end on a
constant-current step. We add what PyBaMM lacks: per-area and per-mass currents, capacity ends
("for 4 mAh/cm^2"), dV/dt ends and several conditions joined by "or".

Telling a value's kind means reading it, so the mapping this module returns holds the value objects it read
(``Current``, ``Voltage``, a :class:`~protocols.fields.Threshold` for ``until < 3.0 V``): the models take them as
they are, and a shorthand value is parsed once, like any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from protocols.fields import Threshold, split_operator
from protocols.units import (
    Capacity,
    Current,
    Duration,
    Power,
    QuantityError,
    Scalar,
    ScanRate,
    Voltage,
    parse_c_rate,
    parse_capacity,
    parse_current,
)

#: what a bare value of a step string can be, in the order it is tried: a text that reads as a voltage is a voltage
_READERS: tuple[tuple[str, Callable[[str], Scalar | Current | Capacity]], ...] = (
    ("voltage", Voltage.parse), ("time", Duration.parse), ("power", Power.parse), ("dvdt", ScanRate.parse),
    ("current", parse_current), ("capacity", parse_capacity),
)


class ShorthandError(ValueError):
    def __init__(self, message: str, expected: str = "a step such as 'Discharge at C/10 until 3.0 V'"):
        super().__init__(message)
        self.expected = expected


_PERIOD = re.compile(r"^(?P<body>.*?)\s*\((?P<period>[^()]*?)\s+period\)\s*$", re.IGNORECASE)
_INSTRUCTION = re.compile(r"^(?P<verb>rest|charge|discharge|hold)\b(?:\s+at\s+(?P<value>.+?))?"
                          r"(?:\s+for\s+(?P<for>.+?))?(?:\s+(?:or\s+)?until\s+(?P<until>.+))?\s*$",
                          re.IGNORECASE)


def _classify(text: str) -> tuple[str, Any]:
    """Which quantity a bare value is (current, capacity, voltage, power, time, dvdt), and the value read as it."""
    if parse_c_rate(text) is not None:  # pint would read the C as coulombs
        try:
            return "current", parse_current(text)
        except QuantityError:
            return "current", text  # a C-rate out of range: the model refuses the text at the set-point's own path
    for kind, read in _READERS:
        try:
            return kind, read(text)
        except QuantityError:
            pass
    raise ShorthandError(f"cannot read '{text}' as a current, voltage, power, capacity or time",
                         "a value with a unit such as 'C/10', '4.2 V', '1 hour' or '2 mAh/cm^2'")


def _normalise_time(text: str) -> str:
    """PyBaMM's time words ('1 hour', '30 minutes', '10 sec') -> pint-readable text."""
    words = {"hours": "h", "hour": "h", "hr": "h", "minutes": "min", "minute": "min", "m": "min",
             "seconds": "s", "second": "s", "sec": "s"}
    match = re.match(r"^\s*([\d.eE+-]+)\s*([A-Za-z]+)\s*$", text)
    if match and match[2].lower() in words:
        return f"{match[1]} {words[match[2].lower()]}"
    return text


def _conditions(text: str, verb: str, limits: dict[str, Any]) -> None:
    for part in re.split(r"\s+or\s+", text.strip(), flags=re.IGNORECASE):
        operator = ""
        match = re.match(r"^\s*(<=|>=|<|>)\s*(.*)$", part)
        value = part.strip()
        if match:
            operator, value = match[1], match[2].strip()
        value = _normalise_time(value)
        kind, quantity = _classify(value)
        if kind in limits:
            raise ShorthandError(f"'{part.strip()}' repeats a {kind} condition")
        if kind == "voltage":
            if verb in ("rest", "hold") and not operator:
                raise ShorthandError(f"a {verb} step cannot tell which way '{value}' is crossed; write "
                                     f"'until < {value}' or 'until > {value}'",
                                     "an explicit '<' or '>' before the voltage")
            if verb == "hold":
                raise ShorthandError("a voltage hold cannot end on a voltage; end it on a current or time",
                                     "'Hold at 4.2 V until C/50'")
            written = f"{operator} {value}".strip()
            limits["voltage"] = Threshold(split_operator(written)[0], quantity, written)
        elif kind == "current":
            if verb in ("charge", "discharge"):
                raise ShorthandError(f"a constant-current step cannot end on a current ('{value}'); use "
                                     "'Hold at <V> until <current>' after it", "a voltage, capacity or time")
            if verb == "rest":
                raise ShorthandError("a rest has no current to end on", "a time, '< V', '> V' or a dV/dt")
            if operator == ">":
                raise ShorthandError("a current end means the current fell below the value; drop the '>'",
                                     "'until C/50' or 'until < 50 uA'")
            limits["current"] = quantity
        elif kind in ("capacity", "time"):
            if operator:
                raise ShorthandError(f"'{operator}' has no meaning before a {kind}", f"a plain {kind}")
            limits[kind] = quantity
        elif kind == "dvdt":
            if operator == ">":
                raise ShorthandError("a dV/dt end means the voltage settled below the rate; drop the '>'",
                                     "'until < 1 mV/h'")
            limits["dvdt"] = Threshold(None, quantity, value)
        else:
            raise ShorthandError(f"'{value}' ({kind}) cannot end a step", "a voltage, current, capacity or time")


def parse_shorthand(text: str) -> dict[str, Any]:
    """Turn one step string into the mapping form (``{"discharge": {...}}``) the models validate, holding the
    values read."""
    body, record = text.strip(), None
    period = _PERIOD.match(body)
    if period:
        body, record = period["body"], {"every": _normalise_time(period["period"])}
    match = _INSTRUCTION.match(body)
    if not match:
        raise ShorthandError(f"cannot read the step '{text}'",
                             "'<Rest|Charge|Discharge|Hold> [at <value>] for <time|capacity> [or] until <condition>'")
    verb = match["verb"].lower()
    if match["for"] is None and match["until"] is None:
        raise ShorthandError(f"'{text}' never ends: add 'for <time>' or 'until <condition>' (there is no hidden "
                             "default duration)", "'... for 1 hour' or '... until 4.2 V'")
    limits: dict[str, Any] = {}
    if match["for"] is not None:
        duration = _normalise_time(match["for"].strip())
        kind, quantity = _classify(duration)
        if kind not in ("time", "capacity"):
            raise ShorthandError(f"'for {duration}' must be a time or a capacity, found a {kind}",
                                 "'for 1 hour' or 'for 4 mAh/cm^2'")
        limits[kind] = quantity
    if match["until"] is not None:
        _conditions(match["until"], verb, limits)
    step: dict[str, Any] = {}
    value = match["value"]
    if verb == "rest":
        if value is not None:
            raise ShorthandError("a rest takes no set-point", "'Rest for 1 hour'")
    else:
        if value is None:
            raise ShorthandError(f"'{match['verb']}' needs a set-point: '{match['verb']} at <value> ...'",
                                 "'Charge at C/10 until 4.2 V'")
        value = value.strip()
        if value.startswith("-"):
            raise ShorthandError(f"'{value}' is negative; the direction comes from the word "
                                 "(Charge or Discharge), so give a magnitude", "a positive value")
        kind, quantity = _classify(value)
        if verb == "hold":
            if kind != "voltage":
                raise ShorthandError(f"'Hold at {value}' holds a voltage; for a current use Charge or Discharge",
                                     "'Hold at 4.2 V until C/50'")
            step["voltage"] = quantity
        elif kind == "voltage":
            raise ShorthandError(f"'{match['verb']} at {value}' is a voltage set-point; write 'Hold at {value}'",
                                 "'Hold at 4.2 V until C/50'")
        elif kind == "power":
            step["power"], step["direction"] = quantity, verb
            verb = "power"
        elif kind == "current":
            step["current"] = quantity
        else:
            raise ShorthandError(f"'{value}' ({kind}) is not a current or power set-point",
                                 "a current such as 'C/10', '0.5 mA/cm^2' or a power such as '5 mW'")
    step["until"] = limits
    if record:
        step["record"] = record
    return {verb: step}
