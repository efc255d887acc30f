"""The simulated EClib: the DLL's ``BL_*`` functions with the same arguments, codes and memory effects.

A driver hands this object the same things it hands the DLL: ints, bools and floats by value, ``bytes`` for
``const char*``, ctypes pointers for out-parameters (filled by copying raw bytes, as the DLL writes memory),
ctypes arrays, and ``TEccParams`` by value (read through its raw ``pParams`` address). Every function returns an
int code and never raises for a caller's mistake, exactly like the DLL.

Behaviour modelled on the real instrument (reference sections 2 and 7): channels must have the kernel firmware
before techniques load, the ``.ecc`` suffix must match the board type, ``First`` clears the technique list and
``Last`` closes it, a running channel refuses loads and starts, a channel reads STOP with no rows for a few polls
right after ``BL_StartChannel`` before RUN (configurable), and a finished channel keeps its unread data until
``BL_GetData`` drains it. The instrument runs on its own: disconnecting (or a crashed host) does not stop it, and
a new connection sees the same channels. ``BL_LoadFirmware``, ``BL_StartChannels`` and ``BL_StopChannels`` take a
selection mask indexed by channel number; row words are TI DSP floats on board types 1 and 2 (``FloatFormat`` 0)
and IEEE on DIGICORE (see :mod:`simulators.biologic.dspfloat`).

This class is the simulator at Python level; :func:`simulators.biologic.library.load_library` wraps it in real C
function pointers with the header's prototypes, which is what clients load.
"""

from __future__ import annotations

import ctypes
import re
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocols.clock import Clock
from simulators.biologic import firmware as fw
from simulators.biologic.conversions import ConversionExports
from simulators.biologic.discovery import DiscoveryExports, device_name
from simulators.biologic.dspfloat import float_format
from simulators.biologic.encode import columns
from simulators.biologic.messages import error_text
from simulators.biologic.runner import DataBlock, RunConfig, Segment, TechniqueRun
from simulators.biologic.structs import (
    BUFFER_WORDS,
    ChannelInfos,
    CurrentValues,
    DataInfos,
    DeviceInfos,
    EccParam,
    EccParams,
    ExperimentInfos,
    HardwareConf,
    TechniqueInfos,
    read_in,
    write_out,
)
from simulators.cells.base import CellModel

LIB_VERSION = "6.08-simulated"
MEM_SIZE_BYTES = 8 * 1024 * 1024


class CellUnavailable(ValueError):
    """Nothing usable is wired to the channel: its leads are open."""


@dataclass
class SimChannel:
    """One channel board: its hardware facts, the cell wired to it, and its firmware-side state.

    The cell is either ``model`` or built by ``placement`` the first time the channel needs it (a cell placed on
    the channel after the instrument was switched on); :meth:`place` swaps it while the channel is idle.
    """

    model: CellModel | None = None
    board: int = fw.ESSENTIAL
    min_i_range: int = 1  # 1 nA: VMP3-family boards start there
    max_i_range: int = 10  # 1 A
    max_bandwidth: int = 7
    zboard: bool = True
    firmware: int = fw.FIRMWARE_NONE
    timebase: float = 24e-6
    start_polls: int = 1
    """Polls that read STOP with no rows right after a start, as the real channel does before RUN."""
    scan_rate_unit: str = "V/s"
    phase_unit: str = "rad"
    amp_code: int = 0
    # state
    techniques: list[fw.LoadedTechnique] = field(default_factory=list)
    list_closed: bool = False
    run: TechniqueRun | None = None
    pending: deque[DataBlock] = field(default_factory=deque)
    messages: deque[str] = field(default_factory=deque)
    transient_polls: int = 0
    e_range: int = 3
    placement: Callable[[], CellModel] | None = None
    param_blocks: list[Any] = field(default_factory=list)
    """A copy of each loaded technique's ``TEccParam`` array (``BL_GetTechniqueInfos`` points into them)."""
    hard_conf: tuple[int, int] = (0, 0)  # (Conn, Ground): standard connection, grounded
    experiment: ExperimentInfos = field(default_factory=ExperimentInfos)

    def running(self, now: float) -> bool:
        run = self.run
        return run is not None and (run.finished_at is None or now < run.finished_at)

    def cell(self) -> CellModel:
        """The cell wired to the channel, built from its placement on first use; :class:`CellUnavailable` if none."""
        if self.model is None:
            if self.placement is None:
                raise CellUnavailable("no cell is connected to this channel")
            try:
                self.model = self.placement()
            except Exception as exc:
                raise CellUnavailable(f"the cell placed on this channel cannot be built: {exc}") from exc
        return self.model

    def place(self, model: CellModel | None = None, placement: Callable[[], CellModel] | None = None) -> None:
        """Connect another cell (now, or built on first use); refused while a technique list runs on it."""
        if self.run is not None and self.run.finished_at is None:
            raise RuntimeError("cannot swap the cell of a running channel; stop it first")
        self.model, self.placement = model, placement


@dataclass
class SimDevice:
    device_code: int
    channels: dict[int, SimChannel]
    firmware_version: int = 1090
    slots: int = 16
    serial: str = "0001"


class SimulatedEClib(ConversionExports, DiscoveryExports):
    """The ``BL_*`` surface of ``EClib64.dll`` over simulated instruments reached by address.

    A device registered under the address ``"*"`` answers any address no other device claims (a library object
    made for one instrument). ``channel_infos_size`` is how many bytes ``BL_GetChannelInfos`` writes: 84 (the 2013
    header, with ``FloatFormat`` and ``CPUCIE``) or 76 (the 19 fields every Python client declares); the reference
    leaves open which one the installed DLL writes, and writing 84 into a 76-byte struct corrupts memory.
    """

    def __init__(self, clock: Clock, devices: dict[str, SimDevice], *, channel_infos_size: int = 84):
        self.clock = clock
        self.devices = devices
        self.channel_infos_size = channel_infos_size
        self._handles: dict[int, SimDevice] = {}
        self._next_handle = 1
        self._faults: dict[str, deque[int]] = {}

    # -- test hooks ---------------------------------------------------------------------------------------------
    def fail_next(self, function: str, code: int, times: int = 1) -> None:
        """Make the next ``times`` calls of ``function`` return ``code`` (a communication fault, say)."""
        self._faults.setdefault(function, deque()).extend([code] * times)

    def _fault(self, function: str) -> int:
        queue = self._faults.get(function)
        return queue.popleft() if queue else fw.OK

    def _device(self, handle: int) -> SimDevice | None:
        return self._handles.get(int(handle))

    def _channel(self, handle: int, channel: int) -> tuple[int, SimChannel | None]:
        device = self._device(handle)
        if device is None:
            return fw.NOT_CONNECTED, None
        ch = device.channels.get(int(channel))
        if ch is None:
            return fw.CHANNEL_NOT_PLUGGED, None
        return fw.OK, ch

    # -- library and connection -----------------------------------------------------------------------------
    def BL_GetLibVersion(self, buffer: Any, size: Any) -> int:
        return self._write_text(buffer, size, LIB_VERSION)

    def BL_GetErrorMsg(self, code: int, buffer: Any, size: Any) -> int:
        return self._write_text(buffer, size, error_text(code))

    def BL_Connect(self, address: bytes, timeout: int, handle_ptr: Any, info_ptr: Any) -> int:
        if code := self._fault("BL_Connect"):
            return code
        if not address:
            return fw.INVALID_PARAMETERS
        device = self.devices.get(address.decode("ascii", "replace")) or self.devices.get("*")
        if device is None:
            return fw.CONNECTION_FAILED
        handle = self._next_handle
        self._next_handle += 1
        self._handles[handle] = device
        write_out(handle_ptr, ctypes.c_int32(handle))
        info = DeviceInfos(
            DeviceCode=device.device_code, RAMSize=64, CPU=1, NumberOfChannels=len(device.channels),
            NumberOfSlots=device.slots, FirmwareVersion=device.firmware_version, FirmwareDate_yyyy=2023,
            FirmwareDate_mm=6, FirmwareDate_dd=1, HTdisplayOn=0,
            NbOfConnectedPC=sum(1 for d in self._handles.values() if d is device),
        )  # fmt: skip
        write_out(info_ptr, info)
        return fw.OK

    def BL_Disconnect(self, handle: int) -> int:
        return fw.OK if self._handles.pop(int(handle), None) is not None else fw.NOT_CONNECTED

    def BL_TestConnection(self, handle: int) -> int:
        if code := self._fault("BL_TestConnection"):
            return code
        return fw.OK if self._device(handle) is not None else fw.NOT_CONNECTED

    # -- channels and firmware ----------------------------------------------------------------------------------
    def BL_GetChannelsPlugged(self, handle: int, plugged: Any, size: int) -> int:
        device = self._device(handle)
        if device is None:
            return fw.NOT_CONNECTED
        if not plugged:
            return fw.INVALID_PARAMETERS
        for ch in range(int(size)):
            plugged[ch] = 1 if ch in device.channels else 0
        return fw.OK

    def BL_IsChannelPlugged(self, handle: int, channel: int) -> bool:
        return self._channel(handle, channel)[1] is not None

    def BL_GetChannelBoardType(self, handle: int, channel: int, board_ptr: Any) -> int:
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        write_out(board_ptr, ctypes.c_uint32(ch.board))
        return fw.OK

    def BL_LoadFirmware(
        self, handle: int, channels: Any, results: Any, count: int, gauge: bool, force: bool,
        bin_file: bytes | None, xlx_file: bytes | None,
    ) -> int:  # fmt: skip
        """``channels`` is a selection mask: ``channels[k]`` non-zero loads channel k; ``results[k]`` its code."""
        if self._device(handle) is None:
            return fw.NOT_CONNECTED
        if not channels or not results:
            return fw.INVALID_PARAMETERS
        return self._per_channel(
            channels, results, count, lambda k: self._load_firmware(handle, k, bin_file, xlx_file, bool(force))
        )

    @staticmethod
    def _per_channel(mask: Any, results: Any, count: int, action: Callable[[int], int]) -> int:
        """Apply ``action`` to every channel selected in ``mask``; per-channel codes, the first error overall."""
        selected = [k for k in range(int(count)) if mask[k]]
        if not selected:
            return fw.NO_CHANNEL_SELECTED
        first_error = fw.OK
        for k in range(int(count)):
            code = action(k) if k in selected else fw.OK
            results[k] = code
            first_error = first_error or code
        return first_error

    def _load_firmware(self, handle: int, channel: int, bin_file: bytes | None, xlx: bytes | None, force: bool) -> int:
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        if ch.firmware == fw.FIRMWARE_KERNEL and not force:
            return fw.OK
        if ch.firmware == fw.FIRMWARE_ECLAB and not force:
            return fw.ECLAB_LOADED
        self._advance(ch, self.clock.now())
        if ch.running(self.clock.now()):
            return fw.CHANNEL_RUNNING
        kernel = fw.KERNEL_FILES[ch.board] if bin_file is None else _basename(bin_file)
        fpga = fw.FPGA_FILES[ch.board] if xlx is None else _basename(xlx)
        if kernel not in fw.SHIPPED_FIRMWARE:
            return fw.FIRM_FILE_NOT_EXISTS
        if kernel not in fw.KERNELS_ACCEPTED[ch.board]:
            return fw.FIRM_INVALID_FILE
        if fpga and fpga not in fw.SHIPPED_FIRMWARE:
            return fw.XIL_FILE_NOT_EXISTS
        if fpga != fw.FPGA_FILES[ch.board]:
            return fw.XIL_INVALID_FILE
        ch.firmware = fw.FIRMWARE_KERNEL
        ch.techniques, ch.param_blocks, ch.list_closed, ch.run = [], [], False, None
        ch.pending.clear()
        return fw.OK

    def BL_GetChannelInfos(self, handle: int, channel: int, info_ptr: Any) -> int:
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        now = self.clock.now()
        self._advance(ch, now)
        info = ChannelInfos(
            Channel=int(channel), BoardVersion=19, BoardSerialNumber=1000 + int(channel), FirmwareCode=ch.firmware,
            FirmwareVersion=600 if ch.firmware == fw.FIRMWARE_KERNEL else 0, XilinxVersion=fw.FPGA_VERSION[ch.board],
            AmpCode=ch.amp_code, NbAmps=0, Lcboard=0, Zboard=int(ch.zboard), MemSize=MEM_SIZE_BYTES,
            MemFilled=self._mem_filled(ch), State=fw.RUN if ch.running(now) else fw.STOP, MaxIRange=ch.max_i_range,
            MinIRange=ch.min_i_range, MaxBandwidth=ch.max_bandwidth, NbOfTechniques=len(ch.techniques),
            FloatFormat=float_format(ch.board), CPUCIE=0,
        )  # fmt: skip
        write_out(info_ptr, info, self.channel_infos_size)
        if ch.firmware == fw.FIRMWARE_ECLAB:
            return fw.ECLAB_LOADED
        return fw.OK if ch.firmware == fw.FIRMWARE_KERNEL else fw.FIRMWARE_NOT_LOADED

    def BL_GetChannelFloatFormat(self, handle: int, channel: int, format_ptr: Any) -> int:
        """0: row singles are TI DSP floats (board types 1 and 2); 1: IEEE-754 (DIGICORE)."""
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        write_out(format_ptr, ctypes.c_int32(float_format(ch.board)))
        return fw.OK

    def BL_GetFPGAVer(self, handle: int, channel: int, version_ptr: Any) -> int:
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        write_out(version_ptr, ctypes.c_uint32(fw.FPGA_VERSION[ch.board]))
        return fw.OK

    def BL_GetOptErr(self, handle: int, channel: int, error_ptr: Any, position_ptr: Any) -> int:
        """No option board raises an error on a simulated channel: (0, 0)."""
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        write_out(error_ptr, ctypes.c_int32(0))
        write_out(position_ptr, ctypes.c_int32(0))
        return fw.OK

    def BL_TestCommSpeed(self, handle: int, channel: int, rcvt_ptr: Any, kernel_ptr: Any) -> int:
        """Round trips in ms to the communication board and to the channel's kernel (which must be loaded)."""
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        if ch.firmware != fw.FIRMWARE_KERNEL:
            return fw.ECLAB_LOADED if ch.firmware == fw.FIRMWARE_ECLAB else fw.FIRMWARE_NOT_LOADED
        write_out(rcvt_ptr, ctypes.c_int32(1))
        write_out(kernel_ptr, ctypes.c_int32(2))
        return fw.OK

    def BL_GetHardConf(self, handle: int, channel: int, conf_ptr: Any) -> int:
        """Electrode connection and ground; the header allows it on SP-300 series (PREMIUM) channels only."""
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        if ch.board != fw.PREMIUM:
            return fw.DEVICE_NOT_ALLOWED
        conn, ground = ch.hard_conf
        write_out(conf_ptr, HardwareConf(Conn=conn, Ground=ground))
        return fw.OK

    def BL_SetHardConf(self, handle: int, channel: int, conf: Any) -> int:
        """``Conn`` 0 standard, 1 CE to ground, 2 WE to ground, 3 HV; ``Ground`` 0 grounded, 1 floating."""
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        if ch.board != fw.PREMIUM:
            return fw.DEVICE_NOT_ALLOWED
        value = read_in(conf, HardwareConf)
        if value.Conn not in (0, 1, 2, 3) or value.Ground not in (0, 1):
            return fw.INVALID_PARAMETERS
        self._advance(ch, self.clock.now())
        if ch.running(self.clock.now()):
            return fw.CHANNEL_RUNNING
        ch.hard_conf = (int(value.Conn), int(value.Ground))
        return fw.OK

    def BL_SetExperimentInfos(self, handle: int, channel: int, infos: Any) -> int:
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        ch.experiment = read_in(infos, ExperimentInfos)
        return fw.OK

    def BL_GetExperimentInfos(self, handle: int, channel: int, infos_ptr: Any) -> int:
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        write_out(infos_ptr, ch.experiment)
        return fw.OK

    def BL_GetUSBdeviceinfos(
        self, index: int, company: Any, company_size: Any, device: Any, device_size: Any, serial: Any,
        serial_size: Any,
    ) -> bool:  # fmt: skip
        """Maker, model and serial number of the instrument at ``USB<index>``; false when there is none."""
        found = self.devices.get(f"USB{int(index)}") or self.devices.get("*")
        if found is None:
            return False
        texts = (("Bio-Logic", company, company_size), (device_name(found.device_code), device, device_size),
                 (found.serial, serial, serial_size))  # fmt: skip
        return all(self._write_text(buffer, size, text, count_nul=True) == fw.OK for text, buffer, size in texts)

    def BL_GetVolumeSerialNumber(self) -> int:
        return 0x5E1A0001

    def BL_IsVMP4Device(self, device_code: int) -> bool:
        """Whether the chassis is VMP-300 technology (SP-100/200/300, VSP-300, VMP-300, SP-240, BP-300)."""
        return int(device_code) in (12, 16, 20, 21, 23, 27, 32)

    def BL_LoadFlash(self, handle: int, flash_file: bytes | None, gauge: bool) -> int:
        """Updating the communication firmware needs a ``.flash`` file; the simulated one is already current."""
        if self._device(handle) is None:
            return fw.NOT_CONNECTED
        if not flash_file or not _basename(flash_file).lower().endswith(".flash"):
            return fw.FILE_NOT_EXISTS
        return fw.OK

    # -- parameters and techniques -----------------------------------------------------------------------------
    def _define(self, label: bytes, kind: int, raw: int, index: int, param_ptr: Any) -> int:
        if not label or len(label) >= 64:
            return fw.INVALID_PARAMETERS
        param = EccParam(ParamStr=label, ParamType=kind, ParamVal=raw, ParamIndex=int(index))
        write_out(param_ptr, param)
        return fw.OK

    def BL_DefineBoolParameter(self, label: bytes, value: bool, index: int, param_ptr: Any) -> int:
        return self._define(label, fw.BOOL, 1 if value else 0, index, param_ptr)

    def BL_DefineSglParameter(self, label: bytes, value: float, index: int, param_ptr: Any) -> int:
        try:
            raw = struct.unpack("<i", struct.pack("<f", float(value)))[0]
        except OverflowError:
            return fw.INVALID_PARAMETERS
        return self._define(label, fw.SINGLE, raw, index, param_ptr)

    def BL_DefineIntParameter(self, label: bytes, value: int, index: int, param_ptr: Any) -> int:
        value = int(value)
        if not -(2**31) <= value < 2**31:
            return fw.INVALID_PARAMETERS
        return self._define(label, fw.INT, value, index, param_ptr)

    def BL_LoadTechnique(
        self, handle: int, channel: int, ecc_file: bytes, params: Any, first: bool, last: bool, display: bool
    ) -> int:
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        if code := self._fault("BL_LoadTechnique"):
            return code
        if ch.firmware == fw.FIRMWARE_ECLAB:
            return fw.ECLAB_LOADED
        if ch.firmware != fw.FIRMWARE_KERNEL:
            return fw.FIRMWARE_NOT_LOADED
        self._advance(ch, self.clock.now())
        if ch.running(self.clock.now()):
            return fw.CHANNEL_RUNNING
        code, stem, name = self._technique_file(ch, ecc_file)
        if stem is None:
            return code
        array = _param_array(params)
        if array is None:
            return fw.INVALID_PARAMETERS
        try:
            technique = fw.parse_technique(stem, array)
        except fw.Refused as refusal:
            ch.messages.append(str(refusal))
            return refusal.code
        if first:
            ch.techniques, ch.param_blocks, ch.list_closed, ch.run = [], [], False, None
        if stem == "loop" and not 0 <= int(technique.scalar("protocol_number")) < len(ch.techniques):  # type: ignore[arg-type]
            ch.messages.append("loop: protocol_number must name an earlier technique (0-based)")
            return fw.INVALID_PARAMETERS
        elif ch.list_closed:
            ch.messages.append("cannot load a technique after the last one; load again with First")
            return fw.LOAD_TECHNIQUE_FAILED
        ch.techniques.append(technique)
        ch.param_blocks.append(_owned_copy(array))
        ch.list_closed = bool(last)
        ch.messages.append(f"technique {len(ch.techniques) - 1} loaded: {name}")
        return fw.OK

    def _technique_file(self, ch: SimChannel, ecc_file: bytes | None) -> tuple[int, str | None, str]:
        """(code, stem, file name) of a technique file for this channel's board; stem None when refused."""
        if not ecc_file:
            return fw.INVALID_PARAMETERS, None, ""
        name = _basename(ecc_file)
        stem, suffix = _split_ecc(name)
        if stem is None:
            return fw.ECC_FILE_NOT_EXISTS, None, name
        if suffix != fw.ECC_SUFFIX[ch.board]:
            ch.messages.append(f"{name}: technique file not compatible with this board")
            return fw.INCOMPATIBLE_ECC, None, name
        return fw.OK, stem, name

    def BL_UpdateParameters(
        self, handle: int, channel: int, technique_index: int, params: Any, ecc_file: bytes | None
    ) -> int:
        """Change parameters of loaded technique ``technique_index`` (0-based), also while it runs.

        Only the entries sent change; the file must be the one loaded at that index. A running channel applies
        the new values from the next step the firmware computes (a step under way keeps its parameters).
        """
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        if ch.firmware != fw.FIRMWARE_KERNEL:
            return fw.ECLAB_LOADED if ch.firmware == fw.FIRMWARE_ECLAB else fw.FIRMWARE_NOT_LOADED
        code, stem, name = self._technique_file(ch, ecc_file)
        if stem is None:
            return code
        index = int(technique_index)
        if not 0 <= index < len(ch.techniques) or ch.techniques[index].stem != stem:
            ch.messages.append(f"update: technique {index} is not a loaded {name}")
            return fw.UPDATE_PARAMETERS
        array = _param_array(params)
        if array is None:
            return fw.INVALID_PARAMETERS
        technique = ch.techniques[index]
        try:
            merged = fw.update_values(technique, array)
        except fw.Refused as refusal:
            ch.messages.append(f"update: {refusal}")
            return refusal.code
        self._advance(ch, self.clock.now())
        technique.values.clear()
        technique.values.update(merged)
        ch.param_blocks[index] = _owned_copy([*ch.param_blocks[index], *array])
        ch.messages.append(f"technique {index} updated: {name}")
        return fw.OK

    def BL_GetTechniqueInfos(self, handle: int, channel: int, technique_index: int, infos_ptr: Any) -> int:
        """Loaded technique ``technique_index``: its ID and its parameters (pointers into the library's memory)."""
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        index = int(technique_index)
        if not 0 <= index < len(ch.techniques):
            return fw.INVALID_PARAMETERS
        block = ch.param_blocks[index]
        infos = TechniqueInfos(id=ch.techniques[index].table.technique_id, indx=index, nbParams=len(block),
                               nbSettings=0, Params=ctypes.addressof(block) if len(block) else None)  # fmt: skip
        write_out(infos_ptr, infos)
        return fw.OK

    def BL_GetParamInfos(self, handle: int, channel: int, technique_index: int, infos_ptr: Any) -> int:
        return self.BL_GetTechniqueInfos(handle, channel, technique_index, infos_ptr)

    # -- running --------------------------------------------------------------------------------------------------
    def BL_StartChannel(self, handle: int, channel: int) -> int:
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        if code := self._fault("BL_StartChannel"):
            return code
        if ch.firmware == fw.FIRMWARE_ECLAB:
            return fw.ECLAB_LOADED
        if ch.firmware != fw.FIRMWARE_KERNEL:
            return fw.FIRMWARE_NOT_LOADED
        now = self.clock.now()
        self._advance(ch, now)
        if ch.running(now):
            return fw.CHANNEL_RUNNING
        if not ch.techniques or not ch.list_closed:
            return fw.LOAD_TECHNIQUE_FAILED
        try:
            cell = ch.cell()
        except CellUnavailable as exc:
            ch.messages.append(f"cannot start: {exc}")
            return fw.FUNCTION_FAILED
        config = RunConfig(ch.board, ch.timebase, ch.scan_rate_unit, ch.phase_unit)
        ch.pending.clear()
        ch.run = TechniqueRun(list(ch.techniques), cell, config, now)
        ch.transient_polls = ch.start_polls
        e_range = ch.techniques[0].scalar("E_Range", 3)
        ch.e_range = int(e_range) if isinstance(e_range, int) else 3
        return fw.OK

    def BL_StopChannel(self, handle: int, channel: int) -> int:
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        if ch.run is not None and ch.run.finished_at is None:
            ch.run.stop(self.clock.now(), lambda seg, a, b: self._emit(ch, seg, a, b))
        ch.transient_polls = 0
        return fw.OK

    def BL_StartChannels(self, handle: int, channels: Any, results: Any, count: int) -> int:
        """Start every channel selected in the mask; ``results[k]`` is channel k's code."""
        if self._device(handle) is None:
            return fw.NOT_CONNECTED
        if not channels or not results:
            return fw.INVALID_PARAMETERS
        return self._per_channel(channels, results, count, lambda k: self.BL_StartChannel(handle, k))

    def BL_StopChannels(self, handle: int, channels: Any, results: Any, count: int) -> int:
        if self._device(handle) is None:
            return fw.NOT_CONNECTED
        if not channels or not results:
            return fw.INVALID_PARAMETERS
        return self._per_channel(channels, results, count, lambda k: self.BL_StopChannel(handle, k))

    def _advance(self, ch: SimChannel, now: float) -> None:
        """Run the channel up to ``now``; the instrument runs whether or not anyone polls or reports."""
        run = ch.run
        if run is None or run.finished_at is not None:
            return
        try:
            run.advance(now, lambda seg, a, b: self._emit(ch, seg, a, b))
        except Exception as exc:  # the cell cannot run what was loaded: the firmware stops the channel
            run.current, run.finished_at = None, run.cursor
            ch.messages.append(f"technique {run.position} failed: {exc}")

    @staticmethod
    def _emit(ch: SimChannel, seg: Segment, first: int, end: int) -> None:
        assert ch.run is not None
        start_time = seg.technique_start - ch.run.started
        key = (seg.technique_index, seg.technique_id, seg.process, seg.loop, start_time)
        rows = seg.words[first:end]
        last = ch.pending[-1] if ch.pending else None
        if last is not None and (last.technique_index, last.technique_id, last.process, last.loop,
                                 last.start_time) == key:  # fmt: skip
            last.rows.append(rows)
            last.count += len(rows)
        else:
            ch.pending.append(DataBlock(*key, rows=[rows], count=len(rows)))

    @staticmethod
    def _mem_filled(ch: SimChannel) -> int:
        return sum(block.count * 4 * (block.rows[0].shape[1] if block.rows else 0) for block in ch.pending)

    def _values(self, ch: SimChannel, now: float, transient: bool) -> CurrentValues:
        running = ch.running(now) and not transient
        if ch.run is not None and running:
            ewe, current, freq = ch.run.live(now)
        else:
            ewe, current, freq = _open_circuit(ch), 0.0, 0.0
        full_scale = fw.E_RANGE_FULL_SCALE.get(ch.e_range, 10.0)
        return CurrentValues(
            State=fw.RUN if running else fw.STOP, MemFilled=self._mem_filled(ch), TimeBase=ch.timebase, Ewe=ewe,
            EweRangeMin=-full_scale, EweRangeMax=full_scale, Ece=0.0, EceRangeMin=-10.0, EceRangeMax=10.0,
            I=current, IRange=fw.I_RANGE_AUTO, ElapsedTime=(now - ch.run.started) if ch.run else 0.0, Freq=freq,
        )  # fmt: skip

    def _poll(self, ch: SimChannel) -> tuple[float, bool]:
        """Advance to now; returns (now, transient) where transient is a STOP-before-RUN poll."""
        now = self.clock.now()
        transient = ch.transient_polls > 0
        if transient:
            ch.transient_polls -= 1
        self._advance(ch, now)
        return now, transient

    def BL_GetCurrentValues(self, handle: int, channel: int, values_ptr: Any) -> int:
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        if code := self._fault("BL_GetCurrentValues"):
            return code
        now, transient = self._poll(ch)
        write_out(values_ptr, self._values(ch, now, transient))
        return fw.OK

    def BL_GetData(self, handle: int, channel: int, buffer_ptr: Any, infos_ptr: Any, values_ptr: Any) -> int:
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        if code := self._fault("BL_GetData"):
            return code
        if not buffer_ptr or not infos_ptr or not values_ptr:
            return fw.INVALID_PARAMETERS
        now, transient = self._poll(ch)
        infos = DataInfos()
        while ch.pending and not ch.pending[0].count:
            ch.pending.popleft()
        if ch.pending and not transient:
            block = ch.pending[0]
            cols = len(columns(block.technique_id, block.process, ch.board))
            words = np.ascontiguousarray(block.take(BUFFER_WORDS // cols), dtype=np.uint32)
            if not block.count:
                ch.pending.popleft()
            ctypes.memmove(ctypes.addressof(buffer_ptr.contents), words.ctypes.data, words.nbytes)
            infos = DataInfos(
                IRQskipped=0, NbRows=len(words), NbCols=cols, TechniqueIndex=block.technique_index,
                TechniqueID=block.technique_id, ProcessIndex=block.process, loop=block.loop,
                StartTime=block.start_time, MuxPad=0,
            )  # fmt: skip
        write_out(infos_ptr, infos)
        write_out(values_ptr, self._values(ch, now, transient))
        return fw.OK

    def BL_GetMessage(self, handle: int, channel: int, buffer: Any, size: Any) -> int:
        code, ch = self._channel(handle, channel)
        if ch is None:
            return code
        return self._write_text(buffer, size, ch.messages.popleft() if ch.messages else "")

    @staticmethod
    def _write_text(buffer: Any, size: Any, text: str, count_nul: bool = False) -> int:
        """Copy NUL-terminated text into a caller's buffer of ``*size`` bytes; ``*size`` becomes its length (with
        the NUL when ``count_nul``, as kbio's reading of ``BL_GetUSBdeviceinfos`` expects)."""
        if not buffer or not size:
            return fw.INVALID_PARAMETERS
        capacity = int(size.contents.value)
        if capacity <= 0:
            return fw.INVALID_PARAMETERS
        data = text.encode("latin-1", "replace")[: max(0, capacity - 1)] + b"\0"
        ctypes.memmove(buffer, data, len(data))
        size.contents.value = len(data) if count_nul else len(data) - 1
        return fw.OK


def _open_circuit(ch: SimChannel) -> float:
    """Ewe at rest: the cell's open-circuit voltage, 0 V with open leads."""
    try:
        return ch.cell().open_circuit_voltage()
    except CellUnavailable:
        return 0.0


def _param_array(params: Any) -> Any | None:
    """The caller's ``TEccParam`` array behind a by-value ``TEccParams`` (read through its raw pointer, as the
    DLL does); None for a length or pointer the DLL would refuse."""
    header = read_in(params, EccParams)
    if header.len < 0 or header.len > 1000 or (header.len and not header.pParams):
        return None
    return (EccParam * header.len).from_address(header.pParams)


def _owned_copy(params: Any) -> Any:
    """A copy of parameter entries in the library's own memory (the caller's array dies after the call)."""
    entries = [EccParam.from_buffer_copy(bytes(p)) for p in params]
    return (EccParam * len(entries))(*entries)


def _basename(path: bytes) -> str:
    """The file name of a Windows or POSIX path, as the DLL receives Windows paths."""
    return re.split(r"[\\/]", path.decode("latin-1"))[-1]


def _split_ecc(name: str) -> tuple[str | None, str]:
    """``cplimit4.ecc`` -> (``cplimit``, ``4``); (None, '') for a file the package does not ship."""
    if not name.lower().endswith(".ecc"):
        return None, ""
    base = name[:-4].lower()
    if base in fw.TECHNIQUES:
        return base, ""
    if base[:-1] in fw.TECHNIQUES and base[-1] in "45":
        return base[:-1], base[-1]
    return None, ""
