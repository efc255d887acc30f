"""serve(): the simulated BTS as a service, in a thread of this process and as its own process."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import defusedxml.ElementTree as SafeET

from simulators.neware import BtsSimulator, serve
from tests.processes import interrupt, popen

REQUEST = b'<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0"><cmd>getdevinfo</cmd></bts>\n\n#\r\n'
INQUIRE = (
    b'<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0"><cmd>inquire</cmd><list count="1">'
    b'<inquire ip="127.0.0.1" devtype="27" devid="22" subdevid="2" chlid="3" aux="0" barcode="1">true</inquire>'
    b"</list></bts>#\r\n"
)


def ask(port: int, request: bytes):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while not data.endswith(b"</bts>\n\n#\r\n"):
            chunk = conn.recv(65536)
            assert chunk, "the server closed the connection"
            data += chunk
    return SafeET.fromstring(data[: -len("\n\n#\r\n")])


def test_serve_in_a_thread_with_the_library_cells() -> None:
    ready: list[BtsSimulator] = []
    event = threading.Event()

    def on_ready(sim: BtsSimulator) -> None:
        ready.append(sim)
        event.set()

    thread = threading.Thread(
        target=serve,
        kwargs={
            "port": 0,
            "devices": 2,
            "subdevices": 2,
            "channels": 4,
            "cell": "ncm622-li",
            "cell_options": {"capacity": 0.0022575},
            "on_ready": on_ready,
        },
        daemon=True,
    )
    thread.start()
    assert event.wait(30)
    sim = ready[0]
    assert sim.host == "127.0.0.1"
    info = ask(sim.port, REQUEST)
    channels = info.findall("middle/channel")
    assert len(channels) == 16
    assert {(c.get("devid"), c.get("subdevid")) for c in channels} == {
        ("21", "1"),
        ("21", "2"),
        ("22", "1"),
        ("22", "2"),
    }
    live = ask(sim.port, INQUIRE).find("list/inquire").attrib
    assert (live["dev"], live["workstatus"], live["step_type"]) == ("27-22-2-3-0", "finish", "--")
    assert 2.5 < float(live["voltage"]) < 4.4  # the cell model's OCV
    sim.stop()
    thread.join(10)
    assert not thread.is_alive()


def test_serve_as_its_own_process_until_interrupted() -> None:
    root = Path(__file__).parents[3]
    proc = popen(
        [sys.executable, "-m", "simulators.neware", "--port", "0", "--channels", "2", "--speed", "3600"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("simulated BTS on 127.0.0.1:") and line.strip().endswith("(2 channels)")
        port = int(line.split(":")[1].split()[0])
        assert len(ask(port, REQUEST).findall("middle/channel")) == 2
    finally:
        assert interrupt(proc) == 0
