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

Two guards bound what one slow or runaway peer can cost:

* every request has a **deadline** (by default ``timeout_s``, the 30 s per command the BTS protocol allows): the
  whole reply must have arrived by then, however the peer dribbles it out. A per-read socket timeout alone lets a
  peer that sends one byte every 0.5 s hold a request for minutes; here each read waits only for what is left;
* every reply has a **size cap**, checked as bytes arrive and before anything is parsed: the framing's default,
  or a tighter one per request (:meth:`Transport.exchange_limited`) computed from what the protocol can send.
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

#: the wall clock of request deadlines (see SocketTransport._once for why it is not the injected clock)
_WALL = RealClock()
#: the most one socket read asks for
_READ_SIZE = 262144


class TransportError(DriverError):
    """The link to an instrument failed; the message names the address."""


class ConnectionLost(TransportError):
    """The peer closed the connection or the network failed, after the transport's own reconnect attempts."""


class FrameTooLarge(TransportError):
    """A reply grew past its size cap (a garbled or foreign stream, or a peer sending more than was asked for)."""


#: the default reply cap: far above any reply a request of ours can legitimately get without a cap of its own
#: (the Neware client passes a tighter, per-command cap), far below what would hurt a station's memory
DEFAULT_MAX_FRAME = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Framing:
    """How one message ends: an end marker, plus bytes that may trail it and must be skipped before the next.

    ``max_size`` caps a frame (end marker included) when a request brings no cap of its own.
    """

    end: bytes
    skip: bytes = b""
    max_size: int = DEFAULT_MAX_FRAME


#: how many anchor bytes that do not start the end marker are passed over before a plain ``find`` takes over
_ANCHOR_TRIES = 16
#: bytes that markup repeats on every line, poor anchors for finding an end marker
_COMMON = frozenset(b'<>/="\' \t\r\n0123456789.-')


def _anchor(end: bytes) -> tuple[bytes, int]:
    """The byte of ``end`` to look for first (its first one that markup does not repeat), and its index."""
    offset = next((i for i, byte in enumerate(end) if byte not in _COMMON), len(end) - 1)
    return end[offset:offset + 1], offset


class FrameBuffer:
    """Accumulates received bytes and cuts complete frames out of them (no I/O, unit-testable).

    ``limit`` is the size cap of the frame being received (the framing's ``max_size`` unless the transport sets a
    per-request cap); a frame that cannot fit is refused as soon as that is certain, before it is complete.
    """

    def __init__(self, framing: Framing):
        self.framing = framing
        self.limit = framing.max_size
        self._buffer = bytearray()
        self._searched = 0  # bytes already searched for the end marker, so long replies stay O(n)
        self._anchor = _anchor(framing.end)

    def __len__(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes | memoryview) -> None:
        self._buffer += data
        if len(self._buffer) >= self.limit:  # only then can the frame be too large: the common case costs nothing
            self._skip_leading()
            self._check(self._find_end())

    def room(self) -> int:
        """How many more bytes the current frame may take: the most a read should ask for (at least 1)."""
        return max(1, self.limit - len(self._buffer))

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

    def _find_end(self) -> int:
        """Where the end marker starts in the bytes not searched yet, or -1.

        ``find`` of a marker such as ``</bts>`` in a 200 KB page of rows costs ~0.1 ms (its ``<``, ``/`` and ``>``
        are on every row), so the marker's anchor byte (its ``b``, twice a page) is found first, by ``find`` of one
        byte (memchr), and the marker checked there; after a few misses the plain ``find`` takes over. Any
        occurrence has the anchor at its offset, so the first candidate that matches is the first occurrence.
        """
        end, buffer = self.framing.end, self._buffer
        at = max(0, self._searched - len(end) + 1)
        anchor, offset = self._anchor
        for _ in range(_ANCHOR_TRIES):
            hit = buffer.find(anchor, at + offset)
            if hit < 0:
                position = -1
                break
            if buffer.startswith(end, hit - offset):
                position = hit - offset
                break
            at = hit - offset + 1
        else:
            position = buffer.find(end, at)
        if position < 0:
            self._searched = len(buffer)
        return position

    def _check(self, position: int) -> None:
        """Refuse the frame at the buffer's head if it is, or must become, longer than ``limit``."""
        if position >= 0:
            size = position + len(self.framing.end)
            if size <= self.limit:
                return
            message = f"a reply of {size} bytes passed the cap of {self.limit} bytes for this request"
        elif len(self._buffer) >= self.limit:  # no end marker yet, so the frame will be longer than the buffer
            message = f"a reply passed the cap of {self.limit} bytes for this request without its end marker"
        else:
            return
        self.clear()
        raise FrameTooLarge(message)

    def next_frame(self) -> bytes | None:
        self._skip_leading()
        position = self._find_end()
        self._check(position)
        if position < 0:
            return None
        stop = position + len(self.framing.end)
        with memoryview(self._buffer) as view:  # one copy of a reply of up to megabytes, not two
            frame = bytes(view[:stop])
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

    def exchange_limited(self, request: bytes, *, max_reply: int, idempotent: bool = True) -> bytes:
        """:meth:`exchange` with a reply of at most ``max_reply`` bytes (end marker included), else FrameTooLarge.

        Callers that know how large a correct reply can be (a download page of N records) pass that, so that a
        runaway or hostile reply is refused while it arrives rather than parsed. This default checks after the
        fact, which suits transports handed whole replies (test fakes); :class:`SocketTransport` stops reading at
        the cap.
        """
        frame = self.exchange(request, idempotent=idempotent)
        if len(frame) > max_reply:
            self.resync()
            raise FrameTooLarge(
                f"{self.address}: a reply of {len(frame)} bytes passed the cap of {max_reply} bytes for this request"
            )
        return frame

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
    """A framed TCP client (see the module docstring for why it is not pyvisa).

    ``deadline_s`` (default ``timeout_s``) bounds one request: from sending it to the last byte of its reply.
    Every send and read waits at most for what is left of it, so a peer that trickles bytes cannot stretch a
    request. When it expires the connection is closed (a late reply can then never be read as the answer to the
    next request) and :class:`InstrumentTimeout` is raised; a read (idempotent) request is first re-sent on a new
    connection ``timeout_resends`` times (default once, as the BTS protocol allows a command that took more than
    its 30 s to be resent). A read is thus held at most ``(1 + timeout_resends) x deadline_s`` by a slow peer,
    plus the reconnect schedule.
    """

    def __init__(
        self,
        host: str,
        port: int,
        framing: Framing,
        *,
        timeout_s: float = 30.0,
        deadline_s: float | None = None,
        timeout_resends: int = 1,
        connect_timeout_s: float = 5.0,
        backoff: Backoff = Backoff(),
        clock: Clock | None = None,
        connect_hint: str = "check that the instrument's software is running and listens on that port",
    ):
        self.connect_hint = connect_hint
        """What to check when nobody answers: the driver knows what listens there, the transport does not."""
        self.host = host
        self.port = port
        self.address = f"{host}:{port}"
        self.timeout_s = timeout_s
        self.deadline_s = timeout_s if deadline_s is None else deadline_s
        self.timeout_resends = timeout_resends
        self.connect_timeout_s = connect_timeout_s
        self.backoff = backoff
        self.clock = clock or RealClock()
        self._buffer = FrameBuffer(framing)
        self._chunk = bytearray(_READ_SIZE)  # what each read fills: no new 256 KB object a read (a page is 200 KB)
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
            f"cannot connect to {self.address} after {len(delays) + 1} attempts ({last}); {self.connect_hint}"
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

    def _time_left(self, deadline: float) -> float:
        """The socket timeout for the next send or read: what is left of the deadline (TimeoutError when none)."""
        left = deadline - _WALL.now()
        if left <= 0:
            raise TimeoutError("the request's deadline passed")
        return min(self.timeout_s, left)

    def _once(self, request: bytes, max_reply: int) -> bytes:
        if self._socket is None:
            self._socket = self._connect()
        sock = self._socket
        stale = self._buffer.discard_stale()
        if stale:
            log.warning("discarded %d stale bytes from %s before a new request", stale, self)
        self._buffer.limit = max_reply
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s <- %r", self.address, request[:300])
        # The deadline is wall time (monotonic, read through RealClock), never the injected clock: it bounds how
        # long this thread blocks in the kernel's send and recv, and those wait on the wall like the socket timeout
        # does, whatever the station's clock says (a VirtualClock does not move while we block; a ScaledClock
        # would shrink the protocol's 30 s). The injected clock only times the back-off *sleeps* between connect
        # attempts: those are ours to take, and a test wants to skip them.
        deadline = _WALL.now() + self.deadline_s
        sock.settimeout(self._time_left(deadline))
        sock.sendall(request)
        while (frame := self._buffer.next_frame()) is None:
            sock.settimeout(self._time_left(deadline))
            size = sock.recv_into(self._chunk, min(_READ_SIZE, self._buffer.room()))  # never past the reply's cap
            if not size:
                raise ConnectionResetError("the peer closed the connection")
            with memoryview(self._chunk) as view:
                self._buffer.feed(view[:size])
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s -> %d bytes %r", self.address, len(frame), frame[:300])
        return frame

    def exchange(self, request: bytes, *, idempotent: bool = True) -> bytes:
        return self.exchange_limited(request, max_reply=self._buffer.framing.max_size, idempotent=idempotent)

    def exchange_limited(self, request: bytes, *, max_reply: int, idempotent: bool = True) -> bytes:
        with self._lock:
            attempts = len(self.backoff.delays()) + 1 if idempotent else 1
            timeouts = 0
            stale_retry = idempotent  # a connection that died while idle costs no attempt: the first use finds out
            attempt = -1
            while attempt + 1 < attempts:
                attempt += 1
                fresh = self._socket is None
                try:
                    return self._once(request, max_reply)
                except FrameTooLarge as exc:
                    self._drop()  # the rest of the runaway reply is still coming: it must never be read
                    raise FrameTooLarge(f"{self.address}: {exc}; the connection was closed") from None
                except TimeoutError as exc:
                    received = len(self._buffer)
                    self._drop()
                    timeouts += 1
                    if not idempotent or timeouts > self.timeout_resends or attempt + 1 >= attempts:
                        raise InstrumentTimeout(
                            f"{self.address} did not reply within {self.deadline_s:g} s (the deadline of one "
                            f"request; {received} bytes of a reply had arrived); the connection was closed so that "
                            "a late reply cannot be mistaken for the next one"
                        ) from exc
                    log.warning(
                        "%s: no complete reply within %g s (%d bytes had arrived); re-sending on a new connection",
                        self.address,
                        self.deadline_s,
                        received,
                    )
                except OSError as exc:
                    self._drop()
                    if not idempotent:
                        raise ConnectionLost(
                            f"the connection to {self.address} failed during a non-repeatable request ({exc}); "
                            "check the channel's state before repeating it"
                        ) from exc
                    if not fresh and stale_retry:
                        stale_retry = False
                        attempt -= 1  # an old connection died: reconnect at once, at no cost to the schedule
                        continue
                    if attempt + 1 >= attempts:
                        raise ConnectionLost(f"the connection to {self.address} keeps failing ({exc})") from exc
                    if not fresh:
                        continue  # reconnect at once, back off only on failed connects
                    self.clock.sleep(self.backoff.delays()[attempt])
            raise AssertionError("unreachable")

    def __str__(self) -> str:
        return self.address
