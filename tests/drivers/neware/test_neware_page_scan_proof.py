"""The column reader's proof of the text outside the values (drivers/neware/page_scan.py): one byte changed
anywhere outside the values of a page of the usual shape, to any other byte, and the reader declines the page
(which expat then reads, values or error word for word); the item-by-item comparison it rests on agrees with a
plain Python comparison for every length and every place of a difference."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from drivers.neware import page_scan
from drivers.neware.errors import NewareProtocolError
from drivers.neware.page_scan import _even_items_equal, _pyarrow, scan_rows
from drivers.neware.pages import PageRequest, _parsed_page, parse_download_frame

ROW = ('<data seqid="%d" stepid="%d" cycleid="%d" steptype="%s" testtime="%d" atime="2025-12-28 22:%02d:05" '
       'volt="%s" curr="%s" cap="%s" eng="%s" />')
HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\r\n<bts version="1.0">\r\n  <cmd>donwload_resp</cmd>\r\n'
        '  <download devtype="27" devid="21" subdevid="1" chlid="2" testid="143" startpos="%d" count="%d" '
        'auxid="0" />\r\n  <list count="%d">\r\n    ')
TAIL = "\r\n  </list>\r\n</bts>"
ROWS = 60  # above page_scan.MIN_ROWS: read by columns


def page(first: int = 500, rows: int = ROWS) -> bytes:
    body = "\r\n    ".join(
        ROW % (first + i, 1 + i // 9, i // 27, "cc" if i % 3 else "rest", 30000 * i, i % 60, repr(3.5 + i / 977),
               repr(-0.00125 * (i % 4)), repr(i / 3e4), repr(i / 7e3)) for i in range(rows))
    return (HEAD % (first, rows, rows) + body + TAIL).encode()


def outside_positions(frame: bytes) -> list[int]:
    """Every byte of the rows that is not inside a value (quotes included), found with a regex of its own."""
    start, end = frame.index(b"<data"), frame.rindex(b"/>") + 2
    inside = set()
    for match in re.finditer(rb'"([^"]*)"', frame[start:end]):
        inside.update(range(start + match.start(1), start + match.end(1)))
    return [at for at in range(start, end) if at not in inside]


def _outcome(read, frame: bytes, request: PageRequest):
    try:
        got = read(frame, "download", request)
    except NewareProtocolError as exc:
        return ("error", str(exc))
    return ("page", got.testid, got.startpos, got.records)


def reading(frame: bytes, request: PageRequest):
    return _outcome(parse_download_frame, frame, request)


def expat_reading(frame: bytes, request: PageRequest):
    return _outcome(_parsed_page, frame, request)


def test_the_unchanged_page_is_read_by_columns() -> None:
    frame = page()
    assert scan_rows(frame, ROWS) is not None
    request = PageRequest("21-1-2", 500, ROWS)
    assert reading(frame, request) == expat_reading(frame, request)


@pytest.mark.parametrize("seed", range(4))
def test_one_byte_changed_outside_the_values_is_declined(seed: int) -> None:
    frame = page()
    request = PageRequest("21-1-2", 500, ROWS)
    rng = random.Random(seed)
    positions = outside_positions(frame)
    assert len(positions) > 90 * ROWS  # the proof covers every row's text, not a sample of it
    # the first row (the layout's source), the last (its closing text) and places anywhere between
    first_row_end = frame.index(b"/>") + 2
    chosen = [p for p in positions if p < first_row_end][::7] + positions[-12:] + rng.sample(positions, 120)
    for at in chosen:
        byte = rng.choice([b for b in range(256) if b != frame[at]])
        changed = frame[:at] + bytes([byte]) + frame[at + 1:]
        assert scan_rows(changed, ROWS) is None, (at, frame[at:at + 1], bytes([byte]))
        assert reading(changed, request) == expat_reading(changed, request), at


def test_every_outside_byte_matters_for_one_change_each() -> None:
    """Every position once (to one other byte): no byte outside the values escapes the proof."""
    frame = page(rows=page_scan.MIN_ROWS)
    for at in outside_positions(frame):
        changed = frame[:at] + (b"#" if frame[at:at + 1] != b"#" else b"%") + frame[at + 1:]
        assert scan_rows(changed, page_scan.MIN_ROWS) is None, at


def binary(items: list[bytes]):
    pa = _pyarrow()
    bounds = np.zeros(len(items) + 1, dtype=np.int32)
    np.cumsum([len(item) for item in items], out=bounds[1:])
    return pa.Array.from_buffers(pa.binary(), len(items), [None, pa.py_buffer(bounds), pa.py_buffer(b"".join(items))])


@pytest.mark.parametrize("count", [*range(1, 26), 63, 64, 65, 1001])
def test_even_items_compare_as_python_compares_them(count: int) -> None:
    rng = random.Random(count)
    words = [b"", b"a", b"ab", b'" stepid="', b"\r\n", b"x" * 20]
    expected = [rng.choice(words) for _ in range(count)]
    assert _even_items_equal(binary(expected), binary(expected))
    for _ in range(40):
        got = list(expected)
        at = rng.randrange(count)
        got[at] = rng.choice([w for w in [*words, b"b", b"ab "] if w != expected[at]])
        assert _even_items_equal(binary(got), binary(expected)) is (at % 2 == 1), (count, at)
    assert not _even_items_equal(binary([*expected, b""]), binary(expected))  # another length
