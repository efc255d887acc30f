"""Which cycles a figure draws: ``--cycles`` checked against what a run has, with an error naming what it has.

Free of matplotlib, so the CLI can check a selection before any figure is built."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from station.analysis.run_data import RunData
from station.plots.errors import PlotError

#: the longest range one ``--cycles`` part may span (far beyond any run; keeps a typo from building a huge set)
MAX_RANGE = 1_000_000


def span(values: Sequence[int]) -> str:
    """Sorted cycle numbers as ranges, the way ``--cycles`` takes them: ``[1, 2, 3, 7]`` -> ``"1-3,7"``."""
    parts: list[list[int]] = []
    for v in values:
        if parts and parts[-1][1] == v - 1:
            parts[-1][1] = v
        else:
            parts.append([v, v])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def pick(run: RunData, available: Sequence[int], cycles: Collection[int] | None, what: str = "cycle",
         default: Sequence[int] | None = None) -> list[int]:
    """The cycles of ``available`` that ``cycles`` asks for (``default``, else all of them, when it is None); a
    :class:`PlotError` naming the run and the cycles it has when none of the asked ones is there."""
    if cycles is None:
        return list(available if default is None else default)
    picked = sorted(set(cycles) & set(available))
    if not picked:
        raise PlotError(f"run {run.label} has no {what} {span(sorted(set(cycles)))} (its {what}s: "
                        f"{span(list(available)) or 'none'}); choose from those with --cycles")
    return picked


def parse_cycles(text: str) -> list[int]:
    """``"1,2,5-10"`` -> ``[1, 2, 5, 6, 7, 8, 9, 10]``: comma-separated cycle numbers and inclusive ranges, each
    at least 1."""
    picked: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        first, dash, last = part.partition("-")
        try:
            lo = int(first)
            hi = int(last) if dash else lo
        except ValueError:
            raise PlotError(f"--cycles '{text}': '{part}' is not a cycle number or a range like 5-10; write e.g. "
                            f"--cycles 1,2,5-10") from None
        if lo < 1 or hi < lo:
            raise PlotError(f"--cycles '{text}': '{part}' is not a range of cycles from 1 up (first <= last); "
                            f"write e.g. --cycles 1,2,5-10")
        if hi - lo >= MAX_RANGE:
            raise PlotError(f"--cycles '{text}': '{part}' spans more than {MAX_RANGE} cycles; give a shorter range")
        picked.update(range(lo, hi + 1))
    return sorted(picked)
