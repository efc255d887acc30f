"""The one safety rule: which recorded point first breaks a program's safety limits, and how that reads.

The station applies it to every stored block of every run, whatever the instrument; a driver whose instrument has
no protection of its own (EClib) may apply it to what it reads too, and then both say the same thing about the
same point. Vectorised, because it runs on every block of up to 2048 channels each second.

Tolerances absorb the instruments' number formats, not physics: a voltage may sit 1 uV past a limit (a
single-precision reading of a value on the limit rounds by up to 0.25 uV at 4 V), a current or a capacity 1 ppm.
A reading that is not a number breaks every limit: a channel that cannot measure its cell cannot be kept safe.
The one exception is temperature, the chamber's and the instrument's auxiliary sensor's: NaN there means no reading
(no chamber or sensor, or a poll that got no answer), which the chamber's own alerts report; only a reading above
``temperature_max`` breaks that limit, whichever of the two read it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from protocols.program import SafetyLimits

VOLTAGE_TOLERANCE = 1e-6  # V
RELATIVE_TOLERANCE = 1e-6
_ABSOLUTE_FLOOR = 1e-12  # A or Ah: keeps a limit of a few pA from being broken by rounding alone

Columns = Mapping[str, np.ndarray] | np.ndarray
"""Records as columns: a structured array (the store's blocks) or a mapping of named arrays. Columns may be
missing (a driver checking raw points has no step time): the limits on them are not checked."""

#: the columns the rule reads, in the order an invalid reading shows them, with their symbols
_COLUMNS = {"voltage": "V", "current": "I", "test_time": "t", "capacity": "Q", "step_time": "step t"}
#: the record's chamber temperature (degC): read only when the program limits it, and NaN is no reading, not invalid
TEMPERATURE = "temperature"
#: the record's auxiliary sensor temperature (degC, a Neware T1 on the cell): read and judged as the chamber's
AUX_TEMPERATURE = "aux_temperature"
_TEMPERATURES = {TEMPERATURE: "chamber", AUX_TEMPERATURE: "cell sensor"}


@dataclass(frozen=True, slots=True)
class Breach:
    """The first recorded point that breaks a limit: its position in the columns and what it broke."""

    index: int
    message: str


def _column(records: Columns, name: str, names: tuple[str, ...] | None) -> np.ndarray | None:
    """``records``' column ``name`` as float64, or None; ``names``: the columns ``records`` has."""
    if not names or name not in names:
        return None
    return np.asarray(records[name], dtype=np.float64)


#: how a rule compares a column with its bound: above it, below it, or in magnitude above it
_ABOVE, _BELOW, _MAGNITUDE = "above", "below", "magnitude"


def _rules(limits: SafetyLimits) -> list[tuple[str, str, float, Callable[[float], str]]]:
    """(column, comparison, bound, message of the value) for each limit the program sets; a point breaks the rule
    when its value is finite and ``value > bound`` (above), ``value < bound`` (below) or ``abs(value) > bound``
    (magnitude). Both searches of :func:`first_breach` read this one table."""
    rules: list[tuple[str, str, float, Callable[[float], str]]] = []
    if (v_max := limits.voltage_max) is not None:
        rules.append(("voltage", _ABOVE, v_max + VOLTAGE_TOLERANCE,
                      lambda x: f"voltage {x:.4f} V above the safety limit {v_max:g} V"))
    if (v_min := limits.voltage_min) is not None:
        rules.append(("voltage", _BELOW, v_min - VOLTAGE_TOLERANCE,
                      lambda x: f"voltage {x:.4f} V below the safety limit {v_min:g} V"))
    if (i_max := limits.current_max) is not None:
        rules.append(("current", _MAGNITUDE, i_max * (1 + RELATIVE_TOLERANCE) + _ABSOLUTE_FLOOR,
                      lambda x: f"current {x:.6g} A above the safety limit {i_max:g} A"))
    if (q_max := limits.capacity_max) is not None:
        rules.append(("capacity", _MAGNITUDE, q_max * (1 + RELATIVE_TOLERANCE) + _ABSOLUTE_FLOOR,
                      lambda x: f"step capacity {abs(x):.6g} Ah above the safety limit {q_max:g} Ah"))
    if (step_s := limits.step_duration_max) is not None:
        rules.append(("step_time", _ABOVE, step_s,
                      lambda x: f"step time {x:.0f} s beyond the step limit {step_s:g} s"))
    if (run_s := limits.run_duration_max) is not None:
        rules.append(("test_time", _ABOVE, run_s,
                      lambda x: f"test time {x:.0f} s beyond the run limit {run_s:g} s"))
    if (t_max := limits.temperature_max) is not None:
        rules.append((TEMPERATURE, _ABOVE, t_max,
                      lambda x: f"temperature {x:g} degC above the safety limit {t_max:g} degC"))
        rules.append((AUX_TEMPERATURE, _ABOVE, t_max,
                      lambda x: f"cell sensor temperature {x:g} degC above the safety limit {t_max:g} degC"))
    return rules


def _mask(col: np.ndarray, comparison: str, bound: float) -> np.ndarray:
    """The points of ``col`` that break a rule's comparison (not yet restricted to finite values)."""
    if comparison == _ABOVE:
        return col > bound
    if comparison == _BELOW:
        return col < bound
    return np.abs(col) > bound


def _invalid_message(shown: str) -> str:
    return f"the instrument reported an invalid reading ({shown}); treated as a safety breach"


def _clear(columns: dict[str, np.ndarray], limits: SafetyLimits) -> bool:
    """True when nothing in the block can break a limit: every value finite and each column's extremes inside.
    The common case, decided from a few reductions per column (the station runs this on every block of every
    channel each poll); anything else goes on to the exact search for the first breaking point."""
    bounds = {
        "voltage": (None if limits.voltage_min is None else limits.voltage_min - VOLTAGE_TOLERANCE,
                    None if limits.voltage_max is None else limits.voltage_max + VOLTAGE_TOLERANCE),
        "current": (None, None if limits.current_max is None
                    else limits.current_max * (1 + RELATIVE_TOLERANCE) + _ABSOLUTE_FLOOR),
        "capacity": (None, None if limits.capacity_max is None
                     else limits.capacity_max * (1 + RELATIVE_TOLERANCE) + _ABSOLUTE_FLOOR),
        "step_time": (None, limits.step_duration_max),
        "test_time": (None, limits.run_duration_max),
        TEMPERATURE: (None, limits.temperature_max),
        AUX_TEMPERATURE: (None, limits.temperature_max),
    }
    for name, col in columns.items():
        if not col.size:
            continue
        if name in _TEMPERATURES:  # NaN is no reading: only the readings there are count
            readings, highest = col[~np.isnan(col)], bounds[name][1]
            if readings.size and highest is not None and float(readings.max()) > highest:
                return False
            continue
        low, high = float(col.min()), float(col.max())
        if not (math.isfinite(low) and math.isfinite(high)):
            return False  # NaN propagates through min and max; an infinity shows at one end
        below, above = bounds[name]
        magnitude = name in ("current", "capacity")
        if magnitude:
            low, high = 0.0, max(-low, high)
        if (below is not None and low < below) or (above is not None and high > above):
            return False
    return True


#: blocks of at most this many points are searched point by point in Python (a supervision round checks one
#: or two records per channel: numpy's fixed cost per call, ~15 us a block, was most of the check); the answer is
#: the vectorised search's exactly (tests/protocols/test_safety.py compares both on random blocks and limits)
FEW_POINTS = 8


def first_breach(records: Columns, limits: SafetyLimits) -> Breach | None:
    """The earliest point that breaks any limit (the first rule in the order above when one point breaks two), or
    ``None``. Every column present must hold finite numbers."""
    names = records.dtype.names if isinstance(records, np.ndarray) else tuple(records)
    read = (*_COLUMNS, *_TEMPERATURES) if limits.temperature_max is not None else tuple(_COLUMNS)
    present = {name: col for name in read if (col := _column(records, name, names)) is not None}
    if not present:
        return None
    shapes = {col.shape for col in present.values()}
    if len(shapes) == 1 and len(shape := shapes.pop()) == 1 and shape[0] <= FEW_POINTS:
        return _first_breach_few({name: col.tolist() for name, col in present.items()}, shape[0], limits)
    return _first_breach_vector(present, limits)


def _first_breach_vector(present: dict[str, np.ndarray], limits: SafetyLimits) -> Breach | None:
    """:func:`first_breach` on whole columns: a few reductions decide the common clear case."""
    if _clear(present, limits):
        return None
    n = len(next(iter(present.values())))
    first: Breach | None = None
    invalid = np.zeros(n, dtype=bool)
    measured = [name for name in present if name in _COLUMNS]
    for name in measured:
        invalid |= ~np.isfinite(present[name])
    if invalid.any():
        k = int(np.argmax(invalid))
        first = Breach(k, _invalid_message(", ".join(f"{_COLUMNS[name]} {float(present[name][k])!r}"
                                                     for name in measured)))
    for name, comparison, bound, message in _rules(limits):
        col = present.get(name)
        if col is None:
            continue
        with np.errstate(invalid="ignore"):
            mask = _mask(col, comparison, bound) & np.isfinite(col)
        if mask.any():
            k = int(np.argmax(mask))
            if first is None or k < first.index:
                first = Breach(k, message(float(col[k])))
    return first


def _first_breach_few(present: dict[str, list[float]], n: int, limits: SafetyLimits) -> Breach | None:
    """:func:`first_breach` point by point, for blocks of a few points: the same rules, in the same order, on the
    columns' values as Python floats (the same IEEE doubles, compared the same way)."""
    isfinite = math.isfinite
    first: Breach | None = None
    measured = {name: col for name, col in present.items() if name in _COLUMNS}
    for k in range(n):
        if not all(isfinite(col[k]) for col in measured.values()):
            first = Breach(k, _invalid_message(", ".join(f"{_COLUMNS[name]} {col[k]!r}"
                                                         for name, col in measured.items())))
            break
    for name, comparison, bound, message in _rules(limits):
        col = present.get(name)
        if col is None:
            continue
        for k in range(n if first is None else first.index):  # a later point cannot come first
            x = col[k]
            if comparison == _ABOVE:
                breaks = x > bound
            elif comparison == _BELOW:
                breaks = x < bound
            else:
                breaks = abs(x) > bound
            if breaks and isfinite(x):
                first = Breach(k, message(x))
                break
    return first
