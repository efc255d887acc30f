"""A simulated BTS Client in API mode: an asyncio TCP server in front of the I/O-free API.

Usable two ways: ``BtsSimulator(...).start()`` runs it in a background thread of the caller's process (tests,
dry runs sharing a VirtualClock with the station), and :func:`serve` runs it in the foreground until
interrupted (``station sim neware``). It binds to loopback unless told otherwise.

What the BTS does with a request is :class:`simulators.neware.api.BtsApi` (request bytes in, reply bytes out, on
injected clocks; its handlers in :mod:`simulators.neware.commands`). This module is only what happens on the wire
and around it: connections and request framing, the faults injected on the wire (:mod:`simulators.neware.faults`:
delays, drops, garbled, cut and split replies), the threads that read step files, the catch-up worker, and the
server's lifecycle.

Concurrency and scale. Requests are answered one at a time on the event loop, but no lock of the server is held
while cell models run: each channel has its own lock, under which its engine and model run, whoever advances it.
A request advances the channels it names only as far as its budget allows (``request_budget_s`` of wall time; a
channel beyond it answers with its state as far as it has been computed, like a real BTS whose live values and
uploads trail the channel), and the catch-up worker (:mod:`simulators.neware.catchup`) computes the rest in the
background. So the first ``inquire`` after 2048 channels change steps at once answers in well under a second,
and every record is still exactly the model's, only released later. Under an as-fast-as-possible clock there is
no budget and no worker (the defaults), so dry runs and tests compute everything in the request, deterministically.

A ``start`` names files by path, and a client may name anything. Over the socket the files are read, parsed and
admitted (``stepfile.load_step_file``: regular files only, non-blocking open, size, element, step, range and
loop limits, executable jump conditions) in a small thread pool of their own, off the event loop; a refusal
answers ``false`` for that channel only and is logged with the channel, the path and the reason. So a FIFO,
/dev/zero, an entity bomb, a 1e12-pass loop or an expression condition costs one refused channel, never the
server. The channel keeps the file's bytes as read (``ChannelEngine.step_file``): nothing rereads the disk later.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from protocols.clock import Clock, RealClock, ScaledClock
from simulators.cells.base import CellModel
from simulators.neware import wire
from simulators.neware.api import DEFAULT_EPOCH, FIRST_DEVID, AuxChannels, BtsApi, default_model_factory
from simulators.neware.catchup import CatchUp
from simulators.neware.commands import DEVTYPE, Key
from simulators.neware.engine import ChannelEngine
from simulators.neware.faults import Fault, FaultPlan
from simulators.neware.stepfile import DeviceRanges, NativePlan, load_step_file
from simulators.neware.stepping import Measurement

log = logging.getLogger(__name__)

__all__ = ["DEVTYPE", "FIRST_DEVID", "BtsSimulator", "Key", "make_clock", "serve"]

#: threads that read step files: a file on a hung network share holds one, never the event loop
STEP_FILE_READERS = 2
#: the wall time one request may spend computing channels when the clock runs in real or scaled time: small
#: against the 1 s answer budget (DESIGN 11) and the client's 30 s timeout; the catch-up worker does the rest
DEFAULT_REQUEST_BUDGET_S = 0.1
_AUTO: Any = object()


def _runs_in_real_time(clock: Clock) -> bool:
    """True for clocks whose time passes on its own (real, scaled); False for as-fast-as-possible ones."""
    return clock.real_seconds(1.0) > 0.0


class BtsSimulator:
    """A simulated BTS Client: the API (:attr:`api`) served over TCP (module notes).

    The keywords configure the API (:class:`~simulators.neware.api.BtsApi`) and the server. ``request_budget_s``:
    wall seconds a request may spend computing channels (None: no limit; default: none under an as-fast-as-possible
    clock, :data:`DEFAULT_REQUEST_BUDGET_S` otherwise). ``catch_up``: run the catch-up worker (default: when the
    clock passes in real time). ``wire_clock``: the clock of link faults (a delayed reply) and request budgets,
    the wall by default, whatever clock the cells run on: the client's socket timeouts count in it.
    ``aux_temperature``: the channels with an auxiliary thermocouple (keys ``(devid, subdevid, chlid)``, channel ids
    ``"21-1-1"`` or a predicate on the key), whose records carry ``T1`` (:class:`~simulators.neware.api.BtsApi`).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        devices: int = 1,
        subdevices: int = 1,
        channels: int = 8,
        cell: str = "ncm622-li",
        cell_options: dict[str, Any] | None = None,
        model_factory: Callable[[Key], CellModel] | None = None,
        clock: Clock | None = None,
        wire_clock: Clock | None = None,
        epoch: dt.datetime = DEFAULT_EPOCH,
        live_refresh_s: float = 5.0,
        server_ip: str = "127.0.0.1",
        ranges: DeviceRanges | None = None,
        download_cycle_base: int = 0,
        measurement: Measurement | None = None,
        request_budget_s: float | None = _AUTO,
        catch_up: bool | None = None,
        aux_temperature: AuxChannels = None,
    ):
        self.host = host
        self.port = port
        self.clock = clock or RealClock()
        self.wire_clock = wire_clock or RealClock()
        real_time = _runs_in_real_time(self.clock)
        budget = (DEFAULT_REQUEST_BUDGET_S if real_time else None) if request_budget_s is _AUTO else request_budget_s
        self.api = BtsApi(
            devices=devices, subdevices=subdevices, channels=channels,
            model_factory=model_factory or default_model_factory(cell, cell_options or {}),
            clock=self.clock, budget_clock=self.wire_clock, epoch=epoch, live_refresh_s=live_refresh_s,
            server_ip=server_ip, ranges=ranges, download_cycle_base=download_cycle_base, measurement=measurement,
            request_budget_s=budget, read_step_file=self._read_step_file, aux_temperature=aux_temperature,
        )  # fmt: skip
        self.api.serving = self._serving
        self.api.on_change = self._woken
        self._catch_up_enabled = real_time if catch_up is None else catch_up
        self._prebuild_cells = model_factory is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._readers: ThreadPoolExecutor | None = None
        self._worker: CatchUp | None = None

    # -- the API, as callers of the simulator knew it -------------------------------------------------------

    @property
    def channels(self) -> dict[Key, ChannelEngine]:
        return self.api.channels

    @property
    def faults(self) -> FaultPlan:
        return self.api.faults

    @property
    def last_start_errors(self) -> dict[str, str]:
        return self.api.last_start_errors

    @property
    def ranges(self) -> DeviceRanges:
        return self.api.ranges

    @property
    def server_ip(self) -> str:
        return self.api.server_ip

    @property
    def aux_channels(self) -> frozenset[Key]:
        """The channels with an auxiliary thermocouple (``aux_temperature``), whose records carry ``T1``."""
        return self.api.aux_channels

    @property
    def download_cycle_base(self) -> int:
        return self.api.download_cycle_base

    @property
    def request_budget_s(self) -> float | None:
        return self.api.request_budget_s

    def channel(self, channel_id: str) -> ChannelEngine:
        return self.api.channel(channel_id)

    def step_file(self, channel_id: str) -> bytes:
        """The step file the channel's test runs, as read at its ``start`` (the file on disk may differ now)."""
        return self.api.step_file(channel_id)

    def insert_cell(self, channel_id: str, model: CellModel) -> None:
        self.api.insert_cell(channel_id, model)

    def trip(self, channel_id: str, reason: str = "injected protection") -> bool:
        return self.api.trip(channel_id, reason)

    def build_cells(self) -> None:
        """Build every channel's cell now (~0.3 ms each), so that no request builds thousands of them.

        ``run_async`` does it before it listens when the cells come from the registry (``cell=``): the first
        ``inquire`` of 2048 idle channels then reads their voltages without building 2048 models inline. A custom
        ``model_factory`` may depend on what its owner sets later (the station places each run's cell when the run
        starts), so its cells are built when first needed, as before.
        """
        self.api.build_cells()

    def handle(self, request: bytes) -> tuple[str, bytes]:
        """Answer one framed request synchronously, without the wire (a start reads its files inline)."""
        return self.api.handle(request)

    def inject(self, fault: Fault) -> Fault:
        """Arm a fault on the wire (:mod:`simulators.neware.faults`)."""
        return self.faults.add(fault)

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> BtsSimulator:
        """Serve in a background thread; returns once the port is bound (``self.port`` is then the real one)."""
        self._thread = threading.Thread(target=self._thread_main, name="bts-simulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def _thread_main(self) -> None:
        try:
            asyncio.run(self.run_async(on_listening=self._ready.set))
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._startup_error = exc
            self._ready.set()

    async def run_async(self, on_listening: Callable[[], None] | None = None) -> None:
        """Serve until :meth:`stop` is called; ``on_listening`` is called once the port is bound."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._readers = ThreadPoolExecutor(STEP_FILE_READERS, thread_name_prefix="bts-step-files")
        if self._prebuild_cells:
            await self._loop.run_in_executor(self._readers, self.api.build_cells)
        if self._catch_up_enabled:
            self._worker = CatchUp(self.api.channels.values(), self.clock).start()
        try:
            await self._serve(on_listening)
        finally:
            self._readers.shutdown(wait=False, cancel_futures=True)
            if self._worker is not None:
                self._worker.stop()
                self._worker = None

    async def _serve(self, on_listening: Callable[[], None] | None) -> None:
        assert self._stopping is not None
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("simulated BTS listening on %s:%d", self.host, self.port)
        if on_listening is not None:
            on_listening()
        async with self._server:
            await self._stopping.wait()
            for writer in list(self._writers):
                writer.close()
            tasks = [t for t in self._tasks if not t.done()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> BtsSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the catch-up worker, as the API's hooks ------------------------------------------------------------

    def _serving(self) -> contextlib.AbstractContextManager[None]:
        worker = self._worker
        return worker.serving() if worker is not None else contextlib.nullcontext()

    def _woken(self) -> None:
        if self._worker is not None:
            self._worker.wake()

    def _read_step_file(self, path: str) -> NativePlan:
        """Blocking file I/O and parsing, run in the reader threads (``load_step_file``, looked up when called)."""
        return load_step_file(path, self.api.ranges)

    # -- connection handling --------------------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        framer = wire.RequestFramer()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                framer.feed(data)
                while (request := framer.next_request()) is not None:
                    # the worker computes between requests, not while one is being read, answered or sent
                    with self._serving():
                        command, answer = await self._answer(request)
                        fault = self.faults.take(command)
                        sent = await self._send(writer, answer, fault)
                    if not sent:
                        return
        except (ConnectionError, wire.RequestError) as exc:
            log.debug("client connection ended: %s", exc)
        except asyncio.CancelledError:
            log.debug("client connection closed at server stop")
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, request: bytes) -> tuple[str, bytes]:
        """The API's reply to one request; a start's step files are read in the reader threads, off the loop."""
        parsed = self.api.parse(request)
        if isinstance(parsed, bytes):
            return "", parsed
        loads = None
        paths = self.api.step_files_to_read(parsed)
        if paths and self._loop is not None and self._readers is not None:
            loads = await self._loop.run_in_executor(self._readers, self.api.load_all, paths)
        return parsed.command, self.api.answer(parsed, loads)

    async def _send(self, writer: asyncio.StreamWriter, answer: bytes, fault: Fault | None) -> bool:
        """Write one reply, applying a fault; False when the connection must close."""
        if fault is not None:
            log.info("fault %s on %s", fault.kind, answer[:120])
            if fault.kind == "drop":
                return False
            if fault.kind == "delay":
                await self.wire_clock.sleep_async(fault.delay_s)
            elif fault.kind == "garble":
                middle = len(answer) // 2
                answer = answer[:middle] + b"<<\x01garbled\x02" + answer[middle:]
            elif fault.kind == "cut":
                writer.write(answer[: len(answer) // 2])
                await writer.drain()
                return False
            elif fault.kind == "split":
                for offset in range(0, len(answer), fault.segment):
                    writer.write(answer[offset : offset + fault.segment])
                    await writer.drain()
                return True
        writer.write(answer)
        await writer.drain()
        return True


def _quiet_collector() -> None:
    """Shorter pauses for a server that is its own process (``serve``), once it is set up.

    With thousands of channels the full collections of CPython's cyclic collector each stopped the server for
    ~0.1 s, several times a minute, and a request caught by two of them missed its budget. Everything built so far
    (modules, channels, cells) lives as long as the server: ``gc.freeze`` takes it out of every later collection,
    and a higher threshold makes the full collections rarer. Only for the server's own process: a simulator that
    runs inside another program (tests, dry runs) leaves that program's collector alone.
    """
    gc.collect()
    gc.freeze()
    first, second, _ = gc.get_threshold()
    gc.set_threshold(max(first, 10_000), max(second, 20), 100)
    # the event loop gives the interpreter up at every socket call; with the catch-up worker computing, getting it
    # back took up to the default 5 ms switch interval each time, tens of times per request
    sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))


def make_clock(speed: float | None) -> Clock:
    """``None`` or 1: real time; otherwise a clock ``speed`` times faster than the wall."""
    return RealClock() if speed is None or speed == 1 else ScaledClock(speed)


def serve(
    host: str = "127.0.0.1",
    port: int = 502,
    *,
    devices: int = 1,
    channels: int = 8,
    subdevices: int = 1,
    cell: str = "ncm622-li",
    cell_options: dict[str, Any] | None = None,
    speed: float | None = None,
    on_ready: Callable[[BtsSimulator], None] | None = None,
    ranges: DeviceRanges | None = None,
    measurement: Measurement | None = None,
    download_cycle_base: int = 0,
    aux_temperature: AuxChannels = None,
) -> None:
    """Serve a simulated BTS in the foreground until interrupted (Ctrl-C)."""
    simulator = BtsSimulator(
        host=host,
        port=port,
        devices=devices,
        subdevices=subdevices,
        channels=channels,
        cell=cell,
        cell_options=cell_options,
        clock=make_clock(speed),
        ranges=ranges,
        measurement=measurement,
        download_cycle_base=download_cycle_base,
        aux_temperature=aux_temperature,
    )

    def listening() -> None:
        if threading.current_thread() is threading.main_thread():  # the process is the server's own
            _quiet_collector()
        if on_ready is not None:
            on_ready(simulator)

    try:
        asyncio.run(simulator.run_async(on_listening=listening))
    except KeyboardInterrupt:
        log.info("simulated BTS stopped")
