"""The ``station`` command line: a thin layer over library functions.

Exit codes (stable, scripts rely on them):
  0    success (a valid protocol; a plan printed; a run finished)
  1    invalid input: the protocol, cell or station.yaml has problems (listed on stderr, one per line)
  2    usage error: unknown option, missing or unreadable file, malformed --set, unknown run or channel, a busy
       channel or one that cannot run the protocol
  3    the run ended without finishing: stopped by a safety limit, the instrument's protection or an operator,
       failed at the instrument, or the instrument no longer holds (or never started) its test
  4    the instrument or the data store could not be used (no answer, refused command, full disk, damaged
       store, a stop the instrument has not confirmed)
  130  interrupted: the run was detached (it keeps running on the instrument) or stopped on request
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from protocols.cells import Cell, load_cell
from protocols.errors import ProtocolError
from protocols.library import resolve_cell_path, resolve_protocol_path
from protocols.loader import LoadedProtocol, load_protocol
from protocols.parameters import parse_overrides
from protocols.program import LoopStep

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_RUN_ENDED, EXIT_INSTRUMENT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

app = typer.Typer(
    name="station",
    help="Battery test station: check, plan and run YAML protocols on Neware and Biologic channels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

ProtocolArg = Annotated[str, typer.Argument(help="protocol YAML file, or a library name such as p1-li-deposition")]
CellOpt = Annotated[str | None, typer.Option("--cell", "-c", help="cell YAML file, or a library cell name")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="override a parameter: NAME=VALUE")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]


def _fail(code: int, message: str) -> typer.Exit:
    for line in message.splitlines():
        err.print(line, markup=False)
    return typer.Exit(code)


def _existing(path: str, resolve, what: str) -> str:
    resolved = resolve(path)
    if not Path(resolved).is_file():
        raise _fail(EXIT_USAGE, f"error: {what} '{path}' not found (give a path to a YAML file or a library name; "
                                f"'station library' lists them)")
    return resolved


def _load(protocol: str, cell: str | None, sets: list[str] | None) -> tuple[LoadedProtocol, Cell | None]:
    try:
        overrides = parse_overrides(sets or [])
    except ValueError as exc:
        raise _fail(EXIT_USAGE, f"error: {exc}") from None
    protocol_path = _existing(protocol, resolve_protocol_path, "protocol")
    cell_path = _existing(cell, resolve_cell_path, "cell") if cell else None
    problems: list[str] = []
    loaded = None
    cell_record = None
    try:
        loaded = load_protocol(protocol_path, overrides)
    except ProtocolError as exc:
        problems.append(str(exc))
    if cell_path:
        try:
            cell_record = load_cell(cell_path)
        except ProtocolError as exc:
            problems.append(str(exc))
    if problems:
        raise _fail(EXIT_INVALID, "\n".join(problems))
    assert loaded is not None
    return loaded, cell_record


@app.command()
def validate(protocol: ProtocolArg, cell: CellOpt = None, set_: SetOpt = None, json_: JsonOpt = False) -> None:
    """Check a protocol (and its binding to a cell): exit 0 if valid, 1 with every problem listed if not."""
    loaded, cell_record = _load(protocol, cell, set_)
    try:
        loaded.bind(cell_record)
    except ProtocolError as exc:
        if json_:
            out.print(json.dumps({"valid": False, "problems": [_problem_dict(p) for p in exc.problems]}))
        raise _fail(EXIT_INVALID, str(exc)) from None
    if json_:
        out.print(json.dumps({"valid": True, "protocol": loaded.name, "cell": cell_record.name if cell_record
                              else None, "problems": []}))
    else:
        where = f" with cell '{cell_record.name}'" if cell_record else " (no cell given: cell-dependent checks skipped)"
        err.print(f"{loaded.source.file}: valid{where}", markup=False)


def _problem_dict(problem) -> dict:
    return {k: getattr(problem, k) for k in ("file", "line", "column", "path", "message", "expected", "found")}


def _scan_rate_setting(channel: str | None, config: str | None):
    """The channel's Biologic scan-rate setting from station.yaml (the default with no channel), and the kind of
    its instrument (``None`` with no channel)."""
    from station.config import ConfigError, load_config
    from station.plan import scan_rate_setting_for

    if channel is None:
        return scan_rate_setting_for(None, None), None
    try:
        cfg, _ = load_config(config)
    except ConfigError as exc:
        raise _fail(EXIT_INVALID, f"station config: {exc}") from None
    try:
        return scan_rate_setting_for(cfg, channel), cfg.find(channel)[0].kind
    except ConfigError as exc:
        raise _fail(EXIT_USAGE, f"error: {exc}") from None


@app.command()
def plan(protocol: ProtocolArg, cell: Annotated[str, typer.Option("--cell", "-c", help="cell YAML file or "
                                                                  "library cell name")],
         set_: SetOpt = None, json_: JsonOpt = False,
         channel: Annotated[str | None, typer.Option("--channel", help="NAME/ID of the channel it is meant for: "
                                                     "shows the values that channel will receive (e.g. a "
                                                     "Biologic Scan_Rate in its configured unit)")] = None,
         config: Annotated[str | None, typer.Option("--config", help="station.yaml for --channel (default: "
                                                    "./station.yaml, $STATION_CONFIG, or the simulated "
                                                    "default)")] = None) -> None:
    """Print the resolved step program with estimated durations and record counts."""
    from station.plan import describe_hold, describe_setpoint, format_duration, plan_document, scan_rate_lines

    loaded, cell_record = _load(protocol, cell, set_)
    assert cell_record is not None
    try:
        program = loaded.bind(cell_record)
    except ProtocolError as exc:
        raise _fail(EXIT_INVALID, str(exc)) from None
    assert program is not None
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
def schema(kind: Annotated[str, typer.Argument(help="'protocol', 'cell' or 'all'")] = "all") -> None:
    """Print JSON Schema for protocol and cell files, for editor completion and checking."""
    from protocols.cells import CellDoc
    from protocols.model import ProtocolDoc

    schemas = {"protocol": ProtocolDoc.model_json_schema(), "cell": CellDoc.model_json_schema()}
    if kind not in (*schemas, "all"):
        raise _fail(EXIT_USAGE, f"error: unknown schema '{kind}'; expected protocol, cell or all")
    document = schemas if kind == "all" else schemas[kind]
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


@app.command()
def library(json_: JsonOpt = False) -> None:
    """List the shipped protocols and cells."""
    from protocols.library import PAIRS, cell_names, protocol_names

    if json_:
        sys.stdout.write(json.dumps({"protocols": protocol_names(), "cells": cell_names(), "pairs": PAIRS}) + "\n")
        return
    out.print("protocols (with the cell they were written for):")
    for name in protocol_names():
        out.print(f"  {name:28} {PAIRS.get(name, '')}", markup=False)
    out.print("cells:")
    for name in cell_names():
        out.print(f"  {name}", markup=False)


from station import cli_runs  # noqa: E402  (registers the run commands on ``app``)

__all__ = ["app", "cli_runs"]
