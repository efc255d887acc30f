"""The column-wise download page writes exactly the bytes of the per-record formula it replaced.

The reference here is that formula itself (one ``%`` per record with ``%.15G`` for the doubles, as the simulated BTS
wrote pages before, and as .NET writes doubles per neware-bts-api.md section 2 item 6), applied to the same rows.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.clock import VirtualClock
from simulators.neware import pagetext, wire
from simulators.neware.api import BtsApi
from simulators.neware.stepfile import API_STEP_NAMES, parse_step_file
from tests.fakes.standin_cell import LinearCell

#: the per-record formula the simulated BTS used before pagetext: the reference for every byte
DATA_LINE = (
    '  <data seqid="%d" stepid="%d" cycleid="%d" steptype="%s" testtime="%.15G" atime="%s" volt="%.15G" '
    'curr="%.15G" cap="%.15G" eng="%.15G" />'
)


def texts(block: np.ndarray) -> list[str]:
    return [bytes(row).replace(b"\0", b"").decode("ascii") for row in block]


def g15(values: np.ndarray) -> list[str]:
    return [f"{v:.15G}" for v in values.tolist()]


def special_doubles() -> np.ndarray:
    """Zeros, limits, integers, exact ties at the 16th digit and their neighbours, powers of ten and theirs."""
    powers = 10.0 ** np.arange(-12, 18)
    ties = np.array([123456789012345.5, 123456789012344.5, 12345678901234.25, 12345678901234.75, 0.5, 2.5,
                     1234567890123455.0, 1.52587890625e-05, 2.0**-30, 9.5367431640625e-07])
    return np.concatenate([
        [0.0, -0.0, 1.0, -1.0, 30000.0, 30000.5, 1e-4, 1e-5, 9.99999999999999e-5, 1e-8, 9.99999999999999e-9,
         5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 999999999999999.9, 99999999999999.99,
         9.999999999999999, 0.1, 0.3, 2.11492042581085e-05, 3.6780698299408, -0.000295051460852847,
         np.nan, np.inf, -np.inf],
        ties, -ties, np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf),
        powers, np.nextafter(powers, 0), np.nextafter(powers, np.inf), -powers,
    ])


def test_doubles_are_written_as_percent_15G_for_every_kind_of_value():
    rng = np.random.default_rng(18)
    n = 20_000
    halves = np.round(rng.random(n) * 1e15) + 0.5  # a 5 in the 16th digit before scaling: near-ties after it
    values = np.concatenate([
        special_doubles(),
        3.0 + rng.random(n) * 1.3,  # volts
        (rng.random(n) - 0.5) * 4e-3,  # amps of both signs, some below 1e-4 (exponent form)
        10.0 ** rng.uniform(-10, 17, n) * rng.choice([-1.0, 1.0], n),  # every magnitude the fast path takes and more
        np.round(rng.random(n) * 3e7, 1),  # step times in ms with one decimal, many integral
        halves / 10.0 ** rng.integers(0, 23, n),
        np.frombuffer(rng.integers(0, 2**63, n, dtype=np.int64).tobytes(), dtype=np.float64),  # any bit pattern
    ])
    assert texts(pagetext.float_block(values)) == g15(values)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=40))
def test_any_double_is_written_as_percent_15G(values):
    array = np.array(values, dtype=np.float64)
    assert texts(pagetext.float_block(array)) == g15(array)


def test_integers_are_written_as_percent_d():
    rng = np.random.default_rng(7)
    values = np.concatenate([[0, 1, -1, 9, 10, 99_999, 100_000, -100_000, 2**31, 2**63 - 1, -(2**63 - 1)],
                             rng.integers(-(2**62), 2**62, 5000), rng.integers(-50, 50, 500)])
    assert texts(pagetext.int_block(values)) == [str(v) for v in values.tolist()]
    assert texts(pagetext.int_block(np.arange(683_001, 684_001))) == [str(v) for v in range(683_001, 684_001)]


def test_atimes_are_the_epoch_plus_the_floored_seconds():
    epoch = dt.datetime(2026, 12, 31, 23, 59, 58, 900_000)  # microseconds dropped, as the BTS's 1 s resolution
    seconds = np.array([0.0, 0.99, 1.0, 1.5, 2.0, 86_400.0, 3.2e7, 59.999, 3600.0 * 24 * 366])
    expected = [(epoch.replace(microsecond=0) + dt.timedelta(seconds=int(s // 1))).strftime("%Y-%m-%d %H:%M:%S")
                for s in seconds.tolist()]
    assert texts(wire.atimes(epoch, seconds)) == expected
    assert expected[:3] == ["2026-12-31 23:59:58", "2026-12-31 23:59:58", "2026-12-31 23:59:59"]
    assert expected[4] == "2027-01-01 00:00:00"


def reference_page(epoch: dt.datetime, offset: float, startpos: int, rows: dict[str, np.ndarray], base: int) -> str:
    """The page's lines as the simulated BTS wrote them with DATA_LINE, joined as wire.reply joins body lines."""
    n = len(rows["stepid"])
    stamps = [(epoch.replace(microsecond=0) + dt.timedelta(seconds=int((offset + t) // 1))).strftime(
        "%Y-%m-%d %H:%M:%S") for t in rows["test_time"].tolist()]
    lines = [DATA_LINE % values for values in zip(
        range(startpos, startpos + n), rows["stepid"].tolist(), (rows["cycleid"].astype(np.int64) - 1 + base).tolist(),
        [API_STEP_NAMES.get(code, "--") for code in rows["steptype"].tolist()],
        np.round(rows["step_time"] * 1000, 1).tolist(), stamps, rows["volt"].tolist(), rows["curr"].tolist(),
        rows["cap"].tolist(), rows["eng"].tolist(), strict=True)]
    return "\r\n".join("  " + line for line in lines)


def test_a_page_is_byte_for_byte_the_per_record_formula():
    rng = np.random.default_rng(3)
    n = 1000
    step_time = rng.random(n) * 3e4
    step_time[:50] = 0.0  # the record at a step's start
    rows = {
        "stepid": rng.integers(1, 40, n).astype(np.int32),
        "cycleid": rng.integers(0, 1200, n).astype(np.int32),  # 0: cycleid -1 with base 0
        "steptype": rng.integers(-2, 40, n).astype(np.int16),  # most codes have no API name: "--"
        "step_time": step_time,
        "test_time": np.sort(rng.random(n)) * 3e7,
        "volt": np.concatenate([[np.nan, 0.0, -0.0, 5.0], 3 + rng.random(n - 4)]),
        "curr": (rng.random(n) - 0.5) * 2e-3,
        "cap": np.concatenate([np.zeros(10), rng.random(n - 10) * 2e-3]),
        "eng": 10.0 ** rng.uniform(-9, 2, n),
    }
    epoch = dt.datetime(2026, 11, 30, 23, 0, 0, 123)
    for base, startpos in ((0, 683_001), (1, 1)):
        columns = {
            "seqid": np.arange(startpos, startpos + n), "stepid": rows["stepid"],
            "cycleid": rows["cycleid"].astype(np.int64) - 1 + base, "steptype": rows["steptype"],
            "testtime": np.round(rows["step_time"] * 1000, 1), "volt": rows["volt"], "curr": rows["curr"],
            "cap": rows["cap"], "eng": rows["eng"],
        }
        atimes = wire.atimes(epoch, 12.5 + rows["test_time"])
        page = pagetext.page_bytes(columns, API_STEP_NAMES, atimes).decode("ascii")
        assert "  " + page == reference_page(epoch, 12.5, startpos, rows, base)
    assert page.startswith('  <data seqid="1" stepid="')  # wire.reply indents it by two more
    assert page.count("\r\n    <data ") == n - 1


STEP_FILE = (
    '<?xml version="1.0" encoding="UTF-8"?><root><config type="Step File"><Head_Info><Start_Step Value="1" />'
    '</Head_Info><Whole_Prt><Record><Main><Time Value="7000" /></Main></Record></Whole_Prt><Step_Info Num="3">'
    '<Step1 Step_ID="1" Step_Type="1"><Limit><Main><Curr Value="0.0013" /><Time Value="3600000" /></Main></Limit>'
    '</Step1><Step2 Step_ID="2" Step_Type="2"><Limit><Main><Curr Value="0.0007" /><Time Value="1800000" /></Main>'
    '</Limit></Step2><Step3 Step_ID="3" Step_Type="6" /></Step_Info></config></root>'
)
CH = 'ip="127.0.0.1" devtype="27" devid="21" subdevid="1" chlid="1"'


def test_a_download_reply_is_byte_for_byte_what_the_per_record_formula_wrote():
    """Through the simulated BTS's API: the whole reply frame, echo and list around the page included."""
    clock = VirtualClock()
    api = BtsApi(devices=1, channels=1, clock=clock, model_factory=lambda key: LinearCell(q0=0.01),
                 read_step_file=lambda path: parse_step_file(STEP_FILE), epoch=dt.datetime(2026, 11, 30, 23, 40))
    head = '<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">'
    api.handle(f'{head}<cmd>start</cmd><list count="1"><start {CH} barcode="b">X:\\p.xml</start></list></bts>'.encode())
    clock.advance(6000.0)
    request = (f'{head}<cmd>download</cmd><download devtype="27" devid="21" subdevid="1" chlid="1" auxid="0" '
               'testid="0" startpos="2" count="1000" /></bts>')
    _, reply = api.handle(request.encode())
    engine = api.channels[(21, 1, 1)]
    rows = engine.records.slice(1, 1001)
    n = len(rows["stepid"])
    assert n == engine.records.count - 1 > 700  # both steps, each with its own records, at 7 s
    echo = '<download devtype="27" devid="21" subdevid="1" chlid="1" testid="1" startpos="2" count="1000" auxid="0" />'
    page = reference_page(api._atime.epoch, engine.test_start - api._origin, 2, rows, api.download_cycle_base)
    expected = wire.reply("download", [echo, f'<list count="{n}">', page[2:], "</list>"])
    assert reply == expected
    # the second record, 7 s into the test; the step file's 0.0013 mA is 1.3E-06 A, in exponent form
    assert b'\r\n    <data seqid="2" stepid="1" cycleid="0" steptype="cc" testtime="7000" ' \
           b'atime="2026-11-30 23:40:07" volt="9.00001451666667" curr="1.3E-06" ' in reply
    assert b'<data seqid="775" stepid="2" cycleid="0" steptype="dc" testtime="1800000" atime="2026-12-01 01:10:00" ' \
           b'volt="9.000563" curr="-7E-07" ' in reply  # the last, at the end of the 30 min discharge
