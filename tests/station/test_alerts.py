"""Alerts reach a real HTTP receiver and a real SMTP server on loopback, are retried, never hold up the caller,
and a dry run with a broken safety limit and a finished run each send theirs."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from typer.testing import CliRunner

from station.alerts import Alerts
from station.cli import app
from station.config import AlertsConfig, EmailConfig, WebhookConfig

runner = CliRunner()


class Receiver:
    """A webhook receiver: answers each POST with the next status of ``statuses`` (then 200) and keeps bodies."""

    def __init__(self, statuses: tuple[int, ...] = (), hold: threading.Event | None = None):
        self.bodies: list[dict] = []
        self.statuses = list(statuses)
        self.entered = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.entered.set()
                if hold is not None:
                    hold.wait(30)
                status = outer.statuses.pop(0) if outer.statuses else 200
                if status == 200:
                    outer.bodies.append(body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(*statuses: int, hold: threading.Event | None = None) -> Receiver:
        made.append(Receiver(statuses, hold))
        return made[-1]

    yield make
    for r in made:
        r.close()


class Inbox:
    def __init__(self):
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"station" and auth_data.password == b"s3cret"
    return AuthResult(success=ok)


@pytest.fixture
def smtp():
    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd checks it is up by connecting to its own port: give it a real one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    yield inbox, controller.port
    controller.stop()


def test_a_webhook_gets_slack_compatible_json_and_is_retried_until_it_answers(receiver):
    hook = receiver(500, 503)  # down twice, then up
    alerts = Alerts(AlertsConfig(webhooks=[WebhookConfig(url=hook.url)]), retry_delays_s=(0.01, 0.01, 0.01))
    alerts.notify("safety", "R1", "safety limit broken, stopping the channel: record 9: voltage 4.4 V")
    alerts.close()
    (body,) = hook.bodies
    assert body["text"] == "[safety] run R1: safety limit broken, stopping the channel: record 9: voltage 4.4 V"
    assert (body["kind"], body["run_id"]) == ("safety", "R1") and body["at"].endswith("Z")
    assert alerts.sent == [(hook.url, alerts.sent[0][1])]


def test_a_receiver_that_never_answers_gives_up_without_raising(receiver):
    failures: list[str] = []
    alerts = Alerts(AlertsConfig(webhooks=[WebhookConfig(url="http://127.0.0.1:9/nothing")]),
                    retry_delays_s=(0.01,), on_failure=lambda alert, why: failures.append(why))
    alerts.notify("instrument", "R2", "no contact")
    alerts.close()
    assert len(failures) == 1 and "failed after 2 attempts" in failures[0] and alerts.sent == []


def test_notify_never_waits_for_the_network(receiver):
    release = threading.Event()
    hook = receiver(hold=release)
    alerts = Alerts(AlertsConfig(webhooks=[WebhookConfig(url=hook.url)]))
    alerts.notify("finished", "R3", "program completed")  # returns while the receiver holds the request
    assert hook.entered.wait(10) and not release.is_set() and hook.bodies == []
    release.set()
    alerts.close()
    assert [b["kind"] for b in hook.bodies] == ["finished"]


def test_only_the_kinds_a_destination_asked_for_reach_it(receiver):
    all_kinds, safety_only = receiver(), receiver()
    alerts = Alerts(AlertsConfig(webhooks=[WebhookConfig(url=all_kinds.url),
                                           WebhookConfig(url=safety_only.url, on=["safety"])]))
    alerts.notify("finished", "R4", "done")
    alerts.notify("safety", "R4", "breach")
    alerts.close()
    assert [b["kind"] for b in all_kinds.bodies] == ["finished", "safety"]
    assert [b["kind"] for b in safety_only.bodies] == ["safety"]


def test_an_email_goes_out_over_smtp_with_login(smtp, monkeypatch):
    inbox, port = smtp
    monkeypatch.setenv("STATION_SMTP_PASSWORD", "s3cret")
    email = EmailConfig.model_validate({"host": "127.0.0.1", "port": port, "starttls": False, "username": "station",
                                        "password_env": "STATION_SMTP_PASSWORD", "from": "station@lab.example",
                                        "to": ["a@lab.example", "b@lab.example"]})
    alerts = Alerts(AlertsConfig(email=email))
    alerts.notify("protection", "R5", "the instrument tripped its protection: over-voltage")
    alerts.close()
    ((sender, to, content),) = inbox.messages
    assert sender == "station@lab.example" and to == ["a@lab.example", "b@lab.example"]
    assert "Subject: battery test station: protection on run R5" in content
    assert "[protection] run R5: the instrument tripped its protection: over-voltage" in content


def test_a_dry_run_that_breaks_a_safety_limit_and_one_that_finishes_send_their_alerts(tmp_path, receiver):
    hook = receiver()
    cfg = tmp_path / "station.yaml"
    cfg.write_text(textwrap.dedent(f"""
        data_dir: {tmp_path / 'data'}
        instruments:
          - name: bts
            kind: neware
            simulated: true
            channels: [{{id: 21-1-1, voltage: [-1 V, 5 V], current: 10 mA}}]
        alerts:
          webhooks: [{{url: "{hook.url}"}}]
        """))
    protocol = tmp_path / "overcharge.yaml"
    protocol.write_text("protocol: overcharge\nsafety: {voltage: [2.5 V, 4.0 V], current: 5 mA}\n"
                        "steps:\n  - charge: {current: 0.5C, until: {time: 3 h}}\n")
    broken = runner.invoke(app, ["run", str(protocol), "--cell", "predeposited-ncm622", "--dry-run", "--json",
                                 "--config", str(cfg)])
    assert broken.exit_code == 3, broken.output
    done = runner.invoke(app, ["run", "p1-li-deposition", "--cell", "host-cu-li", "--dry-run", "--json", "--config",
                               str(cfg), "--set", "plate_capacity=0.1mAh/cm^2", "--set", "rest_time=1min"])
    assert done.exit_code == 0, done.output
    broken_id, done_id = json.loads(broken.stdout)["run_id"], json.loads(done.stdout)["run_id"]
    kinds = {b["run_id"]: b["kind"] for b in hook.bodies}
    assert kinds == {broken_id: kinds[broken_id], done_id: "finished"}
    assert kinds[broken_id] in ("safety", "protection")  # the BTS's own protection or the station's check
    assert len(hook.bodies) == 2


def test_the_readme_alerts_block_loads_as_written_with_a_bare_on_key(tmp_path):
    """YAML 1.1 reads a bare ``on`` as the boolean true; station files follow YAML 1.2, where it is a word."""
    from station.config import load_config

    path = tmp_path / "station.yaml"
    path.write_text(textwrap.dedent("""
        instruments: [{name: sim, kind: neware, simulated: true, channels: [{id: 21-1-1}]}]
        alerts:
          webhooks: [{url: "https://hooks.example/x", on: [safety, protection]}]
          email: {host: smtp.lab.example, from: station@lab.example, to: [a@lab.example], on: [finished]}
        """))
    cfg, _ = load_config(str(path))
    assert cfg.alerts.webhooks[0].on == ["safety", "protection"] and cfg.alerts.email.on == ["finished"]


def test_a_breach_under_station_serve_sends_the_webhook_and_the_email(tmp_path, receiver, smtp, processes):
    """As a lab meets it: the service watches a run nobody has a terminal open for; the cell is overcharged past
    the protocol's limit; the webhook and the e-mail both arrive, naming the run."""
    import subprocess
    import sys
    import time

    from tests.processes import popen
    from tests.station.sim_bts import ENV, start_sim, write_config

    hook = receiver()
    inbox, smtp_port = smtp
    cfg = write_config(tmp_path / "station.yaml", start_sim(processes, channels=1), channels=1, extra=f"""
        alerts:
          webhooks: [{{url: "{hook.url}", on: [safety, protection]}}]
          email: {{host: 127.0.0.1, port: {smtp_port}, starttls: false, username: station,
                  password_env: STATION_SMTP_PASSWORD, from: station@lab.example, to: [oncall@lab.example]}}
        """)
    env = {**ENV, "STATION_SMTP_PASSWORD": "s3cret"}
    service = popen([sys.executable, "-m", "station", "serve", "--config", str(cfg), "--port", "0", "--json"],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    processes.append(service)
    assert "api" in json.loads(service.stdout.readline())  # type: ignore[union-attr]
    protocol = tmp_path / "overcharge.yaml"
    protocol.write_text("protocol: overcharge\nrecord: {every: 10 s}\nsafety: {voltage: [2.5 V, 4.0 V], "
                        "current: 5 mA}\nsteps:\n  - charge: {current: 0.5C, until: {time: 3 h}}\n")
    started = subprocess.run([sys.executable, "-m", "station", "run", str(protocol), "--cell", "predeposited-ncm622",
                              "--config", str(cfg), "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (hook.bodies and inbox.messages):
        time.sleep(0.1)
    (body,) = hook.bodies
    assert body["run_id"] == run_id and body["kind"] in ("safety", "protection")
    assert run_id in body["text"] and body["at"].endswith("Z")
    ((sender, to, content),) = inbox.messages  # one alert, by both ways
    assert (sender, to) == ("station@lab.example", ["oncall@lab.example"])
    assert f"Subject: battery test station: {body['kind']} on run {run_id}" in content
