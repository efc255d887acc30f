"""A campaign run to its end by a real `station serve` process, as a lab runs one: stored with `station campaign
start` before any service runs, carried out by the service on a simulated BTS in its own process (3600x real time),
waiting with an alert for an operator to move the sample to a Biologic channel, confirmed with `station campaign
confirm`, and finished there."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from station.store import Store
from tests.processes import popen
from tests.station.test_service import ENV, wait_for

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and on PostgreSQL

CYCLING = """
protocol: fast-cycling
parameters: {cycles: 2, rate: 1C}
record: {every: 60 s}
steps:
  - rest: 1 min
  - repeat: ${cycles}
    steps:
      - charge: {current: "${rate}", until: {voltage: 4.2 V}}
      - discharge: {current: "${rate}", until: {voltage: 2.75 V}}
"""
EIS = """
protocol: quick-eis
steps:
  - rest: 1 s
  - eis: {mode: potentio, from: 10 kHz, to: 100 Hz, amplitude: 10 mV, bias: ocv, points_per_decade: 2}
"""
CAMPAIGN = """
campaign: cycle-then-eis
stages:
  - name: cycling
    protocol: cycling.yaml
    instrument: neware
    chunks: {cycles: 2}
    rpt: {protocol: cycling.yaml, set: {cycles: 1}}
    until: {cycles: 3}
  - name: eis
    protocol: eis.yaml
    instrument: biologic
"""


class Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict]] = []

    def do_POST(self):
        Receiver.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station", *args], capture_output=True, text=True, env=ENV,
                          timeout=120)


def test_the_service_runs_a_campaign_across_two_instruments_to_its_end(tmp_path, processes):
    sim = subprocess.Popen([sys.executable, "-m", "station", "sim", "neware", "--port", "0", "--channels", "2",
                            "--cell", "anode-free-ncm622", "--speed", "3600", "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, env=ENV)
    processes.append(sim)
    port = json.loads(sim.stdout.readline())["port"]  # type: ignore[union-attr]
    hooks = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    Receiver.bodies = []
    data = tmp_path / "data"
    for name, text in (("cycling.yaml", CYCLING), ("eis.yaml", EIS), ("campaign.yaml", CAMPAIGN)):
        (tmp_path / name).write_text(text)
    cfg = tmp_path / "station.yaml"
    cfg.write_text(textwrap.dedent(f"""
        data_dir: {data}
        poll_interval: 0.05 s
        instruments:
          - name: bts
            kind: neware
            address: 127.0.0.1:{port}
            channels: [{{id: 21-1-1, voltage: [0 V, 5 V], current: 10 mA}},
                       {{id: 21-1-2, voltage: [0 V, 5 V], current: 10 mA}}]
          - name: bio
            kind: biologic
            simulated: true
            channels: [{{id: "1", voltage: [-10 V, 10 V], current: 400 mA}}]
        alerts:
          webhooks: [{{url: "http://127.0.0.1:{hooks.server_address[1]}/hook", "on": [campaign]}}]
        """))
    try:
        made = cli("sample", "new", "--cell", "anode-free-ncm622", "--config", str(cfg), "--json")
        sample = json.loads(made.stdout)["sample_id"]
        started = cli("campaign", "start", str(tmp_path / "campaign.yaml"), "--sample", sample, "--channel",
                      "bts/21-1-1", "--by", "ana", "--config", str(cfg), "--json")
        assert started.returncode == 0, started.stderr
        doc = json.loads(started.stdout)
        campaign = doc["campaign_id"]
        assert (doc["state"], doc["location"], doc["started_by"], doc["next"]) == (
            "pending", "bts/21-1-1", "ana", f"no station service serves {data}: it begins when `station serve` runs "
                                            "there")

        log = (tmp_path / "service.log").open("w")
        service = popen([sys.executable, "-m", "station", "serve", "--config", str(cfg), "--port", "0", "--rescan",
                         "0.5"], stderr=log, text=True, env=ENV)  # a file: a pipe nobody reads would fill up
        processes.append(service)
        wait_for(lambda: "serving " in (tmp_path / "service.log").read_text())
        store = Store(data)  # with a lab database, its copy: the campaign is there once the service forwarded it

        def row():
            return next((c for c in store.campaigns() if c.id == campaign), None)

        waiting = wait_for(lambda: (c := row()) is not None and c.state == "waiting" and c, timeout_s=180)
        move = ("stage eis runs on a biologic channel: move sample "
                f"{sample} from bts/21-1-1 to bio/1, then confirm with `station campaign confirm {campaign}`")
        assert (waiting.stage, waiting.waiting) == (1, move)
        body = wait_for(lambda: Receiver.bodies and Receiver.bodies[0])
        assert (body["kind"], body["campaign_id"], body["text"]) == (
            "campaign", campaign, f"[campaign] campaign {campaign}: sample {sample}: waits for an operator: {move}")

        confirmed = cli("campaign", "confirm", campaign[:9], "--by", "bo", "--config", str(cfg), "--json")
        assert confirmed.returncode == 0, confirmed.stderr
        assert json.loads(confirmed.stdout) == {"campaign_id": campaign, "action": "confirm", "state": "waiting",
                                                "by": "bo", "channel": None,
                                                "next": "the station service carries it out on its next round"}
        done = wait_for(lambda: (c := row()) is not None and c.state != "waiting" and not c.active and c,
                        timeout_s=180)
        assert (done.state, done.message, done.location, done.confirmed_by) == (
            "finished", "all 2 stages done", "bio/1", "bo")

        status = cli("campaign", "status", campaign, "--config", str(cfg), "--json")
        shown = json.loads(status.stdout)
        cycling, eis = shown["stages"]
        assert [(r["role"], r["chunk"], r["channel"], r["outcome"], r["parameters"]) for r in cycling["runs"]] == [
            ("chunk", 1, "bts/21-1-1", "finished", {"cycles": "2"}),
            ("rpt", 1, "bts/21-1-1", "finished", {"cycles": "1"}),
            ("chunk", 2, "bts/21-1-1", "finished", {"cycles": "1"}),
            ("rpt", 2, "bts/21-1-1", "finished", {"cycles": "1"})]
        # cycles numbered on across the chunks; each run's own numbers start at 1 (its rest belongs to its first)
        assert [[(c.get("cycle"), c["run_cycle"]) for c in r["cycles"]] for r in cycling["runs"]] == [
            [(1, 1), (2, 2)], [(None, 1)], [(3, 1)], [(None, 1)]]
        assert cycling["cycles"] == 3 and cycling["runs"][2]["first_cycle"] == 3
        assert [(r["role"], r["channel"], r["outcome"]) for r in eis["runs"]] == [("run", "bio/1", "finished")]
        runs = store.runs_of_campaign(campaign)
        assert [(r.campaign_stage, r.sample_id, r.state) for r in runs] == \
            [("cycling", sample, "finished")] * 4 + [("eis", sample, "finished")]
        assert all(r.campaign_id == campaign for r in runs) and runs[-1].instrument["kind"] == "biologic"
        assert [(e["message"], e["who"]) for e in shown["events"] if e["kind"] == "operator"] == [
            (f"started by ana on sample {sample}: 2 stages (cycling, eis); the sample is on bts/21-1-1", "ana"),
            ("confirmed by bo: the sample is on bio/1", "bo"),
            ("carried out the confirmation of bo: sample " + sample + " is on bio/1", "bo")]
        assert wait_for(lambda: len(Receiver.bodies) == 2 and Receiver.bodies)[1]["text"] == \
            f"[campaign] campaign {campaign}: sample {sample}: campaign finished: all 2 stages done"
        again = cli("campaign", "confirm", campaign, "--config", str(cfg), "--json")
        assert again.returncode == 2 and json.loads(again.stdout) == {"error": {"exit_code": 2, "message": (
            f"error: campaign {campaign} is finished; there is nothing to confirm (only a waiting or held campaign "
            "takes a confirmation)")}}
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=30) == 0
        store.close()
    finally:
        hooks.shutdown()
