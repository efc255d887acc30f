"""One text line out, one text line back: the only chamber code that touches pyvisa or pyserial.

A :class:`LineLink` is deliberately thin: it opens, writes a line, reads a line, throws away buffered input and
closes, and it reports failures as three link-level exceptions (:class:`LinkTimeout`, :class:`LinkGarbled`,
:class:`LinkLost`). What to do about them (repeat, resynchronise, reconnect with back-off, which error to raise)
is decided once, for every vendor, in :class:`drivers.chamber.base.Chamber`, and is tested there against an
ordered fake link.

:class:`VisaLineLink` opens a pyvisa resource string with the pure-Python backend (``@py``): serial lines as
``ASRL/dev/ttyUSB0::INSTR`` (pyvisa-py opens them with pyserial's ``serial_for_url``, so ``ASRL/dev/pts/3::INSTR``
reaches a pseudo-terminal and ``ASRLsocket://host:port::INSTR`` a serial-over-TCP adapter) and raw sockets as
``TCPIP::host::port::SOCKET``. The facts it relies on (reference/instrument-control-patterns.md, section 2, checked
with pyvisa 1.16.2 / pyvisa-py 0.8.1 / pyserial 3.5):

* only the last character of ``read_termination`` stops a read, and a line that does not end in the whole
  termination comes back with a mere ``UserWarning``; so the link reads raw bytes up to the termination character
  and checks the whole termination and the ASCII itself, turning either failure into :class:`LinkGarbled`;
* a timeout discards the bytes already read, so the rest of that line is still coming: after a timeout the caller
  discards input before the next command. On a serial line that is ``flush(discard_read_buffer)`` (pyvisa-py does
  not support ``clear`` there). On a socket the link closes instead, and the next command opens a new connection,
  which holds no stale bytes: pyvisa-py 0.8.1's socket ``clear()`` loops forever once the peer has closed the
  connection (``select`` keeps reporting the socket readable and ``recv`` keeps returning nothing; found with the
  simulated adapter in tests/drivers/chamber), and a closed peer shows up only as a timeout, which this also cures;
* pyvisa-py lets ``OSError``, ``serial.SerialException`` and, on a socket connect timeout, a bare ``Exception``
  escape instead of ``VisaIOError``: all of them mean the line is gone (:class:`LinkLost`);
* sessions are shared between ResourceManagers and closing one closes all, so there is one ``@py`` manager per
  process (:func:`resource_manager`).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class LinkTimeout(Exception):
    """No complete line arrived within the link's timeout (or a write could not be sent in time)."""


class LinkGarbled(Exception):
    """Bytes arrived that are not a line of printable ASCII ending in the termination."""


class LinkLost(Exception):
    """The port or socket is gone (unplugged adapter, closed peer, I/O error) or cannot be opened."""


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """The serial line's settings; a vendor class declares its chamber's factory defaults."""

    baud_rate: int = 9600
    data_bits: int = 8
    parity: str = "none"  # "none", "even" or "odd"
    stop_bits: int = 1

    def describe(self) -> str:
        return f"{self.baud_rate} baud {self.data_bits}{self.parity[0].upper()}{self.stop_bits}"


class LineLink(abc.ABC):
    """A line-based link to one instrument. Not thread-safe: its one user (a chamber) holds a lock around it."""

    resource: str

    @abc.abstractmethod
    def open(self) -> None:
        """Open the link (:class:`LinkLost` when it cannot be opened); opening an open link does nothing."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the link; idempotent, never raises."""

    @property
    @abc.abstractmethod
    def is_open(self) -> bool: ...

    @abc.abstractmethod
    def write_line(self, line: str) -> None:
        """Send ``line`` followed by the termination."""

    @abc.abstractmethod
    def read_line(self) -> str:
        """The next line, without its termination."""

    @abc.abstractmethod
    def discard_input(self) -> None:
        """Throw away whatever has arrived and not been read (the rest of a late or garbled reply), by closing the
        link if it cannot do better; the next use then reopens it."""


_manager: Any = None
_manager_lock = threading.Lock()


def resource_manager() -> Any:
    """The process's one pyvisa ResourceManager on the pure-Python backend, made on first use."""
    global _manager
    with _manager_lock:
        if _manager is None:
            import pyvisa

            _manager = pyvisa.ResourceManager("@py")
        return _manager


class VisaLineLink(LineLink):
    """A :class:`LineLink` over a pyvisa resource string (see the module docstring for the pitfalls it handles).

    ``timeout_s`` bounds each read and write (pyvisa's per-call timeout, wall time: it is how long the thread
    blocks in the kernel, whatever the station's clock says); ``open_timeout_s`` bounds opening a socket.
    """

    def __init__(
        self,
        resource: str,
        *,
        termination: str = "\r\n",
        timeout_s: float = 2.0,
        open_timeout_s: float = 2.0,
        serial: SerialSettings = SerialSettings(),
        manager: Any = None,
    ):
        if not termination:
            raise ValueError(f"{resource}: a line link needs a termination")
        self.resource = resource
        self.termination = termination
        self.timeout_s = timeout_s
        self.open_timeout_s = open_timeout_s
        self.serial = serial
        self._manager = manager
        self._instrument: Any = None
        self.is_serial = resource.upper().startswith("ASRL")

    @property
    def is_open(self) -> bool:
        return self._instrument is not None

    def open(self) -> None:
        if self._instrument is not None:
            return
        from pyvisa import constants

        manager = self._manager or resource_manager()
        try:
            instrument = manager.open_resource(self.resource, open_timeout=round(self.open_timeout_s * 1000))
        except Exception as exc:  # pyvisa-py raises VisaIOError, OSError, SerialException or Exception
            raise LinkLost(_describe(exc)) from exc
        try:
            instrument.read_termination = self.termination  # its last character ends a raw read
            instrument.write_termination = ""  # write_line appends the termination itself
            instrument.timeout = round(self.timeout_s * 1000)
            if self.is_serial:
                instrument.baud_rate = self.serial.baud_rate
                instrument.data_bits = self.serial.data_bits
                instrument.parity = getattr(constants.Parity, self.serial.parity)
                instrument.stop_bits = {1: constants.StopBits.one, 2: constants.StopBits.two}[self.serial.stop_bits]
        except Exception as exc:  # same as above, for the settings of a port that just vanished
            with contextlib.suppress(Exception):
                instrument.close()
            raise LinkLost(f"opened, but its settings failed: {_describe(exc)}") from exc
        self._instrument = instrument
        log.debug("%s: opened", self.resource)

    def close(self) -> None:
        if self._instrument is not None:
            with contextlib.suppress(Exception):
                self._instrument.close()
            self._instrument = None

    def _live(self) -> Any:
        if self._instrument is None:
            raise LinkLost("it is not open")
        return self._instrument

    def write_line(self, line: str) -> None:
        data = (line + self.termination).encode("ascii")
        log.debug("%s <- %r", self.resource, data)
        self._guard(lambda: self._live().write_raw(data))

    def read_line(self) -> str:
        raw: bytes = self._guard(lambda: self._live().read_raw())
        log.debug("%s -> %r", self.resource, raw)
        return decode_line(raw, self.termination)

    def discard_input(self) -> None:
        """Serial: drop the port's input buffer. Socket: close (see the module docstring); the next use reopens."""
        from pyvisa.constants import BufferOperation

        if not self.is_serial:
            self.close()
            return
        instrument = self._live()
        self._guard(lambda: instrument.flush(BufferOperation.discard_read_buffer))

    @staticmethod
    def _guard(action: Any) -> Any:
        """Run one pyvisa call, mapping its many failure types to the link's three."""
        from pyvisa.constants import StatusCode
        from pyvisa.errors import VisaIOError
        from serial import SerialException

        try:
            return action()
        except VisaIOError as exc:
            if exc.error_code == StatusCode.error_timeout:
                raise LinkTimeout("no complete line in time") from exc
            raise LinkLost(_describe(exc)) from exc
        except (OSError, SerialException) as exc:
            raise LinkLost(_describe(exc)) from exc


def decode_line(raw: bytes, termination: str) -> str:
    """``raw`` without its termination, if it is one line of printable ASCII, else :class:`LinkGarbled`."""
    end = termination.encode("ascii")
    if not raw.endswith(end):
        raise LinkGarbled(f"a line without its {termination!r} termination: {raw[:80]!r}")
    body = raw[: -len(end)]
    if not all(32 <= byte < 127 for byte in body):
        raise LinkGarbled(f"a line with bytes that are not printable ASCII: {raw[:80]!r}")
    return body.decode("ascii")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
