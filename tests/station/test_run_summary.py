"""The end-of-run summary reads a run block by block and keeps only the records that open or close a step run
(station/cli_runs.py ``_step_bounds``): the step runs it finds, and so the cycle table it prints, are those of the
whole run, wherever the blocks are cut, and it counts every record."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from station.analysis.steps import step_runs
from station.cli_runs import _step_bounds
from station.store import RECORD_DTYPE
from station.store.records import RECORD_DTYPE_V2, conformed

PROGRAM = SimpleNamespace(steps=[SimpleNamespace(kind="rest", tag=None), SimpleNamespace(kind="charge", tag="f"),
                                 SimpleNamespace(kind="discharge", tag="f")])


def records(plan: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Step runs of ``n`` records each (step, cycle, n, where the step clock restarts), capacity growing."""
    rows = []
    for step, cycle, n, restart in plan:
        for k in range(n):
            t = float(k if not restart or k < restart else k - restart)
            rows.append((len(rows) + 1, float(len(rows)), t, step, cycle, 3.0, 1e-3, 1e-4 * (k + 1) * (-1) ** step,
                         1e-3 * k, np.nan, np.nan, np.nan, 0))
    return conformed(np.array(rows, dtype=RECORD_DTYPE_V2))  # the fields after cv_cycle read as no reading


def same_runs(a: np.ndarray, b: np.ndarray) -> bool:
    x, y = step_runs(a, PROGRAM), step_runs(b, PROGRAM)  # type: ignore[arg-type]
    return all(np.array_equal(getattr(x, f), getattr(y, f)) for f in ("step", "cycle", "capacity", "energy", "kind",
                                                                        "tag"))


@given(st.lists(st.tuples(st.integers(1, 3), st.integers(0, 3), st.integers(1, 6), st.integers(0, 3)), min_size=1,
                max_size=15), st.data())
@settings(max_examples=150, deadline=None)
def test_the_step_runs_of_the_kept_records_are_those_of_the_whole_run(plan, data) -> None:
    whole = records(plan)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(whole) - 1), max_size=6)) if len(whole) > 1 else []))
    blocks = np.split(whole, cuts)
    kept, count = _step_bounds(iter(blocks))
    assert count == len(whole)
    assert same_runs(kept, whole)
    assert kept["test_time"][-1] == whole["test_time"][-1]  # the last record is always kept: the run's duration
    assert len(kept) <= 2 * len(step_runs(whole, PROGRAM))  # type: ignore[arg-type]


def test_a_run_without_records_has_an_empty_summary() -> None:
    kept, count = _step_bounds(iter([np.empty(0, dtype=RECORD_DTYPE)]))
    assert (len(kept), count, kept.dtype) == (0, 0, RECORD_DTYPE)
