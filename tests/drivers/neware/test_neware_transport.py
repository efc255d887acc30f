"""The framed socket transport: framing over arbitrary segments, reconnects, timeouts that cannot desynchronise."""

from __future__ import annotations

import contextlib
import socket
import threading
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import InstrumentTimeout
from drivers.neware.address import ChannelAddress
from drivers.neware.channel import open_client
from drivers.neware.client import BtsClient, download_reply_cap
from drivers.neware.codec import REPLY_FRAMING
from drivers.neware.errors import NewareProtocolError
from drivers.transport import (
    Backoff,
    ConnectionLost,
    FrameBuffer,
    FrameTooLarge,
    Framing,
    SocketTransport,
    Transport,
)
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


def test_the_default_cap_is_sane() -> None:
    assert REPLY_FRAMING.max_size <= 16 * 1024 * 1024


@pytest.mark.parametrize("trailer", [b"", b"\n\n#\r\n"])
def test_a_frame_of_exactly_the_cap_passes_and_one_byte_more_does_not(trailer: bytes) -> None:
    frame = b"<bts>" + b"x" * 89 + b"</bts>"  # 100 bytes, end marker included
    buffer = FrameBuffer(REPLY_FRAMING)
    buffer.limit = 100
    buffer.feed(frame + trailer)  # trailer bytes beyond the cap belong to no frame: they do not count
    assert buffer.next_frame() == frame
    buffer.limit = 99
    with pytest.raises(FrameTooLarge, match="a reply of 100 bytes passed the cap of 99 bytes"):
        buffer.feed(frame + trailer)


def test_a_frame_is_refused_as_soon_as_it_cannot_fit_and_reads_never_ask_past_the_cap() -> None:
    buffer = FrameBuffer(REPLY_FRAMING)
    buffer.limit = 50
    buffer.feed(b"<bts>" + b"x" * 40)
    assert buffer.room() == 5  # a transport asks the socket for no more than this
    buffer.feed(b"</bt")  # 49 bytes: not yet certain to be too large
    with pytest.raises(FrameTooLarge, match=r"cap of 50 bytes .* without its end marker"):
        buffer.feed(b"s")  # 50 bytes and no end marker yet: the frame must be longer than the cap


class WholeReplies(Transport):
    """A transport handed whole replies (like the ordered fakes): the base class checks the cap afterwards."""

    address = "whole:1"

    def __init__(self, reply: bytes):
        self.reply = reply
        self.resyncs = 0

    def exchange(self, request: bytes, *, idempotent: bool = True) -> bytes:
        return self.reply

    def resync(self) -> None:
        self.resyncs += 1


def test_transports_without_their_own_cap_check_it_after_the_fact() -> None:
    link = WholeReplies(b"<bts>" + b"x" * 100 + b"</bts>")
    assert link.exchange_limited(b"r", max_reply=111) == link.reply
    with pytest.raises(FrameTooLarge, match=r"whole:1: a reply of 111 bytes passed the cap of 110 bytes"):
        link.exchange_limited(b"r", max_reply=110)
    assert link.resyncs == 1


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
    with pytest.raises(InstrumentTimeout, match=r"did not reply within 0\.2 s .*; the connection was closed"):
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
    with pytest.raises(ConnectionLost, match=r"cannot connect to 127\.0\.0\.1:\d+ after 3 attempts .* the "
                                             r"instrument's software is running"):
        link.exchange(b"<bts><cmd>x</cmd></bts>")
    # three connect attempts with 0.5 s and 1 s between them, timed by the injected clock (no wall sleep)
    assert clock.now() == pytest.approx(1.5)


def test_the_neware_client_says_what_must_listen_there() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    client = open_client("127.0.0.1", port, clock=VirtualClock(), backoff=Backoff(attempts=1))
    with pytest.raises(ConnectionLost, match=r"cannot connect .*; check that the BTS Client runs in API mode"):
        client.transport.exchange(b"<bts><cmd>x</cmd></bts>")


class Peer:
    """A loopback server of the test's own: ``script(conn, stop)`` serves connection n; it records what it saw."""

    def __init__(self, script: Callable[[socket.socket, threading.Event], None], connections: int = 1):
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.closed = threading.Semaphore(0)  # released once per connection the client closed
        self.sent: list[int] = []
        self.thread = threading.Thread(target=self._run, args=(connections,), daemon=True)
        self.thread.start()

    def _run(self, connections: int) -> None:
        for _ in range(connections):
            conn, _ = self.listener.accept()
            with conn:
                self.script(conn, self)
        self.listener.close()

    def saw_closes(self, n: int) -> bool:
        """Whether the client closed n connections (waits for the server thread, never asserts on time)."""
        return all(self.closed.acquire(timeout=10) for _ in range(n))

    def send_until_closed(self, conn: socket.socket, chunks: Callable[[], bytes]) -> None:
        sent = 0
        try:
            while not self.stop.is_set():
                sent += conn.send(chunks())
        except OSError:  # the client closed the connection: what the test waits for
            self.closed.release()
        finally:
            self.sent.append(sent)


def trickle(conn: socket.socket, peer: Peer) -> None:
    """Read the request, then send one byte every 0.05 s, forever: a reply that never ends."""
    read_request(conn)
    stream = iter(b"<bts><cmd>x</cmd>" + b"x" * 10**6)

    def one_byte() -> bytes:
        peer.stop.wait(0.05)  # the peer's own pace, not a measurement: nothing asserts on time
        return bytes([next(stream)])

    peer.send_until_closed(conn, one_byte)


def test_a_trickling_peer_cannot_hold_a_request_past_its_deadline() -> None:
    # every read gets a byte within 0.05 s, so a per-read timeout of 0.5 s alone would wait forever
    peer = Peer(trickle)
    link = transport(peer.port, timeout_s=0.5)
    with pytest.raises(
        InstrumentTimeout, match=r"^127\.0\.0\.1:\d+ did not reply within 0\.5 s .* the connection was closed"
    ):
        link.exchange(b"<bts><cmd>start</cmd></bts>#\r\n", idempotent=False)
    assert peer.saw_closes(1)
    assert peer.sent[0] > 0  # bytes did arrive: the deadline, not a silent link, ended the request
    peer.stop.set()


def test_a_read_that_missed_its_deadline_is_resent_once_then_reported() -> None:
    peer = Peer(trickle, connections=2)
    link = transport(peer.port, timeout_s=0.2)
    with pytest.raises(InstrumentTimeout, match=r"did not reply within 0\.2 s"):
        link.exchange(b"<bts><cmd>inquire</cmd></bts>#\r\n")
    assert peer.saw_closes(2)  # each attempt's connection was closed, none kept
    assert link.reconnects == 1
    peer.stop.set()


RUNAWAY_ROW = (
    b'  <data seqid="1" stepid="1" cycleid="1" steptype="dc" testtime="0" atime="2025-12-28 22:29:05" '
    b'volt="3.6780698299408" curr="-0.000295051460852847" cap="0.00295628436449786" eng="0.0135611368830335" />\r\n'
)
RUNAWAY_CHUNK = RUNAWAY_ROW * (2**20 // len(RUNAWAY_ROW))  # ~1 MB of rows, built once
RUNAWAY_BYTES = 50 * 2**20


def runaway(conn: socket.socket, peer: Peer) -> None:
    """Answer with 50 MB of rows and no end marker (sent in ~1 MB pieces until the client hangs up)."""
    read_request(conn)
    conn.sendall(b'<?xml version="1.0"?><bts><cmd>donwload_resp</cmd><list count="1000">\r\n')
    budget = [RUNAWAY_BYTES]

    def piece() -> bytes:
        if budget[0] <= 0:
            peer.stop.wait()  # all 50 MB sent and still read: the test fails on peer.sent below
        budget[0] -= len(RUNAWAY_CHUNK)
        return RUNAWAY_CHUNK

    peer.send_until_closed(conn, piece)


def test_a_runaway_reply_is_refused_at_its_cap_while_it_arrives() -> None:
    peer = Peer(runaway)
    link = transport(peer.port, timeout_s=10)
    tracemalloc.start()
    try:
        with pytest.raises(FrameTooLarge, match=r"127\.0\.0\.1:\d+: a reply passed the cap of 1100000 bytes .* closed"):
            link.exchange_limited(b"<bts><cmd>download</cmd></bts>#\r\n", max_reply=1_100_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20  # the client held about the cap, never the 50 MB
    assert peer.saw_closes(1)
    assert peer.sent[0] < RUNAWAY_BYTES  # the client hung up long before the end (kernel buffers took the rest)


def answer(frame: bytes) -> Callable[[socket.socket, Peer], None]:
    def script(conn: socket.socket, peer: Peer) -> None:
        read_request(conn)
        conn.sendall(frame + b"\n\n#\r\n")
        if not conn.recv(1):  # the client hung up (it does after refusing a reply): nothing more was asked
            peer.closed.release()

    return script


def test_the_client_caps_a_download_reply_by_the_count_it_asked_for() -> None:
    peer = Peer(runaway, connections=3)
    bts = BtsClient(transport(peer.port, timeout_s=10))
    cap = download_reply_cap(1000)
    assert 2**20 <= cap <= 2 * 2**20  # ~1 MB: 1000 generous rows and an envelope
    with pytest.raises(FrameTooLarge, match=rf"passed the cap of {cap} bytes .* closed \(after 3 attempts\)$"):
        bts.download(ChannelAddress(21, 1, 2), testid=1, startpos=1, count=1000)
    assert peer.saw_closes(3)
    assert all(sent < RUNAWAY_BYTES for sent in peer.sent)


def test_the_client_refuses_a_well_formed_page_with_more_rows_than_asked() -> None:
    rows = "".join(
        f'<data seqid="{i}" stepid="1" cycleid="1" testtime="0" volt="3.7" curr="-0.001" cap="0" eng="0" />\r\n'
        for i in range(1, 5001)
    )
    frame = f'<bts><cmd>donwload_resp</cmd><list count="5000">\r\n{rows}</list></bts>'.encode()
    assert len(frame) < download_reply_cap(1000)  # small enough for the byte cap: the row count refuses it
    peer = Peer(answer(frame), connections=3)
    bts = BtsClient(transport(peer.port, timeout_s=10))
    with pytest.raises(NewareProtocolError, match=r"startpos 1: the page holds more than the 1000 records asked"):
        bts.download(ChannelAddress(21, 1, 2), testid=1, startpos=1, count=1000)
    assert peer.saw_closes(3)  # each refusal resynchronised (closed) the link before the retry
