"""The tests' own reading of the reference's number formats (section 4), independent of simulator and driver.

Written straight from the text: a TI DSP word has a two's-complement exponent in bits 31-24, the sign in bit 23
and a 23-bit fraction; value = (1 + f/2^23) 2^e for s = 0, (-2 + f/2^23) 2^e for s = 1, zero for e = -128. DIGICORE
words are IEEE-754 singles and its two time words come low word first (a signed 64-bit count).
"""

from __future__ import annotations

import math
import struct

import numpy as np

ESSENTIAL, PREMIUM, DIGICORE = 1, 2, 3

MEASURED = {
    0x80000000: 0.0, 0x00000000: 1.0, 0xFF800000: -1.0, 0xFE800000: -0.5, 0x016CCCCD: 3.7, 0x02066666: 4.2,
    0x02F9999A: -4.2, 0xF603126F: 0.001, 0xF6FCED91: -0.001, 0xED27C5AC: 2.5e-06, 0x10435000: 100000.0,
    0xFC4CCCCD: 0.1,
}  # fmt: skip
"""Words and values the vendor DLL converted for board types 1 and 2 (reference section 4)."""


def ti(word: int) -> float:
    word &= 0xFFFFFFFF
    exponent = word >> 24
    if exponent >= 128:
        exponent -= 256
    if exponent == -128:
        return 0.0
    fraction = (word & 0x7FFFFF) / 2**23
    mantissa = -2.0 + fraction if word & 0x800000 else 1.0 + fraction
    return math.ldexp(mantissa, exponent)


def ieee(word: int) -> float:
    return struct.unpack("<f", struct.pack("<I", word & 0xFFFFFFFF))[0]


def single(word: int, board: int) -> float:
    """A data word as the vendor converter reads it, rounded to single as it is returned."""
    value = ieee(word) if board == DIGICORE else ti(word)
    return struct.unpack("<f", struct.pack("<f", value))[0]


def singles(words: np.ndarray, board: int) -> np.ndarray:
    return np.array([single(int(w), board) for w in np.ravel(words)], dtype=np.float64).reshape(np.shape(words))


def ticks(first: int, second: int, board: int) -> int:
    """The tick count in a row's two time words."""
    if board == DIGICORE:
        return struct.unpack("<q", struct.pack("<II", first & 0xFFFFFFFF, second & 0xFFFFFFFF))[0]
    return (first << 32) | second


def row_ticks(words: np.ndarray, board: int) -> np.ndarray:
    """Ticks of every row of an (n, cols) word array whose first two columns are the time words."""
    return np.array([ticks(int(a), int(b), board) for a, b in words[:, :2]], dtype=np.int64)
