"""The number formats of the words ``BL_GetData`` returns, as the channel firmware writes them.

VMP3-technology (ESSENTIAL, board type 1) and VMP-300-technology (PREMIUM, 2) channels run a Texas Instruments
TMS320C3x DSP, whose 32-bit floats are not IEEE-754 (reference section 4, measured on the vendor DLL): bits 31-24
hold a two's-complement exponent ``e``, bit 23 the sign ``s``, bits 22-0 the fraction ``f``, and the value is
``(1 + f/2**23) * 2**e`` for ``s = 0``, ``(-2 + f/2**23) * 2**e`` for ``s = 1``; ``e = -128`` is zero. Only DIGICORE
(3) channels write IEEE-754 single bits. Time counters are two words; DIGICORE keeps the low word first.

This module is the instrument's side: it produces the words the firmware would send and, as the vendor DLL's
``BL_Convert*`` exports do, reads them back. It shares nothing with any host-side decoder.
"""

from __future__ import annotations

import numpy as np

ESSENTIAL, PREMIUM, DIGICORE = 1, 2, 3

TI_ZERO = 0x80000000
"""Exponent -128: the only encoding of zero."""
_FRACTION = 1 << 23
_MAX_POSITIVE = 0x7F7FFFFF  # (2 - 2**-23) * 2**127
_MAX_NEGATIVE = 0x7F800000  # -2 * 2**127


def ti_words(values: np.ndarray | float) -> np.ndarray:
    """TI DSP words nearest to ``values`` (float64 or float32; every normal float32 converts exactly).

    Magnitudes beyond the format saturate, magnitudes below its smallest step become zero, and NaN (which the
    DSP cannot hold) is written as zero: a channel never reports a number its format cannot carry.
    """
    x = np.nan_to_num(np.atleast_1d(np.asarray(values, dtype=np.float64)), nan=0.0)
    mantissa, power = np.frexp(x)  # x = m * 2**k with 0.5 <= |m| < 1
    negative = x < 0
    exponent = power.astype(np.int64) - 1
    # positive: x = (1 + f/2^23) 2^e with 2m - 1 in [0, 1); negative: x = (-2 + f/2^23) 2^e with 2 - 2|m| in (0, 1]
    fraction = np.where(negative, 2.0 - 2.0 * np.abs(mantissa), 2.0 * mantissa - 1.0)
    f = np.rint(fraction * _FRACTION).astype(np.int64)
    carry = f == _FRACTION  # rounding reached the next binade (down in magnitude for negatives)
    exponent = np.where(carry, np.where(negative, exponent - 1, exponent + 1), exponent)
    f = np.where(carry, 0, f)
    words = ((exponent & 0xFF) << 24) | (negative.astype(np.int64) << 23) | f
    words = np.where(exponent > 127, np.where(negative, _MAX_NEGATIVE, _MAX_POSITIVE), words)
    words = np.where((exponent < -127) | (x == 0), TI_ZERO, words)
    return words.astype(np.uint32)


def ti_values(words: np.ndarray | int) -> np.ndarray:
    """The values of TI DSP words, as float64 (what the vendor's converter computes before rounding to single)."""
    w = np.atleast_1d(np.asarray(words, dtype=np.uint64)).astype(np.uint32)
    exponent = (w >> np.uint32(24)).astype(np.uint8).view(np.int8).astype(np.int64)
    sign = (w >> np.uint32(23)) & np.uint32(1)
    fraction = (w & np.uint32(_FRACTION - 1)).astype(np.float64) / _FRACTION
    mantissa = np.where(sign == 1, -2.0 + fraction, 1.0 + fraction)
    return np.where(exponent == -128, 0.0, np.ldexp(mantissa, exponent))


def ieee_words(values: np.ndarray | float) -> np.ndarray:
    """IEEE-754 single bits of ``values`` (DIGICORE channels)."""
    return np.atleast_1d(np.asarray(values, dtype=np.float32)).view(np.uint32)


def ieee_values(words: np.ndarray | int) -> np.ndarray:
    return np.atleast_1d(np.asarray(words, dtype=np.uint64)).astype(np.uint32).view(np.float32).astype(np.float64)


def float_words(values: np.ndarray | float, board: int) -> np.ndarray:
    """Single-precision measurements as the channel of ``board`` writes them: rounded to single, then encoded."""
    singles = np.asarray(values, dtype=np.float32)
    return ieee_words(singles) if board == DIGICORE else ti_words(singles)


def float_values(words: np.ndarray | int, board: int) -> np.ndarray:
    """What ``BL_ConvertChannelNumericIntoSingle(word, &f, board)`` yields (before the cast to single)."""
    return ieee_values(words) if board == DIGICORE else ti_values(words)


def float_format(board: int) -> int:
    """``TChannelInfos.FloatFormat`` / ``BL_GetChannelFloatFormat``: 0 TI, 1 IEEE."""
    return 1 if board == DIGICORE else 0


def time_words(ticks: np.ndarray, board: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, second) time column of a row: high word first on boards 1 and 2, low word first on DIGICORE."""
    counts = np.asarray(ticks, dtype=np.uint64)
    high = (counts >> np.uint64(32)).astype(np.uint32)
    low = (counts & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return (low, high) if board == DIGICORE else (high, low)


def tick_count(first: int, second: int, board: int) -> int:
    """The tick count in a row's two time words (signed 64-bit on DIGICORE, as the vendor converter reads it)."""
    if board == DIGICORE:
        value = (int(second) & 0xFFFFFFFF) << 32 | (int(first) & 0xFFFFFFFF)
        return value - (1 << 64) if value >= 1 << 63 else value
    return (int(first) & 0xFFFFFFFF) << 32 | (int(second) & 0xFFFFFFFF)
