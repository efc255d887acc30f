"""Where a program can go and where its cell is when each step starts: branches, start voltages, hold directions.

Two questions that need the whole program rather than one step:

* **Branches.** A termination whose ``then`` jumps or ends the run is a branch: whether it is taken depends on the
  cell. :func:`branches` lists them with the one the nominal path (:func:`protocols.program.nominal_end`) assumes,
  so that an estimate can say what it cannot know.
* **Start voltages.** An instrument whose CV steps carry a direction (a Neware CV charge only sources current,
  a CV discharge only sinks it; reference neware-bts-api.md section 9) needs to know which way a hold will drive
  current, i.e. whether the cell is below or above the hold voltage when the hold starts. :func:`arrivals` works
  out, for every step, the voltages the cell can arrive at along every way into it (the step before, a loop's jump
  back, any jump), from the program alone: a step that ends on a voltage leaves the cell at that voltage, a hold
  at its set-point, a rest where it found it; anything else (a time or capacity end) leaves it unknown. The
  program's ``start_voltage`` (the cell record's OCV) is where it starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from protocols.program import (
    Action,
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
    Termination,
    nominal_end,
)

Direction = str  # "charge" | "discharge"

#: two voltages closer than this are the same voltage (set-points and limits come from the same decimal text)
SAME_VOLTAGE = 1e-9
#: distinct arrivals kept per step; more are summarised as unknown (a real program has a handful)
MAX_ARRIVALS = 64


@dataclass(frozen=True, slots=True)
class Branch:
    """A termination that jumps or ends the run instead of going on to the next step."""

    step: int
    termination: Termination
    nominal: bool
    """Whether the nominal path takes it (the step has no ``next`` termination and this is its first)."""

    def describe(self) -> str:
        target = "end the run" if self.termination.then is Action.END else f"jump to step {self.termination.target}"
        condition = self.termination.describe().split(" -> ")[0]
        return f"step {self.step}: if {condition}, {target}"


def branches(program: StepProgram) -> list[Branch]:
    """Every jump and end in the program, in step order."""
    out = []
    for step in program.steps:
        if isinstance(step, LoopStep):
            continue
        taken = nominal_end(step)
        for t in step.until:
            if t.then is Action.NEXT or (t.then is Action.JUMP and t.target == step.index + 1):
                continue
            if t.then is Action.END and step.index == len(program.steps):
                continue  # ending the last step is going on
            out.append(Branch(step.index, t, t is taken))
    return out


@dataclass(frozen=True, slots=True)
class Arrival:
    """The cell's voltage when a step starts, along one way into it (``voltage`` ``None``: not known)."""

    voltage: float | None
    approach: Direction | None
    """Which way the current ran last before it got there: a hold at exactly that voltage continues that way."""
    via: str
    """Where it came from, for messages: 'the start', 'step 3', 'step 5 (jump)'."""


def _end_state(step: ProgramStep, t: Termination | None, came: Arrival, via: str) -> Arrival:
    """Where ``step`` leaves the cell when it ends by ``t`` (``None``: it has no termination)."""
    unknown = Arrival(None, came.approach, via)
    if isinstance(step, RestStep):
        if t is not None and t.quantity is Quantity.VOLTAGE:
            return Arrival(t.value, came.approach, via)
        return Arrival(came.voltage, came.approach, via)
    if isinstance(step, CurrentStep | PowerStep):
        direction = "charge" if (step.current if isinstance(step, CurrentStep) else step.power) > 0 else "discharge"
        hold = step.hold_voltage if isinstance(step, CurrentStep) else None
        if t is not None and t.quantity is Quantity.VOLTAGE and hold is None:
            return Arrival(t.value, direction, via)
        if t is not None and t.quantity is Quantity.CURRENT and hold is not None:
            return Arrival(hold, direction, via)  # a CCCV step ends on current in its CV phase
        return Arrival(None, direction, via)
    if isinstance(step, HoldStep):
        return Arrival(step.voltage, step.direction or _direction(came, step.voltage), via)
    if isinstance(step, CaStep):
        return unknown if step.vs_ocv else Arrival(step.voltage, _direction(came, step.voltage), via)
    if isinstance(step, LsvStep):
        if t is not None and t.quantity is Quantity.VOLTAGE:
            return Arrival(t.value, None, via)
        return Arrival(step.end, None, via) if not step.until else unknown
    if isinstance(step, CvStep):
        end = step.end if step.end is not None else (step.start if step.start is not None else came.voltage)
        return Arrival(end, None, via)
    if isinstance(step, EisStep):
        return Arrival(came.voltage, came.approach, via) if step.bias_vs_ocv else unknown
    return unknown


def _direction(came: Arrival, voltage: float) -> Direction | None:
    """Which way a cell arriving as ``came`` is driven by holding it at ``voltage``."""
    if came.voltage is None or not math.isfinite(came.voltage):
        return None
    if voltage > came.voltage + SAME_VOLTAGE:
        return "charge"
    if voltage < came.voltage - SAME_VOLTAGE:
        return "discharge"
    return came.approach


def _landing(program: StepProgram, position: int, seen: frozenset[int] = frozenset()) -> set[int]:
    """The non-loop steps execution can reach from ``position`` through loop steps (none past the end)."""
    if position > len(program.steps) or position in seen:
        return set()
    step = program.step(position)
    if not isinstance(step, LoopStep):
        return {position}
    out = _landing(program, position + 1, seen | {position})
    if step.count > 1:
        out |= _landing(program, step.target, seen | {position})
    return out


def arrivals(program: StepProgram) -> dict[int, list[Arrival]]:
    """For every non-loop step that can run, the ways the cell arrives at its start (a fixed point over the
    program's flow: next steps, loop jumps and every termination's jump)."""
    found: dict[int, dict[tuple[float | None, str | None], Arrival]] = {}
    work: list[int] = []

    def arrive(index: int, arrival: Arrival) -> None:
        known = found.setdefault(index, {})
        key = (arrival.voltage, arrival.approach)
        if key in known:
            return
        if len(known) >= MAX_ARRIVALS:
            key = (None, None)
            if key in known:
                return
            arrival = Arrival(None, None, arrival.via)
        known[key] = arrival
        work.append(index)

    for index in _landing(program, 1):
        arrive(index, Arrival(program.start_voltage, None, "the start"))
    done: dict[int, set[tuple[float | None, str | None]]] = {}
    while work:
        index = work.pop()
        step = program.step(index)
        pending = [key for key in found[index] if key not in done.setdefault(index, set())]
        for key in pending:
            done[index].add(key)
            came = found[index][key]
            ends: list[Termination | None] = list(step.until) or [None]
            for t in ends:
                if t is not None and t.then is Action.END:
                    continue
                if t is not None and t.then is Action.JUMP and t.target != index + 1:
                    assert t.target is not None
                    where = _landing(program, t.target)
                    via = f"step {index} (jump)"
                else:
                    where = _landing(program, index + 1)
                    via = f"step {index}"
                state = _end_state(step, t, came, via)
                for target in where:
                    arrive(target, state)
    return {index: list(states.values()) for index, states in found.items()}


@dataclass(frozen=True, slots=True)
class HoldDirection:
    """Which way a hold drives current, or why that cannot be known (``direction`` ``None``)."""

    direction: Direction | None
    reason: str


def hold_direction(step: HoldStep | CaStep, ways_in: list[Arrival]) -> HoldDirection:
    """The direction of ``step`` given the ways into it (:func:`arrivals`): the protocol's own ``direction``, or the
    one every way in agrees on."""
    given = getattr(step, "direction", None)
    if given is not None:
        return HoldDirection(given, "the protocol's direction")
    if not ways_in:
        return HoldDirection(None, "the step is never reached")
    seen: dict[Direction | None, Arrival] = {}
    for came in ways_in:
        seen.setdefault(_direction(came, step.voltage), came)
    if None in seen:
        came = seen[None]
        where = "at the start" if came.via == "the start" else f"after {came.via}"
        if came.voltage is None:
            why = f"the cell's voltage {where} is not known"
        else:
            why = f"the cell is already at {step.voltage:g} V {where}, with no current before it"
        return HoldDirection(None, why)
    if len(seen) > 1:
        parts = [f"{'at' if c.via == 'the start' else 'after'} {c.via} it is at {c.voltage:g} V" for c in
                 seen.values()]
        return HoldDirection(None, "the cell arrives on both sides of it (" + "; ".join(parts) + ")")
    (direction, came), = seen.items()
    where = "at the start" if came.via == "the start" else f"after {came.via}"
    return HoldDirection(direction, f"the cell is at {came.voltage:g} V {where}")


def start_voltage(ways_in: list[Arrival]) -> float | None:
    """The voltage the step starts at when every way in agrees on it, else ``None``."""
    values = {a.voltage for a in ways_in}
    if len(values) != 1:
        return None
    (value,) = values
    return value
