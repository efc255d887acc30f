"""The ``station`` command line: a thin layer over library functions.

The protocol commands (validate, plan, schema, library) are here and the run commands in station/cli_runs.py;
what both share (the app, consoles, option types and the exit codes scripts rely on) is in station/cli_common.py,
which imports neither."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from protocols.campaign import CampaignDoc
from protocols.cells import CellDoc
from protocols.errors import ProtocolError
from protocols.library import (
    CAMPAIGNS,
    CELLS,
    LIBRARY,
    PAIRS,
    campaign_names,
    cell_names,
    description,
    entry_path,
    protocol_names,
)
from protocols.model import ProtocolDoc
from protocols.program import LoopStep
from station.cli_common import (
    EXIT_INVALID,
    EXIT_USAGE,
    CellOpt,
    JsonOpt,
    ProtocolArg,
    SetOpt,
    app,
    err,
    fail,
    json_mode,
    load_inputs,
    out,
)
from station.config import ConfigError, load_config
from station.instruments import DRIVERS, channel_ranges, kind_capabilities, program_problems, validate_binding
from station.plan import (
    describe_hold,
    describe_setpoint,
    format_duration,
    plan_document,
    scan_rate_lines,
    scan_rate_setting_for,
)


@app.command()
def validate(protocol: ProtocolArg, cell: CellOpt = None, set_: SetOpt = None, json_: JsonOpt = False,
             channel: ChannelCheckOpt = None, instrument: InstrumentCheckOpt = None,
             config: ConfigCheckOpt = None) -> None:
    """Check a protocol (and its binding to a cell): exit 0 if valid, 1 with every problem listed if not; with
    --channel or --instrument also what that channel can run (2, each refusal named), before any run."""
    json_mode(json_)
    loaded, cell_record = load_inputs(protocol, cell, set_)
    try:
        validate_binding(loaded, cell_record)  # the cell's model: too, against the simulated models
    except ProtocolError as exc:
        if json_:
            out.print(json.dumps({"valid": False, "problems": [_problem_dict(p) for p in exc.problems]}))
            json_mode(False)  # stdout already holds this command's one JSON answer
        raise fail(EXIT_INVALID, str(exc)) from None
    if channel or instrument:
        if cell_record is None:
            raise fail(EXIT_USAGE, "error: give --cell to check the protocol against a channel (currents and "
                                   "capacities depend on the cell)")
        _check_channel(loaded.bind(cell_record), channel, instrument, config)
    if json_:
        out.print(json.dumps({"valid": True, "protocol": loaded.name, "cell": cell_record.name if cell_record
                              else None, "problems": [], "channel": channel, "instrument": instrument}))
    else:
        where = f" with cell '{cell_record.name}'" if cell_record else " (no cell given: cell-dependent checks skipped)"
        err.print(f"{loaded.source.file}: valid{where}", markup=False)


ChannelCheckOpt = Annotated[str | None, typer.Option("--channel", help="NAME/ID of a configured channel: check "
                                                    "what it can run")]
InstrumentCheckOpt = Annotated[str | None, typer.Option("--instrument", help="neware or biologic: check what a "
                                                        "channel of that kind can run")]
ConfigCheckOpt = Annotated[str | None, typer.Option("--config", help="station.yaml for --channel (default: "
                                                    "./station.yaml, $STATION_CONFIG, or the simulated default)")]


def _check_channel(program, channel: str | None, instrument: str | None, config: str | None) -> None:
    """What the channel (or any channel of the instrument kind) cannot run, from its declared capabilities: no
    instrument is asked, so the refusals ``station run`` would give come first here (exit 2, each named)."""
    if channel:
        try:
            cfg, _ = load_config(config)
            inst, chan = cfg.find(channel)
            capabilities = kind_capabilities(inst.kind, channel_ranges(chan))
        except ConfigError as exc:
            raise fail(EXIT_USAGE, f"error: {exc}") from None
        label = f"channel {inst.name}/{chan.id}"
    else:
        assert instrument is not None
        if instrument not in DRIVERS:
            raise fail(EXIT_USAGE, f"error: --instrument {instrument!r} is not a known kind; expected one of "
                                   f"{', '.join(sorted(DRIVERS))}")
        capabilities = kind_capabilities(instrument)
        label = f"a {instrument} channel"
    problems = program_problems(capabilities, program)
    if problems:
        raise fail(EXIT_USAGE, f"error: {label} cannot run this program: " + "; ".join(problems))


def _problem_dict(problem) -> dict:
    return {k: getattr(problem, k) for k in ("file", "line", "column", "path", "message", "expected", "found")}


def _scan_rate_setting(channel: str | None, config: str | None):
    """The channel's Biologic scan-rate setting from station.yaml (the default with no channel), and the kind of
    its instrument (``None`` with no channel)."""
    if channel is None:
        return scan_rate_setting_for(None, None), None
    try:
        cfg, _ = load_config(config)
    except ConfigError as exc:
        raise fail(EXIT_INVALID, f"station config: {exc}") from None
    try:
        return scan_rate_setting_for(cfg, channel), cfg.find(channel)[0].kind
    except ConfigError as exc:
        raise fail(EXIT_USAGE, f"error: {exc}") from None


@app.command()
def plan(protocol: ProtocolArg, cell: Annotated[str, typer.Option("--cell", "-c", help="cell YAML file or "
                                                                  "library cell name")],
         set_: SetOpt = None, json_: JsonOpt = False,
         channel: Annotated[str | None, typer.Option("--channel", help="NAME/ID of the channel it is meant for: "
                                                     "shows the values that channel will receive (e.g. a "
                                                     "Biologic Scan_Rate in its configured unit)")] = None,
         config: Annotated[str | None, typer.Option("--config", help="station.yaml for --channel (default: "
                                                    "./station.yaml, $STATION_CONFIG, or the simulated "
                                                    "default)")] = None,
         instrument: InstrumentCheckOpt = None) -> None:
    """Print the resolved step program with estimated durations and record counts; with --channel or
    --instrument, first refuse (exit 2) what that channel cannot run, as `station run` would."""
    json_mode(json_)
    loaded, cell_record = load_inputs(protocol, cell, set_)
    assert cell_record is not None
    try:
        program = loaded.bind(cell_record)
    except ProtocolError as exc:
        raise fail(EXIT_INVALID, str(exc)) from None
    assert program is not None
    if channel or instrument:
        _check_channel(program, channel, instrument, config)
    scan_rate, kind = _scan_rate_setting(channel, config)
    document = plan_document(program, cell_record, scan_rate=scan_rate, channel_given=channel is not None,
                             instrument_kind=kind)
    if json_:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    table = Table(title=f"{program.protocol} on {program.cell}", title_justify="left")
    for column in ("#", "tag", "kind", "set-point", "until", "est. time", "cumulative"):
        table.add_column(column, justify="right" if column in ("#", "est. time", "cumulative") else "left")
    for step, entry in zip(program.steps, document["steps"], strict=True):
        until = ", ".join(t.describe() for t in step.until) or ("-" if not isinstance(step, LoopStep) else "")
        estimate = "" if isinstance(step, LoopStep) else format_duration(entry["estimated_s"])
        if estimate and not entry["estimate_exact"] and entry["estimated_s"] is not None:
            estimate = "~" + estimate
        table.add_row(str(step.index), step.tag or "", step.kind, describe_setpoint(step), until, estimate,
                      format_duration(entry["cumulative_s"]))
    out.print(table)
    for line in scan_rate_lines(program, scan_rate):
        out.print(line, markup=False)
    for line in filter(None, (describe_hold(entry) for entry in document["steps"])):
        out.print(line, markup=False)
    if document["branches"]:
        out.print("branches (taken or not depending on the cell):", markup=False)
        for branch in document["branches"]:
            taken = "  <- the estimate's path" if branch["nominal"] else ""
            out.print(f"  {branch['text']}{taken}", markup=False)
        out.print(f"  {document['estimate_assumes']}", markup=False)
    for note in document["notes"]:
        out.print(f"note: {note}", markup=False)
    for warning in document.get("warnings", []):
        out.print(f"warning: {warning}", markup=False)
    total = format_duration(document["estimated_duration_s"])
    qualifier = ""
    if not document["estimate_exact"]:
        along = "; along the nominal path" if document["branches"] else ""
        qualifier = f" (estimated: voltage-limited steps assume the cell's capacity{along})"
    if not document["estimate_complete"]:
        qualifier += "; some steps have no estimate and are not counted"
    out.print(f"total: {total}{qualifier}", markup=False)
    out.print(f"steps executed: {document['executed_steps']}, records: ~{document['estimated_records']}",
              markup=False)


@app.command()
def schema(kind: Annotated[str, typer.Argument(help="'protocol', 'cell', 'campaign' or 'all'")] = "all",
           json_: JsonOpt = False) -> None:
    """Print JSON Schema for protocol, cell and campaign files, for editor completion and checking (always JSON)."""
    json_mode(json_)
    schemas = {"protocol": ProtocolDoc.model_json_schema(), "cell": CellDoc.model_json_schema(),
               "campaign": CampaignDoc.model_json_schema(by_alias=True)}
    if kind not in (*schemas, "all"):
        raise fail(EXIT_USAGE, f"error: unknown schema '{kind}'; expected protocol, cell, campaign or all")
    document = schemas if kind == "all" else schemas[kind]
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


library_app = typer.Typer(help="The shipped protocols and cells: list them, or copy one to edit it.",
                            no_args_is_help=False, add_completion=False)
app.add_typer(library_app, name="library")


@library_app.callback(invoke_without_command=True)
def library(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List the shipped protocols (with the cell each was written for), cells and campaigns: name, description,
    file."""
    if ctx.invoked_subcommand is not None:
        return
    json_mode(json_)
    protocols = [{"name": n, "cell": PAIRS.get(n), "description": description(LIBRARY / f"{n}.yaml"),
                  "path": str(LIBRARY / f"{n}.yaml")} for n in protocol_names()]
    cells = [{"name": n, "description": description(CELLS / f"{n}.yaml"), "path": str(CELLS / f"{n}.yaml")}
             for n in cell_names()]
    campaigns = [{"name": n, "description": description(CAMPAIGNS / f"{n}.yaml"),
                  "path": str(CAMPAIGNS / f"{n}.yaml")} for n in campaign_names()]
    if json_:
        sys.stdout.write(json.dumps({"protocols": protocols, "cells": cells, "campaigns": campaigns,
                                     "pairs": PAIRS}) + "\n")
        return
    out.print("protocols (with the cell they were written for):")
    for p in protocols:
        out.print(f"  {p['name']:28} {p['cell'] or '':22} {p['description']}", markup=False)
        out.print(f"  {'':28} {p['path']}", markup=False, style="dim")
    out.print("cells:")
    for c in cells:
        out.print(f"  {c['name']:28} {c['description']}", markup=False)
        out.print(f"  {'':28} {c['path']}", markup=False, style="dim")
    out.print("campaigns (station campaign start NAME --sample ID):")
    for c in campaigns:
        out.print(f"  {c['name']:28} {c['description']}", markup=False)
        out.print(f"  {'':28} {c['path']}", markup=False, style="dim")
    out.print("copy one to edit it: station library copy NAME [--to FOLDER]", markup=False)


@library_app.command("copy")
def library_copy(name: Annotated[str, typer.Argument(help="a library protocol, cell or campaign name")],
                 to: Annotated[Path, typer.Option("--to", help="folder to write NAME.yaml into")] = Path("."),
                 force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
                 json_: JsonOpt = False) -> None:
    """Write an editable copy of a library protocol, cell or campaign (with the protocols of its own it names);
    use it by its path afterwards."""
    json_mode(json_)
    source = entry_path(name)
    if source is None:
        raise fail(EXIT_USAGE, f"error: '{name}' is not a library protocol, cell or campaign; 'station library' "
                               f"lists them")
    target = to / source.name
    if target.exists() and not force:
        raise fail(EXIT_USAGE, f"error: {target} exists; give --force to overwrite it or --to another folder")
    extra = _campaign_files(source)
    try:
        to.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        for relative in extra:  # a campaign's own protocols, named relative to it, go with it
            (to / relative).parent.mkdir(parents=True, exist_ok=True)
            (to / relative).write_bytes((source.parent / relative).read_bytes())
    except OSError as exc:
        raise fail(EXIT_USAGE, f"error: cannot write {target}: {exc.strerror or exc}; give --to a writable "
                               f"folder") from None
    if json_:
        sys.stdout.write(json.dumps({"copied": name, "from": str(source), "path": str(target)}) + "\n")
    else:
        err.print(f"copied {name} to {target}; edit it and give its path to validate, plan or run", markup=False)


from station import cli_analysis, cli_campaigns, cli_db, cli_import, cli_plot, cli_runs, cli_tokens  # noqa: E402, F401  (register their commands on ``app``; none imports this)

__all__ = ["app", "cli_campaigns", "cli_runs", "cli_tokens"]


def _campaign_files(source: Path) -> list[str]:
    """The files a library campaign names by a path relative to itself (its own protocols and cells)."""
    if source.parent != CAMPAIGNS:
        return []
    import yaml

    try:
        doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    names = []
    for stage in doc.get("stages", []) if isinstance(doc, dict) else []:
        for value in (stage.get("protocol"), stage.get("cell"), (stage.get("rpt") or {}).get("protocol")):
            if isinstance(value, str) and "/" in value and (CAMPAIGNS / value).is_file():
                names.append(value)
    return sorted(set(names))
