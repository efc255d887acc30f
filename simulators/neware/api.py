"""The simulated BTS Client's API without I/O: request bytes in, reply bytes out, on injected clocks.

:class:`BtsApi` is everything the BTS Client does with a request once it has arrived: parse it, find the channels
it names, advance them to the clock's now (within the request's budget), apply the command (handlers in
:mod:`simulators.neware.commands`) and write the reply text. It owns no socket, no thread and no event loop, and it
reads no clock but the two it is given: ``clock`` (simulated time, which the channels run on) and ``budget_clock``
(the wall time a request may spend computing channels; :class:`~simulators.neware.engine.Budget`). The one
outside thing it touches is a step file named by ``start``, and only through ``read_step_file``, which the caller
injects (the server runs it in reader threads, off its event loop, and hands the result to :meth:`answer`).

The TCP server, its fault injection on the wire and its catch-up worker are in :mod:`simulators.neware.server`;
the server tells the API about its worker through two hooks, :attr:`BtsApi.serving` (requests come first: the
worker starts no new channel while one is answered) and :attr:`BtsApi.on_change` (channels changed course: wake
the worker).

Channel tree (checklist item 6): server ip 127.0.0.1 port 3306 -> devid 21, 22, ... (one per device) ->
subdevid 1..S -> chlid 1..C, devtype 27. Station channel ids are ``devid-subdevid-chlid``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element

from protocols.clock import Clock, RealClock
from simulators.cells.base import CellModel
from simulators.neware import wire
from simulators.neware.commands import BtsCommands, Key, Loads
from simulators.neware.engine import Budget, ChannelEngine
from simulators.neware.faults import FaultPlan
from simulators.neware.stepfile import DeviceRanges, NativePlan, StepFileError, load_step_file
from simulators.neware.stepping import Measurement

#: the API logs as the server it belongs to: operators filter on one logger name for the simulated BTS
log = logging.getLogger("simulators.neware.server")

FIRST_DEVID = 21
#: a fixed, documented wall-clock origin for ``atime`` (the simulator never reads the wall clock itself)
DEFAULT_EPOCH = dt.datetime(2025, 1, 1, 0, 0, 0)

#: which channels have an auxiliary thermocouple: their keys ``(devid, subdevid, chlid)`` or station channel ids
#: ``"devid-subdevid-chlid"``, or a predicate on the key; None: none has one
AuxChannels = Iterable[Key | str] | Callable[[Key], bool] | None


def aux_channel_keys(aux: AuxChannels, channels: Iterable[Key]) -> frozenset[Key]:
    """The keys of the channels ``aux`` names (see :data:`AuxChannels`); a channel the simulator does not have is a
    mistake in the caller's configuration, refused with the channels it has."""
    keys = list(channels)
    if aux is None:
        return frozenset()
    if callable(aux):
        return frozenset(key for key in keys if aux(key))
    if isinstance(aux, str) or (isinstance(aux, tuple) and len(aux) == 3 and all(isinstance(x, int) for x in aux)):
        aux = [aux]  # one channel named alone, not a collection of them
    chosen = set()
    for item in aux:
        key = _aux_key(item)
        if key not in keys:
            first, last = "-".join(map(str, keys[0])), "-".join(map(str, keys[-1]))
            raise ValueError(f"aux_temperature names channel {item!r}, which this simulated BTS does not have "
                             f"(its channels are {first} .. {last}); name one of those")
        chosen.add(key)
    return frozenset(chosen)


def _aux_key(item: Key | str) -> Key | None:
    try:
        parts = item.split("-") if isinstance(item, str) else list(item)
        devid, subdevid, chlid = (int(part) for part in parts)
    except (TypeError, ValueError):
        return None
    return (devid, subdevid, chlid)


def default_model_factory(cell: str, options: dict[str, Any]) -> Callable[[Key], CellModel]:
    """Build ``cell`` models from the simulated-cells registry, one per channel, seeded by channel."""

    def factory(key: Key) -> CellModel:
        from simulators.cells import build_model  # imported late: the registry is optional for wire-only use

        seed = options.get("seed", 0) + key[0] * 10_000 + key[1] * 100 + key[2]
        kwargs = {k: v for k, v in options.items() if k != "seed"}
        return build_model(cell, seed=seed, **kwargs)

    return factory


@dataclass(frozen=True, slots=True)
class Parsed:
    """A request that parsed: its command and its ``<bts>`` element."""

    command: str
    root: Element


class BtsApi(BtsCommands):
    """The simulated BTS Client's API (module notes).

    ``download_cycle_base``: the number ``download`` gives the first cycle (0: the field capture of BTS Client
    2025.11.24; 1: the same numbering as ``downloadStepLayer`` and ``inquire``). ``measurement``: noise and start
    transient of the records (none by default). ``request_budget_s``: seconds of ``budget_clock`` a request may
    spend computing channels (``None``: no limit, which keeps as-fast-as-possible runs deterministic).
    ``aux_temperature``: the channels with an auxiliary thermocouple (:data:`AuxChannels`), whose ``download`` rows
    and ``inquire`` elements carry ``T1``, the cell model's temperature in degC (:mod:`simulators.neware.commands`).
    """

    def __init__(
        self,
        *,
        devices: int = 1,
        subdevices: int = 1,
        channels: int = 8,
        model_factory: Callable[[Key], CellModel],
        clock: Clock,
        budget_clock: Clock | None = None,
        epoch: dt.datetime = DEFAULT_EPOCH,
        live_refresh_s: float = 5.0,
        server_ip: str = "127.0.0.1",
        ranges: DeviceRanges | None = None,
        download_cycle_base: int = 0,
        measurement: Measurement | None = None,
        request_budget_s: float | None = None,
        faults: FaultPlan | None = None,
        read_step_file: Callable[[str], NativePlan] | None = None,
        aux_temperature: AuxChannels = None,
    ):
        if download_cycle_base not in (0, 1):
            raise ValueError(f"download_cycle_base must be 0 or 1, found {download_cycle_base!r}")
        self.clock = clock
        self.budget_clock = budget_clock or RealClock()
        self.ranges = ranges or DeviceRanges()
        self.server_ip = server_ip
        self.download_cycle_base = download_cycle_base
        self.request_budget_s = request_budget_s
        self.faults = faults or FaultPlan()
        self.last_start_errors: dict[str, str] = {}
        self.read_step_file = read_step_file or (lambda path: load_step_file(path, self.ranges))
        #: hooks for the server's catch-up worker (module notes)
        self.serving: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
        self.on_change: Callable[[], None] = lambda: None
        self.channels: dict[Key, ChannelEngine] = {}
        for d in range(devices):
            for sub in range(1, subdevices + 1):
                for chl in range(1, channels + 1):
                    key = (FIRST_DEVID + d, sub, chl)
                    self.channels[key] = ChannelEngine(
                        lambda key=key: model_factory(key),
                        live_refresh_s=live_refresh_s,
                        measurement=measurement,
                        noise_key=key,
                    )
        self.aux_channels = aux_channel_keys(aux_temperature, self.channels)
        self._testid = 0
        self._lock = threading.RLock()  # the testid counter and last_start_errors; never held while cells run
        self._origin = self.clock.now()
        self._atime = wire.AtimeFormatter(epoch)
        self._commands = self.command_table()

    def _woken(self) -> None:
        self.on_change()

    # -- test and operator hooks ----------------------------------------------------------------------------

    def channel(self, channel_id: str) -> ChannelEngine:
        devid, sub, chl = (int(x) for x in channel_id.split("-"))
        return self.channels[(devid, sub, chl)]

    def step_file(self, channel_id: str) -> bytes:
        """The step file the channel's test runs, as read at its ``start`` (the file on disk may differ now)."""
        engine = self.channel(channel_id)
        with engine.lock:
            return engine.step_file

    def insert_cell(self, channel_id: str, model: CellModel) -> None:
        """Put a specific cell into a channel (a dry run of one cell record), as a lab puts a coin cell in a clip."""
        engine = self.channel(channel_id)
        with engine.lock:
            if engine.status in ("working", "pause"):
                raise RuntimeError(f"channel {channel_id} is {engine.status}; stop it before changing its cell")
            engine.model = model

    def trip(self, channel_id: str, reason: str = "injected protection") -> bool:
        """Trip a channel's protection now, as an exceeded limit would."""
        engine = self.channel(channel_id)
        with engine.lock:
            return engine.trip(self.clock.now(), reason)

    def build_cells(self) -> None:
        """Build every channel's cell now (~0.3 ms each), so that no request builds thousands of them."""
        for engine in self.channels.values():
            with engine.lock:
                try:
                    engine.ensure_cell()
                except Exception as exc:  # a cell that cannot be built is reported by the channel that needs it
                    log.debug("cell model not built ahead: %s", exc)

    # -- requests -------------------------------------------------------------------------------------------

    def load_all(self, paths: list[str]) -> Loads:
        """Read, parse and admit each distinct path once (``read_step_file``: blocking file I/O)."""
        loads: Loads = {}
        for path in paths:
            if path not in loads:
                try:
                    loads[path] = self.read_step_file(path)
                except StepFileError as exc:
                    loads[path] = exc
        return loads

    def parse(self, request: bytes) -> Parsed | bytes:
        """The request's command and element, or the reply to a request that does not parse."""
        end = request.rfind(wire.REQUEST_END)
        if end >= 0:
            request = request[: end + len(wire.REQUEST_END)]
        try:
            command, root = wire.parse_request_cached(request)  # the element is shared: handlers only read it
        except wire.RequestError as exc:
            log.info("unparseable request: %s", exc)
            return wire.reply("error", ["<result>false</result>"])
        return Parsed(command, root)

    def step_files_to_read(self, parsed: Parsed) -> list[str]:
        """The step files a ``start`` names for channels that exist (to be read before :meth:`answer`)."""
        if parsed.command != "start":
            return []
        return [path for element, path in self._start_items(parsed.root) if self._key(element) in self.channels]

    def answer(self, parsed: Parsed, loads: Loads | None = None) -> bytes:
        """The reply to a parsed request; a ``start`` reads the files ``loads`` lacks inline."""
        command, root = parsed.command, parsed.root
        handler = self._commands.get(command)
        if handler is None:
            return wire.reply(command, ["<result>false</result>"])
        with self.serving():
            now = self.clock.now()
            budget = Budget(self.budget_clock, self.request_budget_s)
            try:
                if command == "start":
                    return wire.reply(command, self._start(root, now, budget, loads))
                return wire.reply(command, handler(root, now, budget))
            except Exception:  # a simulator bug must not take the server down; the client sees a failed command
                log.exception("simulated BTS failed on %s", command)
                return wire.reply(command, ["<result>false</result>"])

    def handle(self, request: bytes) -> tuple[str, bytes]:
        """Answer one framed request: (its command, or "" when it does not parse; the reply frame)."""
        parsed = self.parse(request)
        if isinstance(parsed, bytes):
            return "", parsed
        return parsed.command, self.answer(parsed)
