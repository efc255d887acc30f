"""`station campaign start|status|confirm|stop|check`: campaigns from the command line (station.campaigns).

The station service runs campaigns. These commands act on the data directory's store: `start` stores a checked
campaign, `confirm` and `stop` store an operator's request with who made it; the service carries each out on its
next round. When no service serves the data directory, they say so: nothing happens until `station serve` runs.
Exit codes are those of station.cli_common: 1 for a campaign file with problems (each positioned), 2 for a wrong
name, channel or request, 4 when the store cannot be used.
"""

from __future__ import annotations

import getpass
import json
import sys
from contextlib import contextmanager
from typing import Annotated

import typer

from protocols.campaign import load_campaign
from protocols.cells import Cell, load_cell
from protocols.clock import RealClock
from protocols.errors import ProtocolError
from protocols.library import resolve_campaign_path, resolve_cell_path
from station.api.client import ServiceError, service_running
from station.campaigns import (
    CampaignError,
    campaign_doc,
    instrument_problems,
    request_confirm,
    request_stop,
    start_campaign,
)
from station.cli_common import (
    EXIT_INSTRUMENT,
    EXIT_INVALID,
    EXIT_USAGE,
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    app,
    err,
    existing,
    fail,
    json_mode,
    out,
)
from station.config import ConfigError, StationConfig, UnknownChannel, load_config
from station.elsewhere import ElsewhereRefused, campaign_station
from station.lab import LabLink
from station.store import Store, StoreError, UnknownCampaign, UnknownSample

CampaignArg = Annotated[str, typer.Argument(help="campaign id (a unique prefix is enough)")]
ByOpt = Annotated[str | None, typer.Option("--by", help="who does it, as the campaign's events record it (default: "
                                                        "your login name)")]

campaign_app = typer.Typer(help="Campaigns: protocols chained on one sample, run by the station service.",
                           no_args_is_help=True, add_completion=False)
app.add_typer(campaign_app, name="campaign")


@contextmanager
def _errors():
    """Library exceptions as one-line messages and the documented exit codes."""
    try:
        yield
    except ProtocolError as exc:
        raise fail(EXIT_INVALID, str(exc)) from None
    except (UnknownChannel, UnknownSample, UnknownCampaign, CampaignError) as exc:
        raise fail(EXIT_USAGE, f"error: {exc}") from None
    except ConfigError as exc:
        raise fail(EXIT_INVALID, f"station config: {exc}") from None
    except StoreError as exc:
        raise fail(EXIT_INSTRUMENT, f"storage error: {exc}") from None


def _open(config: str | None, data_dir: str | None) -> tuple[StationConfig, Store]:
    """This station's own store: its service runs the campaigns stored there (with a lab database too, whose
    copy of them is forwarded)."""
    cfg, _ = load_config(config)
    store = Store(data_dir or cfg.data_dir, local=True, station=cfg.station)
    err.print(f"data: {store.location}", markup=False, style="dim")
    return cfg, store


def _sample(cfg: StationConfig, store: Store, sample_id: str) -> Cell:
    """The sample's cell: from this station's store, or the lab's (the sample is copied here for its campaign)."""
    if cfg.database:
        return Cell.model_validate(LabLink(cfg.database, cfg.station, store, RealClock()).sample(sample_id).cell)
    return Cell.model_validate(store.sample(sample_id).cell)


def _sent_elsewhere(config: str | None, data_dir: str | None, campaign_id: str, action: str,
                    body: dict | None, json_: bool) -> bool:
    """A campaign another station of the lab runs: the request goes to that station's service (its engine is the
    one that carries it out), with the operator's own token; True when it was sent there."""
    with _errors():
        cfg, _ = load_config(config)
        try:
            client = campaign_station(cfg, data_dir or cfg.data_dir, campaign_id, RealClock().unix())
        except ElsewhereRefused as exc:
            raise fail(EXIT_USAGE, f"error: {exc}") from None
    if client is None:
        return False
    err.print(f"campaign {campaign_id} is another station's: asking its service at {client.base_url}",
              markup=False, style="dim")
    try:
        doc = client.post(f"/campaigns/{campaign_id}/{action}", body)
    except ServiceError as exc:
        raise fail(EXIT_USAGE if 400 <= exc.status < 500 else EXIT_INSTRUMENT, f"error: {exc}") from None
    err.print(f"campaign {doc['campaign_id']}: {action} by you stored at that station; it carries it out on its "
              f"next round", markup=False)
    if json_:
        sys.stdout.write(json.dumps({"campaign_id": doc["campaign_id"], "action": action, "state": doc["state"],
                                     "station": client.base_url}) + "\n")
    return True


def _lab_view(cfg: StationConfig, store: Store) -> Store | None:
    """The lab's database, for reading every station's campaigns; None without one, or while it cannot be
    reached (this station's own are shown, and it says so)."""
    if not cfg.database:
        return None
    try:
        return Store(store.data_dir, cfg.database, station=cfg.station)
    except StoreError as exc:
        err.print(f"the lab's database cannot be reached ({exc}); this station's own campaigns only", markup=False)
        return None


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a service account without one)
        return "an operator"


def _served(store: Store) -> str:
    """What happens next, said plainly: the service carries it out, or nothing does until one runs."""
    if service_running(store.data_dir):
        return "the station service carries it out on its next round"
    return f"no station service serves {store.data_dir}: it begins when `station serve` runs there"


@campaign_app.command("check")
def campaign_check(file: Annotated[str, typer.Argument(help="campaign YAML file, or a library campaign name")],
                   cell: Annotated[str | None, typer.Option("--cell", "-c", help="the sample's cell: a YAML file or "
                                                            "library cell name")] = None,
                   sample: Annotated[str | None, typer.Option("--sample", help="a sample: its cell")] = None,
                   config: ConfigOpt = None, data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """Check a campaign against a cell (or a sample's) and the configured instruments, without storing it."""
    json_mode(json_)
    path = existing(file, resolve_campaign_path, "campaign")
    with _errors():
        cfg, _ = load_config(config)
        if sample is not None:
            _, store = _open(config, data_dir)
            cell_record: Cell | None = _sample(cfg, store, sample)
        else:
            cell_record = load_cell(existing(cell, resolve_cell_path, "cell")) if cell else None
        loaded = load_campaign(path, cell_record)
        if cell_record is not None:
            problems = instrument_problems(loaded, cell_record, cfg)
            if problems:
                raise ProtocolError(problems)
    stages = [s.name for s in loaded.plan.stages]
    if json_:
        sys.stdout.write(json.dumps({"valid": True, "campaign": loaded.name, "stages": stages,
                                     "cell": cell_record.name if cell_record else None}) + "\n")
    else:
        where = f" on cell '{cell_record.name}'" if cell_record else " (no cell given: bindings not checked)"
        err.print(f"{path}: valid{where}: {len(stages)} stages ({', '.join(stages)})", markup=False)


@campaign_app.command("start")
def campaign_start(file: Annotated[str, typer.Argument(help="campaign YAML file, or a library campaign name")],
                   sample: Annotated[str, typer.Option("--sample", help="the sample (station sample new) it runs on")],
                   channel: Annotated[str | None, typer.Option("--channel", help="NAME/ID of the channel the sample "
                                                               "is on now (default: the campaign asks where to put "
                                                               "it)")] = None,
                   by: ByOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None,
                   json_: JsonOpt = False) -> None:
    """Check a campaign against the sample's cell and the instruments, and store it; the station service runs it."""
    json_mode(json_)
    path = existing(file, resolve_campaign_path, "campaign")
    with _errors():
        cfg, store = _open(config, data_dir)
        cell_record = _sample(cfg, store, sample)
        if channel is not None:
            cfg.find(channel)  # a wrong channel is told before the file's problems
        loaded = load_campaign(path, cell_record)
        problems = instrument_problems(loaded, cell_record, cfg)
        if problems:
            raise ProtocolError(problems)
        row = start_campaign(store, RealClock(), loaded, sample, channel=channel, who=_who(by), config=cfg)
        next_ = _served(store)
        doc = campaign_doc(store, row)
    if json_:
        sys.stdout.write(json.dumps({**doc, "next": next_}) + "\n")
        return
    out.print(row.id, markup=False)
    err.print(f"campaign {row.id} ({row.name}) stored on sample {sample}: {len(doc['stages'])} stages; {next_}",
              markup=False)


@campaign_app.command("status")
def campaign_status(campaign_id: Annotated[str | None, typer.Argument(help="one campaign; default: all of them")]
                    = None, config: ConfigOpt = None, data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """Every campaign (every station's, with a lab database), or one with its stages, runs, cycles and decisions."""
    json_mode(json_)
    with _errors():
        cfg, store = _open(config, data_dir)
        lab = _lab_view(cfg, store)
        if campaign_id is None:
            mine = store.campaigns()
            docs = [campaign_doc(store, row, detail=False) for row in mine]
            if lab is not None:
                ids = {row.id for row in mine}
                docs += [campaign_doc(lab, row, detail=False) for row in lab.campaigns() if row.id not in ids]
        else:
            try:
                doc = campaign_doc(store, store.campaign(campaign_id))
            except UnknownCampaign:
                if lab is None:
                    raise
                doc = campaign_doc(lab, lab.campaign(campaign_id))
    if campaign_id is None:
        if json_:
            sys.stdout.write(json.dumps({"campaigns": docs}) + "\n")
            return
        for d in docs:
            out.print(f"{d['campaign_id']}  {d['state']:8} {d['name']:28} sample {d['sample_id']}  stage "
                      f"{d['stage']['index'] + 1}/{d['stage']['count']} {d['stage']['name']}"
                      + (f"  waiting: {d['waiting']}" if d["waiting"] else ""), markup=False)
        return
    if json_:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    out.print(f"campaign {doc['campaign_id']} ({doc['name']}) on sample {doc['sample_id']}: {doc['state']}, stage "
              f"{doc['stage']['index'] + 1}/{doc['stage']['count']} ({doc['stage']['name']})"
              + (f", on {doc['location']}" if doc["location"] else ""), markup=False)
    if doc["waiting"]:
        out.print(f"  waiting: {doc['waiting']}", markup=False)
    elif doc["message"]:
        out.print(f"  {doc['message']}", markup=False)
    for stage in doc["stages"]:
        out.print(f"  stage {stage['name']} ({stage['protocol']} on {stage['where']}): {stage['cycles']} cycles",
                  markup=False)
        for r in stage["runs"]:
            label = {"run": "run", "chunk": f"chunk {r['chunk']}", "rpt": f"RPT after chunk {r['chunk']}"}[r["role"]]
            cycles = r["cycles"]
            span = f" cycles {cycles[0]['cycle']}-{cycles[-1]['cycle']}" if cycles and r["role"] != "rpt" else ""
            out.print(f"    {label:18} run {r['run_id'] or '-':24} {r['channel'] or '-':18} "
                      f"{r['outcome'] or 'active':9}{span}", markup=False)
    for e in doc["events"]:
        out.print(f"  {e['at']}  {e['kind']:8} {e['message']}" + (f" ({e['who']})" if e["who"] and
                                                                  e["who"] not in e["message"] else ""),
                  markup=False)


@campaign_app.command("confirm")
def campaign_confirm(campaign_id: CampaignArg,
                     channel: Annotated[str | None, typer.Option("--channel", help="NAME/ID where the sample is now, "
                                                                 "if not where the campaign asked")] = None,
                     by: ByOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None,
                     json_: JsonOpt = False) -> None:
    """Confirm that the sample is where a waiting campaign asked (or on --channel), or run a held step again."""
    json_mode(json_)
    if _sent_elsewhere(config, data_dir, campaign_id, "confirm", {"channel": channel} if channel else {}, json_):
        return
    with _errors():
        cfg, store = _open(config, data_dir)
        row = request_confirm(store, RealClock(), cfg, campaign_id, _who(by), channel)
        next_ = _served(store)
    message = f"campaign {row.id}: confirmation by {row.confirm_requested['by']} stored; {next_}"  # type: ignore[index]
    err.print(message, markup=False)
    if json_:
        sys.stdout.write(json.dumps({"campaign_id": row.id, "action": "confirm", "state": row.state,
                                     "by": row.confirm_requested["by"],  # type: ignore[index]
                                     "channel": row.confirm_requested.get("channel"),  # type: ignore[union-attr]
                                     "next": next_}) + "\n")


@campaign_app.command("stop")
def campaign_stop(campaign_id: CampaignArg, by: ByOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None,
                  json_: JsonOpt = False) -> None:
    """Stop a campaign: the service stops its active run (if any) and ends it as stopped."""
    json_mode(json_)
    if _sent_elsewhere(config, data_dir, campaign_id, "stop", None, json_):
        return
    with _errors():
        _, store = _open(config, data_dir)
        row = request_stop(store, RealClock(), campaign_id, _who(by))
        next_ = _served(store)
    err.print(f"campaign {row.id}: stop by {row.stop_requested['by']} stored; {next_}",  # type: ignore[index]
              markup=False)
    if json_:
        sys.stdout.write(json.dumps({"campaign_id": row.id, "action": "stop", "state": row.state,
                                     "by": row.stop_requested["by"], "next": next_}) + "\n")  # type: ignore[index]
