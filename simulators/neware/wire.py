"""The simulated BTS Client's side of the wire: request framing and parsing, reply text.

Written independently of the driver's codec, as the real server is: replies are laid out like the real captures
(prolog without a space before ``?>``, CRLF line ends, two-space indent, ``</bts>`` then ``\\n\\n#\\r\\n``), and
requests are read leniently (any of the three terminators, whitespace between elements, a stray ``"`` after
``</list>``, as checklist item 2 of neware-bts-api.md asks).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
import numpy as np

PROLOG = '<?xml version="1.0" encoding="UTF-8"?>'
TRAILER = "\n\n#\r\n"
REQUEST_END = b"</bts>"
TRAILER_BYTES = b"\r\n# \t"

#: reply names where the real BTS 8.0 misspells them (neware-bts-api.md 1.5)
REPLY_NAMES = {"download": "donwload_resp", "downloadlog": "donwloadlog_resp"}


class RequestError(ValueError):
    """A request the simulated server cannot parse."""


class RequestFramer:
    """Cuts requests out of a byte stream at ``</bts>`` and skips the terminator bytes that follow."""

    def __init__(self, max_size: int = 64 * 1024 * 1024):
        self._buffer = bytearray()
        self.max_size = max_size

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > self.max_size:
            self._buffer.clear()
            raise RequestError("request too large without </bts>")

    def next_request(self) -> bytes | None:
        start = 0
        while start < len(self._buffer) and self._buffer[start] in TRAILER_BYTES:
            start += 1
        if start:
            del self._buffer[:start]
        end = self._buffer.find(REQUEST_END)
        if end < 0:
            return None
        stop = end + len(REQUEST_END)
        request = bytes(self._buffer[:stop])
        del self._buffer[:stop]
        return request


def parse_request(data: bytes) -> tuple[str, Element]:
    try:
        root = SafeET.fromstring(data)
    except Exception as exc:  # ParseError and defusedxml's refusals alike
        raise RequestError(f"not a BTS request: {exc}") from None
    command = (root.findtext("cmd") or "").strip()
    if root.tag != "bts" or not command:
        raise RequestError("a request must be <bts> with a <cmd>")
    return command, root


#: requests up to this size are kept parsed (a station repeats the same inquire and inquiredf every round)
CACHED_REQUEST_SIZE = 4096


def parse_request_cached(data: bytes) -> tuple[str, Element]:
    """:func:`parse_request`, answered from a small cache of recent requests keyed by their exact bytes (a changed
    byte is a different request, parsed anew; a request that does not parse is never kept). The element returned
    is shared by every request with those bytes: it is read, never changed (the command handlers only read it)."""
    return _parse_kept(data) if len(data) <= CACHED_REQUEST_SIZE else parse_request(data)


@functools.lru_cache(maxsize=64)
def _parse_kept(data: bytes) -> tuple[str, Element]:
    return parse_request(data)


def reply_name(command: str) -> str:
    return REPLY_NAMES.get(command, f"{command}_resp")


#: attribute values keep tabs and line breaks only as character references (XML normalises them otherwise)
_ATTRIBUTE_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


def attrs(values: dict[str, object]) -> str:
    return "".join(f' {k}="{escape(str(v), _ATTRIBUTE_ENTITIES)}"' for k, v in values.items())


def reply(command: str, lines: Sequence[str | bytes]) -> bytes:
    """The whole reply frame; ``lines`` are the body lines at the first indent level (already escaped): text, or
    UTF-8 bytes (a download page, built as bytes: joined as they are, not decoded and encoded again)."""
    parts = [f'{PROLOG}\r\n<bts version="1.0">\r\n  <cmd>{escape(reply_name(command))}</cmd>'.encode()]
    for line in lines:
        parts += (_BODY_LINE, line if isinstance(line, bytes | bytearray) else line.encode("utf-8"))
    parts.append(_CLOSE)
    return b"".join(parts)


#: before each body line, and the end of every reply
_BODY_LINE = b"\r\n  "
_CLOSE = ("\r\n</bts>" + TRAILER).encode()


def dotnet(value: float) -> str:
    """A .NET-style double: up to 15 significant digits, capital E exponent (``2.11492042581085E-05``).

    Python's ``%.15G`` writes exactly that form (signed, at least two exponent digits); download pages, the hot
    path, write the same bytes column-wise (:mod:`simulators.neware.pagetext`).
    """
    return f"{value:.15G}"


def rounded(value: float, digits: int = 4) -> str:
    """inquire values: rounded to 4 decimals, without trailing zeros (``3.8834``, ``0``)."""
    text = f"{round(value, digits):.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def atimes(epoch: dt.datetime, seconds: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DD HH:MM:SS`` for many records as an ``(n, 19)`` block of ASCII bytes, the seconds floored.

    Column-wise, with no object per record (a download page is built so, see pagetext): the date is written once
    per day of the page's span (a page spans a few), the time of day from two small tables (``HH:MM:`` per minute
    of the day, ``SS`` per second), a page of one day's records with its date broadcast.
    """
    stamps = np.floor(seconds).astype(np.int64)
    stamps += _epoch_second(epoch)
    days, second = np.divmod(stamps, 86_400)
    n = len(stamps)
    block = np.empty((n, 19), dtype=np.uint8)
    if n == 0:
        return block
    first, last = int(days.min()), int(days.max())
    if first == last:  # one day: its date and the space, as one item repeated
        block[:, :11].view("V11")[:, 0] = np.frombuffer(_date(first) + b" ", dtype="V11")[0]
    else:
        if last - first < _DAY_SPAN:  # the dates of the span's days, indexed by day
            distinct, index = np.arange(first, last + 1), days - first
        else:
            distinct, index = np.unique(days, return_inverse=True)
            index = index.ravel()
        dates = np.datetime_as_string(distinct.astype("datetime64[D]")).astype("S10")
        # as items of 10 and 8 bytes: numpy copies those in one loop, where it copies a (n, 10) block row by row
        block[:, :10].view("S10")[:, 0] = dates[index]
        block[:, 10] = ord(" ")
    minute, second_ = np.divmod(second, 60)
    clock = _MINUTES.take(minute)
    clock |= _SECONDS.take(second_)
    block[:, 11:].view("S8")[:, 0] = clock.view("S8")  # the bytes in little-endian order
    return block


@functools.lru_cache(maxsize=8)
def _epoch_second(epoch: dt.datetime) -> int:
    """The epoch's whole second as seconds since 1970 (its microseconds dropped, as the BTS's 1 s resolution)."""
    return int(np.datetime64(epoch.replace(microsecond=0), "s").astype(np.int64))


@functools.lru_cache(maxsize=64)
def _date(day: int) -> bytes:
    """``YYYY-MM-DD`` of a day counted from 1970-01-01 (cut to 10 bytes, as the dates of a span of days are)."""
    return np.datetime_as_string(np.datetime64(day, "D")).encode("ascii")[:10]


#: a page's records span a few days; a wider span is looked up through np.unique instead
_DAY_SPAN = 4096
#: ``HH:MM:`` of each minute of the day and ``SS`` of each second of a minute, as the bytes of little-endian words
#: that OR into ``HH:MM:SS`` (a table of every second of a day, 0.7 MB, was no faster in a dry run, where the page's
#: lookups fall far apart in a cold cache; these two are 12 KB)
_MINUTES = np.frombuffer(b"".join(b"%02d:%02d:\0\0" % divmod(m, 60) for m in range(1440)), dtype="<u8").copy()
_SECONDS = np.frombuffer(b"".join(b"\0" * 6 + b"%02d" % s for s in range(60)), dtype="<u8").copy()


class AtimeFormatter:
    """``YYYY-MM-DD HH:MM:SS`` at 1 s resolution from seconds since an epoch, cached per second."""

    def __init__(self, epoch: dt.datetime):
        self.epoch = epoch
        self._cache: dict[int, str] = {}

    def __call__(self, seconds: float) -> str:
        key = int(seconds)
        text = self._cache.get(key)
        if text is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            text = (self.epoch + dt.timedelta(seconds=key)).strftime("%Y-%m-%d %H:%M:%S")
            self._cache[key] = text
        return text
