"""A program with temperature steps as the instrument programs between them: what the station runs, in order.

Neither a Neware step file nor a Biologic technique sequence can wait on an external climate chamber, so the station
carries out a :class:`~protocols.program.TemperatureStep` itself: it runs segment 1 on the channel, and when the
instrument says the segment finished it sets the chamber, waits until the chamber is stable, starts segment 2, and
so on. Each segment's program is an ordinary :class:`~protocols.program.StepProgram` numbered from 1 (what a driver
compiles); :attr:`Segment.first_index` maps its step numbers back to the whole program's, and the records of all
segments form one run (test time, record numbers and cycles go on across segments).

**Cycle numbers.** A segment's instrument numbers its cycles from 1 by :data:`~protocols.program.CYCLE_RULE`. The
whole program's cycle of a segment's step is that number plus :attr:`Segment.cycle_offset`, except where the rule
itself looks back past the temperature step: when charge passed since the last cycle began before the temperature
step (e.g. a lone charge before it), the whole program opens a new cycle at the segment's first loop, which the
segment alone does not, so the steps before that loop (:attr:`Segment.lead_steps`) are one cycle lower. Both
figures are those of the nominal path (:func:`protocols.program.walk`), counted in closed form however many passes
the loops make. A jump in an earlier segment that leaves a loop early changes the cycle a later segment starts in
(not its lead steps, which the steps just before the temperature step decide), so at run time the station takes
the cycle a segment starts from what was stored, or follows the whole program's
:class:`~protocols.program.Execution` with every step the instruments ran (:class:`WholeProgramCycles`); on the
nominal path both agree with the offsets (``tests/protocols/test_temperature_segments.py`` holds all three to
:func:`~protocols.program.walk`).

Jumps cannot cross a temperature step (an instrument cannot jump into another program), and a loop cannot hold one
(the station cannot run part of an instrument's loop); both are refused here, and binding refuses them in protocol
files with their place in the YAML.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.paths import arrivals, branches, start_voltage
from protocols.program import (
    CHARGE_KINDS,
    Execution,
    LoopStep,
    ProgramStep,
    StepProgram,
    TemperatureStep,
    nominal_end,
)

#: steps walked to find the nominal cycle offsets of a program whose nominal path takes a branch (other programs'
#: loops are counted in closed form); past it the offsets are not known before the run (``None``)
WALK_BUDGET = 100_000


class SegmentError(ValueError):
    """A program the station cannot split into instrument programs; the message names the steps and the fix."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of a program between temperature steps.

    ``temperature`` is the temperature step the station carries out before ``program`` starts (``None`` for a
    first segment the program does not open with a temperature step); ``program`` is the instrument program
    (``None`` when nothing follows the temperature step before the next one, or the end). ``first_index`` is the
    whole program's index of the program's step 1.
    """

    number: int
    temperature: TemperatureStep | None
    program: StepProgram | None
    first_index: int
    cycle_offset: int | None = None
    """Whole-program cycle minus the segment's own cycle number, on the nominal path (``None``: not known before
    the run: the nominal path ends before the segment, or takes branches for longer than :data:`WALK_BUDGET`)."""
    lead_steps: frozenset[int] = frozenset()
    """Segment step indices in the segment's cycle 1 whose whole-program cycle is ``cycle_offset`` (not + 1)."""
    cycle_step: int | None = None
    """``cycle_offset`` minus the cycle of the last step run before the segment, on the nominal path: 0 where the
    segment's cycle 1 opens the next cycle (its lead steps excepted), -1 where it goes on with that step's cycle (a
    temperature step between a charge and its discharge). Unlike the offset it does not depend on how many cycles
    ran before (a loop ended early by a condition), so the station adds it to the cycle of the run's last record.
    ``None`` where it is not known before the run."""

    def whole_index(self, index: int) -> int:
        """The whole program's index of the segment program's step ``index``."""
        return index + self.first_index - 1

    def whole_cycle(self, index: int, cycle: int) -> int | None:
        """The whole program's cycle of a record in segment step ``index`` and segment cycle ``cycle``, on the
        nominal path (``None``: the offset is not known before the run)."""
        if self.cycle_offset is None:
            return None
        lead = cycle == 1 and index in self.lead_steps
        return cycle + self.cycle_offset - (1 if lead else 0)

    @property
    def steps(self) -> range:
        """The whole program's indices of this segment's instrument steps."""
        count = len(self.program.steps) if self.program is not None else 0
        return range(self.first_index, self.first_index + count)


def temperature_steps(program: StepProgram) -> list[TemperatureStep]:
    """The program's temperature steps, in order."""
    return [s for s in program.steps if isinstance(s, TemperatureStep)]


def segments(program: StepProgram) -> list[Segment]:
    """The program as instrument programs between its temperature steps, in order; a program without temperature
    steps is one segment holding the program itself. Raises :class:`SegmentError` for a loop holding a temperature
    step or a jump across (or onto) one."""
    cuts = [s.index for s in program.steps if isinstance(s, TemperatureStep)]
    if not cuts:
        return [Segment(1, None, program, 1, 0)]
    _check_splittable(program, cuts)
    bounds: list[tuple[TemperatureStep | None, int, int]] = []  # (temperature step, first index, last index)
    if cuts[0] > 1:
        bounds.append((None, 1, cuts[0] - 1))
    for k, cut in enumerate(cuts):
        end = cuts[k + 1] - 1 if k + 1 < len(cuts) else len(program.steps)
        step = program.step(cut)
        assert isinstance(step, TemperatureStep)
        bounds.append((step, cut + 1, end))
    ways_in = arrivals(program)
    offsets = _nominal_offsets(program, bounds)
    out: list[Segment] = []
    for number, (temperature, first, last) in enumerate(bounds, start=1):
        if last < first:
            out.append(Segment(number, temperature, None, first))
            continue
        voltage = program.start_voltage if first == 1 else _start_voltage(ways_in, first)
        part = _renumbered(program, first, last, voltage)
        out.append(Segment(number, temperature, part, first, *offsets[first]))
    return out


def _start_voltage(ways_in: dict, first: int) -> float | None:
    """Where the cell is when a segment starts: where the steps before the temperature step left it. Its open-circuit
    voltage moves a few mV with the temperature, so a hold at exactly that voltage may drive current either way
    after the wait; such a hold should say its direction."""
    after = start_voltage(ways_in.get(first, []))
    return after if after is not None else start_voltage(ways_in.get(first - 1, []))


def _check_splittable(program: StepProgram, cuts: list[int]) -> None:
    def side(index: int) -> int:
        return sum(1 for c in cuts if c < index)

    for step in program.steps:
        if isinstance(step, LoopStep):
            inside = [c for c in cuts if step.target <= c < step.index]
            if inside:
                raise SegmentError(f"the loop of steps {step.target}-{step.index} holds the temperature step "
                                   f"{inside[0]}: the station carries out temperature steps between instrument "
                                   "programs, so a loop cannot repeat one; repeat the protocol at several "
                                   "temperatures with a campaign instead")
            continue
        for t in step.until:
            if t.target is None:
                continue
            if t.target in cuts or side(t.target) != side(step.index):
                crossed = t.target if t.target in cuts else next(c for c in cuts if min(t.target, step.index) < c
                                                                  < max(t.target, step.index))
                raise SegmentError(f"step {step.index} jumps to step {t.target} ('{t.describe()}') across the "
                                   f"temperature step {crossed}: the station runs the steps between temperature "
                                   "steps as separate instrument programs, and an instrument cannot jump into "
                                   "another; jump to a step between the same temperature steps, or end the run")


def _renumbered(program: StepProgram, first: int, last: int, voltage: float | None) -> StepProgram:
    """Steps ``first``..``last`` as a program of their own numbered from 1 (loop and jump targets moved with them).

    The whole-run temperature limit stays with the station, which reads the chamber: an instrument has no reading
    to enforce it with, and a driver would refuse a limit it cannot enforce.
    """
    shift = first - 1

    def moved(step: ProgramStep) -> ProgramStep:
        update: dict[str, object] = {"index": step.index - shift}
        if isinstance(step, LoopStep):
            update["target"] = step.target - shift
        if any(t.target is not None for t in step.until):
            update["until"] = tuple(t.model_copy(update={"target": t.target - shift}) if t.target is not None else t
                                    for t in step.until)
        return step.model_copy(update=update)

    steps = tuple(moved(s) for s in program.steps[first - 1:last])
    return program.model_copy(update={"steps": steps, "start_voltage": voltage,
                                      "safety": program.safety.model_copy(update={"temperature_max": None})})


def _nominal_offsets(program: StepProgram, bounds: list[tuple[TemperatureStep | None, int, int]]
                     ) -> dict[int, tuple[int | None, frozenset[int], int | None]]:
    """For each segment with a program, by its first index: (cycle offset, lead steps, cycle step: the offset less
    the cycle of the last step run before it) on the nominal path.

    A segment's own count starts fresh (cycle 1, nothing run) where the whole program stands at cycle ``c`` with
    charge passed since that cycle began or not (``moved``). The two counts then move together, except that with
    ``moved`` the whole program opens a new cycle at the segment's first loop, unless a step that passes charge
    comes first: then the steps before that loop are the lead steps, and the offset is ``c`` instead of ``c - 1``.
    ``c`` and ``moved`` come from counting the program's loops in closed form (:func:`_states`), or from walking
    the nominal path when it takes a branch."""
    states = _states(program)
    out: dict[int, tuple[int | None, frozenset[int], int | None]] = {}
    for temperature, first, last in bounds:
        if last < first:
            continue
        if temperature is None:
            out[first] = (0, frozenset(), 0)
            continue
        if states is None or temperature.index not in states:
            out[first] = (None, frozenset(), None)  # not reached on the nominal path, or not counted in time
            continue
        cycle, moved, last_cycle = states[temperature.index]
        steps = program.steps[first - 1:last]
        starts = [s.target for s in steps if isinstance(s, LoopStep)]
        lead: frozenset[int] = frozenset()
        extra = 0
        if moved and starts:
            before = [s for s in steps if s.index < min(starts)]
            if not any(s.kind in CHARGE_KINDS for s in before):
                extra, lead = 1, frozenset(s.index - first + 1 for s in before)
        offset = cycle - 1 + extra
        out[first] = (offset, lead, 0 if last_cycle is None else offset - last_cycle)
    return out


@dataclass
class _Count:
    """The cycle rule's state (:class:`~protocols.program.Execution`'s, without positions)."""

    cycle: int = 1
    ran: bool = False
    moved: bool = False
    last: int | None = None
    """the cycle of the last step run that is not a temperature step"""

    def increment(self) -> None:
        self.cycle += 1
        self.ran = self.moved = False


_Item = ProgramStep | tuple[LoopStep, list]


def _nested(program: StepProgram) -> list[_Item] | None:
    """The steps as nested loops ``(loop step, body)``; ``None`` when two loops overlap (hand-built programs)."""
    items: list[_Item] = []
    for step in program.steps:
        if not isinstance(step, LoopStep):
            items.append(step)
            continue
        cut = next((k for k, item in enumerate(items) if _first_index(item) == step.target), None)
        if cut is None:
            return None
        items[cut:] = [(step, items[cut:])]
    return items


def _first_index(item: _Item) -> int:
    while isinstance(item, tuple):
        item = item[1][0]
    return item.index


def _states(program: StepProgram) -> dict[int, tuple[int, bool, int | None]] | None:
    """(cycle, charge passed since it began, the cycle of the last step that is not a temperature step run before
    it or None) at each temperature step on the nominal path, by its index.

    Loops are counted in closed form: after a loop's first pass the rule's state is reset, so every later pass adds
    the same number of cycles. A nominal path that takes a branch is walked instead, up to :data:`WALK_BUDGET`
    steps (``None`` past it)."""
    items = _nested(program)
    if items is None or any(b.nominal for b in branches(program)):
        return _walked_states(program)
    found: dict[int, tuple[int, bool, int | None]] = {}

    def run(seq: list[_Item], count: _Count) -> None:
        for item in seq:
            if isinstance(item, tuple):
                loop, body = item
                if count.moved:  # entering the loop from before it
                    count.increment()
                run(body, count)
                if count.ran:
                    count.increment()
                if loop.count > 1:
                    before = count.cycle
                    run(body, count)
                    if count.ran:
                        count.increment()
                    after = count.cycle
                    count.cycle = before + (after - before) * (loop.count - 1)
                    if count.last is not None:  # the last pass's steps, as many cycles on
                        count.last += count.cycle - after
                continue
            if isinstance(item, TemperatureStep):
                if item.index not in found:
                    found[item.index] = (count.cycle, count.moved, count.last)
            else:
                count.last = count.cycle
            count.ran = True
            count.moved |= item.kind in CHARGE_KINDS

    run(items, _Count())
    return found


def _walked_states(program: StepProgram) -> dict[int, tuple[int, bool, int | None]] | None:
    found: dict[int, tuple[int, bool, int | None]] = {}
    last: int | None = None
    execution = Execution(program)
    index = execution.start()
    for _ in range(WALK_BUDGET):
        if index is None:
            return found
        step = program.step(index)
        if not isinstance(step, TemperatureStep):
            last = execution.cycle
        elif index not in found:
            found[index] = (execution.cycle, execution.moved_since_increment, last)
        index = execution.follow(nominal_end(step))
    return None


class WholeProgramCycles:
    """The whole program's cycle numbers at run time, from the steps the instruments ran.

    The station calls :meth:`observe` with each segment step as a segment's instrument runs it, and
    :meth:`temperature` when it carries out a temperature step; the answer is the whole program's cycle for that
    step execution, by the same :class:`~protocols.program.Execution` drivers follow an instrument with, so jumps and
    early loop exits in any segment number every later cycle right.
    """

    def __init__(self, program: StepProgram):
        self.execution = Execution(program)

    def observe(self, segment: Segment, index: int) -> int:
        """The whole program's cycle of segment ``segment``'s step ``index``, which the instrument ran next."""
        self.execution.observe(segment.whole_index(index))
        return self.execution.cycle

    def temperature(self, segment: Segment) -> int:
        """The cycle the station's temperature step of ``segment`` runs in."""
        assert segment.temperature is not None
        self.execution.observe(segment.temperature.index)
        return self.execution.cycle



def prepend_temperature(program: StepProgram, step: TemperatureStep) -> StepProgram:
    """``program`` with ``step`` carried out before it (a campaign stage's ``temperature:``): every step moves up by
    one, with its loop and jump targets. The cycle rule counts a temperature step like a rest, so the cycles of the
    program's own steps keep their numbers."""

    def moved(s: ProgramStep) -> ProgramStep:
        update: dict[str, object] = {"index": s.index + 1}
        if isinstance(s, LoopStep):
            update["target"] = s.target + 1
        if any(t.target is not None for t in s.until):
            update["until"] = tuple(t.model_copy(update={"target": t.target + 1}) if t.target is not None else t
                                    for t in s.until)
        return s.model_copy(update=update)

    first = step.model_copy(update={"index": 1})
    return program.model_copy(update={"steps": (first, *(moved(s) for s in program.steps))})
