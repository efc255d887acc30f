"""The one safety rule: which recorded point first breaks a program's safety limits, and how that reads.

The station applies it to every stored block of every run, whatever the instrument; a driver whose instrument has
no protection of its own (EClib) may apply it to what it reads too, and then both say the same thing about the
same point. Vectorised, because it runs on every block of up to 2048 channels each second.

Tolerances absorb the instruments' number formats, not physics: a voltage may sit 1 uV past a limit (a
single-precision reading of a value on the limit rounds by up to 0.25 uV at 4 V), a current or a capacity 1 ppm.
A reading that is not a number breaks every limit: a channel that cannot measure its cell cannot be kept safe.
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


@dataclass(frozen=True, slots=True)
class Breach:
    """The first recorded point that breaks a limit: its position in the columns and what it broke."""

    index: int
    message: str


def _column(records: Columns, name: str) -> np.ndarray | None:
    names = records.dtype.names if isinstance(records, np.ndarray) else tuple(records)
    if not names or name not in names:
        return None
    return np.asarray(records[name], dtype=np.float64)


def _rules(limits: SafetyLimits) -> list[tuple[str, Callable[[np.ndarray], np.ndarray], Callable[[float], str]]]:
    """(column, mask of breaking points, message of the value) for each limit the program sets."""
    rules: list[tuple[str, Callable[[np.ndarray], np.ndarray], Callable[[float], str]]] = []
    if (v_max := limits.voltage_max) is not None:
        rules.append(("voltage", lambda v: v > v_max + VOLTAGE_TOLERANCE,
                      lambda x: f"voltage {x:.4f} V above the safety limit {v_max:g} V"))
    if (v_min := limits.voltage_min) is not None:
        rules.append(("voltage", lambda v: v < v_min - VOLTAGE_TOLERANCE,
                      lambda x: f"voltage {x:.4f} V below the safety limit {v_min:g} V"))
    if (i_max := limits.current_max) is not None:
        rules.append(("current", lambda i: np.abs(i) > i_max * (1 + RELATIVE_TOLERANCE) + _ABSOLUTE_FLOOR,
                      lambda x: f"current {x:.6g} A above the safety limit {i_max:g} A"))
    if (q_max := limits.capacity_max) is not None:
        rules.append(("capacity", lambda q: np.abs(q) > q_max * (1 + RELATIVE_TOLERANCE) + _ABSOLUTE_FLOOR,
                      lambda x: f"step capacity {abs(x):.6g} Ah above the safety limit {q_max:g} Ah"))
    if (step_s := limits.step_duration_max) is not None:
        rules.append(("step_time", lambda t: t > step_s,
                      lambda x: f"step time {x:.0f} s beyond the step limit {step_s:g} s"))
    if (run_s := limits.run_duration_max) is not None:
        rules.append(("test_time", lambda t: t > run_s,
                      lambda x: f"test time {x:.0f} s beyond the run limit {run_s:g} s"))
    return rules


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
    }
    for name, col in columns.items():
        if not col.size:
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


def first_breach(records: Columns, limits: SafetyLimits) -> Breach | None:
    """The earliest point that breaks any limit (the first rule in the order above when one point breaks two), or
    ``None``. Every column present must hold finite numbers."""
    present = {name: col for name in _COLUMNS if (col := _column(records, name)) is not None}
    if not present or _clear(present, limits):
        return None
    n = len(next(iter(present.values())))
    first: Breach | None = None
    invalid = np.zeros(n, dtype=bool)
    for col in present.values():
        invalid |= ~np.isfinite(col)
    if invalid.any():
        k = int(np.argmax(invalid))
        shown = ", ".join(f"{_COLUMNS[name]} {float(present[name][k])!r}" for name in present)
        first = Breach(k, f"the instrument reported an invalid reading ({shown}); treated as a safety breach")
    for name, breaks, message in _rules(limits):
        col = present.get(name)
        if col is None:
            continue
        with np.errstate(invalid="ignore"):
            mask = breaks(col) & np.isfinite(col)
        if mask.any():
            k = int(np.argmax(mask))
            if first is None or k < first.index:
                first = Breach(k, message(float(col[k])))
    return first
