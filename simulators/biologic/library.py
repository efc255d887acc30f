"""The simulated EClib as a loaded library: what ``ctypes.WinDLL("EClib64.dll")`` returns, over the simulator.

Every export is a real C function pointer: a ctypes callback built from the header prototype
(:mod:`simulators.biologic.prototypes`) around the simulator's method, handed out through the same foreign-function
class a loaded DLL uses. A client sets ``argtypes``/``restype`` on it (or passes ctypes objects without them) and
calls it; its arguments are converted to C, cross the C boundary and are read back by the callee's prototype,
exactly as with the vendor DLL. So a struct with the wrong packing, an argument of the wrong type or a buffer of
the wrong size shows up here as it would on the instrument PC, and independent clients (easy-biologic, BioLogic's
kbio, this project's driver) load it with their own, unchanged binding code.

Like the DLL, an export never raises into its caller: a NULL out-pointer answers ERR_GEN_INVALIDPARAMETERS (-4), and
a simulator fault ERR_GEN_FUNCTIONFAILED (-6), recorded in :attr:`SimulatedLibrary.faults` for the test to show.
One lock serialises the calls (the DLL is not re-entrant per instrument).
"""

from __future__ import annotations

import ctypes
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Literal

from protocols.clock import Clock, RealClock
from simulators.biologic import firmware as fw
from simulators.biologic.eclib import SimChannel, SimDevice, SimulatedEClib
from simulators.biologic.placement import CellSpec, placements, resolve
from simulators.biologic.prototypes import PROTOTYPES, Prototype
from simulators.biologic.structs import CHANNEL_INFOS_SHORT, BadPointer

Board = Literal["vmp3", "sp300", "digicore"]

_STDCALL = getattr(ctypes, "_FUNCFLAG_STDCALL", None)
_FLAGS: int = _STDCALL if _STDCALL is not None else ctypes._FUNCFLAG_CDECL  # type: ignore[attr-defined]
_FUNCTYPE = getattr(ctypes, "WINFUNCTYPE", ctypes.CFUNCTYPE)
"""stdcall where it exists (32-bit Windows, as the vendor DLL), the platform's C convention elsewhere."""


@dataclass(frozen=True)
class BoardModel:
    """What a chassis of one board technology reports (reference 2.8-2.10)."""

    board: int
    device_code: int
    min_i_range: int
    max_bandwidth: int


BOARDS: dict[str, BoardModel] = {
    "vmp3": BoardModel(fw.ESSENTIAL, 5, 1, 7),  # VMP3: ESSENTIAL boards, 1 nA to 1 A, bandwidth 1-7
    "sp300": BoardModel(fw.PREMIUM, 16, 0, 9),  # SP-300: PREMIUM boards, 100 pA to 1 A, bandwidth 1-9
    "digicore": BoardModel(fw.DIGICORE, 34, 1, 7),  # VSP-3e: DIGICORE boards (VMP3 family)
}


class SimulatedLibrary(ctypes.CDLL):
    """A loaded-library object whose exports are C function pointers into :attr:`simulator`.

    Attribute access and indexing behave as on the object ``ctypes.WinDLL(path)`` returns: ``lib.BL_Connect`` is a
    foreign function cached on the library (``argtypes``/``restype`` set on it stick), ``lib["BL_Connect"]`` a fresh
    one, and an unknown name raises AttributeError.
    """

    _func_flags_ = _FLAGS

    def __init__(self, simulator: SimulatedEClib, name: str = "EClib64.dll (simulated)"):
        # No dlopen: the exports are callbacks. The attributes below are the ones ctypes.CDLL itself keeps.
        self._name = name
        self._handle = 0

        class _FuncPtr(ctypes._CFuncPtr):  # type: ignore[name-defined,misc]
            _flags_ = _FLAGS
            _restype_ = ctypes.c_int

        self._FuncPtr = _FuncPtr
        self.simulator = simulator
        self.faults: list[str] = []
        self._lock = threading.RLock()
        self._callbacks: dict[str, Any] = {}
        for export, prototype in PROTOTYPES.items():
            if hasattr(simulator, export):
                self._callbacks[export] = self._callback(export, prototype)

    @property
    def exports(self) -> tuple[str, ...]:
        return tuple(self._callbacks)

    def __getitem__(self, name_or_ordinal: str | int) -> Any:
        callback = self._callbacks.get(name_or_ordinal) if isinstance(name_or_ordinal, str) else None
        if callback is None:
            raise AttributeError(f"function '{name_or_ordinal}' not found")
        function = self._FuncPtr(ctypes.cast(callback, ctypes.c_void_p).value)
        function.__name__ = name_or_ordinal
        return function

    def _callback(self, export: str, prototype: Prototype) -> Any:
        restype, argtypes = prototype
        method = getattr(self.simulator, export)
        invalid, failed = _failure_values(restype)

        def call(*args: Any) -> Any:
            with self._lock:
                try:
                    return method(*args)
                except BadPointer:
                    return invalid
                except Exception:  # the DLL never raises into its caller; the test reads the fault
                    self.faults.append(f"{export}: {traceback.format_exc()}")
                    return failed

        return _FUNCTYPE(restype, *argtypes)(call)

    # -- the bench, not the DLL -------------------------------------------------------------------------------------
    def place_cell(self, channel: int, cell: CellSpec, seed: int = 0) -> None:
        """Wire another cell to ``channel`` (0-based): a cell name or file, a model, or a factory asked on first use.

        Refused (RuntimeError) while the channel runs a technique list, as nobody swaps a cell under current.
        """
        ch = self._sim_channel(channel)
        self.simulator._advance(ch, self.simulator.clock.now())  # a technique list that has ended by now is over
        if callable(cell) and not isinstance(cell, str):
            source = cell
            ch.place(placement=lambda: resolve(source(channel), seed))  # type: ignore[operator,arg-type]
        else:
            ch.place(model=resolve(cell, seed))  # type: ignore[arg-type]

    def channel(self, channel: int) -> SimChannel:
        """The simulated channel board (firmware state, cell, settings) behind 0-based ``channel``."""
        return self._sim_channel(channel)

    def _sim_channel(self, channel: int) -> SimChannel:
        for device in self.simulator.devices.values():
            if channel in device.channels:
                return device.channels[channel]
        raise KeyError(f"the simulated instrument has no channel {channel} (0-based)")


def _failure_values(restype: Any) -> tuple[Any, Any]:
    if restype is ctypes.c_bool:
        return False, False
    if restype is ctypes.c_uint32:
        return 0, 0
    return fw.INVALID_PARAMETERS, fw.FUNCTION_FAILED


def load_library(
    board: Board = "vmp3",
    channels: int = 1,
    cell: CellSpec = None,
    clock: Clock | None = None,
    *,
    address: str = "*",
    seed: int = 0,
    firmware_loaded: bool = False,
    scan_rate_unit: Literal["V/s", "mV/s"] = "V/s",
    phase_unit: Literal["rad", "deg"] = "rad",
    channel_infos_size: int = CHANNEL_INFOS_SHORT,
    start_polls: int = 0,
) -> SimulatedLibrary:
    """One simulated instrument behind an EClib library object, ready for ``BL_Connect``.

    ``board`` picks the channel technology (ESSENTIAL VMP3, PREMIUM SP-300, DIGICORE VSP-3e) with its chassis code,
    current ranges, bandwidths, ``.ecc`` suffix, firmware files and number formats. ``channels`` channels 0..N-1
    each hold ``cell`` (see :mod:`simulators.biologic.placement`; None is the R/C test box). ``clock`` is real time
    by default. ``address`` ``"*"`` answers any address (the only instrument this library reaches); give one to
    make others fail as unreachable. Channels start without the kernel firmware, as after power-on, unless
    ``firmware_loaded``. ``channel_infos_size`` is what ``BL_GetChannelInfos`` writes: 76 bytes (the 19 fields every
    Python client allocates) by default, 84 for callers known to allocate the 2013 header's 21 fields.
    ``start_polls`` polls right after ``BL_StartChannel`` read STOP with no rows before RUN: the real channel can do
    that (reference 2.13), but it is not the rule, and BioLogic's own example stops at the first STOP it reads, so
    it is off unless asked for.
    """
    if board not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}; found {board!r}")
    if not 1 <= channels <= 16:
        raise ValueError(f"an EClib instrument has 1 to 16 channels; found {channels}")
    model = BOARDS[board]
    deferred = placements(cell, channels, seed)
    sim_channels = {
        k: SimChannel(None, board=model.board, min_i_range=model.min_i_range, max_bandwidth=model.max_bandwidth,
                      firmware=fw.FIRMWARE_KERNEL if firmware_loaded else fw.FIRMWARE_NONE,
                      scan_rate_unit=scan_rate_unit, phase_unit=phase_unit, placement=deferred[k],
                      start_polls=start_polls)
        for k in range(channels)
    }  # fmt: skip
    device = SimDevice(model.device_code, sim_channels)
    simulator = SimulatedEClib(clock or RealClock(), {address: device}, channel_infos_size=channel_infos_size)
    return SimulatedLibrary(simulator)
