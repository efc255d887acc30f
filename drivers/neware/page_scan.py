"""Columns of a ``download`` page straight from its bytes, with a regex and numpy: the dry run's and a catch-up's
hot path.

Parsing a 1000-record page through expat built 1000 attribute dicts, 10 000 Python strings and 1000 typed rows:
about 5 ms a page, 3.4 s of a 1000-cycle dry run. Every page a BTS (or the simulator) sends has one shape, one
``<data .../>`` row after the other with the same attributes in the same order, so this reader proves that shape
for the whole page at once and converts each column in one call:

* the XML around the rows, the first row and the white space after it are parsed by the caller with defusedxml's
  expat reader exactly as before (a DTD or an entity declaration is refused there, in the same words), and the
  frame holds no ``&`` (no entity or character reference anywhere) and no ``<!`` or second ``<?`` (no DTD,
  comment, CDATA section or processing instruction, inside which a row could hide);
* one compiled regex, built from the first row's bytes outside its values, must match every row and the white
  space between them, with values of plain printable ASCII: digits for ``seqid``/``stepid``/``cycleid`` (at most
  18, so they fit 64 bits), decimal characters for the numbers, and no ``"``, ``&``, ``<`` or ``>`` in any value
  (nothing expat would decode or normalise differently);
* the numbers are read by numpy (integers digit by digit, floats by ``numpy.fromstring``, which uses Python's own
  correctly rounded conversion), so each value is the one ``int()``/``float()`` gives for the same text.

Anything else (another shape, a NaN voltage, an entity, a comment, single quotes, a malformed number) returns
``None`` and the page is read by expat row by row (:mod:`drivers.neware.pages`), which then gives the values or
names the fault: this module only answers for pages whose reading cannot differ.
``tests/drivers/neware/test_neware_page_scan.py`` holds it to the expat reading.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

INT_FIELDS = ("seqid", "stepid", "cycleid")
FLOAT_FIELDS = ("testtime", "volt", "curr", "cap", "eng")
TEXT_FIELDS = ("steptype", "atime")
#: below this many rows the expat reading is as fast, and a page's shape is not worth proving
MIN_ROWS = 4

_VALUES = {
    **dict.fromkeys(INT_FIELDS, rb"[0-9]{1,18}+"),
    **dict.fromkeys(FLOAT_FIELDS, rb"[0-9+\-.eE]{1,40}+"),
}
#: any other value: printable ASCII but for the quote, the ampersand and the angle brackets (the quantifiers are
#: possessive: no class holds the quote that ends a value, so there is never anything to take back)
_TEXT = rb"[ !#-%'-;=?-~]*+"
_NAME = re.compile(rb'\s+([A-Za-z_][A-Za-z0-9_.-]*)="[^"]*"')
_SPACE = re.compile(rb"\s*")


@dataclass(frozen=True, slots=True)
class ScannedRows:
    """The rows of a page as columns; ``head`` is the frame as expat must still read it (the XML around the rows
    with the first row and the white space after it), so that a malformed or hostile envelope is refused."""

    count: int
    ints: dict[str, np.ndarray]
    floats: dict[str, np.ndarray]
    texts: dict[str, np.ndarray]
    head: bytes


def scan_rows(frame: bytes, rows: int | None = None) -> ScannedRows | None:
    """The page's ``<data>`` rows as columns, or None when the page is not one whose reading is certain.
    ``rows``: ``frame.count(b"<data")`` if the caller has counted them already."""
    rows = frame.count(b"<data") if rows is None else rows
    if rows < MIN_ROWS:
        return None
    start, last = frame.find(b"<data"), frame.rfind(b"<data")
    first_end = frame.find(b">", start) + 1
    second = frame.find(b"<data", first_end)
    end = frame.find(b">", last) + 1
    if first_end == 0 or end == 0 or _SPACE.fullmatch(frame, first_end, second) is None:
        return None
    head, tail = frame[:start], frame[end:]
    if any(b"&" in part or b"<!" in part for part in (head, tail)) or b"<?" in tail or \
            head.count(b"<?") > int(head.startswith(b"<?xml ")):
        return None  # markup only expat may judge (references, DTDs, comments, CDATA, instructions); the rows
    shape = _row_pattern(frame[start:first_end], frame[first_end:second])  # are held to the regex instead
    if shape is None:
        return None
    pattern, names = shape
    if pattern.fullmatch(frame, start, end) is None:
        return None
    data = np.frombuffer(frame, dtype=np.uint8, count=end - start, offset=start)
    quotes = np.flatnonzero(data == ord('"'))  # the regex allows none in a value: two per attribute
    if len(quotes) != rows * 2 * len(names):
        return None
    quotes = quotes.reshape(rows, 2 * len(names))
    starts, lengths = quotes[:, 0::2] + 1, quotes[:, 1::2] - quotes[:, 0::2] - 1
    column = {name: i for i, name in enumerate(names)}
    ints = {name: _integers(data, starts[:, column[name]], lengths[:, column[name]]) for name in INT_FIELDS}
    floats = {}
    for name in FLOAT_FIELDS:
        values = _floats(data, starts[:, column[name]], lengths[:, column[name]])
        if values is None:
            return None
        floats[name] = values
    texts = {name: _texts(data, starts[:, column[name]], lengths[:, column[name]]) for name in TEXT_FIELDS}
    return ScannedRows(rows, ints, floats, texts, frame[:second] + frame[end:])


def _row_pattern(row: bytes, separator: bytes) -> tuple[re.Pattern[bytes], tuple[str, ...]] | None:
    """The regex every row (and the separator between two rows) must match, built from the first row: its bytes
    outside the values literally, each value by its field's class; with the attribute names in order. None when
    the first row lacks a field or is not ``<data name="value" ... />``. Built once per shape (the first row with
    its values emptied), not once per page."""
    return _pattern_of(_QUOTED.sub(b'""', row), separator)


_QUOTED = re.compile(rb'"[^"]*"')


@functools.lru_cache(maxsize=16)
def _pattern_of(row: bytes, separator: bytes) -> tuple[re.Pattern[bytes], tuple[str, ...]] | None:
    parts, names, at = [re.escape(b"<data")], [], len(b"<data")
    for match in _NAME.finditer(row, at):
        if match.start() != at:
            return None
        name = match.group(1)
        names.append(name.decode("ascii"))
        parts.append(re.escape(row[at:match.end(1) + 2]) + _VALUES.get(names[-1], _TEXT) + b'"')
        at = match.end()
    if re.fullmatch(rb"\s*/>", row[at:]) is None or len(set(names)) != len(names):
        return None
    if any(name not in names for name in INT_FIELDS + FLOAT_FIELDS + TEXT_FIELDS):
        return None
    one = b"".join(parts) + re.escape(row[at:])
    return re.compile(b"(?:" + one + re.escape(separator) + b")*+" + one), tuple(names)


def _window(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's bytes, left-aligned in rows as wide as the longest value plus one (the rest masked off)."""
    width = int(lengths.max()) + 1
    index = np.minimum(starts[:, None] + np.arange(width), len(data) - 1)
    return data[index], np.arange(width) < lengths[:, None]


def _integers(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A column of 1 to 18 digits each (the regex holds them to that), as int64: digit by digit."""
    chars, within = _window(data, starts, lengths)
    digits = np.where(within, chars - np.uint8(ord("0")), np.uint8(0)).astype(np.int64)
    places = np.maximum(lengths[:, None] - 1 - np.arange(chars.shape[1]), 0)
    return (digits * _POWERS[places]).sum(axis=1)


_POWERS = 10 ** np.arange(19, dtype=np.int64)


def _floats(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
    """A column of decimal numbers as float64, read as ``float()`` reads each, or None if one is malformed. Runs
    of one text (a constant current) are read once, and whole numbers (step times in ms) as integers, exactly."""
    chars, within = _window(data, starts, lengths)
    text = np.where(within, chars, np.uint8(ord(" ")))  # every value followed by at least one blank
    n = len(lengths)
    rows = text.view(f"S{text.shape[1]}").ravel()  # each value's text as one fixed-width string
    changes = np.ones(n, dtype=bool)
    np.not_equal(rows[1:], rows[:-1], out=changes[1:])
    heads = np.flatnonzero(changes)
    if len(heads) * 2 < n:
        values = _read_floats(text[heads].tobytes())
        if values is None or len(values) != len(heads):
            return None
        return np.repeat(values, np.diff(np.append(heads, n)))
    whole = np.all(_DIGIT[chars] | ~within, axis=1) & (lengths <= 15)  # below 2**53: exact as doubles
    if np.count_nonzero(whole) * 2 > n:
        out = np.empty(n)
        out[whole] = _integers(data, starts[whole], lengths[whole])
        rest = ~whole
        if rest.any():
            values = _read_floats(text[rest].tobytes())
            if values is None or len(values) != np.count_nonzero(rest):
                return None
            out[rest] = values
        return out
    values = _read_floats(text.tobytes())
    return values if values is not None and len(values) == n else None


def _read_floats(text: bytes) -> np.ndarray | None:
    try:
        return np.fromstring(text, dtype=np.float64, sep=" ")
    except ValueError:  # "1e", "1-2", "..": the expat reading names it
        return None


#: which bytes are decimal digits
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[ord("0"):ord("9") + 1] = True


def _texts(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A text column as fixed-width ASCII bytes (numpy's ``S``, which drops trailing NULs; values hold none)."""
    chars, within = _window(data, starts, lengths)
    return np.ascontiguousarray(np.where(within, chars, np.uint8(0))).view(f"S{chars.shape[1]}").ravel()
