"""The framed socket transport: framing over arbitrary segments, reconnects, timeouts that cannot desynchronise."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import InstrumentTimeout
from drivers.neware.codec import REPLY_FRAMING
from drivers.transport import Backoff, ConnectionLost, FrameBuffer, FrameTooLarge, Framing, SocketTransport
from protocols.clock import VirtualClock

REPLIES = [
    b'<?xml version="1.0" encoding="UTF-8"?>\r\n<bts version="1.0">\r\n  <cmd>a_resp</cmd>\r\n</bts>',
    b'<?xml version="1.0"?><bts><cmd>b_resp</cmd><list count="0" /></bts>',
    b"<bts><cmd>c#resp</cmd>\r\n</bts>",
]
TRAILERS = [b"\n\n#\r\n", b"\r\n#\r\n", b"#\r\n", b"\n\n#\n", b""]


@given(
    st.lists(st.tuples(st.sampled_from(REPLIES), st.sampled_from(TRAILERS)), min_size=1, max_size=6),
    st.lists(st.integers(1, 40), min_size=1, max_size=50),
)
def test_frames_survive_any_segmentation_and_any_trailer(frames: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    stream = b"".join(reply + trailer for reply, trailer in frames)
    buffer = FrameBuffer(REPLY_FRAMING)
    out: list[bytes] = []
    position, k = 0, 0
    while position < len(stream):
        size = cuts[k % len(cuts)]
        buffer.feed(stream[position : position + size])
        position += size
        k += 1
        while (frame := buffer.next_frame()) is not None:
            out.append(frame)
    assert out == [reply for reply, _ in frames]
    assert buffer.discard_stale() == 0  # nothing but trailer bytes was left over


def test_a_runaway_reply_is_cut_off() -> None:
    buffer = FrameBuffer(Framing(end=b"</bts>", skip=b"\r\n#", max_size=1000))
    with pytest.raises(FrameTooLarge, match="without its end marker"):
        buffer.feed(b"<bts>" + b"x" * 2000)


class ScriptedServer:
    """Accepts connections on a free loopback port; connection n is handled by ``scripts[n]``."""

    def __init__(self, scripts: list[Callable[[socket.socket], None]]):
        self.scripts = scripts
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for script in self.scripts:
            conn, _ = self.listener.accept()
            self.connections += 1
            with conn:
                script(conn)
        self.listener.close()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"</bts>" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def reply_with(text: bytes) -> Callable[[socket.socket], None]:
    def script(conn: socket.socket) -> None:
        while request := read_request(conn):
            conn.sendall(text + b"\n\n#\r\n")
            del request

    return script


def close_after_request(conn: socket.socket) -> None:
    read_request(conn)


def half_reply(conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(REPLIES[0][:30])


def transport(port: int, **kwargs) -> SocketTransport:
    kwargs.setdefault("backoff", Backoff(attempts=3, first_s=0.5))
    return SocketTransport("127.0.0.1", port, REPLY_FRAMING, clock=VirtualClock(), **kwargs)


def test_reads_reconnect_and_repeat_after_a_dropped_or_cut_connection() -> None:
    server = ScriptedServer([close_after_request, half_reply, reply_with(REPLIES[1])])
    link = transport(server.port, timeout_s=5)
    assert link.exchange(b"<bts><cmd>b</cmd></bts>#\r\n") == REPLIES[1]
    assert (link.reconnects, server.connections) == (2, 3)
    link.close()


def test_writes_are_not_repeated_after_a_lost_connection() -> None:
    server = ScriptedServer([close_after_request])
    link = transport(server.port, timeout_s=5)
    with pytest.raises(ConnectionLost, match=r"non-repeatable request .* check the channel's state"):
        link.exchange(b"<bts><cmd>start</cmd></bts>#\r\n", idempotent=False)
    assert server.connections == 1


def test_a_timeout_closes_the_connection_so_a_late_reply_is_never_read() -> None:
    release = threading.Event()

    def late(conn: socket.socket) -> None:
        read_request(conn)
        release.wait(5)
        with contextlib.suppress(OSError):  # too late: the client has closed this connection
            conn.sendall(REPLIES[0] + b"\n\n#\r\n")

    server = ScriptedServer([late, reply_with(REPLIES[2])])
    link = transport(server.port, timeout_s=0.2)
    with pytest.raises(InstrumentTimeout, match=r"did not reply within 0\.2 s; the connection was closed"):
        link.exchange(b"<bts><cmd>a</cmd></bts>#\r\n", idempotent=False)
    release.set()
    assert link.exchange(b"<bts><cmd>c</cmd></bts>#\r\n") == REPLIES[2]  # the answer to c, not the late a
    assert link.reconnects == 1


def test_connect_failures_back_off_on_the_injected_clock() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    clock = VirtualClock()
    link = SocketTransport("127.0.0.1", port, REPLY_FRAMING, clock=clock, backoff=Backoff(attempts=3, first_s=0.5))
    with pytest.raises(ConnectionLost, match=r"cannot connect to 127\.0\.0\.1:\d+ after 3 attempts .* API mode"):
        link.exchange(b"<bts><cmd>x</cmd></bts>")
    # three connect attempts with 0.5 s and 1 s between them, timed by the injected clock (no wall sleep)
    assert clock.now() == pytest.approx(1.5)
