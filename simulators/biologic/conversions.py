"""The DLL's stateless converters of ``BL_GetData`` words, as the vendor exports them (reference sections 2.2, 4).

Every independent client decodes row words through these (``BL_ConvertChannelNumericIntoSingle`` with the channel's
board type, or the older ``BL_ConvertNumericIntoSingle``, which assumes the TI format), so the simulated library
must answer them exactly as the vendor DLL was measured to: TI floats on board types 1 and 2, IEEE on 3, and the
two time words read low word first on DIGICORE.
"""

from __future__ import annotations

import ctypes
from typing import Any

from simulators.biologic import dspfloat
from simulators.biologic.firmware import INVALID_PARAMETERS, OK
from simulators.biologic.structs import write_out

BOARD_TYPES = (dspfloat.ESSENTIAL, dspfloat.PREMIUM, dspfloat.DIGICORE)


class ConversionExports:
    """``BL_Convert*``: pure functions of their arguments, shared by every connection."""

    def BL_ConvertNumericIntoSingle(self, word: int, single_ptr: Any) -> int:
        """The TI DSP reading of ``word`` (the pre-6.x converter knows no other format)."""
        value = float(dspfloat.ti_values(int(word) & 0xFFFFFFFF)[0])
        write_out(single_ptr, ctypes.c_float(value))
        return OK

    def BL_ConvertNumericIntoFloat(self, word: int, double_ptr: Any) -> int:
        """As ``BL_ConvertNumericIntoSingle``, into a double."""
        write_out(double_ptr, ctypes.c_double(float(dspfloat.ti_values(int(word) & 0xFFFFFFFF)[0])))
        return OK

    def BL_ConvertChannelNumericIntoSingle(self, word: int, single_ptr: Any, board: int) -> int:
        if int(board) not in BOARD_TYPES:
            return INVALID_PARAMETERS
        value = float(dspfloat.float_values(int(word) & 0xFFFFFFFF, int(board))[0])
        write_out(single_ptr, ctypes.c_float(value))
        return OK

    def BL_ConvertTimeChannelNumericIntoSeconds(self, words: Any, seconds_ptr: Any, timebase: float, board: int) -> int:
        """Seconds = time base x ticks of the two words ``words[0], words[1]`` (no ``StartTime`` added)."""
        if int(board) not in BOARD_TYPES or not words:
            return INVALID_PARAMETERS
        ticks = dspfloat.tick_count(int(words[0]), int(words[1]), int(board))
        write_out(seconds_ptr, ctypes.c_double(float(ctypes.c_float(timebase).value) * ticks))
        return OK
