"""A simulated BTS Client in API mode: an asyncio TCP server that speaks the real wire format.

Usable two ways: ``BtsSimulator(...).start()`` runs it in a background thread of the caller's process (tests,
dry runs sharing a VirtualClock with the station), and :func:`serve` runs it in the foreground until
interrupted (``station sim neware``). It binds to loopback unless told otherwise.

Channel tree (checklist item 6): server ip 127.0.0.1 port 3306 -> devid 21, 22, ... (one per device) ->
subdevid 1..S -> chlid 1..C, devtype 27. Station channel ids are ``devid-subdevid-chlid``.

Requests are handled one at a time under one lock, which is also what makes the lazy channel engines safe
when test code arms faults or trips a channel from another thread.

A ``start`` names files by path, and a client may name anything. Over the socket the files are read, parsed and
admitted (``stepfile.load_step_file``: regular files only, non-blocking open, size, element, step, range and
loop limits) in a small thread pool of their own, off the event loop, before the request takes the lock; a
refusal answers ``false`` for that channel only and is logged with the channel, the path and the reason. So a
FIFO, /dev/zero, an entity bomb or a 1e12-pass loop costs one refused channel, never the server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from xml.etree.ElementTree import Element

import numpy as np

from protocols.clock import Clock, RealClock, ScaledClock
from simulators.cells.base import CellModel
from simulators.neware import wire
from simulators.neware.engine import ChannelEngine
from simulators.neware.faults import Fault, FaultPlan
from simulators.neware.stepfile import API_STEP_NAMES, DeviceRanges, NativePlan, StepFileError, load_step_file

log = logging.getLogger(__name__)

#: one download record, formatted in C by a single % per record (the server's hot path)
_DATA_LINE = (
    '  <data seqid="%d" stepid="%d" cycleid="%d" steptype="%s" testtime="%.15G" atime="%s" volt="%.15G" '
    'curr="%.15G" cap="%.15G" eng="%.15G" />'
)

Key = tuple[int, int, int]

FIRST_DEVID = 21
DEVTYPE = 27
#: a fixed, documented wall-clock origin for ``atime`` (the simulator never reads the wall clock itself)
DEFAULT_EPOCH = dt.datetime(2025, 1, 1, 0, 0, 0)
#: the 12 mm disk of the reference workload, in m^2
DEFAULT_AREA = 1.131e-4
#: threads that read step files: a file on a hung network share holds one, never the event loop
STEP_FILE_READERS = 2

#: per path named by a start: the admitted plan, or why it was refused
Loads = dict[str, NativePlan | StepFileError]


def default_model_factory(cell: str, options: dict[str, Any]) -> Callable[[Key], CellModel]:
    """Build ``cell`` models from the simulated-cells registry, one per channel, seeded by channel."""

    def factory(key: Key) -> CellModel:
        from simulators.cells import build_model  # imported late: the registry is optional for wire-only use

        seed = options.get("seed", 0) + key[0] * 10_000 + key[1] * 100 + key[2]
        kwargs = {k: v for k, v in options.items() if k != "seed"}
        return build_model(cell, seed=seed, **kwargs)

    return factory


class BtsSimulator:
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
    ):
        self.host = host
        self.ranges = ranges or DeviceRanges()
        self.port = port
        self.clock = clock or RealClock()
        # link faults (a delayed reply) happen on the wire, in the time the client's socket timeouts count in:
        # the wall, whatever clock the cells run on
        self.wire_clock = wire_clock or RealClock()
        self.server_ip = server_ip
        self.faults = FaultPlan()
        self.last_start_errors: dict[str, str] = {}
        factory = model_factory or default_model_factory(cell, cell_options or {})
        self.channels: dict[Key, ChannelEngine] = {}
        for d in range(devices):
            for sub in range(1, subdevices + 1):
                for chl in range(1, channels + 1):
                    key = (FIRST_DEVID + d, sub, chl)
                    self.channels[key] = ChannelEngine(lambda key=key: factory(key), live_refresh_s=live_refresh_s)
        self._testid = 0
        self._lock = threading.RLock()
        self._origin = self.clock.now()
        self._atime = wire.AtimeFormatter(epoch)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._readers: ThreadPoolExecutor | None = None
        self._commands: dict[str, Callable[[Element], list[str]]] = {
            "connect": self._connect,
            "getdevinfo": self._getdevinfo,
            "getchlstatus": self._getchlstatus,
            "inquire": self._inquire,
            "start": self._start,
            "stop": lambda r: self._acks(r, "stop", lambda e, now: e.stop(now)),
            "continue": lambda r: self._acks(r, "continue", lambda e, now: e.resume(now)),
            "clearflag": lambda r: self._acks(r, "clearflag", lambda e, now: e.clearflag(now)),
            "light": lambda r: self._acks(r, "light", lambda e, now: True),
            "setpause": lambda r: self._acks(r, "setpause", lambda e, now: e.pause(now)),
            "chl_ctrl": lambda r: self._acks(r, "chl_ctrl", lambda e, now: True),
            "broadcaststop": self._broadcaststop,
            "resetalarm": self._resetalarm,
            "download": self._download,
            "inquiredf": self._inquiredf,
            "downloadStepLayer": self._step_layer,
            "downloadlog": self._downloadlog,
        }

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
            asyncio.run(self.run_async())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._startup_error = exc
            self._ready.set()

    async def run_async(self) -> None:
        """Serve until :meth:`stop` is called."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._readers = ThreadPoolExecutor(STEP_FILE_READERS, thread_name_prefix="bts-step-files")
        try:
            await self._serve()
        finally:
            self._readers.shutdown(wait=False, cancel_futures=True)

    async def _serve(self) -> None:
        assert self._stopping is not None
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("simulated BTS listening on %s:%d", self.host, self.port)
        self._ready.set()
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

    # -- test and operator hooks ----------------------------------------------------------------------------

    def channel(self, channel_id: str) -> ChannelEngine:
        devid, sub, chl = (int(x) for x in channel_id.split("-"))
        return self.channels[(devid, sub, chl)]

    def insert_cell(self, channel_id: str, model: CellModel) -> None:
        """Put a specific cell into a channel (a dry run of one cell record), as a lab puts a coin cell in a clip."""
        with self._lock:
            engine = self.channel(channel_id)
            if engine.workstatus in ("working", "pause"):
                raise RuntimeError(f"channel {channel_id} is {engine.workstatus}; stop it before changing its cell")
            engine.model = model

    def trip(self, channel_id: str, reason: str = "injected protection") -> bool:
        """Trip a channel's protection now, as an exceeded limit would."""
        with self._lock:
            return self.channel(channel_id).trip(self.clock.now(), reason)

    def inject(self, fault: Fault) -> Fault:
        return self.faults.add(fault)

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
                    command, answer = await self.handle_async(request)
                    fault = self.faults.take(command)
                    if not await self._send(writer, answer, fault):
                        return
        except (ConnectionError, wire.RequestError) as exc:
            log.debug("client connection ended: %s", exc)
        except asyncio.CancelledError:
            log.debug("client connection closed at server stop")
        finally:
            self._writers.discard(writer)
            writer.close()

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

    def handle(self, request: bytes) -> tuple[str, bytes]:
        """Answer one framed request synchronously (usable directly in tests; a start reads its files inline)."""
        parsed = self._parse(request)
        if isinstance(parsed, bytes):
            return "", parsed
        return parsed[0], self._dispatch(*parsed, None)

    async def handle_async(self, request: bytes) -> tuple[str, bytes]:
        """Answer one framed request from the event loop: a start's step files are loaded off the loop first."""
        parsed = self._parse(request)
        if isinstance(parsed, bytes):
            return "", parsed
        command, root = parsed
        loads = None
        if command == "start" and self._loop is not None and self._readers is not None:
            paths = [path for element, path in self._start_items(root) if self._key(element) in self.channels]
            loads = await self._loop.run_in_executor(self._readers, self._load_all, paths)
        return command, self._dispatch(command, root, loads)

    def _parse(self, request: bytes) -> tuple[str, Element] | bytes:
        end = request.rfind(wire.REQUEST_END)
        if end >= 0:
            request = request[: end + len(wire.REQUEST_END)]
        try:
            return wire.parse_request(request)
        except wire.RequestError as exc:
            log.info("unparseable request: %s", exc)
            return wire.reply("error", ["<result>false</result>"])

    def _dispatch(self, command: str, root: Element, loads: Loads | None) -> bytes:
        handler = self._commands.get(command)
        if handler is None:
            return wire.reply(command, ["<result>false</result>"])
        if command == "start":
            handler = functools.partial(self._start, loads=loads)
        with self._lock:
            try:
                return wire.reply(command, handler(root))
            except Exception:  # a simulator bug must not take the server down; the client sees a failed command
                log.exception("simulated BTS failed on %s", command)
                return wire.reply(command, ["<result>false</result>"])

    # -- helpers --------------------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.now()

    @staticmethod
    def _key(element: Element, channel_attr: str = "chlid") -> Key | None:
        try:
            return (int(element.get("devid", "")), int(element.get("subdevid", "")), int(element.get(channel_attr, "")))
        except ValueError:
            return None

    def _engine(self, element: Element) -> tuple[Key | None, ChannelEngine | None]:
        key = self._key(element)
        engine = self.channels.get(key) if key is not None else None
        if engine is not None:
            engine.advance(self._now())
        return key, engine

    def _list(self, root: Element, tag: str) -> list[Element]:
        container = root.find("list")
        items = [] if container is None else [e for e in container if e.tag == tag]
        return items or root.findall(tag)

    def _address_attrs(self, element: Element, *, with_ip: bool = True) -> dict[str, object]:
        keys = ("ip", "devtype", "devid", "subdevid", "chlid") if with_ip else ("devtype", "devid", "subdevid", "chlid")
        out: dict[str, object] = {k: element.get(k, "") for k in keys}
        if with_ip and not out["ip"]:
            out["ip"] = self.server_ip
        if not out["devtype"]:
            out["devtype"] = DEVTYPE
        return out

    def _extra_line(self, tag: str, text: str) -> list[str]:
        if not self.faults.extra_channel:
            return []
        devid, sub, chl = max(self.channels)
        extra = {"ip": self.server_ip, "devtype": DEVTYPE, "devid": devid, "subdevid": sub, "chlid": chl}
        return [f"  <{tag}{wire.attrs(extra)}>{text}</{tag}>"]

    # -- commands -------------------------------------------------------------------------------------------

    def _connect(self, root: Element) -> list[str]:
        return ["<result>ok</result>"]

    def _getdevinfo(self, root: Element) -> list[str]:
        lines = [f'<serverip count="1"><server ip="{self.server_ip}" port="3306" /></serverip>']
        lines.append(f'<middle count="{len(self.channels)}">')
        for devid, sub, chl in sorted(self.channels):
            a = {"ip": self.server_ip, "devtype": DEVTYPE, "devid": devid, "subdevid": sub, "Channelid": chl}
            lines.append(f"  <channel{wire.attrs(a)}>true</channel>")
        lines.append("</middle>")
        return lines

    def _getchlstatus(self, root: Element) -> list[str]:
        items = self._list(root, "status")
        lines = [f'<list count="{len(items)}">']
        for element in items:
            _, engine = self._engine(element)
            a = self._address_attrs(element)
            if self.faults.mislabel_subdevid:
                a["subdevid"] = 1
            a["reservepause"] = 1
            status = engine.workstatus if engine is not None else "false"
            lines.append(f"  <status{wire.attrs(a)}>{status}</status>")
        lines += self._extra_line("status", "finish")
        lines.append("</list>")
        return lines

    def _inquire(self, root: Element) -> list[str]:
        items = self._list(root, "inquire")
        lines = [f'<list count="{len(items)}">']
        now = self._now()
        for element in items:
            _, engine = self._engine(element)
            parts = (element.get("devtype", str(DEVTYPE)), element.get("devid"), element.get("subdevid"))
            dev = "-".join(str(p) for p in (*parts, element.get("chlid"), 0))
            if engine is None:
                lines.append(f'  <inquire dev="{wire.escape(dev)}" workstatus="false" />')
                continue
            live = engine.live(now)
            a: dict[str, object] = {"dev": dev, "cycle_id": live.cycle_id}
            if live.step_id is not None:
                a["step_id"] = live.step_id
            a.update(step_type=live.step_type, workstatus=live.workstatus)
            if element.get("barcode", "1") != "0" and engine.barcode is not None:
                a["barcode"] = engine.barcode
            a.update(
                current=wire.rounded(live.current),
                voltage=wire.rounded(live.voltage),
                capacity=wire.rounded(live.capacity),
                energy=wire.rounded(live.energy),
                totaltime=wire.rounded(live.total_time, 1),
                relativetime=wire.rounded(live.relative_time, 1),
                open_or_close=0,
                log_code=live.log_code,
            )
            lines.append(f"  <inquire{wire.attrs(a)} />")
        lines.append("</list>")
        return lines

    def _start_items(self, root: Element) -> list[tuple[Element, str]]:
        return [(element, (element.text or "").strip()) for element in self._list(root, "start")]

    def _load_all(self, paths: list[str]) -> Loads:
        """Load each distinct path once (blocking file I/O and parsing: runs in the reader threads)."""
        loads: Loads = {}
        for path in paths:
            if path not in loads:
                try:
                    loads[path] = load_step_file(path, self.ranges)
                except StepFileError as exc:
                    loads[path] = exc
        return loads

    def _plan_for(self, key: Key | None, engine: ChannelEngine | None, path: str, loads: Loads) -> NativePlan | None:
        """The plan a start element may run, or None after logging why this channel refuses it."""
        shown = path if len(path) <= 300 else path[:300] + "..."  # a client's path may be megabytes long
        if engine is None:
            log.info("start refused on channel %s: no such channel (step file %r)", key, shown)
            return None
        if engine.workstatus not in ("finish", "stop", "protect"):
            log.info("start refused on channel %s: the channel is %s (step file %r)", key, engine.workstatus, shown)
            return None
        if path not in loads:  # handle() called synchronously: read here
            loads.update(self._load_all([path]))
        loaded = loads[path]
        if isinstance(loaded, StepFileError):
            self.last_start_errors[f"{key}"] = str(loaded)
            log.warning("start refused on channel %s: step file %r: %s", key, shown, loaded)
            return None
        return loaded

    def _start(self, root: Element, loads: Loads | None = None) -> list[str]:
        now = self._now()
        loads = dict(loads or {})
        plans = []
        for element, path in self._start_items(root):
            key, engine = self._engine(element)
            plans.append((element, engine, self._plan_for(key, engine, path, loads)))
        if any(plan is not None for _, _, plan in plans):
            self._testid += 1  # one testid per batch, shared by its channels
        lines = [f'<list count="{len(plans)}">']
        for element, engine, plan in plans:
            ok = (
                engine is not None
                and plan is not None
                and engine.start(plan, element.get("barcode", ""), self._testid, now)
            )
            lines.append(f"  <start{wire.attrs(self._address_attrs(element))}>{'ok' if ok else 'false'}</start>")
        lines.append("</list>")
        return lines

    def _acks(self, root: Element, tag: str, action: Callable[[ChannelEngine, float], bool]) -> list[str]:
        items = self._list(root, tag)
        now = self._now()
        lines = [f'<list count="{len(items)}">']
        for element in items:
            _, engine = self._engine(element)
            ok = engine is not None and action(engine, now)
            lines.append(f"  <{tag}{wire.attrs(self._address_attrs(element))}>{'ok' if ok else 'false'}</{tag}>")
        lines += self._extra_line(tag, "false")
        lines.append("</list>")
        return lines

    def _device_acks(self, root: Element, tag: str, action: Callable[[ChannelEngine, float], bool]) -> list[str]:
        """Device-level commands (``<tag ip devtype devid>``): apply to every channel of the device."""
        items = self._list(root, tag)
        now = self._now()
        lines = [f'<list count="{len(items)}">']
        for element in items:
            devid = element.get("devid", "")
            engines = [e for (d, _, _), e in self.channels.items() if str(d) == devid]
            for engine in engines:
                engine.advance(now)
                action(engine, now)
            a = {"ip": element.get("ip", self.server_ip), "devtype": element.get("devtype", DEVTYPE), "devid": devid}
            lines.append(f"  <{tag}{wire.attrs(a)}>{'ok' if engines else 'false'}</{tag}>")
        lines.append("</list>")
        return lines

    def _broadcaststop(self, root: Element) -> list[str]:
        return self._device_acks(root, "stop", lambda e, now: e.stop(now))

    def _resetalarm(self, root: Element) -> list[str]:
        return self._device_acks(root, "resetalarm", lambda e, now: True)

    def _single(self, root: Element, tag: str) -> Element | None:
        element = root.find(tag)
        if element is None:
            container = root.find("list")
            element = container.find(tag) if container is not None else None
        return element

    def _test_of(self, engine: ChannelEngine | None, testid: int) -> bool:
        return engine is not None and engine.testid > 0 and testid in (0, engine.testid)

    def _download(self, root: Element) -> list[str]:
        element = self._single(root, "download")
        if element is None:
            return ['<list count="0" />']
        _, engine = self._engine(element)
        testid = int(element.get("testid", "0") or 0)
        startpos = int(element.get("startpos", "1") or 0)
        count = min(1000, max(0, int(element.get("count", "1000") or 0)))
        echo = self._address_attrs(element, with_ip=False)
        echo.update(testid=engine.testid if engine is not None and testid == 0 else testid, startpos=startpos)
        echo.update(count=count, auxid=element.get("auxid", "0"))
        lines = [f"<download{wire.attrs(echo)} />"]
        if not self._test_of(engine, testid) or count == 0 or startpos < 1:
            return [*lines, '<list count="0" />']
        assert engine is not None
        rows = engine.records.slice(startpos - 1, startpos - 1 + count)
        n = len(rows["stepid"])
        if n == 0:
            return [*lines, '<list count="0" />']
        lines.append(f'<list count="{n}">')
        lines += self._data_lines(engine, startpos, rows)
        lines.append("</list>")
        return lines

    def _data_lines(self, engine: ChannelEngine, startpos: int, rows: dict[str, Any]) -> list[str]:
        n = len(rows["stepid"])
        offset = engine.test_start - self._origin
        names = [API_STEP_NAMES.get(code, "--") for code in rows["steptype"].tolist()]
        stamps = wire.atimes(self._atime.epoch, offset + rows["test_time"])
        columns = zip(
            range(startpos, startpos + n),
            rows["stepid"].tolist(),
            rows["cycleid"].tolist(),
            names,
            np.round(rows["step_time"] * 1000, 1).tolist(),
            stamps,
            rows["volt"].tolist(),
            rows["curr"].tolist(),
            rows["cap"].tolist(),
            rows["eng"].tolist(),
            strict=True,
        )
        return [_DATA_LINE % values for values in columns]

    def _inquiredf(self, root: Element) -> list[str]:
        items = self._list(root, "chl")
        lines = [f'<list count="{len(items)}">']
        for element in items:
            _, engine = self._engine(element)
            testid = int(element.get("testid", "0") or 0)
            a = self._address_attrs(element, with_ip=False)
            if engine is None:
                lines.append(f"  <chl{wire.attrs({**a, 'testid': testid, 'count': 0})}>false</chl>")
                continue
            complete = engine.workstatus in ("finish", "stop", "protect") and self._test_of(engine, testid)
            count = engine.last_seqid if self._test_of(engine, testid) else 0
            a.update(testid=engine.testid if testid == 0 else testid, count=count)
            lines.append(f"  <chl{wire.attrs(a)}>{'true' if complete else 'false'}</chl>")
        lines.append("</list>")
        return lines

    def _step_layer(self, root: Element) -> list[str]:
        element = self._single(root, "downloadStepLayer")
        if element is None:
            return ['<list count="0" />']
        _, engine = self._engine(element)
        testid = int(element.get("testid", "0") or 0)
        echo = self._address_attrs(element, with_ip=False)
        echo["testid"] = engine.testid if engine is not None and testid == 0 else testid
        lines = [f"<downloadStepLayer{wire.attrs(echo)} />"]
        if not self._test_of(engine, testid) or engine is None or not engine.step_rows:
            return [*lines, '<list count="0" />']
        offset = engine.test_start - self._origin
        num = wire.dotnet
        lines.append(f'<list count="{len(engine.step_rows)}">')
        for r in engine.step_rows:
            lines.append(
                f'  <data startseqid="{r.startseqid}" endseqid="{r.endseqid}" stepindex="{r.stepindex}" '
                f'stepid="{r.stepid}" cycleid="{r.cycleid}" steptype="{r.steptype}" '
                f'steptime="{num(round(r.steptime * 1000, 1))}" endatime="{self._atime(offset + r.end_test_time)}" '
                f'startvolt="{num(r.startvolt)}" endvolt="{num(r.endvolt)}" startcurr="{num(r.startcurr)}" '
                f'endcurr="{num(r.endcurr)}" cap="{num(r.cap)}" eng="{num(r.eng)}" dcir="0" />'
            )
        lines.append("</list>")
        return lines

    def _downloadlog(self, root: Element) -> list[str]:
        element = self._single(root, "download")
        if element is None:
            return ['<list count="0" />']
        _, engine = self._engine(element)
        testid = int(element.get("testid", "0") or 0)
        echo = self._address_attrs(element, with_ip=False)
        echo.update(testid=engine.testid if engine is not None and testid == 0 else testid, log_lever="0")
        lines = [f"<download{wire.attrs(echo)} />"]
        if not self._test_of(engine, testid) or engine is None or not engine.log:
            return [*lines, '<list count="0" />']
        offset = engine.test_start - self._origin
        entries = engine.log[:5000]
        lines.append(f'<list count="{len(entries)}">')
        for seqid, code, test_time in entries:
            lines.append(f'  <data seqid="{seqid}" log_code="{code}" atime="{self._atime(offset + test_time)}" />')
        lines.append("</list>")
        return lines


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
    )

    async def main() -> None:
        task = asyncio.create_task(simulator.run_async())
        while not simulator._ready.is_set() and not task.done():
            await asyncio.sleep(0)
        if on_ready is not None:
            on_ready(simulator)
        await task

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        log.info("simulated BTS stopped")
