"""The simulated BTS server at the wire: envelope, lenient requests, workstatus, paging, testids, protection.

Requests are written out by hand here (not with the driver's codec), as an independent client would write them.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest

from protocols.clock import VirtualClock
from simulators.neware import BtsSimulator, Fault
from simulators.neware.wire import dotnet, rounded
from tests.fakes.standin_cell import LinearCell

HEAD = '<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">'
CH = 'ip="127.0.0.1" devtype="27" devid="21" subdevid="1" chlid="{}"'


def req(body: str, terminator: str = "\n\n#\r\n") -> bytes:
    return (HEAD + body + "</bts>" + terminator).encode()


def parse(reply: bytes):
    assert reply.endswith(b"</bts>\n\n#\r\n")
    return SafeET.fromstring(reply[: -len("\n\n#\r\n")])


STEP_FILE_GB2312 = """<?xml version="1.0" encoding="GB2312"?>
<root>
  <config type="Step File" version="17" client_version="BTS Client 8.0.0.478(2024.06.24)(R3)" date="20250206105955">
    <Head_Info>
      <Operate Value="66" />
      <Scale Value="1" />
      <Start_Step Value="1" Hide_Ctrl_Step="0" />
      <Creator Value="测试" />
      <Remark Value="备注" />
      <RateType Value="105" />
      <MultCap Value="7200" />
    </Head_Info>
    <Whole_Prt>
      <Protect><Main><Volt><Upper Value="45000" /><Lower Value="25000" /></Volt><Delay_Time Value="5000" /></Main>
      </Protect>
      <Record><Main><Time Value="10000" /></Main></Record>
    </Whole_Prt>
    <Step_Info Num="{num}">
{steps}
    </Step_Info>
    <SMBUS><SMBUS_Info Num="0" AdjacentInterval="0" /></SMBUS>
  </config>
</root>
"""

# 7200 mA*s = 2 mAh; Rate 0.5 -> 1 mA (the file carries no Curr, only Rate, as BTS files in C-rate mode may)
STEPS_P = """      <Step1 Step_ID="1" Step_Type="4"><Limit><Main><Time Value="60000" /></Main></Limit></Step1>
      <Step2 Step_ID="2" Step_Type="7" Is_Select="1">
        <Record><Main><Time Value="30000" /><Curr Value="5" /></Main></Record>
        <Limit><Main><Rate Value="0.5" /><Volt Value="42000.000000" /><Stop_Rate Value="0.05" /></Main></Limit>
        <AdvancedPrt><CV_Chg><CurrRise Count="0" /></CV_Chg></AdvancedPrt>
      </Step2>
      <Step3 Step_ID="3" Step_Type="13" />
      <Step4 Step_ID="4" Step_Type="20"><Limit><Main><Curr Value="1" /><Volt Value="30000" /><Stop_Curr Value="0.1" />
        </Main></Limit></Step4>
      <Step5 Step_ID="5" Step_Type="5"><Limit><Other><Start_Step Value="2" /><Cycle_Count Value="2" /></Other></Limit>
      </Step5>
      <Step6 Step_ID="6" Step_Type="6"></Step6>"""


def write_file(tmp_path: Path, steps: str, num: int, name: str = "plan.xml", encoding: str = "gb2312") -> str:
    path = tmp_path / name
    path.write_bytes(STEP_FILE_GB2312.format(num=num, steps=steps).encode(encoding))
    return str(path)


@pytest.fixture
def sim() -> BtsSimulator:
    clock = VirtualClock()
    return BtsSimulator(devices=1, channels=4, clock=clock, model_factory=lambda key: LinearCell(q0=0.001))


def start(sim: BtsSimulator, path: str, chlids=(1,), barcode: str = "cell-A") -> list[str]:
    items = "".join(f'<start {CH.format(c)} barcode="{barcode}">{path}</start>' for c in chlids)
    root = parse(sim.handle(req(f'<cmd>start</cmd><list count="{len(chlids)}">{items}</list>'))[1])
    return [e.text for e in root.find("list")]


def status(sim: BtsSimulator, chlid: int = 1) -> str:
    body = f'<cmd>getchlstatus</cmd><list count="1"><status {CH.format(chlid)}>true</status></list>'
    return parse(sim.handle(req(body))[1]).find("list/status").text


def download(sim: BtsSimulator, startpos: int, count: int, testid: int = 0):
    body = (
        f'<cmd>download</cmd><download devtype="27" devid="21" subdevid="1" chlid="1" auxid="0" testid="{testid}" '
        f'startpos="{startpos}" count="{count}"/>'
    )
    return parse(sim.handle(req(body))[1])


def test_reply_envelope_is_the_real_servers() -> None:
    sim = BtsSimulator(devices=1, channels=2, clock=VirtualClock(), model_factory=lambda key: LinearCell())
    command, reply = sim.handle(req("<cmd>connect</cmd><username>x</username><password>y</password><type>bfgs</type>"))
    assert command == "connect"
    assert reply == (
        b'<?xml version="1.0" encoding="UTF-8"?>\r\n<bts version="1.0">\r\n  <cmd>connect_resp</cmd>\r\n'
        b"  <result>ok</result>\r\n</bts>\n\n#\r\n"
    )
    info = parse(sim.handle(req("<cmd>getdevinfo</cmd>"))[1])
    channels = info.findall("middle/channel")
    assert info.find("middle").get("count") == "2"
    assert [(c.get("devid"), c.get("subdevid"), c.get("Channelid"), c.get("chlid")) for c in channels] == [
        ("21", "1", "1", None),
        ("21", "1", "2", None),
    ]
    assert info.find("serverip/server").attrib == {"ip": "127.0.0.1", "port": "3306"}


def test_download_replies_use_the_hardware_misspelling(sim: BtsSimulator) -> None:
    assert download(sim, 0, 0).findtext("cmd") == "donwload_resp"
    body = '<cmd>downloadlog</cmd><download devtype="27" devid="21" subdevid="1" chlid="1" testid="0" log_lever="0"/>'
    assert parse(sim.handle(req(body))[1]).findtext("cmd") == "donwloadlog_resp"


def test_numbers_look_like_dotnet_doubles() -> None:
    assert dotnet(2.11492042581085e-05) == "2.11492042581085E-05"
    assert dotnet(3.6780698299408) == "3.6780698299408"
    assert dotnet(36070000.0) == "36070000"
    assert (rounded(3.88344), rounded(-0.00031), rounded(0.0), rounded(-0.00001)) == ("3.8834", "-0.0003", "0", "0")


def test_third_party_gb2312_file_with_rates_pause_cccv_discharge_and_loop(sim: BtsSimulator, tmp_path: Path) -> None:
    path = write_file(tmp_path, STEPS_P, 6)
    assert start(sim, path) == ["ok"]
    assert status(sim) == "working"
    clock: VirtualClock = sim.clock  # type: ignore[assignment]
    clock.advance(100_000)  # far beyond the first CCCV: the channel waits in the Pause step
    assert status(sim) == "pause"
    engine = sim.channel("21-1-1")
    # step 1 rest 60 s, step 2 CCCV at 0.5C of 2 mAh = 1 mA to 4.2 V, until 0.05C = 0.1 mA
    rows = engine.step_rows
    assert [(r.stepid, r.steptype, r.cycleid) for r in rows] == [(1, "rest", 1), (2, "cccv", 1)]
    assert rows[0].steptime == pytest.approx(60.0)
    assert rows[1].endcurr == pytest.approx(0.0001, rel=1e-3)
    assert rows[1].endvolt == pytest.approx(4.2, abs=1e-6)
    # LinearCell: q0 = 1 mAh of 2, so the CCCV adds the missing 1 mAh minus the 0.1 mA * R tail share
    assert rows[1].cap == pytest.approx(0.001 - 0.0001 * 10 / (1.2 / 0.002), rel=2e-3)
    body = f'<cmd>continue</cmd><list count="1"><continue {CH.format(1)}>true</continue></list>'
    assert parse(sim.handle(req(body))[1]).find("list/continue").text == "ok"
    clock.advance(1_000_000)
    assert status(sim) == "pause"  # the loop runs through the Pause step again in cycle 2
    assert parse(sim.handle(req(body))[1]).find("list/continue").text == "ok"
    clock.advance(1_000_000)
    assert status(sim) == "finish"
    assert [(r.stepid, r.steptype, r.cycleid) for r in engine.step_rows] == [
        (1, "rest", 1),
        (2, "cccv", 1),
        (4, "cccd", 1),
        (2, "cccv", 2),
        (4, "cccd", 2),
    ]


def test_start_refuses_missing_or_invalid_files_and_busy_channels(sim: BtsSimulator, tmp_path: Path) -> None:
    assert start(sim, str(tmp_path / "missing.xml")) == ["false"]
    bad_num = write_file(tmp_path, STEPS_P, 5, "bad.xml")
    assert start(sim, bad_num) == ["false"]
    assert "Num=5" in sim.last_start_errors["(21, 1, 1)"]
    good = write_file(tmp_path, STEPS_P, 6, "utf8.xml", encoding="utf-8")
    good_text = Path(good).read_text("utf-8").replace('encoding="GB2312"', 'encoding="UTF-8"')
    Path(good).write_text(good_text, "utf-8")
    assert start(sim, good) == ["ok"]
    assert start(sim, good) == ["false"]  # busy


def test_workstatus_transitions_and_acks(sim: BtsSimulator, tmp_path: Path) -> None:
    def ack(command: str, chlid: int = 1) -> str:
        body = f'<cmd>{command}</cmd><list count="1"><{command} {CH.format(chlid)}>true</{command}></list>'
        return parse(sim.handle(req(body))[1]).find(f"list/{command}").text

    assert status(sim) == "finish"
    assert ack("stop") == "false"  # stop on finish -> false (real capture)
    assert ack("clearflag") == "false"
    assert ack("continue") == "false"
    assert start(sim, write_file(tmp_path, STEPS_P, 6)) == ["ok"]
    assert ack("setpause") == "ok"
    assert status(sim) == "pause"
    assert ack("continue") == "ok"
    assert status(sim) == "working"
    assert ack("stop") == "ok"
    assert status(sim) == "stop"
    assert ack("stop") == "false"
    assert ack("light") == "ok"
    assert status(sim, 9) == "false"  # unknown channel


def test_inquire_values_working_then_finished(sim: BtsSimulator, tmp_path: Path) -> None:
    assert start(sim, write_file(tmp_path, STEPS_P, 6), barcode="B&amp;7") == ["ok"]
    sim.clock.advance(30.0)  # type: ignore[attr-defined]
    body = f'<cmd>inquire</cmd><list count="1"><inquire {CH.format(1)} aux="0" barcode="1">true</inquire></list>'
    live = parse(sim.handle(req(body))[1]).find("list/inquire").attrib
    assert live["dev"] == "27-21-1-1-0"
    assert (live["workstatus"], live["step_id"], live["step_type"], live["cycle_id"]) == ("working", "1", "rest", "1")
    assert live["barcode"] == "B&7"
    assert live["voltage"] == "3.6"  # LinearCell at half charge, resting
    assert (live["current"], live["relativetime"], live["log_code"]) == ("0", "30", "102000")
    sim.clock.advance(1e7)  # type: ignore[attr-defined]
    for _ in range(2):  # through the Pause step to the End
        sim.handle(req(f'<cmd>continue</cmd><list count="1"><continue {CH.format(1)}>true</continue></list>'))
        sim.clock.advance(1e7)  # type: ignore[attr-defined]
    done = parse(sim.handle(req(body))[1]).find("list/inquire").attrib
    assert (done["workstatus"], done["cycle_id"], done["step_type"], done["log_code"]) == ("finish", "1", "--", "0")
    assert "step_id" not in done and done["barcode"] == "B&7" and done["current"] == "0"


def test_download_pages_at_most_1000_and_resolves_testid(sim: BtsSimulator, tmp_path: Path) -> None:
    rest = '      <Step1 Step_ID="1" Step_Type="4"><Limit><Main><Time Value="250000000" /></Main></Limit></Step1>\n'
    path = write_file(tmp_path, rest + '      <Step2 Step_ID="2" Step_Type="6" />', 2)
    assert start(sim, path) == ["ok"]
    sim.clock.advance(30_000)  # type: ignore[attr-defined]  # 10 s records: 3001 of them
    echo = download(sim, 0, 0)
    assert echo.find("download").get("testid") == "1" and echo.find("list").get("count") == "0"
    page = download(sim, 1, 5000)
    rows = page.findall("list/data")
    assert len(rows) == 1000 and page.find("list").get("count") == "1000"
    assert [r.get("seqid") for r in rows[:2]] == ["1", "2"]
    assert rows[1].get("testtime") == "10000" and rows[1].get("atime") == "2025-01-01 00:00:10"
    tail = download(sim, 3001, 1000).findall("list/data")
    assert [(r.get("seqid"), r.get("testtime")) for r in tail] == [("3001", "30000000")]
    assert download(sim, 3002, 1000).find("list").get("count") == "0"
    assert download(sim, 1, 10, testid=7).find("list").get("count") == "0"  # another test's data is not there
    df = '<cmd>inquiredf</cmd><list count="1"><chl devtype="27" devid="21" subdevid="1" chlid="1" testid="0" /></list>'
    chl = parse(sim.handle(req(df))[1]).find("list/chl")
    assert (chl.get("count"), chl.get("testid"), chl.text) == ("3001", "1", "false")


def test_testids_are_shared_within_a_batch_and_increment(sim: BtsSimulator, tmp_path: Path) -> None:
    path = write_file(tmp_path, STEPS_P, 6)
    assert start(sim, path, chlids=(1, 2)) == ["ok", "ok"]
    assert start(sim, path, chlids=(3,)) == ["ok"]
    assert [sim.channel(f"21-1-{c}").testid for c in (1, 2, 3)] == [1, 1, 2]


def test_a_protection_limit_trips_the_channel(sim: BtsSimulator, tmp_path: Path) -> None:
    steps = (
        '      <Step1 Step_ID="1" Step_Type="1"><Limit><Main><Curr Value="1" /><Stop_Volt Value="46000" /></Main>'
        "</Limit></Step1>\n"
        '      <Step2 Step_ID="2" Step_Type="6" />'
    )
    assert start(sim, write_file(tmp_path, steps, 2)) == ["ok"]
    sim.clock.advance(1e6)  # type: ignore[attr-defined]
    assert status(sim) == "protect"  # Whole_Prt Volt Upper 4.5 V is reached before Stop_Volt 4.6 V
    engine = sim.channel("21-1-1")
    assert "protection limit" in engine.protect_reason and "4.5001" in engine.protect_reason
    assert engine.step_rows[-1].endvolt == pytest.approx(4.5001, abs=2e-4)
    ack = parse(
        sim.handle(req(f'<cmd>clearflag</cmd><list count="1"><clearflag {CH.format(1)}>true</clearflag></list>'))[1]
    )
    assert ack.find("list/clearflag").text == "ok"
    assert status(sim) == "stop"


def test_lenient_requests_over_a_real_socket(tmp_path: Path) -> None:
    with BtsSimulator(devices=1, channels=1, clock=VirtualClock(), model_factory=lambda key: LinearCell()) as sim:
        for terminator in ("#\r\n", "\r\n#\r\n", "\n\n#\r\n"):
            with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as conn:
                conn.sendall(req("\n  <cmd>connect</cmd>\n", terminator) * 2)  # two requests in one segment
                data = b""
                while data.count(b"</bts>\n\n#\r\n") < 2:
                    data += conn.recv(4096)
                assert data.count(b"<cmd>connect_resp</cmd>") == 2
        stray = f'<cmd>stop</cmd><list count="1"><stop {CH.format(1)}>true</stop></list>"'
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as conn:
            conn.sendall(req(stray))
            data = b""
            while not data.endswith(b"#\r\n"):
                data += conn.recv(4096)
        assert re.search(rb"<stop [^>]*>false</stop>", data)


def test_injected_faults_at_the_wire() -> None:
    with BtsSimulator(devices=1, channels=1, clock=VirtualClock(), model_factory=lambda key: LinearCell()) as sim:
        sim.inject(Fault("garble", command="getdevinfo"))
        sim.inject(Fault("cut", command="connect", skip=1))
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as conn:
            conn.sendall(req("<cmd>getdevinfo</cmd>"))
            data = b""
            while not data.endswith(b"#\r\n"):
                data += conn.recv(65536)
            with pytest.raises(SafeET.ParseError):
                SafeET.fromstring(data[: data.rindex(b"</bts>") + 6])
            conn.sendall(req("<cmd>connect</cmd>"))  # the first connect passes
            data = b""
            while not data.endswith(b"#\r\n"):
                data += conn.recv(65536)
            conn.sendall(req("<cmd>connect</cmd>"))  # the second is cut in the middle, then closed
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            assert len(data) > 0 and b"</bts>" not in data
        assert [kind for _, kind in sim.faults.applied] == ["garble", "cut"]


def test_device_level_broadcaststop_stops_every_channel_of_the_device(sim: BtsSimulator, tmp_path: Path) -> None:
    assert start(sim, write_file(tmp_path, STEPS_P, 6), chlids=(1, 2)) == ["ok", "ok"]
    body = '<cmd>broadcaststop</cmd><list count="1"><stop ip="127.0.0.1" devtype="27" devid="21">true</stop></list>'
    reply = parse(sim.handle(req(body))[1])
    assert reply.findtext("cmd") == "broadcaststop_resp" and reply.find("list/stop").text == "ok"
    assert [status(sim, c) for c in (1, 2, 3)] == ["stop", "stop", "finish"]
    unknown = parse(sim.handle(req("<cmd>getparallel</cmd>"))[1])
    assert (unknown.findtext("cmd"), unknown.findtext("result")) == ("getparallel_resp", "false")


UNICYCLER_STYLE = """<?xml version="1.0" ?>
<root>
\t<config type="Step File" version="17" client_version="BTS Client 8.0.0.478(2024.06.24)(R3)" date="20250101">
\t\t<Head_Info>
\t\t\t<Operate Value="66"/>
\t\t\t<Start_Step Value="1" Hide_Ctrl_Step="0"/>
\t\t\t<RateType Value="103"/>
\t\t\t<MultCap Value="8127.000000"/>
\t\t</Head_Info>
\t\t<Whole_Prt>
\t\t\t<Protect>
\t\t\t\t<Main>
\t\t\t\t\t<Volt><Upper Value="44000.000000"/><Lower Value="25000.000000"/></Volt>
\t\t\t\t\t<Curr/>
\t\t\t\t</Main>
\t\t\t</Protect>
\t\t\t<Record><Main><Time Value="60000.000000"/></Main></Record>
\t\t</Whole_Prt>
\t\t<Step_Info Num="8">
\t\t\t<Step1 Step_ID="1" Step_Type="4"><Limit><Main><Time Value="600000.000000"/></Main></Limit></Step1>
\t\t\t<Step2 Step_ID="2" Step_Type="7"><Limit><Main><Curr Value="0.451500"/><Volt Value="43000.000000"/>
\t\t\t\t<Stop_Curr Value="0.112875"/></Main></Limit></Step2>
\t\t\t<Step3 Step_ID="3" Step_Type="21"><Limit><Main><Time Value="1000"/></Main></Limit></Step3>
\t\t\t<Step4 Step_ID="4" Step_Type="20"><Limit><Main><Curr Value="1.128750"/><Volt Value="30000.000000"/>
\t\t\t\t<Stop_Curr Value="0.112875"/></Main></Limit></Step4>
\t\t\t<Step5 Step_ID="5" Step_Type="25"><Limit><Main><Time Value="9000000.000000"/></Main></Limit>
\t\t\t\t<Slope SlopeType="1" Cycle_Count="1" ItemCount="1"><Slope1 StartValue="30000" EndValue="36000" Value="0.1"/>
\t\t\t\t</Slope></Step5>
\t\t\t<Step6 Step_ID="6" Step_Type="19"><Limit><Main><Curr Value="1"/><Volt Value="36000"/><Stop_Curr Value="0.05"/>
\t\t\t\t<Time Value="3600000"/></Main></Limit></Step6>
\t\t\t<Step7 Step_ID="7" Step_Type="5"><Limit><Other><Start_Step Value="2"/><Cycle_Count Value="2"/></Other>
\t\t\t\t</Limit></Step7>
\t\t\t<Step8 Step_ID="8" Step_Type="6"/>
\t\t</Step_Info>
\t</config>
</root>
"""


def test_a_third_party_file_runs_on_the_real_full_cell_model(tmp_path: Path) -> None:
    from simulators.cells import build_model

    sim = BtsSimulator(
        devices=1,
        channels=1,
        clock=VirtualClock(),
        model_factory=lambda key: build_model("ncm622-li", area=1.131e-4, capacity=0.0022575, seed=3),
    )
    path = tmp_path / "unicycler.xml"
    path.write_text(UNICYCLER_STYLE, "utf-8")
    assert start(sim, str(path)) == ["ok"]
    sim.clock.advance(1e7)  # type: ignore[attr-defined]
    assert status(sim) == "finish", sim.channel("21-1-1").protect_reason
    rows = sim.channel("21-1-1").step_rows
    # the Control step (3) holds no current for its 1 s (Limit/Main/Time) and is recorded as "control"
    assert [(r.stepid, r.steptype) for r in rows] == [
        (1, "rest"),
        (2, "cccv"),
        (3, "control"),
        (4, "cccd"),
        (5, "ramp"),
        (6, "dv"),
        (2, "cccv"),
        (3, "control"),
        (4, "cccd"),
        (5, "ramp"),
        (6, "dv"),
    ]
    assert rows[2].steptime == pytest.approx(1.0) and rows[2].endcurr == 0.0
    cccv, cccd, ramp = rows[1], rows[3], rows[4]
    assert (cccv.endvolt, cccv.endcurr) == (pytest.approx(4.3, abs=1e-3), pytest.approx(0.000112875, rel=1e-3))
    assert (cccd.endvolt, cccd.endcurr) == (pytest.approx(3.0, abs=1e-3), pytest.approx(-0.000112875, rel=1e-3))
    assert ramp.steptime == pytest.approx(6000.0, rel=1e-6)  # 0.6 V at 0.1 mV/s
    assert ramp.endvolt == pytest.approx(3.6, abs=1e-3)


def test_a_cell_can_be_inserted_into_an_idle_channel_only(sim: BtsSimulator, tmp_path: Path) -> None:
    special = LinearCell(q0=0.0015)
    sim.insert_cell("21-1-2", special)
    assert sim.channel("21-1-2").model is special
    assert start(sim, write_file(tmp_path, STEPS_P, 6), chlids=(2,)) == ["ok"]
    # the first record is at step time 0: released with the start itself
    assert sim.channel("21-1-2").step_rows == [] and sim.channel("21-1-2").records.count == 1
    sim.clock.advance(0.1)
    assert status(sim, 2) == "working" and sim.channel("21-1-2").records.count == 1
    assert sim.channel("21-1-2").records.last("volt") == pytest.approx(3.9)  # 3.0 + 1.2 * 1.5/2, at rest
    with pytest.raises(RuntimeError, match="21-1-2 is working; stop it before changing its cell"):
        sim.insert_cell("21-1-2", LinearCell())
