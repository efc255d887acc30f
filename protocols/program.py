"""The step program: the one resolved, flat, SI-unit form that drivers compile and simulators execute.

A protocol bound to a cell becomes a :class:`StepProgram`. Everything relative (C-rates, per-area currents,
areal capacities, parameters) has been resolved; loops are explicit :class:`LoopStep` jump-backs with a total
pass count. The program is immutable and round-trips through JSON losslessly, so the station can store it with
a run and any later process (a re-attach, an export, another driver) reads exactly what was started.

Conventions, fixed for every consumer:

* Units are SI: A, V, W, s, Ah (capacity is in ampere-hours, the unit labs and BDF use), Wh, Hz, V/s; temperatures
  are in degC and temperature differences (a stability band) in K, as labs and BDF give them.
* Positive current charges the cell (the Battery Data Format convention).
* Step indices are 1-based and contiguous; ``LoopStep.target`` and ``Termination.target`` name indices.
* Termination semantics per quantity (all OR-ed; the first that holds ends the step):

  ``voltage``   the cell voltage, signed, compared with ``op``;
  ``current``   the magnitude of the current |I| (terminations on current only make sense where the current is
                free to change: holds, CCCV, power and CA steps);
  ``capacity``  the magnitude of the charge passed in this step, |integral of I dt|, in Ah;
  ``energy``    the magnitude of the energy passed in this step, in Wh;
  ``time``      the time since the step started, in s;
  ``dvdt``      the magnitude of dV/dt, in V/s (a relaxation end for rests).

* Cycle numbering (:data:`CYCLE_RULE`): the cycle count starts at 1 and increments when execution reaches a
  loop step if at least one non-loop step ran since the last increment, and when it enters a loop body from
  before the loop (at a loop's target step, not by jumping back) if at least one step that passes charge ran
  since then. So each pass of a loop is a cycle of its own; steps before a loop that pass charge (a first
  lithiation) form their own cycle, while rests and EIS before a loop belong to its first pass (a full cell's
  formation starts at cycle 1 after its rest); and nested loops ending together create no empty cycles.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

PROGRAM_FORMAT_VERSION = 1

#: The most passes one loop may make: the widest loop counter of any supported instrument is a signed 32-bit
#: integer (Biologic's LOOP technique takes ``loop_N_times`` as int32). Narrower instruments check their own bound.
MAX_PASSES = 2**31 - 1
#: EIS frequencies per decade (the protocol language's bound; 100 already resolves any spectrum).
MAX_POINTS_PER_DECADE = 100

CYCLE_RULE = (
    "cycle count starts at 1 and increments each time a loop step is reached, if at least one non-loop step ran "
    "since the previous increment, or a loop body is entered from before it, if at least one step that passes "
    "charge ran since the previous increment"
)
#: step kinds that pass charge: a rest or an EIS before a loop does not make a cycle of its own
CHARGE_KINDS = frozenset({"charge", "discharge", "hold", "power", "ca", "cv", "lsv"})


class _Frozen(BaseModel):
    # NaN and inf are never meaningful set-points or limits, and every consumer (estimates, compilers, JSON) would
    # have to special-case them: a program simply cannot hold them.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Quantity(StrEnum):
    VOLTAGE = "voltage"
    CURRENT = "current"
    CAPACITY = "capacity"
    ENERGY = "energy"
    TIME = "time"
    DVDT = "dvdt"


class Comparison(StrEnum):
    LE = "<="
    GE = ">="

    def holds(self, measured: float, limit: float) -> bool:
        return measured <= limit if self is Comparison.LE else measured >= limit


class Action(StrEnum):
    NEXT = "next"
    JUMP = "jump"
    END = "end"


class SourceLocation(_Frozen):
    """Where in the protocol file a step came from, so that run events and errors point at the YAML."""

    file: str
    line: int
    column: int
    path: str


class Termination(_Frozen):
    quantity: Quantity
    op: Comparison
    value: float
    then: Action = Action.NEXT
    target: int | None = None

    @model_validator(mode="after")
    def _jump_needs_target(self) -> Termination:
        if (self.then is Action.JUMP) != (self.target is not None):
            raise ValueError("a termination has a target exactly when its action is 'jump'")
        return self

    def describe(self) -> str:
        unit = {"voltage": "V", "current": "A", "capacity": "Ah", "energy": "Wh", "time": "s", "dvdt": "V/s"}
        name = {"current": "|I|", "capacity": "|Q|", "energy": "|E|", "dvdt": "|dV/dt|"}.get(
            self.quantity.value, self.quantity.value
        )
        text = f"{name} {self.op.value} {self.value:g} {unit[self.quantity.value]}"
        if self.then is Action.END:
            text += " -> end"
        elif self.then is Action.JUMP:
            text += f" -> step {self.target}"
        return text


class RecordRule(_Frozen):
    """Record a point every ``every_s`` or whenever V or I moved by more than the given change (OR-ed)."""

    every_s: float | None = None
    voltage_change: float | None = None
    current_change: float | None = None


class SafetyLimits(_Frozen):
    """Whole-run limits: breaking one stops the channel. ``None`` means the protocol sets no such limit."""

    voltage_min: float | None = None
    voltage_max: float | None = None
    current_max: float | None = None
    temperature_max: float | None = None
    capacity_max: float | None = None
    step_duration_max: float | None = None
    run_duration_max: float | None = None


class Control(_Frozen):
    """What a step holds constant, for tables and drivers: the quantity and its signed SI value."""

    quantity: Literal["none", "current", "voltage", "power", "voltage_sweep", "impedance", "temperature"]
    value: float | None


class _StepBase(_Frozen):
    index: int = Field(ge=1)
    until: tuple[Termination, ...] = ()
    record: RecordRule = RecordRule()
    tag: str | None = None
    label: str | None = None
    source: SourceLocation | None = None

    @property
    def control(self) -> Control:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def limit(self, quantity: Quantity) -> Termination | None:
        return next((t for t in self.until if t.quantity is quantity), None)


class RestStep(_StepBase):
    kind: Literal["rest"] = "rest"

    @property
    def control(self) -> Control:
        return Control(quantity="none", value=None)


class CurrentStep(_StepBase):
    """Constant current; with ``hold_voltage`` it is a CCCV step: CC until the voltage, then CV at it.

    ``current`` is signed (positive charges). For CCCV the step's ``until`` applies to the whole step and the
    CC->CV transition is implied by ``hold_voltage``.
    """

    kind: Literal["charge", "discharge"]
    current: float
    hold_voltage: float | None = None

    @model_validator(mode="after")
    def _sign_matches_kind(self) -> CurrentStep:
        if self.current == 0 or (self.current > 0) != (self.kind == "charge"):
            sign = "positive" if self.kind == "charge" else "negative"
            raise ValueError(f"a {self.kind} step needs a {sign} current")
        return self

    @property
    def control(self) -> Control:
        return Control(quantity="current", value=self.current)


class HoldStep(_StepBase):
    """Constant voltage (potentiostatic) hold at an absolute voltage.

    ``current_limit`` is the largest |I| the hold may draw (``None``: the protocol gave none). ``direction`` says
    which way current may flow, when the protocol says so: instruments whose CV steps carry a direction (a Neware CV
    charge only sources current, a CV discharge only sinks it) otherwise infer it from the voltage the cell is at
    when the hold starts (:mod:`protocols.paths`).
    """

    kind: Literal["hold"] = "hold"
    voltage: float
    current_limit: float | None = None
    direction: Literal["charge", "discharge"] | None = None

    @property
    def control(self) -> Control:
        return Control(quantity="voltage", value=self.voltage)


class PowerStep(_StepBase):
    kind: Literal["power"] = "power"
    power: float

    @property
    def control(self) -> Control:
        return Control(quantity="power", value=self.power)


class CaStep(_StepBase):
    """Chronoamperometry: a potentiostatic step, absolute or relative to the OCV at the step's start.

    The DC polarisation measurement of P7 is a CA step with ``vs_ocv=True``.
    """

    kind: Literal["ca"] = "ca"
    voltage: float
    vs_ocv: bool = False

    @property
    def control(self) -> Control:
        return Control(quantity="voltage", value=self.voltage)


class EisStep(_StepBase):
    """Impedance spectrum from ``f_start`` to ``f_end`` (log-spaced).

    ``amplitude`` is in V (potentio) or A (galvano), as a zero-to-peak sine amplitude. ``bias`` is the DC
    set-point (V or A) and ``bias_vs_ocv`` says whether it is relative to the OCV; ``bias=0, bias_vs_ocv=True``
    is "at OCV".
    """

    kind: Literal["eis"] = "eis"
    mode: Literal["potentio", "galvano"] = "potentio"
    f_start: float = Field(gt=0)
    f_end: float = Field(gt=0)
    points_per_decade: int = Field(ge=1, le=MAX_POINTS_PER_DECADE)
    amplitude: float = Field(gt=0)
    bias: float = 0.0
    bias_vs_ocv: bool = True
    measures_per_point: int = Field(default=1, ge=1, le=MAX_PASSES)

    @property
    def control(self) -> Control:
        return Control(quantity="impedance", value=self.amplitude)

    def point_count(self) -> int:
        """How many frequencies :meth:`frequencies` gives, without building the list."""
        return max(2, round(self._decades() * self.points_per_decade) + 1)

    def _decades(self) -> float:
        # the difference of logarithms, not the log of a ratio: f_end / f_start can underflow to 0 or overflow
        return abs(math.log10(self.f_end) - math.log10(self.f_start))

    def frequencies(self) -> list[float]:
        """The measured frequencies in order, ``points_per_decade`` per decade, both ends included."""
        n = self.point_count()
        start = math.log10(self.f_start)
        step = (math.log10(self.f_end) - start) / (n - 1)
        low, high = min(self.f_start, self.f_end), max(self.f_start, self.f_end)
        # clamped so that rounding near the smallest floats can never give 0 Hz or step outside the ends
        inner = [min(high, max(low, 10 ** (start + step * k))) for k in range(1, n - 1)]
        return [self.f_start, *inner, self.f_end]


class CvStep(_StepBase):
    """Cyclic voltammetry: start -> vertex_1 -> vertex_2 -> (vertex_1 ...) for ``cycles``, then to ``end``.

    ``start`` and ``end`` of ``None`` mean the OCV at the step's start.
    """

    kind: Literal["cv"] = "cv"
    scan_rate: float = Field(gt=0)
    start: float | None = None
    vertex_1: float
    vertex_2: float
    end: float | None = None
    cycles: int = Field(default=1, ge=1, le=MAX_PASSES)

    @property
    def control(self) -> Control:
        return Control(quantity="voltage_sweep", value=self.scan_rate)

    def corners(self, ocv: float) -> tuple[np.ndarray, np.ndarray]:
        """The waveform as (times s, voltages V) of its corners, from the OCV at the step's start: every
        simulator that sweeps follows the step's own definition of it."""
        volts = [self.start if self.start is not None else ocv, self.vertex_1, self.vertex_2]
        volts += [self.vertex_1, self.vertex_2] * (self.cycles - 1)
        volts.append(self.end if self.end is not None else ocv)
        return _timed(volts, self.scan_rate)


def _timed(volts: list[float], scan_rate: float) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(volts, dtype=float)
    return np.concatenate([[0.0], np.cumsum(np.abs(np.diff(v)) / scan_rate)]), v


class LsvStep(_StepBase):
    """Linear sweep from ``start`` (``None`` = OCV) to ``end`` at ``scan_rate``."""

    kind: Literal["lsv"] = "lsv"
    scan_rate: float = Field(gt=0)
    start: float | None = None
    end: float

    @property
    def control(self) -> Control:
        return Control(quantity="voltage_sweep", value=self.scan_rate)

    def corners(self, ocv: float) -> tuple[np.ndarray, np.ndarray]:
        """(times s, voltages V) of the sweep's two ends, from the OCV when it has no ``start``."""
        return _timed([self.start if self.start is not None else ocv, self.end], self.scan_rate)


class TemperatureStep(_StepBase):
    """Set the climate chamber to ``setpoint`` (degC) and wait until the temperature has stayed within ``band`` (K)
    of it for ``stable_for`` seconds; waiting longer than ``max_wait`` seconds in all fails the run.

    The station carries it out, not the cycler: neither a Neware step file nor a Biologic technique sequence can
    wait on an external chamber, so a program is run as instrument segments between its temperature steps
    (:mod:`protocols.segments`). It passes no charge and has no terminations of its own; for cycle numbering it is
    a step like a rest (it belongs with what follows it).
    """

    kind: Literal["temperature"] = "temperature"
    setpoint: float
    band: float = Field(gt=0)
    stable_for: float = Field(ge=0)
    max_wait: float = Field(gt=0)

    @model_validator(mode="after")
    def _wait_covers_stability(self) -> TemperatureStep:
        if self.max_wait < self.stable_for:
            raise ValueError(f"max_wait {self.max_wait:g} s is shorter than stable_for {self.stable_for:g} s")
        return self

    @property
    def control(self) -> Control:
        return Control(quantity="temperature", value=self.setpoint)


class LoopStep(_StepBase):
    """Jump back to ``target`` until the body has run ``count`` times in total (``count`` = passes, not jumps)."""

    kind: Literal["loop"] = "loop"
    target: int = Field(ge=1)
    count: int = Field(ge=1, le=MAX_PASSES)

    @property
    def control(self) -> Control:
        return Control(quantity="none", value=None)


ProgramStep = Annotated[
    RestStep | CurrentStep | HoldStep | PowerStep | CaStep | EisStep | CvStep | LsvStep | TemperatureStep | LoopStep,
    Field(discriminator="kind"),
]


class StepProgram(_Frozen):
    format_version: Literal[1] = PROGRAM_FORMAT_VERSION
    protocol: str
    cell: str
    parameters: dict[str, str] = Field(default_factory=dict)
    safety: SafetyLimits = SafetyLimits()
    record: RecordRule = RecordRule()
    cycle_rule: str = CYCLE_RULE
    steps: tuple[ProgramStep, ...]
    #: the bound cell's nominal capacity in Ah (``None``: the cell gives none). Vendor files that express currents
    #: as C-rates, and other tools reading them, take it as the cell's capacity (a Neware step file's ``MultCap``)
    nominal_capacity: float | None = Field(default=None, gt=0)
    #: the voltage the cell is at when the program starts, as far as the cell record knows (its ``ocv``): where
    #: the nominal path starts, e.g. to tell which way a first hold drives current
    start_voltage: float | None = None

    @model_validator(mode="after")
    def _indices_and_targets(self) -> StepProgram:
        for position, step in enumerate(self.steps, start=1):
            if step.index != position:
                raise ValueError(f"step indices must run 1..N in order; position {position} has index {step.index}")
            if isinstance(step, LoopStep) and not step.target < step.index:
                raise ValueError(f"loop step {step.index} must jump back, not to {step.target}")
            if isinstance(step, TemperatureStep) and step.until:
                raise ValueError(f"temperature step {step.index} ends when the chamber is stable, not on "
                                 "terminations")
            for termination in step.until:
                if termination.target is not None and not 1 <= termination.target <= len(self.steps):
                    raise ValueError(f"step {step.index} jumps to missing step {termination.target}")
        return self

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> StepProgram:
        return cls.model_validate_json(text)

    def step(self, index: int) -> ProgramStep:
        return self.steps[index - 1]


@dataclass(frozen=True, slots=True)
class ExecutedStep:
    """One step as it executes on the nominal path, with the cycle number it runs in."""

    step: ProgramStep
    cycle: int


def loop_targets(program: StepProgram) -> set[int]:
    """The indices at which a loop body starts."""
    return {s.target for s in program.steps if isinstance(s, LoopStep)}


def nominal_end(step: ProgramStep) -> Termination | None:
    """The termination the nominal path assumes ends ``step``: its first ``next`` one, else its first one.

    Which termination really ends a step depends on the cell. The nominal path takes the step's ordinary way on
    (a jump or an end beside a ``next`` is the exception the protocol guards against); a step whose every
    termination jumps or ends takes its first. ``None``: the step has no termination (it goes on).
    """
    return next((t for t in step.until if t.then is Action.NEXT), step.until[0] if step.until else None)


class Execution:
    """Where a program is while it runs: the step that ran last, the loop counters and the cycle number.

    It implements the loop counters, jumps and :data:`CYCLE_RULE` once, for the nominal path (:func:`walk`) and for
    drivers that follow what an instrument really executed (:meth:`observe`). A jump taken by a termination is read
    with the rule's own words: leaving a loop body by a jump counts as reaching its loop step (the cycle ends, and
    the loop's counter starts afresh if it is entered again), and landing at the start of a loop body counts as
    entering it (only a loop step's own jump back does not).
    """

    def __init__(self, program: StepProgram):
        self.program = program
        self._loop_starts = loop_targets(program)
        self._loops = [s for s in program.steps if isinstance(s, LoopStep)]
        self.passes: dict[int, int] = {}
        self.cycle = 1
        self.position = 0  # the non-loop step that ran last (0: none yet)
        self.ran_since_increment = False
        self.moved_since_increment = False
        self.ended = False

    def copy(self) -> Execution:
        twin = Execution.__new__(Execution)
        twin.__dict__.update(self.__dict__)
        twin.passes = dict(self.passes)
        return twin

    def _enter(self, position: int, *, loop_jump: bool = False) -> int | None:
        """Run loop steps from ``position`` until a non-loop step; its index (``None``: past the end)."""
        steps = self.program.steps
        while position <= len(steps):
            step = steps[position - 1]
            if position in self._loop_starts and not loop_jump and self.moved_since_increment:
                self.cycle += 1
                self.ran_since_increment = self.moved_since_increment = False
            loop_jump = False
            if isinstance(step, LoopStep):
                if self.ran_since_increment:
                    self.cycle += 1
                    self.ran_since_increment = self.moved_since_increment = False
                done = self.passes.get(step.index, 0) + 1
                if done < step.count:
                    self.passes[step.index] = done
                    position = step.target
                    loop_jump = True
                else:
                    self.passes.pop(step.index, None)
                    position += 1
                continue
            self.position = position
            self.ran_since_increment = True
            self.moved_since_increment |= step.kind in CHARGE_KINDS
            return position
        self.ended = True
        return None

    def start(self) -> int | None:
        """The first step to run."""
        return self._enter(1)

    def follow(self, end: Termination | None) -> int | None:
        """The step that runs after the current one ends by ``end`` (``None``: by going on); ``None`` at the end."""
        if end is None or end.then is Action.NEXT or (end.then is Action.JUMP and end.target == self.position + 1):
            return self._enter(self.position + 1)
        if end.then is Action.END:
            self.ended = True
            return None
        assert end.target is not None
        self._leave_loops(end.target)
        return self._enter(end.target)

    def _leave_loops(self, target: int) -> None:
        """A jump to ``target`` leaves every loop whose body holds the current step but not the target: their
        counters start afresh, and leaving ends the cycle as reaching the loop step would."""
        left = False
        for loop in self._loops:
            if loop.target <= self.position <= loop.index and not loop.target <= target <= loop.index:
                self.passes.pop(loop.index, None)
                left = True
        if left and self.ran_since_increment:
            self.cycle += 1
            self.ran_since_increment = self.moved_since_increment = False

    def ways_on(self) -> list[Termination | None]:
        """How the current step may end: its nominal end first, then going on, then each of its jumps and ends."""
        step = self.program.step(self.position)
        nominal = nominal_end(step)
        others = [None, *(t for t in step.until if t.then is not Action.NEXT)]
        return [nominal, *(t for t in others if t is not nominal and not (nominal is None and t is None))]

    def observe(self, index: int) -> bool:
        """Move to step ``index``, which the instrument ran next, by the first way on that leads there (the nominal
        one first: where two ways reach the same step, the program's ordinary way is assumed). ``False`` if no way
        of the program leads there: it is then taken as a jump, so that counting goes on."""
        if self.position == 0:
            trial = self.copy()
            if trial.start() == index:
                self.__dict__.update(trial.__dict__)
                return True
        else:
            for way in self.ways_on():
                trial = self.copy()
                if trial.follow(way) == index:
                    self.__dict__.update(trial.__dict__)
                    return True
        self._leave_loops(index)
        self.ended = False
        self._enter(index)
        return False


def walk(program: StepProgram, *, max_steps: int = 10_000_000) -> Iterator[ExecutedStep]:
    """Yield the non-loop steps in execution order along the nominal path (:func:`nominal_end` ends each step).

    Which termination ends a step depends on the cell, so the nominal path assumes each step goes on where it can;
    a step that can only jump or end takes its first termination. The loop counters, jumps and
    :data:`CYCLE_RULE` are :class:`Execution`'s, shared by estimators, simulators, drivers and tests. A nominal path
    that never ends (a jump back with no way out) stops with ``RuntimeError`` after ``max_steps`` steps.
    """
    execution = Execution(program)
    index = execution.start()
    emitted = 0
    while index is not None:
        step = program.step(index)
        yield ExecutedStep(step=step, cycle=execution.cycle)
        emitted += 1
        if emitted >= max_steps:
            raise RuntimeError(f"the program runs more than {max_steps} steps")
        index = execution.follow(nominal_end(step))
