"""The column reader of download pages (drivers/neware/page_scan.py) against expat row by row: for every page it
answers for, the very same values; for every other page (another shape, an entity, a DTD, a NaN, a malformed
number) it declines, and the page reads exactly as expat reads it, values or error word for word."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.neware import page_scan
from drivers.neware.errors import NewareProtocolError
from drivers.neware.page_scan import scan_rows
from drivers.neware.pages import PageRequest, _parsed_page, parse_download_frame

#: the simulator's row (simulators/neware/commands.py), a real BTS 8.0 row has the same attributes in this order
ROW = ('<data seqid="%d" stepid="%d" cycleid="%d" steptype="%s" testtime="%s" atime="%s" volt="%s" curr="%s" '
       'cap="%s" eng="%s" />')
HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\r\n<bts version="1.0">\r\n  <cmd>donwload_resp</cmd>\r\n'
        '  <download devtype="27" devid="21" subdevid="1" chlid="2" testid="143" startpos="%d" count="%d" '
        'auxid="0" />\r\n  <list count="%d">\r\n')
TAIL = "\r\n  </list>\r\n</bts>"


#: the row count from which pages are read by columns, before the fixture below lowers it
DEFAULT_MIN_ROWS = page_scan.MIN_ROWS


@pytest.fixture(autouse=True)
def _scan_small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of a few rows are read by expat, which is faster there; these tests hold the column reader to expat
    on pages small enough to build by hand, so it reads them too."""
    monkeypatch.setattr(page_scan, "MIN_ROWS", 4)


def page(rows: list[tuple], startpos: int, count: int | None = None, separator: str = "\r\n    ") -> bytes:
    body = separator.join(ROW % r for r in rows)
    return (HEAD % (startpos, count or len(rows), len(rows)) + "    " + body + TAIL).encode()


def rows_from(start: int, n: int, values: list[str] | None = None) -> list[tuple]:
    values = values or ["3.6780698299408", "-2.11492042581085E-05", "0.00295628436449786", "0.0135611368830335"]
    return [(start + i, 1 + i // 7, i // 21, "cccv" if i % 2 else "dc", str(30000 * i), "2025-12-28 22:29:05",
             *values) for i in range(n)]


def expat(frame: bytes, command: str, request: PageRequest | None):
    """The reading before the column reader: cut after the last ``</bts>``, then expat row by row."""
    end = frame.rfind(b"</bts>")
    return _parsed_page(frame if end < 0 else frame[: end + len(b"</bts>")], command, request)


def outcome(read, frame: bytes, request: PageRequest | None):
    """What a reader makes of a frame: the records and the echo, or the error's words."""
    try:
        got = read(frame, "download", request)
    except NewareProtocolError as exc:
        return ("error", str(exc))
    return ("page", got.testid, got.startpos, [tuple(map(_same, r)) for r in got.records])


def _same(value):
    """NaN compares unequal to itself; its text stands for it."""
    return "nan" if isinstance(value, float) and math.isnan(value) else value


def test_a_page_of_the_usual_shape_is_read_by_columns_with_expats_values() -> None:
    frame = page(rows_from(219576, 1000), 219576)
    assert scan_rows(frame) is not None  # the fast path answers for it
    request = PageRequest("21-1-2", 219576, 1000)
    fast, slow = parse_download_frame(frame, "download", request), expat(frame, "download", request)
    assert fast.records == slow.records
    first = fast.records[0]
    assert first == (219576, 1, 0, "dc", 0.0, "2025-12-28 22:29:05", 3.6780698299408, -2.11492042581085e-05,
                     0.00295628436449786, 0.0135611368830335)
    assert (fast.testid, fast.startpos, fast.records[-1].seqid, fast.records[-1].testtime_ms) == (143, 219576,
                                                                                                  220575, 29970000.0)
    assert fast.seqid.dtype == np.int64 and fast.volt.dtype == np.float64


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=4, max_size=40),
       st.sampled_from(["%.15G", "%.17g", "%r", "%.3e", "%.10f"]))
@settings(max_examples=200, deadline=None)
def test_every_number_is_the_one_float_reads(numbers: list[float], style: str) -> None:
    texts = [(repr(x) if style == "%r" else style % x) for x in numbers]
    rows = [(1 + i, 2, 3, "cc", texts[i], "x", texts[i], texts[-1 - i], texts[i], texts[-1 - i])
            for i in range(len(texts))]
    frame = page(rows, 1)
    request = PageRequest("21-1-2", 1, len(rows))
    read = outcome(parse_download_frame, frame, request)
    assert read == outcome(expat, frame, request)
    if read[0] == "page" and all(math.isfinite(float(t)) for t in texts):
        got = parse_download_frame(frame, "download", request)
        assert got.volt.tolist() == [float(t) for t in texts]  # bit for bit: == on floats that are not NaN


#: one change to one row (or to the page), and whether the column reader may still answer for the page
CHANGES = [
    ("an entity in a value", lambda t: t.replace('atime="2025', 'atime="&amp;2025', 1), False),
    ("a character reference", lambda t: t.replace('volt="3', 'volt="&#51;', 1), False),
    ("a comment between rows", lambda t: t.replace("/>\r\n    <data", "/><!-- x -->\r\n    <data", 1), False),
    ("a row hidden in a comment", lambda t: t.replace("</list>", '<!-- <data seqid="1" /> --></list>'), False),
    ("single quotes", lambda t: t.replace('steptype="dc"', "steptype='dc'", 1), False),
    ("another spacing", lambda t: t.replace('" stepid=', '"  stepid=', 1), False),
    ("an extra attribute", lambda t: t.replace('830335" />', '830335" aux="1" />', 1), False),
    ("NaN voltage", lambda t: t.replace('volt="3.6780698299408"', 'volt="NaN"', 1), False),
    ("a malformed number", lambda t: t.replace('cap="0.00295628436449786"', 'cap="1e"', 1), False),
    ("two exponents", lambda t: t.replace('cap="0.00295628436449786"', 'cap="1e5e5"', 1), False),
    ("an underscore", lambda t: t.replace('cap="0.00295628436449786"', 'cap="1_0"', 1), False),
    ("a blank in a number", lambda t: t.replace('cap="0.00295628436449786"', 'cap=" 1.5"', 1), False),
    ("a tab in a text", lambda t: t.replace('atime="2025', 'atime="\t2025', 1), False),
    ("non-ASCII text", lambda t: t.replace('atime="2025', 'atime="\u00e92025', 1), False),
    ("a closing bracket in a text", lambda t: t.replace('atime="2025', 'atime=">2025', 1), False),
    ("a seqid of 19 digits", lambda t: t.replace('seqid="7"', 'seqid="0000000000000000007"', 1), False),
    ("stepid 0", lambda t: t.replace('stepid="1"', 'stepid="0"', 1), True),
    ("a renumbered record", lambda t: t.replace('seqid="7"', 'seqid="70"', 1), True),
    ("an unclosed row", lambda t: t.replace('830335" />', '830335" >', 1), False),
    ("a broken envelope", lambda t: t.replace("</cmd>", "</cmx>"), True),
    ("another root", lambda t: t.replace("<bts ", "<btx ").replace("</bts>", "</btx>"), True),
    ("a DOCTYPE", lambda t: t.replace('<bts version', '<!DOCTYPE bts [<!ENTITY a "b">]><bts version'), False),
    ("an ENTITY after the rows", lambda t: t.replace("</bts>", "</bts><!ENTITY a 'b'>"), False),
    ("a processing instruction", lambda t: t.replace("<list", "<?x y?><list"), False),
    ("a bad echo", lambda t: t.replace('testid="143"', 'testid="1e30"'), True),
    ("leading zeros", lambda t: t.replace('cycleid="0"', 'cycleid="000"', 1), True),
    ("a plus sign", lambda t: t.replace('cap="0.00295628436449786"', 'cap="+0.5"', 1), True),
    ("no leading digit", lambda t: t.replace('cap="0.00295628436449786"', 'cap=".5"', 1), True),
    ("no row after the list", lambda t: t, True),
]


@pytest.mark.parametrize(("change", "edit", "scannable"), CHANGES, ids=[c[0] for c in CHANGES])
def test_any_other_page_reads_exactly_as_expat_reads_it(change: str, edit, scannable: bool) -> None:
    frame = edit(page(rows_from(1, 30), 1).decode()).encode()
    request = PageRequest("21-1-2", 1, 30)
    assert outcome(parse_download_frame, frame, request) == outcome(expat, frame, request)
    assert outcome(parse_download_frame, frame, None) == outcome(expat, frame, None)
    if not scannable:
        assert scan_rows(frame) is None


def test_a_dtd_or_an_entity_is_refused_by_defusedxml_whatever_the_shape_of_the_rows() -> None:
    good = page(rows_from(1, 30), 1).decode()
    for hostile in (good.replace('<bts version', '<!DOCTYPE bts [<!ENTITY e "x">]><bts version'),
                    good.replace('<bts version', '<!DOCTYPE bts SYSTEM "http://example.invalid/x.dtd"><bts version')):
        with pytest.raises(NewareProtocolError, match="refused by the XML parser"):
            parse_download_frame(hostile.encode(), "download", PageRequest("21-1-2", 1, 30))


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_a_randomly_corrupted_page_reads_as_expat_reads_it(data: st.DataObject) -> None:
    frame = bytearray(page(rows_from(1, 12), 1))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(frame) - 1))
        frame[at] = data.draw(st.sampled_from(b'"<>&=/ \t\n0123456789.eE-+xa\x00\xe9'))
    request = PageRequest("21-1-2", 1, 12)
    assert outcome(parse_download_frame, bytes(frame), request) == outcome(expat, bytes(frame), request)


def test_more_rows_than_asked_is_refused_before_the_columns_are_read() -> None:
    frame = page(rows_from(1, 50), 1, count=40)
    with pytest.raises(NewareProtocolError, match="the page holds more than the 40 records asked for; refused unread"):
        parse_download_frame(frame, "download", PageRequest("21-1-2", 1, 40))


@given(st.lists(st.sampled_from(["0", "007", "30000", "41511381.9", "999999999999999", "1234567890123456",
                                 "0.00022575", "-0.0", "2.5E-05", "1e3"]), min_size=4, max_size=60),
       st.integers(1, 6))
@settings(max_examples=200, deadline=None)
def test_runs_of_one_text_and_whole_numbers_read_as_float_reads_them(texts: list[str], run: int) -> None:
    texts = [t for t in texts for _ in range(run)]  # runs of one text, as a constant current gives
    rows = [(1 + i, 2, 3, "cc", texts[i], "x", texts[-1 - i], texts[i], "1.5", texts[i]) for i in range(len(texts))]
    frame = page(rows, 1)
    request = PageRequest("21-1-2", 1, len(rows))
    got = parse_download_frame(frame, "download", request)
    assert got.testtime_ms.tolist() == got.curr.tolist() == got.eng.tolist() == [float(t) for t in texts]
    assert got.volt.tolist() == [float(t) for t in reversed(texts)] and set(got.cap.tolist()) == {1.5}
    assert [math.copysign(1, v) for v in got.curr.tolist()] == [math.copysign(1, float(t)) for t in texts]
    assert outcome(parse_download_frame, frame, request) == outcome(expat, frame, request)


@pytest.mark.parametrize("separator", ["\r\n    ", "\n", "\r", "\r\n\t\t", " ", ""],
                         ids=["crlf-indented", "lf", "cr", "tabs", "one-line-spaced", "one-line"])
def test_rows_apart_by_any_white_space_are_read_by_columns(separator: str) -> None:
    """The same white space between every two rows (rows on one line included) is one shape."""
    frame = page(rows_from(41, 25), 41, separator=separator)
    request = PageRequest("21-1-2", 41, 25)
    assert scan_rows(frame, 25) is not None
    fast = parse_download_frame(frame, "download", request)
    assert fast.records == expat(frame, "download", request).records
    assert fast.seqid.tolist() == list(range(41, 66)) and fast.stepid.tolist()[-1] == 1 + 24 // 7


def test_a_first_row_indented_unlike_the_others_is_still_read_by_columns() -> None:
    frame = page(rows_from(1, 20), 1).replace(b"    <data", b"<data", 1)
    request = PageRequest("21-1-2", 1, 20)
    assert scan_rows(frame, 20) is not None
    assert outcome(parse_download_frame, frame, request) == outcome(expat, frame, request)


#: the end of the eighth row and the start of the ninth
NINTH = '/>\r\n    <data seqid="9"'
#: rows whose spacing differs somewhere, or that carry another attribute: what the column reader makes of them
SHAPES = [
    ("a blank line between two rows", lambda t: t.replace(NINTH, "/>\r\n\r\n    <data seqid=\"9\""), False),
    ("one row on the line of another", lambda t: t.replace(NINTH, "/><data seqid=\"9\""), False),
    ("spaces before a row's end", lambda t: t.replace('830335" />\r\n    <data seqid="9"',
                                                      '830335"   />\r\n    <data seqid="9"'), False),
    ("a line break inside one row", lambda t: t.replace('"9" stepid=', '"9"\r\n stepid='), False),
    ("a line break inside every row", lambda t: t.replace('" stepid=', '"\r\n stepid='), True),
    ("a quote inside a value", lambda t: t.replace('atime="2025-12-28 22:29:05" volt="3.6780698299408" curr',
                                                   "atime='2025-12-28 \"22:29:05' volt=\"3.6780698299408\" curr", 1),
     False),
    ("another attribute on every row", lambda t: t.replace('830335" />', '830335" aux="a b-c" />'), True),
    ("an entity in another attribute", lambda t: t.replace('830335" />', '830335" aux="&lt;" />'), False),
]


@pytest.mark.parametrize(("change", "edit", "scannable"), SHAPES, ids=[c[0] for c in SHAPES])
def test_rows_of_another_spacing_or_attributes_read_as_expat_reads_them(change: str, edit, scannable: bool) -> None:
    frame = edit(page(rows_from(1, 30), 1).decode()).encode()
    assert frame != page(rows_from(1, 30), 1)
    request = PageRequest("21-1-2", 1, 30)
    assert outcome(parse_download_frame, frame, request) == outcome(expat, frame, request)
    assert (scan_rows(frame, 30) is not None) == scannable


def test_a_page_of_more_rows_is_refused_in_expats_words_whatever_follows_the_row_after_the_count() -> None:
    """expat stops at the row after the count: rows past it, even garbled, change nothing; rows before it do."""
    good = page(rows_from(1, 60), 1).decode()
    past = good.replace('<data seqid="55"', '<data seqid="55" x="&bad;"').replace('<data seqid="58"', "<dat<a")
    before = good.replace('<data seqid="12"', '<data seqid="12" x="&bad;"')
    request = PageRequest("21-1-2", 1, 40)
    for frame in (good.encode(), past.encode()):
        with pytest.raises(NewareProtocolError, match="more than the 40 records asked for; refused unread"):
            parse_download_frame(frame, "download", request)
        assert outcome(parse_download_frame, frame, request) == outcome(expat, frame, request)
        assert scan_rows(frame, 40) is not None and scan_rows(frame, 40).count == 41
    assert scan_rows(before.encode(), 40) is None
    assert outcome(parse_download_frame, before.encode(), request) == outcome(expat, before.encode(), request)


@pytest.mark.parametrize("extra", [1, 2, 37])
def test_a_page_of_a_few_rows_more_than_asked_is_refused_by_the_column_reader(extra: int) -> None:
    """The row after the count may be the page's last: the page is then proven whole, and still refused."""
    frame = page(rows_from(1, 30 + extra), 1)
    request = PageRequest("21-1-2", 1, 30)
    scanned = scan_rows(frame, 30)
    assert scanned is not None and scanned.count == 31 and scanned.floats == {}
    with pytest.raises(NewareProtocolError, match="more than the 30 records asked for; refused unread"):
        parse_download_frame(frame, "download", request)
    assert outcome(parse_download_frame, frame, request) == outcome(expat, frame, request)


@given(st.data(), st.sampled_from(["\r\n    ", ""]))
@settings(max_examples=150, deadline=None)
def test_a_page_with_bytes_cut_or_added_reads_as_expat_reads_it(data: st.DataObject, separator: str) -> None:
    """Cuts and insertions move every quote after them: the pieces between quotes then no longer line up."""
    frame = bytearray(page(rows_from(1, 12), 1, separator=separator))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(frame) - 1))
        if data.draw(st.booleans()):
            del frame[at:at + data.draw(st.integers(1, 4))]
        else:
            frame[at:at] = data.draw(st.binary(min_size=1, max_size=3))
    for request in (PageRequest("21-1-2", 1, 12), PageRequest("21-1-2", 1, 8), None):
        assert outcome(parse_download_frame, bytes(frame), request) == outcome(expat, bytes(frame), request)


def test_a_page_of_fewer_rows_than_worth_proving_is_read_by_expat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page_scan, "MIN_ROWS", DEFAULT_MIN_ROWS)
    small, large = page(rows_from(1, DEFAULT_MIN_ROWS - 1), 1), page(rows_from(1, DEFAULT_MIN_ROWS), 1)
    assert scan_rows(small) is None and scan_rows(large) is not None
    request = PageRequest("21-1-2", 1, DEFAULT_MIN_ROWS - 1)
    assert outcome(parse_download_frame, small, request) == outcome(expat, small, request)
