"""The driver's BTS command table held to the reference (neware-bts-api.md section 2): the requests it builds are
the documented forms in aurora-neware's envelope, the replies it parses are the real captures, reads may be
repeated and writes may not, and the client's methods are generated from it with their documented signatures.

The captures are copied from the reference, not from the simulator: the driver and the simulated server keep
separate tables and meet only at the wire."""

from __future__ import annotations

import inspect

import pytest

from drivers.neware import commands
from drivers.neware.address import ChannelAddress
from drivers.neware.client import BtsClient, StartItem
from drivers.neware.commands import COMMANDS, Layout
from drivers.transport import FrameTooLarge
from tests.fakes.ordered_transport import OrderedTransport, real_reply

CH = ChannelAddress(devid=21, subdevid=1, chlid=2)
ADDR = 'ip="127.0.0.1" devtype="27" devid="21" subdevid="1" chlid="2"'
NOIP = 'devtype="27" devid="21" subdevid="1" chlid="2"'

READS = {"connect", "getdevinfo", "getchlstatus", "inquire", "inquiredf", "download", "downloadStepLayer",
         "downloadlog"}
WRITES = {"start", "stop", "continue", "clearflag", "light", "setpause"}


def test_reads_may_be_repeated_and_writes_never() -> None:
    assert set(COMMANDS) == READS | WRITES
    assert {name for name, c in COMMANDS.items() if c.idempotent} == READS


def test_every_command_is_a_client_method_generated_from_its_declaration() -> None:
    expected = {
        "connect": "(self, username='admin', password='neware') -> 'bool'",
        "getdevinfo": "(self) -> 'replies.DeviceInfo'",
        "getchlstatus": "(self, channels: 'Sequence[ChannelAddress]') -> 'list[replies.ChannelWorkStatus]'",
        "inquire": "(self, channels: 'Sequence[ChannelAddress]', *, barcode=True) -> 'list[replies.InquireReply]'",
        "inquiredf": "(self, channels: 'Sequence[ChannelAddress]', testid=0) -> 'list[replies.InquireDf]'",
        "download": "(self, channel: 'ChannelAddress', *, testid=0, startpos, count) -> 'replies.DownloadPage'",
        "download_step_layer": "(self, channel: 'ChannelAddress', testid=0) -> 'replies.StepLayer'",
        "download_log": "(self, channel: 'ChannelAddress', testid=0) -> 'replies.TestLog'",
        "stop": "(self, channels: 'Sequence[ChannelAddress]') -> 'list[replies.ChannelAck]'",
        "continue_": "(self, channels: 'Sequence[ChannelAddress]') -> 'list[replies.ChannelAck]'",
        "clearflag": "(self, channels: 'Sequence[ChannelAddress]') -> 'list[replies.ChannelAck]'",
        "light": "(self, channels: 'Sequence[ChannelAddress]', on=True) -> 'list[replies.ChannelAck]'",
        "setpause": "(self, channel: 'ChannelAddress', *, cycleid=-1, stepid=-1) -> 'replies.ChannelAck'",
    }
    for command in COMMANDS.values():
        method = getattr(BtsClient, command.method)
        assert method.__doc__, command.name
        if command.name != "start":  # start takes StartItems and the <backup> element: driven by hand
            assert str(inspect.signature(method)) == expected[command.method], command.name
    assert str(inspect.signature(BtsClient.start)) == (
        "(self, items: 'Sequence[StartItem]', backup: 'BackupSettings | None' = None) -> 'list[replies.ChannelAck]'"
    )


# (call, the request body as the reference documents it, a real or documented reply)
REFERENCE = [
    (  # 1.7 / AN; reply: the real capture of 1.4
        lambda b: b.connect(),
        "<cmd>connect</cmd><username>admin</username><password>neware</password><type>bfgs</type>",
        "<cmd>connect_resp</cmd>\n<result>ok</result>",
    ),
    (  # 2.2; reply: BTS 8.0 real capture (Channelid, not chlid)
        lambda b: b.getdevinfo(),
        "<cmd>getdevinfo</cmd>",
        '<cmd>getdevinfo_resp</cmd>\n<serverip count="1"><server ip="127.0.0.1" port="3306" /></serverip>\n'
        '<middle count="1">\n  <channel ip="127.0.0.1" devtype="27" devid="21" subdevid="1" Channelid="2">true'
        "</channel>\n</middle>",
    ),
    (  # 1.3 example request; 2.3 reply with reservepause="1" as the real BTS 8.0 sends it
        lambda b: b.getchlstatus([CH]),
        f'<cmd>getchlstatus</cmd><list count="1"><status {ADDR}>true</status></list>',
        f'<cmd>getchlstatus_resp</cmd>\n<list count="1">\n  <status {ADDR} reservepause="1">working</status>\n</list>',
    ),
    (  # 2.4, real capture of a working channel
        lambda b: b.inquire([CH]),
        f'<cmd>inquire</cmd><list count="1"><inquire {ADDR} aux="0" barcode="1">true</inquire></list>',
        '<cmd>inquire_resp</cmd>\n<list count="1">\n  <inquire dev="27-21-1-2-0" cycle_id="44" step_id="4" '
        'step_type="dc" workstatus="working" barcode="251203_kigr_gen17_02" current="-0.0003" voltage="4.6947" '
        'capacity="0.001" energy="0.0047" totaltime="3189199.3" relativetime="12319" open_or_close="0" '
        'log_code="102000" />\n</list>',
    ),
    (  # 2.8: self-closing, no ip; real capture
        lambda b: b.inquiredf([CH]),
        f'<cmd>inquiredf</cmd><list count="1"><chl {NOIP} testid="0" /></list>',
        f'<cmd>inquiredf_resp</cmd>\n<list count="1">\n  <chl {NOIP} testid="143" count="219585">true</chl>\n</list>',
    ),
    (  # 2.7: a single element, no list; the zero-length download that reads the testid (AN get_testid)
        lambda b: b.download(CH, startpos=0, count=0),
        f'<cmd>download</cmd><download {NOIP} auxid="0" testid="0" startpos="0" count="0" />',
        f'<cmd>donwload_resp</cmd>\n<download {NOIP} testid="143" startpos="0" count="0" auxid="0" />\n'
        '<list count="0" />',
    ),
    (  # 2.9; real capture row
        lambda b: b.download_step_layer(CH),
        f'<cmd>downloadStepLayer</cmd><downloadStepLayer {NOIP} testid="0" />',
        f'<cmd>downloadStepLayer_resp</cmd>\n<downloadStepLayer {NOIP} testid="143" />\n<list count="1">\n'
        '  <data startseqid="1" endseqid="4321" stepindex="1" stepid="1" cycleid="1" steptype="rest" '
        'steptime="43200000" endatime="2025-12-04 04:44:02" startvolt="3.18" endvolt="3.13" startcurr="0" '
        'endcurr="0" cap="0" eng="0" dcir="0" />\n</list>',
    ),
    (  # 2.10: element <download>, attribute really spelt log_lever
        lambda b: b.download_log(CH),
        f'<cmd>downloadlog</cmd><download {NOIP} testid="0" log_lever="0" />',
        f'<cmd>donwloadlog_resp</cmd>\n<download {NOIP} testid="143" log_lever="0" />\n<list count="1">\n'
        '  <data seqid="1" log_code="100000" atime="2025-12-03 16:44:02" />\n</list>',
    ),
    (  # 2.5
        lambda b: b.start([StartItem(CH, "C:\\path\\to\\step.xml", "SAMPLE")]),
        f'<cmd>start</cmd><list count="1"><start {ADDR} barcode="SAMPLE">C:\\path\\to\\step.xml</start></list>',
        f'<cmd>start_resp</cmd>\n<list count="1">\n  <start {ADDR}>ok</start>\n</list>',
    ),
    (  # 2.6: stopping a finished channel answers false (real capture)
        lambda b: b.stop([CH]),
        f'<cmd>stop</cmd><list count="1"><stop {ADDR}>true</stop></list>',
        f'<cmd>stop_resp</cmd>\n<list count="1">\n  <stop {ADDR}>false</stop>\n</list>',
    ),
    (  # 2.13
        lambda b: b.continue_([CH]),
        f'<cmd>continue</cmd><list count="1"><continue {ADDR}>true</continue></list>',
        f'<cmd>continue_resp</cmd>\n<list count="1">\n  <continue {ADDR}>ok</continue>\n</list>',
    ),
    (  # 2.12
        lambda b: b.clearflag([CH]),
        f'<cmd>clearflag</cmd><list count="1"><clearflag {ADDR}>true</clearflag></list>',
        f'<cmd>clearflag_resp</cmd>\n<list count="1">\n  <clearflag {ADDR}>ok</clearflag>\n</list>',
    ),
    (  # 2.11
        lambda b: b.light([CH], on=False),
        f'<cmd>light</cmd><list count="1"><light {ADDR}>false</light></list>',
        f'<cmd>light_resp</cmd>\n<list count="1">\n  <light {ADDR}>ok</light>\n</list>',
    ),
    (  # 2.13 **[unverified]**: cycleid/stepid -1 = now
        lambda b: b.setpause(CH),
        f'<cmd>setpause</cmd><setpause {ADDR} cycleid="-1" stepid="-1" timeout="" />',
        f'<cmd>setpause_resp</cmd>\n<list count="1">\n  <setpause {ADDR}>ok</setpause>\n</list>',
    ),
]


def test_each_command_sends_the_reference_form_and_reads_the_capture() -> None:
    results = {}
    with OrderedTransport([(request, reply) for _, request, reply in REFERENCE]) as transport:
        client = BtsClient(transport)
        for call, request, _ in REFERENCE:
            results[request.split("</cmd>")[0][5:]] = call(client)
    assert transport.idempotent_flags == [name in READS for name in results]
    assert results["connect"] is True
    assert results["getdevinfo"].channels[0].address == CH
    assert [(s.workstatus, s.reserve_pause) for s in results["getchlstatus"]] == [("working", True)]
    (live,) = results["inquire"]
    assert (live.cycle_id, live.step_id, live.step_type, live.current, live.log_code) == (44, 4, "dc", -0.0003, 102000)
    assert [(d.testid, d.count, d.complete) for d in results["inquiredf"]] == [(143, 219585, True)]
    assert (results["download"].testid, results["download"].records) == (143, [])
    assert results["downloadStepLayer"].rows[0].steptime_ms == 43200000.0
    assert results["downloadlog"].entries[0].log_code == 100000
    assert [a.ok for a in results["start"]] == [True] and [a.ok for a in results["stop"]] == [False]
    assert results["setpause"].ok and results["setpause"].address == CH


def test_requests_are_framed_in_aurora_neware_s_envelope() -> None:
    request = commands.GETDEVINFO.request([])
    assert request.encode() == (
        b'<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0"><cmd>getdevinfo</cmd></bts>\n\n#\r\n'
    )


def test_reply_caps_follow_what_the_protocol_can_send() -> None:
    page = lambda count: commands.DOWNLOAD.request(  # noqa: E731
        [commands.DOWNLOAD.item(CH, startpos=1, count=count)], {"startpos": 1, "count": count})
    assert page(1000).max_reply == commands.download_reply_cap(1000) > page(10).max_reply
    statuses = lambda n: commands.GETCHLSTATUS.request([commands.GETCHLSTATUS.item(CH)] * n)  # noqa: E731
    assert statuses(2048).max_reply == commands.channel_list_reply_cap(2048) < 5 * 2**20
    assert {c.layout for c in COMMANDS.values()} == set(Layout)


def test_a_reply_past_its_cap_is_refused_and_a_read_is_retried() -> None:
    class Capped(OrderedTransport):
        def exchange_limited(self, request: bytes, *, max_reply: int, idempotent: bool = True) -> bytes:
            frame = self.exchange(request, idempotent=idempotent)
            if len(frame) > max_reply:
                raise FrameTooLarge(f"fake:502: a reply over {max_reply} bytes")
            return frame

    flood = real_reply("<cmd>getchlstatus_resp</cmd>\n" + " " * commands.channel_list_reply_cap(1))
    good = f'<cmd>getchlstatus_resp</cmd>\n<list count="1">\n  <status {ADDR}>finish</status>\n</list>'
    request = f'<cmd>getchlstatus</cmd><list count="1"><status {ADDR}>true</status></list>'
    with Capped([(request, flood), (request, good)]) as transport:
        assert [s.workstatus for s in BtsClient(transport).getchlstatus([CH])] == ["finish"]
    assert transport.resyncs == 1
    stop = f'<cmd>stop</cmd><list count="1"><stop {ADDR}>true</stop></list>'
    too_long = real_reply("<cmd>stop_resp</cmd>\n" + " " * commands.channel_list_reply_cap(1))
    with Capped([(stop, too_long)]) as once, pytest.raises(FrameTooLarge, match="a reply over"):
        BtsClient(once).stop([CH])  # a write is never repeated: one exchange only
