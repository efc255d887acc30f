"""What the station asks of any channel driver, whatever the vendor.

Both vendors run step programs autonomously in the instrument, so the contract is upload / start / watch /
download / stop, plus re-attaching to a program that kept running while the PC was away. Drivers translate the
vendor's own numbering, units and states into these types; the station never sees a wire format.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from protocols.program import StepProgram


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


@dataclass(frozen=True, slots=True)
class Record:
    """One data point in the station's convention: SI units, positive current charges, 1-based ``seq``.

    ``step_index`` is the step program's index (drivers map native step numbers back), ``cycle`` follows the
    program's cycle rule. ``capacity``/``energy`` are the signed net values since the step started. EIS points
    carry the frequency and impedance.
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

    @abc.abstractmethod
    def check(self, program: StepProgram) -> None:
        """Raise :class:`CapabilityError` naming every step this channel cannot run, and why."""

    @abc.abstractmethod
    def start(self, program: StepProgram, barcode: str) -> TestHandle:
        """Check, compile, upload and start the program; the instrument then runs it on its own."""

    @abc.abstractmethod
    def find_test(self, program: StepProgram, barcode: str) -> TestHandle | None:
        """The handle of the test this station started with ``barcode``, if the channel holds it (running or
        ended), else ``None``; read-only. It answers the one question a crash between sending ``start`` and
        storing the handle leaves open: did the instrument start it? Raises :class:`DriverError` when the
        instrument cannot tell (unreachable), which is never read as "no"."""

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
