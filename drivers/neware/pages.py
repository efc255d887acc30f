"""Fast, still defused, parsing of ``download`` pages (the driver's hot path).

defusedxml's ElementTree parser forces the pure-Python ElementTree (it cannot subclass the C accelerator), which
costs ~5 ms per 1000-record page: about 4 s of a 1000-cycle dry run. This reader subclasses defusedxml's own
expat SAX driver (so DTDs, entity declarations and external references are refused by defusedxml's handlers,
exactly as elsewhere) but takes the raw attribute dicts straight from expat, with no tree and no per-element
SAX objects. That still built a dict and ten strings per record (~5.5 ms a page on the machine of 2026-11-30), so
a page of the usual shape is now read by columns (:mod:`drivers.neware.page_scan`, ~0.5 ms, numpy and pyarrow
arrays and no object per record) with only its envelope and first row through this reader; every other page is
read here row by row, which names its fault. Both give a :class:`~drivers.neware.replies.DownloadPage` of columns.

A page is checked, not trusted (one renumbered record once made the station skip 7,510 of 7,859 records, and a
seqid of 1e30 crashed it): the records must be exactly the ones asked for, ``startpos``, ``startpos + 1``, ... and
no more than ``count``; record numbers must fit a 64-bit integer, and times must be finite. Anything else is a
:class:`NewareProtocolError`, raised inside the parse so that the client's retry-after-garbled covers it. Voltage,
current, capacity, energy and the optional auxiliary temperature ``T1`` are taken as they come, NaN and infinity
included: judging those is the station's safety check, not the parser's. The checks work on whole columns (C-level
``min``/``max``/``==``) and only walk the rows one by one to describe a fault once one is known.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.expatreader import DefusedExpatParser

from drivers.neware.codec import INT64_MAX, parse_int
from drivers.neware.errors import NewareProtocolError
from drivers.neware.page_scan import AUX_TEMPERATURE, ScannedRows, scan_rows
from drivers.neware.replies import DataRecord, DownloadPage

#: the range of each integer field of a record. ``cycleid`` may be 0: a field report (BTS Client 2025.11.24) has
#: ``download`` numbering cycles from 0 (neware-bts-api.md 2.7, [disputed]); seqid and stepid are 1-based.
_INTEGER_FIELDS = (("seqid", 1), ("stepid", 1), ("cycleid", 0))


@dataclass(frozen=True, slots=True)
class PageRequest:
    """What a ``download`` asked for, so that its reply can be held to it (and errors can name it)."""

    channel: str
    startpos: int  # 0..INT64_MAX - count, so that the seqids asked for fit 64 bits (the client checks)
    count: int

    @property
    def first(self) -> int:
        """The seqid the page must start with (seqids are 1-based, so startpos 0 means the first record)."""
        return max(1, self.startpos)

    def where(self) -> str:
        return f"download of channel {self.channel} from startpos {self.startpos}"


class _TooManyRows(Exception):
    """Raised from inside expat to stop a page at the first row past the count asked for."""


class _PageReader(DefusedExpatParser):
    """``keep=False`` counts the rows without keeping them: a page that announces more rows than were asked for
    is read that way first, so that refusing it costs no row (and reading it to its end, if the count was only
    text, is left to a reader that keeps them)."""

    def __init__(self, max_rows: int | None = None, *, keep: bool = True) -> None:
        self.rows: list[dict[str, str]] = []
        self.echo: dict[str, str] = {}
        self.root: str | None = None
        self.max_rows = max_rows
        self.keep = keep
        super().__init__(forbid_dtd=True, forbid_entities=True, forbid_external=True)

    def reset(self) -> None:
        super().reset()
        parser: Any = self._parser
        parser.StartElementHandler = self._handler()
        parser.EndElementHandler = None
        parser.CharacterDataHandler = None

    def _handler(self) -> Callable[[str, dict[str, str]], None]:
        """The start-element handler, a closure: it runs once per row, so it reads no attribute of ``self``."""
        rows = self.rows = []
        append = rows.append if self.keep else lambda attrs: rows.append(None)  # type: ignore[arg-type]
        limit = math.inf if self.max_rows is None else self.max_rows

        def start(name: str, attrs: dict[str, str]) -> None:
            if name == "data":
                append(attrs)
                if len(rows) > limit:
                    raise _TooManyRows  # no more rows are read, none is converted
            elif name == "download":
                self.echo = attrs
            elif self.root is None:
                self.root = name

        return start


def parse_download_frame(frame: bytes, command: str = "download", request: PageRequest | None = None) -> DownloadPage:
    """One ``download`` reply frame -> a page of columns; garbled, hostile or wrong input ->
    :class:`NewareProtocolError`.

    With ``request`` the page must hold the records asked for (see the module docstring); without it (a caller
    that knows nothing of the request) only the numbers themselves are checked. A page of the usual shape is read
    by :mod:`drivers.neware.page_scan` (its envelope and first row still through defusedxml); any other page, and
    any page that fails a check, by expat row by row, which names the fault.
    """
    end = frame.rfind(b"</bts>") + len(b"</bts>")
    if len(b"</bts>") <= end < len(frame):  # cut a trailer; a frame from the transport has none (no 1 MB copy)
        frame = frame[:end]
    page = _scanned_page(frame, request)
    if page is not None:
        return page
    return _parsed_page(frame, command, request)


def _scanned_page(frame: bytes, request: PageRequest | None) -> DownloadPage | None:
    """The page through :func:`drivers.neware.page_scan.scan_rows`, or None if it must be read row by row: its
    shape is not the usual one, its envelope does not parse, or a check fails (the row-by-row reading then gives
    the error, in its words). A page of the usual shape with more rows than asked for is refused here, in the
    words of the row-by-row reading, which would stop at the row after the count."""
    rows = scan_rows(frame, None if request is None else request.count)
    if rows is None:
        return None
    reader = _PageReader()
    try:  # the envelope, the first row and the text after it: defusedxml refuses DTDs and entities here
        reader.feed(rows.head)
        reader.close()
    except Exception:
        return None
    if reader.root != "bts" or len(reader.rows) != 1:
        return None
    if request is not None and rows.count > request.count:  # rows of the usual shape in a well-formed page: expat
        raise NewareProtocolError(  # would refuse it at the row after the count, in these words
            f"{request.where()}: the page holds more than the {request.count} records asked for; refused unread")
    if not _same_row(reader.rows[0], rows):
        return None
    seqid, stepid, cycleid = (rows.ints[name] for name in ("seqid", "stepid", "cycleid"))
    testtime = rows.floats["testtime"]
    if request is not None:
        first = request.first
        if seqid[0] != first or (seqid[1:] - seqid[:-1] != 1).any():  # (1 to 18 digits each: no overflow)
            return None
    elif seqid.min() < 1:
        return None
    if stepid.min() < 1 or not np.isfinite(testtime).all():
        return None  # cycleid holds digits only: 0 or more
    try:
        testid, startpos = _echo(reader.echo)
    except NewareProtocolError:
        return None
    floats = rows.floats
    aux = floats.get(AUX_TEMPERATURE)
    return DownloadPage(testid, startpos, seqid, stepid, cycleid, rows.texts["steptype"], testtime,
                        rows.texts["atime"], floats["volt"], floats["curr"], floats["cap"], floats["eng"],
                        np.full(rows.count, np.nan) if aux is None else aux)


def _same_row(attrs: dict[str, str], rows: ScannedRows) -> bool:
    """The first row as expat read it agrees with the scan (it always should: a cheap proof that it does)."""
    try:
        return (all(int(attrs[name]) == int(rows.ints[name][0]) for name in rows.ints)
                and all(float(attrs[name]) == float(rows.floats[name][0]) for name in rows.floats)
                and all(attrs[name] == rows.texts[name][0].decode("ascii") for name in rows.texts))
    except (KeyError, ValueError):
        return False


def _echo(echo: dict[str, str]) -> tuple[int, int]:
    return (parse_int(echo.get("testid") or "0", "a testid", 0, INT64_MAX),
            parse_int(echo.get("startpos") or "0", "an echoed startpos"))


def _parsed_page(frame: bytes, command: str, request: PageRequest | None) -> DownloadPage:
    """The page read row by row by expat (any shape), checked record by record."""
    where = request.where() if request is not None else f"the reply to '{command}'"
    counted = request is not None and frame.count(b"<data") > request.count
    reader = _PageReader(None if request is None else request.count, keep=not counted)
    try:
        reader.feed(frame)
        reader.close()
        if counted:  # the rows were fewer than the text made it look: read them, keeping them this time
            reader = _PageReader(None if request is None else request.count)
            reader.feed(frame)
            reader.close()
    except _TooManyRows:
        assert request is not None
        raise NewareProtocolError(
            f"{where}: the page holds more than the {request.count} records asked for; refused unread"
        ) from None
    except DefusedXmlException as exc:
        raise NewareProtocolError(f"the reply to '{command}' was refused by the XML parser: {exc}") from None
    except Exception as exc:  # SAXParseException and friends: a garbled or truncated reply
        excerpt = frame[:120].decode("utf-8", "replace")
        raise NewareProtocolError(f"the reply to '{command}' is not valid XML ({exc}); it began: {excerpt!r}") from None
    if reader.root != "bts":
        raise NewareProtocolError(f"the reply to '{command}' has root <{reader.root}>, expected <bts>")
    try:
        records = [
            DataRecord(
                int(a["seqid"]),
                int(a["stepid"]),
                int(a["cycleid"]),
                a.get("steptype", ""),
                float(a["testtime"]),
                a.get("atime", ""),
                float(a["volt"]),
                float(a["curr"]),
                float(a["cap"]),
                float(a["eng"]),
            )
            for a in reader.rows
        ]
        aux = [math.nan if (text := a.get(AUX_TEMPERATURE)) is None else float(text) for a in reader.rows]
    except (KeyError, ValueError):
        raise NewareProtocolError(f"{where}: {_describe_bad_row(reader.rows)}") from None
    if records:
        _check_records(records, request, where)
    try:
        testid, startpos = _echo(reader.echo)
    except NewareProtocolError as exc:
        raise NewareProtocolError(f"{where}: {exc}") from None
    if not records:
        return DownloadPage.empty(testid, startpos)
    seqid, stepid, cycleid, steptype, testtime, atime, volt, curr, cap, eng = zip(*records, strict=True)
    ints = [np.array(column, dtype=np.int64) for column in (seqid, stepid, cycleid)]
    floats = [np.array(column, dtype=np.float64) for column in (testtime, volt, curr, cap, eng)]
    return DownloadPage(testid, startpos, *ints, np.array(steptype, dtype=str), floats[0], np.array(atime, dtype=str),
                        *floats[1:], np.array(aux, dtype=np.float64))


def _describe_bad_row(rows: list[dict[str, str]]) -> str:
    """The first row that does not convert, and why (only called once a page is known to hold one)."""
    for index, attrs in enumerate(rows, 1):
        for name, low in _INTEGER_FIELDS:
            text = attrs.get(name)
            if text is None:
                return f"record {index} has no {name}"
            try:
                int(text)
            except ValueError:
                return f"record {index} has {name}={text!r}, not an integer in {low}..{INT64_MAX}"
        for name in ("testtime", "volt", "curr", "cap", "eng"):
            text = attrs.get(name)
            if text is None:
                return f"record {index} has no {name}"
            try:
                float(text)
            except ValueError:
                return f"record {index} has {name}={text!r}, not a number"
        text = attrs.get(AUX_TEMPERATURE)
        if text is not None:
            try:
                float(text)
            except ValueError:
                seqid = attrs.get("seqid")
                return (f"record {index} (seqid {seqid}) has {AUX_TEMPERATURE}={text!r}, not a number (the "
                        "auxiliary temperature in degC); check the thermocouple mapped to the channel")
    return "a record is incomplete or not numeric"


def _check_records(records: list[DataRecord], request: PageRequest | None, where: str) -> None:
    """Hold a converted page to the request and to the value ranges.

    The fast path costs ~0.12 ms a 1000-record page (3 % of the parse): one transpose, then C-level
    ``min``/``sum``/``==`` on columns. For non-negative integers ``sum <= INT64_MAX`` bounds every one of them;
    only when a column fails (or a sum of huge but valid numbers overflows) are the rows walked to find and name
    the culprit.
    """
    seqids, stepids, cycleids, _, times, *_ = zip(*records, strict=True)
    if request is not None:
        first = request.first
        if seqids != tuple(range(first, first + len(seqids))):
            raise NewareProtocolError(f"{where}: {_describe_sequence(seqids, first)}")
        columns = (("stepid", 1, stepids), ("cycleid", 0, cycleids))  # the seqids are those asked for
    else:
        columns = (("seqid", 1, seqids), ("stepid", 1, stepids), ("cycleid", 0, cycleids))
    for name, low, values in columns:
        if min(values) < low or sum(values) > INT64_MAX:
            bad = [(i, v) for i, v in enumerate(values, 1) if not low <= v <= INT64_MAX]
            if bad:
                index, value = bad[0]
                raise NewareProtocolError(f"{where}: record {index} has {name} {value}, outside {low}..{INT64_MAX}")
    if not math.isfinite(sum(times)):
        bad_times = [(i, v) for i, v in enumerate(times, 1) if not math.isfinite(v)]
        if bad_times:  # else only the sum overflowed
            index, value = bad_times[0]
            raise NewareProtocolError(
                f"{where}: record {index} (seqid {seqids[index - 1]}) has testtime {value}, not a finite step time"
            )


def _describe_sequence(seqids: tuple[int, ...], first: int) -> str:
    """What is wrong with a page's record numbers, once they are known not to be first, first + 1, ..."""
    if seqids[0] != first:
        return f"the page starts at seqid {seqids[0]}, not at the {first} asked for"
    index = next(i for i in range(1, len(seqids)) if seqids[i] != seqids[i - 1] + 1)
    return (
        f"record {index + 1} has seqid {seqids[index]} after {seqids[index - 1]} (seqids must run on by one, "
        "without gaps or repeats)"
    )
