"""The simulated channel's per-step shortcuts (issue 18) keep its records what they were.

A 1000-cycle dry run enters each step of its program about a thousand times, so the channel builds a step's model
view once per test, and appends a step's records to the store in one go. These tests check what could go wrong
with that: a new test (another step file, same Step_IDs) must not run the previous test's steps, and a store fed
in small appends (the usual case) must read back every row, in memory and after spilling to disk.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulators.neware.engine import ChannelEngine
from simulators.neware.records import CHUNK, COLUMNS, RecordStore
from simulators.neware.stepfile import check_plan, parse_step_file
from tests.fakes.standin_cell import LinearCell

FILE = (
    '<?xml version="1.0" encoding="UTF-8"?><root><config type="Step File"><Head_Info><Start_Step Value="1" />'
    '</Head_Info><Whole_Prt><Record><Main><Time Value="{record_ms}" /></Main></Record></Whole_Prt>'
    '<Step_Info Num="2"><Step1 Step_ID="1" Step_Type="1"><Limit><Main><Curr Value="{curr_ma}" />'
    '<Time Value="{time_ms}" /></Main></Limit></Step1><Step2 Step_ID="2" Step_Type="6" /></Step_Info></config></root>'
)


def plan(curr_ma: float, time_ms: int, record_ms: int):
    parsed = parse_step_file(FILE.format(curr_ma=curr_ma, time_ms=time_ms, record_ms=record_ms))
    check_plan(parsed)
    return parsed


def run_to_end(engine: ChannelEngine, start: float) -> dict[str, np.ndarray]:
    first = engine.records.count
    while engine.workstatus == "working":
        engine.advance(start + 1e6)
    return engine.records.slice(first, engine.records.count)


def test_a_new_test_runs_its_own_steps_not_the_previous_tests_with_the_same_step_ids() -> None:
    engine = ChannelEngine(lambda: LinearCell(q0=0.0005))
    assert engine.start(plan(1.0, 60_000, 10_000), "first", 1, 0.0)
    first = run_to_end(engine, 0.0)
    assert engine.start(plan(2.0, 120_000, 30_000), "second", 2, 1e6)
    second = run_to_end(engine, 1e6)
    # CC charge at 1 mA for 60 s recorded every 10 s, then 2 mA for 120 s every 30 s (the 1 mA step's view is
    # cached per test: the second test must build its own)
    assert first["step_time"].tolist() == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    assert np.all(first["curr"] == 0.001)
    assert second["step_time"].tolist() == [0.0, 30.0, 60.0, 90.0, 120.0]
    assert np.all(second["curr"] == 0.002)
    assert second["cap"][-1] == pytest.approx(0.002 * 120 / 3600, rel=1e-12)  # 2 mA for 120 s, in Ah


def test_small_appends_with_broadcast_scalars_read_back_unchanged_across_spilled_chunks() -> None:
    store = RecordStore()
    expected: dict[str, list[np.ndarray]] = {name: [] for name in COLUMNS}
    total, size, step = 0, 1, 0
    while total < 2 * CHUNK + 500:  # appends of 1..400 rows, most inside a chunk, some across a boundary
        n = min(size, 2 * CHUNK + 500 - total)
        rows = np.arange(total, total + n)
        columns: dict[str, np.ndarray | float | int] = {}
        for j, (name, dtype) in enumerate(COLUMNS.items()):
            if name in ("stepid", "cycleid", "steptype", "temperature_c"):  # per-step values, given as scalars
                columns[name] = step + j
                expected[name].append(np.full(n, step + j, dtype=dtype))
            else:
                columns[name] = (rows * 0.5 + j).astype(dtype)
                expected[name].append((rows * 0.5 + j).astype(dtype))
        store.append(columns, n)
        total, size, step = total + n, size % 400 + 37, step + 1
    assert store.count == total
    assert store._chunks[0] is None and store._chunks[1] is None  # the full chunks went to disk
    whole = {name: np.concatenate(parts) for name, parts in expected.items()}
    for start in (0, 999, CHUNK - 3, 2 * CHUNK - 1, 2 * CHUNK + 100):
        page = store.slice(start, start + 1000)
        stop = min(start + 1000, total)
        for name, dtype in COLUMNS.items():
            assert page[name].dtype == dtype
            assert page[name].tobytes() == whole[name][start:stop].tobytes(), (name, start)
    store.close()
