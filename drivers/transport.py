"""Byte transports that drivers share: one framed request, one framed reply, under one lock.

Why a plain TCP socket and not pyvisa (pyvisa-py TCPIP SOCKET) for the Neware BTS API, although the design
prefers pyvisa for instrument links (facts from reference/instrument-control-patterns.md section 2):

* the BTS reply trailer ``\\n\\n#\\r\\n`` cannot be a pyvisa ``read_termination`` (its last character also occurs
  earlier, which pyvisa rejects as an "ambiguous ending"), and the real servers use three different trailers,
  so framing must be done by us on raw bytes anyway;
* with pyvisa-py a peer that closes the connection shows up as a *timeout*, not as a lost connection, and a
  timeout discards bytes already received; both hide exactly the faults we must tell apart;
* pyvisa-py lets raw ``OSError`` and a bare ``Exception`` escape on connect, so it saves no error mapping.

The transport therefore frames replies itself (read until an end marker, skip trailer bytes such as ``\\r\\n#``
that precede the next frame). A timeout or any socket error *closes* the connection, so that a late reply can
never be read as the answer to the next request (the stream cannot desynchronise); the next exchange reconnects,
with exponential back-off timed by the injected clock. One lock is held across each write and its read.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import socket
import threading
from dataclasses import dataclass

from drivers.base import DriverError, InstrumentTimeout
from protocols.clock import Clock, RealClock

log = logging.getLogger(__name__)


class TransportError(DriverError):
    """The link to an instrument failed; the message names the address."""


class ConnectionLost(TransportError):
    """The peer closed the connection or the network failed, after the transport's own reconnect attempts."""


class FrameTooLarge(TransportError):
    """A reply grew past the transport's size guard without an end marker (a garbled or foreign stream)."""


@dataclass(frozen=True, slots=True)
class Framing:
    """How one message ends: an end marker, plus bytes that may trail it and must be skipped before the next."""

    end: bytes
    skip: bytes = b""
    max_size: int = 256 * 1024 * 1024


class FrameBuffer:
    """Accumulates received bytes and cuts complete frames out of them (no I/O, unit-testable)."""

    def __init__(self, framing: Framing):
        self.framing = framing
        self._buffer = bytearray()
        self._searched = 0  # bytes already searched for the end marker, so long replies stay O(n)

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > self.framing.max_size:
            size = len(self._buffer)
            self.clear()
            raise FrameTooLarge(f"a reply passed {size} bytes without its end marker")

    def clear(self) -> None:
        self._buffer.clear()
        self._searched = 0

    def pending(self) -> bytes:
        return bytes(self._buffer)

    def discard_stale(self) -> int:
        """Drop whatever is buffered before a new request (strict request/reply: it cannot be ours)."""
        self._skip_leading()
        size = len(self._buffer)
        self.clear()
        return size

    def _skip_leading(self) -> None:
        skip = self.framing.skip + b" \t"
        start = 0
        while start < len(self._buffer) and self._buffer[start] in skip:
            start += 1
        if start:
            del self._buffer[:start]
            self._searched = max(0, self._searched - start)

    def next_frame(self) -> bytes | None:
        self._skip_leading()
        end = self.framing.end
        position = self._buffer.find(end, max(0, self._searched - len(end) + 1))
        if position < 0:
            self._searched = len(self._buffer)
            return None
        stop = position + len(end)
        frame = bytes(self._buffer[:stop])
        del self._buffer[:stop]
        self._searched = 0
        self._skip_leading()
        return frame


class Transport(abc.ABC):
    """One request in, one reply frame out; implementations serialise callers with one lock."""

    address: str

    @abc.abstractmethod
    def exchange(self, request: bytes, *, idempotent: bool = True) -> bytes:
        """Send ``request`` and return the next complete reply frame.

        ``idempotent`` requests are re-sent after a reconnect; others raise at once rather than risk acting
        twice on an instrument.
        """

    def resync(self) -> None:  # noqa: B027 - optional for transports that cannot desynchronise
        """Forget any partial stream state (called after a reply that could not be parsed)."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release the link; idempotent."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect schedule: ``attempts`` connects, waiting ``first_s`` x ``factor``^k (at most ``max_s``) between."""

    attempts: int = 5
    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0

    def delays(self) -> list[float]:
        return [min(self.max_s, self.first_s * self.factor**k) for k in range(max(0, self.attempts - 1))]


class SocketTransport(Transport):
    """A framed TCP client (see the module docstring for why it is not pyvisa)."""

    def __init__(
        self,
        host: str,
        port: int,
        framing: Framing,
        *,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        backoff: Backoff = Backoff(),
        clock: Clock | None = None,
    ):
        self.host = host
        self.port = port
        self.address = f"{host}:{port}"
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.backoff = backoff
        self.clock = clock or RealClock()
        self._buffer = FrameBuffer(framing)
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self.reconnects = 0  # connections opened after the first; tests and status pages read it
        self._connected_before = False

    # -- connection management ------------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        delays = self.backoff.delays()
        last: OSError | None = None
        for attempt in range(len(delays) + 1):
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
            except OSError as exc:
                last = exc
                log.debug("connect to %s failed (%s), attempt %d", self.address, exc, attempt + 1)
                if attempt < len(delays):
                    self.clock.sleep(delays[attempt])
                continue
            sock.settimeout(self.timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buffer.clear()
            if self._connected_before:
                self.reconnects += 1
            self._connected_before = True
            return sock
        raise ConnectionLost(
            f"cannot connect to {self.address} after {len(delays) + 1} attempts ({last}); check that the BTS "
            "Client runs in API mode and listens on that port"
        )

    def _drop(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
        self._socket = None
        self._buffer.clear()

    def resync(self) -> None:
        with self._lock:
            self._drop()

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- exchange -------------------------------------------------------------------------------------------

    def _once(self, request: bytes) -> bytes:
        if self._socket is None:
            self._socket = self._connect()
        sock = self._socket
        stale = self._buffer.discard_stale()
        if stale:
            log.warning("discarded %d stale bytes from %s before a new request", stale, self)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s <- %r", self.address, request[:300])
        sock.sendall(request)
        while True:
            frame = self._buffer.next_frame()
            if frame is not None:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s -> %d bytes %r", self.address, len(frame), frame[:300])
                return frame
            chunk = sock.recv(262144)
            if not chunk:
                raise ConnectionResetError("the peer closed the connection")
            self._buffer.feed(chunk)

    def exchange(self, request: bytes, *, idempotent: bool = True) -> bytes:
        with self._lock:
            attempts = len(self.backoff.delays()) + 1 if idempotent else 1
            for attempt in range(attempts):
                fresh = self._socket is None
                try:
                    return self._once(request)
                except TimeoutError as exc:
                    self._drop()
                    if not idempotent or attempt + 1 >= attempts:
                        raise InstrumentTimeout(
                            f"{self.address} did not reply within {self.timeout_s:g} s; the connection was closed "
                            "so that a late reply cannot be mistaken for the next one"
                        ) from exc
                except OSError as exc:
                    self._drop()
                    if not idempotent:
                        raise ConnectionLost(
                            f"the connection to {self.address} failed during a non-repeatable request ({exc}); "
                            "check the channel's state before repeating it"
                        ) from exc
                    if attempt + 1 >= attempts:
                        raise ConnectionLost(f"the connection to {self.address} keeps failing ({exc})") from exc
                    if not fresh:
                        continue  # an old connection died: reconnect at once, back off only on failed connects
                    self.clock.sleep(self.backoff.delays()[attempt])
            raise AssertionError("unreachable")

    def __str__(self) -> str:
        return self.address
