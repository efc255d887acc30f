"""The text of a ``download`` page, built column by column with numpy instead of one ``%`` per record.

A 1000-cycle dry run sends ~700 pages of 1000 records; formatting each record's five doubles with ``%.15G`` in
Python (~2 ms a page) was the simulated BTS's largest cost, and it holds the interpreter the station also needs.
Here every field of every record of a page is laid out as a fixed-width block of bytes in one ``uint8`` matrix,
with NUL bytes where a shorter value leaves room; deleting the NULs (``bytes.translate``) leaves exactly the bytes
the per-record formula writes. NUL never occurs in the text itself, so where the padding sits inside a block does
not matter.

The doubles are written as .NET writes them (neware-bts-api.md section 2, item 6: up to 15 significant digits,
capital ``E``, ``2.11492042581085E-05``), which is Python's ``%.15G``: the value correctly rounded to 15 significant
digits (ties to even on the exact binary value), trailing zeros dropped, exponent form when the decimal exponent is
below -4 or above 14. The 15 digits are computed exactly: ``|x| * 10**k`` is split into a double and its exact
rounding error (Dekker's product), so the rounding decision is the one an exact computation makes. Values outside
1e-8 <= |x| < 1e15, NaN and infinities (none in a normal test) are formatted by Python one by one.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np

#: the attributes of a record, in the order the real BTS writes them
_FIELDS: Sequence[str] = ("seqid", "stepid", "cycleid", "steptype", "testtime", "atime", "volt", "curr", "cap", "eng")
_INTEGERS = ("seqid", "stepid", "cycleid")
_DOUBLES = ("testtime", "volt", "curr", "cap", "eng")
#: the auxiliary thermocouple's attribute, after ``eng`` on the rows of a channel that has one (reference 2.7, "aux
#: attributes"), and how it is written: degC to 0.1 degC, a thermocouple's resolution (**assumption**: no capture
#: shows a ``T1`` value; a BTS85 unit writes its ``CPU1`` temperature with two decimals)
AUX_TEMPERATURE = "T1"
AUX_TEMPERATURE_FORMAT = "%.1f"
#: between two records; wire.reply() writes the one before the first record itself
_SEPARATOR = b"\r\n  "
_LINE_START = _SEPARATOR + b'  <data seqid="'
_LINE_END = b'" />'

#: width of a double's block: sign, "0.", three zeros, 15 digits each followed by a slot for the point, "E-0d"
FLOAT_WIDTH = 1 + 2 + 3 + 30 + 4
_LOW, _HIGH = 1e-8, 1e15  # |x| in [_LOW, _HIGH): 10**k with k in 0..22 is an exact double
_POW10 = 10.0 ** np.arange(23)
_POW10_INT = 10 ** np.arange(1, 19, dtype=np.int64)
_SPLIT = 134217729.0  # 2**27 + 1: Dekker's split of a double into two 26-bit halves
_NUL, _ZERO, _POINT, _MINUS = 0, ord("0"), ord("."), ord("-")


def _chunk_tables() -> tuple[np.ndarray, np.ndarray]:
    """The five ASCII digits of 0 .. 99999 in the first bytes of an 8-byte word, and how many of them are trailing
    zeros: dividing every value digit by digit was most of the cost; one lookup per five digits is not."""
    digits = np.zeros((100_000, 8), dtype=np.uint8)
    for place in range(5):  # place 4 is the units
        digits[:, place] = np.tile(np.repeat(np.arange(10, dtype=np.uint8), 10 ** (4 - place)), 10**place)
    trailing = np.zeros(100_000, dtype=np.int8)
    for place in range(5):  # left to right: a digit other than 0 ends the run of zeros
        trailing = np.where(digits[:, place] == 0, trailing + 1, 0).astype(np.int8)
    digits[:, :5] += _ZERO
    return digits.view(np.uint64).ravel(), trailing


def _byte_masks(first: bool) -> np.ndarray:
    """Word masks keeping m = 0..5 of a chunk's five digit bytes: the first m, or the last m."""
    masks = np.zeros((6, 8), dtype=np.uint8)
    for m in range(6):
        masks[m, slice(0, m) if first else slice(5 - m, 5)] = 255
    return masks.view(np.uint64).ravel()


_CHUNK = 100_000
_CHUNK_WORDS, _CHUNK_TRAILING = _chunk_tables()
_KEEP_FIRST, _KEEP_LAST = _byte_masks(True), _byte_masks(False)
_CHUNK_STARTS = np.array([0, 5, 10])


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = _SPLIT * x
    high = c - (c - x)
    return high, x - high


def _scaled(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """round(a * 10**k) to the nearest integer, ties to even, exactly (a > 0, 0 <= k <= 22)."""
    p10 = _POW10[k]
    p = a * p10
    a_hi, a_lo = _split(a)
    p_hi, p_lo = _split(p10)
    error = ((a_hi * p_hi - p) + a_hi * p_lo + a_lo * p_hi) + a_lo * p_lo  # a * 10**k == p + error, exactly
    whole = np.floor(p)
    above = (p - whole - 0.5) + error  # the sign of (exact fraction - 1/2): a rounded sum keeps its sign
    n = whole.astype(np.int64)
    return n + ((above > 0) | ((above == 0) & (n % 2 == 1)))


def _significand(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the 15 significant digits as an integer, the decimal exponent, whether both were computed here) of each
    value: ``|x| = 0.d1d2...d15 * 10**decpt`` after rounding; 0 for zero (decpt 1) and the values left to Python."""
    a = np.abs(x)
    zero = a == 0
    fast = zero | ((a >= _LOW) & (a < _HIGH))
    safe = np.where(fast & ~zero, a, 1.0)
    exponent = np.floor(np.log10(safe)).astype(np.int64)
    digits = _scaled(safe, np.clip(14 - exponent, 0, 22))
    for _ in range(2):  # log10 can be one off next to a power of ten, and rounding can carry into one more digit
        off = np.flatnonzero(fast & ~zero & ((digits < 10**14) | (digits >= 10**15)))
        if not len(off):
            break
        exponent[off] += (digits[off] >= 10**15).astype(np.int64) - (digits[off] < 10**14)
        k = 14 - exponent[off]
        fast[off[(k < 0) | (k > 22)]] = False
        digits[off] = _scaled(safe[off], np.clip(k, 0, 22))
    fast &= zero | ((digits >= 10**14) & (digits < 10**15))
    digits[zero | ~fast] = 0
    exponent[zero] = 0
    return digits, exponent + 1, fast


def float_block(values: np.ndarray) -> np.ndarray:
    """``%.15G`` of each value as a ``(n, FLOAT_WIDTH)`` block of bytes padded with NUL."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    digits, decpt, fast = _significand(x)
    high, rest = np.divmod(digits, _CHUNK * _CHUNK)
    middle, low = np.divmod(rest, _CHUNK)
    trailing = _CHUNK_TRAILING[low].astype(np.int64)
    trailing += (low == 0) * (_CHUNK_TRAILING[middle] + (middle == 0) * _CHUNK_TRAILING[high])
    significant = np.maximum(1, 15 - trailing)
    scientific = (decpt <= -4) | (decpt > 15)
    leading = ~scientific & (decpt <= 0)  # 0.000ddd
    shown = np.where(scientific | (decpt < significant), significant, decpt)  # integers keep their zeros
    point = np.where(scientific, significant > 1, np.where((decpt > 0) & (decpt < significant), decpt, 0))
    words = _CHUNK_WORDS.take(np.stack([high, middle, low], axis=1))
    words &= _KEEP_FIRST.take(np.clip(shown[:, None] - _CHUNK_STARTS, 0, 5))
    block = np.zeros((n, FLOAT_WIDTH), dtype=np.uint8)
    block[:, 0] = np.signbit(x) * _MINUS
    block[:, 1] = leading * _ZERO
    block[:, 2] = leading * _POINT
    for zeros in range(1, 4):
        block[:, 2 + zeros] = (leading & (decpt <= -zeros)) * _ZERO
    # each digit is followed by a slot for the point
    block[:, 6:36].reshape(n, 3, 10)[:, :, 0:10:2] = words.view(np.uint8).reshape(n, 3, 8)[:, :, :5]
    dotted = np.flatnonzero(point)
    block[dotted, 5 + 2 * point[dotted]] = _POINT
    if scientific.any():  # 1e-8 <= |x| < 1e-4 here: E-05 .. E-08
        power = np.abs(decpt - 1)
        block[:, 36] = scientific * ord("E")
        block[:, 37] = scientific * _MINUS
        block[:, 38] = scientific * (_ZERO + power // 10)
        block[:, 39] = scientific * (_ZERO + power % 10)
    for index in np.flatnonzero(~fast):
        text = f"{x[index]:.15G}".encode("ascii")
        block[index] = _NUL
        block[index, : len(text)] = np.frombuffer(text, dtype=np.uint8)
    return block


def int_block(values: np.ndarray) -> np.ndarray:
    """``%d`` of each integer as a block padded with NUL, as wide as the page's widest value."""
    v = np.asarray(values, dtype=np.int64)
    n = len(v)
    magnitude = np.abs(v)
    chunks = [magnitude]
    for _ in range((len(str(int(magnitude.max()))) - 1) // 5 if n else 0):
        chunks[0], lower = np.divmod(chunks[0], _CHUNK)
        chunks.insert(1, lower)
    width = len(chunks)
    significant = np.searchsorted(_POW10_INT, magnitude, side="right") + 1  # 0 is written "0"
    starts = 5 * np.arange(width - 1, -1, -1)  # digits to the right of each chunk
    words = _CHUNK_WORDS.take(np.stack(chunks, axis=1))
    words &= _KEEP_LAST.take(np.clip(significant[:, None] - starts, 0, 5))
    block = np.zeros((n, 1 + 5 * width), dtype=np.uint8)
    block[:, 0] = (v < 0) * _MINUS
    block[:, 1:].reshape(n, width, 5)[...] = words.view(np.uint8).reshape(n, width, 8)[:, :, :5]
    return block


def text_block(texts: Sequence[str]) -> np.ndarray:
    """ASCII texts (already safe in an attribute) as a block padded with NUL."""
    array = np.array([t.encode("ascii") for t in texts], dtype=bytes)
    return array.view(np.uint8).reshape(len(texts), array.itemsize)


def temperature_block(celsius: np.ndarray) -> np.ndarray:
    """:data:`AUX_TEMPERATURE_FORMAT` of each temperature as a block padded with NUL. A page holds a few distinct
    temperatures (one per chamber set point it spans), so each is formatted once, by Python, exactly."""
    values, which = np.unique(np.asarray(celsius, dtype=np.float64), return_inverse=True)
    return text_block([AUX_TEMPERATURE_FORMAT % value for value in values.tolist()])[which.ravel()]


def page_text(columns: Mapping[str, np.ndarray], steptype_names: Mapping[int, str], atimes: np.ndarray,
              aux_temperature: np.ndarray | None = None) -> str:
    """The page's ``<data .../>`` lines as one body line of ``wire.reply``: the records after the first carry the
    separator and indent that ``reply`` puts between body lines, the first gets them from ``reply``.

    ``columns``: seqid, stepid, cycleid (integers), steptype (codes), testtime, volt, curr, cap, eng (doubles);
    ``atimes``: ``YYYY-MM-DD HH:MM:SS`` as an ``(n, 19)`` block (:func:`simulators.neware.wire.atimes`);
    ``aux_temperature``: degC of each record for a channel with a thermocouple, written as its last attribute
    (:data:`AUX_TEMPERATURE`); None for a channel without one, whose rows are as before, byte for byte.
    """
    n = len(columns["seqid"])
    if n == 0:
        return ""
    codes = np.asarray(columns["steptype"], dtype=np.int64)
    present = np.unique(codes)
    names = text_block([steptype_names.get(int(code), "--") for code in present])
    blocks = {"steptype": names[np.searchsorted(present, codes)], "atime": atimes}
    for name in _INTEGERS:
        blocks[name] = int_block(columns[name])
    doubles = float_block(np.concatenate([np.asarray(columns[name], dtype=np.float64) for name in _DOUBLES]))
    for index, name in enumerate(_DOUBLES):  # one pass over all five columns: numpy's cost is per call
        blocks[name] = doubles[index * n : (index + 1) * n]
    fields = _FIELDS
    if aux_temperature is not None:
        blocks[AUX_TEMPERATURE] = temperature_block(aux_temperature)
        fields = (*_FIELDS, AUX_TEMPERATURE)
    literals = _literals(tuple(fields))
    pieces: list[np.ndarray] = [literals[0]]
    for name, literal in zip(fields, literals[1:], strict=True):
        pieces += [blocks[name], literal]
    matrix = np.empty((n, sum(piece.shape[-1] for piece in pieces)), dtype=np.uint8)
    column = 0
    for piece in pieces:
        matrix[:, column : column + piece.shape[-1]] = piece
        column += piece.shape[-1]
    return matrix.tobytes().translate(None, b"\0")[len(_SEPARATOR) :].decode("ascii")


@functools.cache
def _literals(fields: tuple[str, ...]) -> list[np.ndarray]:
    """The text around the values of a row of ``fields``: before the first, between two, after the last."""
    return [np.frombuffer(text, dtype=np.uint8) for text in (
        _LINE_START, *(f'" {name}="'.encode() for name in fields[1:]), _LINE_END)]
