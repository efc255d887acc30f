"""A program with temperature steps as the instrument programs between them: exact indices, targets moved with
their steps, every segment a program a driver compiles, and the whole program's step and cycle numbers recovered
from each segment's own (held to :func:`protocols.program.walk` of the whole program)."""

from __future__ import annotations

import random

import pytest

from drivers.base import CapabilityError, ChannelRanges
from drivers.neware.stepfile import check_program
from protocols.cells import load_cell
from protocols.loader import load_protocol
from protocols.program import (
    Action,
    Comparison,
    CurrentStep,
    LoopStep,
    Quantity,
    RestStep,
    StepProgram,
    TemperatureStep,
    Termination,
    walk,
)
from protocols.segments import Segment, SegmentError, WholeProgramCycles, segments

from .conftest import program

NEWARE = ChannelRanges(voltage_min=-5.0, voltage_max=5.0, current_max=0.1, current_min_resolution=1e-7)


def p8(**overrides: str) -> StepProgram:
    bound = load_protocol("p8-temperature-cycling", overrides).bind(load_cell("predeposited-ncm622"))
    assert bound is not None
    return bound


def rest(index: int, **kw) -> RestStep:
    return RestStep(index=index, until=(Termination(quantity=Quantity.TIME, op=Comparison.GE, value=60.0),), **kw)


def charge(index: int, *until: Termination) -> CurrentStep:
    ends = until or (Termination(quantity=Quantity.VOLTAGE, op=Comparison.GE, value=4.2),)
    return CurrentStep(index=index, kind="charge", current=1e-3, until=ends)


def discharge(index: int, *until: Termination) -> CurrentStep:
    ends = until or (Termination(quantity=Quantity.VOLTAGE, op=Comparison.LE, value=3.0),)
    return CurrentStep(index=index, kind="discharge", current=-1e-3, until=ends)


def warm(index: int, celsius: float = 45.0) -> TemperatureStep:
    return TemperatureStep(index=index, setpoint=celsius, band=0.5, stable_for=1800.0, max_wait=14400.0)


def hand_built(*steps) -> StepProgram:
    return StepProgram(protocol="hand", cell="c", steps=steps)


def test_p8_splits_at_its_two_temperature_steps_with_exact_indices_and_targets():
    prog = p8()
    parts = segments(prog)
    assert [(s.number, s.temperature.index if s.temperature else None, s.first_index, list(s.steps))
            for s in parts] == [(1, 1, 2, [2, 3, 4, 5, 6, 7, 8]), (2, 9, 10, [10, 11, 12])]
    first, second = parts[0].program, parts[1].program
    assert [(s.index, s.kind) for s in first.steps] == [(1, "rest"), (2, "charge"), (3, "discharge"), (4, "loop"),
                                                        (5, "charge"), (6, "discharge"), (7, "loop")]
    assert (first.step(4).target, first.step(4).count, first.step(7).target, first.step(7).count) == (2, 2, 5, 100)
    assert [(s.index, s.kind) for s in second.steps] == [(1, "charge"), (2, "discharge"), (3, "loop")]
    assert (second.step(3).target, second.step(3).count) == (1, 100)
    assert [s.tag for s in second.steps] == ["cycling-45"] * 3
    # the set points the station waits on before each segment
    assert [(s.temperature.setpoint, s.temperature.band, s.temperature.stable_for) for s in parts] == [
        (27.0, 0.5, 1800.0), (45.0, 0.5, 3600.0)]


def test_each_segment_keeps_the_programs_limits_but_leaves_the_chamber_limit_to_the_station():
    prog = p8()
    assert prog.safety.temperature_max == 50.0
    for part in segments(prog):
        safety = part.program.safety
        assert safety.temperature_max is None
        assert (safety.voltage_min, safety.voltage_max, safety.current_max) == (2.5, 4.4, prog.safety.current_max)
        assert part.program.record == prog.record and part.program.nominal_capacity == prog.nominal_capacity


def test_each_segment_is_a_program_the_neware_compiler_accepts_and_the_whole_one_is_not():
    for part in segments(p8()):
        check_program(part.program, NEWARE)  # raises CapabilityError on anything it cannot run
    with pytest.raises(CapabilityError) as refused:
        check_program(p8(), NEWARE)
    assert str(refused.value) == ("step 1, 9 (temperature): temperature steps are carried out by the station, which "
                                  "sets the climate chamber between the instrument programs of a run, not by this "
                                  "channel")


def test_the_cell_starts_each_segment_where_the_steps_before_leave_it():
    parts = segments(p8())
    assert parts[0].program.start_voltage == 3.0  # the cell record's ocv: the rest follows the first wait
    assert parts[1].program.start_voltage == 3.0  # the last 0.5C discharge ends at v_min


def test_jumps_inside_a_segment_are_moved_with_it():
    prog = program("""
        protocol: t
        steps:
          - rest: 1 h
          - temperature: 45 degC
          - discharge: {current: 1 mA, until: [{voltage: 0.1 V}, {time: 1 h, then: after}]}
          - rest: 1 h
          - rest: {until: {time: 1 h}, id: after}
        """)
    part = segments(prog)[1]
    assert part.first_index == 3
    jump = part.program.step(1).until[1]
    assert (jump.then, jump.target) == (Action.JUMP, 3)  # whole step 5 is the segment's step 3


def test_a_program_without_temperature_steps_is_one_segment_holding_the_program_itself():
    prog = load_protocol("p3-full-cell-cycling", {"cycles": "3"}).bind(load_cell("predeposited-ncm622"))
    (only,) = segments(prog)
    assert only.program is prog and only.temperature is None and only.first_index == 1
    assert (only.cycle_offset, only.lead_steps) == (0, frozenset())


def test_consecutive_and_trailing_temperature_steps_are_segments_without_a_program():
    prog = hand_built(rest(1), warm(2, 45.0), warm(3, 60.0), rest(4), warm(5, 25.0))
    parts = segments(prog)
    assert [(s.number, s.temperature.setpoint if s.temperature else None, s.program is not None, s.first_index)
            for s in parts] == [(1, None, True, 1), (2, 45.0, False, 3), (3, 60.0, True, 4), (4, 25.0, False, 6)]
    assert [s.index for s in parts[2].program.steps] == [1]


def test_a_jump_across_a_temperature_step_in_a_hand_built_program_is_refused():
    back = Termination(quantity=Quantity.TIME, op=Comparison.GE, value=60.0, then=Action.JUMP, target=1)
    prog = hand_built(rest(1), warm(2), discharge(3, Termination(quantity=Quantity.VOLTAGE, op=Comparison.LE,
                                                                  value=3.0), back))
    with pytest.raises(SegmentError, match=r"^step 3 jumps to step 1 \('time >= 60 s -> step 1'\) across the "
                                           r"temperature step 2: the station runs"):
        segments(prog)


def test_a_loop_holding_a_temperature_step_in_a_hand_built_program_is_refused():
    prog = hand_built(rest(1), warm(2), charge(3), LoopStep(index=4, target=1, count=2))
    with pytest.raises(SegmentError, match="the loop of steps 1-4 holds the temperature step 2"):
        segments(prog)


def _by_segments(prog: StepProgram, parts: list[Segment]) -> list[tuple[int, int]]:
    """(whole index, whole cycle) of every instrument step, from each segment's own walk and its offsets."""
    out = []
    for part in parts:
        if part.program is None:
            continue
        for executed in walk(part.program):
            out.append((part.whole_index(executed.step.index),
                        part.whole_cycle(executed.step.index, executed.cycle)))
    return out


def _whole(prog: StepProgram) -> list[tuple[int, int]]:
    return [(e.step.index, e.cycle) for e in walk(prog) if not isinstance(e.step, TemperatureStep)]


def test_segment_cycles_plus_the_offset_are_the_whole_programs_cycles():
    prog = p8(cycles_27="3", cycles_45="2")
    parts = segments(prog)
    assert [(s.cycle_offset, s.lead_steps) for s in parts] == [(0, frozenset()), (5, frozenset())]
    assert _by_segments(prog, parts) == _whole(prog)
    # formation is cycles 1-2, 27 degC cycling 3-5, and 45 degC cycling goes on with 6-7
    assert [c for i, c in _whole(prog) if i == 10] == [6, 7]


def test_steps_before_the_first_loop_after_charge_passed_are_one_cycle_lower_the_lead_steps():
    # charge passed since the last cycle began when the chamber is set: the whole program opens a new cycle at the
    # loop after the rest, which the segment alone does not, so the rest is one cycle lower than the offset says
    prog = hand_built(charge(1), warm(2), rest(3), discharge(4), charge(5), LoopStep(index=6, target=4, count=2))
    parts = segments(prog)
    assert _whole(prog) == [(1, 1), (3, 1), (4, 2), (5, 2), (4, 3), (5, 3)]
    assert (parts[1].cycle_offset, parts[1].lead_steps) == (1, frozenset({1}))
    assert _by_segments(prog, parts) == _whole(prog)


def test_the_run_time_numbering_follows_the_whole_programs_execution():
    prog = hand_built(charge(1), warm(2), rest(3), discharge(4), charge(5), LoopStep(index=6, target=4, count=2),
                      warm(7, 25.0), discharge(8))
    parts = segments(prog)
    cycles = WholeProgramCycles(prog)
    seen = []
    for part in parts:
        if part.temperature is not None:
            seen.append((part.temperature.index, cycles.temperature(part)))
        if part.program is not None:
            seen += [(part.whole_index(e.step.index), cycles.observe(part, e.step.index))
                     for e in walk(part.program)]
    assert seen == [(e.step.index, e.cycle) for e in walk(prog)]
    assert seen == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (4, 3), (5, 3), (7, 4), (8, 4)]


def _random_program(rng: random.Random) -> StepProgram:
    """Top-level rests, charges, discharges, loops (some nested) and temperature steps, renumbered in order."""
    steps: list = []

    def plain() -> None:
        make = rng.choice([rest, charge, discharge])
        steps.append(make(len(steps) + 1))

    def loop(depth: int) -> None:
        first = len(steps) + 1
        for _ in range(rng.randint(1, 3)):
            if depth < 2 and rng.random() < 0.3:
                loop(depth + 1)
            else:
                plain()
        steps.append(LoopStep(index=len(steps) + 1, target=first, count=rng.randint(1, 3)))

    for _ in range(rng.randint(1, 7)):
        pick = rng.random()
        if pick < 0.35:
            plain()
        elif pick < 0.7:
            loop(0)
        else:
            steps.append(warm(len(steps) + 1, rng.choice([25.0, 45.0])))
    return hand_built(*steps)


def _by_station_rule(parts: list[Segment]) -> list[tuple[int, int]]:
    """(whole index, whole cycle) as the station numbers a run's records: a segment's own cycles, less one for its
    lead steps, plus the cycle of the run's last record before it and the segment's cycle step."""
    out: list[tuple[int, int]] = []
    for part in parts:
        if part.program is None:
            continue
        cycle0 = 0 if not out else out[-1][1] + (part.cycle_step or 0)
        out += [(part.whole_index(e.step.index), e.cycle - (e.cycle == 1 and e.step.index in part.lead_steps)
                 + cycle0) for e in walk(part.program)]
    return out


def test_offsets_and_lead_steps_give_the_whole_programs_cycles_for_many_programs():
    rng = random.Random(19)
    for _ in range(400):
        prog = _random_program(rng)
        parts = segments(prog)
        assert _by_segments(prog, parts) == _whole(prog), prog.steps
        assert _by_station_rule(parts) == _whole(prog), prog.steps  # from the records, however many cycles ran


def test_a_temperature_step_between_a_charge_and_its_discharge_goes_on_with_its_cycle():
    prog = hand_built(charge(1), warm(2), discharge(3), rest(4), charge(5), discharge(6),
                      LoopStep(index=7, target=5, count=2))
    parts = segments(prog)
    assert _whole(prog) == [(1, 1), (3, 1), (4, 1), (5, 2), (6, 2), (5, 3), (6, 3)]
    assert [(s.cycle_offset, s.cycle_step) for s in parts] == [(0, 0), (0, -1)]
    assert _by_station_rule(parts) == _whole(prog)
    p8_parts = segments(p8(cycles_27="3", cycles_45="2"))  # between two loops: the next cycle
    assert [s.cycle_step for s in p8_parts] == [0, 0]


def test_a_nominal_path_that_takes_a_branch_is_walked_for_its_offsets():
    # the discharge can only end the loop early (its one termination jumps past the loop): the nominal path
    # takes that jump in the first pass, so the temperature step is reached in cycle 2, not after three passes
    out = Termination(quantity=Quantity.VOLTAGE, op=Comparison.LE, value=3.0, then=Action.JUMP, target=4)
    prog = hand_built(charge(1), discharge(2, out), LoopStep(index=3, target=1, count=3), rest(4), warm(5),
                      charge(6), discharge(7), LoopStep(index=8, target=6, count=2))
    parts = segments(prog)
    assert _whole(prog) == [(1, 1), (2, 1), (4, 2), (6, 2), (7, 2), (6, 3), (7, 3)]
    assert parts[1].cycle_offset == 1
    assert _by_segments(prog, parts) == _whole(prog)
    assert parts[1].cycle_step == -1  # the rest ran in cycle 2, which the charge after the chamber goes on with
    assert _by_station_rule(parts) == _whole(prog)
