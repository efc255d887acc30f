"""Columns of a ``download`` page straight from its bytes, with numpy and pyarrow's C++ kernels: the dry run's and a
catch-up's hot path.

Parsing a 1000-record page through expat built 1000 attribute dicts, 10 000 Python strings and 1000 typed rows:
about 5 ms a page. A regex and numpy (numbers through ``numpy.fromstring``) brought that to ~2.4 ms, still too slow
for a catch-up at 500 000 records/s; this reader takes ~0.6 ms. Every page a BTS (or the simulator) sends has one
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
  ``take`` of them all and one comparison;
* the values are plain printable ASCII: digits for ``seqid``/``stepid``/``cycleid`` (1 to 18, so they fit 64
  bits), ``[0-9+-.eE]`` for the numbers (1 to 40; ``T1``, the auxiliary temperature, is one of them on a page
  whose first row carries it, so every row must), and no ``"``, ``&``, ``<`` or ``>`` in any value (nothing expat
  would decode or normalise differently): checked on the values of each kind, one after the other, by one
  ``bytes.translate``;
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
_INT_CLASS = (_DIGITS, 1, 18)
_FLOAT_CLASS = (_NUMBER, 1, 40)
_TEXT_CLASS = (_PRINTABLE, 0, None)
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
    last value of the last row."""

    names: tuple[str, ...]
    first: bytes
    inner: tuple[bytes, ...]
    between: bytes
    last: bytes


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
    if any(b"&" in part or b"<!" in part for part in (head, tail)) or b"<?" in tail or \
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
    pieces = _pieces(frame, start, stop, quotes)
    if not _take(pieces, _outside(len(quotes))).equals(_expected(layout, rows, stop == end)):
        return None
    float_fields = FLOAT_FIELDS + tuple(name for name in OPTIONAL_FLOAT_FIELDS if name in layout.names)
    others = tuple(name for name in layout.names if name not in INT_FIELDS and name not in float_fields)
    order = INT_FIELDS + float_fields + others  # the texts, and any other attribute
    values = _take(pieces, _inside(tuple(layout.names.index(name) for name in order), len(layout.names), rows))
    ints, floats, texts = {}, {}, {}
    at = 0
    for fields, allowed, kind, out in ((INT_FIELDS, _INT_CLASS, pa.int64(), ints),
                                       (float_fields, _FLOAT_CLASS, pa.float64(), floats),
                                       (others, _TEXT_CLASS, None, texts)):
        kept = values.slice(at * rows, len(fields) * rows)  # the columns of one kind, one after the other
        at += len(fields)
        if not _within(kept, *allowed):
            return None
        if not convert:
            continue
        if kind is None:
            texts.update((name, _texts(*_bytes_of(kept.slice(i * rows, rows))))
                         for i, name in enumerate(fields) if name in TEXT_FIELDS)
            continue
        try:  # as text (checked ASCII): casts from text to numbers are in every pyarrow, from binary in recent ones
            numbers = _numbers(pa.Array.from_buffers(pa.string(), len(kept), kept.buffers(), offset=kept.offset)
                               .cast(kind, memory_pool=_pool()))
        except pa.ArrowException:  # "1e", "1-2", ".": the expat reading names it
            return None
        out.update(zip(fields, numbers.reshape(len(fields), rows), strict=True))
    return ScannedRows(rows, ints, floats, texts, frame[:second] + frame[end:])


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
    return _Layout(tuple(names), opening + b'"', tuple(b'"' + piece + b'"' for piece in inner),
                   b'"' + closing + separator + opening + b'"', b'"' + closing)


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
    bounds[1:-1:2] = quotes[0::2] + 1
    bounds[2:-1:2] = quotes[1::2]
    if len(quotes) % 2:  # a cut page (see scan_rows): it ends on the quote that opens the next value
        bounds = bounds[:-1]
    return pa.Array.from_buffers(pa.binary(), len(bounds) - 1,
                                 [None, pa.py_buffer(bounds), pa.py_buffer(memoryview(frame)[start:end])])


@functools.lru_cache(maxsize=8)
def _outside(quotes: int) -> Any:
    """Which items of :func:`_pieces` are the text outside the values (the even ones)."""
    return _indices(np.arange(0, quotes + 1, 2, dtype=np.int32))


@functools.lru_cache(maxsize=32)
def _inside(columns: tuple[int, ...], width: int, rows: int) -> Any:
    """Which items of :func:`_pieces` are the values of these attributes (by their place in a row of ``width``
    attributes): one column after the other."""
    items = 1 + 2 * (np.asarray(columns, dtype=np.int32)[:, None] + width * np.arange(rows, dtype=np.int32))
    return _indices(items.ravel())


def _indices(items: np.ndarray) -> Any:
    """int32 positions as a pyarrow array (built from the buffer: ``pyarrow.array`` would import pandas)."""
    pa = _pyarrow()
    return pa.Array.from_buffers(pa.int32(), len(items), [None, pa.py_buffer(np.ascontiguousarray(items))])


@functools.lru_cache(maxsize=8)
def _expected(layout: _Layout, rows: int, whole: bool) -> Any:
    """What the text outside the values of ``rows`` rows must be, piece by piece; ``whole``: the page ends after
    them, else on the quote that opens the next row's first value."""
    pa = _pyarrow()
    row = [*layout.inner, layout.between]
    pieces = [layout.first, *row * (rows - 1), *layout.inner, layout.last if whole else layout.between]
    bounds = np.zeros(len(pieces) + 1, dtype=np.int32)
    np.cumsum([len(piece) for piece in pieces], out=bounds[1:])
    return pa.Array.from_buffers(pa.binary(), len(pieces),
                                 [None, pa.py_buffer(bounds), pa.py_buffer(b"".join(pieces))])


def _numbers(values: Any) -> np.ndarray:
    """A pyarrow int64 or float64 array without nulls as a numpy array of its own (a copy: writable, and free of
    pyarrow's memory; ``to_numpy`` would import pandas)."""
    dtype = _INT64 if values.type == _pyarrow().int64() else _FLOAT64
    return np.frombuffer(values.buffers()[1], dtype=dtype, count=len(values),
                         offset=values.offset * dtype.itemsize).copy()


def _bytes_of(values: Any) -> tuple[bytes, np.ndarray]:
    """A binary array's values' bytes, one after the other, and their boundaries (from 0)."""
    _, offsets_buffer, data_buffer = values.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32, count=len(values) + 1, offset=values.offset * 4)
    first = int(offsets[0])
    data = data_buffer[first:int(offsets[-1])].to_pybytes() if data_buffer is not None else b""
    return data, (offsets - first if first else offsets)


def _within(values: Any, allowed: bytes, shortest: int, longest: int | None) -> bool:
    """Every value of a binary array is of ``allowed`` bytes only, and ``shortest`` to ``longest`` long."""
    data, offsets = _bytes_of(values)
    lengths = np.diff(offsets)
    return not data.translate(None, allowed) and lengths.min() >= shortest and \
        (longest is None or lengths.max() <= longest)


def _texts(data: bytes, offsets: np.ndarray) -> np.ndarray:
    """A text column as fixed-width ASCII bytes (numpy's ``S``, which drops trailing NULs; values hold none)."""
    lengths = np.diff(offsets)
    width = max(1, int(lengths.max()))
    if len(data) == width * len(lengths):  # all of one length (a timestamp): the bytes as they are
        return np.frombuffer(data, dtype=f"S{width}").copy()
    chars = np.frombuffer(data + b"\0" * width, dtype=np.uint8)
    index = offsets[:-1, None] + np.arange(width)
    within = np.arange(width) < lengths[:, None]
    return np.ascontiguousarray(np.where(within, chars[index], np.uint8(0))).view(f"S{width}").ravel()
