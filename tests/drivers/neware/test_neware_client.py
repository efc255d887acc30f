"""The BTS client against an ordered fake transport: exact requests, in order, and typed replies."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from drivers.neware.address import ChannelAddress
from drivers.neware.client import BackupSettings, BtsClient, StartItem
from drivers.neware.errors import AddressError, NewareProtocolError
from tests.fakes.ordered_transport import OrderedTransport, real_reply

CH = ChannelAddress(devid=21, subdevid=1, chlid=2)
CH3 = ChannelAddress(devid=21, subdevid=1, chlid=3)
ADDR = 'ip="127.0.0.1" devtype="27" devid="21" subdevid="1"'


@contextmanager
def client(pairs):
    """A client on an ordered fake transport; leaving the block checks that every expected request came."""
    with OrderedTransport(pairs) as transport:
        yield BtsClient(transport), transport


def test_connect_and_getdevinfo_real_capture_shapes() -> None:
    with client(
        [
            (
                "<cmd>connect</cmd><username>admin</username><password>neware</password><type>bfgs</type>",
                "<cmd>connect_resp</cmd>\n<result>ok</result>",
            ),
            (
                "<cmd>getdevinfo</cmd>",
                '<cmd>getdevinfo_resp</cmd>\n<serverip count="1"><server ip="127.0.0.1" port="3306" /></serverip>\n'
                '<middle count="2">\n'
                f'  <channel {ADDR} Channelid="1">true</channel>\n'
                f'  <channel {ADDR} Channelid="2">false</channel>\n</middle>',
            ),
        ]
    ) as (bts, _):
        assert bts.connect() is True
        info = bts.getdevinfo()
        assert (info.server_ip, info.server_port) == ("127.0.0.1", 3306)
        assert [(c.address.channel_id, c.available) for c in info.channels] == [("21-1-1", True), ("21-1-2", False)]


def test_getchlstatus_matches_by_order_when_the_server_mislabels_subdevid() -> None:
    other = ChannelAddress(devid=13, subdevid=5, chlid=5)
    with client(
        [
            (
                '<cmd>getchlstatus</cmd><list count="2">'
                f'<status {ADDR} chlid="2">true</status>'
                '<status ip="127.0.0.1" devtype="27" devid="13" subdevid="5" chlid="5">true</status></list>',
                '<cmd>getchlstatus_resp</cmd>\n<list count="2">\n'
                f'  <status {ADDR} chlid="2" reservepause="1">working</status>\n'
                '  <status ip="127.0.0.1" devtype="27" devid="13" subdevid="1" chlid="5" reservepause="1">finish'
                "</status>\n</list>",
            )
        ]
    ) as (bts, _):
        rows = bts.getchlstatus([CH, other])
        assert [(r.address, r.workstatus, r.reserve_pause) for r in rows] == [
            (CH, "working", True),
            (other, "finish", True),
        ]


def test_inquire_working_and_finished_channels() -> None:
    with client(
        [
            (
                '<cmd>inquire</cmd><list count="2">'
                f'<inquire {ADDR} chlid="2" aux="0" barcode="1">true</inquire>'
                f'<inquire {ADDR} chlid="3" aux="0" barcode="1">true</inquire></list>',
                '<cmd>inquire_resp</cmd>\n<list count="2">\n'
                '  <inquire dev="27-21-1-2-0" cycle_id="44" step_id="4" step_type="dc" workstatus="working" '
                'barcode="251203_kigr_gen17_02" current="-0.0003" voltage="4.6947" capacity="0.001" energy="0.0047" '
                'totaltime="3189199.3" relativetime="12319" open_or_close="0" log_code="102000" />\n'
                '  <inquire dev="27-21-1-3-0" cycle_id="1" step_type="--" workstatus="finish" barcode="b3" '
                'current="0" voltage="3.1" capacity="0" energy="0" totaltime="0" relativetime="0" open_or_close="0" '
                'log_code="0" />\n</list>',
            )
        ]
    ) as (bts, _):
        working, finished = bts.inquire([CH, CH3])
        assert (working.workstatus, working.cycle_id, working.step_id, working.step_type) == ("working", 44, 4, "dc")
        assert (working.voltage, working.current, working.capacity, working.energy) == (
            4.6947, -0.0003, 0.001, 0.0047
        )
        assert (working.total_time, working.relative_time, working.log_code) == (3189199.3, 12319.0, 102000)
        assert working.barcode == "251203_kigr_gen17_02"
        assert (finished.workstatus, finished.step_id, finished.step_type, finished.voltage) == (
            "finish", None, None, 3.1
        )


def test_start_escapes_values_and_sends_backup_once() -> None:
    path = r"C:\steps\a&b <1>.xml"
    with client(
        [
            (
                '<cmd>start</cmd><list count="1">'
                f'<start {ADDR} chlid="2" barcode="cell &quot;7&quot; &lt;A&gt;">'
                "C:\\steps\\a&amp;b &lt;1&gt;.xml</start>"
                '<backup backupdir="C:\\data" remotedir="" filenametype="0" customfilename="" addtimewhenrepeat="0" '
                'createdirbydate="0" filetype="0" backupontime="1" backupontimeinterval="720" backupfree="1" />'
                "</list>",
                f'<cmd>start_resp</cmd>\n<list count="1">\n  <start {ADDR} chlid="2">ok</start>\n</list>',
            )
        ]
    ) as (bts, transport):
        acks = bts.start([StartItem(CH, path, 'cell "7" <A>')], BackupSettings(backupdir="C:\\data"))
        assert [(a.address, a.ok) for a in acks] == [(CH, True)]
        assert transport.idempotent_flags == [False]  # a start is never repeated behind the caller's back


@pytest.mark.parametrize(
    ("command", "method"), [("stop", "stop"), ("continue", "continue_"), ("clearflag", "clearflag")]
)
def test_channel_writes_report_ok_and_false(command: str, method: str) -> None:
    with client(
        [
            (
                f'<cmd>{command}</cmd><list count="2"><{command} {ADDR} chlid="2">true</{command}>'
                f'<{command} {ADDR} chlid="3">true</{command}></list>',
                f'<cmd>{command}_resp</cmd>\n<list count="2">\n  <{command} {ADDR} chlid="2">ok</{command}>\n'
                f'  <{command} {ADDR} chlid="3">false</{command}>\n</list>',
            )
        ]
    ) as (bts, _):
        acks = getattr(bts, method)([CH, CH3])
        assert [(a.address, a.ok) for a in acks] == [(CH, True), (CH3, False)]


def test_light_on_and_off() -> None:
    reply = f'<cmd>light_resp</cmd>\n<list count="1">\n  <light {ADDR} chlid="2">ok</light>\n</list>'
    with client(
        [
            (f'<cmd>light</cmd><list count="1"><light {ADDR} chlid="2">true</light></list>', reply),
            (f'<cmd>light</cmd><list count="1"><light {ADDR} chlid="2">false</light></list>', reply),
        ]
    ) as (bts, _):
        assert bts.light([CH], on=True)[0].ok
        assert bts.light([CH], on=False)[0].ok


def test_download_pages_with_the_misspelt_reply_name() -> None:
    with client(
        [
            (
                '<cmd>download</cmd><download devtype="27" devid="21" subdevid="1" chlid="2" auxid="0" testid="0" '
                'startpos="0" count="0" />',
                '<cmd>donwload_resp</cmd>\n<download devtype="27" devid="21" subdevid="1" chlid="2" testid="143" '
                'startpos="0" count="0" auxid="0" />\n<list count="0" />',
            ),
            (
                '<cmd>download</cmd><download devtype="27" devid="21" subdevid="1" chlid="2" auxid="0" testid="143" '
                'startpos="219576" count="1000" />',
                '<cmd>donwload_resp</cmd>\n<download devtype="27" devid="21" subdevid="1" chlid="2" testid="143" '
                'startpos="219576" count="1000" auxid="0" />\n<list count="2">\n'
                '  <data seqid="219576" stepid="24" cycleid="29" steptype="dc" testtime="36070000" '
                'atime="2025-12-28 22:29:05" volt="3.6780698299408" curr="-0.000295051460852847" '
                'cap="0.00295628436449786" eng="0.0135611368830335" />\n'
                '  <data seqid="219577" stepid="24" cycleid="29" steptype="dc" testtime="36080000" '
                'atime="2025-12-28 22:29:15" volt="3.67" curr="-2.11492042581085E-05" cap="0.003" eng="0.0136" />\n'
                "</list>",
            ),
        ]
    ) as (bts, _):
        assert bts.testid(CH) == 143
        page = bts.download(CH, testid=143, startpos=219576, count=1000)
        assert page.testid == 143
        first, second = page.records
        assert (first.seqid, first.stepid, first.cycleid, first.steptype) == (219576, 24, 29, "dc")
        assert (first.testtime_ms, first.volt, first.curr) == (36070000.0, 3.6780698299408, -0.000295051460852847)
        assert second.curr == -2.11492042581085e-05


def test_inquiredf_steplayer_and_log() -> None:
    with client(
        [
            (
                '<cmd>inquiredf</cmd><list count="1"><chl devtype="27" devid="21" subdevid="1" chlid="2" testid="0" />'
                "</list>",
                '<cmd>inquiredf_resp</cmd>\n<list count="1">\n  <chl devtype="27" devid="21" subdevid="1" chlid="2" '
                'testid="143" count="219585">true</chl>\n</list>',
            ),
            (
                '<cmd>downloadStepLayer</cmd><downloadStepLayer devtype="27" devid="21" subdevid="1" chlid="2" '
                'testid="143" />',
                '<cmd>downloadStepLayer_resp</cmd>\n<downloadStepLayer devtype="27" devid="21" subdevid="1" chlid="2" '
                'testid="143" />\n<list count="1">\n  <data startseqid="1" endseqid="4321" stepindex="1" stepid="1" '
                'cycleid="1" steptype="rest" steptime="43200000" endatime="2025-12-04 04:44:02" startvolt="3.18" '
                'endvolt="3.13" startcurr="0" endcurr="0" cap="0" eng="0" dcir="0" />\n</list>',
            ),
            (
                '<cmd>downloadlog</cmd><download devtype="27" devid="21" subdevid="1" chlid="2" testid="143" '
                'log_lever="0" />',
                '<cmd>donwloadlog_resp</cmd>\n<download devtype="27" devid="21" subdevid="1" chlid="2" testid="143" '
                'log_lever="0" />\n<list count="2">\n  <data seqid="1" log_code="100000" atime="2025-12-03 16:44:02" />'
                '\n  <data seqid="219585" log_code="100001" atime="2025-12-28 22:30:00" />\n</list>',
            ),
        ]
    ) as (bts, _):
        (df,) = bts.inquiredf([CH])
        assert (df.testid, df.count, df.complete) == (143, 219585, True)
        layer = bts.download_step_layer(CH, testid=143)
        assert layer.testid == 143
        assert layer.rows[0][:7] == (1, 4321, 1, 1, 1, "rest", 43200000.0)
        log = bts.download_log(CH, testid=143)
        assert [(e.seqid, e.log_code) for e in log.entries] == [(1, 100000), (219585, 100001)]


def test_a_garbled_reply_is_retried_after_a_resync() -> None:
    request = "<cmd>getdevinfo</cmd>"
    good = '<cmd>getdevinfo_resp</cmd>\n<middle count="0" />'
    garbled = b"<?xml version='1.0'?><bts><cmd>getdev#%!</bts>\n\n#\r\n"
    with client([(request, garbled), (request, good)]) as (bts, transport):
        assert bts.getdevinfo().channels == ()
        assert transport.resyncs == 1


def test_garbled_replies_that_persist_give_a_clear_error() -> None:
    garbled = b"<bts><cmd>x</cmd><list count='1'><data seqid='1' </list></bts>"
    with (
        client([("<cmd>getdevinfo</cmd>", garbled)] * 3) as (bts, _),
        pytest.raises(NewareProtocolError, match=r"fake:502: the reply to 'getdevinfo' is not valid XML.*3 attempts"),
    ):
        bts.getdevinfo()


def test_a_garbled_reply_to_a_write_is_not_repeated() -> None:
    request = f'<cmd>stop</cmd><list count="1"><stop {ADDR} chlid="2">true</stop></list>'
    with client([(request, b"<bts>")]) as (bts, _), pytest.raises(NewareProtocolError, match="reply to 'stop'"):
        bts.stop([CH])


def test_entities_in_replies_are_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE b [<!ENTITY a "aaaa">]><bts>&a;</bts>'
    with (
        client([("<cmd>getdevinfo</cmd>", bomb)] * 3) as (bts, _),
        pytest.raises(NewareProtocolError, match="refused by the XML parser"),
    ):
        bts.getdevinfo()


def test_download_count_is_limited_to_a_page() -> None:
    with client([]) as (bts, _), pytest.raises(ValueError, match=r"0\.\.1000"):
        bts.download(CH, startpos=1, count=1001)


def test_channel_ids() -> None:
    assert ChannelAddress.parse("21-1-2") == CH
    assert real_reply("<cmd>x</cmd>").endswith(b"</bts>\n\n#\r\n")
    with pytest.raises(AddressError, match="devid-subdevid-chlid"):
        ChannelAddress.parse("27-21-1-2")


def test_setpause_now() -> None:
    with client(
        [
            (
                f'<cmd>setpause</cmd><setpause {ADDR} chlid="2" cycleid="-1" stepid="-1" timeout="" />',
                f'<cmd>setpause_resp</cmd>\n<list count="1">\n  <setpause {ADDR} chlid="2">ok</setpause>\n</list>',
            )
        ]
    ) as (bts, transport):
        assert bts.setpause(CH).ok
        assert transport.idempotent_flags == [False]
