"""The part of every chamber driver that is not the vendor's: one lock, repeats, resynchronising, reconnecting.

A vendor class (:class:`~drivers.chamber.espec.Espec`) declares its line settings, its commands as
:class:`Command` values (the line, the reply parser, whether it may be repeated) and how it spells an error reply,
and writes the five operations (read, set point, start, standby, identify) as a few :meth:`Chamber.query` calls.
Everything below is shared, and tested once against an ordered fake link (tests/drivers/chamber):

* **one lock** (re-entrant) is held across each write and its read, and across the several commands of one
  operation, so that two threads never interleave lines on one chamber (pyvisa #726, PyMeasure #506);
* **no answer**: the link's timeout expires; the input is discarded (the late rest of the line must not be read as
  the next reply; a socket link does that by reconnecting) and a repeatable command is sent again, ``retries``
  times, then :class:`ChamberNoAnswer`;
* **garbled line**: bytes that are not a terminated ASCII line, or a line the command's parser refuses (line
  noise, a wrong baud rate, a reply out of step): the same, then :class:`ChamberGarbled`;
* **lost line**: the port or socket is closed and opened again, on the :class:`~drivers.transport.Backoff`
  schedule timed by the injected clock, then the command is sent again; :class:`ChamberLinkLost` when the
  schedule runs out;
* **error reply** (ESPEC ``NA:...``): never repeated (the chamber would refuse again): :class:`ChamberRefused`;
* **alarm**: :meth:`Chamber.read` raises :class:`ChamberAlarm` (or :class:`ChamberDoorOpen`) carrying the reading,
  unless the caller asks for alarmed readings too.

Repeating is safe for reads; for settings it is safe when the setting is absolute (a set point, a mode), which is
what a vendor declares with ``idempotent=True``. A command declared otherwise is sent once, and a failure says that
its effect is unknown.
"""

from __future__ import annotations

import abc
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar, Generic, Self, TypeVar

from drivers.base import Refused
from drivers.chamber.errors import (
    ChamberAlarm,
    ChamberDoorOpen,
    ChamberGarbled,
    ChamberLinkLost,
    ChamberNoAnswer,
    ChamberRefused,
)
from drivers.chamber.link import LineLink, LinkGarbled, LinkLost, LinkTimeout, SerialSettings, VisaLineLink
from drivers.chamber.readings import ChamberIdentity, ChamberReading
from drivers.transport import Backoff
from protocols.clock import Clock, RealClock

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Command(Generic[T]):
    """One line a chamber understands, declared once by its vendor class.

    ``template`` is formatted with the call's arguments (``"TEMP, S{:.1f}"``); ``parse(reply, sent)`` turns the
    reply line into a value and raises ``ValueError`` for a line that is not a reply to this command (``sent`` is
    the line that was sent, for settings that the chamber echoes). ``idempotent``: sending it twice has the same
    effect as once, so it may be repeated after a timeout, a garbled reply or a reconnect.
    """

    template: str
    parse: Callable[[str, str], T]
    idempotent: bool = True

    def line(self, *args: Any) -> str:
        return self.template.format(*args)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A vendor's error reply, decoded: its code and what the user should do about it."""

    code: str
    meaning: str


#: reconnect schedule for a lost line: 4 opens, 0.5 s, 1 s, 2 s apart (a USB adapter re-enumerates in ~1 s)
DEFAULT_BACKOFF = Backoff(attempts=4, first_s=0.5, factor=2.0, max_s=10.0)


class Chamber(abc.ABC):
    """A climate chamber on a line link; subclasses are vendors (see the module docstring)."""

    vendor: ClassVar[str]
    #: the line termination the chamber sends and expects
    termination: ClassVar[str] = "\r\n"
    #: the chamber's factory serial settings (used for ``ASRL`` resources only)
    serial: ClassVar[SerialSettings] = SerialSettings()
    #: the set-point resolution the chamber accepts, in degrees Celsius
    resolution_c: ClassVar[float] = 0.1

    def __init__(
        self,
        link: LineLink,
        *,
        clock: Clock | None = None,
        retries: int = 2,
        backoff: Backoff = DEFAULT_BACKOFF,
    ):
        if retries < 0:
            raise ValueError(f"{link.resource}: retries must be 0 or more, found {retries}")
        self.link = link
        self.resource = link.resource
        self.clock = clock or RealClock()
        self.retries = retries
        self.backoff = backoff
        self.reconnects = 0
        """Links opened after the first (status pages and tests read it)."""
        self._opened_before = False
        self._lock = threading.RLock()

    @classmethod
    def connect(
        cls,
        resource: str,
        *,
        timeout_s: float = 2.0,
        serial: SerialSettings | None = None,
        clock: Clock | None = None,
        retries: int = 2,
        backoff: Backoff = DEFAULT_BACKOFF,
        **vendor: Any,
    ) -> Self:
        """A chamber at a pyvisa resource string (``ASRL/dev/ttyUSB0::INSTR``, ``TCPIP::host::port::SOCKET``).

        Nothing is opened yet: the first command opens the link, so a chamber that is off when the station starts
        is found when it is first needed. ``serial`` overrides the vendor's factory settings (a chamber whose
        baud rate was changed on its panel).
        """
        link = VisaLineLink(resource, termination=cls.termination, timeout_s=timeout_s, serial=serial or cls.serial)
        return cls(link, clock=clock, retries=retries, backoff=backoff, **vendor)

    # -- what a vendor class provides -----------------------------------------------------------------------

    @abc.abstractmethod
    def refusal(self, reply: str) -> Refusal | None:
        """The decoded error reply, if ``reply`` is one (ESPEC ``NA:...``), else ``None``."""

    @abc.abstractmethod
    def _read(self) -> ChamberReading: ...

    @abc.abstractmethod
    def _set_point(self, celsius: float) -> None: ...

    @abc.abstractmethod
    def _start(self) -> None: ...

    @abc.abstractmethod
    def _standby(self) -> None: ...

    @abc.abstractmethod
    def _identify(self) -> ChamberIdentity: ...

    def encode(self, text: str) -> str:
        """The line sent for a command's text (a vendor adds a bus address here)."""
        return text

    # -- the operations -------------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.resource} ({self.vendor} chamber)"

    def read(self, *, allow_alarm: bool = False) -> ChamberReading:
        """Temperature, set point, mode and alarms, in one locked transaction.

        An alarmed reading raises :class:`ChamberAlarm` (:class:`ChamberDoorOpen` for the door), which carries the
        reading; ``allow_alarm=True`` returns it instead, for a caller that records temperatures whatever happens.
        """
        with self._lock:
            reading = self._read()
        if reading.alarms and not allow_alarm:
            codes = ", ".join(str(code) for code in reading.alarms)
            at = f"at {reading.temperature_c:.1f} °C (set point {reading.set_point_c:.1f} °C)"
            if reading.door_open:
                raise ChamberDoorOpen(
                    f"{self.where}: the door is open (alarm {codes}) {at}; the temperature drifts towards the "
                    "room's until the door is closed: close it, then clear the alarm on the chamber's panel",
                    reading,
                )
            raise ChamberAlarm(
                f"{self.where}: the chamber reports alarm {codes} {at}; its temperature cannot be trusted: look up "
                "the code on the chamber's panel, fix the cause and clear the alarm there",
                reading,
            )
        return reading

    def set_point(self, celsius: float) -> float:
        """Set the temperature to hold, rounded to the chamber's resolution; returns the value sent.

        The chamber itself refuses a set point outside its alarm limits (:class:`ChamberRefused`).
        """
        if not isinstance(celsius, int | float) or not math.isfinite(celsius):
            raise Refused(f"{self.where}: set point {celsius!r} is not a temperature in °C; give a finite number")
        step = Decimal(str(self.resolution_c))  # decimal, half away from zero: 0.05 -> 0.1 as a person rounds
        value = float((Decimal(str(celsius)) / step).quantize(Decimal(1), ROUND_HALF_UP) * step) + 0.0  # no -0.0
        with self._lock:
            self._set_point(value)
        return value

    def start(self) -> None:
        """Start holding the set point."""
        with self._lock:
            self._start()

    def standby(self) -> None:
        """Stop controlling the temperature (the chamber stays powered)."""
        with self._lock:
            self._standby()

    def safe_state(self) -> None:
        """The state a run leaves a chamber in when it ends or fails: standby."""
        self.standby()

    def identify(self) -> ChamberIdentity:
        with self._lock:
            return self._identify()

    def close(self) -> None:
        """Close the link (the chamber keeps doing what it was doing); idempotent."""
        with self._lock:
            self.link.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the exchange ---------------------------------------------------------------------------------------

    def query(self, command: Command[T], *args: Any) -> T:
        """Send one command and return its parsed reply, repeating and reconnecting as the module docstring says."""
        line = self.encode(command.line(*args))
        attempts = 1 + self.retries if command.idempotent else 1
        with self._lock:
            for attempt in range(1, attempts + 1):
                last = attempt == attempts
                self._ensure_open()
                try:
                    self.link.write_line(line)
                    reply = self.link.read_line()
                except LinkTimeout as exc:
                    self._resync()
                    if last:
                        raise ChamberNoAnswer(self._no_answer(line, attempts)) from exc
                    log.warning("%s: no answer to %r (attempt %d of %d)", self.where, line, attempt, attempts)
                    continue
                except LinkGarbled as exc:
                    self._resync()
                    if last:
                        raise ChamberGarbled(self._garbled(line, str(exc), attempts)) from exc
                    log.warning("%s: garbled reply to %r (%s), repeating", self.where, line, exc)
                    continue
                except LinkLost as exc:
                    self.link.close()
                    if last:
                        raise ChamberLinkLost(self._lost(line, str(exc), command.idempotent)) from exc
                    log.warning("%s: line lost during %r (%s), reconnecting", self.where, line, exc)
                    continue
                refusal = self.refusal(reply)
                if refusal is not None:
                    raise ChamberRefused(
                        f"{self.where}: the chamber refused {line!r} with {reply!r} ({refusal.meaning})",
                        refusal.code,
                    )
                try:
                    return command.parse(reply, line)
                except ValueError as exc:
                    self._resync()
                    if last:
                        raise ChamberGarbled(self._garbled(line, f"{reply!r}: {exc}", attempts)) from exc
                    log.warning("%s: unexpected reply %r to %r (%s), repeating", self.where, reply, line, exc)
            raise AssertionError("unreachable")

    def _ensure_open(self) -> None:
        if self.link.is_open:
            return
        delays = self.backoff.delays()
        problem = ""
        for attempt in range(len(delays) + 1):
            try:
                self.link.open()
            except LinkLost as exc:
                problem = str(exc)
                log.debug("%s: open failed (%s), attempt %d", self.where, exc, attempt + 1)
                if attempt < len(delays):
                    self.clock.sleep(delays[attempt])
                continue
            if self._opened_before:
                self.reconnects += 1
            self._opened_before = True
            return
        raise ChamberLinkLost(
            f"{self.where}: cannot open the line after {len(delays) + 1} attempts ({problem}); {self._hint()}"
        )

    def _resync(self) -> None:
        """Drop whatever is buffered: the rest of a late or garbled line must not be read as the next reply."""
        try:
            self.link.discard_input()
        except LinkLost:
            self.link.close()

    def _hint(self) -> str:
        if self.resource.upper().startswith("ASRL"):
            settings = getattr(self.link, "serial", self.serial)
            return (
                "check that the chamber is on and in remote mode, that this is its port and cable, and that its "
                f"serial settings are {settings.describe()} with lines ending {self.termination!r}"
            )
        return "check that the chamber (or its serial-to-network adapter) is on and listens on that port"

    def _no_answer(self, line: str, attempts: int) -> str:
        timeout = getattr(self.link, "timeout_s", None)
        within = f" within {timeout:g} s" if timeout is not None else ""
        return f"{self.where}: no answer to {line!r}{within} ({attempts} attempts); {self._hint()}"

    def _garbled(self, line: str, detail: str, attempts: int) -> str:
        return f"{self.where}: garbled reply to {line!r} ({detail}; {attempts} attempts); {self._hint()}"

    def _lost(self, line: str, detail: str, idempotent: bool) -> str:
        effect = "" if idempotent else "; whether the chamber acted on it is unknown: read its state before repeating"
        return f"{self.where}: the line was lost during {line!r} ({detail}){effect}; {self._hint()}"
