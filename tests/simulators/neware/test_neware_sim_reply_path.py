"""The simulated BTS's reply path after issue 18: pages built as bytes, the reply frame joined from bytes, requests
kept parsed. Each shortcut is held to the plain computation it replaces (text encoded once, a fresh parse, Python's
own formatting), so the bytes on the wire are the same."""

from __future__ import annotations

import datetime as dt
from xml.etree import ElementTree as ET

import numpy as np
import pytest

from protocols.clock import VirtualClock
from simulators.neware import pagetext, wire
from simulators.neware.api import BtsApi, Parsed
from simulators.neware.stepfile import API_STEP_NAMES, parse_step_file
from tests.fakes.standin_cell import LinearCell

HEAD = '<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">'
CH = 'ip="127.0.0.1" devtype="27" devid="21" subdevid="1" chlid="1"'
ADDRESS = 'devtype="27" devid="21" subdevid="1" chlid="1"'
STEP_FILE = (
    '<?xml version="1.0" encoding="UTF-8"?><root><config type="Step File"><Head_Info><Start_Step Value="1" />'
    '</Head_Info><Whole_Prt><Record><Main><Time Value="10000" /></Main></Record></Whole_Prt><Step_Info Num="2">'
    '<Step1 Step_ID="1" Step_Type="1"><Limit><Main><Curr Value="1" /><Time Value="600000" /></Main></Limit>'
    '</Step1><Step2 Step_ID="2" Step_Type="6" /></Step_Info></config></root>'
)


def old_reply(command: str, lines: list[str]) -> bytes:
    """The frame as wire.reply wrote it before: text lines joined with CRLF, encoded once."""
    body = ['<?xml version="1.0" encoding="UTF-8"?>', '<bts version="1.0">', f"  <cmd>{wire.reply_name(command)}</cmd>"]
    return ("\r\n".join(body + ["  " + line for line in lines] + ["</bts>"]) + "\n\n#\r\n").encode("utf-8")


def texts(block: np.ndarray) -> list[str]:
    return [bytes(row).replace(b"\0", b"").decode("ascii") for row in block]


def listed(command: str, tag: str, attrs: str, text: str = "true") -> str:
    return f'<cmd>{command}</cmd><list count="1"><{tag} {attrs}>{text}</{tag}></list>'


def a_page(n: int = 300) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {
        "seqid": np.arange(9_990, 9_990 + n), "stepid": rng.integers(1, 12, n), "cycleid": rng.integers(-1, 3, n),
        "steptype": rng.integers(0, 30, n), "testtime": np.round(rng.random(n) * 1e7, 1), "volt": 3 + rng.random(n),
        "curr": (rng.random(n) - 0.5) * 1e-3, "cap": rng.random(n) * 1e-4, "eng": 10.0 ** rng.uniform(-9, 3, n),
    }


def test_a_reply_with_a_bytes_page_is_the_reply_with_the_same_page_as_text() -> None:
    columns = a_page()
    atimes = wire.atimes(dt.datetime(2026, 11, 30, 23, 59), np.arange(300) * 0.7)
    page = pagetext.page_bytes(columns, API_STEP_NAMES, atimes)
    text = pagetext.page_bytes(columns, API_STEP_NAMES, atimes).decode("ascii")
    assert page.decode("ascii") == text
    lines = ['<download devtype="27" barcode="caf\u00e9" />', '<list count="300">']  # UTF-8 in a text line
    frame = wire.reply("download", [*lines, page, "</list>"])
    as_text = [*lines, text, "</list>"]
    assert frame == wire.reply("download", as_text) == old_reply("download", as_text)
    assert b'barcode="caf\xc3\xa9"' in frame
    assert wire.reply("error", []) == old_reply("error", [])
    assert pagetext.page_bytes({name: column[:0] for name, column in columns.items()}, API_STEP_NAMES,
                               atimes[:0]) == b""


def test_step_names_come_from_a_table_over_the_pages_codes_for_any_codes_and_names() -> None:
    codes = np.array([7, 1, 1, 4, 25, 99, 0, -3, 7], dtype=np.int16)
    expected = [API_STEP_NAMES.get(code, "--") for code in codes.tolist()]
    assert texts(pagetext.steptype_block(codes, API_STEP_NAMES)) == expected
    wide = np.array([1, 50_000, -70_000, 2, 50_000])  # a span np.unique looks up instead
    long_names = {1: "a-very-long-name", 50_000: "x"}
    assert texts(pagetext.steptype_block(wide, long_names)) == ["a-very-long-name", "x", "--", "--", "x"]
    assert texts(pagetext.steptype_block(codes, long_names)) == [
        long_names.get(code, "--") for code in codes.tolist()]


def test_atimes_over_a_span_of_years_and_backwards_are_the_floored_seconds() -> None:
    epoch = dt.datetime(2024, 2, 28, 12, 0, 0)
    seconds = np.array([0.0, 3.2e8, 86_399.99, 86_400.0, -1.0, 1e6, 400.5, 3.0 * 86_400 * 366, 5.0])
    expected = [(epoch + dt.timedelta(seconds=int(s // 1))).strftime("%Y-%m-%d %H:%M:%S") for s in seconds.tolist()]
    assert texts(wire.atimes(epoch, seconds)) == expected  # > 4096 days: the np.unique path
    assert texts(wire.atimes(epoch, seconds[[2, 0, 3, 8, 4]])) == [expected[i] for i in (2, 0, 3, 8, 4)]
    assert wire.atimes(epoch, np.array([])).shape == (0, 19)


def test_one_set_point_or_several_temperatures_are_written_to_one_decimal() -> None:
    assert texts(pagetext.temperature_block(np.full(4, 25.05))) == ["25.1"] * 4
    mixed = np.array([25.0, -0.05, 25.0, 45.25])
    assert texts(pagetext.temperature_block(mixed)) == [f"{v:.1f}" for v in mixed.tolist()]


def test_a_repeated_request_is_parsed_once_and_a_changed_one_anew() -> None:
    first = f'{HEAD}<cmd>download</cmd><download {ADDRESS} testid="0" startpos="1001" count="1000" /></bts>'.encode()
    again = bytes(bytearray(first))  # equal bytes, another object
    changed = first.replace(b'startpos="1001"', b'startpos="2001"')
    command, root = wire.parse_request_cached(first)
    assert wire.parse_request_cached(again)[1] is root
    assert (command, root.find("download").get("startpos")) == ("download", "1001")
    other = wire.parse_request_cached(changed)[1]
    assert other is not root and other.find("download").get("startpos") == "2001"
    assert root.find("download").get("startpos") == "1001"
    bad = first.replace(b"</bts>", b"</btx>")  # a mismatched tag
    for _ in range(2):  # a request that does not parse is refused every time, never kept
        with pytest.raises(wire.RequestError, match="not a BTS request"):
            wire.parse_request_cached(bad)
    big = first.replace(b"<cmd>", b"<!-- " + b"x" * wire.CACHED_REQUEST_SIZE + b" --><cmd>")
    assert wire.parse_request_cached(big)[1] is not wire.parse_request_cached(big)[1]  # too big to keep


def test_no_handler_changes_the_parsed_request_it_answers() -> None:
    """The parsed element is shared by every request with the same bytes, so answering must leave it as it was."""
    clock = VirtualClock()
    api = BtsApi(devices=1, channels=2, clock=clock, model_factory=lambda key: LinearCell(),
                 read_step_file=lambda path: parse_step_file(STEP_FILE))
    bodies = [
        "<cmd>connect</cmd>", "<cmd>getdevinfo</cmd>",
        listed("start", "start", f'{CH} barcode="b"', "X:\\p.xml"),
        listed("inquire", "inquire", f'{CH} aux="0" barcode="1"'),
        listed("getchlstatus", "status", CH),
        f'<cmd>inquiredf</cmd><list count="1"><chl {ADDRESS} testid="0" /></list>',
        f'<cmd>download</cmd><download {ADDRESS} auxid="0" testid="0" startpos="2" count="1000" />',
        f'<cmd>download</cmd><download {ADDRESS} auxid="0" testid="0" startpos="-5" count="3" />',
        f'<cmd>downloadStepLayer</cmd><downloadStepLayer {ADDRESS} testid="0" />',
        f'<cmd>downloadlog</cmd><download {ADDRESS} testid="0" />',
        listed("setpause", "setpause", f'{CH} cycleid="-1" stepid="-1"'),
        listed("getpause", "getpause", CH),
        listed("cancelpause", "cancelpause", CH),
        listed("continue", "continue", CH),
        listed("goto", "goto", f'{CH} step="2"'),
        listed("light", "light", CH),
        listed("clearflag", "clearflag", CH),
        listed("reset", "reset", CH, "X:\\p.xml"),
        listed("chl_ctrl", "chl_ctrl", CH),
        listed("stop", "stop", CH),
        listed("resetalarm", "resetalarm", 'ip="127.0.0.1" devtype="27" devid="21"'),
        listed("broadcaststop", "stop", 'ip="127.0.0.1" devtype="27" devid="21"'),
    ]
    for body in bodies:
        clock.advance(40.0)
        parsed = api.parse(f"{HEAD}{body}</bts>".encode())
        assert isinstance(parsed, Parsed), body
        before = ET.tostring(parsed.root)
        reply = api.answer(parsed)
        assert b"<result>false</result>" not in reply, body  # every command was understood
        assert ET.tostring(parsed.root) == before, body
    inquire = f'{HEAD}{bodies[3]}</bts>'.encode()
    assert api.handle(inquire) == api.handle(inquire)  # the kept parse answers as a fresh one: same clock, same reply


def test_a_column_of_long_runs_of_one_value_is_written_as_each_record_would_be() -> None:
    """A constant-current step's current repeats: it is formatted once per run; -0.0 and 0.0 stay apart (their bits
    differ, and so does their text), as do NaNs and the first record of each run."""
    n = 400
    curr = np.repeat([-0.0011287, 0.0, -0.0, 0.0, np.nan, 2.5e-5, -0.0011287], [150, 50, 50, 1, 49, 99, 1])
    columns = {
        "seqid": np.arange(1, n + 1), "stepid": np.repeat([1, 2], n // 2), "cycleid": np.ones(n, dtype=np.int64),
        "steptype": np.repeat([1, 4], n // 2), "testtime": np.full(n, 30_000.0), "volt": 3.0 + np.arange(n) * 1e-4,
        "curr": curr, "cap": np.repeat([0.0, 1.25e-3], n // 2), "eng": np.zeros(n),
    }
    atimes = wire.atimes(dt.datetime(2026, 11, 30), np.arange(n) * 30.0)
    rows = pagetext.page_bytes(columns, API_STEP_NAMES, atimes).decode("ascii").split("\r\n    ")
    assert len(rows) == n
    for i in (0, 149, 150, 199, 200, 249, 250, 251, 299, 300, 398, 399):
        step, name = (1, "cc") if i < 200 else (2, "rest")
        expected = (f'<data seqid="{i + 1}" stepid="{step}" cycleid="1" steptype="{name}" testtime="30000" '
                    f'atime="{texts(atimes[i:i + 1])[0]}" volt="{columns["volt"][i]:.15G}" '
                    f'curr="{curr[i]:.15G}" cap="{columns["cap"][i]:.15G}" eng="0" />')
        assert rows[i].lstrip() == expected, i
    assert [row.split('curr="')[1].split('"')[0] for row in rows[198:202]] == ["0", "0", "-0", "-0"]


def test_integers_at_the_ends_of_int64_and_of_each_chunk_are_written_as_percent_d() -> None:
    values = np.array([-(2**63), 0, 2**63 - 1, 9_999, 10_000, -10_000, 99_999_999, 100_000_000, -1])
    assert texts(pagetext.int_block(values)) == [str(v) for v in values.tolist()]
    assert texts(pagetext.int_block(values[1:])) == [str(v) for v in values[1:].tolist()]
    assert texts(pagetext.int_block(np.zeros(3, dtype=np.int32))) == ["0", "0", "0"]
