"""`station serve` with real processes: it adopts a run whose terminal died and supervises it to the end with
every record, refuses a second service on the same data directory, and leaves cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from station.store import Store
from tests.processes import interrupt, popen, wait_for
from tests.station.sim_bts import ENV, SHORT, start_sim, write_config

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and on PostgreSQL


@pytest.fixture
def cfg(tmp_path, processes):
    """A simulated BTS in its own process at 3600x real time, and a station.yaml for it."""
    return write_config(tmp_path / "station.yaml", start_sim(processes, channels=2))


def station(*args: str, **kwargs) -> subprocess.Popen:
    return popen([sys.executable, "-m", "station", *args], stderr=subprocess.PIPE, text=True, env=ENV, **kwargs)



def serving(proc: subprocess.Popen) -> None:
    for line in proc.stderr:  # type: ignore[union-attr]
        if line.startswith("serving "):
            return
    raise AssertionError("the service never started")


def test_the_service_adopts_a_run_whose_terminal_died_and_keeps_every_record(tmp_path, cfg, processes):
    protocol = tmp_path / "p.yaml"
    protocol.write_text(SHORT)
    terminal = station("run", str(protocol), "--cell", "predeposited-ncm622", "--config", str(cfg), "--channel",
                       "bts/21-1-1")
    processes.append(terminal)
    run_id = None
    for line in terminal.stderr:  # type: ignore[union-attr]
        if line.startswith("run ") and " started on " in line:
            run_id = line.split()[1]
        if run_id and "records " in line and int(line.split("records ")[1].split()[0]) > 5:
            break
    terminal.kill()  # no cleanup: the program goes on on the BTS with nobody watching
    terminal.wait(timeout=30)
    assert run_id and Store(tmp_path / "data").run(run_id).state == "running"

    service = station("serve", "--config", str(cfg), "--rescan", "0.5", "--port", "0")
    processes.append(service)
    serving(service)
    row = wait_for(lambda: (r := Store(tmp_path / "data").run(run_id)).state != "running" and r)
    assert row.state == "finished", row.message
    records = Store(tmp_path / "data").records(run_id)
    assert list(records["seq"]) == list(range(1, len(records) + 1)) and len(records) == row.last_seq
    assert np.all(np.diff(records["test_time"]) >= 0)
    events = [e.message for e in Store(tmp_path / "data").events(run_id)]
    assert any(m.startswith("attached; catching up from record") for m in events)

    service.send_signal(signal.SIGTERM)
    assert service.wait(timeout=30) == 0
    assert not (tmp_path / "data" / "service.json").exists()


def test_one_service_per_data_directory_and_sigterm_leaves_runs_running(tmp_path, cfg, processes):
    first = station("serve", "--config", str(cfg), "--port", "0")
    processes.append(first)
    serving(first)
    info = json.loads((tmp_path / "data" / "service.json").read_text())
    assert info["pid"] == first.pid
    second = subprocess.run([sys.executable, "-m", "station", "serve", "--config", str(cfg), "--port", "0"],
                            capture_output=True, text=True, env=ENV, timeout=60)
    assert second.returncode == 2
    assert f"a station service (pid {first.pid}) already serves" in second.stderr
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    again = station("serve", "--config", str(cfg), "--port", "0")  # the lock went with the first service
    processes.append(again)
    serving(again)
    assert interrupt(again) == 0
