"""The number formats of ``BL_GetData`` words: TI-DSP or IEEE-754 singles, and the two-word tick counter.

Measured on the vendor DLLs (reference section 4), not assumed:

* The single-precision words are **Texas Instruments DSP (TMS320C3x) floats** on board types 1 (ESSENTIAL, VMP3
  technology) and 2 (PREMIUM, VMP-300 technology), and IEEE-754 only on board type 3 (DIGICORE); the channel's
  ``TChannelInfos.FloatFormat`` says the same thing (0 TI, 1 IEEE). Reinterpreting a TI word as IEEE reads
  garbage: 4.2 V arrives as 0x02066666, which as IEEE bits is 9.9e-38.
* A TI word is: bits 31-24 the exponent e (two's complement), bit 23 the sign s, bits 22-0 the fraction f;
  value = (1 + f/2**23) * 2**e when s = 0 and (-2 + f/2**23) * 2**e when s = 1; every word with e = -128 is zero,
  whatever its sign and fraction bits (so 0x80000000 is 0, and 0x00000000 is 1.0).
* The two time words count ticks of the channel's time base: ``t_high, t_low`` on boards 1 and 2 (unsigned,
  t_high * 2**32 + t_low), and **low word first** on DIGICORE, where the pair is a signed 64-bit count.

The vendor converts one word per DLL call (``BL_ConvertChannelNumericIntoSingle``); a chunk holds up to 1000
words and a channel catching up reads many chunks, so this module decodes whole arrays with numpy and the DLL is
never called per word. Values come out as float64, which holds every TI value exactly: including the two that a
float32 cannot (the finest fractions at e = -127 and -2**128 at e = 127), where the vendor's single-precision
result would round or overflow.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from drivers.base import DriverError
from drivers.biologic.codes import BOARD_FLOAT_FORMAT, BoardType, FloatFormat

_FRACTION_SCALE = 2.0**-23
TI_ZERO_EXPONENT = -128
"""A TI word whose exponent byte is 0x80 is zero."""

UNREPORTED = -1
"""Sentinel placed in ``TChannelInfos.FloatFormat`` before the call: a DLL that fills only the 76-byte form of the
structure (packages before the 2013 header) leaves it there, so "not reported" is told apart from "0 = TI"."""


def board_type(board: BoardType | int) -> BoardType:
    """``board`` as a :class:`BoardType`; a code this driver does not know is an error that names it."""
    try:
        return BoardType(int(board))
    except ValueError:
        raise DriverError(
            f"board type {int(board)} is unknown to this driver (1 ESSENTIAL, 2 PREMIUM, 3 DIGICORE); its data "
            "format and technique files cannot be chosen"
        ) from None


def float_format_of(board: BoardType | int, reported: int | None = None) -> FloatFormat:
    """The float format of a channel's data words, from its board type and its own ``FloatFormat``.

    The board type decides (the vendor's converter takes the board type, and that is what was measured). A channel
    that reports ``FloatFormat`` must agree: if it says otherwise one of the two vendor statements is wrong for
    this hardware, and guessing would turn every reading into a plausible-looking wrong number, so it is an error
    before anything runs. ``reported`` is ``None`` or :data:`UNREPORTED` when the DLL did not fill the field.
    """
    expected = BOARD_FLOAT_FORMAT[board_type(board)]
    if reported is None or reported == UNREPORTED:
        return expected
    if reported not in (FloatFormat.TI, FloatFormat.IEEE) or reported != expected:
        name = FloatFormat(reported).name if reported in (0, 1) else f"unknown code {reported}"
        raise DriverError(
            f"the channel reports FloatFormat {reported} ({name}) but its board type {board_type(board).name} "
            f"writes {expected.name} floats; refusing to decode its data either way (report the instrument model)"
        )
    return expected


def ti_to_float(words: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Decode TI-DSP 32-bit floats (any array shape of uint32 words) to float64, exactly."""
    w = np.asarray(words, dtype=np.uint32)
    exponent = (w >> np.uint32(24)).astype(np.uint8).view(np.int8).astype(np.int32)
    negative = (w & np.uint32(0x0080_0000)) != 0
    fraction = (w & np.uint32(0x007F_FFFF)).astype(np.float64) * _FRACTION_SCALE
    mantissa = np.where(negative, fraction - 2.0, fraction + 1.0)
    value = np.ldexp(mantissa, exponent)
    return np.where(exponent == TI_ZERO_EXPONENT, 0.0, value)


def ieee_to_float(words: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Reinterpret IEEE-754 single bits (DIGICORE) as float64; NaN and infinities pass through as they are."""
    return np.asarray(words, dtype=np.uint32).view(np.float32).astype(np.float64)


def words_to_floats(
    words: npt.ArrayLike, board: BoardType | int, float_format: FloatFormat | int | None = None
) -> npt.NDArray[np.float64]:
    """Decode single-precision data words of a channel with board type ``board`` (see :func:`float_format_of`)."""
    fmt = float_format_of(board, None if float_format is None else int(float_format))
    return ti_to_float(words) if fmt is FloatFormat.TI else ieee_to_float(words)


def time_order(board: BoardType | int) -> tuple[str, str]:
    """Names of the two time words in the order the board writes them."""
    return ("t_low", "t_high") if board_type(board) is BoardType.DIGICORE else ("t_high", "t_low")


def ticks(high: npt.ArrayLike, low: npt.ArrayLike, board: BoardType | int) -> npt.NDArray[np.float64]:
    """Tick counts from the two time words (already put in high/low order), as float64 for the time sum.

    DIGICORE's pair is a signed 64-bit count; boards 1 and 2 keep the documented unsigned t_high * 2**32 + t_low.
    """
    combined = np.asarray(high, dtype=np.uint32).astype(np.uint64) << np.uint64(32)
    combined |= np.asarray(low, dtype=np.uint32).astype(np.uint64)
    if board_type(board) is BoardType.DIGICORE:
        return combined.view(np.int64).astype(np.float64)
    return combined.astype(np.float64)
