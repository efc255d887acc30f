"""Several stations on one PostgreSQL database (issue 17): each service owns its channels and watches only its own
runs, the database keeps a channel to one station, and every station reads every station's runs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from station.store import ChannelOwned, Store, StoreError
from tests.processes import popen, wait_for
from tests.station.sim_bts import ENV, SHORT, start_sim, write_config

RUN = dict(instrument={"kind": "bts"}, protocol_name="p", protocol_file=None, protocol_source="steps: []",
           parameters={}, program="{}", cell={}, dry_run=False)


@pytest.mark.usefixtures("store_backend")
def test_the_first_station_on_a_channel_owns_it_until_it_is_released(tmp_path):
    a, b = Store(tmp_path / "a", station="lab-a"), Store(tmp_path / "b", station="lab-b")
    if a.backend.dialect == "sqlite":  # two stations share a database only on PostgreSQL; here, one data dir
        b = Store(tmp_path / "a", station="lab-b")
    a.create_run(run_id="r1", at=1.0, channel="bts/1", **RUN)
    assert a.run("r1").station == "lab-a" and a.channel_owners() == {"bts/1": "lab-a"}
    a.set_state("r1", "finished", 2.0)
    with pytest.raises(ChannelOwned) as owned:
        b.create_run(run_id="r2", at=3.0, channel="bts/1", **RUN)
    assert str(owned.value) == ("channel bts/1 belongs to station lab-a; start the run there, or, once lab-a no "
                                "longer has it, free it with `station db release-channel bts/1`")
    assert not b.has_run("r2")  # nothing of the refused run was written
    assert b.claim_channels(["bts/1", "bts/2", "bts/3"], 4.0) == {"bts/1": "lab-a"}
    assert a.claim_channels(["bts/2"], 5.0) == {"bts/2": "lab-b"}
    b.create_run(run_id="r3", at=6.0, channel="bts/2", **RUN)
    with pytest.raises(StoreError, match=r"^channel bts/2 has run r3 \(created\) of station lab-b; stop it or let it "
                                         r"finish first$"):
        a.release_channel("bts/2")
    assert b.release_channel("bts/1") == "lab-a"
    b.create_run(run_id="r4", at=7.0, channel="bts/1", **RUN)  # released: the next station to use it owns it
    assert b.channel_owners() == {"bts/1": "lab-b", "bts/2": "lab-b", "bts/3": "lab-b"}
    assert a.active_run_ids("lab-a") == set() and a.active_run_ids("lab-b") == {"r3", "r4"}
    assert {r.id for r in a.runs(station="lab-b")} == {"r3", "r4"} and len(a.runs()) == 3


def test_two_stations_claiming_the_same_channels_at_once_split_them(tmp_path, postgres):
    url = postgres.fresh()
    stores = [Store(tmp_path / n, url, station=n) for n in ("lab-a", "lab-b")]
    channels = [f"bts/{k}" for k in range(1, 201)]
    refused: list[dict[str, str]] = [{}, {}]
    gate = threading.Barrier(2)

    def claim(k: int) -> None:
        gate.wait()
        refused[k] = stores[k].claim_channels(channels if k == 0 else channels[::-1], float(k))

    threads = [threading.Thread(target=claim, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    owners = stores[0].channel_owners()
    assert sorted(owners) == sorted(channels)  # every channel has exactly one owner
    for k, name in enumerate(("lab-a", "lab-b")):
        mine = {c for c, owner in owners.items() if owner == name}
        assert set(refused[k]) == set(channels) - mine and set(refused[k].values()) <= {"lab-a", "lab-b"} - {name}


def test_two_stations_on_one_database_each_watch_only_their_own_runs(tmp_path, postgres, processes, monkeypatch):
    """Two PCs, each with its own simulated BTS (both named bts in their station.yaml, as a lab that copied one
    file would have it), one database. Station B's service leaves A's running run alone, refuses A's channel,
    and lists A's runs; A's service takes its run to the end."""
    monkeypatch.setenv("STATION_DATABASE", postgres.fresh())
    configs = {}
    for name in ("lab-a", "lab-b"):
        (tmp_path / name).mkdir()
        configs[name] = write_config(tmp_path / name / "station.yaml", start_sim(processes, channels=2),
                                     extra=f"station: {name}\n")
    protocol = tmp_path / "p.yaml"
    protocol.write_text(SHORT)

    def station(name: str, *args: str) -> subprocess.Popen:
        proc = popen([sys.executable, "-m", "station", *args, "--config", str(configs[name])],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        processes.append(proc)
        return proc

    terminal = station("lab-a", "run", str(protocol), "--cell", "predeposited-ncm622", "--channel", "bts/21-1-1")
    run_id = None
    for line in terminal.stderr:  # type: ignore[union-attr]
        if line.startswith("run ") and " started on " in line:
            run_id = line.split()[1]
        if run_id and "records " in line and int(line.split("records ")[1].split()[0]) > 3:
            break
    store = Store(tmp_path / "reader")
    wait_for(lambda: run_id and store.has_run(run_id), what="the terminal forwarding the run to the lab")
    terminal.kill()  # A's run goes on on A's BTS with nobody watching it
    terminal.wait(timeout=30)
    assert run_id and store.run(run_id).state == "running" and store.run(run_id).station == "lab-a"
    events_before = len(store.events(run_id))

    service_b = station("lab-b", "serve", "--rescan", "0.3", "--port", "0")
    said = []
    for line in service_b.stderr:  # type: ignore[union-attr]
        said.append(line)
        if line.startswith("serving "):
            break
    assert any(s.startswith("channel bts/21-1-1 belongs to station lab-a: runs on it start there") for s in said)
    started = wait_for(lambda: next((s for s in store.stations() if s.name == "lab-b"), None))
    wait_for(lambda: next(s for s in store.stations() if s.name == "lab-b").seen_at > started.seen_at + 0.5,
             what="two rescans of station lab-b")
    row = store.run(run_id)
    assert row.state == "running" and len(store.events(run_id)) == events_before  # B left it alone
    assert store.channel_owners() == {"bts/21-1-1": "lab-a", "bts/21-1-2": "lab-b"}

    listed = subprocess.run([sys.executable, "-m", "station", "runs", "--json", "--config", str(configs["lab-b"]),
                             "--data-dir", str(tmp_path / "b-cli")], capture_output=True, text=True, env=ENV,
                            timeout=60)
    assert [(r["run_id"], r["station"]) for r in json.loads(listed.stdout)["runs"]] == [(run_id, "lab-a")]

    service_a = station("lab-a", "serve", "--rescan", "0.3", "--port", "0")
    row = wait_for(lambda: (r := store.run(run_id)).state != "running" and r, timeout_s=180)
    assert row.state == "finished", row.message
    refused = subprocess.run([sys.executable, "-m", "station", "run", str(protocol), "--cell", "predeposited-ncm622",
                              "--channel", "bts/21-1-1", "--config", str(configs["lab-b"]), "--data-dir",
                              str(tmp_path / "b-cli")], capture_output=True, text=True, env=ENV, timeout=120)
    assert refused.returncode == 2 and refused.stderr.strip().endswith(
        "error: channel bts/21-1-1 belongs to station lab-a; start the run there, or, once lab-a no longer has it, "
        "free it with `station db release-channel bts/21-1-1`"), refused.stderr
    for service in (service_a, service_b):
        service.terminate()
        service.wait(timeout=30)


@pytest.mark.usefixtures("store_backend")
def test_station_db_release_channel_frees_a_channel_for_the_next_station(tmp_path):
    cfg = write_config(tmp_path / "station.yaml", 1, extra="station: lab-b\n")
    store = Store(tmp_path / "data", station="lab-a")
    store.create_run(run_id="r1", at=1.0, channel="bts/21-1-1", **RUN)

    def release() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "station", "db", "release-channel", "bts/21-1-1", "--config",
                               str(cfg), "--json"], capture_output=True, text=True, env=ENV, timeout=60)

    busy = release()
    assert busy.returncode == 1 and busy.stderr.strip() == ("error: channel bts/21-1-1 has run r1 (created) of station "
                                                            "lab-a; stop it or let it finish first")
    store.set_state("r1", "stopped", 2.0)
    assert json.loads(release().stdout) == {"channel": "bts/21-1-1", "released_from": "lab-a"}
    assert json.loads(release().stdout) == {"channel": "bts/21-1-1", "released_from": None}
    assert store.channel_owners() == {}


def two_stations(tmp_path, postgres, processes, monkeypatch) -> dict:
    """Stations lab-a and lab-b, each with a simulated BTS of one channel, on one fresh lab database, both knowing
    user alice (so that an action typed on one is accepted by the other)."""
    from station.api.tokens import token_hash
    from tests.station.sim_bts import ALICE

    monkeypatch.setenv("STATION_DATABASE", postgres.fresh())
    users = f"api:\n  users:\n    alice: {token_hash(ALICE)}\n"
    configs = {}
    for name in ("lab-a", "lab-b"):
        (tmp_path / name).mkdir()
        configs[name] = write_config(tmp_path / name / "station.yaml", start_sim(processes, channels=1),
                                     channels=1, extra=f"station: {name}\n{users}")
    return configs



def test_an_operator_stops_another_station_s_run_through_its_service(tmp_path, postgres, processes, monkeypatch):
    """Station B's CLI, asked to stop a run of station A, sends the stop to A's service with the operator's own
    token; without a token it says what to do."""
    from tests.station.sim_bts import ALICE, LONG

    configs = two_stations(tmp_path, postgres, processes, monkeypatch)
    service = popen([sys.executable, "-m", "station", "serve", "--config", str(configs["lab-a"]), "--port", "0",
                     "--rescan", "0.3", "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                    env=ENV)
    processes.append(service)
    json.loads(service.stdout.readline())  # type: ignore[union-attr]  # serving
    (tmp_path / "long.yaml").write_text(LONG)
    started = subprocess.run([sys.executable, "-m", "station", "run", str(tmp_path / "long.yaml"), "--cell",
                              "predeposited-ncm622", "--config", str(configs["lab-a"]), "--json"],
                             capture_output=True, text=True, env=ENV, timeout=120)
    run_id = json.loads(started.stdout)["run_id"]
    lab = Store(tmp_path / "reader")
    wait_for(lambda: lab.has_run(run_id) and any(s.name == "lab-a" and s.api_url for s in lab.stations()),
             what="the run and station lab-a in the lab's database")

    def stop_from_b(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "station", "stop", run_id[:15], "--config",
                               str(configs["lab-b"]), "--json"], capture_output=True, text=True,
                              env={**ENV, **env}, timeout=120)

    refused = stop_from_b()
    url = next(s.api_url for s in lab.stations() if s.name == "lab-a")
    assert refused.returncode == 2 and refused.stderr.strip().endswith(
        f"error: run {run_id} belongs to station lab-a ({url}); set $STATION_TOKEN to your user token (a user in that "
        f"station's api: users:) to act on it from here")
    done = stop_from_b(STATION_TOKEN=ALICE)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["confirmed"] is True and f"asking its service at {url}" in done.stderr
    row = wait_for(lambda: (r := lab.run(run_id)).state == "stopped" and r, what="the stop in the lab's database")
    said = [(e.kind, e.message) for e in lab.events(row.id)]
    assert ("operator", "stop (by alice)") in said, said[-4:]  # recorded on station lab-a with who did it


def test_a_station_not_seen_for_a_minute_is_not_asked(tmp_path, postgres, monkeypatch):
    from station.config import load_config
    from station.elsewhere import ElsewhereRefused, other_station

    url = postgres.fresh()
    a = Store(tmp_path / "a", url, station="lab-a")
    a.create_run(run_id="r1", at=1.0, channel="bts/1", **RUN)
    a.station_seen(100.0, started_at=100.0, api_url="http://lab-a:8760", pid=1, version="0.1.0")
    cfg = write_config(tmp_path / "station.yaml", 1, extra=f"station: lab-b\ndatabase: {url}\n")
    config = load_config(str(cfg))[0]
    monkeypatch.setenv("STATION_TOKEN", "alice-token")
    with pytest.raises(ElsewhereRefused, match=r"^run r1 belongs to station lab-a, whose service was last seen 61 s "
                                               r"ago: it is not running, so nothing can reach the cell from here"):
        other_station(config, str(tmp_path / "b"), "r1", 161.0)
    assert other_station(config, str(tmp_path / "b"), "r1", 159.0).base_url == "http://lab-a:8760"  # type: ignore
    assert other_station(config, str(tmp_path / "b"), "nope", 159.0) is None  # nowhere: the local command says so


def test_an_operator_stops_another_station_s_campaign_through_its_service(tmp_path, postgres, processes,
                                                                          monkeypatch):
    from tests.station.sim_bts import ALICE

    configs = two_stations(tmp_path, postgres, processes, monkeypatch)

    def cli(name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "station", *args, "--config", str(configs[name]), "--json"],
                              capture_output=True, text=True, env={**ENV, **env}, timeout=120)

    sample = json.loads(cli("lab-a", "sample", "new", "--cell", "anode-free-ncm622").stdout)["sample_id"]
    started = cli("lab-a", "campaign", "start", "formation-cycling-80", "--sample", sample)
    assert started.returncode == 0, started.stderr
    campaign = json.loads(started.stdout)["campaign_id"]
    service = popen([sys.executable, "-m", "station", "serve", "--config", str(configs["lab-a"]), "--port", "0",
                     "--rescan", "0.3", "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                    env=ENV)
    processes.append(service)
    json.loads(service.stdout.readline())  # type: ignore[union-attr]  # serving
    lab = Store(tmp_path / "reader")
    wait_for(lambda: any(c.id == campaign for c in lab.campaigns()) and any(
        s.name == "lab-a" and s.api_url for s in lab.stations()), what="the campaign in the lab's database")

    listed = json.loads(cli("lab-b", "campaign", "status").stdout)["campaigns"]
    assert [c["campaign_id"] for c in listed] == [campaign]  # B reads A's campaigns from the lab's database
    refused = cli("lab-b", "campaign", "stop", campaign)
    assert refused.returncode == 2 and "set $STATION_TOKEN to your user token" in refused.stderr
    sent = cli("lab-b", "campaign", "stop", campaign, STATION_TOKEN=ALICE)
    assert sent.returncode == 0, sent.stderr
    row = wait_for(lambda: (c := next(c for c in lab.campaigns() if c.id == campaign)).state == "stopped" and c,
                   what="the campaign stopped by station lab-a")
    assert any(e.who == "alice" and e.kind == "operator" for e in lab.campaign_events(row.id))
