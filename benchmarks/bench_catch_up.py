"""Budget (DESIGN section 11, issue 18): after a weekend without a station a BTS holds about 1 million new records;
the station's download-and-decode path and the store's append of them run at 500 000 records/s or more.

Run: python benchmarks/bench_catch_up.py [--cycles 1500] [--repeat 3]

How the server's own encoding is kept out: the simulated BTS runs P3 (the library's pre-deposited NCM622 cell with
an anode CE of 99.95 %) to the end on a virtual clock, and every ``download`` page of 1000 records it sends is
recorded once (untimed). The timed part replays those pre-encoded pages from a loopback TCP server that only reads
each request and writes the next recorded reply, so what is timed is what the station does in a catch-up:

* download and decode: ``NewareChannel.read_block`` page after page (request built and sent, the reply read off the
  socket and framed by the transport, the page checked and decoded into columns, records assembled in the
  station's convention), plus the manager's record-number check;
* store append: ``Store.append_blocks`` of those pages into SQLite, 200 pages (the manager's ``ROUND_RECORDS``)
  per transaction, as a catch-up commits them.

The decode part is also shown alone (``parse_download_frame`` on the recorded frames in memory), and so is what
the server took to compute and encode them while they were recorded (for scale; it is not in the budget).
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.base import ChannelRanges, ChannelState  # noqa: E402
from drivers.neware.address import ChannelAddress  # noqa: E402
from drivers.neware.channel import NewareChannel, open_client  # noqa: E402
from drivers.neware.pages import PageRequest, parse_download_frame  # noqa: E402
from protocols.cells import load_cell  # noqa: E402
from protocols.clock import VirtualClock  # noqa: E402
from protocols.loader import load_protocol  # noqa: E402
from simulators.cells.registry import build_model  # noqa: E402
from simulators.neware.server import BtsSimulator  # noqa: E402
from station.runs import ROUND_RECORDS, RunManager  # noqa: E402
from station.store import Store  # noqa: E402

PAGE = 1000
RANGES = ChannelRanges(voltage_min=-1.0, voltage_max=5.0, current_max=0.02)
TRAILER = b"\n\n#\r\n"
DONE = (ChannelState.FINISHED, ChannelState.STOPPED, ChannelState.PROTECTED)


def record_pages(cycles: int, anode_ce: float, step_dir: Path) -> tuple[NewareChannel, list[bytes], float]:
    """Run P3 on the simulated BTS to its end and record every download reply; the channel (its test id, step
    map and program) is kept for the replay. Returns the channel, the frames and the seconds the recording took."""
    library_cell = load_cell("predeposited-ncm622")
    cell = library_cell.model_copy(update={"model_params": {**library_cell.model_params, "anode_ce": anode_ce}})
    program = load_protocol("p3-full-cell-cycling", {"cycles": str(cycles)}).bind(cell)
    clock = VirtualClock()

    def factory(key: object):  # type: ignore[no-untyped-def]
        return build_model(cell.model_type, cell.model_params, area=cell.area, capacity=cell.capacity,
                           thickness=cell.thickness, seed=7)

    frames: list[bytes] = []
    with BtsSimulator(devices=1, channels=1, clock=clock, model_factory=factory) as sim:
        client = open_client("127.0.0.1", sim.port, clock=clock, timeout_s=600.0)
        channel = NewareChannel(client, ChannelAddress.parse("21-1-1"), RANGES, step_dir=step_dir)
        channel.start(program, "catch-up")
        clock.advance(3600.0 * 24 * 365 * 3)  # far past the program's end: every record is on the BTS
        transport = client.transport
        plain = transport.exchange_limited

        def recording(request: bytes, **kwargs: object) -> bytes:
            reply = plain(request, **kwargs)  # type: ignore[arg-type]
            if b"<cmd>download</cmd>" in request and b"<data " in reply:  # the pages that hold records
                frames.append(bytes(reply))
            return reply

        transport.exchange_limited = recording  # type: ignore[method-assign]
        started, after = time.perf_counter(), 0
        while True:  # the BTS computes as it is asked; read until it reports the test ended and nothing is left
            block = channel.read_block(after, PAGE)
            if len(block):
                after = int(block["seq"][-1])
                continue
            status = channel.status()
            if status.state in DONE and (status.last_seq or 0) <= after:
                break
        recorded = time.perf_counter() - started
        transport.exchange_limited = plain  # type: ignore[method-assign]
        client.transport.close()
    return channel, frames, recorded


class Replay:
    """A loopback server that answers each request (read up to the request terminator) with the next recorded
    frame and the BTS's trailer: a BTS whose pages are already encoded."""

    def __init__(self, frames: list[bytes]):
        self.frames = frames
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            pending = b""
            for frame in self.frames:
                while TRAILER not in pending:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    pending += chunk
                pending = pending[pending.index(TRAILER) + len(TRAILER):]
                conn.sendall(frame + TRAILER)

    def close(self) -> None:
        self.listener.close()


def replay(channel: NewareChannel, frames: list[bytes]) -> tuple[list, float]:
    """Download and decode every page again, from the replay server: the timed catch-up read."""
    server = Replay(frames)
    client = open_client("127.0.0.1", server.port, timeout_s=60.0)
    channel.client = client
    channel._cursor = None  # a fresh read from the first record, as the recording did
    check = RunManager._check_numbers
    pages, after = [], 0
    started = time.perf_counter()
    for _ in frames:
        block = channel.read_block(after, PAGE)
        check(None, None, after, block["seq"], None)  # type: ignore[arg-type]
        pages.append(block)
        after = int(block["seq"][-1])
    elapsed = time.perf_counter() - started
    client.transport.close()
    server.close()
    return pages, elapsed


def store_append(pages: list, data_dir: str) -> float:
    """Append the pages to a fresh SQLite store, ROUND_RECORDS per transaction as a catch-up commits."""
    store = Store(data_dir)
    loaded, cell = load_protocol("p3-full-cell-cycling"), load_cell("predeposited-ncm622")
    run_id = "20261130-000000-c47c40"
    store.create_run(run_id=run_id, at=0.0, channel="sim-neware/21-1-1", instrument={"kind": "neware"},
                     protocol_name=loaded.name, protocol_file=None, protocol_source=loaded.source.text,
                     parameters=loaded.resolved_parameters(), program=loaded.bind(cell).to_json(),
                     cell=cell.model_dump(mode="json"), dry_run=True)
    per_commit = max(1, ROUND_RECORDS // PAGE)
    started = time.perf_counter()
    for at in range(0, len(pages), per_commit):
        store.append_blocks({run_id: pages[at:at + per_commit]})
    elapsed = time.perf_counter() - started
    assert store.record_count(run_id) == sum(len(p) for p in pages)
    store.close()
    return elapsed


def decode_only(frames: list[bytes]) -> float:
    started, startpos = time.perf_counter(), 1
    for frame in frames:
        page = parse_download_frame(frame, "download", PageRequest("21-1-1", startpos, PAGE))
        startpos += len(page)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1500, help="P3 cycles: 1500 give about 1 million records")
    parser.add_argument("--anode-ce", type=float, default=0.9995)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        channel, frames, recorded = record_pages(args.cycles, args.anode_ce, Path(tmp))
        records = sum(frame.count(b"<data ") for frame in frames)
        print(f"{records} records in {len(frames)} pages of {PAGE}, {sum(map(len, frames)) / 1e6:.0f} MB of XML; "
              f"the simulated BTS took {recorded:.2f} s to compute, encode and send them (not in the budget)")
        print(f"{'run':>4} {'decode only':>12} {'download+decode':>16} {'store append':>13} {'both':>8}  records/s "
              f"(decode only / download+decode / store / both)")
        best = 0.0
        for k in range(args.repeat):
            decode = decode_only(frames)
            pages, download = replay(channel, frames)
            append = store_append(pages, str(Path(tmp) / f"store-{k}"))
            both = download + append
            best = max(best, records / both)
            print(f"{k + 1:4d} {decode:11.2f}s {download:15.2f}s {append:12.2f}s {both:7.2f}s  "
                  f"{records / decode:,.0f} / {records / download:,.0f} / {records / append:,.0f} / "
                  f"{records / both:,.0f}")
        print(f"budget: at least 500,000 records/s through download+decode and store append: best {best:,.0f} "
              f"records/s, {'PASS' if best >= 500_000 else 'FAIL'}")


if __name__ == "__main__":
    main()
