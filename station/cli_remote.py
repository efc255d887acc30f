"""The run commands when a station service serves the data directory: the CLI as a thin client of its API.

`run`, `stop`, `pause`, `continue`, `status` and `runs` find the service through the data directory
(station.api.client) and ask it, so that the one process that owns the instruments does the work and supervises
the run after the command returns. Errors come back as the same one-line messages, with the CLI's exit codes.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from rich.live import Live

from drivers.base import ChannelState, ChannelStatus
from protocols.clock import Clock, RealClock
from protocols.library import resolve_cell_path, resolve_protocol_path
from station.api.client import ServiceClient, ServiceError
from station.cli_common import (
    EXIT_INSTRUMENT,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_RUN_ENDED,
    EXIT_USAGE,
    err,
    fail,
)
from station.live_view import DEFAULT_RESOLUTION, RESOLUTIONS, LiveView
from station.run_policy import TERMINAL_STATES, RunState
from station.runs import Progress

#: how often `station run --watch` asks the service for the run's live values, s of wall time
WATCH_POLL_S = 1.0


def exit_code(exc: ServiceError) -> int:
    """The CLI's exit code for a refusal of the service, by its HTTP status."""
    if exc.status == 422:
        return EXIT_INVALID
    if exc.status in (400, 401, 403, 404, 409, 413):
        return EXIT_USAGE
    return EXIT_INSTRUMENT  # 0 (no answer), 503 (instrument or store), 504, 500


def refused(exc: ServiceError):
    message = "\n".join(exc.problems) if exc.problems else f"error: {exc}"
    return fail(exit_code(exc), message)


def call(fn, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        return fn(*args, **kwargs)
    except ServiceError as exc:
        raise refused(exc) from None


def start_body(protocol: str, cell: str | None, sample: str | None, channel: str | None,
               overrides: dict[str, str]) -> dict[str, Any]:
    """The start request for files the user named here: absolute paths (the service runs on this PC, in another
    working directory), library names as they are."""
    body: dict[str, Any] = {"set": overrides, "channel": channel, "sample": sample}
    protocol_path = Path(resolve_protocol_path(protocol))
    body["protocol"] = str(protocol_path.resolve()) if protocol_path.is_file() else protocol
    if cell is not None:
        cell_path = Path(resolve_cell_path(cell))
        body["cell"] = str(cell_path.resolve()) if cell_path.is_file() else cell
    return {k: v for k, v in body.items() if v is not None}


def progress_of(doc: dict[str, Any]) -> Progress:
    """A run's document from the API as the live view's progress (its status only as live as the service's)."""
    live = doc.get("live") or {}
    state = RunState(doc["state"])
    status = None
    if live and live.get("test_time_s") is not None:
        status = ChannelStatus(state=ChannelState(state) if state in ChannelState.__members__.values()
                               else ChannelState.RUNNING, step_index=live.get("step"), cycle=live.get("cycle"),
                               voltage=live.get("voltage_v"), current=live.get("current_a"),
                               step_capacity=live.get("step_capacity_ah"), test_time=live.get("test_time_s"))
    return Progress(doc["run_id"], state, status, live.get("records", doc.get("records", 0)), live.get("tag"),
                    live.get("eta_s"), live.get("contact_lost_s", doc.get("contact_lost_s")),
                    live.get("stop_requested"))


def run(client: ServiceClient, body: dict[str, Any], *, watch: bool, json_: bool, clock: Clock | None = None) -> int:
    doc = call(client.post, "/runs", body)
    err.print(f"run {doc['run_id']} started on {doc['channel']}; the station service watches it"
              + ("" if watch else f" (`station status {doc['run_id']}`, or `station run ... --watch` to follow)"),
              markup=False)
    if not watch:
        if json_:
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return 0
    return follow(client, doc["run_id"], json_, clock)


def follow(client: ServiceClient, run_id: str, json_: bool, clock: Clock | None = None) -> int:
    """Show the run live until it ends; Ctrl-C only stops watching (the service goes on supervising it).
    ``clock`` paces the polls (the real one unless a test gives another)."""
    clock = clock or RealClock()
    doc = call(client.get, f"/runs/{run_id}")
    view = LiveView(run_id, RESOLUTIONS.get(doc.get("kind") or "", DEFAULT_RESOLUTION))
    shown = sys.stderr.isatty() and not json_
    try:
        with Live(console=err, refresh_per_second=4, transient=False) if shown else contextlib.nullcontext() as live:
            while doc["state"] not in TERMINAL_STATES:
                if live is not None:
                    live.update(view.update(progress_of(doc)))
                clock.sleep(WATCH_POLL_S)
                doc = call(client.get, f"/runs/{run_id}")
    except KeyboardInterrupt:
        err.print(f"stopped watching; run {run_id} goes on, watched by the station service (`station stop "
                  f"{run_id}` stops it)", markup=False)
        return EXIT_INTERRUPTED
    err.print(f"run {run_id}: {doc['state']}" + (f" ({doc['message']})" if doc.get("message") else ""),
              markup=False)
    if json_:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    return 0 if doc["state"] == RunState.FINISHED else EXIT_RUN_ENDED


def operator(client: ServiceClient, action: str, run_id: str, json_: bool, force: bool = False) -> int:
    if action == "stop":
        doc = call(client.post, f"/runs/{run_id}/stop", {"force": force})
        err.print(doc["message"], markup=False)
        if json_:
            sys.stdout.write(json.dumps({"run_id": doc["run_id"], "action": "stop", "confirmed": doc["confirmed"],
                                         "message": doc["message"]}) + "\n")
        return 0 if doc["confirmed"] else EXIT_INSTRUMENT
    doc = call(client.post, f"/runs/{run_id}/{action}")
    err.print(f"run {doc['run_id']}: {doc['state']}", markup=False)
    if json_:
        sys.stdout.write(json.dumps({"run_id": doc["run_id"], "action": action, "state": doc["state"]}) + "\n")
    return 0
