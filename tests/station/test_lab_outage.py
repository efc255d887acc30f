"""A station with a lab database that goes away (issue 17): the station keeps supervising in its own store, says
it is buffering, survives a restart while buffering, and forwards everything, once, when the database returns."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from protocols.clock import VirtualClock
from station.lab import RETRY_S, LabLink
from station.store import RECORD_DTYPE, ChannelOwned, SampleRow, Store, StoreError, UnknownSample
from tests.postgres import PostgresForTests
from tests.processes import popen, wait_for
from tests.station.sim_bts import ENV, LONG, start_sim, write_config

RUN = dict(instrument={"kind": "bts"}, protocol_name="p", protocol_file=None, protocol_source="steps: []",
           parameters={}, program="{}", cell={}, dry_run=False)


@pytest.fixture
def own_postgres():
    """A PostgreSQL of this test's own, which it may stop and start."""
    server = PostgresForTests()
    yield server
    server.close()


def records(first: int, n: int) -> np.ndarray:
    block = np.zeros(n, dtype=RECORD_DTYPE)
    block["seq"] = np.arange(first, first + n)
    block["voltage"] = 3.7
    block["frequency"] = block["z_real"] = block["z_imag"] = np.nan
    return block


def test_a_lab_database_that_goes_away_is_buffered_and_caught_up_within_a_budget_per_round(tmp_path, own_postgres):
    url, clock = own_postgres.fresh(), VirtualClock()
    local = Store(tmp_path, local=True, station="lab-a")
    lab = LabLink(url, "lab-a", local, clock)
    local.create_run(run_id="r1", at=1.0, channel="bts/1", **RUN)
    local.append_records("r1", records(1, 100))
    assert lab.forward().records == 100 and lab.state().buffering_since is None
    lab.claim("bts/1", 2.0)

    own_postgres.stop()
    for first in range(101, 20_101, 1000):  # the station goes on storing its records
        local.append_records("r1", records(first, 1000))
    assert lab.forward() is None
    down = lab.state()
    assert down.buffering_since == clock.unix() and not down.connected and "cannot reach the database" in down.why
    lab.claim("bts/1", 3.0)  # its own channel: no database needed
    with pytest.raises(StoreError, match=r"^cannot reach the lab's database \S+ to claim channel bts/2 for station "
                                         r"lab-a \(.*\); start on a channel this station has used before, or once "
                                         r"the database is back$"):
        lab.claim("bts/2", 3.0)
    with pytest.raises(UnknownSample, match=r"^no sample 'S9' on this station, and the lab's database \S+ cannot be "
                                            r"reached to look it up"):
        lab.sample("S9")

    own_postgres.start()
    assert lab.forward() is None  # tried again only after RETRY_S of the station's clock
    clock.advance(RETRY_S)
    first = lab.forward(budget_bytes=5000 * RECORD_DTYPE.itemsize)  # a long backlog: a slice per round
    assert first.records == 5000 and lab.state().backlog and lab.state().buffering_since is not None
    rest = lab.forward(budget_bytes=None)
    assert rest.records == 15_000 and not lab.state().backlog and lab.state().buffering_since is None
    central = Store(tmp_path, url)
    assert central.records("r1")["seq"].tolist() == list(range(1, 20_101))  # each record once, in order
    assert central.run("r1").last_seq == 20_100


def test_a_channel_another_station_owns_is_refused_and_the_lab_s_samples_are_found(tmp_path, postgres):
    url = postgres.fresh()
    central = Store(tmp_path / "b", url, station="lab-b")
    central.create_sample(SampleRow(id="S1", name="coin", created_at=1.0, cell={"area": 1.131e-4}))
    central.claim_channels(["bts/1"], 1.0)
    local = Store(tmp_path / "a", local=True, station="lab-a")
    lab = LabLink(url, "lab-a", local, VirtualClock())
    with pytest.raises(ChannelOwned):
        lab.claim("bts/1", 2.0)
    assert lab.claim_all(["bts/1", "bts/2"], 2.0) == {"bts/1": "lab-b"}
    assert local.channel_owners() == {"bts/2": "lab-a"}  # what this station owns, remembered here
    assert lab.sample("S1").cell == {"area": 1.131e-4} and local.sample("S1").name == "coin"  # copied here


def test_a_station_keeps_supervising_through_an_outage_and_a_restart_and_forwards_everything_once(
        tmp_path, own_postgres, processes):
    url = own_postgres.fresh()
    # 1200x: the 100 h rest lasts 5 min, well beyond the outage and the restart on a loaded machine
    cfg = write_config(tmp_path / "station.yaml", start_sim(processes, channels=1, speed=1200),
                       extra=f"station: lab-a\ndatabase: {url}\n")
    data = tmp_path / "data"
    (tmp_path / "long.yaml").write_text(LONG)

    def serve(log_name: str) -> subprocess.Popen:
        log = (tmp_path / log_name).open("w")
        proc = popen([sys.executable, "-m", "station", "serve", "--config", str(cfg), "--port", "0", "--rescan",
                      "0.3"], stderr=log, text=True, env=ENV)
        processes.append(proc)
        wait_for(lambda: "serving " in (tmp_path / log_name).read_text(), what="the service")
        return proc

    def local_last(run_id: str) -> int:
        db = sqlite3.connect(f"file:{data / 'station.sqlite'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT last_seq FROM runs WHERE id=?", (run_id,)).fetchone()[0]
        finally:
            db.close()

    service = serve("service-1.log")
    started = subprocess.run([sys.executable, "-m", "station", "run", str(tmp_path / "long.yaml"), "--cell",
                              "predeposited-ncm622", "--config", str(cfg), "--channel", "bts/21-1-1", "--json"],
                             capture_output=True, text=True, env=ENV, timeout=120)
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    central = Store(tmp_path / "reader", url)
    wait_for(lambda: central.has_run(run_id) and central.run(run_id).last_seq > 50, what="records in the lab")

    own_postgres.stop()
    wait_for(lambda: "buffering in" in (tmp_path / "service-1.log").read_text(), what="the station buffering")
    at_outage = local_last(run_id)
    wait_for(lambda: local_last(run_id) > at_outage + 100, what="records stored while the database is away")
    service.send_signal(signal.SIGKILL)  # killed while buffering
    service.wait(timeout=30)
    service = serve("service-2.log")  # starts and adopts its run with the lab's database still away
    wait_for(lambda: f"run {run_id}: watched" in (tmp_path / "service-2.log").read_text(), what="the run adopted")
    restarted_at = local_last(run_id)
    wait_for(lambda: local_last(run_id) > restarted_at + 100, what="supervision going on after the restart")

    own_postgres.start()
    wait_for(lambda: "back; everything buffered since" in (tmp_path / "service-2.log").read_text(),
             what="the station forwarding again", timeout_s=60)
    stopped = subprocess.run([sys.executable, "-m", "station", "stop", run_id, "--config", str(cfg), "--json"],
                             capture_output=True, text=True, env=ENV, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    central = Store(tmp_path / "reader", url)
    row = wait_for(lambda: (r := central.run(run_id)).state == "stopped" and r.last_seq == local_last(run_id) and r,
                   what="the stop and every record in the lab")
    local = Store(data, local=True)
    assert central.records(run_id).tobytes() == local.records(run_id).tobytes()  # each record once, in order
    seqs = central.records(run_id)["seq"]
    assert seqs[0] == 1 and np.all(np.diff(seqs) == 1) and len(seqs) == row.last_seq
    assert [(e.kind, e.message) for e in central.events(run_id)] == [(e.kind, e.message) for e in local.events(run_id)]
    service.terminate()
    service.wait(timeout=30)


def test_the_reading_commands_show_this_station_s_own_runs_while_the_lab_is_away(tmp_path, own_postgres):
    url = own_postgres.fresh()
    cfg = write_config(tmp_path / "station.yaml", 1, extra=f"station: lab-a\ndatabase: {url}\n")
    local = Store(tmp_path / "data", local=True, station="lab-a")
    local.create_run(run_id="r-own", at=1.0, channel="bts/21-1-1", **RUN)
    local.close()
    own_postgres.stop()
    try:
        shown = subprocess.run([sys.executable, "-m", "station", "runs", "--config", str(cfg), "--json"],
                               capture_output=True, text=True, env=ENV, timeout=120)
    finally:
        own_postgres.start()
    assert shown.returncode == 0, shown.stderr
    assert [r["run_id"] for r in json.loads(shown.stdout)["runs"]] == ["r-own"]
    assert "the lab's database cannot be reached (cannot reach the database" in shown.stderr
