"""Property: any program of the steps Biologic can run goes through driver and simulator on the nominal path."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import ChannelState
from drivers.biologic.channel import BiologicChannel, BiologicConfig
from protocols.clock import VirtualClock
from protocols.program import (
    CaStep,
    CurrentStep,
    CvStep,
    EisStep,
    LoopStep,
    LsvStep,
    RecordRule,
    RestStep,
    StepProgram,
    Termination,
    walk,
)
from simulators.biologic import simulated_eclib
from simulators.cells.dummy import DummyCell, DummyCellParams


def _time(seconds):
    return (Termination(quantity="time", op=">=", value=seconds),)


durations = st.floats(1.0, 120.0)
record = st.builds(RecordRule, every_s=st.sampled_from([1.0, 5.0, 30.0]))
volts = st.floats(-0.8, 0.8).map(lambda v: round(v, 3))
steps = st.one_of(
    st.builds(lambda d, r: RestStep(index=1, until=_time(d), record=r), durations, record),
    st.builds(lambda i, d, r: CurrentStep(index=1, kind="charge" if i > 0 else "discharge", current=i,
                                          until=_time(d), record=r),
              st.sampled_from([-2e-3, -1e-4, 5e-5, 1e-3]), durations, record),
    st.builds(lambda v, ocv, d, r: CaStep(index=1, voltage=v, vs_ocv=ocv, until=_time(d), record=r),
              st.floats(-0.05, 0.05), st.booleans(), durations, record),
    st.builds(lambda f1, dec, n: EisStep(index=1, f_start=f1, f_end=f1 / 10**dec, points_per_decade=n,
                                         amplitude=0.01),
              st.sampled_from([1e5, 1e4, 1e3]), st.integers(1, 4), st.integers(1, 6)),
    st.builds(lambda v1, v2, c: CvStep(index=1, scan_rate=0.01, vertex_1=v1, vertex_2=v2 if v2 != v1 else v1 + 0.1,
                                       cycles=c, record=RecordRule(voltage_change=0.01)),
              volts, volts, st.integers(1, 3)),
    st.builds(lambda v: LsvStep(index=1, scan_rate=0.01, end=v, record=RecordRule(voltage_change=0.01)), volts),
)  # fmt: skip


@st.composite
def programs(draw):
    body = draw(st.lists(steps, min_size=1, max_size=5))
    if draw(st.booleans()) and len(body) >= 1:
        start = draw(st.integers(1, len(body)))
        end = draw(st.integers(start, len(body)))
        body = [*body[:end], LoopStep(index=1, target=start, count=draw(st.integers(1, 3))), *body[end:]]
    numbered = []
    for n, step in enumerate(body, start=1):
        update = {"index": n}
        if isinstance(step, LoopStep):
            update["target"] = step.target
        numbered.append(step.model_copy(update=update))
    return StepProgram(protocol="random", cell="dummy", steps=tuple(numbered))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.sampled_from([1, 2, 3]), st.sampled_from([17.0, 400.0]))
def test_any_runnable_program_follows_its_nominal_path(program, board, poll):
    clock = VirtualClock()
    cell = DummyCell(DummyCellParams(e0=0.5, r0=10.0, r1=100.0, r2=0.0, c2=1e-3))
    driver = BiologicChannel(simulated_eclib(clock, {0: cell}, board=board), BiologicConfig("USB0", 0), clock)
    driver.start(program, "prop")
    records = []
    for _ in range(20_000):
        clock.advance(poll)
        records += driver.read_records(records[-1].seq if records else 0)
        if driver.status().state is ChannelState.FINISHED:
            break
    assert driver.status().state is ChannelState.FINISHED
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert np.all(np.diff([r.test_time for r in records]) >= 0)
    runs = []
    for r in records:
        if not runs or runs[-1] != (r.step_index, r.cycle):
            runs.append((r.step_index, r.cycle))
    assert runs == [(e.step.index, e.cycle) for e in walk(program)]
