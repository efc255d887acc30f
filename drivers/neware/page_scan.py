"""Columns of a ``download`` page straight from its bytes, with numpy and pyarrow's C++ kernels: the dry run's and a
catch-up's hot path.

Parsing a 1000-record page through expat built 1000 attribute dicts, 10 000 Python strings and 1000 typed rows:
about 5 ms a page. A regex and numpy (numbers through ``numpy.fromstring``) brought that to ~2.4 ms, still too slow
for a catch-up at 500 000 records/s; this reader takes ~0.45 ms. Every page a BTS (or the simulator) sends has one
shape, one ``<data .../>`` row after the other with the same attributes in the same order and the same white space
between them, so the page's rows, cut at every ``"``, alternate between the text outside the values (``<data
seqid="``, ``" stepid="``, ..., ``" />`` with the white space and ``<data seqid="`` of the next row) and the values.
One numpy pass finds the quotes; their positions make the rows one pyarrow array of those pieces (no copy), and
this module proves the page's shape on it, whole columns at a time:

* the XML around the rows, the first row and the white space after it are parsed by the caller with defusedxml's
  expat reader exactly as before (a DTD or an entity declaration is refused there, in the same words), and that
  text holds no ``&`` (no entity or character reference anywhere) and no ``<!`` or second ``<?`` (no DTD,
  comment, CDATA section or processing instruction, inside which a row could hide);
* every piece outside the values is, byte for byte, the first row's (and its separator's) text there: one
  pyarrow ``equal`` of all the pieces, item by item, against the expected ones (cached per layout and row count),
  whose bits at the outside pieces must all be set (half the cost of taking those pieces out and comparing them);
* the values are plain printable ASCII: digits for ``seqid``/``stepid``/``cycleid`` (1 to 18, so they fit 64
  bits), ``[0-9+-.eE]`` for the numbers (1 to 40; ``T1``, the auxiliary temperature, is one of them on a page
  whose first row carries it, so every row must), and no ``"``, ``&``, ``<`` or ``>`` in any value (nothing expat
  would decode or normalise differently): the values are taken out in one ``take``, kind after kind, and checked
  by one ``bytes.translate`` per kind;
* the numbers are converted by pyarrow's cast, one call for each kind (integers digit by digit; floats by
  fast_float, which rounds correctly, so each is the one ``float()`` gives for the same text: the tests hold it to
  that on hard cases).

Anything else (another shape, a NaN voltage, an entity, a comment, single quotes, a malformed number) returns
``None`` and the page is read by expat row by row (:mod:`drivers.neware.pages`), which then gives the values or
names the fault: this module only answers for pages whose reading cannot differ.
``tests/drivers/neware/test_neware_page_scan.py`` holds it to the expat reading.

Why pyarrow and not ``float()``: CPython turns a text into a double in ~165 ns whatever the text, and numpy's own
text conversions cost the same, so a 1000-record page's 5000 numbers took ~0.9 ms that way against ~0.1 ms for
pyarrow's casts; a reader without pyarrow (tried: ``bytes.split`` and ``map(float, ...)``) halved the catch-up rate
to ~240 000 records/s. The price is pyarrow's import in a process that downloads (~35 MB resident).

Everything runs on the calling thread (pyarrow's CSV reader, which would split the rows as well, hands each read
to threads of its own, and their wake-ups cost more than its parsing on a busy machine). pyarrow (a core
dependency, for exports) is imported on the first page read, so that commands that never download do not pay its
~0.15 s import.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

INT_FIELDS = ("seqid", "stepid", "cycleid")
FLOAT_FIELDS = ("testtime", "volt", "curr", "cap", "eng")
TEXT_FIELDS = ("steptype", "atime")
#: optional numbers a BTS adds to every row of a channel that has them mapped (neware-bts-api.md 2.7, "aux
#: attributes"): ``T1``, the auxiliary thermocouple in degC. Read as floats when the first row carries them; a page
#: whose rows do not all carry them is of another shape, read by expat
AUX_TEMPERATURE = "T1"
OPTIONAL_FLOAT_FIELDS = (AUX_TEMPERATURE,)
#: below this many rows the expat reading is faster (~0.04 ms + 5 us a row against ~0.23 ms + 0.3 us a row on the
#: machine of 2026-11-30): a poll's pages of a few new records are not worth proving
MIN_ROWS = 48

#: the bytes each kind of value may hold, and its length bounds
_DIGITS = b"0123456789"
_NUMBER = _DIGITS + b"+-.eE"
_PRINTABLE = bytes(b for b in range(0x20, 0x7F) if b not in b'"&<>')
_SHORTEST = 1  # an integer or a number; texts may be empty
_LONGEST_INT, _LONGEST_NUMBER = 18, 40
_INT64, _FLOAT64 = np.dtype("<i8"), np.dtype("<f8")
_NAME = re.compile(rb'\s+([A-Za-z_][A-Za-z0-9_.-]*)=""')
_SPACE = re.compile(rb"\s*")
_QUOTED = re.compile(rb'"[^"]*"')
#: the quotes of a page are found this many bytes at a time, so that a page of far more rows than asked for is
#: refused having looked at the rows up to the one after the count only
_CHUNK = 1 << 18


@functools.cache
def _pyarrow() -> Any:
    """pyarrow, imported on the first page read (see the module docstring); with its compute functions, which
    ``take`` and ``cast`` would import on their first call."""
    import pyarrow
    import pyarrow.compute

    return pyarrow


@dataclass(frozen=True, slots=True)
class ScannedRows:
    """The rows of a page as columns; ``head`` is the frame as expat must still read it (the XML around the rows
    with the first row and the white space after it), so that a malformed or hostile envelope is refused."""

    count: int
    ints: dict[str, np.ndarray]
    floats: dict[str, np.ndarray]
    texts: dict[str, np.ndarray]
    head: bytes


@dataclass(frozen=True, slots=True)
class _Layout:
    """Rows of one shape: the attribute names in order, and the text outside the values: before the first value
    of the first row, between two values of a row, between two rows (the separator included) and after the
    last value of the last row. The rest is worked out once per shape, for every page of it: the number fields
    (``T1`` among them when the first row carries it), the other attributes (the texts among them), and the
    place in a row of each field in the order the values are taken (integers, numbers, others)."""

    names: tuple[str, ...]
    first: bytes
    inner: tuple[bytes, ...]
    between: bytes
    last: bytes
    float_fields: tuple[str, ...] = ()
    others: tuple[str, ...] = ()
    columns: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class _Proof:
    """What a page of ``rows`` rows of one layout is held to: :func:`_pieces` must equal ``expected`` at every even
    item (the text outside the values; its odd items are empty), and ``values`` picks out its odd items, the
    values, column after column in the layout's order (``count`` of them, an int32 pyarrow array)."""

    expected: Any
    values: Any
    count: int


def scan_rows(frame: bytes, max_rows: int | None = None) -> ScannedRows | None:
    """The page's ``<data>`` rows as columns, or None when the page is not one whose reading is certain. A page of
    more than ``max_rows`` rows is proven up to the row after ``max_rows`` (where expat would stop reading it) and
    none of its values is converted: its columns are left empty, for the caller to refuse it."""
    start, last = frame.find(b"<data"), frame.rfind(b"<data")
    first_end = frame.find(b">", start) + 1
    second = frame.find(b"<data", first_end)
    end = frame.find(b">", last) + 1
    if start < 0 or first_end == 0 or second < 0 or end == 0 or end - start < MIN_ROWS * (first_end - start):
        return None
    separator = frame[first_end:second]
    if _SPACE.fullmatch(separator) is None:
        return None
    head, tail = frame[:start], frame[end:]
    if b"&" in head or b"<!" in head or b"&" in tail or b"<!" in tail or b"<?" in tail or \
            head.count(b"<?") > int(head.startswith(b"<?xml ")):
        return None  # markup only expat may judge (references, DTDs, comments, CDATA, instructions); the rows
    layout = _layout(_QUOTED.sub(b'""', frame[start:first_end]), separator)  # are held to the layout instead
    if layout is None:
        return None
    per_row = 2 * len(layout.names)
    quotes = _quotes(frame, start, end, None if max_rows is None else (max_rows + 1) * per_row + 1)
    rows, left = divmod(len(quotes), per_row)
    convert, stop = max_rows is None or rows <= max_rows, end
    if not convert:  # expat stops at the row after max_rows: the rows up to it (and the quote after) are proven
        rows = max_rows + 1
        if len(quotes) > rows * per_row:
            quotes = quotes[:rows * per_row + 1]
            stop = start + int(quotes[-1]) + 1
    elif left or rows < MIN_ROWS:
        return None
    pa = _pyarrow()
    proof = _proof(layout, rows, stop == end)
    pieces = _pieces(frame, start, stop, quotes)
    if not _even_items_equal(pieces, proof.expected):
        return None
    taken, count = _take(pieces, proof.values), proof.count
    buffers = taken.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32, count=count + 1)
    data = buffers[2][:int(offsets[-1])].to_pybytes() if buffers[2] is not None else b""
    lengths = offsets[1:] - offsets[:-1]
    floats_at, others_at = 3 * rows, (3 + len(layout.float_fields)) * rows
    ends = offsets[[floats_at, others_at]].tolist()
    if data[:ends[0]].translate(None, _DIGITS) or data[ends[0]:ends[1]].translate(None, _NUMBER) or \
            data[ends[1]:].translate(None, _PRINTABLE):
        return None
    if lengths[:others_at].min() < _SHORTEST or lengths[:floats_at].max() > _LONGEST_INT or \
            lengths[floats_at:others_at].max() > _LONGEST_NUMBER:
        return None
    if not convert:
        return ScannedRows(rows, {}, {}, {}, frame[:second] + frame[end:])
    texts = {}
    for i, name in enumerate(layout.others, 3 + len(layout.float_fields)):
        if name in TEXT_FIELDS:
            column = offsets[i * rows:(i + 1) * rows + 1]
            low = int(column[0])
            texts[name] = _texts(data[low:int(column[-1])], column - low, lengths[i * rows:(i + 1) * rows])
    strings = pa.Array.from_buffers(pa.string(), count, buffers[:3])  # checked ASCII: casts from text to numbers
    try:  # are in every pyarrow, from binary in recent ones
        ints = _numbers(strings.slice(0, floats_at).cast(pa.int64(), memory_pool=_pool()), _INT64)
        floats = _numbers(strings.slice(floats_at, others_at - floats_at).cast(pa.float64(), memory_pool=_pool()),
                          _FLOAT64)
    except pa.ArrowException:  # "1e", "1-2", ".": the expat reading names it
        return None
    return ScannedRows(rows, dict(zip(INT_FIELDS, ints.reshape(3, rows), strict=True)),
                       dict(zip(layout.float_fields, floats.reshape(len(layout.float_fields), rows), strict=True)),
                       texts, frame[:second] + frame[end:])


@functools.cache
def _pool() -> Any:
    """The C library's allocator for every array a page read makes: pyarrow's default pool (jemalloc or mimalloc)
    keeps what it freed, ~12 MB more resident memory for a process that reads pages, for no speed we could measure
    (the arrays are small and short-lived)."""
    return _pyarrow().system_memory_pool()


def _take(values: Any, indices: Any) -> Any:
    return _pyarrow().compute.take(values, indices, memory_pool=_pool())


@functools.lru_cache(maxsize=16)
def _layout(row: bytes, separator: bytes) -> _Layout | None:
    """The layout of rows shaped like ``row`` (the first row with its values emptied) and ``separator`` apart;
    None when the first row lacks a field, repeats one or is not ``<data name="value" ... />``."""
    names, at = [], len(b"<data")
    for match in _NAME.finditer(row, at):
        if match.start() != at:
            return None
        names.append(match.group(1).decode("ascii"))
        at = match.end()
    if not row.startswith(b"<data") or re.fullmatch(rb"\s*/>", row[at:]) is None or len(set(names)) != len(names):
        return None
    if any(name not in names for name in INT_FIELDS + FLOAT_FIELDS + TEXT_FIELDS):
        return None
    opening, *inner, closing = row.split(b'"')[0::2]  # "<data seqid=", " stepid=", ..., " eng=", " />"
    float_fields = FLOAT_FIELDS + tuple(name for name in OPTIONAL_FLOAT_FIELDS if name in names)
    others = tuple(name for name in names if name not in INT_FIELDS and name not in float_fields)  # the texts, and
    columns = tuple(names.index(name) for name in INT_FIELDS + float_fields + others)  # any other attribute
    return _Layout(tuple(names), opening + b'"', tuple(b'"' + piece + b'"' for piece in inner),
                   b'"' + closing + separator + opening + b'"', b'"' + closing, float_fields, others, columns)


def _quotes(frame: bytes, start: int, end: int, enough: int | None) -> np.ndarray:
    """The positions (from ``start``) of the quotes of ``frame[start:end]``, or of its first ``enough`` or more."""
    data = np.frombuffer(frame, dtype=np.uint8, count=end - start, offset=start)
    parts, found = [], 0
    for at in range(0, len(data), _CHUNK):
        hits = np.flatnonzero(data[at:at + _CHUNK] == ord('"'))
        parts.append(hits + at if at else hits)
        found += len(hits)
        if enough is not None and found >= enough:
            break
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _pieces(frame: bytes, start: int, end: int, quotes: np.ndarray) -> Any:
    """``frame[start:end]`` cut at its quotes, as one pyarrow array on the frame's bytes (no copy): the text
    before the first value (with the quote that opens it), the value, the text up to the next value (with both
    quotes), the value, ... the text after the last value. Values are the odd items, and hold no quote."""
    pa = _pyarrow()
    bounds = np.empty(len(quotes) + 2, dtype=np.int32)
    bounds[0], bounds[-1] = 0, end - start
    np.add(quotes, _ones_and_zeros(len(quotes)), out=bounds[1:-1], casting="unsafe")  # values start after a quote
    if len(quotes) % 2:  # a cut page (see scan_rows): it ends on the quote that opens the next value
        bounds = bounds[:-1]
    return pa.Array.from_buffers(pa.binary(), len(bounds) - 1,
                                 [None, pa.py_buffer(bounds), pa.py_buffer(memoryview(frame)[start:end])])


def _ones_and_zeros(count: int) -> np.ndarray:
    """1, 0, 1, 0, ... (``count`` of them): what :func:`_pieces` adds to the quotes' positions."""
    return _alternating(1 << max(12, (count - 1).bit_length()))[:count]


@functools.lru_cache(maxsize=2)
def _alternating(size: int) -> np.ndarray:
    return (np.arange(size, dtype=np.int32) % 2 == 0).astype(np.int32)


@functools.lru_cache(maxsize=8)
def _proof(layout: _Layout, rows: int, whole: bool) -> _Proof:
    """The proof of pages of ``rows`` rows of ``layout``: what their pieces must be (:func:`_expected`; ``whole``
    as there) and which of them are the values (odd items: those of the layout's columns, column after column)."""
    width = len(layout.names)
    values = 1 + 2 * (np.asarray(layout.columns, dtype=np.int32)[:, None] + width * np.arange(rows, dtype=np.int32))
    return _Proof(_expected(layout, rows, whole), _indices(values.ravel()), values.size)


def _even_items_equal(pieces: Any, expected: Any) -> bool:
    """Every even item of ``pieces`` equals ``expected``'s, byte for byte (and the two are as long): one pyarrow
    ``equal`` of the two arrays item by item, whose bits (least significant first, no nulls) are then read eight
    items at a time. Half the cost of taking the even items out and comparing them as one array."""
    pa = _pyarrow()
    if len(pieces) != len(expected):
        return False
    same = pa.compute.equal(pieces, expected, memory_pool=_pool())
    if same.null_count or same.offset:  # (a fresh array has neither)
        return False
    count = len(same)
    bits = np.frombuffer(same.buffers()[1], dtype=np.uint8, count=(count + 7) // 8)
    full, rest = divmod(count, 8)
    if np.any(bits[:full] & 0x55 != 0x55):
        return False
    even = 0x55 & ((1 << rest) - 1)
    return not rest or int(bits[full]) & even == even


def _indices(items: np.ndarray) -> Any:
    """int32 positions as a pyarrow array (built from the buffer: ``pyarrow.array`` would import pandas)."""
    pa = _pyarrow()
    return pa.Array.from_buffers(pa.int32(), len(items), [None, pa.py_buffer(np.ascontiguousarray(items))])


def _expected(layout: _Layout, rows: int, whole: bool) -> Any:
    """What :func:`_pieces` of ``rows`` rows must be: the text outside the values piece by piece at the even items,
    and empty odd items (where the values go, not compared); ``whole``: the page ends after them, else on the
    quote that opens the next row's first value."""
    pa = _pyarrow()
    row = [*layout.inner, layout.between]
    pieces = [layout.first, *row * (rows - 1), *layout.inner, layout.last if whole else layout.between]
    bounds = np.zeros(2 * len(pieces), dtype=np.int32)
    np.cumsum([len(piece) for piece in pieces], out=bounds[1::2])
    bounds[2::2] = bounds[1:-1:2]  # an empty item after each piece but the last
    return pa.Array.from_buffers(pa.binary(), 2 * len(pieces) - 1,
                                 [None, pa.py_buffer(bounds), pa.py_buffer(b"".join(pieces))])


def _numbers(values: Any, dtype: np.dtype) -> np.ndarray:
    """A pyarrow int64 or float64 array (``dtype``) without nulls as a numpy array of its own (a copy: writable,
    and free of pyarrow's memory; ``to_numpy`` would import pandas)."""
    return np.frombuffer(values.buffers()[1], dtype=dtype, count=len(values),
                         offset=values.offset * dtype.itemsize).copy()


def _texts(data: bytes, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A text column as fixed-width ASCII bytes (numpy's ``S``, which drops trailing NULs; values hold none), from
    its values' bytes one after the other, their boundaries (from 0) and their lengths."""
    width = max(1, int(lengths.max()))
    if len(data) == width * len(lengths):  # all of one length (a timestamp): the bytes as they are
        return np.frombuffer(data, dtype=f"S{width}").copy()
    chars = np.frombuffer(data + b"\0" * width, dtype=np.uint8)
    index = offsets[:-1, None] + np.arange(width)
    within = np.arange(width) < lengths[:, None]
    return np.ascontiguousarray(np.where(within, chars[index], np.uint8(0))).view(f"S{width}").ravel()
