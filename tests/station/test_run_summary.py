"""The end-of-run summary keeps only the records that open or close a step run (station.analysis.steps.StepBounds),
gathered as the run's blocks are stored or read back block by block (station/cli_runs.py ``_step_bounds``): the
step runs it finds, and so the cycle table it prints, are those of the whole run, wherever the blocks are cut, and
it counts every record. A station that stored the whole run does not read it back."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from station import cli_runs
from station.analysis.steps import StepBounds, step_runs
from station.cli import app
from station.cli_runs import _step_bounds
from station.store import RECORD_DTYPE, Store
from station.store.records import RECORD_DTYPE_V2, conformed

runner = CliRunner()
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
    bounds = _step_bounds(iter(blocks))
    kept, count = bounds.records(), bounds.count
    assert count == len(whole)
    assert same_runs(kept, whole)
    assert kept["test_time"][-1] == whole["test_time"][-1]  # the last record is always kept: the run's duration
    assert len(kept) <= 2 * len(step_runs(whole, PROGRAM))  # type: ignore[arg-type]


def test_a_run_without_records_has_an_empty_summary() -> None:
    bounds = _step_bounds(iter([np.empty(0, dtype=RECORD_DTYPE)]))
    kept, count = bounds.records(), bounds.count
    assert (len(kept), count, kept.dtype) == (0, 0, RECORD_DTYPE)


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
