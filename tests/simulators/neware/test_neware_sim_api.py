"""The simulated BTS's API on its own: request bytes in, reply bytes out, on injected clocks, with no socket,
thread or event loop; held to the reference's captures by requests written out by hand (not by the driver)."""

from __future__ import annotations

import threading
from pathlib import Path

import defusedxml.ElementTree as SafeET

from protocols.clock import VirtualClock
from simulators.neware.api import BtsApi
from simulators.neware.stepfile import parse_step_file
from tests.fakes.standin_cell import LinearCell

HEAD = '<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">'
CH = 'ip="127.0.0.1" devtype="27" devid="21" subdevid="1" chlid="{}"'
STEP_FILE = (
    '<?xml version="1.0" encoding="UTF-8"?><root><config type="Step File"><Head_Info><Start_Step Value="1" />'
    '</Head_Info><Whole_Prt><Record><Main><Time Value="10000" /></Main></Record></Whole_Prt><Step_Info Num="2">'
    '<Step1 Step_ID="1" Step_Type="1"><Limit><Main><Curr Value="1" /><Time Value="60000" /></Main></Limit></Step1>'
    '<Step2 Step_ID="2" Step_Type="6" /></Step_Info></config></root>'
)


def ask(api: BtsApi, body: str, terminator: str = "\n\n#\r\n"):
    command, reply = api.handle((HEAD + body + "</bts>" + terminator).encode())
    assert reply.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\r\n<bts version="1.0">\r\n  <cmd>')
    assert reply.endswith(b"\r\n</bts>\n\n#\r\n")  # CRLF lines, then the trailer (reference 1.4)
    return command, SafeET.fromstring(reply[: -len("\n\n#\r\n")])


def test_the_api_answers_without_a_server_and_reads_step_files_only_through_its_reader(tmp_path: Path) -> None:
    clock = VirtualClock()
    read: list[str] = []

    def reader(path: str):  # type: ignore[no-untyped-def]
        read.append(path)
        return parse_step_file(STEP_FILE)

    threads = threading.active_count()
    api = BtsApi(devices=1, channels=2, clock=clock, model_factory=lambda key: LinearCell(), read_step_file=reader)
    start = f'<cmd>start</cmd><list count="1"><start {CH.format(1)} barcode="b">X:\\nowhere.xml</start></list>'
    command, root = ask(api, start, "#\r\n")  # the terminator VG-CL sends (reference 1.3)
    assert (command, root.findtext("cmd"), root.find("list/start").text) == ("start", "start_resp", "ok")
    assert read == ["X:\\nowhere.xml"]  # the only outside thing it touched, through the injected reader
    clock.advance(30.0)
    inquire = f'<cmd>inquire</cmd><list count="1"><inquire {CH.format(1)} aux="0" barcode="1">true</inquire></list>'
    live = ask(api, inquire, "\r\n#\r\n")[1].find("list/inquire").attrib
    assert (live["dev"], live["workstatus"], live["step_id"]) == ("27-21-1-1-0", "working", "1")
    assert live["step_type"] == "cc"
    assert (live["current"], live["relativetime"], live["barcode"]) == ("0.001", "30", "b")
    download = ('<cmd>download</cmd><download devtype="27" devid="21" subdevid="1" chlid="1" auxid="0" testid="0" '
                'startpos="1" count="1000" />')
    _, page = ask(api, download)
    assert page.findtext("cmd") == "donwload_resp"  # the hardware's spelling (reference 1.5)
    assert [d.get("testtime") for d in page.findall("list/data")] == ["0", "10000", "20000", "30000"]
    assert threading.active_count() == threads  # no thread, no loop: the caller's clock drives everything


def test_a_finished_channel_reads_like_the_real_capture() -> None:
    api = BtsApi(devices=1, channels=1, clock=VirtualClock(), model_factory=lambda key: LinearCell(q0=0.001))
    inquire = f'<cmd>inquire</cmd><list count="1"><inquire {CH.format(1)} aux="0" barcode="1">true</inquire></list>'
    live = ask(api, inquire)[1].find("list/inquire").attrib
    # reference 2.4, finished channel: cycle_id 1, no step_id, step_type "--", zeros, log_code 0
    assert "step_id" not in live
    assert (live["cycle_id"], live["step_type"], live["workstatus"], live["current"], live["log_code"]) == (
        "1", "--", "finish", "0", "0")
    status = f'<cmd>getchlstatus</cmd><list count="1"><status {CH.format(1)}>true</status></list>'
    assert ask(api, status)[1].find("list/status").get("reservepause") == "1"  # as BTS 8.0 sends it


def test_unparseable_and_unknown_requests_get_a_false_result() -> None:
    api = BtsApi(devices=1, channels=1, clock=VirtualClock(), model_factory=lambda key: LinearCell())
    command, reply = api.handle(b"<bts><cmd>getdev")
    assert command == "" and b"<result>false</result>" in reply
    assert ask(api, "<cmd>getparallel</cmd>")[1].findtext("result") == "false"


def test_hooks_let_a_server_see_requests_and_changes() -> None:
    api = BtsApi(devices=1, channels=1, clock=VirtualClock(), model_factory=lambda key: LinearCell(),
                 read_step_file=lambda path: parse_step_file(STEP_FILE))
    seen: list[str] = []

    class Serving:
        def __enter__(self) -> None:
            seen.append("serving")

        def __exit__(self, *exc: object) -> None:
            seen.append("served")

    api.serving = Serving
    api.on_change = lambda: seen.append("changed")
    ask(api, f'<cmd>start</cmd><list count="1"><start {CH.format(1)} barcode="b">p.xml</start></list>')
    assert seen == ["serving", "changed", "served"]
