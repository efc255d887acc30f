"""Test-side encoders for ``BL_GetData`` words, written from the reference (section 4), not from the driver.

The driver only decodes; these encode, so a round trip through both checks the decoder against the reference's
definition rather than against itself. TI-DSP float: bits 31-24 the exponent e (two's complement), bit 23 the
sign s, bits 22-0 the fraction f; value (1 + f/2**23) * 2**e for s = 0, (-2 + f/2**23) * 2**e for s = 1, and
e = -128 is zero. Time words: t_high, t_low on boards 1 and 2; low word first on DIGICORE (board 3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

TI_ZERO = 0x8000_0000
DIGICORE = 3


class NotRepresentable(ValueError):
    """The value has no TI-DSP float word (infinite, NaN, too large, or too close to zero)."""


def ti_word(value: float) -> int:
    """The TI-DSP word holding ``value`` exactly; raises :class:`NotRepresentable` if there is none."""
    x = float(value)
    if x == 0.0:
        return TI_ZERO
    if not math.isfinite(x):
        raise NotRepresentable(f"{x} is not finite")
    m, exp = math.frexp(abs(x))  # |x| = m * 2**exp, 0.5 <= m < 1, so |x| = (2m) * 2**(exp - 1), 1 <= 2m < 2
    twice = 2.0 * m
    if x > 0:
        e, mantissa, sign = exp - 1, twice, 0  # (1 + f/2**23) = 2m
        fraction = (mantissa - 1.0) * 2**23
    elif twice == 1.0:
        e, sign, fraction = exp - 2, 1, 0.0  # -2**(exp-1) = -2 * 2**(exp-2)
    else:
        e, sign = exp - 1, 1
        fraction = (2.0 - twice) * 2**23  # -2m = -2 + f/2**23
    if fraction != int(fraction):
        raise NotRepresentable(f"{x} needs more than 23 fraction bits")
    if not -127 <= e <= 127:
        raise NotRepresentable(f"{x} needs exponent {e}, outside -127..127")
    return ((e & 0xFF) << 24) | (sign << 23) | int(fraction)


def ti_value(word: int) -> float:
    """The reference formula for one word, in plain Python (the decoder's independent oracle)."""
    e = (word >> 24) & 0xFF
    e = e - 256 if e >= 128 else e
    if e == -128:
        return 0.0
    f = (word & 0x7F_FFFF) / 2**23
    mantissa = -2.0 + f if word & 0x80_0000 else 1.0 + f
    return math.ldexp(mantissa, e)


def ti_words(values: np.ndarray) -> np.ndarray:
    """:func:`ti_word` over an array (values are rounded to float32 first, as an instrument's singles are)."""
    flat = np.asarray(values, dtype=np.float32).astype(np.float64).ravel()
    return np.array([ti_word(v) for v in flat], dtype=np.uint32).reshape(np.shape(values))


def float_words(values: np.ndarray, board: int) -> np.ndarray:
    """Single-precision words of ``values`` as a board of type ``board`` writes them."""
    if board == DIGICORE:
        return np.asarray(values, dtype=np.float32).view(np.uint32)
    return ti_words(values)


def encode_rows(names: tuple[str, ...], data: Mapping[str, np.ndarray], n: int, board: int) -> np.ndarray:
    """An (n, len(names)) uint32 array; ``t_ticks`` in ``data`` feeds the two time words, missing floats are 0."""
    out = np.zeros((n, len(names)), dtype=np.uint32)
    for i, name in enumerate(names):
        if name == "t_high":
            out[:, i] = (np.asarray(data["t_ticks"], dtype=np.uint64) >> np.uint64(32)).astype(np.uint32)
        elif name == "t_low":
            out[:, i] = (np.asarray(data["t_ticks"], dtype=np.uint64) & np.uint64(0xFFFF_FFFF)).astype(np.uint32)
        elif name in ("cycle", "Irange"):
            out[:, i] = np.asarray(data.get(name, np.zeros(n)), dtype=np.int64).astype(np.uint32)
        else:
            out[:, i] = float_words(np.asarray(data.get(name, np.zeros(n))), board)
    return out


def ticks_of(t: np.ndarray, timebase: float) -> np.ndarray:
    """Whole periods of the float32 time base elapsed at ``t`` (a counter floors)."""
    tb = float(np.float32(timebase))
    return np.floor(np.asarray(t, dtype=np.float64) / tb + 1e-9).astype(np.uint64)
