"""The column reader of download pages (drivers/neware/page_scan.py) converts numbers with pyarrow's cast, not with
Python: every number it answers for must still be bit for bit the one ``float()``/``int()`` gives for the same text,
on the cases where conversions are known to differ (halfway cases, 17 and more digits, subnormals, overflow, signed
zeros), and every text pyarrow reads but Python does not (hexadecimal integers, ``nan(...)``, blanks) must send the
page to the expat reading, which gives its values or names its fault in its own words."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.neware import page_scan
from drivers.neware.page_scan import scan_rows
from drivers.neware.pages import PageRequest, parse_download_frame
from tests.drivers.neware.test_neware_page_scan import HEAD, ROW, TAIL, expat, outcome, rows_from

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _scan_small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of a few rows are read by expat, which is faster there; these tests hold the column reader to expat
    on pages small enough to build by hand, so it reads them too."""
    monkeypatch.setattr(page_scan, "MIN_ROWS", 4)


#: decimal texts whose correctly rounded double is easy to get wrong, with the double float() gives for each
HARD_FLOATS = [
    ("0.30000000000000004", 0.30000000000000004),  # 17 significant digits
    ("0.1000000000000000055511151231257827", 0.1),  # more digits than a double holds
    ("123456789012345678901234567890", 1.2345678901234568e29),
    ("9007199254740993", 9007199254740992.0),  # 2**53 + 1: halfway, to even (down)
    ("9007199254740995", 9007199254740996.0),  # 2**53 + 3: halfway, to even (up)
    ("1e23", 1e23),  # a classic: the nearest double is below 10**23
    ("8.98846567431158e307", 8.98846567431158e307),
    ("1.7976931348623157e308", 1.7976931348623157e308),  # the largest double
    ("1.7976931348623158e308", 1.7976931348623157e308),  # rounds down to it
    ("2.2250738585072011e-308", 2.225073858507201e-308),  # the largest subnormal
    ("2.2250738585072014E-308", 2.2250738585072014e-308),  # the smallest normal, capital E
    ("4.9406564584124654e-324", 5e-324),  # the smallest subnormal
    ("2.4703282292062328e-324", 5e-324),  # just above half of it: up
    ("2.4703282292062327e-324", 0.0),  # just below: to zero
    ("1e-400", 0.0),
    ("-1e-400", -0.0),
    ("-0", -0.0),
    ("-0.0", -0.0),
    ("1E+20", 1e20),
    ("+0.5", 0.5),
    (".5", 0.5),
    ("5.", 5.0),
    ("-2.11492042581085E-05", -2.11492042581085e-05),  # as a BTS writes it
    ("0." + "3" * 38, 0.3333333333333333),  # 40 characters, the longest a number may be
]


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def frame_with(column: str, text: str, n: int = 12) -> tuple[bytes, PageRequest]:
    """A page of ``n`` rows whose ``column`` holds ``text`` in every other row."""
    rows = rows_from(1, n)
    at = {"seqid": 0, "stepid": 1, "cycleid": 2, "steptype": 3, "testtime": 4, "atime": 5, "volt": 6, "curr": 7,
          "cap": 8, "eng": 9}[column]
    rows = [(*r[:at], text, *r[at + 1:]) if i % 2 else r for i, r in enumerate(rows)]
    body = "\r\n    ".join(ROW.replace("%d", "%s") % r for r in rows)
    return (HEAD % (1, n, n) + "    " + body + TAIL).encode(), PageRequest("21-1-2", 1, n)


@pytest.mark.parametrize(("text", "value"), HARD_FLOATS, ids=[t for t, _ in HARD_FLOATS])
@pytest.mark.parametrize("column", ["testtime", "volt", "curr", "cap", "eng"])
def test_a_hard_number_is_read_bit_for_bit_as_float_reads_it(column: str, text: str, value: float) -> None:
    assert bits(float(text)) == bits(value)  # the table itself is right
    frame, request = frame_with(column, text)
    assert scan_rows(frame, request.count) is not None  # the column reader answers for the page
    got = parse_download_frame(frame, "download", request)
    column_values = {"testtime": got.testtime_ms, "volt": got.volt, "curr": got.curr, "cap": got.cap,
                     "eng": got.eng}[column]
    assert [bits(v) for v in column_values.tolist()[1::2]] == [bits(value)] * 6
    assert outcome(parse_download_frame, frame, request) == outcome(expat, frame, request)


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("007", 7), ("999999999999999999", 999999999999999999)])
def test_integers_are_read_as_int_reads_them(text: str, value: int) -> None:
    frame, request = frame_with("cycleid", text)
    assert scan_rows(frame, request.count) is not None
    got = parse_download_frame(frame, "download", request)
    assert got.cycleid.tolist()[1::2] == [value] * 6
    assert outcome(parse_download_frame, frame, request) == outcome(expat, frame, request)


#: texts pyarrow would read (as a number, or as a number Python would give differently) that Python refuses or
#: that the shape rules keep out: the page goes to expat, which reads them its way
NOT_FOR_THE_COLUMN_READER = [
    ("stepid", "0x1F"),  # pyarrow reads hexadecimal integers (31); int() refuses them
    ("cycleid", "-0"),  # pyarrow and int() agree (0), but an integer is digits only
    ("cycleid", "+1"),
    ("seqid", "0000000000000000007"),  # 19 digits
    ("volt", "nan(1)"),  # pyarrow reads NaN; float() refuses it
    ("volt", "NaN"),
    ("volt", "inf"),
    ("volt", "Infinity"),
    ("volt", " 1.5"),  # both read 1.5, but a number holds no blank
    ("volt", "1.5\t"),
    ("volt", "1_0"),  # float() reads 10.0, pyarrow refuses it
    ("volt", "0." + "3" * 39),  # 41 characters
    ("volt", "1e"),
    ("volt", "."),
    ("volt", "1e5e5"),
    ("volt", ""),
    ("testtime", "1e400"),  # a number (inf), but not a finite step time
]


@pytest.mark.parametrize(("column", "text"), NOT_FOR_THE_COLUMN_READER,
                         ids=[f"{c}={t!r}" for c, t in NOT_FOR_THE_COLUMN_READER])
def test_texts_python_reads_otherwise_go_to_expat(column: str, text: str) -> None:
    frame, request = frame_with(column, text)
    if column != "testtime":
        assert scan_rows(frame, request.count) is None
    assert outcome(parse_download_frame, frame, request) == outcome(expat, frame, request)
    assert outcome(parse_download_frame, frame, None) == outcome(expat, frame, None)


def test_an_infinite_voltage_is_read_as_expat_reads_it() -> None:
    """Judging voltages is the station's safety check, not the parser's: 1e400 is inf in both readings."""
    frame, request = frame_with("volt", "1e400")
    got = parse_download_frame(frame, "download", request)
    assert got.volt.tolist()[1::2] == [math.inf] * 6
    assert outcome(parse_download_frame, frame, request) == outcome(expat, frame, request)


def test_the_columns_are_numpy_arrays_of_their_own() -> None:
    """Writable, owning their memory (not views into pyarrow's buffers that callers could not change)."""
    frame, request = frame_with("volt", "3.5", n=40)
    got = parse_download_frame(frame, "download", request)
    for column in (got.seqid, got.stepid, got.cycleid, got.testtime_ms, got.volt, got.curr, got.cap, got.eng):
        assert column.flags.writeable and column.flags.c_contiguous
    got.volt[0] = 1.0  # a caller may write into a page's columns
    assert got.volt[0] == 1.0 and got.seqid.dtype.str == "<i8" and got.volt.dtype.str == "<f8"


def test_reading_a_page_does_not_import_pandas() -> None:
    """pyarrow.array() and Array.to_numpy() import pandas (~0.5 s); the reader builds its arrays from buffers."""
    script = (
        "import sys\n"
        "from drivers.neware.pages import PageRequest, parse_download_frame\n"
        "from tests.drivers.neware.test_neware_page_scan import page, rows_from\n"
        "got = parse_download_frame(page(rows_from(1, 500), 1), 'download', PageRequest('21-1-2', 1, 500))\n"
        "assert len(got) == 500 and got.seqid[-1] == 500\n"
        "print('pyarrow' in sys.modules, 'pandas' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]
