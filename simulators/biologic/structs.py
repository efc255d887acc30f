"""The instrument side's own copy of the EClib structures (4-byte packing, as the vendor header).

Simulators may not import drivers, as real firmware shares no code with its host; the two copies are tested against
each other for identical sizes and offsets. Pointer fields are ``c_void_p`` here: the simulator reads the caller's
memory by address, exactly as the DLL does.
"""

from __future__ import annotations

import ctypes
from typing import TypeVar

BUFFER_WORDS = 1000
_S = TypeVar("_S", bound=ctypes.Structure)

_i32, _f32 = ctypes.c_int32, ctypes.c_float


class _Packed(ctypes.Structure):
    _pack_ = 4


def _fields(*names: str, kind: type = _i32) -> list[tuple[str, type]]:
    return [(n, kind) for n in names]


class DeviceInfos(_Packed):
    _fields_ = _fields(
        "DeviceCode", "RAMSize", "CPU", "NumberOfChannels", "NumberOfSlots", "FirmwareVersion",
        "FirmwareDate_yyyy", "FirmwareDate_mm", "FirmwareDate_dd", "HTdisplayOn", "NbOfConnectedPC",
    )  # fmt: skip


class ChannelInfos(_Packed):
    _fields_ = _fields(
        "Channel", "BoardVersion", "BoardSerialNumber", "FirmwareCode", "FirmwareVersion", "XilinxVersion",
        "AmpCode", "NbAmps", "Lcboard", "Zboard", "MUXboard", "GPRAboard", "MemSize", "MemFilled", "State",
        "MaxIRange", "MinIRange", "MaxBandwidth", "NbOfTechniques", "FloatFormat", "CPUCIE",
    )  # fmt: skip


class CurrentValues(_Packed):
    _fields_ = [
        ("State", _i32), ("MemFilled", _i32), ("TimeBase", _f32), ("Ewe", _f32), ("EweRangeMin", _f32),
        ("EweRangeMax", _f32), ("Ece", _f32), ("EceRangeMin", _f32), ("EceRangeMax", _f32), ("Eoverflow", _i32),
        ("I", _f32), ("IRange", _i32), ("Ioverflow", _i32), ("ElapsedTime", _f32), ("Freq", _f32),
        ("Rcomp", _f32), ("Saturation", _i32), ("OptErr", _i32), ("OptPos", _i32),
    ]  # fmt: skip


class DataInfos(_Packed):
    _fields_ = [
        ("IRQskipped", _i32), ("NbRows", _i32), ("NbCols", _i32), ("TechniqueIndex", _i32), ("TechniqueID", _i32),
        ("ProcessIndex", _i32), ("loop", _i32), ("StartTime", ctypes.c_double), ("MuxPad", _i32),
    ]  # fmt: skip


class DataBuffer(_Packed):
    _fields_ = [("data", ctypes.c_uint32 * BUFFER_WORDS)]


class EccParam(_Packed):
    _fields_ = [("ParamStr", ctypes.c_char * 64), ("ParamType", _i32), ("ParamVal", _i32), ("ParamIndex", _i32)]


class EccParams(_Packed):
    _fields_ = [("len", _i32), ("pParams", ctypes.c_void_p)]


class HardwareConf(_Packed):
    _fields_ = _fields("Conn", "Ground")


class TechniqueInfos(_Packed):
    _fields_ = [
        ("id", _i32), ("indx", _i32), ("nbParams", _i32), ("nbSettings", _i32), ("Params", ctypes.c_void_p),
        ("HardSettings", ctypes.c_void_p),
    ]  # fmt: skip


class ExperimentInfos(_Packed):
    _fields_ = [*_fields("Group", "PCidentifier", "TimeHMS", "TimeYMD"), ("Filename", ctypes.c_char * 256)]


CHANNEL_INFOS_SHORT = ChannelInfos.NbOfTechniques.offset + 4
"""76: the 19-field ``TChannelInfos`` of kbio, easy-biologic, PyExpLabSys and the Delphi unit; the 2013 C header
adds ``FloatFormat`` and ``CPUCIE`` (84 bytes)."""


class BadPointer(ValueError):
    """The caller passed NULL where the DLL writes or reads memory: the export answers ERR_GEN_INVALIDPARAMETERS."""


def write_out(pointer: object, value: ctypes.Structure | ctypes._SimpleCData, size: int | None = None) -> None:
    """Copy ``value``'s bytes (its first ``size``) into the caller's memory behind ``pointer``, as the DLL fills
    an out-parameter; :class:`BadPointer` for NULL."""
    if not pointer:
        raise BadPointer("NULL out-parameter")
    target = pointer.contents  # type: ignore[attr-defined]
    size = min(ctypes.sizeof(target), ctypes.sizeof(value), ctypes.sizeof(value) if size is None else size)
    ctypes.memmove(ctypes.addressof(target), ctypes.addressof(value), size)


def read_in(value: ctypes.Structure, kind: type[_S]) -> _S:
    """Reinterpret the caller's by-value struct as our own layout (same bytes, our field names)."""
    raw = ctypes.string_at(ctypes.addressof(value), ctypes.sizeof(value))
    return kind.from_buffer_copy(raw.ljust(ctypes.sizeof(kind), b"\0")[: ctypes.sizeof(kind)])
