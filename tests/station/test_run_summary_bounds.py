"""A run's summary from the step bounds gathered as its records are stored (station.analysis.steps.StepBounds)."""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from station import cli_runs
from station.analysis.steps import StepBounds, step_starts
from station.cli import app
from station.store import RECORD_DTYPE, Store

runner = CliRunner()


def _records(steps: list[tuple[int, int, int]]) -> np.ndarray:
    """Step runs of (step index, cycle, records): each run's step time counts from 0."""
    rows = np.zeros(sum(n for _, _, n in steps), dtype=RECORD_DTYPE)
    at = 0
    for index, cycle, n in steps:
        rows["step_index"][at:at + n] = index
        rows["cycle"][at:at + n] = cycle
        rows["step_time"][at:at + n] = 30.0 * np.arange(n)
        at += n
    rows["seq"] = np.arange(1, len(rows) + 1)
    return rows


def _bounds_of_whole(rows: np.ndarray) -> np.ndarray:
    """The opening and closing records of every step run, from the whole array at once."""
    opens = step_starts(rows)
    return rows[opens | np.r_[opens[1:], True]] if len(rows) else rows


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(1, 7)), max_size=12),
       st.lists(st.integers(0, 60), max_size=8))
def test_bounds_gathered_block_by_block_are_those_of_the_whole_run(steps, cuts) -> None:
    rows = _records(steps)
    edges = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    bounds = StepBounds(RECORD_DTYPE)
    for a, b in itertools.pairwise(edges):
        bounds.add(rows[a:b])
    assert bounds.count == len(rows)
    assert bounds.records().tobytes() == _bounds_of_whole(rows).tobytes()
    assert bounds.first_seq == (1 if len(rows) else None)


def test_a_step_that_starts_over_on_itself_is_two_runs() -> None:
    rows = _records([(2, 1, 3), (2, 1, 3)])  # the same index and cycle, the step clock back to 0
    bounds = StepBounds(RECORD_DTYPE)
    bounds.add(rows[:4])
    bounds.add(rows[4:])
    assert bounds.records()["seq"].tolist() == [1, 3, 4, 6]


def test_a_dry_runs_summary_comes_from_the_stored_blocks_and_equals_the_stores(tmp_path, monkeypatch) -> None:
    def never(*_: object) -> None:
        raise AssertionError("the summary read the whole run back")

    monkeypatch.setattr(cli_runs, "_step_bounds", never)
    result = runner.invoke(app, ["run", "p3-full-cell-cycling", "--cell", "predeposited-ncm622", "--dry-run",
                                 "--json", "--set", "cycles=3", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    monkeypatch.undo()
    store = Store(tmp_path)
    try:
        again = cli_runs._summary(SimpleNamespace(store=store), doc["run_id"])  # type: ignore[arg-type]
        assert again == doc
        assert doc["records"] == store.record_count(doc["run_id"]) > 0
        assert [c["cycle"] for c in doc["cycles"]] == list(range(1, len(doc["cycles"]) + 1))
    finally:
        store.close()


def test_bounds_that_are_not_the_whole_run_are_read_back(tmp_path) -> None:
    result = runner.invoke(app, ["run", "p3-full-cell-cycling", "--cell", "predeposited-ncm622", "--dry-run",
                                 "--json", "--set", "cycles=2", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout)["run_id"]
    store = Store(tmp_path)
    try:
        blocks = list(store.iter_record_blocks(run_id))
        whole = cli_runs._run_bounds(store, run_id, None)  # nothing seen: read back
        assert whole.count == store.record_count(run_id) == sum(len(b) for b in blocks)
        later = StepBounds(RECORD_DTYPE)  # a process that attached later saw the run from a later record on
        for block in blocks[1:]:
            later.add(block)
        assert cli_runs._run_bounds(store, run_id, later).records().tobytes() == whole.records().tobytes()
        short = StepBounds(RECORD_DTYPE)  # from the first record, but not every record (one was stored elsewhere)
        for block in blocks[:-1]:
            short.add(block)
        assert cli_runs._run_bounds(store, run_id, short) is not short
        seen = StepBounds(RECORD_DTYPE)
        for block in blocks:
            seen.add(block)
        assert cli_runs._run_bounds(store, run_id, seen) is seen
    finally:
        store.close()
