"""Channel drivers built from the station config, real or simulated in-process.

A dry run goes through exactly the driver code a real run uses: the simulated BTS is a real TCP server on
loopback in a background thread, and the simulated EClib is handed to the Biologic driver in place of the DLL.
Which cell sits on a simulated channel is set from the run's cell record (its ``model:``), as a person would
place a coin cell in a holder.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.base import Capabilities, ChannelDriver, ChannelRanges, DriverError
from drivers.biologic.channel import BiologicChannel
from drivers.neware.channel import NewareChannel
from protocols.cells import Cell
from protocols.clock import Clock
from protocols.errors import Problem, ProtocolError, did_you_mean, one_line
from protocols.loader import LoadedProtocol
from protocols.program import StepProgram
from protocols.segments import SegmentError, segments, temperature_steps
from protocols.yamlsource import load_yaml_file
from station.config import ChannelConfig, ConfigError, InstrumentConfig, StationConfig


class InstrumentError(Exception):
    """An instrument cannot be reached or set up; the message names it and the fix."""


def channel_ranges(channel: ChannelConfig) -> ChannelRanges:
    low, high = (v.value for v in channel.voltage)
    current = channel.current
    if current.basis != "absolute":
        raise ConfigError(f"channel {channel.id}: current range must be absolute (e.g. '10 mA'), found "
                          f"'{current.text}'")
    return ChannelRanges(voltage_min=low, voltage_max=high, current_max=current.value)


#: the driver of each instrument kind: what its channels can run is declared by the class, without an instrument
DRIVERS: dict[str, type[ChannelDriver]] = {"neware": NewareChannel, "biologic": BiologicChannel}


def kind_capabilities(kind: str, ranges: ChannelRanges | None = None) -> Capabilities:
    """What a channel of an instrument of ``kind`` with ``ranges`` can run (no instrument is asked)."""
    return DRIVERS[kind].declared_capabilities(ranges)


def program_problems(capabilities: Capabilities, program: StepProgram) -> list[str]:
    """What a channel with ``capabilities`` cannot run of ``program``. A program with temperature steps reaches a
    channel as the instrument programs between them (the station carries the steps out: station.temperature_runs),
    so those are what is checked."""
    if not temperature_steps(program):
        return capabilities.problems(program)
    try:
        parts = [s.program for s in segments(program) if s.program is not None]
    except SegmentError as exc:
        return [str(exc)]
    return list(dict.fromkeys(problem for part in parts for problem in capabilities.problems(part)))


def cell_model_problems(cell: Cell) -> list[Problem]:
    """The cell record's ``model:`` checked against the simulated model registry: one positioned problem naming the
    valid models when it names none of them (nothing when the cell gives no model; a real run needs none)."""
    from simulators.cells import MODEL_TYPES

    if not cell.model_type or cell.model_type in MODEL_TYPES:
        return []
    valid = ", ".join(sorted(MODEL_TYPES))
    message = f"unknown cell model '{one_line(cell.model_type)}'{did_you_mean(cell.model_type, MODEL_TYPES)}"
    found = one_line(repr(cell.model_type))
    source = None
    if cell.source:
        with contextlib.suppress(Exception):  # the file may have changed or gone since it was read: no position then
            source = load_yaml_file(cell.source)
    if source is not None and isinstance(source.data, dict):
        model = source.data.get("model")
        path: tuple[str, ...] = ("model", "type") if isinstance(model, dict) else ("model",)
        return [source.problem(path, message, expected=f"one of {valid}", found=found)]
    return [Problem(cell.source or "<cell>", 1, 1, "model", message, f"one of {valid}", found)]


def check_cell_model(cell: Cell | None) -> None:
    """Raise :class:`ProtocolError` when the cell's ``model:`` is not a simulated model (see above)."""
    problems = cell_model_problems(cell) if cell is not None else []
    if problems:
        raise ProtocolError(problems)


def validate_binding(loaded: LoadedProtocol, cell: Cell | None) -> None:
    """What ``station validate`` checks: the protocol bound to the cell, and the cell's ``model:`` against the
    simulated models (the protocols package cannot know them); every problem at once in one :class:`ProtocolError`."""
    problems = cell_model_problems(cell) if cell is not None else []
    try:
        loaded.bind(cell)
    except ProtocolError as exc:
        problems = [*exc.problems, *problems]
    if problems:
        raise ProtocolError(problems)


@dataclass
class CellPlacement:
    """The cell a simulated channel holds: what the simulator builds its model from."""

    model_type: str
    params: dict[str, Any]
    area: float | None
    capacity: float | None
    thickness: float | None
    seed: int
    temperature: float | None = None
    """K: the cell record's temperature (the model's default, 27 degC, when it gives none)."""
    ocv: float | None = None
    """V: the cell record's as-assembled OCV, where the model starts."""

    @classmethod
    def of(cls, cell: Cell, seed: int = 0) -> CellPlacement:
        if not cell.model_type:
            raise InstrumentError(f"cell '{cell.name}' names no simulated model; add 'model: <type>' to the cell "
                                  f"file to dry-run it")
        check_cell_model(cell)
        kelvin = None if cell.temperature is None else cell.temperature + 273.15  # cell records are in degC
        return cls(cell.model_type, dict(cell.model_params), cell.area, cell.capacity, cell.thickness, seed,
                   kelvin, cell.ocv)

    def build(self):
        from simulators.cells import build_model

        try:
            return build_model(self.model_type, self.params, area=self.area, capacity=self.capacity,
                               thickness=self.thickness, seed=self.seed, temperature=self.temperature, ocv=self.ocv)
        except ValueError as exc:
            raise InstrumentError(f"simulated cell: {exc}") from None


#: a 12 mm coin-cell disk (m^2), the reference workload's electrode
COIN_CELL_AREA = 1.131e-4
#: the cell on a simulated channel nobody placed one on: what each kind of instrument usually holds in the lab
_DEFAULT_CELLS = {"neware": ("ncm622-li", None), "biologic": ("li-host", 45e-6)}


def default_placement(instrument: InstrumentConfig) -> CellPlacement:
    """The cell of an empty simulated channel (a status or attach before any run placed one): the instrument's
    configured ``cell_model``, or the kind's usual cell, on a 12 mm disk."""
    model, thickness = _DEFAULT_CELLS[instrument.kind]
    return CellPlacement(instrument.cell_model or model, {}, COIN_CELL_AREA, None, thickness, 0)


class Instruments:
    """Owns connections and in-process simulators for one station process; close() releases them."""

    def __init__(self, config: StationConfig, clock: Clock, data_dir: Path, *, simulate_all: bool = False):
        self.config = config
        self.clock = clock
        self.data_dir = Path(data_dir)
        self.simulate_all = simulate_all
        self._placements: dict[tuple[str, str], CellPlacement] = {}
        self._bts_sims: dict[str, Any] = {}
        self._bts_clients: dict[str, Any] = {}
        self._eclibs: dict[str, Any] = {}
        self._drivers: dict[str, ChannelDriver] = {}
        self._models: dict[str, Any] = {}
        """The cell model each simulated channel built, by ``instrument/channel``: what cell_events drains."""
        self._fresh: set[str] = set()
        """Channels whose placed model no simulator has asked for yet."""
        self._driver_keys: dict[int, str] = {}
        """``instrument/channel`` of each driver this process made, by the driver's identity (drivers are kept)."""
        self._cell_kelvin: dict[str, float] = {}
        """The temperature each simulated channel's cell was last given (K), so that it is told only changes."""

    def simulated(self, instrument: InstrumentConfig) -> bool:
        return self.simulate_all or instrument.simulated

    def identity(self, channel: str) -> dict[str, Any]:
        instrument, chan = self.config.find(channel)
        return {"name": instrument.name, "kind": instrument.kind, "address": instrument.address,
                "simulated": self.simulated(instrument), "channel": chan.id}

    def place(self, channel: str, cell: Cell, seed: int = 0) -> None:
        instrument, chan = self.config.find(channel)
        if self.simulated(instrument):
            placement = CellPlacement.of(cell, seed)
            key = f"{instrument.name}/{chan.id}"
            # built now, so that a cell record the model cannot be (an OCV out of its range) fails before the run
            # claims anything, and kept for the simulator's first ask rather than built twice
            self._models[key] = placement.build()
            self._cell_kelvin.pop(key, None)  # a new cell: it is told the chamber's temperature again
            self._fresh.add(key)
            self._placements[(instrument.name, chan.id)] = placement

    def _built(self, key: str, placement: CellPlacement):
        """The model a simulated channel asks for: the one :meth:`place` built, once; a new one after that."""
        if key in self._fresh:
            self._fresh.discard(key)
            return self._models[key]
        model = placement.build()
        self._models[key] = model
        self._cell_kelvin.pop(key, None)
        return model

    def cell_events(self, driver: ChannelDriver) -> list[tuple[str, str]]:
        """(kind, message) of what the cell model on ``driver``'s simulated channel raised since the last call;
        nothing for a real channel."""
        if not self._models:  # no simulated channel has built a cell: nothing to ask (every real station)
            return []
        key = self._driver_keys.get(id(driver))
        model = self._models.get(key) if key is not None else None
        if model is None:
            return []
        return [(e.kind, f"{e.message} (step time {e.step_time:.0f} s)") for e in model.drain_events()]

    def set_cell_temperature(self, driver: ChannelDriver, celsius: float) -> None:
        """A simulated channel's cell takes its chamber's temperature (a coin cell follows the air within minutes,
        faster than any poll of a dry run); a real channel's cell needs no telling, and a model without temperature
        dependence keeps its own."""
        key = self._driver_keys.get(id(driver)) if self._models else None
        model = self._models.get(key) if key is not None else None
        if model is None or not math.isfinite(celsius):
            return
        kelvin = celsius + 273.15
        if self._cell_kelvin.get(key) == kelvin:
            return
        name, _, chan_id = key.partition("/")
        simulator = self._bts_sims.get(name)
        # a simulated BTS computes its channels under each one's lock (its catch-up worker too): never mid-step
        lock = simulator.channel(chan_id).lock if simulator is not None else contextlib.nullcontext()
        with lock:
            try:
                model.set_temperature(kelvin)
            except NotImplementedError:
                return
        self._cell_kelvin[key] = kelvin

    def choose_channel(self, program: StepProgram, busy: set[str]) -> str:
        """The first free configured channel whose instrument kind's capabilities, with the channel's configured
        ranges, cover ``program`` (nothing is connected: the driver then checks the program on the channel). A
        program with temperature steps reaches a channel as its segments, and needs a channel in a chamber (any
        channel in a dry run, whose chambers are simulated)."""
        free, refusals = 0, []
        staged = bool(temperature_steps(program))
        for instrument in self.config.instruments:
            for chan in instrument.channels:
                channel_id = f"{instrument.name}/{chan.id}"
                if channel_id in busy:
                    continue
                free += 1
                problems = program_problems(kind_capabilities(instrument.kind, channel_ranges(chan)), program)
                if not problems and staged and not self.simulate_all and self.config.chamber_of(channel_id) is None:
                    problems = ["it sits in no climate chamber (station.yaml chambers:), and the program has "
                                "temperature steps"]
                if not problems:
                    return channel_id
                refusals.append(f"{channel_id}: {problems[0]}")
        if not free:
            raise ConfigError("no free channel is configured; give --channel or add channels to station.yaml")
        shown = "; ".join(refusals[:3]) + (f"; and {len(refusals) - 3} more" if len(refusals) > 3 else "")
        raise ConfigError(f"no free channel can run this program ({shown}); give --channel or add channels to "
                          "station.yaml")

    def driver(self, channel: str) -> ChannelDriver:
        instrument, chan = self.config.find(channel)
        key = f"{instrument.name}/{chan.id}"
        if key not in self._drivers:
            builder = self._neware if instrument.kind == "neware" else self._biologic
            self._drivers[key] = builder(instrument, chan)
            self._driver_keys[id(self._drivers[key])] = key
        return self._drivers[key]

    # -- Neware -------------------------------------------------------------------------------------------------

    def _neware(self, instrument: InstrumentConfig, chan: ChannelConfig) -> ChannelDriver:
        from drivers.neware.address import ChannelAddress
        from drivers.neware.channel import open_client
        from drivers.neware.client import BACKUP_FILE_NAMES, BACKUP_FILE_TYPES, BackupSettings
        from drivers.transport import Backoff

        address = ChannelAddress.parse(chan.id, devtype=instrument.devtype)
        if self.simulated(instrument):
            host, port = "127.0.0.1", self._bts_simulator(instrument).port
        else:
            host, port = _host_port(instrument.address or "127.0.0.1:502")
        if instrument.name not in self._bts_clients:
            self._bts_clients[instrument.name] = open_client(
                host, port, clock=self.clock, timeout_s=instrument.timeout.value,
                backoff=Backoff(attempts=instrument.reconnect_attempts))
        # a simulated BTS runs on this PC and reads the data directory; a real one reads the configured share
        real = not self.simulated(instrument)
        step_dir = Path(instrument.step_dir) if real and instrument.step_dir else self.data_dir / "stepfiles"
        backup = None
        if (b := instrument.backup) is not None:  # station.yaml's backup: as the <backup> element of start
            backup = BackupSettings(
                backupdir=b.dir, remotedir=b.remote_dir, customfilename=b.custom_name,
                filenametype=BACKUP_FILE_NAMES[b.file_name],
                addtimewhenrepeat=int(b.add_time_when_repeat), createdirbydate=int(b.dir_by_date),
                filetype=BACKUP_FILE_TYPES[b.file_type], backupontime=int(b.on_time),
                backupontimeinterval=b.on_time_interval, backupfree=int(b.free))
        return NewareChannel(self._bts_clients[instrument.name], address, channel_ranges(chan), step_dir=step_dir,
                             remote_step_dir=instrument.bts_step_dir if real else None, backup=backup)

    def _bts_simulator(self, instrument: InstrumentConfig):
        if instrument.name in self._bts_sims:
            return self._bts_sims[instrument.name]
        from simulators.neware import BtsSimulator
        from simulators.neware.server import FIRST_DEVID

        ids = [[int(p) for p in c.id.split("-")] for c in instrument.channels]
        if any(len(i) != 3 for i in ids) or min(i[0] for i in ids) < FIRST_DEVID:
            raise ConfigError(f"instrument {instrument.name}: simulated Neware channel ids are devid-subdevid-chlid "
                              f"with devid from {FIRST_DEVID} (e.g. '{FIRST_DEVID}-1-1')")
        name = instrument.name

        def model(key: tuple[int, int, int]):
            chan_id = f"{key[0]}-{key[1]}-{key[2]}"
            placement = self._placements.get((name, chan_id))
            if placement is None:
                placement = default_placement(instrument)
            return self._built(f"{name}/{chan_id}", placement)

        simulator = BtsSimulator(host="127.0.0.1", port=0, devices=max(i[0] for i in ids) - FIRST_DEVID + 1,
                                 subdevices=max(i[1] for i in ids), channels=max(i[2] for i in ids),
                                 model_factory=model, clock=self.clock,
                                 aux_temperature=[c.id for c in instrument.channels if c.aux_temperature])
        simulator.start()
        self._bts_sims[instrument.name] = simulator
        return simulator

    # -- Biologic -----------------------------------------------------------------------------------------------

    def _biologic(self, instrument: InstrumentConfig, chan: ChannelConfig) -> ChannelDriver:
        from drivers.biologic.channel import BiologicConfig
        from drivers.biologic.errors import EClibLoadError

        number = int(chan.id) - 1 if chan.id.isdigit() else None
        if number is None or number < 0:
            raise ConfigError(f"instrument {instrument.name}: Biologic channel ids are numbers from 1, found "
                              f"'{chan.id}'")
        address = instrument.address or "sim"
        scan_rate_unit, _ = instrument.scan_rate_setting(chan)
        config = BiologicConfig(address=address, channel=number, ranges=channel_ranges(chan),
                                scan_rate_unit=scan_rate_unit)
        if self.simulated(instrument):
            # the simulator's library of C function pointers stands where ctypes.WinDLL(dll) would: the driver binds
            # and calls it exactly as the vendor DLL
            lib = self._eclib(instrument, address)  # a placed cell was built (and checked) by place()
            driver = BiologicChannel(lib, config, clock=self.clock)
        else:
            if not instrument.dll:
                raise ConfigError(f"instrument {instrument.name}: give 'dll:' (the path to EClib64.dll)")
            try:
                driver = BiologicChannel.from_dll(instrument.dll, config)
            except EClibLoadError as exc:  # the driver names the file; the station names its own key
                raise ConfigError(f"instrument {instrument.name}: dll: {exc}; correct 'dll:' of instrument "
                                  f"{instrument.name} in station.yaml") from None
            except (OSError, DriverError) as exc:
                raise InstrumentError(f"instrument {instrument.name}: {exc}") from None
        try:
            driver.connect()
        except DriverError as exc:
            raise InstrumentError(f"instrument {instrument.name} channel {chan.id}: {exc}") from None
        return driver

    def _eclib(self, instrument: InstrumentConfig, address: str):
        """The simulated instrument's EClib, one per instrument: ``simulators.biologic.load_library``.

        Each channel holds the cell the run placed on it (``place``), built when the channel first needs it, or
        the instrument's default cell; a channel's ``Scan_Rate`` unit is the one station.yaml gives the driver.
        """
        if instrument.name in self._eclibs:
            return self._eclibs[instrument.name]
        from simulators.biologic import load_library

        name, placements = instrument.name, self._placements
        configured = {int(c.id) - 1: c for c in instrument.channels if c.id.isdigit() and int(c.id) >= 1}

        def cell(number: int):
            chan = configured.get(number)
            chan_id = chan.id if chan else str(number + 1)
            placement = placements.get((name, chan_id)) or default_placement(instrument)
            return self._built(f"{name}/{chan_id}", placement)

        try:
            # the driver allocates the 84-byte TChannelInfos; a channel may read STOP once right after a start
            lib = load_library("vmp3", channels=max(configured, default=0) + 1, cell=cell, clock=self.clock,
                               address=address, channel_infos_size=84, start_polls=1)
        except ValueError as exc:
            raise ConfigError(f"instrument {instrument.name}: {exc}") from None
        for number, chan in configured.items():
            lib.channel(number).scan_rate_unit = instrument.scan_rate_setting(chan)[0]
        self._eclibs[instrument.name] = lib
        return lib

    def close(self) -> None:
        for client in self._bts_clients.values():
            with contextlib.suppress(Exception):
                client.transport.close()
        for simulator in self._bts_sims.values():
            with contextlib.suppress(Exception):
                simulator.stop()


def _host_port(address: str) -> tuple[str, int]:
    if address.startswith("TCPIP"):
        parts = address.split("::")
        return parts[1], int(parts[2])
    host, _, port = address.rpartition(":")
    return host, int(port)
