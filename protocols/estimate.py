"""Nominal durations and record counts, before anything runs.

Fixed-time and fixed-capacity steps are exact (capacity / current). A voltage-limited step depends on the cell, so
it is estimated with a charge-balance rule and marked as an estimate:

* the cell's charge ``q`` runs from 0 (at its lower voltage limit) to its capacity (at the upper limit); a cell
  starts at the end its ``ocv`` is nearer to (assembled full cells start discharged, a host half cell starts
  delithiated at the top), or at 0 when no ``ocv`` is given;
* a voltage-limited charge passes ``capacity - q`` and a voltage-limited discharge passes ``q``, each then sets
  ``q`` to that end; fixed-capacity and fixed-time steps move ``q`` by the charge they pass (plating moves it below
  0, so the strip that follows is estimated to return that charge as well);
* the CV phase of a CCCV step is assumed to add :data:`CV_TAIL_FRACTION` of the CC phase's time;
* an EIS point takes ``max(EIS_MIN_POINT_S, (0.1 + measures) / f)`` (a 0.1-period settle, then the averaged
  periods), a sweep takes its path length over the scan rate;
* any ``time`` limit caps the estimate. Steps with nothing to estimate from (a rest until a voltage) are unknown.

A temperature step (carried out by the station) waits for the chamber's ramp from the temperature before it (the
previous temperature step's set point, else the cell record's ``temperature``, else :data:`DEFAULT_CHAMBER_C`) at
the nominal :data:`CHAMBER_RAMP_K_PER_MIN`, plus its ``stable_for``; its ``max_wait`` is the upper bound. Both are
assumptions about a chamber the plan does not know, so such a plan is never exact and says what it assumed
(:attr:`PlanEstimate.temperature_assumption`); the instrument records nothing while the station waits.

Records: one at each step's start and end plus one every ``every_s``; one per EIS frequency. Change-triggered
records (``voltage_change``) add the swept voltage over the threshold for sweeps only, so counts are nominal.

Branches: a termination that jumps or ends the run is taken or not depending on the cell, so the estimate follows
the nominal path (:func:`protocols.program.nominal_end`: a step goes on to the next where it can, and takes its
first termination where it cannot), lists every branch it did not follow, says so in :attr:`PlanEstimate.assumption`
and is marked inexact. A program whose nominal path jumps is walked step by step (up to :data:`WALK_BUDGET`).

Loops are estimated in closed form, not by walking every pass: a ``repeat: 1000000000`` must plan at once. A pass
of a loop body depends only on the charge balance ``q`` it starts from. A pass that leaves ``q`` where it found it
(a voltage-limited step resets it; most bodies settle in their first or second pass) repeats for ever, so the
remaining passes are added as one multiplication. A pass that moves ``q`` by a fixed drift (time- or
capacity-capped steps) repeats unchanged until ``q`` crosses a limit; passes further ahead are probed (doubling,
then bisecting) to find how many, and those are added at once. Nested loops nest the rule, and a budget of
:data:`STEP_BUDGET` simulated steps bounds the work for any nesting; past it, or when neither rule applies after
:data:`SIMULATED_PASSES` passes, the last pass is extrapolated and the estimate marked inexact. Loops that overlap
without nesting (hand-built programs only; protocols cannot express them) are walked for at most
:data:`WALK_BUDGET` steps, and the estimate is marked incomplete if the walk did not end.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass, field

from protocols.cells import Cell
from protocols.paths import Branch, branches
from protocols.program import (
    CaStep,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    LoopStep,
    LsvStep,
    PowerStep,
    ProgramStep,
    Quantity,
    RestStep,
    StepProgram,
    TemperatureStep,
    walk,
)

CV_TAIL_FRACTION = 0.1
EIS_MIN_POINT_S = 0.5
#: passes of one loop that neither settle nor repeat before the estimate extrapolates (and says it guessed)
SIMULATED_PASSES = 16
#: step estimates computed for one program before every loop extrapolates from its first pass
STEP_BUDGET = 20_000
#: steps walked one by one for loops that overlap without nesting, before the estimate says it is partial
WALK_BUDGET = 5_000
#: durations and counts saturate here instead of overflowing to inf (only absurd hand-built programs get there)
_HUGE = 1e300
#: the climate chamber's ramp rate a plan assumes, K/min: a nominal figure (a benchtop chamber heats at 1-3 K/min
#: empty and slower loaded, and cools slower still), so a plan's wait is an estimate and ``max_wait`` its bound
CHAMBER_RAMP_K_PER_MIN = 1.0
#: the chamber's temperature before a program's first temperature step when the cell record gives none (degC): the
#: temperature the library's protocols are written for
DEFAULT_CHAMBER_C = 27.0


@dataclass
class StepEstimate:
    index: int
    passes: int = 0
    first_s: float | None = None
    total_s: float = 0.0
    end_s: float = 0.0
    exact: bool = True
    known: bool = True
    records: int = 0


@dataclass(frozen=True)
class TemperatureWait:
    """What a plan assumes about one temperature step: the chamber ramps from ``from_c`` to ``to_c`` at the
    nominal rate, then must stay stable for ``stable_s``; ``max_wait_s`` is the most the step may take."""

    index: int
    from_c: float
    to_c: float
    ramp_s: float
    stable_s: float
    max_wait_s: float

    @property
    def fits(self) -> bool:
        """Whether the nominal ramp and the stable time fit in ``max_wait`` (if not, the run would fail there)."""
        return self.ramp_s + self.stable_s <= self.max_wait_s

    @property
    def estimated_s(self) -> float:
        """The nominal wait; a wait that does not fit ends at ``max_wait``, when the station fails the run."""
        return min(self.ramp_s + self.stable_s, self.max_wait_s)


def temperature_wait(step: TemperatureStep, from_c: float) -> TemperatureWait:
    """The nominal wait of ``step`` for a chamber at ``from_c``."""
    ramp = abs(step.setpoint - from_c) / CHAMBER_RAMP_K_PER_MIN * 60.0
    return TemperatureWait(step.index, from_c, step.setpoint, ramp, step.stable_for, step.max_wait)


@dataclass
class PlanEstimate:
    total_s: float
    exact: bool
    complete: bool
    records: int
    steps: dict[int, StepEstimate] = field(default_factory=dict)
    executions: int = 0
    branches: list[Branch] = field(default_factory=list)
    """Every jump and end of the program, each marked with whether the estimate's nominal path takes it."""
    assumption: str | None = None
    """What the estimate assumed about branches it cannot know (``None``: the program has none)."""
    temperature_waits: list[TemperatureWait] = field(default_factory=list)
    """Each temperature step's wait as estimated, in step order."""
    temperature_assumption: str | None = None
    """What the estimate assumed about the chamber (``None``: the program has no temperature step)."""

    @property
    def max_total_s(self) -> float:
        """The total with every temperature step waiting its ``max_wait`` (the upper bound of the waits)."""
        return self.total_s + sum(w.max_wait_s - w.estimated_s for w in self.temperature_waits)


@dataclass
class _Balance:
    capacity: float | None
    q: float


def _time_cap(step: ProgramStep) -> float | None:
    t = step.limit(Quantity.TIME)
    return t.value if t is not None else None


def _cap(value: float | None, limit: float | None) -> tuple[float | None, bool]:
    """``(duration, limited_by_time)``."""
    if value is None:
        return limit, limit is not None
    if limit is not None and limit < value:
        return limit, True
    return value, False


def _current_step(step: CurrentStep | PowerStep, current: float, balance: _Balance) -> tuple[float | None, bool]:
    """A constant-current step (or a power step as its mean current): (duration, exact?), moving the balance."""
    magnitude = abs(current)
    if not magnitude > 0:  # a zero power (or a mean current that underflowed): only a time limit says how long
        return _time_cap(step), False
    hold_voltage = step.hold_voltage if isinstance(step, CurrentStep) else None
    capacity_limit = step.limit(Quantity.CAPACITY)
    voltage_ended = step.limit(Quantity.VOLTAGE) is not None or hold_voltage is not None
    exact = True
    duration: float | None = None
    if capacity_limit is not None:
        duration = capacity_limit.value / magnitude * 3600
    if voltage_ended:
        if balance.capacity is None:
            needed = None
        elif current > 0:
            needed = max(0.0, balance.capacity - balance.q)
        else:
            needed = max(0.0, balance.q)
        if needed is not None:
            by_voltage = needed / magnitude * 3600
            if hold_voltage is not None:
                by_voltage *= 1 + CV_TAIL_FRACTION
            if duration is None or by_voltage < duration:
                duration, exact = by_voltage, False
        elif duration is None:
            exact = False
    duration, by_time = _cap(duration, _time_cap(step))
    if by_time:
        exact = exact and not voltage_ended
    if duration is not None and math.isfinite(duration):
        passed = magnitude * duration / 3600
        if voltage_ended and not by_time and balance.capacity is not None and (
                capacity_limit is None or duration < capacity_limit.value / magnitude * 3600):
            balance.q = balance.capacity if current > 0 else 0.0
        else:
            balance.q = _saturate(balance.q + math.copysign(passed, current))
    return duration, exact


def _sweep_length(step: CvStep | LsvStep, ocv: float | None) -> tuple[float, bool]:
    if isinstance(step, LsvStep):
        start = step.start if step.start is not None else ocv
        if start is None:
            return 0.0, False
        return abs(step.end - start), step.start is not None
    start = step.start if step.start is not None else ocv
    exact = start is not None
    start = start if start is not None else step.vertex_1
    span = abs(step.vertex_2 - step.vertex_1)
    end = step.end if step.end is not None else start
    length = abs(start - step.vertex_1) + span + (step.cycles - 1) * 2 * span + abs(step.vertex_2 - end)
    return length, exact


def _eis_duration(step: EisStep) -> float:
    return _spectrum_seconds(step.f_start, step.f_end, step.points_per_decade, step.measures_per_point)


@functools.lru_cache(maxsize=1024)
def _spectrum_seconds(f_start: float, f_end: float, points_per_decade: int, measures: int) -> float:
    """Cached: a spectrum can have thousands of points and a loop estimates the same one on every pass."""
    step = EisStep(index=1, f_start=f_start, f_end=f_end, points_per_decade=points_per_decade, amplitude=1.0,
                   measures_per_point=measures)
    return sum(max(EIS_MIN_POINT_S, (0.1 + measures) / f) for f in step.frequencies())


def estimate_step(step: ProgramStep, balance: _Balance, cell: Cell | None) -> tuple[float | None, bool]:
    """(duration in s or None when unknown, exact?) and updates the charge balance.

    A duration that is not a finite number (a capacity over a vanishing current) is unknown, never inf or NaN.
    """
    duration, exact = _estimate_step(step, balance, cell)
    if duration is not None and not math.isfinite(duration):
        return None, False
    return duration, exact


def _estimate_step(step: ProgramStep, balance: _Balance, cell: Cell | None) -> tuple[float | None, bool]:
    if isinstance(step, CurrentStep):
        return _current_step(step, step.current, balance)
    if isinstance(step, RestStep | HoldStep | CaStep):
        limit = _time_cap(step)
        others = [t for t in step.until if t.quantity is not Quantity.TIME]
        return limit, not others
    if isinstance(step, PowerStep):
        if cell is None or cell.voltage_min is None or cell.voltage_max is None:
            return _time_cap(step), False
        mean_v = (cell.voltage_min + cell.voltage_max) / 2
        if mean_v <= 0:  # a window around 0 V gives no meaningful mean current
            return _time_cap(step), False
        duration, _ = _current_step(step, step.power / mean_v, balance)
        return duration, False
    if isinstance(step, EisStep):
        return _eis_duration(step), False
    if isinstance(step, CvStep | LsvStep):
        length, exact = _sweep_length(step, cell.ocv if cell else None)
        return length / step.scan_rate, exact
    return None, False


def _whole(value: float) -> int:
    """A non-negative count from a float, saturating at 10**18 instead of failing on inf or NaN."""
    if not value > 0:
        return 0
    return int(min(value, 1e18))


def _records(step: ProgramStep, duration: float | None) -> int:
    if isinstance(step, EisStep):
        return step.point_count()
    if duration is None:
        return 2
    rule = step.record
    count = 2
    if rule.every_s:
        count += _whole(duration // rule.every_s)
    if rule.voltage_change and isinstance(step, CvStep | LsvStep):
        count += _whole(duration * step.scan_rate / rule.voltage_change)
    return count


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


def _saturate(value: float) -> float:
    return max(-_HUGE, min(_HUGE, value)) if not math.isnan(value) else 0.0


# -- tallies: what a stretch of the program adds up to, so that a loop pass can be added n times at once ----------


@dataclass
class _StepTally:
    passes: int = 0
    first_s: float | None = None
    total_s: float = 0.0
    end_s: float = 0.0  # elapsed time at the end of this step's last pass, from the start of the tally
    exact: bool = True
    known: bool = True
    records: int = 0


@dataclass
class _Tally:
    elapsed: float = 0.0
    exact: bool = True
    complete: bool = True
    records: int = 0
    executions: int = 0
    steps: dict[int, _StepTally] = field(default_factory=dict)

    def add_step(self, index: int, duration: float | None, exact: bool, records: int) -> None:
        est = self.steps.setdefault(index, _StepTally())
        est.passes += 1
        self.executions += 1
        if duration is None:
            est.known = self.complete = False
            exact = False
        else:
            self.elapsed = _saturate(self.elapsed + duration)
            est.total_s = _saturate(est.total_s + duration)
            if est.first_s is None:
                est.first_s = duration
        est.exact = est.exact and exact
        self.exact = self.exact and exact
        est.end_s = self.elapsed
        est.records += records
        self.records += records

    def same_as(self, other: _Tally) -> bool:
        """Whether two passes add up the same (durations to 1e-12, everything else exactly)."""
        if (self.records, self.executions, self.exact, self.complete) != (other.records, other.executions,
                                                                          other.exact, other.complete):
            return False
        if not _close(self.elapsed, other.elapsed) or self.steps.keys() != other.steps.keys():
            return False
        for index, mine in self.steps.items():
            theirs = other.steps[index]
            if (mine.passes, mine.records, mine.exact, mine.known) != (theirs.passes, theirs.records, theirs.exact,
                                                                        theirs.known):
                return False
            if not (_close(mine.total_s, theirs.total_s) and _close(mine.end_s, theirs.end_s)
                    and (mine.first_s is None) == (theirs.first_s is None)
                    and (mine.first_s is None or _close(mine.first_s, theirs.first_s))):
                return False
        return True

    def guessed(self) -> _Tally:
        """A copy marked inexact, for passes extrapolated without proof that they repeat."""
        steps = {i: _StepTally(t.passes, t.first_s, t.total_s, t.end_s, False, t.known, t.records)
                 for i, t in self.steps.items()}
        return _Tally(self.elapsed, False, self.complete, self.records, self.executions, steps)

    def extend(self, other: _Tally, times: int = 1) -> None:
        """Add ``times`` consecutive copies of ``other`` in O(steps), whatever ``times`` is."""
        if times <= 0:
            return
        before = self.elapsed
        for index, add in other.steps.items():
            est = self.steps.setdefault(index, _StepTally())
            est.passes += add.passes * times
            if est.first_s is None:
                est.first_s = add.first_s
            est.total_s = _saturate(est.total_s + add.total_s * times)
            est.end_s = _saturate(before + other.elapsed * (times - 1) + add.end_s)
            est.exact = est.exact and add.exact
            est.known = est.known and add.known
            est.records += add.records * times
        self.elapsed = _saturate(before + other.elapsed * times)
        self.exact = self.exact and other.exact
        self.complete = self.complete and other.complete
        self.records += other.records * times
        self.executions += other.executions * times


@dataclass(frozen=True)
class _Loop:
    body: list[ProgramStep | _Loop]
    step: LoopStep


def _structure(program: StepProgram) -> list[ProgramStep | _Loop] | None:
    """The flat program as nested loops, or ``None`` if two loops overlap without nesting."""
    items: list[ProgramStep | _Loop] = []
    starts: list[int] = []  # the step index each item starts at, parallel to ``items``
    for step in program.steps:
        if not isinstance(step, LoopStep):
            items.append(step)
            starts.append(step.index)
            continue
        cut = bisect.bisect_left(starts, step.target)  # ``starts`` increases
        if cut == len(items) or starts[cut] != step.target:
            return None  # the loop's first step is inside an earlier loop: the two loops overlap
        body, items, starts = items[cut:], items[:cut], starts[:cut]
        items.append(_Loop(body, step))
        starts.append(step.target)
    return items


class _Estimator:
    def __init__(self, program: StepProgram, cell: Cell | None):
        self.program = program
        self.cell = cell
        capacity = cell.capacity if cell else None
        start_q = 0.0
        if cell and capacity and cell.ocv is not None and cell.voltage_min is not None and \
                cell.voltage_max is not None:
            start_q = capacity if cell.ocv > (cell.voltage_min + cell.voltage_max) / 2 else 0.0
        self.balance = _Balance(capacity=capacity, q=start_q)
        self.budget = STEP_BUDGET
        self.chamber_c = cell.temperature if cell is not None and cell.temperature is not None else DEFAULT_CHAMBER_C
        self.waits: dict[int, TemperatureWait] = {}

    def step(self, step: ProgramStep, tally: _Tally) -> None:
        self.budget -= 1
        if isinstance(step, TemperatureStep):
            wait = temperature_wait(step, self.chamber_c)
            self.waits.setdefault(step.index, wait)
            self.chamber_c = step.setpoint
            tally.add_step(step.index, wait.estimated_s, False, 0)
            return
        duration, exact = estimate_step(step, self.balance, self.cell)
        tally.add_step(step.index, duration, exact, _records(step, duration))

    def run(self, items: list[ProgramStep | _Loop], tally: _Tally) -> None:
        for item in items:
            if isinstance(item, _Loop):
                self.loop(item, tally)
            else:
                self.step(item, tally)

    def one_pass(self, loop: _Loop) -> _Tally:
        one = _Tally()
        self.run(loop.body, one)
        return one

    def loop(self, loop: _Loop, tally: _Tally) -> None:
        """All passes of ``loop`` in closed form.

        A pass depends only on the charge balance it starts from. A pass that leaves the balance where it found
        it repeats for ever, so the remaining passes are one multiplication. A pass that moves the balance by
        ``drift`` (time- or capacity-capped steps) repeats unchanged until the balance crosses a limit; how many
        passes that is is found by probing passes further ahead (doubling, then bisecting), because along a
        monotone drift a pass equal to this one far ahead means every pass between is equal too.
        """
        remaining = loop.step.count
        unproductive = 0
        while remaining > 0:
            q_in = self.balance.q
            one = self.one_pass(loop)
            tally.extend(one)
            remaining -= 1
            drift = self.balance.q - q_in
            if remaining == 0:
                return
            if self.negligible(drift):  # float noise of a body that adds and removes the same charge
                tally.extend(one, remaining)
                return
            if self.budget <= 0 or unproductive >= SIMULATED_PASSES:
                # no proof that the passes repeat: extrapolate this one, and say that it is a guess
                tally.extend(one.guessed(), remaining)
                self.balance.q = _saturate(self.balance.q + drift * remaining)
                return
            repeats = self.repeats(loop, one, drift, remaining)
            if repeats:
                tally.extend(one, repeats)
                remaining -= repeats
            else:
                unproductive += 1

    def negligible(self, charge: float, relative_to: float = 0.0) -> bool:
        """Whether a change of the balance is rounding noise: 1e-12 of the cell's capacity or the balance, or
        1e-9 of ``relative_to``."""
        scale = max(abs(self.balance.q), self.balance.capacity or 0.0)
        return abs(charge) <= max(1e-12 * scale, 1e-9 * abs(relative_to))

    def repeats(self, loop: _Loop, one: _Tally, drift: float, remaining: int) -> int:
        """How many of the next passes (at most ``remaining``) equal ``one``; moves the balance past them."""
        start = self.balance.q

        def equal_at(ahead: int) -> bool:
            self.balance.q = _saturate(start + drift * (ahead - 1))
            q_probe = self.balance.q
            probe = self.one_pass(loop)
            return probe.same_as(one) and self.negligible(self.balance.q - q_probe - drift, relative_to=drift)

        good, bad = 0, remaining + 1
        ahead = 1
        while ahead <= remaining and self.budget > 0:  # double while the passes stay equal
            if not equal_at(ahead):
                bad = ahead
                break
            good = ahead
            ahead = remaining if ahead * 2 > remaining and ahead < remaining else ahead * 2
            if good == remaining:
                break
        while bad - good > 1 and self.budget > 0:  # then bisect the last interval
            middle = (good + bad) // 2
            if equal_at(middle):
                good = middle
            else:
                bad = middle
        self.balance.q = _saturate(start + drift * good)
        return good

    def walk(self, tally: _Tally) -> None:
        """Loops that do not nest: the nominal path step by step, up to the budget (then the estimate is partial)."""
        self.budget = min(self.budget, WALK_BUDGET)
        for executed in walk(self.program):
            if self.budget <= 0:
                tally.complete = False
                return
            self.step(executed.step, tally)


def _assumption(found: list[Branch]) -> str | None:
    """One sentence on the path the estimate follows, naming the branches it cannot know about."""
    if not found:
        return None
    taken = [b for b in found if b.nominal]
    text = (f"the estimate cannot know which of {len(found)} branch{'es' if len(found) > 1 else ''} the cell takes "
            "and follows the nominal path: each step goes on to the next step where it can")
    if taken:
        text += "; a step that can only jump or end takes its first condition (" + "; ".join(
            b.describe() for b in taken) + ")"
    return text


def estimate_program(program: StepProgram, cell: Cell | None) -> PlanEstimate:
    estimator = _Estimator(program, cell)
    tally = _Tally()
    found = branches(program)
    # a path that jumps is no nest of loops: walk it (a jump the path does not take changes nothing on it)
    items = None if any(b.nominal for b in found) else _structure(program)
    if items is None:
        estimator.walk(tally)
    else:
        estimator.run(items, tally)
    steps: dict[int, StepEstimate] = {}
    latest_end = 0.0  # a step that never ran (a loop step) ends when the latest step before it did
    for s in program.steps:
        t = tally.steps.get(s.index)
        if t is None:
            steps[s.index] = StepEstimate(index=s.index, end_s=latest_end)
        else:
            branching = any(b.step == s.index for b in found)  # a condition may end it sooner, or later
            steps[s.index] = StepEstimate(index=s.index, passes=t.passes, first_s=t.first_s, total_s=t.total_s,
                                          end_s=t.end_s, exact=t.exact and not branching, known=t.known,
                                          records=t.records)
        latest_end = max(latest_end, steps[s.index].end_s)
    waits = [estimator.waits[i] for i in sorted(estimator.waits)]
    return PlanEstimate(total_s=tally.elapsed, exact=tally.exact and not found, complete=tally.complete,
                        records=tally.records, steps=steps, executions=tally.executions, branches=found,
                        assumption=_assumption(found), temperature_waits=waits,
                        temperature_assumption=_chamber_assumption(cell) if waits else None)


def _chamber_assumption(cell: Cell | None) -> str:
    """One sentence on what the temperature waits assume."""
    first = "the cell record's temperature" if cell is not None and cell.temperature is not None else \
        f"{DEFAULT_CHAMBER_C:g} degC"
    return (f"temperature steps: the chamber is assumed to ramp at {CHAMBER_RAMP_K_PER_MIN:g} K/min from the set "
            f"point before (the first from {first}), then hold for stable_for; max_wait is each step's upper bound")
