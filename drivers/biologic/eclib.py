"""The thin ctypes layer over EClib: one Python method per export, return codes turned into exceptions.

Nothing here knows about techniques, step programs or data layouts. The same class drives the real DLL (loaded
with :func:`load_eclib`) or any object exposing the same ``BL_*`` functions, such as the simulated EClib: both
receive exactly the same arguments (plain ints and bools for by-value scalars, ``bytes`` or ``None`` (NULL) for
``const char*``, ``ctypes.pointer`` objects for out-parameters, ctypes arrays, and ``TEccParams`` by value), so
the simulator exercises the same memory layouts the DLL would.

Binding: every export that is a ctypes function pointer (what ``ctypes.WinDLL(path)`` hands out, or a library
of C function pointers built by a simulator) gets ``argtypes``/``restype`` from :data:`SIGNATURES`, whether it
came through :func:`load_eclib` or straight into :class:`EClib`; ctypes then converts and checks each argument,
and a float reaches ``BL_DefineSglParameter`` as a C float. Plain Python callables are called as they are.

Every call goes through one lock: the DLL is not re-entrant per instrument (``ERR_GEN_FUNCTIONINPROGRESS``) and
one station process may poll several channels of one instrument from different threads.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drivers.biologic.codes import BoardType, ParamType
from drivers.biologic.errors import EClibError, EClibLoadError
from drivers.biologic.numbers import UNREPORTED, board_type
from drivers.biologic.structs import (
    TChannelInfos,
    TCurrentValues,
    TDataBuffer,
    TDataInfos,
    TDeviceInfos,
    TEccParam,
    TEccParams,
)

_u8, _i32, _u32, _bool, _f32, _char_p = (
    ctypes.c_uint8, ctypes.c_int32, ctypes.c_uint32, ctypes.c_bool, ctypes.c_float, ctypes.c_char_p,
)  # fmt: skip
_P = ctypes.POINTER

SIGNATURES: dict[str, tuple[tuple[Any, ...], Any]] = {
    "BL_GetLibVersion": ((_char_p, _P(_u32)), _i32),
    "BL_GetErrorMsg": ((_i32, _char_p, _P(_u32)), _i32),
    "BL_Connect": ((_char_p, _u8, _P(_i32), _P(TDeviceInfos)), _i32),
    "BL_Disconnect": ((_i32,), _i32),
    "BL_TestConnection": ((_i32,), _i32),
    "BL_GetChannelsPlugged": ((_i32, _P(_u8), _u8), _i32),
    "BL_IsChannelPlugged": ((_i32, _u8), _bool),
    "BL_GetChannelBoardType": ((_i32, _u8, _P(_u32)), _i32),
    "BL_LoadFirmware": ((_i32, _P(_u8), _P(_i32), _u8, _bool, _bool, _char_p, _char_p), _i32),
    "BL_GetChannelInfos": ((_i32, _u8, _P(TChannelInfos)), _i32),
    "BL_DefineBoolParameter": ((_char_p, _bool, _i32, _P(TEccParam)), _i32),
    "BL_DefineSglParameter": ((_char_p, _f32, _i32, _P(TEccParam)), _i32),
    "BL_DefineIntParameter": ((_char_p, _i32, _i32, _P(TEccParam)), _i32),
    "BL_LoadTechnique": ((_i32, _u8, _char_p, TEccParams, _bool, _bool, _bool), _i32),
    "BL_StartChannel": ((_i32, _u8), _i32),
    "BL_StopChannel": ((_i32, _u8), _i32),
    "BL_GetCurrentValues": ((_i32, _u8, _P(TCurrentValues)), _i32),
    "BL_GetData": ((_i32, _u8, _P(TDataBuffer), _P(TDataInfos), _P(TCurrentValues)), _i32),
    "BL_GetMessage": ((_i32, _u8, _char_p, _P(_u32)), _i32),
}
"""Argument and return types of the exports this driver uses, from the vendor header (reference section 2)."""

OPTIONAL_EXPORTS = frozenset({"BL_GetChannelBoardType", "BL_GetLibVersion", "BL_GetErrorMsg"})
"""Exports the driver can do without. ``BL_GetChannelBoardType`` is absent from the EClib DLLs of packages 5.35,
6.01 and 6.04 (it is there in 6.08); without it the board type follows from the device family (VMP-300 family ->
PREMIUM, otherwise ESSENTIAL), which cannot name a DIGICORE board: those need 6.08 or later anyway (x5.ecc)."""

CHANNEL_SLOTS = 16
"""Channel numbers 0..15: the size of the plugged-channel array and of the ``BL_LoadFirmware`` selection mask."""

DEFAULT_DLL_NAME = "EClib64.dll" if sys.maxsize > 2**32 else "EClib.dll"


def load_eclib(path: str | os.PathLike[str]) -> Any:
    """Load the DLL at ``path`` and declare the signatures; every failure says which path and what to fix."""
    dll_path = Path(path)
    if dll_path.is_dir():
        dll_path = dll_path / DEFAULT_DLL_NAME
    if not dll_path.is_file():
        raise EClibLoadError(
            f"EClib not found at {dll_path}; give the path of the {DEFAULT_DLL_NAME} of the EC-Lab Development "
            f"Package (default folder C:\\EC-Lab Development Package\\lib)"
        )
    loader = getattr(ctypes, "WinDLL", ctypes.CDLL)  # stdcall exports on Windows; CDLL elsewhere (Wine builds)
    try:
        dll = loader(str(dll_path))
    except OSError as exc:
        bits = 64 if sys.maxsize > 2**32 else 32
        raise EClibLoadError(
            f"EClib at {dll_path} cannot be loaded ({exc}); it must be a Windows DLL of the same bitness as this "
            f"{bits}-bit Python (EClib64.dll for 64-bit), and EClib runs only on Windows (or under Wine)"
        ) from exc
    declare_signatures(dll)
    return dll


def declare_signatures(dll: Any) -> None:
    """Set ``argtypes``/``restype`` on each export so ctypes converts and checks every argument."""
    missing = []
    for name, (argtypes, restype) in SIGNATURES.items():
        try:
            function = getattr(dll, name)
        except AttributeError:
            if name not in OPTIONAL_EXPORTS:
                missing.append(name)
            continue
        function.argtypes = list(argtypes)
        function.restype = restype
    if missing:
        raise EClibLoadError(f"the loaded library lacks the EClib exports {', '.join(missing)}; is it EClib?")


def bind_function_pointers(lib: Any) -> None:
    """Declare :data:`SIGNATURES` on the exports of ``lib`` that are ctypes function pointers, and only those.

    A ctypes function pointer without ``argtypes`` would pass a Python float as nothing C knows and a ``bool`` as
    an ``int``; declaring them makes any library of C function pointers behave as the DLL loaded by
    :func:`load_eclib` does. Objects whose exports are Python callables (test fakes) are left alone.
    """
    for name, (argtypes, restype) in SIGNATURES.items():
        function = getattr(lib, name, None)
        if isinstance(function, ctypes._CFuncPtr):  # the base class of every ctypes function pointer
            function.argtypes = list(argtypes)
            function.restype = restype


_LOCKS: dict[int, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(lib: Any) -> threading.RLock:
    """One lock per loaded library, shared by every channel's wrapper: the DLL is not re-entrant."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(id(lib), threading.RLock())


def channel_mask(channels: Sequence[int]) -> Any:
    """The 16-entry selection mask ``BL_LoadFirmware`` (and ``BL_StartChannels``) take: ``mask[k] = 1`` selects
    channel k. It is indexed by channel number, not a list of channel numbers: a list ``[2]`` would select
    channel 0 (reference section 2.1, item 7)."""
    mask = (ctypes.c_uint8 * CHANNEL_SLOTS)()
    for channel in channels:
        if not 0 <= channel < CHANNEL_SLOTS:
            raise ValueError(f"channel {channel} is outside 0..{CHANNEL_SLOTS - 1} (the DLL counts from 0)")
        mask[channel] = 1
    return mask


class EClib:
    """Typed calls on an EClib-like object (the DLL or the simulator); raises :class:`EClibError` on codes < 0."""

    def __init__(self, lib: Any, where: str = "Biologic"):
        self._lib = lib
        self._where = where
        self._lock = _lock_for(lib)
        bind_function_pointers(lib)

    def _call(self, name: str, *args: Any, where: str = "") -> int:
        with self._lock:
            code = int(getattr(self._lib, name)(*args))
        if code < 0:
            raise EClibError(code, name, where or self._where)
        return code

    def has(self, name: str) -> bool:
        return hasattr(self._lib, name)

    # -- connection -------------------------------------------------------------------------------------------
    def connect(self, address: str, timeout_s: int = 5) -> tuple[int, TDeviceInfos]:
        handle = ctypes.c_int32(0)
        info = TDeviceInfos()
        self._call(
            "BL_Connect", address.encode("ascii"), max(1, min(255, timeout_s)), ctypes.pointer(handle),
            ctypes.pointer(info), where=address,
        )  # fmt: skip
        return handle.value, info

    def disconnect(self, device: int) -> None:
        self._call("BL_Disconnect", device)

    # -- channels and firmware ----------------------------------------------------------------------------------
    def channels_plugged(self, device: int) -> list[int]:
        plugged = (ctypes.c_uint8 * CHANNEL_SLOTS)()
        self._call("BL_GetChannelsPlugged", device, plugged, CHANNEL_SLOTS)
        return [ch for ch in range(CHANNEL_SLOTS) if plugged[ch]]

    def board_type(self, device: int, channel: int) -> BoardType:
        value = ctypes.c_uint32(0)
        self._call("BL_GetChannelBoardType", device, channel, ctypes.pointer(value), where=f"channel {channel}")
        return board_type(value.value)

    def load_firmware(
        self, device: int, channels: Sequence[int], kernel: str | None, xlx: str | None, *, force: bool = False
    ) -> dict[int, int]:
        """Load the kernel (and FPGA file) on ``channels``; returns each selected channel's result code.

        ``channels`` go in as a 16-entry selection mask, results come back in a 16-entry array indexed the same
        way. ``None`` for a file is passed as NULL (the DLL's default, and "no FPGA file" for DIGICORE): an empty
        string is a file name, not the absence of one. Raises on the first selected channel with a negative code.
        """
        mask = channel_mask(channels)
        results = (ctypes.c_int32 * CHANNEL_SLOTS)()
        files = (None if kernel is None else kernel.encode(), None if xlx is None else xlx.encode())
        with self._lock:
            overall = int(self._lib.BL_LoadFirmware(device, mask, results, CHANNEL_SLOTS, False, force, *files))
        codes = {channel: int(results[channel]) for channel in sorted(set(channels))}
        for channel, code in codes.items():  # the per-channel code says which channel
            if code < 0:
                raise EClibError(code, "BL_LoadFirmware", f"channel {channel}")
        if overall < 0:
            raise EClibError(overall, "BL_LoadFirmware", self._where)
        return codes

    def channel_infos(self, device: int, channel: int) -> TChannelInfos:
        """``TChannelInfos`` of one channel. ``FloatFormat`` and ``CPUCIE`` start at :data:`UNREPORTED`: a DLL that
        fills only the 76-byte form of the structure leaves them so, which the caller can tell from 0."""
        info = TChannelInfos(FloatFormat=UNREPORTED, CPUCIE=UNREPORTED)
        self._call("BL_GetChannelInfos", device, channel, ctypes.pointer(info), where=f"channel {channel}")
        return info

    # -- techniques ---------------------------------------------------------------------------------------------
    def define_param(self, label: str, kind: ParamType, value: float | int | bool, index: int) -> TEccParam:
        """Fill one ``TEccParam`` through the DLL's own setter for the declared type (never guessed from value)."""
        param = TEccParam()
        setter = {
            ParamType.BOOLEAN: "BL_DefineBoolParameter",
            ParamType.SINGLE: "BL_DefineSglParameter",
            ParamType.INT32: "BL_DefineIntParameter",
        }[kind]
        converted: float | int | bool
        if kind is ParamType.BOOLEAN:
            converted = bool(value)
        elif kind is ParamType.SINGLE:
            converted = float(value)
        else:
            converted = int(value)
        self._call(setter, label.encode("ascii"), converted, index, ctypes.pointer(param), where=label)
        return param

    def load_technique(
        self, device: int, channel: int, ecc_file: str, params: Sequence[TEccParam], *, first: bool, last: bool
    ) -> None:
        array = (TEccParam * len(params))(*params)
        wrapper = TEccParams(len(params), ctypes.cast(array, ctypes.POINTER(TEccParam)))
        # ``array`` stays referenced until the call returns: the DLL reads it through the raw pointer.
        self._call(
            "BL_LoadTechnique", device, channel, ecc_file.encode(), wrapper, first, last, False,
            where=f"channel {channel} ({os.path.basename(ecc_file)})",
        )  # fmt: skip
        del array

    def start_channel(self, device: int, channel: int) -> None:
        self._call("BL_StartChannel", device, channel, where=f"channel {channel}")

    def stop_channel(self, device: int, channel: int) -> None:
        self._call("BL_StopChannel", device, channel, where=f"channel {channel}")

    # -- live values and data -------------------------------------------------------------------------------------
    def current_values(self, device: int, channel: int) -> TCurrentValues:
        values = TCurrentValues()
        self._call("BL_GetCurrentValues", device, channel, ctypes.pointer(values), where=f"channel {channel}")
        return values

    def get_data(self, device: int, channel: int) -> tuple[TDataBuffer, TDataInfos, TCurrentValues]:
        buffer, infos, values = TDataBuffer(), TDataInfos(), TCurrentValues()
        self._call(
            "BL_GetData", device, channel, ctypes.pointer(buffer), ctypes.pointer(infos), ctypes.pointer(values),
            where=f"channel {channel}",
        )  # fmt: skip
        return buffer, infos, values

    def get_message(self, device: int, channel: int) -> str:
        buffer = ctypes.create_string_buffer(1024)
        size = ctypes.c_uint32(len(buffer))
        self._call("BL_GetMessage", device, channel, buffer, ctypes.pointer(size), where=f"channel {channel}")
        return buffer.value.decode("latin-1")

    def drain_messages(self, device: int, channel: int, limit: int = 100) -> list[str]:
        messages = []
        for _ in range(limit):
            text = self.get_message(device, channel)
            if not text:
                break
            messages.append(text)
        return messages
