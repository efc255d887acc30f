"""Run state matches the instrument, end to end: the station CLI (in-process and as real processes), the Neware
driver and the simulated BTS on loopback. Each test first reproduces a case where the station used to believe
something the instrument did not: a kill in the start window, a stop that never arrived, a BTS that lost its
state, a refused run that stopped someone else's test.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivers.neware.address import ChannelAddress
from drivers.neware.channel import open_client
from protocols.cells import load_cell
from protocols.clock import ScaledClock
from protocols.loader import load_protocol
from simulators.neware import BtsSimulator
from station.api.tokens import owner_name
from station.cli import app
from station.config import load_config
from station.session import Station
from station.store import Store
from tests.processes import CHILD_ENV, popen

from .fakes import assert_test_times

runner = CliRunner()
CELL = "predeposited-ncm622"
PROTOCOL = """
protocol: truth-test
record: {every: 10 s}
steps:
  - rest: 10 min
  - Charge at 0.5C until 4.2 V
  - Discharge at 0.5C until 3.0 V
"""
ENV = CHILD_ENV


def _sim_options() -> dict:
    cell = load_cell(CELL)
    options: dict = {"params": dict(cell.model_params)}
    for key in ("area", "capacity", "thickness"):
        if getattr(cell, key) is not None:
            options[key] = getattr(cell, key)
    return {"cell": cell.model_type, "cell_options": options}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp_path: Path, port: int, data: str = "data") -> Path:
    cfg = tmp_path / f"station-{data}.yaml"
    cfg.write_text(textwrap.dedent(f"""
        data_dir: {tmp_path / data}
        poll_interval: 0.05 s
        instruments:
          - name: bts
            kind: neware
            address: 127.0.0.1:{port}
            timeout: 5 s
            reconnect_attempts: 1
            channels: [{{id: 21-1-1, voltage: [0 V, 5 V], current: 10 mA}},
                       {{id: 21-1-2, voltage: [0 V, 5 V], current: 10 mA}}]
        """))
    return cfg


class Link:
    """A TCP proxy in front of the simulated BTS that the test can unplug and plug back, like a network cable:
    unplugged, open connections are cut and new ones are closed at once, so nothing reaches the BTS."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def unplug(self) -> None:
        self.up = False
        with self.lock:
            for s in self.open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.open.clear()

    def plug(self) -> None:
        self.up = True

    def close(self) -> None:
        self.unplug()
        self.listener.close()


@pytest.fixture
def sim():
    """A simulated BTS in this process, an hour per second: the test can inject faults and read its channels."""
    simulator = BtsSimulator(port=0, channels=2, clock=ScaledClock(3600.0), **_sim_options()).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def link(sim):
    proxy = Link(sim.port)
    yield proxy
    proxy.close()


@pytest.fixture
def protocol_file(tmp_path) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(PROTOCOL)
    return path


def _launch(cfg: Path, protocol_file: Path, channel: str = "bts/21-1-1") -> str:
    """Start a run as a station that then goes away (its process ends; the test keeps running on the BTS)."""
    station = Station.open(load_config(str(cfg))[0])
    try:
        run_id = station.launch(load_protocol(str(protocol_file)), load_cell(CELL), channel)
        station.manager.poll(run_id)
    finally:
        station.close()
    return run_id


def _cli(cfg: Path, *args: str):
    return runner.invoke(app, [*args, "--config", str(cfg)])


def _station_process(cfg: Path, *args: str, patch: str = "") -> subprocess.Popen:
    """`station ARGS` as a real process; ``patch`` is Python run before the CLI (to place a kill point)."""
    code = f"import os, signal, sys\n{patch}\nfrom station.cli import app\nsys.argv = ['station', *sys.argv[1:]]\napp()"
    return popen([sys.executable, "-c", code, *args, "--config", str(cfg)], stderr=subprocess.PIPE,
                 stdout=subprocess.PIPE, text=True, env=ENV)


KILL_AFTER_START = """
from station.runs import RunManager
def _killed(self, *args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # start reached the BTS; the handle is never stored
RunManager._record_started = _killed
"""

KILL_BEFORE_START = """
from drivers.neware.channel import NewareChannel
def _killed(self, *args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # the intent is stored; start never leaves the PC
NewareChannel.start = _killed
"""


def _killed_in_start_window(cfg: Path, protocol_file: Path, patch: str) -> str:
    proc = _station_process(cfg, "run", str(protocol_file), "--cell", CELL, "--channel", "bts/21-1-1", patch=patch)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    (row,) = Store(cfg.parent / "data").runs()
    assert (row.state, row.handle) == ("starting", None)
    return row.id


# -- 1. SIGKILL between the validated write and the handle write -----------------------------------------------

def test_a_station_killed_after_the_bts_accepted_start_is_reconciled_and_watched(tmp_path, sim, protocol_file,
                                                                                 processes):
    cfg = _config(tmp_path, sim.port)
    run_id = _killed_in_start_window(cfg, protocol_file, KILL_AFTER_START)
    assert sim.channel("21-1-1").workstatus == "working"  # the BTS cycles the cell; nobody watched it before
    busy = _cli(cfg, "run", str(protocol_file), "--cell", CELL, "--channel", "bts/21-1-1")
    assert busy.exit_code == 2 and f"already has run {run_id} (started)" in busy.stderr  # adopted, not free
    status = _cli(cfg, "status", run_id)
    assert status.exit_code == 0 and f"run {run_id}: started on bts/21-1-1" in status.stdout
    attach = _station_process(cfg, "attach", run_id)
    processes.append(attach)
    _, stderr = attach.communicate(timeout=120)
    assert attach.returncode == 0, stderr
    store = Store(tmp_path / "data")
    row = store.run(run_id)
    assert row.state == "finished" and row.handle["barcode"] == run_id
    rec = store.records(run_id)
    assert list(rec["seq"]) == list(range(1, len(rec) + 1)) and len(rec) == sim.channel("21-1-1").last_seqid
    assert_test_times(rec)  # non-decreasing; equal only where a step starts
    assert any("reconciled: the instrument runs test" in e.message for e in store.events(run_id))


def test_a_station_killed_before_start_left_the_pc_marks_the_run_failed_and_frees_the_channel(
        tmp_path, sim, protocol_file):
    cfg = _config(tmp_path, sim.port)
    run_id = _killed_in_start_window(cfg, protocol_file, KILL_BEFORE_START)
    status = _cli(cfg, "status")
    assert f"run {run_id}: never started on the instrument; marked failed" in status.stderr
    assert Store(tmp_path / "data").run(run_id).state == "failed"
    assert sim.channel("21-1-1").workstatus != "working"
    again = _cli(cfg, "stop", run_id)
    assert again.exit_code == 2 and "is failed; there is nothing to stop" in again.stderr
    new_run = _launch(cfg, protocol_file)
    assert Store(tmp_path / "data").run(new_run).state == "running"


# -- 2. a stop with the BTS unreachable, then the link back -----------------------------------------------------

@pytest.mark.parametrize("back_with", ["stop", "attach", "status"])
def test_a_stop_that_did_not_reach_the_bts_stays_pending_until_the_bts_confirms(tmp_path, sim, link,
                                                                               protocol_file, back_with):
    cfg = _config(tmp_path, link.port)
    run_id = _launch(cfg, protocol_file)
    link.unplug()  # the BTS PC drops off the network
    result = _cli(cfg, "stop", run_id)
    assert result.exit_code == 4
    assert f"run {run_id}: could not reach channel bts/21-1-1" in result.stderr
    assert "the cell may still be running" in result.stderr
    row = Store(tmp_path / "data").run(run_id)
    why = f"stopped by the operator (by {owner_name()})"  # the account that typed `station stop`
    assert row.state == "running" and row.stop_requested == why
    assert sim.channel("21-1-1").workstatus == "working"
    link.plug()
    result = _cli(cfg, back_with, run_id)
    expected = {"stop": 0, "attach": 3, "status": 0}[back_with]
    assert result.exit_code == expected, result.output
    assert sim.channel("21-1-1").workstatus == "stop"
    row = Store(tmp_path / "data").run(run_id)
    assert (row.state, row.message, row.stop_requested) == ("stopped", why, None)


def test_ctrl_c_stop_keeps_retrying_until_the_bts_confirms(tmp_path, sim, link, protocol_file, processes):
    cfg = _config(tmp_path, link.port)
    proc = _station_process(cfg, "run", str(protocol_file), "--cell", CELL, "--channel", "bts/21-1-1")
    processes.append(proc)
    assert proc.stderr is not None
    for line in proc.stderr:
        if " records " in line and int(line.split("records ")[1].split()[0]) > 5:
            break
    link.unplug()
    proc.send_signal(signal.SIGINT)
    for line in proc.stderr:
        if "could not stop channel bts/21-1-1" in line:
            assert "the cell may still be running" in line
            break
    assert sim.channel("21-1-1").workstatus == "working"
    link.plug()
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130, rest
    assert "stopped; the instrument confirmed the channel is in a safe state" in rest
    assert sim.channel("21-1-1").workstatus == "stop"
    (row,) = Store(tmp_path / "data").runs()
    assert row.state == "stopped" and row.contact_lost_at is None


# -- 3. the simulated BTS restarted with its state cleared --------------------------------------------------------

def test_a_bts_that_forgot_the_test_fails_the_run_and_keeps_every_record(tmp_path, protocol_file):
    port = _free_port()
    first = BtsSimulator(port=port, channels=2, clock=ScaledClock(3600.0), **_sim_options()).start()
    cfg = _config(tmp_path, port)
    try:
        run_id = _launch(cfg, protocol_file)
        stored = Store(tmp_path / "data").run(run_id).last_seq
    finally:
        first.stop()  # the BTS PC restarts with its state lost
    second = BtsSimulator(port=port, channels=2, clock=ScaledClock(3600.0), **_sim_options()).start()
    try:
        result = _cli(cfg, "attach", run_id)
    finally:
        second.stop()
    assert result.exit_code == 3, result.output
    assert "the instrument no longer holds test 1: channel 21-1-1 now holds no test" in result.stderr
    store = Store(tmp_path / "data")
    row = store.run(run_id)
    assert row.state == "failed" and row.message.startswith("the instrument no longer holds test 1")
    assert row.last_seq == stored and len(store.records(run_id)) == stored
    assert any(e.kind == "alarm" and "no longer holds test 1" in e.message for e in store.events(run_id))


def test_a_supervised_run_whose_bts_forgot_the_test_fails_at_the_next_poll(tmp_path, protocol_file):
    port = _free_port()
    first = BtsSimulator(port=port, channels=2, clock=ScaledClock(3600.0), **_sim_options()).start()
    cfg = _config(tmp_path, port)
    station = Station.open(load_config(str(cfg))[0])
    try:
        run_id = station.launch(load_protocol(str(protocol_file)), load_cell(CELL), "bts/21-1-1")
        station.manager.poll(run_id)
        first.stop()
        second = BtsSimulator(port=port, channels=2, clock=ScaledClock(3600.0), **_sim_options()).start()
        try:  # the old connection is dead: the transport reconnects at once (reconnect_attempts is 1 here)
            progress = station.manager.poll(run_id)
        finally:
            second.stop()
    finally:
        station.close()
    assert progress.state == "failed"
    assert Store(tmp_path / "data").run(run_id).message == ("the instrument no longer holds test 1: channel "
                                                            "21-1-1 now holds no test")


# -- 8. a refused second run from another data directory -----------------------------------------------------------

def test_a_run_refused_because_the_channel_is_busy_leaves_the_running_test_alone(tmp_path, sim, protocol_file):
    first = _launch(_config(tmp_path, sim.port, "data-a"), protocol_file)
    other = _cli(_config(tmp_path, sim.port, "data-b"), "run", str(protocol_file), "--cell", CELL, "--channel",
                 "bts/21-1-1")
    assert other.exit_code == 2 and "stop the running test first" in other.stderr
    engine = sim.channel("21-1-1")
    assert engine.workstatus == "working" and engine.barcode == first  # not stopped by the refusal
    (refused,) = Store(tmp_path / "data-b").runs()
    assert refused.state == "failed" and "start refused" in refused.message


def test_a_test_started_from_the_bts_client_is_not_stopped_by_a_refused_run(tmp_path, sim, protocol_file):
    client = open_client("127.0.0.1", sim.port)
    try:  # someone starts a test by hand: the station's own step file will do as theirs
        station = Station.open(load_config(str(_config(tmp_path, sim.port, "hand")))[0])
        try:
            driver = station.instruments.driver("bts/21-1-2")
            driver.start(load_protocol(str(protocol_file)).bind(load_cell(CELL)), "by-hand")
        finally:
            station.close()
        result = _cli(_config(tmp_path, sim.port), "run", str(protocol_file), "--cell", CELL, "--channel",
                      "bts/21-1-2")
        assert result.exit_code == 2 and "stop the running test first" in result.stderr
        (live,) = client.inquire([ChannelAddress.parse("21-1-2")])
        assert (live.workstatus, live.barcode) == ("working", "by-hand")
    finally:
        client.transport.close()


# -- 10. abandoning a run whose test is gone ---------------------------------------------------------------------

def test_stop_force_is_refused_while_the_bts_runs_the_test(tmp_path, sim, protocol_file):
    cfg = _config(tmp_path, sim.port)
    run_id = _launch(cfg, protocol_file)
    refused = _cli(cfg, "stop", run_id, "--force")
    assert refused.exit_code == 2 and "the instrument still runs test 1" in refused.stderr
    assert Store(tmp_path / "data").run(run_id).state == "running"


def test_a_killed_dry_run_is_marked_failed_and_frees_its_simulated_channel(tmp_path, processes):
    proc = subprocess.Popen([sys.executable, "-m", "station", "run", "p3-full-cell-cycling", "--cell", CELL,
                             "--set", "cycles=1000", "--dry-run", "--data-dir", str(tmp_path)],
                            stderr=subprocess.PIPE, text=True, env=ENV)
    processes.append(proc)
    assert proc.stderr is not None
    run_id = next(line for line in proc.stderr if line.startswith("run ")).split()[1]  # "run ID started on ..."
    proc.kill()
    proc.wait(timeout=30)
    assert Store(tmp_path).run(run_id).state == "running"  # what the dead process left behind
    status = runner.invoke(app, ["status", "--data-dir", str(tmp_path)])
    assert f"run {run_id}: a dry run whose process ended; marked failed" in status.stderr
    row = Store(tmp_path).run(run_id)
    assert row.state == "failed" and row.message.startswith("dry run interrupted")


def test_the_barcode_is_the_sample_id_and_a_samples_runs_are_told_apart_by_the_test_before_start(
        tmp_path, sim, protocol_file, processes):
    """A sample's runs all carry its id as the BTS barcode (what a lab prints on the cell). A station killed before
    its start left the PC must not mistake the sample's previous test, which still shows that barcode, for the new
    one; one killed after the BTS accepted start adopts the new test."""
    cfg = _config(tmp_path, sim.port)
    made = _cli(cfg, "sample", "new", "--cell", CELL, "--json")
    sample = json.loads(made.stdout)["sample_id"]
    first = _cli(cfg, "run", str(protocol_file), "--sample", sample, "--channel", "bts/21-1-1", "--json")
    assert first.exit_code == 0, first.output
    first_id = json.loads(first.stdout)["run_id"]
    store = Store(tmp_path / "data")
    assert store.run(first_id).handle["barcode"] == sample and store.run(first_id).handle["test_id"] == "1"
    assert sim.channel("21-1-1").barcode == sample  # what the BTS Client shows beside the channel

    def killed(patch: str) -> str:
        proc = _station_process(cfg, "run", str(protocol_file), "--sample", sample, "--channel", "bts/21-1-1",
                                patch=patch)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        return max(store.runs(), key=lambda r: r.created_at).id

    never = killed(KILL_BEFORE_START)
    status = _cli(cfg, "status")
    assert f"run {never}: never started on the instrument; marked failed" in status.stderr
    assert store.run(never).message == (f"never started: channel bts/21-1-1 holds no test with barcode {sample} "
                                        f"newer than the marker taken before start; start a new run")

    adopted = killed(KILL_AFTER_START)
    attach = _station_process(cfg, "attach", adopted)
    processes.append(attach)
    _, stderr = attach.communicate(timeout=120)
    assert attach.returncode == 0, stderr
    row = store.run(adopted)
    assert (row.state, row.handle["barcode"], row.handle["test_id"]) == ("finished", sample, "2")
    assert [r.id for r in store.runs_of_sample(sample)] == [first_id, never, adopted]
