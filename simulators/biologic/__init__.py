"""A simulated EClib: the DLL's call surface, executing techniques on the cell models under an injected clock.

``load_library(board="vmp3" | "sp300" | "digicore", channels=N, cell=..., clock=...)`` is what clients load: an
object like the one ``ctypes.WinDLL("EClib64.dll")`` returns, whose exports are C function pointers built from the
header prototypes over the simulator, so any EClib client binds it with its own code. ``SimulatedEClib`` is the
same instrument at Python level (tests that need firmware states, board types or faults build
:class:`~simulators.biologic.eclib.SimDevice` / ``SimChannel`` themselves); ``simulated_eclib`` builds one with the
firmware already loaded.
"""

from __future__ import annotations

from collections.abc import Mapping

from protocols.clock import Clock
from simulators.biologic import firmware
from simulators.biologic.eclib import SimChannel, SimDevice, SimulatedEClib
from simulators.biologic.library import SimulatedLibrary, load_library
from simulators.cells.base import CellModel

__all__ = ["SimChannel", "SimDevice", "SimulatedEClib", "SimulatedLibrary", "load_library", "simulated_eclib"]

_DEVICE_BY_BOARD = {firmware.ESSENTIAL: 5, firmware.PREMIUM: 20, firmware.DIGICORE: 34}  # VMP3, VSP-300, VSP-3e


def simulated_eclib(
    clock: Clock, models: Mapping[int, CellModel], *, address: str = "USB0", board: int = firmware.ESSENTIAL
) -> SimulatedEClib:
    """One instrument at ``address`` with a cell on each given 0-based channel, kernel firmware loaded."""
    channels = {
        number: SimChannel(model, board=board, firmware=firmware.FIRMWARE_KERNEL,
                           max_bandwidth=9 if board == firmware.PREMIUM else 7)
        for number, model in models.items()
    }  # fmt: skip
    return SimulatedEClib(clock, {address: SimDevice(_DEVICE_BY_BOARD[board], channels)})
