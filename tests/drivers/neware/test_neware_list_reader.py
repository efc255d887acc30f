"""The poll's fast reader of ``inquire`` and ``inquiredf`` replies (drivers/neware/lists.py) is the tree parser it
replaced, exactly: the same typed replies from real captures and from the simulator's replies to random channel
states, and the same refusal, word for word, of hostile and garbled input (entities, DTDs, external references,
namespaces, truncation, random corruption).

"The tree" is the former path, still in the code: defusedxml's ElementTree (``codec.parse_reply``) read by
``replies.parse_inquire`` / ``parse_inquiredf``. Outcomes are compared as text (``repr`` of the typed replies, or
the error's type and message), so NaN readings compare equal and any difference in a message shows."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import ChannelRanges
from drivers.neware import commands, replies
from drivers.neware.address import ChannelAddress
from drivers.neware.client import BtsClient, StartItem
from drivers.neware.stepfile import compile_program
from drivers.transport import Transport
from protocols.cells import load_cell
from protocols.clock import VirtualClock
from protocols.loader import load_protocol_text
from simulators.neware.api import BtsApi
from tests.fakes.ordered_transport import real_reply
from tests.fakes.standin_cell import LinearCell

CH = ChannelAddress(devid=21, subdevid=1, chlid=2)
CH3 = ChannelAddress(devid=21, subdevid=1, chlid=3)
NOIP = 'devtype="27" devid="21" subdevid="1"'

# the former table entries, kept here as the reference
TREE_INQUIRE = commands.tree(lambda root, r: replies.parse_inquire(root, r.channels))
TREE_INQUIREDF = commands.tree(lambda root, r: replies.parse_inquiredf(root, r.channels))


def inquire_request(channels: list[ChannelAddress], barcode: bool = True) -> commands.Request[Any]:
    return commands.INQUIRE.request([commands.INQUIRE.item(c, barcode=barcode) for c in channels])


def inquiredf_request(channels: list[ChannelAddress], testid: int = 0) -> commands.Request[Any]:
    return commands.INQUIREDF.request([commands.INQUIREDF.item(c, testid=testid) for c in channels])


def outcome(parse: Any, frame: bytes, request: commands.Request[Any]) -> str:
    """What ``parse(frame, request)`` gives, as text: the typed replies, or the error's type and message."""
    try:
        return repr(parse(frame, request))
    except Exception as exc:  # any difference, in type or in message, is the point
        return f"{type(exc).__name__}: {exc}"


def assert_same(frame: bytes, request: commands.Request[Any]) -> str:
    """The fast reader and the tree agree on ``frame``; returns the common outcome."""
    tree = TREE_INQUIRE if request.command is commands.INQUIRE else TREE_INQUIREDF
    fast = outcome(request.command.reply, frame, request)  # the table's reader, as Request.parse calls it
    assert fast == outcome(tree, frame, request), frame
    return fast


# -- real captures (neware-bts-api.md 2.4 and 2.8, as the command-table tests hold them) -------------------------

INQUIRE_CAPTURE = real_reply(
    '<cmd>inquire_resp</cmd>\n<list count="2">\n'
    '  <inquire dev="27-21-1-2-0" cycle_id="44" step_id="4" step_type="dc" workstatus="working" '
    'barcode="251203_kigr_gen17_02" current="-0.0003" voltage="4.6947" capacity="0.001" energy="0.0047" '
    'totaltime="3189199.3" relativetime="12319" open_or_close="0" log_code="102000" />\n'
    '  <inquire dev="27-21-1-3-0" cycle_id="1" step_type="--" workstatus="finish" barcode="b3" '
    'current="0" voltage="3.1" capacity="0" energy="0" totaltime="0" relativetime="0" open_or_close="0" '
    'log_code="0" />\n</list>'
)
INQUIREDF_CAPTURE = real_reply(
    f'<cmd>inquiredf_resp</cmd>\n<list count="2">\n  <chl {NOIP} chlid="2" testid="143" count="219585">true</chl>\n'
    f'  <chl {NOIP} chlid="3" testid="12" count="0">false</chl>\n</list>'
)


def test_real_captures_read_exactly_as_the_tree_reads_them() -> None:
    live = assert_same(INQUIRE_CAPTURE, inquire_request([CH, CH3]))
    assert "cycle_id=44, step_id=4, step_type='dc'" in live and "workstatus='finish'" in live
    progress = assert_same(INQUIREDF_CAPTURE, inquiredf_request([CH, CH3]))
    assert "testid=143, count=219585, complete=True" in progress and "testid=12, count=0, complete=False" in progress
    # matched by address whatever the order, unrequested channels dropped, a missing one refused
    assert_same(INQUIRE_CAPTURE, inquire_request([CH3, CH]))
    assert_same(INQUIREDF_CAPTURE, inquiredf_request([CH3]))
    assert "has no element for channel" in assert_same(INQUIREDF_CAPTURE, inquiredf_request([CH, CH3, CH3]))


# -- the simulator's replies to random channel states --------------------------------------------------------------

PROTOCOL = """
protocol: list-reader
record: {every: 10 s}
steps:
  - rest: 60 s
  - repeat: 3
    steps:
      - Charge at 1 mA for 20 min
      - Discharge at 1 mA for 20 min
"""


class InProcess(Transport):
    """The simulator's I/O-free API as a transport (no socket: the codecs alone meet)."""

    def __init__(self, api: BtsApi):
        self.api = api
        self.address = "in-process"

    def exchange(self, request: bytes, *, idempotent: bool = True) -> bytes:
        return self.api.handle(request)[1]


BARCODE = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
                  | st.sampled_from("\t\n<>&\"'-"), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                                   HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), barcodes=st.lists(BARCODE, min_size=12, max_size=12))
def test_simulator_replies_to_random_states_read_exactly_as_the_tree_reads_them(
    tmp_path: Path, seed: int, barcodes: list[str]
) -> None:
    rng = random.Random(seed)
    clock = VirtualClock()
    api = BtsApi(devices=2, channels=8, clock=clock, model_factory=lambda key: LinearCell())
    transport = InProcess(api)
    client = BtsClient(transport)
    program = load_protocol_text(PROTOCOL, "list-reader.yaml").bind(load_cell("predeposited-ncm622"))
    assert program is not None
    path = tmp_path / "list-reader.xml"
    path.write_bytes(compile_program(program, ChannelRanges(0, 5, 0.01)).xml)
    channels = [ChannelAddress(devid, 1, chlid) for devid in (21, 22) for chlid in range(1, 9)]
    started = rng.sample(channels, 12)
    for address, barcode in zip(started, barcodes, strict=True):
        client.start([StartItem(address, str(path), barcode)])
    asked: list[commands.Request[Any]] = []
    for _ in range(4):
        clock.advance(rng.choice([1.0, 37.0, 600.0, 1800.0, 7200.0]))
        for address in rng.sample(started, 3):  # some paused, stopped or resumed
            rng.choice([lambda a: client.setpause(a), lambda a: client.stop([a]), lambda a: client.continue_([a])])(
                address)
        subset = rng.sample([*channels, ChannelAddress(23, 1, 1)], rng.randint(1, 17))  # 23-1-1: no such unit
        for request in (inquire_request(subset, rng.random() < 0.5),
                        inquiredf_request(subset, rng.choice([0, 1, 5]))):
            frame = transport.exchange(request.encode())
            asked.append(request)
            assert_same(frame, request)
            shuffled = list(request.items)
            rng.shuffle(shuffled)  # the same reply, matched to the request in another order
            assert_same(frame, request.command.request(shuffled))
    assert any(r.command is commands.INQUIRE for r in asked) and any(r.command is commands.INQUIREDF for r in asked)


# -- hostile and garbled replies: refused exactly as the tree refuses them ----------------------------------------

ROW = '<inquire dev="27-21-1-2-0" cycle_id="4" step_id="2" workstatus="working" voltage="3.9" current="0.001" />'
CHL = f'<chl {NOIP} chlid="2" testid="7" count="12">true</chl>'
HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\r\n'

HOSTILE = [
    # entities, DTDs and external references (defusedxml's refusals, or expat's)
    b'<?xml version="1.0"?><!DOCTYPE b [<!ENTITY a "aaaa">]><bts><list>' + ROW.encode() + b"&a;</list></bts>",
    b'<?xml version="1.0"?><!DOCTYPE bts [<!ENTITY a "x"><!ENTITY b "&a;&a;&a;">]><bts>&b;</bts>',
    b'<?xml version="1.0"?><!DOCTYPE bts [<!ENTITY e SYSTEM "file:///etc/passwd">]><bts>&e;</bts>',
    b'<?xml version="1.0"?><!DOCTYPE bts [<!ENTITY % p SYSTEM "http://example.invalid/x.dtd"> %p;]><bts/>',
    b'<?xml version="1.0"?><!DOCTYPE bts [<!ENTITY u SYSTEM "x" NDATA gif>]><bts/>',
    b'<?xml version="1.0"?><!DOCTYPE bts SYSTEM "http://example.invalid/bts.dtd"><bts><list>' + ROW.encode()
    + b"</list></bts>",
    b'<?xml version="1.0"?><!DOCTYPE bts PUBLIC "-//X//Y" "bts.dtd"><bts><list>' + ROW.encode() + b"&u;</list></bts>",
    b'<?xml version="1.0"?><!DOCTYPE bts><bts><list>' + ROW.encode() + b"</list></bts>",  # a bare DTD: as before
    b'<?xml version="1.0"?><!DOCTYPE bts [<!ATTLIST inquire workstatus CDATA "pause">]><bts><list>'
    b'<inquire dev="27-21-1-2-0" /></list></bts>',
    b"<bts><list>" + ROW.encode() + b"&undefined;</list></bts>",
    b"<bts><list>" + ROW.encode() + b"&amp;&#65;&#x42;</list></bts>",
    # not XML, cut short, or not a BTS reply
    b"", b"   ", b"<bts>", b"<bts><list>" + ROW[:40].encode(), b"<?xml version='1.0'?><bts><cmd>getdev#%!</bts>",
    b"<bts><list count='1'><inquire dev='27-21-1-2-0' </list></bts>",
    b"<reply><list>" + ROW.encode() + b"</list></reply>",
    b"<bts></bts><bts></bts>", b"garbage", b"\xff\xfe<\x00b\x00", b"<bts>\xc3\x28</bts>",
    b"<?xml version='1.0' encoding='ISO-8859-1'?><bts><list><inquire dev='27-21-1-2-0' barcode='\xe9' /></list></bts>",
    b"<?xml version='1.0' encoding='no-such-codec'?><bts/>",
    # namespaces: expanded as ElementTree expands them
    b'<bts xmlns="urn:x"><list>' + ROW.encode() + b"</list></bts>",
    b'<bts><list xmlns="urn:x">' + ROW.encode() + b"</list></bts>",
    b'<n:bts xmlns:n="urn:x"><list>' + ROW.encode() + b"</list></n:bts>",
    b"<n:bts><list>" + ROW.encode() + b"</list></n:bts>",  # an unbound prefix
    b'<bts xmlns:n="urn:x"><list><inquire n:dev="27-21-1-2-0" dev="27-21-1-2-0" n:voltage="1" /></list></bts>',
    b'<bts><list><inquire xml:lang="en" dev="27-21-1-2-0" /></list></bts>',
    # where the rows are: only the first <list> under the root, only its direct children
    b"<bts><list></list><list>" + ROW.encode() + b"</list></bts>",
    b"<bts><list>" + ROW.encode() + b"</list><list>" + ROW.replace("2-0", "3-0").encode() + b"</list></bts>",
    b"<bts><x><list>" + ROW.encode() + b"</list></x></bts>",
    b"<bts>" + ROW.encode() + b"</bts>",
    b"<bts><list><wrap>" + ROW.encode() + b"</wrap></list></bts>",
    b"<bts><list>" + ROW.replace(" />", ">" + ROW + "</inquire>").encode() + b"</list></bts>",
    # values: what the typing refuses, with the same message
    b'<bts><list><inquire dev="27-21-1-2-0" cycle_id="1e30" /></list></bts>',
    b'<bts><list><inquire dev="27-21-1-2-0" voltage="high" /></list></bts>',
    b'<bts><list><inquire dev="27-21-1-2-0" voltage="--" current="" step_id="--" log_code="44.0" /></list></bts>',
    b'<bts><list><inquire dev="27-21-1-2-0" voltage="nan" current="-inf" capacity="-0.0" /></list></bts>',
    b'<bts><list><inquire dev="27-21-1-2-0" dev2="x" dev3="&lt;&gt;&quot;" /></list></bts>',
    b'<bts><list><inquire dev="27-21-x-2-0" /></list></bts>',
]

CHL_HOSTILE = [
    *(f"<bts><list>{CHL.replace('>true<', f'>{text}<')}</list></bts>".encode() for text in [
        " TRUE\r\n", "tr<!--c-->ue", "tr<?pi x?>ue", "tr<x/>ue", "<x/>true", "<![CDATA[true]]>", "&#116;rue", "t&amp;",
        "", "true<x>false</x>", "\ttrue  ", "false",
    ]),
    f'<bts><list>{CHL.replace("testid=", "devid2=")}</list></bts>'.encode(),
    f'<bts><list>{CHL.replace(" devid=", " devidx=")}</list></bts>'.encode(),
    f'<bts><list>{CHL.replace(" devid=", " devidx=").replace("subdevid", "subdevidx")}</list></bts>'.encode(),
    f'<bts><list>{CHL.replace("chlid=", "chlid2=").replace(NOIP, NOIP.replace("21", "x"))}</list></bts>'.encode(),
    f'<bts><list>{CHL.replace("count=", "count2=").replace("testid=", "testid2=")}</list></bts>'.encode(),
    f'<bts><list>{CHL.replace("12", "1e30")}</list></bts>'.encode(),
    f'<bts xmlns:n="urn:x"><list>{CHL.replace(" devid=", " n:devid=")}</list></bts>'.encode(),
    f'<bts xmlns:n="urn:x"><list>{CHL.replace("chlid=", "n:chlid=")}</list></bts>'.encode(),
    f"<bts><list>{CHL}{CHL}</list></bts>".encode(),
]


@pytest.mark.parametrize("frame", HOSTILE)
def test_hostile_or_garbled_inquire_replies_are_refused_or_read_exactly_as_by_the_tree(frame: bytes) -> None:
    for request in (inquire_request([CH]), inquire_request([CH, CH3])):
        assert_same(frame, request)
        assert_same(HEAD + frame + b"\n\n#\r\n", request)


@pytest.mark.parametrize("frame", HOSTILE[:12] + CHL_HOSTILE)
def test_hostile_or_garbled_inquiredf_replies_are_refused_or_read_exactly_as_by_the_tree(frame: bytes) -> None:
    for request in (inquiredf_request([CH]), inquiredf_request([CH, CH3])):
        assert_same(frame, request)
        assert_same(HEAD + frame + b"\r\n#\r\n", request)


def test_entities_and_dtds_are_refused_in_the_same_words() -> None:
    bomb, billion, external = (assert_same(frame, inquire_request([CH])) for frame in HOSTILE[:3])
    assert bomb.startswith("NewareProtocolError: the reply to 'inquire' was refused by the XML parser: "
                           "EntitiesForbidden(name='a'")
    assert billion.startswith("NewareProtocolError: the reply to 'inquire' was refused by the XML parser: ")
    assert "EntitiesForbidden(name='e'" in external
    parameter = assert_same(HOSTILE[3], inquiredf_request([CH]))
    assert parameter.startswith("NewareProtocolError: the reply to 'inquiredf' was refused by the XML parser")
    undefined = assert_same(HOSTILE[9], inquire_request([CH]))
    assert undefined.startswith("NewareProtocolError: the reply to 'inquire' is not valid XML (undefined entity: "
                                "line 1, column ")


@settings(max_examples=400, deadline=None, derandomize=True)
@given(data=st.data())
def test_any_corruption_of_a_capture_is_read_or_refused_exactly_as_by_the_tree(data: st.DataObject) -> None:
    frame, request = data.draw(st.sampled_from([(INQUIRE_CAPTURE, inquire_request([CH, CH3])),
                                                (INQUIREDF_CAPTURE, inquiredf_request([CH, CH3]))]))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(frame)))
        cut = data.draw(st.integers(0, 8))
        insert = data.draw(st.sampled_from([b"", b"<", b">", b"&", b";", b"/", b'"', b"'", b"=", b"!", b"?", b"x",
                                            b"<!--", b"-->", b"<![CDATA[", b"]]>", b"<!DOCTYPE bts>", b"&amp;",
                                            b"&#0;", b"\x00", b"\xff", b" xmlns='urn:x'", b" xmlns:a='u'", b"a:",
                                            b"<list>", b"</list>", b"<inquire dev='27-21-1-2-0'/>", b"\r\n"]))
        frame = frame[:at] + insert + frame[at + cut:]
    assert_same(frame, request)


def test_only_short_address_texts_are_kept_so_a_hostile_peer_cannot_fill_memory() -> None:
    long_dev = "27-21-1-2-" + "0" * 5000
    long_ip = "1" * 5000
    frame = real_reply(f'<cmd>inquire_resp</cmd>\n<list count="1">\n  <inquire dev="{long_dev}" workstatus="stop" />'
                       "\n</list>")
    chl = real_reply(f'<cmd>inquiredf_resp</cmd>\n<list count="1">\n  <chl ip="{long_ip}" {NOIP} chlid="2" '
                     'testid="1" count="2">false</chl>\n</list>')
    before = (replies._cached_dev_address.cache_info().currsize, replies._address_of.cache_info().currsize)
    assert "workstatus='stop'" in assert_same(frame, inquire_request([CH]))
    assert "count=2" in assert_same(chl, inquiredf_request([CH]))
    assert (replies._cached_dev_address.cache_info().currsize, replies._address_of.cache_info().currsize) == before


# -- the typing shortcuts of replies.py are the functions they stand for ------------------------------------------

NUMBER_TEXT = st.one_of(st.none(), st.sampled_from(["--", "", " 1.5 ", "1_000", "nan", "-inf", "-0.0", "0", "44.0",
                                                    "1e30", "9223372036854775807", "9223372036854775808",
                                                    "-9223372036854775809", "0x10", "\u0661\u0662", "abc", "1 2"]),
                        st.text(alphabet="0123456789.-+eE_ xn", max_size=12), st.text(max_size=6))


def _same_call(fast: Any, slow: Any, value: Any) -> None:
    def run(fn: Any) -> str:
        try:
            return repr(fn(value))
        except Exception as exc:  # the same error, in type and message
            return f"{type(exc).__name__}: {exc}"
    assert run(fast) == run(slow), value


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(value=NUMBER_TEXT)
def test_the_number_shortcuts_give_what_as_float_and_as_int_give(value: str | None) -> None:
    _same_call(replies._number_or_zero, lambda v: replies.as_float(v, 0.0) or 0.0, value)
    _same_call(replies._optional_int, replies.as_int, value)


def _match_reference(requested: list[ChannelAddress], found: list[ChannelAddress | None]) -> list[int]:
    """match_to_requests as it was before its shortcut (rules 1 and 2 in order, then by position)."""
    taken = [False] * len(found)
    chosen: list[int | None] = [None] * len(requested)
    for rule in (lambda a: (a.devid, a.subdevid, a.chlid), lambda a: (a.devid, a.chlid)):
        for i, address in enumerate(requested):
            if chosen[i] is None:
                for j, reply in enumerate(found):
                    if reply is not None and not taken[j] and rule(reply) == rule(address):
                        chosen[i], taken[j] = j, True
                        break
    if len(found) == len(requested):
        for i in range(len(requested)):
            if chosen[i] is None and not taken[i]:
                chosen[i], taken[i] = i, True
    if None in chosen:
        raise replies.NewareProtocolError("no element")
    return [j for j in chosen if j is not None]


ADDRESS = st.builds(ChannelAddress, st.integers(21, 22), st.integers(1, 2), st.integers(1, 3))


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(requested=st.lists(ADDRESS, min_size=1, max_size=6), data=st.data())
def test_matching_replies_to_requests_pairs_as_the_rules_say(requested: list[ChannelAddress],
                                                              data: st.DataObject) -> None:
    found = data.draw(st.one_of(st.permutations(requested), st.lists(st.one_of(st.none(), ADDRESS), max_size=7),
                                st.just(list(requested))))
    try:
        expected: Any = _match_reference(requested, found)
    except replies.NewareProtocolError:
        expected = "refused"
    indexed = list(enumerate(found))
    try:
        got: Any = [j for j, _ in replies.match_to_requests(requested, indexed, lambda pair: pair[1])]
    except replies.NewareProtocolError:
        got = "refused"
    assert got == expected
