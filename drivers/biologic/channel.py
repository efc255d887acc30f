"""One Biologic channel as a station :class:`ChannelDriver`: compile, load, start, harvest, stop, re-attach.

The instrument runs the technique list on its own and keeps data in its memory until ``BL_GetData`` consumes them,
so this class is the only place the data live between the instrument and the station: it turns each chunk into
station :class:`Record` objects (step index, cycle, step time, integrated step capacity and energy) and hands them
out by sequence number. Records the station has acknowledged (``read_records(after_seq)``) are dropped.

State rules from the reference: the channel may read STOP for a moment right after ``BL_StartChannel`` (that is
"starting", not "done"); "finished" means STOP *and* nothing left in the instrument's memory; EClib has no pause.
Any failure between loading and a confirmed start stops the channel before the error propagates, so our errors
never leave an instrument running unattended.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from drivers.base import (
    Capabilities,
    CapabilityError,
    ChannelDriver,
    ChannelRanges,
    ChannelState,
    ChannelStatus,
    DriverError,
    Record,
    Refused,
    TestGone,
    TestHandle,
)
from drivers.biologic.codes import (
    BOARD_ECC_SUFFIX,
    FIRMWARE_FILES,
    VMP300_FAMILY,
    BoardType,
    ChannelProgState,
    FirmwareCode,
    FloatFormat,
    IRange,
)
from drivers.biologic.compiler import ChannelCapabilities, CompiledProgram, capabilities, compile_program
from drivers.biologic.decode import PhaseUnit, decode
from drivers.biologic.eclib import EClib, load_eclib
from drivers.biologic.errors import EClibError
from drivers.biologic.numbers import float_format_of
from drivers.biologic.records import RecordBuilder
from drivers.biologic.scan_rate import DEFAULT_SCAN_RATE_UNIT, ScanRateUnit
from drivers.biologic.structs import TChannelInfos, TCurrentValues
from protocols.clock import Clock, RealClock
from protocols.program import StepProgram

DEFAULT_TECHNIQUE_DIR = r"C:\EC-Lab Development Package\lib"
_REFUSAL = re.compile(r"cannot|refused|error|invalid", re.IGNORECASE)
MAX_READS_PER_POLL = 64
"""``BL_GetData`` calls per ``read_records``: bounds one poll's latency while catching up a full memory."""


@dataclass(frozen=True, slots=True)
class BiologicConfig:
    """Where the channel is and how to talk to it; ``channel`` is the DLL's 0-based channel number."""

    address: str
    channel: int
    technique_dir: str = DEFAULT_TECHNIQUE_DIR
    firmware_dir: str | None = None
    kernel_file: str | None = None
    fpga_file: str | None = None
    ranges: ChannelRanges | None = None
    scan_rate_unit: ScanRateUnit = DEFAULT_SCAN_RATE_UNIT
    """The unit the firmware reads ``Scan_Rate`` in; V/s until a check on the instrument says otherwise."""
    phase_unit: PhaseUnit = "rad"
    connect_timeout_s: int = 5
    start_grace_s: float = 10.0
    """How long (clock seconds) a STOP right after start is read as 'starting' before it means 'ended'."""


class BiologicChannel(ChannelDriver):
    def __init__(self, lib: Any, config: BiologicConfig, clock: Clock | None = None):
        self.config = config
        self.channel = f"{config.address}/{config.channel}"
        self.clock = clock or RealClock()
        self.eclib = EClib(lib, where=f"Biologic {config.address}")
        self._device: int | None = None
        self._board: BoardType | None = None
        self._float_format: FloatFormat | None = None
        self._caps: ChannelCapabilities | None = None
        self._harvest: RecordBuilder | None = None
        self._started_at: float | None = None
        self._seen_run = False
        self._stopped_by_us = False
        self._protected = ""
        self._mem_filled = 0
        self._messages: list[str] = []

    @classmethod
    def from_dll(
        cls, dll_path: str | os.PathLike[str], config: BiologicConfig, clock: Clock | None = None
    ) -> BiologicChannel:
        """Load the DLL; technique and firmware files are looked up next to it unless the config says otherwise."""
        lib = load_eclib(dll_path)
        if config.technique_dir == DEFAULT_TECHNIQUE_DIR:
            folder = Path(dll_path) if Path(dll_path).is_dir() else Path(dll_path).parent
            config = replace(config, technique_dir=str(folder))
        return cls(lib, config, clock)

    # -- connection ---------------------------------------------------------------------------------------------
    def connect(self) -> ChannelCapabilities:
        """Connect, make sure the kernel firmware is on the channel, and read what the channel can do."""
        if self._caps is not None:
            return self._caps
        ch = self.config.channel
        device, info = self.eclib.connect(self.config.address, self.config.connect_timeout_s)
        self._device = device
        if ch not in self.eclib.channels_plugged(device):
            raise DriverError(f"Biologic {self.config.address}: channel {ch} is not plugged (0-based numbering)")
        if self.eclib.has("BL_GetChannelBoardType"):
            self._board = self.eclib.board_type(device, ch)
        else:  # packages 5.35, 6.01 and 6.04 lack the export: the chassis family decides
            self._board = BoardType.PREMIUM if info.DeviceCode in VMP300_FAMILY else BoardType.ESSENTIAL
        kernel, fpga = self._firmware_files(self._board)
        self.eclib.load_firmware(device, [ch], kernel, fpga, force=False)
        infos = self.eclib.channel_infos(device, ch)
        if infos.FirmwareCode != FirmwareCode.KERNEL:
            raise DriverError(
                f"Biologic {self.config.address} channel {ch}: firmware code {infos.FirmwareCode} is not the "
                "Development Package kernel; close EC-Lab and power-cycle the instrument"
            )
        try:
            self._float_format = float_format_of(self._board, infos.FloatFormat)
        except DriverError as exc:
            raise DriverError(f"Biologic {self.config.address} channel {ch}: {exc}") from None
        self._caps = self._capabilities(infos)
        return self._caps

    def _firmware_files(self, board: BoardType) -> tuple[str, str | None]:
        """Full paths of the kernel and FPGA files for ``board``; ``None`` (NULL to the DLL) for no FPGA file.

        ``kernel_file``/``fpga_file`` in the config override the per-board choice (:data:`codes.FIRMWARE_FILES`);
        an empty ``fpga_file`` means "none" as well.
        """
        kernel, fpga = FIRMWARE_FILES[board]
        kernel = self.config.kernel_file or kernel
        if self.config.fpga_file is not None:
            fpga = self.config.fpga_file or None
        folder = self.config.firmware_dir or self.config.technique_dir
        return os.path.join(folder, kernel), os.path.join(folder, fpga) if fpga else None

    def _capabilities(self, infos: TChannelInfos) -> ChannelCapabilities:
        def code(value: int, default: IRange) -> IRange:
            return IRange(value) if 0 <= value <= 10 else default

        return ChannelCapabilities(
            min_i_range=code(infos.MinIRange, IRange.I_1NA),
            max_i_range=code(infos.MaxIRange, IRange.I_1A),
            max_bandwidth=infos.MaxBandwidth or 7,
            has_eis=bool(infos.Zboard),
            ranges=self.config.ranges,
            scan_rate_unit=self.config.scan_rate_unit,
        )

    def _dev(self) -> int:
        if self._device is None:
            self.connect()
        assert self._device is not None
        return self._device

    def disconnect(self) -> None:
        """Drop the connection; the instrument keeps running its technique list."""
        if self._device is not None:
            with contextlib.suppress(EClibError):
                self.eclib.disconnect(self._device)
        self._device, self._caps = None, None

    # -- ChannelDriver --------------------------------------------------------------------------------------------
    @classmethod
    def declared_capabilities(cls, ranges: ChannelRanges | None = None) -> Capabilities:
        return capabilities(ChannelCapabilities(ranges=ranges))

    def _known_capabilities(self) -> ChannelCapabilities:
        """What ``connect`` read from the channel, or, before it ran, the nominal channel of this configuration
        (every current range, bandwidth 7, an EIS board): nothing is asked of the instrument here."""
        if self._caps is not None:
            return self._caps
        return ChannelCapabilities(ranges=self.config.ranges, scan_rate_unit=self.config.scan_rate_unit)

    def capabilities(self) -> Capabilities:
        return capabilities(self._known_capabilities())

    def compile(self, program: StepProgram) -> CompiledProgram:
        """The technique list for what the channel really is: connects (and loads the kernel) first if needed."""
        return compile_program(program, self.connect())

    def check(self, program: StepProgram) -> None:
        """Every problem of ``program`` on this channel, side-effect free: compiled against what is known of the
        channel (:meth:`_known_capabilities`) without connecting. ``start`` compiles again against what the channel
        reports (its board's EIS, current ranges, bandwidth) before it loads anything."""
        compile_program(program, self._known_capabilities())

    def _ecc_path(self, stem: str) -> str:
        assert self._board is not None
        return os.path.join(self.config.technique_dir, f"{stem}{BOARD_ECC_SUFFIX[self._board]}.ecc")

    def start(self, program: StepProgram, barcode: str) -> TestHandle:
        try:
            compiled = self.compile(program)  # raises CapabilityError before anything is sent
            device, ch = self._dev(), self.config.channel
            values = self.eclib.current_values(device, ch)
        except Refused:
            raise
        except DriverError as exc:
            raise Refused(f"Biologic {self.channel} did not answer before start, so nothing was sent ({exc})",
                          unreachable=True) from exc
        if values.State != ChannelProgState.STOP:
            raise Refused(
                f"Biologic {self.channel} is already running an experiment; stop it first or choose another channel"
            )
        try:
            last = len(compiled.techniques) - 1
            for number, technique in enumerate(compiled.techniques):
                params = [self.eclib.define_param(p.label, p.kind, p.value, p.index) for p in technique.params]
                path = self._ecc_path(technique.spec.ecc_stem)
                self.eclib.load_technique(device, ch, path, params, first=number == 0, last=number == last)
                # the load can return 0 while the firmware refuses it; only its messages say so
                refusals = [m for m in self.eclib.drain_messages(device, ch) if _REFUSAL.search(m)]
                if refusals:
                    raise DriverError(
                        f"Biologic {self.channel} refused technique {number} ({technique.spec.name}, step "
                        f"{technique.step_index}): {refusals[0]}; stop the channel and start the program again"
                    )
            self.eclib.start_channel(device, ch)
            self._messages = []
            self._started_at = self.clock.now()
        except BaseException:
            self._safe_stop()
            raise
        self._seen_run, self._stopped_by_us, self._protected = False, False, ""
        step_map = [t.step_index for t in compiled.techniques]
        self._harvest = RecordBuilder(program, step_map)
        handle = self._handle(program, step_map, barcode, f"{self._started_at:.3f}")
        polled = compiled.polled()
        if polled:  # the station records where only its own polling guards a limit
            handle.extra["polled_limits"] = "; ".join(f"step {i}: {', '.join(names)}" for i, names in polled.items())
        return handle

    def _handle(self, program: StepProgram, step_map: list[int], barcode: str, stamp: str) -> TestHandle:
        return TestHandle(
            channel=self.channel,
            test_id=f"{self.channel}@{stamp}",
            barcode=barcode,
            extra={
                "step_map": json.dumps(step_map),
                "program": program.to_json(),
                "board": self._board.name if self._board else "",
            },
        )

    def find_test(self, program: StepProgram, barcode: str,
                  marker: Mapping[str, str] | None = None) -> TestHandle | None:
        """EClib keeps no barcode, so the evidence is the channel itself: it holds our technique list and is
        running it, or it ran it and its memory still holds data nobody read. A channel that holds our list but
        is stopped with empty memory never started (the station died between loading and starting)."""
        compiled = self.compile(program)
        device, ch = self._dev(), self.config.channel
        infos = self.eclib.channel_infos(device, ch)
        values = self.eclib.current_values(device, ch)
        if infos.NbOfTechniques != len(compiled.techniques):
            return None
        if values.State == ChannelProgState.STOP and values.MemFilled == 0:
            return None
        step_map = [t.step_index for t in compiled.techniques]
        return self._handle(program, step_map, barcode, "recovered")

    def attach(self, handle: TestHandle) -> None:
        """Pick up a technique list started earlier; the first ``read_records`` continues the caller's numbering."""
        if handle.channel != self.channel:
            raise DriverError(f"test {handle.test_id} ran on {handle.channel}, not on {self.channel}")
        device = self._dev()
        step_map = json.loads(handle.extra["step_map"])
        infos = self.eclib.channel_infos(device, self.config.channel)
        if infos.NbOfTechniques != len(step_map):
            raise TestGone(
                f"Biologic {self.channel} holds {infos.NbOfTechniques} techniques, test {handle.test_id} loaded "
                f"{len(step_map)}; another experiment replaced it, so there is nothing to re-attach to"
            )
        program = StepProgram.from_json(handle.extra["program"])
        self._harvest = RecordBuilder(program, step_map, reattached=True)
        self._started_at = self.clock.now()
        self._seen_run = infos.State == ChannelProgState.RUN
        self._stopped_by_us, self._protected = False, ""

    def pause(self) -> None:
        raise CapabilityError([f"Biologic {self.channel}: EClib has no pause; stop the run instead"])

    def resume(self) -> None:
        raise CapabilityError([f"Biologic {self.channel}: EClib has no pause, so there is nothing to resume"])

    def stop(self) -> None:
        # always sent (connecting first when needed): a stop that reaches nothing must not read as one that did;
        # the station believes it only once the channel reports STOP (status)
        self.eclib.stop_channel(self._dev(), self.config.channel)
        self._stopped_by_us = True

    def _safe_stop(self) -> None:
        with contextlib.suppress(Exception):
            self.eclib.stop_channel(self._dev(), self.config.channel)

    # -- status ---------------------------------------------------------------------------------------------------
    def _note(self, values: TCurrentValues) -> None:
        if values.State in (ChannelProgState.RUN, ChannelProgState.SYNC):
            self._seen_run = True
        self._mem_filled = int(values.MemFilled)

    def status(self) -> ChannelStatus:
        values = self.eclib.current_values(self._dev(), self.config.channel)
        self._note(values)
        harvest = self._harvest
        last = harvest.last if harvest else None
        state, message = self._state(values)
        return ChannelStatus(
            state=state,
            step_index=last.step_index if last else None,
            cycle=last.cycle if last else None,
            voltage=float(values.Ewe),
            current=float(values.I),
            step_capacity=last.capacity if last else None,
            test_time=float(values.ElapsedTime),
            # the newest record we know of; unknown (None) while the instrument still holds unread data
            last_seq=(harvest.seq or None) if harvest and values.MemFilled == 0 else None,
            message=message,
        )

    def _state(self, values: TCurrentValues) -> tuple[ChannelState, str]:
        if self._protected:
            if values.State == ChannelProgState.STOP:
                return ChannelState.PROTECTED, self._protected
            # our safety stop did not take (yet): send it again, and never report the channel as ended before the
            # instrument says it stopped
            self._safe_stop()
            return ChannelState.RUNNING, f"{self._protected.removesuffix('; channel stopped')}; stopping, not yet " \
                                         f"confirmed by the instrument"
        if values.State == ChannelProgState.PAUSE:
            return ChannelState.PAUSED, ""
        if values.State != ChannelProgState.STOP:
            return ChannelState.RUNNING, "" if self._harvest else "running an experiment this driver did not start"
        if self._harvest is None:
            return ChannelState.IDLE, ""
        if self._stopped_by_us:
            return ChannelState.STOPPED, "stopped by the station"
        starting = not self._seen_run and self._harvest.seq == 0 and self._started_at is not None
        if starting and self.clock.now() - self._started_at < self.config.start_grace_s:  # type: ignore[operator]
            return ChannelState.RUNNING, "starting"
        if values.MemFilled > 0:
            return ChannelState.RUNNING, "finished on the instrument; data still to read"
        self._messages += self.eclib.drain_messages(self._dev(), self.config.channel)
        failures = [m for m in self._messages if "failed" in m]
        if failures:
            return ChannelState.ERROR, f"the instrument stopped the run: {failures[-1]}"
        return ChannelState.FINISHED, ""

    # -- data -----------------------------------------------------------------------------------------------------
    def read_records(self, after_seq: int, limit: int = 1000) -> list[Record]:
        harvest = self._harvest
        if harvest is None:
            return []
        harvest.acknowledge(after_seq)
        device, ch = self._dev(), self.config.channel
        for _ in range(MAX_READS_PER_POLL):
            if len(harvest.records) >= limit or self._protected:
                break
            buffer, infos, values = self.eclib.get_data(device, ch)
            self._note(values)
            if infos.NbRows <= 0:
                break
            assert self._board is not None
            try:
                chunk = decode(buffer, infos, values, self._board, float_format=self._float_format,
                               phase_unit=self.config.phase_unit)
                broken = harvest.add(chunk)
            except DriverError as exc:  # data we cannot read means a run nobody supervises: stop it
                self._protected = f"unreadable data, channel stopped: {exc}"
                self._safe_stop()
                raise DriverError(f"Biologic {self.channel}: {exc}") from exc
            if broken:
                self._protected = f"safety limit: {broken}; channel stopped"
                self._safe_stop()
        return harvest.records[:limit]
