"""What the station asks of any channel driver, whatever the vendor.

Both vendors run step programs autonomously in the instrument, so the contract is upload / start / watch /
download / stop, plus re-attaching to a program that kept running while the PC was away. Drivers translate the
vendor's own numbering, units and states into these types; the station never sees a wire format.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from protocols.program import (
    Action,
    CaStep,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    LoopStep,
    LsvStep,
    ProgramStep,
    Quantity,
    RestStep,
    SafetyLimits,
    StepProgram,
    Termination,
)


class DriverError(Exception):
    """An instrument-side failure the user can act on; the message names the instrument, channel and fix."""


class Refused(DriverError):
    """The driver refused before sending anything that could change the channel (busy, incapable, bad input).

    The difference matters to the station: after a refusal the channel is exactly as it was, so nothing may be
    stopped (it may be running someone else's test); after any other failure of ``start`` the station must find
    out from the instrument whether the test started. ``unreachable``: the instrument did not answer the reads
    that come before start (a link problem, not a refusal by the instrument).
    """

    def __init__(self, message: str, *, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


class CapabilityError(Refused):
    """A step program asks for something this channel cannot do; raised before anything is sent."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class TestGone(DriverError):
    """The channel no longer holds the test a handle names (reset, reused, or started over by someone else):
    nothing may be sent to it on that test's behalf, and the run it belonged to did not finish."""

    __test__ = False  # not a pytest test class


class InstrumentTimeout(DriverError):
    """The instrument did not answer in time (after the driver's own retries)."""


class ChannelState(StrEnum):
    IDLE = "idle"  # nothing running (never started, or finished and cleared)
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"  # the program reached its end
    STOPPED = "stopped"  # stopped by an operator or by us
    PROTECTED = "protected"  # the instrument tripped a protection limit
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ChannelRanges:
    """The hardware ranges of one channel, from the station config or the instrument itself."""

    voltage_min: float
    voltage_max: float
    current_max: float
    current_min_resolution: float = 0.0


#: optional forms of a step kind that not every instrument can run, as :func:`step_features` finds them
STEP_FEATURES = {
    "cccv": "a constant current that holds its voltage at the end (CCCV)",
    "vs_ocv": "a set-point relative to the open-circuit voltage at the step's start",
}


#: step kinds the station carries out itself, between the instrument programs of a run (:mod:`protocols.segments`):
#: no channel runs them, whatever it declares
STATION_STEP_KINDS = frozenset({"temperature"})


def station_step_problem(program: StepProgram) -> str | None:
    """One line naming the steps of ``program`` the station carries out, not a channel (``None``: it has none).

    One line for all of them, first among a channel's problems: a program with temperature steps reaches a channel
    only as its segments, so nothing else about the whole program is worth saying first."""
    found = [s for s in program.steps if s.kind in STATION_STEP_KINDS]
    if not found:
        return None
    where = ", ".join(str(s.index) for s in found)
    return (f"step {where} (temperature): temperature steps are carried out by the station, which sets the climate "
            "chamber between the instrument programs of a run, not by this channel")


def step_features(step: ProgramStep) -> frozenset[str]:
    """The optional forms (:data:`STEP_FEATURES`) ``step`` uses."""
    features = set()
    if isinstance(step, CurrentStep) and step.hold_voltage is not None:
        features.add("cccv")
    if (
        (isinstance(step, CaStep) and step.vs_ocv)
        or (isinstance(step, LsvStep) and step.start is None)
        or (isinstance(step, CvStep) and (step.start is None or step.end is None))
        or (isinstance(step, EisStep) and step.mode == "potentio" and step.bias_vs_ocv)
    ):
        features.add("vs_ocv")
    return frozenset(features)


@dataclass(frozen=True, slots=True)
class StepSupport:
    """What a channel can do with one kind of program step (``rest``, ``charge``, ``eis``, ...)."""

    kind: str
    ends: frozenset[Quantity] = frozenset()
    """Quantities a step of this kind can end on and go on to the next step."""
    branches: frozenset[Quantity] = frozenset()
    """Quantities on which its end can instead end the run, or go to another step where the channel can jump."""
    features: frozenset[str] = frozenset()
    """The optional forms of the kind it runs (:data:`STEP_FEATURES`)."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a channel can run, as data (DESIGN section 5): building or reading it does no I/O.

    A driver declares one per instrument kind (``ChannelDriver.declared_capabilities``, read from the station's
    config alone, before anything is connected) and one per channel (``ChannelDriver.capabilities``: the kind's,
    with the channel's ranges and whatever the driver already knows of the instrument). :meth:`problems` is the
    kind-level test the station's channel choice uses; a driver's ``check`` goes further (step directions, current
    ranges of a board, values a native program cannot hold), so a channel whose capabilities cover a program may
    still refuse it, never the other way round.
    """

    instrument: str
    steps: tuple[StepSupport, ...]
    jumps: bool = False
    """An end can go to any step of the program (not only on to the next, or end the run)."""
    pause: bool = False
    ranges: ChannelRanges | None = None
    max_steps: int | None = None
    """Program steps a native program holds (``None``: no limit of the instrument's own)."""
    max_passes: int | None = None
    """Passes of one loop (``None``: the step program's own bound)."""
    safety: frozenset[str] = frozenset(SafetyLimits.model_fields)
    """The whole-run limits (:class:`protocols.program.SafetyLimits` fields) a program may set on this channel."""

    def support(self, kind: str) -> StepSupport | None:
        return next((s for s in self.steps if s.kind == kind), None)

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(s.kind for s in self.steps)

    def with_ranges(self, ranges: ChannelRanges | None) -> Capabilities:
        return replace(self, ranges=ranges)

    def covers(self, program: StepProgram) -> bool:
        return not self.problems(program)

    def problems(self, program: StepProgram) -> list[str]:
        """What in ``program`` this channel cannot run, one line per problem (empty: it may run it)."""
        out: list[str] = []
        a = f"a {self.instrument} channel"
        station = station_step_problem(program)
        if station is not None:
            out.append(station)
        if self.max_steps is not None and len(program.steps) > self.max_steps:
            out.append(f"the program has {len(program.steps)} steps; {a} runs at most {self.max_steps}")
        for name in sorted(n for n in SafetyLimits.model_fields if getattr(program.safety, n) is not None):
            if name == "temperature_max" and station is not None:
                continue  # with temperature steps the station reads the chamber and enforces it, not a channel
            if name not in self.safety:
                out.append(f"safety.{name}: {a} cannot enforce it")
        last = program.steps[-1].index if program.steps else 0
        for step in program.steps:
            if step.kind in STATION_STEP_KINDS:
                continue
            where = f"step {step.index} ({step.kind})"
            support = self.support(step.kind)
            if support is None:
                out.append(f"{where}: {a} cannot run {step.kind} steps")
                continue
            if isinstance(step, LoopStep):
                if self.max_passes is not None and step.count > self.max_passes:
                    out.append(f"{where}: {step.count} passes; {a} runs a loop at most {self.max_passes} times")
                continue
            for feature in sorted(step_features(step) - support.features):
                out.append(f"{where}: {a} cannot run {STEP_FEATURES[feature]}")
            for term in step.until:
                out += self._end_problems(step, term, support, last_step=step.index == last)
            out += self._range_problems(step, where)
        return out

    def _end_problems(
        self, step: ProgramStep, term: Termination, support: StepSupport, *, last_step: bool
    ) -> list[str]:
        where, a, quantity = f"step {step.index} ({step.kind})", f"a {self.instrument} channel", term.quantity
        if term.then is Action.END and last_step:  # ending the run after the last step is going on: either serves
            if quantity in support.ends | support.branches:
                return []
            return [f"{where}: {a} cannot end a {step.kind} step on {quantity.value}"]
        if term.then is Action.NEXT or (term.then is Action.JUMP and term.target == step.index + 1):
            if quantity in support.ends:
                return []
            return [f"{where}: {a} cannot end a {step.kind} step on {quantity.value}"]
        if quantity not in support.branches:
            return [f"{where}: {a} cannot branch on {quantity.value} from a {step.kind} step ('{term.describe()}')"]
        if term.then is Action.JUMP and not self.jumps:
            return [f"{where}: {a} can only go on or end the run, not jump ('{term.describe()}')"]
        return []

    def _range_problems(self, step: ProgramStep, where: str) -> list[str]:
        """Set-points and cut-offs outside the channel's ranges (those every driver refuses)."""
        ranges = self.ranges
        if ranges is None:
            return []
        out = []
        volts: list[float] = []
        if isinstance(step, CurrentStep):
            if abs(step.current) > ranges.current_max:
                out.append(f"{where}: {abs(step.current):g} A is above the channel's {ranges.current_max:g} A")
            if step.hold_voltage is not None:
                volts.append(step.hold_voltage)
        if isinstance(step, HoldStep) or (isinstance(step, CaStep) and not step.vs_ocv):
            volts.append(step.voltage)
        elif isinstance(step, LsvStep):
            volts += [v for v in (step.start, step.end) if v is not None]
        elif isinstance(step, CvStep):
            volts += [step.vertex_1, step.vertex_2]
        elif isinstance(step, RestStep | CurrentStep):
            volts += [t.value for t in step.until if t.quantity is Quantity.VOLTAGE]
        for v in volts:
            if not ranges.voltage_min <= v <= ranges.voltage_max:
                window = f"{ranges.voltage_min:g}..{ranges.voltage_max:g} V"
                out.append(f"{where}: {v:g} V is outside the channel's {window}")
        return out


@dataclass(frozen=True, slots=True)
class Record:
    """One data point in the station's convention: SI units, positive current charges, 1-based ``seq``.

    ``step_index`` is the step program's index (drivers map native step numbers back), ``cycle`` follows the
    program's cycle rule. ``capacity``/``energy`` are the signed net values since the step started. EIS points
    carry the frequency and impedance. ``cv_cycle`` counts the cycles of a cyclic voltammetry step as the
    instrument numbers them (1 for the first; 0 outside a CV step), so that each CV cycle can be analysed apart
    while ``cycle`` keeps following the program's cycle rule.
    """

    seq: int
    test_time: float
    step_time: float
    step_index: int
    cycle: int
    voltage: float
    current: float
    capacity: float
    energy: float
    frequency: float | None = None
    z_real: float | None = None
    z_imag: float | None = None
    cv_cycle: int = 0


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    state: ChannelState
    step_index: int | None = None
    cycle: int | None = None
    voltage: float | None = None
    current: float | None = None
    step_capacity: float | None = None
    test_time: float | None = None
    last_seq: int | None = None
    message: str = ""
    test_id: str | None = None
    """The test the channel holds now, when the instrument tells it ("0": none); the station compares it with its
    own handle, so a channel that was reset or reused is never mistaken for the end of the station's test."""


@dataclass(frozen=True, slots=True)
class TestHandle:
    """What identifies a started test on the instrument, stored with the run so that ``attach`` can find it."""

    channel: str
    test_id: str
    barcode: str
    extra: dict[str, str] = field(default_factory=dict)


class ChannelDriver(abc.ABC):
    """One channel of one instrument."""

    channel: str

    @classmethod
    def declared_capabilities(cls, ranges: ChannelRanges | None = None) -> Capabilities:
        """What any channel of this driver's instrument kind with ``ranges`` can run, known without an instrument
        (no I/O): what the station's channel choice reads from its config. The base class declares nothing."""
        return Capabilities(instrument=cls.__name__, steps=(), ranges=ranges)

    def capabilities(self) -> Capabilities:
        """What this channel can run: its kind's declaration with its ranges, refined by what the driver already
        knows of the instrument. No side effects: it never connects or asks the instrument."""
        return type(self).declared_capabilities()

    @abc.abstractmethod
    def check(self, program: StepProgram) -> None:
        """Raise :class:`CapabilityError` naming every step this channel cannot run, and why; no side effects
        (nothing is connected, loaded or sent)."""

    @abc.abstractmethod
    def start(self, program: StepProgram, barcode: str) -> TestHandle:
        """Check, compile, upload and start the program; the instrument then runs it on its own."""

    def start_marker(self) -> dict[str, str]:
        """What the channel says before a start that tells the test about to start from every earlier one with the
        same barcode (a sample's barcode is on each of its runs); stored with the intent to start and given back
        to :meth:`find_test`. Read-only; empty when the barcode alone is enough. Raises :class:`DriverError` when
        the instrument does not answer (then nothing is sent)."""
        return {}

    @abc.abstractmethod
    def find_test(self, program: StepProgram, barcode: str,
                  marker: Mapping[str, str] | None = None) -> TestHandle | None:
        """The handle of the test this station started with ``barcode`` (and, with ``marker`` from
        :meth:`start_marker`, started after that marker), if the channel holds it (running or ended), else
        ``None``; read-only. It answers the one question a crash between sending ``start`` and storing the handle
        leaves open: did the instrument start it? Raises :class:`DriverError` when the instrument cannot tell
        (unreachable), which is never read as "no"."""

    @abc.abstractmethod
    def attach(self, handle: TestHandle) -> None:
        """Re-attach to a test started earlier (perhaps by another process) without disturbing it."""

    @abc.abstractmethod
    def status(self) -> ChannelStatus:
        """The channel now; ``last_seq`` (the newest record on the instrument) when the instrument tells it,
        so that a supervisor can skip downloads that would come back empty."""

    def batch_key(self) -> object:
        """Channels with equal keys can be polled together by :meth:`statuses` (e.g. one link to one BTS)."""
        return self

    @classmethod
    def statuses(cls, drivers: Sequence[ChannelDriver]) -> list[ChannelStatus]:
        """The status of several channels sharing a :meth:`batch_key`; instruments that can, do it in one
        exchange, which is what lets one process watch hundreds of channels."""
        return [d.status() for d in drivers]

    @abc.abstractmethod
    def read_records(self, after_seq: int, limit: int = 1000) -> list[Record]:
        """Records with ``seq > after_seq`` in order, at most ``limit``; empty when there is nothing new."""

    @abc.abstractmethod
    def pause(self) -> None: ...

    @abc.abstractmethod
    def resume(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the channel and leave it in a safe state (no current); idempotent."""
