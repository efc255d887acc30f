"""The text of a ``download`` page, built column by column with numpy instead of one ``%`` per record.

A 1000-cycle dry run sends ~700 pages of 1000 records; formatting each record's five doubles with ``%.15G`` in
Python (~2 ms a page) was the simulated BTS's largest cost, and it holds the interpreter the station also needs.
Here every field of every record of a page is laid out as a fixed-width block of bytes in one ``uint8`` matrix,
with NUL bytes where a shorter value leaves room; deleting the NULs (``bytes.translate``) leaves exactly the bytes
the per-record formula writes. NUL never occurs in the text itself, so where the padding sits inside a block does
not matter. The page stays bytes to the socket (:func:`page_bytes`; ``wire.reply`` joins bytes as they are).

numpy's cost is per call and per short row, so the work is arranged in long rows: digits come four at a time from
tables (one lookup per chunk, not one division per digit), the parts that depend only on the sign and the
position of the point come from a template per case, the five double columns are formatted in one pass (as the
three integer columns are), and rows are copied as items of their width, not byte by byte.

The doubles are written as .NET writes them (neware-bts-api.md section 2, item 6: up to 15 significant digits,
capital ``E``, ``2.11492042581085E-05``), which is Python's ``%.15G``: the value correctly rounded to 15 significant
digits (ties to even on the exact binary value), trailing zeros dropped, exponent form when the decimal exponent is
below -4 or above 14. The 15 digits are computed exactly: ``|x| * 10**k`` is split into a double and its exact
rounding error (Dekker's product), so the rounding decision is the one an exact computation makes. Values outside
1e-8 <= |x| < 1e15, NaN and infinities (none in a normal test) are formatted by Python one by one.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence

import numpy as np

if sys.byteorder != "little":  # the tables are bytes seen as words, and digits move by shifting those words
    raise ImportError("simulators.neware.pagetext lays out bytes in little-endian words; this machine is big-endian")

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

#: a double's block: four 8-byte words. Word 0: sign and the ``0.000`` of a small value, in its bytes 2..7; words
#: 1-2: the 15 significant digits after an empty byte, or with the point after the P-th digit: the first P digits
#: moved down one byte into the empty one and the point after them; word 3: ``E-0d``. A page takes bytes 2..28.
FLOAT_WIDTH = 32
_FLOAT_TEXT = slice(2, 28)
_LOW, _HIGH = 1e-8, 1e15  # |x| in [_LOW, _HIGH): 10**k with k in 0..22 is an exact double
_POW10 = 10.0 ** np.arange(23)
_SPLIT = 134217729.0  # 2**27 + 1: Dekker's split of a double into two 26-bit halves
_NUL, _ZERO, _POINT, _MINUS = 0, ord("0"), ord("."), ord("-")


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = _SPLIT * x
    high = c - (c - x)
    return high, x - high


_POW10_HIGH, _POW10_LOW = _split(_POW10)
#: the 15 digits as four chunks of 4 (the first holds 3), each divided out of the digits as a double: exact, as the
#: digits are integers below 2**53 and a quotient's fraction is far coarser than its rounding
_CHUNK_DIVISORS = np.array([1e12, 1e8, 1e4, 1.0])[:, None]
_QUAD = 10_000
#: sections of the digit table (a multiple of _QUAD added to a chunk): trailing zeros dropped (the chunk is followed
#: by zero chunks only), first chunk (position 0 empty)
_STRIPPED, _FIRST = 1, 2
#: sections of the integer table: leading zeros dropped, the same for the last chunk, where 0 is written "0"
_LEADING, _LEADING_LAST = 1, 2
#: the decimal point position ``decpt`` runs over -7..15 on the fast path; tables below are indexed by decpt + 7
_DECPTS = range(-7, 16)


def _chunk_digits() -> np.ndarray:
    """The four digits of each of 0..9999, most significant first."""
    return (np.arange(_QUAD, dtype=np.int16)[:, None] // np.array([1000, 100, 10, 1], dtype=np.int16) % 10).astype(
        np.uint8)


def _float_quads() -> np.ndarray:
    """Each 4-digit chunk 0..9999 as four ASCII bytes in the low half of a word, in the four sections' variants."""
    digits = _chunk_digits()
    trailing_zero = np.logical_and.accumulate((digits == 0)[:, ::-1], axis=1)[:, ::-1]
    first = np.zeros((_QUAD, 4), dtype=bool)
    first[:, 0] = True
    table = np.zeros((4 * _QUAD, 8), dtype=np.uint8)
    for section, hide in ((0, np.zeros_like(first)), (_STRIPPED, trailing_zero), (_FIRST, first),
                          (_FIRST | _STRIPPED, first | trailing_zero)):
        table[section * _QUAD : (section + 1) * _QUAD, :4] = (digits + _ZERO) * ~hide
    return table.view(np.uint64).ravel()


def _int_quads() -> np.ndarray:
    """Each 4-digit chunk 0..9999 as four ASCII bytes, in the integer sections' variants."""
    digits = _chunk_digits()
    leading_zero = np.logical_and.accumulate(digits == 0, axis=1)
    last = leading_zero.copy()
    last[:, 3] = False  # 0 is written "0"
    table = np.zeros((3 * _QUAD, 4), dtype=np.uint8)
    for section, hide in ((0, np.zeros_like(last)), (_LEADING, leading_zero), (_LEADING_LAST, last)):
        table[section * _QUAD : (section + 1) * _QUAD] = (digits + _ZERO) * ~hide
    return table.view(np.uint32).ravel()


def _float_templates() -> tuple[np.ndarray, np.ndarray]:
    """Per (sign, ``decpt``, whether a digit follows the point), 92 cases: the bytes of a double's block that are not
    digits, or are digits that must show (an integer part's zeros), ORed over the digits (four words); and which
    bytes of the digits' two words move down one byte to make room for the point (two words)."""
    templates = np.zeros((2, len(_DECPTS), 2, FLOAT_WIDTH), dtype=np.uint8)
    moved = np.zeros((2, len(_DECPTS), 2, 16), dtype=np.uint8)
    for sign in (0, 1):
        for decpt in _DECPTS:
            for fraction in (0, 1):
                t, m = templates[sign, decpt + 7, fraction], moved[sign, decpt + 7, fraction]
                t[2] = _MINUS if sign else _NUL
                scientific = decpt <= -4
                point = 1 if scientific else decpt
                dotted = bool(fraction) and 1 <= point <= 14
                if scientific:
                    t[24:28] = np.frombuffer(b"E-0%d" % (1 - decpt), dtype=np.uint8)
                elif decpt <= 0:  # 0.000ddd
                    t[3 : 5 - decpt] = np.frombuffer(b"0." + b"0" * -decpt, dtype=np.uint8)
                else:  # the integer part's digits all show, zeros included: digit k is at byte k, or k - 1
                    t[8 + 1 - dotted : 8 + decpt + 1 - dotted] = _ZERO
                if dotted:
                    t[8 + point] = _POINT
                    m[: point + 1] = 255
    return (np.ascontiguousarray(templates.reshape(-1, FLOAT_WIDTH).view(np.uint64).T),
            np.ascontiguousarray(moved.reshape(-1, 16).view(np.uint64).T))


def _fraction_divisors() -> np.ndarray:
    """Per decpt + 7: 10**(the digits after the point's position), to tell whether any of them is not zero."""
    point = [1 if decpt <= -4 else decpt for decpt in _DECPTS]
    return np.array([10.0 ** min(15, 15 - p) for p in point])


_FLOAT_QUADS = _float_quads()
_INT_QUADS = _int_quads()
_TEMPLATES, _MOVED = _float_templates()
_TEMPLATE_ROWS = np.ascontiguousarray(_TEMPLATES.T)
_FRACTION_DIVISORS = _fraction_divisors()


def _scaled(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """round(a * 10**k) to the nearest integer, ties to even, exactly, as a double (a > 0, 0 <= k <= 22, the result
    below 2**53)."""
    p = a * _POW10.take(k)
    a_hi, a_lo = _split(a)
    p_hi, p_lo = _POW10_HIGH.take(k), _POW10_LOW.take(k)
    error = ((a_hi * p_hi - p) + a_hi * p_lo + a_lo * p_hi) + a_lo * p_lo  # a * 10**k == p + error, exactly
    whole = np.floor(p)
    above = (p - whole - 0.5) + error  # the sign of (exact fraction - 1/2): a rounded sum keeps its sign
    up = above > 0
    tie = above == 0
    if tie.any():
        up |= tie & (np.fmod(whole, 2.0) == 1.0)
    return whole + up


def _significand(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the 15 significant digits as an integral double, ``decpt`` + 7, whether both were computed here) of each
    value: ``|x| = 0.d1d2...d15 * 10**decpt`` after rounding; 0 (decpt 1) for zero and the values left to Python."""
    a = np.abs(x)
    fast = (a >= _LOW) & (a < _HIGH)
    safe = np.where(fast, a, 1.0)
    exponent = np.floor(np.log10(safe)).astype(np.intp)
    # on the fast path 1e-8 <= |x| < 1e15: log10 rounded up to 15 (999999999999999.0) must not leave the range,
    # where the digits scaled with the clipped power would look right and the exponent stay wrong (np.minimum and
    # np.maximum: np.clip's wrapper costs more than both on a page)
    np.minimum(exponent, 14, out=exponent)
    np.maximum(exponent, -8, out=exponent)
    digits = _scaled(safe, 14 - exponent)
    for _ in range(2):  # log10 can be one off next to a power of ten, and rounding can carry into one more digit
        off = np.flatnonzero((digits < 1e14) | (digits >= 1e15))
        if not len(off):
            break
        exponent[off] += (digits[off] >= 1e15).astype(np.intp) - (digits[off] < 1e14)
        k = 14 - exponent[off]
        fast[off[(k < 0) | (k > 22)]] = False
        digits[off] = _scaled(safe[off], np.clip(k, 0, 22))
    fast &= (digits >= 1e14) & (digits < 1e15)
    return np.where(fast, digits, 0.0), np.where(fast, exponent + 8, 8), fast | (a == 0)


def float_block(values: np.ndarray) -> np.ndarray:
    """``%.15G`` of each value as a ``(n, FLOAT_WIDTH)`` block of bytes padded with NUL (all of the text within
    its bytes 2..28).

    The digits come from a table, four at a time; a chunk followed only by zero chunks comes from the table's
    section that drops trailing zeros; the digits before the point move down one byte to make room for it. What is
    not a digit (sign, ``0.000``, point, exponent) and the integer part's zeros come from one template per (sign,
    ``decpt``, fraction or not). Each step works on whole columns (chunk by chunk, word by word): numpy is slow over
    short rows.
    """
    x = np.asarray(values, dtype=np.float64)
    digits, decpt, fast = _significand(x)
    quotients = np.floor(digits / _CHUNK_DIVISORS)
    chunks = quotients.copy()
    chunks[1:] -= _QUAD * quotients[:-1]
    index = chunks.astype(np.intp)
    zero = chunks == 0
    zero[2] &= zero[3]  # zero[i]: chunks i..3 are zero
    zero[1] &= zero[2]
    index[3] += _STRIPPED * _QUAD
    np.add(index[:3], _STRIPPED * _QUAD, out=index[:3], where=zero[1:])
    index[0] += _FIRST * _QUAD
    divisor = _FRACTION_DIVISORS[decpt]
    fraction = np.floor(digits / divisor) * divisor != digits  # as exact as the chunks' quotients
    case = np.signbit(x) * (2 * len(_DECPTS)) + 2 * decpt + fraction
    quads = _FLOAT_QUADS.take(index)
    low = quads[0] | (quads[1] << 32)  # 16 bytes: empty, d1 .. d15
    high = quads[2] | (quads[3] << 32)
    moved = _MOVED.take(case, axis=1)
    low_moved, high_moved = low & moved[0], high & moved[1]
    low ^= low_moved
    high ^= high_moved
    low |= (low_moved >> 8) | (high_moved << 56)  # the 128-bit shift down by one byte
    high |= high_moved >> 8
    words = _TEMPLATE_ROWS.take(case, axis=0)  # a row of four words per value: the block itself, no transpose
    words[:, 1] |= low
    words[:, 2] |= high
    block = words.view(np.uint8)
    for i in np.flatnonzero(~fast):
        text = f"{x[i]:.15G}".encode("ascii")
        block[i] = _NUL
        block[i, _FLOAT_TEXT.start : _FLOAT_TEXT.start + len(text)] = np.frombuffer(text, dtype=np.uint8)
    return block


def int_block(values: np.ndarray) -> np.ndarray:
    """``%d`` of each integer as a block padded with NUL, as wide as the page's widest value needs."""
    v = np.asarray(values, dtype=np.int64)
    n = len(v)
    if n == 0:
        return np.zeros((0, 4), dtype=np.uint8)
    low, high = int(v.min()), int(v.max())
    if low == -(2**63):  # the one value whose magnitude int64 cannot hold
        return text_block([str(value) for value in v.tolist()])
    magnitude = np.abs(v) if low < 0 else v
    width = max(1, (len(str(max(high, -low))) + 3) // 4)  # 4-digit chunks
    chunks = np.empty((width, n), dtype=np.intp)
    rest = magnitude
    for row in range(width - 1, 0, -1):
        rest, chunks[row] = np.divmod(rest, _QUAD)
    chunks[0] = rest
    leading = np.ones(n, dtype=bool)  # all chunks so far are zero: this one drops its leading zeros
    for row in range(width):
        last = row == width - 1
        if not last:
            later = leading & (chunks[row] == 0)
        chunks[row] += leading * ((_LEADING_LAST if last else _LEADING) * _QUAD)
        if not last:
            leading = later
    words = _INT_QUADS.take(chunks)
    if low < 0:
        words = np.concatenate([((v < 0) * (_MINUS << 24)).astype(np.uint32)[None], words])
    return np.ascontiguousarray(words.T).view(np.uint8)


def text_block(texts: Sequence[str]) -> np.ndarray:
    """ASCII texts (already safe in an attribute) as a block padded with NUL."""
    array = np.array([t.encode("ascii") for t in texts], dtype=bytes)
    return array.view(np.uint8).reshape(len(texts), array.itemsize)


def temperature_block(celsius: np.ndarray) -> np.ndarray:
    """:data:`AUX_TEMPERATURE_FORMAT` of each temperature as a block padded with NUL. A page holds a few distinct
    temperatures (one per chamber set point it spans), so each is formatted once, by Python, exactly."""
    values = np.asarray(celsius, dtype=np.float64)
    if len(values) and (values == values[0]).all():  # one set point: the usual page, without np.unique's sort
        return np.repeat(text_block([AUX_TEMPERATURE_FORMAT % values[0]]), len(values), axis=0)
    distinct, which = np.unique(values, return_inverse=True)
    return text_block([AUX_TEMPERATURE_FORMAT % value for value in distinct.tolist()])[which.ravel()]


#: a page's step codes span a few consecutive values; a wider span is looked up through np.unique instead
_CODE_SPAN = 4096


def steptype_block(codes: np.ndarray, steptype_names: Mapping[int, str]) -> np.ndarray:
    """The API name of each step code (``--`` for a code without one) as a block padded with NUL: a lookup table
    over the page's range of codes, indexed by code (names of up to 8 bytes are looked up as one word)."""
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        codes = codes.astype(np.int64)
    if len(codes) == 0:
        return np.zeros((0, 8), dtype=np.uint8)
    low, high = int(codes.min()), int(codes.max())
    if high - low >= _CODE_SPAN:
        present, which = np.unique(codes, return_inverse=True)
        return text_block([steptype_names.get(int(code), "--") for code in present.tolist()])[which.ravel()]
    names = text_block([steptype_names.get(code, "--") for code in range(low, high + 1)])
    index = codes - np.array(low, dtype=codes.dtype) if low else codes
    if names.shape[1] > 8:
        return names[index]
    words = np.zeros((len(names), 8), dtype=np.uint8)
    words[:, : names.shape[1]] = names
    return words.view(np.uint64).ravel().take(index).view(np.uint8).reshape(len(codes), 8)


def page_bytes(columns: Mapping[str, np.ndarray], steptype_names: Mapping[int, str], atimes: np.ndarray,
               aux_temperature: np.ndarray | None = None) -> bytes:
    """The page's ``<data .../>`` lines as one body line of ``wire.reply`` (ASCII bytes, which ``reply`` takes as
    they are): the records after the first carry the separator and indent that ``reply`` puts between body lines,
    the first gets them from ``reply``.

    ``columns``: seqid, stepid, cycleid (integers), steptype (codes), testtime, volt, curr, cap, eng (doubles);
    ``atimes``: ``YYYY-MM-DD HH:MM:SS`` as an ``(n, 19)`` block (:func:`simulators.neware.wire.atimes`);
    ``aux_temperature``: degC of each record for a channel with a thermocouple, written as its last attribute
    (:data:`AUX_TEMPERATURE`); None for a channel without one, whose rows are as before, byte for byte.
    """
    n = len(columns["seqid"])
    if n == 0:
        return b""
    blocks = {"steptype": steptype_block(columns["steptype"], steptype_names), "atime": atimes}
    integers = int_block(np.concatenate([np.asarray(columns[name], dtype=np.int64) for name in _INTEGERS]))
    for index, name in enumerate(_INTEGERS):  # one pass over the three columns, as wide as the widest
        blocks[name] = integers[index * n : (index + 1) * n]
    runs = [_runs(np.asarray(columns[name], dtype=np.float64)) for name in _DOUBLES]
    doubles = float_block(np.concatenate([values for values, _ in runs]))  # one pass over all five columns
    start = 0
    for name, (values, which) in zip(_DOUBLES, runs, strict=True):
        block = doubles[start : start + len(values), _FLOAT_TEXT]
        blocks[name] = block if which is None else _items(block)[which].view(np.uint8).reshape(n, -1)
        start += len(values)
    fields = _FIELDS
    if aux_temperature is not None:
        blocks[AUX_TEMPERATURE] = temperature_block(aux_temperature)
        fields = (*_FIELDS, AUX_TEMPERATURE)
    row, places = _row_template(fields, tuple(blocks[name].shape[-1] for name in fields))
    matrix = np.empty((n, len(row)), dtype=np.uint8)
    _items(matrix)[...] = _items(row[None])[0]  # the literals, and NUL where the values go
    for name, (start, stop) in zip(fields, places, strict=True):
        block = blocks[name]
        if block.strides[-1] == 1:
            _items(matrix[:, start:stop])[...] = _items(block)
        else:
            matrix[:, start:stop] = block
    matrix[0, : len(_SEPARATOR)] = _NUL  # wire.reply writes the first record's
    return matrix.tobytes().translate(None, b"\0")


#: a column with at most this share of runs of one value is formatted once per run: the current of a constant-current
#: step, the capacity of a rest
_RUN_SHARE = 4


def _runs(column: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The values to format for a double column, and which of them each record shows (None: all, one each). Equal
    means the same bits: -0.0 and 0.0 are written differently."""
    bits = column.view(np.int64)
    changes = bits[1:] != bits[:-1]
    if len(column) < 2 * _RUN_SHARE or np.count_nonzero(changes) + 1 > len(column) // _RUN_SHARE:
        return column, None
    which = np.zeros(len(column), dtype=np.intp)
    np.cumsum(changes, out=which[1:])
    return column[np.flatnonzero(np.concatenate(([True], changes)))], which


def _items(block: np.ndarray) -> np.ndarray:
    """The rows of a ``(n, w)`` block of bytes as n items of w bytes: numpy copies those in one loop over the rows,
    where it copies a block's bytes in a loop per row."""
    return block.view(f"V{block.shape[1]}")[:, 0]


@functools.lru_cache(maxsize=64)
def _row_template(fields: tuple[str, ...], widths: tuple[int, ...]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A row of a page of ``fields`` whose values are ``widths`` bytes wide: the text around the values (before the
    first, between two, after the last) with NUL where the values go, and where each value goes."""
    literals = [_LINE_START, *(f'" {name}="'.encode() for name in fields[1:]), _LINE_END]
    row = bytearray(literals[0])
    places = []
    for width, literal in zip(widths, literals[1:], strict=True):
        places.append((len(row), len(row) + width))
        row += bytes(width) + literal
    return np.frombuffer(bytes(row), dtype=np.uint8), places
