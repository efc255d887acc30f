"""Alerts: who hears of a safety stop, a protection trip, an instrument failure, a finished run or a campaign that
waits for an operator, at once.

A webhook gets a JSON POST (Slack-compatible: ``text`` is the one-line alert; ``kind``, ``run_id``, ``message``
and ``at`` are there for anything else); an e-mail goes over SMTP with STARTTLS and login. Sending happens on one
background thread fed by a bounded queue: :meth:`Alerts.notify` never waits on a network, so supervision is never
held up by a slow or dead receiver. Each delivery is retried with back-off; what still fails is logged and
recorded, never raised into the supervision loop.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import smtplib
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

from protocols.clock import Clock, RealClock
from station.config import AlertsConfig, EmailConfig, WebhookConfig

log = logging.getLogger(__name__)

#: attempts per destination and the waits between them (s): a receiver that is down for a minute still hears
RETRY_DELAYS_S = (1.0, 5.0, 30.0)
SEND_TIMEOUT_S = 10.0
QUEUE_SIZE = 1000


@dataclass(frozen=True)
class Alert:
    kind: str
    run_id: str
    message: str
    at: float  # Unix time

    @property
    def subject(self) -> str:
        """What the alert is about: a run, or (kind ``campaign``) a campaign, whose id ``run_id`` then holds."""
        return f"{'campaign' if self.kind == 'campaign' else 'run'} {self.run_id}"

    @property
    def text(self) -> str:
        return f"[{self.kind}] {self.subject}: {self.message}"

    def as_json(self) -> dict:
        at = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        doc = {"text": self.text, "kind": self.kind, "run_id": self.run_id, "message": self.message, "at": at}
        if self.kind == "campaign":
            doc["campaign_id"] = self.run_id
        return doc


class Alerts:
    """The station's alert sender; ``notify`` is what ``RunManager.on_alert`` calls."""

    def __init__(self, config: AlertsConfig, clock: Clock | None = None, *,
                 retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S, on_failure: Callable[[Alert, str], None]
                 | None = None):
        self.config = config
        self.clock = clock or RealClock()
        """Stamps the alerts (simulated time in a dry run); retries always wait real time: networks are real."""
        self._wait = RealClock()
        self.retry_delays_s = retry_delays_s
        self.on_failure = on_failure
        self.sent: list[tuple[str, Alert]] = []
        """(destination, alert) delivered, oldest first: what `station status` and the tests can read."""
        self._queue: queue.Queue[Alert | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None

    @property
    def configured(self) -> bool:
        return bool(self.config.webhooks or self.config.email)

    def notify(self, kind: str, run_id: str, message: str) -> None:
        """Queue an alert and return at once; a full queue drops the alert with a log line, never blocks."""
        if not self.configured:
            return
        self._start()
        try:
            self._queue.put_nowait(Alert(kind, run_id, message, self.clock.unix()))
        except queue.Full:
            log.error("alert queue full (%d): dropped %s alert of run %s", QUEUE_SIZE, kind, run_id)

    def close(self, timeout_s: float = 5.0) -> None:
        """Let queued alerts go out for up to ``timeout_s``, then stop the sender."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._thread = None

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="station-alerts", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while (alert := self._queue.get()) is not None:
            for name, send in self._destinations(alert):
                self._deliver(name, send, alert)

    def _destinations(self, alert: Alert) -> list[tuple[str, Callable[[Alert], None]]]:
        out: list[tuple[str, Callable[[Alert], None]]] = [
            (hook.url, lambda a, hook=hook: post_webhook(hook, a)) for hook in self.config.webhooks
            if alert.kind in hook.on]
        email = self.config.email
        if email is not None and alert.kind in email.on:
            out.append((f"mailto:{','.join(email.to)}", lambda a: send_email(email, a)))
        return out

    def _deliver(self, name: str, send: Callable[[Alert], None], alert: Alert) -> None:
        delays = (*self.retry_delays_s, None)
        for delay in delays:
            try:
                send(alert)
            except (OSError, smtplib.SMTPException, ValueError) as exc:
                why = f"{type(exc).__name__}: {exc}"
                if delay is None:
                    log.error("alert to %s failed after %d attempts: %s", name, len(delays), why)
                    if self.on_failure:
                        self.on_failure(alert, f"alert to {name} failed after {len(delays)} attempts: {why}")
                    return
                self._wait.sleep(delay)
                continue
            self.sent.append((name, alert))
            return


def post_webhook(hook: WebhookConfig, alert: Alert) -> None:
    request = urllib.request.Request(hook.url, data=json.dumps(alert.as_json()).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as reply:
        if not 200 <= reply.status < 300:
            raise OSError(f"HTTP {reply.status}")


def send_email(config: EmailConfig, alert: Alert) -> None:
    message = EmailMessage()
    message["Subject"] = f"battery test station: {alert.kind} on {alert.subject}"
    message["From"] = config.sender
    message["To"] = ", ".join(config.to)
    message.set_content(f"{alert.text}\n\nat {alert.as_json()['at']}\n")
    with smtplib.SMTP(config.host, config.port, timeout=SEND_TIMEOUT_S) as smtp:
        if config.starttls:
            smtp.starttls()
        if config.username:
            password = os.environ.get(config.password_env or "", "")
            smtp.login(config.username, password)
        smtp.send_message(message)
