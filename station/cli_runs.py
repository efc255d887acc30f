"""The run commands of the ``station`` CLI: run, status, runs, pause, continue, stop, attach, export, sim.

Each command opens the station (config, store, instruments), calls the library, and formats the result. The exit
codes are the ones documented in :mod:`station.cli`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.live import Live
from rich.table import Table

from drivers.base import DriverError
from protocols.cells import Cell, load_cell
from protocols.clock import RealClock
from protocols.errors import ProtocolError
from protocols.library import resolve_cell_path
from protocols.parameters import parse_overrides
from station import cli_remote
from station.analysis.cycling import cycle_table
from station.analysis.steps import StepBounds
from station.api.tokens import owner_name
from station.cli_common import (
    EXIT_INSTRUMENT,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_RUN_ENDED,
    EXIT_USAGE,
    CellOpt,
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    ProtocolArg,
    SetOpt,
    app,
    err,
    existing,
    fail,
    json_mode,
    load_inputs,
    out,
)
from station.config import DEFAULT_API_PORT, ConfigError, UnknownChannel, load_config
from station.documents import event_doc, run_doc, sample_doc
from station.elsewhere import ElsewhereRefused, other_station
from station.export import ExportError, MissingDependency, export_run
from station.instruments import InstrumentError
from station.live_view import DEFAULT_RESOLUTION, RESOLUTIONS, LiveView, state_text
from station.plan import format_duration
from station.run_data import run_data
from station.run_policy import TERMINAL_STATES, RunState
from station.runs import Progress, RunEnded, RunError
from station.samples import register_sample
from station.session import Station
from station.store import (
    RECORD_DTYPE,
    ChannelBusy,
    Store,
    StoreError,
    StoreUnreachable,
    UnknownRun,
    UnknownSample,
)

RunArg = Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")]


@contextmanager
def _errors():
    """Map library exceptions to one-line messages and the documented exit codes."""
    try:
        yield
    except ProtocolError as exc:
        raise fail(EXIT_INVALID, str(exc)) from None
    except (UnknownChannel, UnknownRun, UnknownSample, MissingDependency) as exc:  # named wrong, or not installed
        raise fail(EXIT_USAGE, f"error: {exc}") from None
    except ConfigError as exc:
        raise fail(EXIT_INVALID, f"station config: {exc}") from None
    except ChannelBusy as exc:
        raise fail(EXIT_USAGE, f"error: {exc}") from None
    except RunEnded as exc:
        raise fail(EXIT_RUN_ENDED, str(exc)) from None
    except RunError as exc:
        raise fail(EXIT_INSTRUMENT if exc.instrument else EXIT_USAGE, f"error: {exc}") from None
    except KeyError as exc:
        raise fail(EXIT_USAGE, f"error: {exc}") from None
    except StoreError as exc:
        raise fail(EXIT_INSTRUMENT, f"storage error: {exc}") from None
    except (DriverError, InstrumentError) as exc:
        raise fail(EXIT_INSTRUMENT, f"instrument error: {exc}") from None
    except ExportError as exc:
        raise fail(EXIT_INSTRUMENT, f"export error: {exc}") from None


def _open(config: str | None, data_dir: str | None, *, dry_run: bool = False) -> Station:
    cfg, _ = load_config(config)
    station = Station.open(cfg, dry_run=dry_run, data_dir=data_dir)
    _say_where(station.store)
    return station


def _say_where(store: Store) -> None:
    """Every command that reads the data directory says which one: with a per-user default and --data-dir and
    $STATION_DATA to move it, a user must never wonder where the runs went."""
    err.print(f"data: {store.location}", markup=False, style="dim")


def _store(config: str | None, data_dir: str | None) -> Store:
    """What the reading commands read: the lab's database when station.yaml names one (every station's runs), this
    station's own store while it cannot be reached (said so), else the data directory's."""
    cfg, _ = load_config(config)
    try:
        store = Store(data_dir or cfg.data_dir, cfg.database, station=cfg.station)
    except StoreUnreachable as exc:
        err.print(f"the lab's database cannot be reached ({exc}); showing this station's own store", markup=False)
        store = Store(data_dir or cfg.data_dir, local=True, station=cfg.station)
    _say_where(store)
    return store


def _service(config: str | None, data_dir: str | None, run_id: str | None = None) -> cli_remote.ServiceClient | None:
    """The service serving the data directory, if one does; the commands then go through it. ``run_id``: a run
    an operator acts on, which may be another station's (its service is then the one asked)."""
    with _errors():
        cfg, _ = load_config(config)
    where = data_dir or cfg.data_dir
    if run_id is not None:
        try:
            elsewhere = other_station(cfg, where, run_id, RealClock().unix())
        except ElsewhereRefused as exc:
            raise fail(EXIT_USAGE, f"error: {exc}") from None
        if elsewhere is not None:
            err.print(f"run {run_id} is another station's: asking its service at {elsewhere.base_url}", markup=False,
                      style="dim")
            return elsewhere
    try:
        client = cli_remote.ServiceClient.find(where)
    except cli_remote.ServiceError as exc:
        raise cli_remote.refused(exc) from None
    if client is not None:
        err.print(f"data: {where} (served by the station service at {client.base_url})", markup=False, style="dim")
    return client


def _progress_line(p: Progress) -> str:
    s = p.status
    parts = [f"run {p.run_id}", state_text(p.state, p.contact_lost_s, p.stop_requested), f"records {p.records}"]
    if s is not None and p.contact_lost_s is None:
        parts += [f"step {s.step_index or '-'}", f"tag {p.tag or '-'}", f"cycle {s.cycle or '-'}"]
        if s.voltage is not None:
            parts.append(f"{s.voltage:.4f} V")
        if s.current is not None:
            parts.append(f"{s.current * 1e3:.4f} mA")
        if s.step_capacity is not None:
            parts.append(f"step Q {s.step_capacity * 1e3:.4f} mAh")
        if s.test_time is not None:
            parts.append(f"at {format_duration(s.test_time)}")
    if p.waiting is not None:
        parts.append(p.waiting)
    if p.eta_s is not None:
        parts.append(f"ETA {format_duration(p.eta_s)}")
    return "  ".join(parts)


def _step_bounds(blocks: Iterable[np.ndarray]) -> StepBounds:
    """The records that open or close a step run, read block by block (for a run this process did not store from
    its first record: see :func:`_summary`)."""
    bounds = StepBounds(RECORD_DTYPE)
    for block in blocks:
        bounds.add(block)
    return bounds


def _stored_bounds(station: Station, run_id: str) -> StepBounds:
    """Step bounds gathered as this process stores the run's records (``Store.on_stored``)."""
    bounds = StepBounds(RECORD_DTYPE)

    def stored(stored_run: str, block: np.ndarray) -> None:
        if stored_run == run_id:
            bounds.add(block)

    station.store.on_stored = stored
    return bounds


def _run_bounds(store: Store, run_id: str, seen: StepBounds | None) -> StepBounds:
    """``seen`` if it is the whole run (from its first record, as many records as are stored), else read back."""
    if seen is not None and seen.first_seq in (None, 1) and seen.count == store.record_count(run_id):
        return seen
    return _step_bounds(store.iter_record_blocks(run_id))


def _summary(station: Station, run_id: str, seen: StepBounds | None = None) -> dict:
    """The run's summary from its step bounds: those ``seen`` as this process stored the run when they are the whole
    run (from its first record, every record stored), else read back from the store."""
    run = station.store.run(run_id)
    bounds = _run_bounds(station.store, run.id, seen)
    records, count = bounds.records(), bounds.count
    summary = cycle_table(run_data(run, records))
    cycles = [{"cycle": int(c), "tag": t, "charge_ah": q_c, "discharge_ah": q_d, "ce": None if e != e else e}
              for c, t, q_c, q_d, e in zip(summary.cycle, summary.tag, summary.charge_ah.tolist(),
                                           summary.discharge_ah.tolist(), summary.ce.tolist(), strict=True)]
    return {"run_id": run.id, "state": run.state, "message": run.message, "channel": run.channel,
            "protocol": run.protocol_name, "cell": run.cell["name"], "records": count,
            "test_time_s": float(records["test_time"][-1]) if len(records) else 0.0,
            "data_dir": str(station.store.data_dir), "cycles": cycles}


def _print_summary(doc: dict) -> None:
    out.print(f"run {doc['run_id']}: {doc['state']}" + (f" ({doc['message']})" if doc["message"] else ""),
              markup=False)
    out.print(f"  {doc['protocol']} on {doc['cell']}, channel {doc['channel']}: {doc['records']} records over "
              f"{format_duration(doc['test_time_s'])}", markup=False)
    cycles = [c for c in doc["cycles"] if c["charge_ah"] or c["discharge_ah"]]
    if cycles:
        shown = cycles if len(cycles) <= 6 else [*cycles[:3], None, *cycles[-2:]]
        out.print("  cycle  tag                charge mAh  discharge mAh   CE", markup=False)
        for c in shown:
            if c is None:
                out.print("  ...", markup=False)
                continue
            ce = f"{c['ce']:.4f}" if c["ce"] is not None else "-"
            out.print(f"  {c['cycle']:5d}  {c['tag'] or '-':16} {c['charge_ah'] * 1e3:11.4f} "
                      f"{c['discharge_ah'] * 1e3:14.4f}  {ce}", markup=False)
    out.print(f"  analyse: station analyze {doc['run_id']} --data-dir {doc['data_dir']}", markup=False)
    out.print(f"  export: station export {doc['run_id']} --data-dir {doc['data_dir']}", markup=False)


def _interrupted(station: Station, run_id: str) -> int:
    """Ctrl-C: the operator chooses; without a terminal (or in a dry run) the channel is stopped, never orphaned."""
    choice = "s"
    if sys.stdin.isatty() and not station.dry_run:
        choice = typer.prompt("stop the run, or detach and leave it running on the instrument? [s/d]",
                              default="s").strip().lower()[:1]
    if choice == "d":
        station.store.add_event(run_id, "operator", "detached; the program keeps running on the instrument",
                                station.clock.unix())
        err.print(f"detached: run {run_id} keeps running on the instrument; `station attach {run_id}` resumes "
                  f"watching it", markup=False)
        return EXIT_INTERRUPTED
    if station.manager.stop(run_id, "stopped by the operator (interrupted)"):
        err.print(f"stopped: run {run_id}; the instrument confirmed the channel is in a safe state", markup=False)
        return EXIT_INTERRUPTED
    channel = station.store.run(run_id).channel
    err.print(f"run {run_id}: could not stop channel {channel}: the instrument did not confirm it, so the cell may "
              f"still be running. The stop stays requested and is sent again on every poll until the instrument "
              f"confirms it; Ctrl-C again leaves it pending (`station stop {run_id}` or `station attach {run_id}` "
              f"retries it later)", markup=False)
    try:
        station.manager.supervise([run_id], station.poll_seconds(run_id))
    except KeyboardInterrupt:
        err.print(f"run {run_id}: stop still pending; the cell may still be running", markup=False)
        return EXIT_INSTRUMENT
    state = station.store.run(run_id).state
    err.print(f"run {run_id}: {state}; the instrument confirmed the channel is in a safe state", markup=False)
    return EXIT_INTERRUPTED


def _supervise(station: Station, run_id: str, json_: bool) -> int:
    poll = station.poll_seconds(run_id)

    def then_forward(show: Callable[[Progress], None] | None) -> Callable[[Progress], None]:
        def tell(p: Progress) -> None:
            if show is not None:
                show(p)
            station.forward_to_lab()
        return tell

    seen = _stored_bounds(station, run_id)
    try:
        if json_ or not sys.stderr.isatty():
            # logs and pipes get one line per poll of a real run; a dry run only prints its summary
            lines = None if station.dry_run else (lambda p: err.print(_progress_line(p), markup=False))
            station.manager.supervise([run_id], poll, on_progress=then_forward(lines))
        else:
            kind = station.store.run(run_id).instrument.get("kind")
            view = LiveView(run_id, RESOLUTIONS.get(kind, DEFAULT_RESOLUTION), simulated=station.dry_run)
            with Live(console=err, refresh_per_second=4, transient=False) as live:
                station.manager.supervise([run_id], poll,
                                          on_progress=then_forward(lambda p: live.update(view.update(p))))
    except KeyboardInterrupt:
        return _interrupted(station, run_id)
    doc = _summary(station, run_id, seen)
    if json_:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        _print_summary(doc)
    return 0 if doc["state"] == RunState.FINISHED else EXIT_RUN_ENDED


@app.command()
def run(protocol: ProtocolArg, cell: CellOpt = None, channel: Annotated[str | None, typer.Option(
        "--channel", help="NAME/ID from station.yaml; default: the first free channel that fits")] = None,
        set_: SetOpt = None, dry_run: Annotated[bool, typer.Option("--dry-run", help="run on simulated instruments "
                                                                   "as fast as possible")] = False,
        data_dir: DataDirOpt = None, config: ConfigOpt = None, json_: JsonOpt = False,
        sample: Annotated[str | None, typer.Option("--sample", help="the sample (station sample new) to run: its "
                                                   "cell record is the cell; the run belongs to it")] = None,
        watch: Annotated[bool, typer.Option("--watch", help="with a station service: follow the run live until it "
                                            "ends (Ctrl-C only stops watching)")] = False) -> None:
    """Start a protocol on a channel. With a station service serving the data directory the service starts and
    watches it, and this returns once it runs (--watch follows it); without one this process watches it to the end
    (Ctrl-C: stop or detach). Dry runs always run here."""
    json_mode(json_)
    if (cell is None) == (sample is None):
        raise fail(EXIT_USAGE, "error: give the cell on the channel with --cell (a YAML file or a library name) or "
                               "the sample with --sample, one of them")
    loaded, cell_record = load_inputs(protocol, cell, set_)  # checked here first: positioned errors, no round trip
    client = None if dry_run else _service(config, data_dir)
    if client is not None:
        body = cli_remote.start_body(protocol, cell, sample, channel, parse_overrides(set_ or []))
        raise typer.Exit(cli_remote.run(client, body, watch=watch, json_=json_))
    with _errors():
        station = _open(config, data_dir, dry_run=dry_run)
    try:
        with _errors():
            if sample is not None:
                cell_record = Cell.model_validate(station.sample(sample).cell)
            try:
                run_id = station.launch(loaded, cell_record, channel, sample_id=sample)  # binds, once
            except BaseException:
                if station.claimed is not None:  # stored as failed, with why: say which run to look at
                    err.print(f"run {station.claimed} did not start; `station status {station.claimed}` has its "
                              f"events", markup=False)
                raise
        err.print(f"run {run_id} started on {station.store.run(run_id).channel}"
                  + (" (dry run, simulated instrument)" if dry_run else ""), markup=False)
        with _errors():
            code = _supervise(station, run_id, json_)
    finally:
        station.close()
    raise typer.Exit(code)


@app.command()
def attach(run_id: RunArg, config: ConfigOpt = None, data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """Re-attach to a run still going on its instrument (after a crash or a detach) and catch up its data."""
    json_mode(json_)
    with _errors():
        station = _open(config, data_dir)
    try:
        with _errors():
            row = station.store.run(run_id)
            run_id = row.id
            if row.unconfirmed and not row.dry_run:
                err.print(f"run {run_id} was never confirmed as started; asking channel {row.channel} for barcode "
                          f"{run_id}", markup=False)
                if station.manager.reconcile(run_id, station.instruments.driver(row.channel)) is RunState.FAILED:
                    err.print(f"run {run_id}: never started on the instrument; marked failed (start a new run)",
                              markup=False)
                    raise typer.Exit(EXIT_RUN_ENDED)
            station.attach(run_id)
            err.print(f"attached to run {run_id}; catching up from record {station.store.run(run_id).last_seq + 1}",
                      markup=False)
            code = _supervise(station, run_id, json_)
    finally:
        station.close()
    raise typer.Exit(code)


def _operator(action: str, run_id: str, config: str | None, data_dir: str | None, json_: bool = False) -> None:
    client = _service(config, data_dir, run_id)
    if client is not None:
        raise typer.Exit(cli_remote.operator(client, action, run_id, json_))
    with _errors():
        station = _open(config, data_dir)
    try:
        with _errors():
            row = station.store.run(run_id)
            state = (station.pause if action == "pause" else station.resume)(row.id, owner_name())
            err.print(f"run {row.id}: {state}", markup=False)
            if json_:
                sys.stdout.write(json.dumps({"run_id": row.id, "action": action, "state": str(state)}) + "\n")
    finally:
        station.close()


@app.command()
def pause(run_id: RunArg, config: ConfigOpt = None, data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """Pause a running run at the instrument."""
    json_mode(json_)
    _operator("pause", run_id, config, data_dir, json_)


@app.command(name="continue")
def continue_(run_id: RunArg, config: ConfigOpt = None, data_dir: DataDirOpt = None,
              json_: JsonOpt = False) -> None:
    """Continue a paused run."""
    json_mode(json_)
    _operator("continue", run_id, config, data_dir, json_)


@app.command()
def stop(run_id: RunArg, force: Annotated[bool, typer.Option(
        "--force", help="abandon a run whose test is gone from the instrument (refused while it still runs)")] = False,
         config: ConfigOpt = None, data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """Stop a run; it counts as stopped only when the instrument confirms the channel is in a safe state."""
    json_mode(json_)
    client = _service(config, data_dir, run_id)
    if client is not None:
        raise typer.Exit(cli_remote.operator(client, "stop", run_id, json_, force=force))
    with _errors():
        station = _open(config, data_dir)
    try:
        with _errors():
            confirmed, message = station.stop(run_id, force=force, who=owner_name())
    finally:
        station.close()
    err.print(message, markup=False)
    if json_:
        sys.stdout.write(json.dumps({"run_id": run_id, "action": "stop", "confirmed": confirmed,
                                     "message": message}) + "\n")
    raise typer.Exit(0 if confirmed else EXIT_INSTRUMENT)


def _state_of(doc: dict) -> str:
    return state_text(doc["state"], doc["contact_lost_s"], "yes" if doc["stop_pending"] else None)


def _asking(row) -> None:
    err.print(f"run {row.id}: unconfirmed start or stop; asking channel {row.channel}", markup=False)


def _settle(config: str | None, data_dir: str | None, store: Store) -> None:
    """Runs nobody looks after and whose truth only the instrument knows (an unconfirmed start or stop) are
    settled with it before they are shown, so that `status` never reports what the station merely assumed."""
    rows = [r for r in store.runs(active_only=True, station=store.station) if r.dry_run or r.unconfirmed or
            r.stop_requested]
    if not rows:
        return
    station = _open(config, data_dir)
    try:
        for note in station.settle(rows, on_contact=_asking):
            err.print(note, markup=False)
    finally:
        station.close()


@app.command()
def runs(config: ConfigOpt = None, data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """List every run in the data directory."""
    json_mode(json_)
    client = _service(config, data_dir)
    if client is not None:
        rows = cli_remote.call(client.get, "/runs", limit=100_000)["runs"]
    else:
        with _errors():
            store = _store(config, data_dir)
            rows = [run_doc(r, RealClock().unix()) for r in store.runs(light=True)]
    if json_:
        sys.stdout.write(json.dumps({"runs": rows}, indent=2) + "\n")
        return
    table = Table()  # the message is in `station status RUN`; here what fits a terminal line
    table.add_column("run", no_wrap=True, min_width=22)  # ids are typed back in: never cut them
    table.add_column("state", no_wrap=True)
    table.add_column("channel", no_wrap=True)
    table.add_column("records", justify="right", no_wrap=True)
    table.add_column("protocol", overflow="fold")
    table.add_column("sample", overflow="fold")
    table.add_column("duration", justify="right", no_wrap=True)
    for r in rows:
        table.add_row(r["run_id"], _state_of(r), r["channel"], str(r["records"]), r["protocol"], r["sample"] or "-",
                      format_duration(r["duration_s"]) if r["duration_s"] is not None else "-")
    out.print(table)


@app.command()
def status(run_id: Annotated[str | None, typer.Argument(help="one run; default: every channel")] = None,
           config: ConfigOpt = None, data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """Channels and their runs; with a run id, that run's state and events. Live from the station service when
    one serves the data directory; otherwise as last stored, and it says so."""
    json_mode(json_)
    client = _service(config, data_dir)
    with _errors():
        cfg, origin = load_config(config)
    if client is not None:
        if run_id:
            doc = cli_remote.call(client.get, f"/runs/{run_id}")
            doc["events"] = cli_remote.call(client.get, f"/runs/{doc['run_id']}/events")["events"]
        else:
            channels = cli_remote.call(client.get, "/channels")["channels"]
            doc = {"config": origin, "data_dir": str(data_dir or cfg.data_dir), "channels": [
                {"channel": c["channel"], "run": c["run"], "live": c["live"]} for c in channels]}
        doc["service"] = client.base_url
    else:
        with _errors():
            store = Store(data_dir or cfg.data_dir, cfg.database, station=cfg.station)
            _say_where(store)
            _settle(config, data_dir, store)
            now = RealClock().unix()
            if run_id:
                row = store.run(run_id)
                doc = {**run_doc(row, now), "events": [event_doc(e) for e in store.events(row.id)]}
            else:
                active = {r.channel: r for r in store.runs(active_only=True, light=True)}
                doc = {"config": origin, "data_dir": str(store.data_dir), "channels": [
                    {"channel": c, "run": run_doc(active[c], now) if c in active else None}
                    for c in cfg.channel_ids()]}
            doc["service"] = None
            if any(c.get("run") for c in doc.get("channels", ())) or (run_id and doc["state"] not in
                                                                       TERMINAL_STATES):
                err.print(f"no station service watches {store.data_dir}: states are as last stored (live states: "
                          f"`station serve`)", markup=False)
    if json_:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    if run_id:
        out.print(f"run {doc['run_id']}: {_state_of(doc)} on {doc['channel']} ({doc['protocol']} on {doc['cell']}), "
                  f"{doc['records']} records", markup=False)
        for e in doc["events"]:
            out.print(f"  {e['kind']:10} {e['message']}", markup=False)
        return
    table = Table(title=f"station ({doc['config']})", title_justify="left")
    table.add_column("channel", no_wrap=True)
    table.add_column("run", no_wrap=True, min_width=22)
    table.add_column("state", no_wrap=True)
    table.add_column("protocol", overflow="fold")
    table.add_column("records", justify="right", no_wrap=True)
    live = doc["service"] is not None
    if live:
        for column in ("cycle", "V", "I"):
            table.add_column(column, justify="right", no_wrap=True)
    for c in doc["channels"]:
        r = c["run"]
        row = [c["channel"], r["run_id"] if r else "-", _state_of(r) if r else "free", r["protocol"] if r else "",
               str(r["records"]) if r else ""]
        if live:
            v = c.get("live") or {}
            row += [str(v.get("cycle") or ""), f"{v['voltage_v']:.4f} V" if v.get("voltage_v") is not None else "",
                    f"{v['current_a'] * 1e3:.4g} mA" if v.get("current_a") is not None else ""]
        table.add_row(*row)
    out.print(table)


@app.command()
def export(run_id: RunArg, format_: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
           out_path: Annotated[str | None, typer.Option("--out", help="file or directory to write")] = None,
           summary: Annotated[bool, typer.Option("--summary", help="one row per cycle instead of records")] = False,
           config: ConfigOpt = None, data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """Write a run's records (Battery Data Format columns; impedance spectra to their own .eis file) or cycle
    summary, plus a JSON metadata sidecar."""
    json_mode(json_)
    if format_ not in ("csv", "parquet"):
        raise fail(EXIT_USAGE, f"error: --format must be csv or parquet, found '{format_}'")
    with _errors():
        store = _store(config, data_dir)
        files = export_run(store, run_id, Path(out_path) if out_path else None, format_, summary)
    if json_:
        sys.stdout.write(json.dumps({"files": [str(f) for f in files]}) + "\n")
    else:
        for f in files:
            out.print(str(f), markup=False)


sim_app = typer.Typer(help="Serve simulated instruments for other programs.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")


@sim_app.command("neware")
def sim_neware(host: Annotated[str, typer.Option(help="address to bind (loopback unless told otherwise)")] =
               "127.0.0.1",
               port: Annotated[int, typer.Option(help="TCP port (the real BTS Client uses 502)")] = 502,
               devices: Annotated[int, typer.Option(help="number of devices (devid from 21)")] = 1,
               channels: Annotated[int, typer.Option(help="channels per sub-device")] = 8,
               subdevices: Annotated[int, typer.Option(help="sub-devices per device")] = 1,
               cell: Annotated[str, typer.Option(help="library cell or cell file placed on every channel")] =
               "predeposited-ncm622",
               speed: Annotated[float, typer.Option(help="simulated seconds per real second")] = 1.0,
               json_: JsonOpt = False) -> None:
    """Serve a simulated Neware BTS Client API on HOST:PORT until interrupted (--json: one line with the address
    once it listens, useful with --port 0)."""
    json_mode(json_)
    from simulators.neware import serve  # only this command runs a simulator server in the CLI's process

    with _errors():
        cell_record = load_cell(cell)
        if not cell_record.model_type:
            raise ConfigError(f"cell '{cell_record.name}' names no simulated model ('model:')")
    options: dict = {"params": dict(cell_record.model_params)}
    for key in ("area", "capacity", "thickness", "ocv"):
        if getattr(cell_record, key) is not None:
            options[key] = getattr(cell_record, key)
    if cell_record.temperature is not None:
        options["temperature"] = cell_record.temperature + 273.15  # cell records are in degC, models in K
    if speed <= 0:
        raise fail(EXIT_USAGE, "error: --speed must be positive")
    err.print(f"simulated BTS on {host}:{port}: {devices} device(s) x {subdevices} x {channels} channels, cell "
              f"{cell_record.name}, speed x{speed:g}; Ctrl-C to stop", markup=False)

    def listening(sim) -> None:
        sys.stdout.write(json.dumps({"host": sim.host, "port": sim.port, "channels": len(sim.channels),
                                     "cell": cell_record.name, "speed": speed}) + "\n")
        sys.stdout.flush()

    try:
        serve(host, port, devices=devices, channels=channels, subdevices=subdevices, cell=cell_record.model_type,
              cell_options=options, speed=speed, on_ready=listening if json_ else None)
    except OSError as exc:
        raise fail(EXIT_USAGE, f"error: cannot serve on {host}:{port}: {exc.strerror}; choose another --port") \
            from None


@app.command()
def serve(config: ConfigOpt = None, data_dir: DataDirOpt = None,
          rescan: Annotated[float, typer.Option("--rescan", help="seconds between looks for runs to adopt")] = 10.0,
          host: Annotated[str | None, typer.Option("--host", help="address the API binds (default 127.0.0.1: this "
                                                   "PC only); any other is your explicit choice: put TLS in front")]
          = None,
          port: Annotated[int | None, typer.Option("--port", help="API port (default: api: port: in station.yaml, "
                                                   f"else {DEFAULT_API_PORT}; 0 = any free port)")] = None,
          json_: JsonOpt = False) -> None:
    """Watch every active run of the data directory and serve the HTTP API until SIGTERM or Ctrl-C (one service
    per data directory); programs keep running on their instruments when it stops."""
    json_mode(json_)
    # the web stack is loaded by the command that serves it, not by every command (a dry run starts faster)
    from station.api.app import API, ApiState, create_app
    from station.api.server import ApiBindError, ApiServer, is_loopback
    from station.api.tokens import TokenError, load_tokens, token_path
    from station.service import ServiceRunning, StationService  # and campaigns, which a single run does not use

    if rescan <= 0:
        raise fail(EXIT_USAGE, "error: --rescan must be positive")
    if port is not None and not 0 <= port <= 65535:
        raise fail(EXIT_USAGE, f"error: --port must be 0-65535, found {port}")
    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        stop.set()

    with _errors():
        station = _open(config, data_dir)
    api_host = host or station.config.api.host
    if host is None and not is_loopback(api_host):
        station.close()
        raise fail(EXIT_USAGE, f"error: station.yaml asks the API to bind {api_host}, beyond this PC; give it "
                               f"explicitly with --host {api_host} (and put TLS in front: docs/service.md)")
    service = StationService(station, rescan_s=rescan, say=lambda line: err.print(line, markup=False))
    try:
        service.claim()
    except ServiceRunning as exc:
        station.close()
        raise fail(EXIT_USAGE, f"error: {exc}") from None
    api = server = None
    try:
        tokens = load_tokens(station.store.data_dir, station.config.api.users)
        api = ApiState(station, service.board, service.commands, tokens)
        server = ApiServer(create_app(api), api_host, station.config.api.port if port is None else port)
    except (TokenError, ApiBindError, StoreError) as exc:
        if api is not None:
            api.close()
        service.close()
        raise fail(EXIT_USAGE, f"error: {exc}") from None
    server.start()
    service.address = (server.host, server.port)
    service.write_info()
    handled = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGBREAK] if hasattr(signal, "SIGBREAK") else [])
    previous = {s: signal.signal(s, request_stop) for s in handled}
    url = f"http://{server.host}:{server.port}"
    if json_:
        sys.stdout.write(json.dumps({"serving": str(station.store.data_dir), "pid": os.getpid(), "api": url}) + "\n")
        sys.stdout.flush()
    err.print(f"serving {station.store.data_dir} (pid {os.getpid()}); API {url}{API} (token: "
              f"{token_path(station.store.data_dir)}); SIGTERM or Ctrl-C stops watching, the instruments keep "
              f"running", markup=False)
    if not is_loopback(server.host):
        err.print(f"the API listens on {server.host}, beyond this PC, over plain HTTP: put TLS in front of it (a "
                  f"reverse proxy, see docs/service.md) before tokens cross a network", markup=False)
    try:
        with _errors():
            service.serve(stop.is_set)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        watched = service.watched()
        server.stop()
        api.close()
        service.close()
        err.print(f"stopped serving; {len(watched)} run(s) keep running on their instruments unwatched until a "
                  f"service or `station attach` watches them again", markup=False)


sample_app = typer.Typer(help="Samples: one physical cell each, with an id to print as its barcode.",
                         no_args_is_help=True, add_completion=False)
app.add_typer(sample_app, name="sample")


@sample_app.command("new")
def sample_new(cell: Annotated[str, typer.Option("--cell", "-c", help="its cell record: a YAML file or library name")],
               name: Annotated[str | None, typer.Option("--name", help="what the lab calls it (default: the id)")]
               = None,
               operator: Annotated[str | None, typer.Option("--operator", help="who assembled it")] = None,
               notes: Annotated[str | None, typer.Option("--notes", help="free text")] = None,
               meta: Annotated[list[str] | None, typer.Option("--meta", help="a fact kept with it: KEY=VALUE")]
               = None,
               config: ConfigOpt = None, data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """Register a sample (a physical cell) and print its id, to write or print on it as a barcode."""
    json_mode(json_)
    metadata = {}
    for item in meta or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(EXIT_USAGE, f"error: --meta '{item}' is not KEY=VALUE")
        metadata[key.strip()] = value.strip()
    try:
        cell_record = load_cell(existing(cell, resolve_cell_path, "cell"))
    except ProtocolError as exc:
        raise fail(EXIT_INVALID, str(exc)) from None
    with _errors():
        store = _store(config, data_dir)
        row = register_sample(store, RealClock(), cell_record, name=name, operator=operator, notes=notes,
                              metadata=metadata)
        sample_id = row.id
    if json_:
        sys.stdout.write(json.dumps(sample_doc(row)) + "\n")
    else:
        out.print(sample_id, markup=False)
        err.print(f"sample {sample_id} ({row.name}) on cell {cell_record.name}; run it with --sample {sample_id}",
                  markup=False)


@sample_app.command("list")
def sample_list(config: ConfigOpt = None, data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """Every sample of the data directory."""
    json_mode(json_)
    with _errors():
        rows = [sample_doc(r) for r in _store(config, data_dir).samples()]
    if json_:
        sys.stdout.write(json.dumps({"samples": rows}) + "\n")
        return
    for r in rows:
        out.print(f"{r['sample_id']}  {r['name']:20} {r['cell'] or '':22} {r['created_at']}", markup=False)


@sample_app.command("show")
def sample_show(sample_id: Annotated[str, typer.Argument(help="the sample's id")], config: ConfigOpt = None,
                data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """A sample and every run on it, oldest first."""
    json_mode(json_)
    with _errors():
        store = _store(config, data_dir)
        doc = sample_doc(store.sample(sample_id))
        doc["runs"] = [run_doc(r, RealClock().unix()) for r in store.runs_of_sample(sample_id)]
    if json_:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    out.print(f"sample {doc['sample_id']} ({doc['name']}), cell {doc['cell']}, created {doc['created_at']}"
              + (f" by {doc['operator']}" if doc["operator"] else ""), markup=False)
    if doc["notes"]:
        out.print(f"  notes: {doc['notes']}", markup=False)
    for r in doc["runs"]:
        out.print(f"  run {r['run_id']}  {r['protocol']:24} {r['state']:9} {r['end_reason'] or ''}", markup=False)
