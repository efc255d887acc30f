"""Record building: technique -> step mapping, cycles from the nominal path, integrals, re-attach placement."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.base import DriverError
from drivers.biologic.decode import DataChunk
from drivers.biologic.records import RecordBuilder
from drivers.nominal_path import NominalPath
from protocols.program import CurrentStep, LoopStep, RestStep, StepProgram, Termination, walk

TIME = (Termination(quantity="time", op=">=", value=10.0),)
NESTED = StepProgram(
    protocol="nested", cell="c",
    steps=(
        RestStep(index=1, until=TIME),
        CurrentStep(index=2, kind="charge", current=1e-3, until=TIME),
        CurrentStep(index=3, kind="discharge", current=-1e-3, until=TIME),
        LoopStep(index=4, target=3, count=2),
        LoopStep(index=5, target=2, count=3),
        RestStep(index=6, until=TIME),
    ),
)  # fmt: skip


def chunk(index, start, t, v, i, loop=0):
    return DataChunk(technique_index=index, technique_id=102, process=0, loop=loop, start_time=start,
                     t=np.asarray(t, float), voltage=np.asarray(v, float), current=np.asarray(i, float))  # fmt: skip


def test_nominal_path_follows_walk_for_nested_loops():
    path = NominalPath(NESTED)
    got = [(e.step.index, path.next_occurrence(e.step.index)) for e in walk(NESTED)]
    assert got == [(e.step.index, e.cycle) for e in walk(NESTED)]


def test_reattach_finds_the_run_with_that_many_jumps():
    nominal = list(walk(NESTED))
    jumps, previous, targets = 0, 0, []
    for e in nominal:
        jumps += e.step.index <= previous
        previous = e.step.index
        targets.append(jumps)
    for k, executed in enumerate(nominal):
        path = NominalPath(NESTED)
        assert path.next_occurrence(executed.step.index, targets[k]) == executed.cycle


def test_builder_integrates_per_step_and_numbers_records():
    builder = RecordBuilder(NESTED, [1, 2, 3, 4, 5, 6])
    builder.add(chunk(0, 0.0, [0, 10], [3.0, 3.0], [0, 0]))
    builder.add(chunk(1, 10.0, [10, 15, 20], [3.5, 3.6, 3.7], [1e-3, 1e-3, 1e-3]))
    charge = builder.records[2:]
    assert [r.seq for r in builder.records] == [1, 2, 3, 4, 5]
    assert [r.step_time for r in charge] == [0, 5, 10]
    assert charge[-1].capacity == pytest.approx(1e-3 * 10 / 3600)
    assert charge[-1].energy == pytest.approx((3.55 + 3.65) * 1e-3 * 5 / 3600)  # two trapezoids
    builder.acknowledge(4)
    assert [r.seq for r in builder.records] == [5]
    with pytest.raises(DriverError, match="technique 9, which was not loaded"):
        builder.add(chunk(9, 99.0, [1], [1], [1]))


def test_reattached_builder_continues_the_stations_numbering():
    builder = RecordBuilder(NESTED, [1, 2, 3, 4, 5, 6], reattached=True)
    builder.acknowledge(41)
    builder.add(chunk(2, 50.0, [50], [3.0], [-1e-3], loop=1))  # second run of step 3: one jump so far
    (record,) = builder.records
    assert record.seq == 42 and record.step_index == 3
    assert record.cycle == [e.cycle for e in walk(NESTED) if e.step.index == 3][1]
