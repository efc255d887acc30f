"""The CLI as a thin client of `station serve`, with real processes as a lab runs them: runs started from several
terminals at once return once started and the service watches them; status is live from the service; pause,
continue and stop go through it; a service killed with SIGKILL is ignored by the CLI until it is started again,
and then nothing is lost or duplicated."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from station.store import Store
from tests.processes import interrupt, popen, wait_for
from tests.station.sim_bts import ENV, LONG, SHORT, start_sim, write_config


@pytest.fixture
def setup(tmp_path, processes):
    port = start_sim(processes, channels=4)
    cfg = write_config(tmp_path / "station.yaml", port, channels=4)
    (tmp_path / "long.yaml").write_text(LONG)
    (tmp_path / "short.yaml").write_text(SHORT)
    return tmp_path, cfg


def serve(cfg, processes) -> subprocess.Popen:
    proc = popen([sys.executable, "-m", "station", "serve", "--config", str(cfg), "--port", "0", "--rescan", "0.5",
                  "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV)
    processes.append(proc)
    assert json.loads(proc.stdout.readline())["api"].startswith("http://127.0.0.1:")  # type: ignore[union-attr]
    return proc


def station(cfg, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station", *args, "--config", str(cfg)], capture_output=True,
                          text=True, env=ENV, timeout=timeout)



def test_runs_from_several_terminals_are_started_and_watched_by_the_service(setup, processes):
    tmp, cfg = setup
    serve(cfg, processes)
    terminals = [popen([sys.executable, "-m", "station", "run", str(tmp / "long.yaml"), "--cell",
                        "predeposited-ncm622", "--config", str(cfg), "--json"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(3)]
    processes.extend(terminals)
    docs = []
    for t in terminals:
        stdout, stderr = t.communicate(timeout=120)
        assert t.returncode == 0, stderr  # returned once started: the 100 h rest goes on, watched by the service
        assert "the station service watches it" in stderr
        docs.append(json.loads(stdout))
    assert sorted(d["channel"] for d in docs) == ["bts/21-1-1", "bts/21-1-2", "bts/21-1-3"]
    assert {d["state"] for d in docs} == {"running"}

    status = json.loads(station(cfg, "status", "--json").stdout)
    assert status["service"].startswith("http://127.0.0.1:")
    by_channel = {c["channel"]: c for c in status["channels"]}
    assert by_channel["bts/21-1-4"]["run"] is None
    live = wait_for(lambda: (c := json.loads(station(cfg, "status", "--json").stdout)["channels"][0]["live"])
                    and c["test_time_s"] is not None and c)
    assert live["run_id"] == by_channel["bts/21-1-1"]["run"]["run_id"] and live["step"] == 1
    assert live["current_a"] == 0.0 and 2.0 < live["voltage_v"] < 4.5  # resting, on the cell's OCV

    run_id = docs[0]["run_id"]
    assert json.loads(station(cfg, "pause", run_id, "--json").stdout)["state"] == "paused"
    assert json.loads(station(cfg, "continue", run_id, "--json").stdout)["state"] == "running"
    stopped = station(cfg, "stop", run_id, "--json")
    assert stopped.returncode == 0 and json.loads(stopped.stdout)["confirmed"] is True
    runs = {r["run_id"]: r for r in json.loads(station(cfg, "runs", "--json").stdout)["runs"]}
    assert runs[run_id]["state"] == "stopped" and runs[docs[1]["run_id"]]["state"] == "running"

    unknown = station(cfg, "stop", "nope", "--json")
    assert unknown.returncode == 2 and "nope" in json.loads(unknown.stdout)["error"]["message"]
    taken = docs[1]["channel"]
    busy = station(cfg, "run", str(tmp / "long.yaml"), "--cell", "predeposited-ncm622", "--channel", taken)
    assert busy.returncode == 2 and f"channel {taken} already has run {docs[1]['run_id']}" in busy.stderr
    for d in docs[1:]:
        assert station(cfg, "stop", d["run_id"]).returncode == 0


def test_run_watch_follows_to_the_end(setup, processes):
    tmp, cfg = setup
    serve(cfg, processes)
    watched = station(cfg, "run", str(tmp / "short.yaml"), "--cell", "predeposited-ncm622", "--watch", "--json")
    assert watched.returncode == 0, watched.stderr
    doc = json.loads(watched.stdout)
    assert doc["state"] == "finished"
    records = Store(tmp / "data").records(doc["run_id"])
    assert list(records["seq"]) == list(range(1, len(records) + 1)) and len(records) > 100


def test_a_killed_service_is_ignored_until_restarted_and_nothing_is_lost(setup, processes):
    tmp, cfg = setup
    service = serve(cfg, processes)
    (tmp / "slow.yaml").write_text(SHORT.replace("rest: 10 min", "rest: 4 h"))
    started = station(cfg, "run", str(tmp / "slow.yaml"), "--cell", "predeposited-ncm622", "--json")
    run_id = json.loads(started.stdout)["run_id"]
    wait_for(lambda: Store(tmp / "data").run(run_id).last_seq > 20)
    service.send_signal(signal.SIGKILL)  # in the 4 h rest (4 s here): the run goes on with nobody watching
    service.wait(timeout=30)
    assert (tmp / "data" / "service.json").exists()  # left behind, but its lock died with the process

    status = station(cfg, "status", run_id, "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["service"] is None
    assert "no station service watches" in status.stderr

    again = serve(cfg, processes)
    row = wait_for(lambda: (r := Store(tmp / "data").run(run_id)).state != "running" and r)
    assert row.state == "finished", row.message
    records = Store(tmp / "data").records(run_id)
    assert list(records["seq"]) == list(range(1, row.last_seq + 1))
    assert np.all(np.diff(records["test_time"]) >= 0)
    events = [e.message for e in Store(tmp / "data").events(run_id)]
    assert any(m.startswith("attached; catching up from record") for m in events)  # adopted, no command needed
    assert interrupt(again) == 0
