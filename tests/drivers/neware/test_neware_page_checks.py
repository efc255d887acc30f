"""Record numbers are checked, not trusted: download pages held to their request, numbers that cannot be stored
refused as protocol errors (and retried like garbled replies), never OverflowError/ValueError escaping."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.neware.address import ChannelAddress
from drivers.neware.client import MAX_DOWNLOAD_COUNT, BtsClient, download_reply_cap
from drivers.neware.codec import as_int, parse_int
from drivers.neware.errors import NewareProtocolError
from drivers.neware.pages import PageRequest, parse_download_frame
from tests.fakes.ordered_transport import OrderedTransport, real_reply

CH = ChannelAddress(devid=21, subdevid=1, chlid=2)
ADDR = 'ip="127.0.0.1" devtype="27" devid="21" subdevid="1"'
HUGE = "100000000000000000000000000000"


def row(seqid: object, **values: object) -> dict[str, object]:
    """One record's attributes, BTS 8.0 style (neware-bts-api.md 2.7); ``values`` override any of them."""
    attrs: dict[str, object] = {
        "seqid": seqid,
        "stepid": 4,
        "cycleid": 29,
        "steptype": "dc",
        "testtime": 36070000,
        "atime": "2025-12-28 22:29:05",
        "volt": "3.6780698299408",
        "curr": "-2.11492042581085E-05",
        "cap": "0.00295628436449786",
        "eng": "0.0135611368830335",
    }
    attrs.update(values)
    return attrs


def rows(startpos: int, n: int) -> list[dict[str, object]]:
    return [row(startpos + i, testtime=10000 * i) for i in range(n)]


def page_body(records: list[dict[str, object]], startpos: int, count: int) -> str:
    """The reply body (without envelope) of a download page holding ``records``."""
    lines = [
        "<cmd>donwload_resp</cmd>",
        f'<download devtype="27" devid="21" subdevid="1" chlid="2" testid="143" startpos="{startpos}" '
        f'count="{count}" auxid="0" />',
        f'<list count="{len(records)}">',
        *("  <data " + " ".join(f'{k}="{v}"' for k, v in r.items()) + " />" for r in records),
        "</list>",
    ]
    return "\n".join(lines)


def download_request(startpos: int, count: int) -> str:
    return (
        '<cmd>download</cmd><download devtype="27" devid="21" subdevid="1" chlid="2" auxid="0" testid="143" '
        f'startpos="{startpos}" count="{count}" />'
    )


def with_record(records: list[dict[str, object]], index: int, **values: object) -> list[dict[str, object]]:
    """A copy of ``records`` with record ``index`` (1-based) changed."""
    out = [dict(r) for r in records]
    out[index - 1].update(values)
    return out


START = 1
GOOD = rows(START, 1000)

#: (what is wrong, the page, what the error must say)
FAULTS = [
    ("renumbered", with_record(GOOD, 300, seqid=100300), r"record 300 has seqid 100300 after 299 \(seqids must run on"),
    ("wrong start", rows(5, 1000), r"the page starts at seqid 5, not at the 1 asked for"),
    ("a gap", GOOD[:10] + GOOD[11:], r"record 11 has seqid 12 after 10"),
    ("a repeat", [*GOOD[:10], GOOD[9], *GOOD[10:999]], r"record 11 has seqid 10 after 10"),
    (
        "seqid 1e30",
        with_record(GOOD, 3, seqid="1e30"),
        r"record 3 has seqid='1e30', not an integer in 1\.\.9223372036854775807",
    ),
    ("seqid 10**29", with_record(GOOD, 3, seqid=HUGE), rf"record 3 has seqid {HUGE} after 2"),
    ("seqid 10**29 first", with_record(GOOD, 1, seqid=HUGE), rf"the page starts at seqid {HUGE}, not at the 1"),
    ("seqid inf", with_record(GOOD, 7, seqid="inf"), r"record 7 has seqid='inf', not an integer"),
    ("stepid 1e30", with_record(GOOD, 8, stepid="1e30"), r"record 8 has stepid='1e30', not an integer"),
    (
        "stepid huge",
        with_record(GOOD, 8, stepid=HUGE),
        rf"record 8 has stepid {HUGE}, outside 1\.\.9223372036854775807",
    ),
    ("stepid 0", with_record(GOOD, 9, stepid=0), r"record 9 has stepid 0, outside 1\.\."),
    ("cycleid huge", with_record(GOOD, 9, cycleid=HUGE), rf"record 9 has cycleid {HUGE}, outside 0\.\."),
    ("cycleid negative", with_record(GOOD, 9, cycleid=-1), r"record 9 has cycleid -1, outside 0\.\."),
    ("testtime nan", with_record(GOOD, 10, testtime="NaN"), r"record 10 \(seqid 10\) has testtime nan"),
    ("testtime inf", with_record(GOOD, 10, testtime="-Infinity"), r"record 10 \(seqid 10\) has testtime -inf"),
    ("no volt", [{k: v for k, v in r.items() if k != "volt"} for r in GOOD[:2]], r"record 1 has no volt"),
    ("more rows than asked", rows(START, 1001), r"the page holds more than the 1000 records asked for"),
]


@contextmanager
def client(pairs: list[tuple[str | None, str | bytes]]) -> Iterator[tuple[BtsClient, OrderedTransport]]:
    """A client on an ordered fake transport; leaving the block checks that every expected request came."""
    with OrderedTransport(pairs) as transport:
        yield BtsClient(transport), transport


@pytest.mark.parametrize(("fault", "records", "expected"), FAULTS, ids=[f[0] for f in FAULTS])
def test_a_wrong_page_is_an_instrument_error_naming_address_channel_startpos_and_problem(
    fault: str, records: list[dict[str, object]], expected: str
) -> None:
    bad = page_body(records, START, 1000)
    # a read: re-sent after each refusal, like a garbled reply (all three exchanges happen)
    with client([(download_request(START, 1000), bad)] * 3) as (bts, _):
        with pytest.raises(NewareProtocolError) as caught:
            bts.download(CH, testid=143, startpos=START, count=1000)
        message = str(caught.value)
        assert message.startswith("fake:502: download of channel 21-1-2 from startpos 1: "), message
        assert message.endswith("(after 3 attempts)"), message
        assert "\n" not in message
        assert caught.match(expected)


@pytest.mark.parametrize(("fault", "records", "expected"), FAULTS, ids=[f[0] for f in FAULTS])
def test_a_wrong_page_seen_once_is_retried_and_the_retry_returns_the_right_page(
    fault: str, records: list[dict[str, object]], expected: str
) -> None:
    request = download_request(START, 1000)
    pairs = [(request, page_body(records, START, 1000)), (request, page_body(GOOD, START, 1000))]
    with client(pairs) as (bts, transport):
        page = bts.download(CH, testid=143, startpos=START, count=1000)
        assert [r.seqid for r in page.records] == list(range(1, 1001))
        assert page.testid == 143
        assert transport.resyncs == 1


def test_a_page_from_the_middle_of_a_test_and_a_short_last_page_pass() -> None:
    request = download_request(219576, 1000)
    with client([(request, page_body(rows(219576, 10), 219576, 1000))]) as (bts, transport):
        page = bts.download(CH, testid=143, startpos=219576, count=1000)
        assert [r.seqid for r in page.records] == list(range(219576, 219586))
        assert transport.resyncs == 0


def test_cycleid_zero_is_accepted_as_field_data_has_it() -> None:
    with client([(download_request(1, 2), page_body([row(1, cycleid=0), row(2, cycleid=0)], 1, 2))]) as (bts, _):
        assert [r.cycleid for r in bts.download(CH, testid=143, startpos=1, count=2).records] == [0, 0]


def test_non_finite_electrical_values_are_left_for_the_station_to_judge() -> None:
    odd = [row(1, volt="NaN"), row(2, curr="Infinity"), row(3, cap="-inf", eng="nan"), row(4, volt="1e400")]
    with client([(download_request(1, 4), page_body(odd, 1, 4))]) as (bts, transport):
        records = bts.download(CH, testid=143, startpos=1, count=4).records
        assert math.isnan(records[0].volt)  # a safety breach for the station, not a garbled reply
        assert records[1].curr == math.inf
        assert records[2].cap == -math.inf and math.isnan(records[2].eng)
        assert records[3].volt == math.inf
        assert transport.resyncs == 0


def test_a_testid_query_that_brings_records_is_refused() -> None:
    request = download_request(0, 0).replace('testid="143"', 'testid="0"')
    with (
        client([(request, page_body(rows(1, 1), 0, 0))] * 3) as (bts, _),
        pytest.raises(NewareProtocolError, match=r"from startpos 0: the page holds more than the 0 records"),
    ):
        bts.testid(CH)


def test_startpos_must_leave_room_for_a_page_of_64_bit_seqids() -> None:
    with client([]) as (bts, _):
        for startpos in (-1, 2**63 - MAX_DOWNLOAD_COUNT + 1):
            with pytest.raises(ValueError, match="download startpos must be 0"):
                bts.download(CH, startpos=startpos, count=1)


def full_frame(records: list[dict[str, object]], startpos: int, count: int) -> bytes:
    return real_reply(page_body(records, startpos, count))


def test_a_page_with_more_rows_than_asked_is_refused_before_any_record_is_built() -> None:
    frame = full_frame(rows(1, 5000), 1, 1000)
    frame = frame[: frame.rfind(b"</bts>") + len(b"</bts>")]  # as the transport hands it over
    assert len(frame) < download_reply_cap(1000)  # within the byte cap: the row count is what refuses it

    def peak(parse) -> int:
        tracemalloc.start()
        try:
            parse()
            return tracemalloc.get_traced_memory()[1]
        except NewareProtocolError:
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    refused = peak(lambda: parse_download_frame(frame, "download", PageRequest("21-1-2", 1, 1000)))
    unchecked = peak(lambda: parse_download_frame(frame, "download"))  # what parsing all 5000 would take
    with pytest.raises(NewareProtocolError, match="more than the 1000 records asked for; refused unread"):
        parse_download_frame(frame, "download", PageRequest("21-1-2", 1, 1000))
    assert refused < unchecked / 3


@given(
    startpos=st.integers(1, 2**63 - 2000),
    n=st.integers(1, 40),
    data=st.data(),
)
def test_any_single_renumbering_is_caught(startpos: int, n: int, data: st.DataObject) -> None:
    records = [row(startpos + i, stepid=1 + i % 7, cycleid=i // 7) for i in range(n)]
    good = parse_download_frame(full_frame(records, startpos, n), "download", PageRequest("21-1-2", startpos, n))
    assert [r.seqid for r in good.records] == list(range(startpos, startpos + n))
    index = data.draw(st.integers(0, n - 1))
    wrong = data.draw(st.integers(-(2**70), 2**70).filter(lambda s: s != startpos + index))
    records[index]["seqid"] = wrong
    with pytest.raises(NewareProtocolError, match=f"download of channel 21-1-2 from startpos {startpos}: "):
        parse_download_frame(full_frame(records, startpos, n), "download", PageRequest("21-1-2", startpos, n))


# -- the other replies: integers that cannot be represented are protocol errors, nothing else escapes ----------

BAD_INTEGERS = ["1e30", HUGE, "inf", "-inf", "nan", "NaN", "-" + HUGE, "12abc"]


@pytest.mark.parametrize("text", BAD_INTEGERS)
def test_integer_fields_refuse_what_cannot_be_represented(text: str) -> None:
    with pytest.raises(NewareProtocolError, match=f"found '{text}'"):
        as_int(text)


def test_integer_fields_keep_their_leniency() -> None:
    assert as_int("44") == 44
    assert as_int("44.0") == 44  # .NET may format a whole number as a float
    assert as_int("--") is None and as_int(None, 7) == 7
    assert parse_int(str(2**63 - 1), "x") == 2**63 - 1
    with pytest.raises(NewareProtocolError, match=r"expected a seqid in 1\.\.5 in a reply, found '6'"):
        parse_int("6", "a seqid", 1, 5)


def inquire_reply(**values: str) -> str:
    attrs = {
        "dev": "27-21-1-2-0",
        "cycle_id": "44",
        "step_id": "4",
        "step_type": "dc",
        "workstatus": "working",
        "barcode": "b",
        "current": "-0.0003",
        "voltage": "4.6947",
        "capacity": "0.001",
        "energy": "0.0047",
        "totaltime": "3189199.3",
        "relativetime": "12319",
        "open_or_close": "0",
        "log_code": "102000",
        **values,
    }
    return (
        '<cmd>inquire_resp</cmd>\n<list count="1">\n  <inquire '
        + " ".join(f'{k}="{v}"' for k, v in attrs.items())
        + " />\n</list>"
    )


INQUIRE = f'<cmd>inquire</cmd><list count="1"><inquire {ADDR} chlid="2" aux="0" barcode="1">true</inquire></list>'


@pytest.mark.parametrize("text", BAD_INTEGERS)
@pytest.mark.parametrize("field", ["cycle_id", "step_id", "log_code"])
def test_inquire_refuses_unrepresentable_integers(field: str, text: str) -> None:
    with (
        client([(INQUIRE, inquire_reply(**{field: text}))] * 3) as (bts, _),
        pytest.raises(NewareProtocolError, match=rf"fake:502: expected an integer .*found '{text}'.*3 attempts"),
    ):
        bts.inquire([CH])


def test_inquire_passes_non_finite_live_values_to_the_station() -> None:
    with client([(INQUIRE, inquire_reply(voltage="NaN", current="inf"))]) as (bts, _):
        (live,) = bts.inquire([CH])
        assert math.isnan(live.voltage) and live.current == math.inf


@pytest.mark.parametrize("text", BAD_INTEGERS)
def test_other_replies_refuse_unrepresentable_integers(text: str) -> None:
    chl = '<chl devtype="27" devid="21" subdevid="1" chlid="2"'
    cases = [
        (
            lambda b: b.inquiredf([CH]),
            f'<cmd>inquiredf_resp</cmd>\n<list count="1">\n  {chl} testid="143" count="{text}">true</chl>\n</list>',
        ),
        (
            lambda b: b.download_step_layer(CH, testid=143),
            '<cmd>downloadStepLayer_resp</cmd>\n<list count="1">\n  <data startseqid="1" '
            f'endseqid="{text}" stepindex="1" stepid="1" cycleid="1" steptype="rest" steptime="1" />\n</list>',
        ),
        (
            lambda b: b.download_log(CH, testid=143),
            f'<cmd>donwloadlog_resp</cmd>\n<list count="1">\n  <data seqid="{text}" log_code="100000" />\n</list>',
        ),
        (
            lambda b: b.getdevinfo(),
            f'<cmd>getdevinfo_resp</cmd>\n<middle count="1">\n  <channel {ADDR.replace("21", text)} Channelid="1">'
            "true</channel>\n</middle>",
        ),
        (
            lambda b: b.getchlstatus([CH]),
            f'<cmd>getchlstatus_resp</cmd>\n<list count="1">\n  <status ip="127.0.0.1" devtype="27" devid="21" '
            f'subdevid="1" chlid="{text}" reservepause="1">working</status>\n</list>',
        ),
    ]
    for call, reply in cases:
        with (
            client([(None, reply)] * 3) as (bts, _),
            pytest.raises(NewareProtocolError, match=rf"found '{text}'|expected a finite"),
        ):
            call(bts)


def test_a_step_layer_with_a_non_finite_step_time_is_refused() -> None:
    reply = (
        '<cmd>downloadStepLayer_resp</cmd>\n<list count="1">\n  <data startseqid="1" endseqid="5" stepindex="1" '
        'stepid="1" cycleid="1" steptype="rest" steptime="nan" />\n</list>'
    )
    with (
        client([(None, reply)] * 3) as (bts, _),
        pytest.raises(NewareProtocolError, match="expected a finite step-layer steptime, found 'nan'"),
    ):
        bts.download_step_layer(CH, testid=143)
