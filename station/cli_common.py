"""What every ``station`` command shares: the app, the consoles, the option types, the exit codes, loading inputs.

The protocol commands (station/cli.py) and the run commands (station/cli_runs.py) both import this module and
not each other.

Exit codes (stable, scripts rely on them):
  0    success (a valid protocol; a plan printed; a run finished)
  1    invalid input: the protocol, cell or station.yaml has problems (listed on stderr, one per line)
  2    usage error: unknown option, missing or unreadable file, malformed --set, unknown run or channel, a busy
       channel or one that cannot run the protocol, a format whose optional package is not installed
  3    the run ended without finishing: stopped by a safety limit, the instrument's protection or an operator,
       failed at the instrument, or the instrument no longer holds (or never started) its test
  4    the instrument or the data store could not be used (no answer, refused command, full disk, damaged
       store, a stop the instrument has not confirmed)
  130  interrupted: the run was detached (it keeps running on the instrument) or stopped on request
"""

from __future__ import annotations

import json
import sys
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from protocols.cells import Cell, load_cell
from protocols.errors import ProtocolError
from protocols.library import resolve_cell_path, resolve_protocol_path
from protocols.loader import LoadedProtocol, load_protocol
from protocols.parameters import parse_overrides

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_RUN_ENDED, EXIT_INSTRUMENT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

app = typer.Typer(
    name="station",
    help="Battery test station: check, plan and run YAML protocols on Neware and Biologic channels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)  # "p.yaml:100:5" stays text, not 💯
out = Console(highlight=False, soft_wrap=True, emoji=False)

ProtocolArg = Annotated[str, typer.Argument(help="protocol YAML file, or a library name such as p1-li-deposition")]
CellOpt = Annotated[str | None, typer.Option("--cell", "-c", help="cell YAML file, or a library cell name")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="override a parameter: NAME=VALUE")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]
ConfigOpt = Annotated[str | None, typer.Option("--config", help="station.yaml (default: ./station.yaml, "
                                                                "$STATION_CONFIG, or the simulated default)")]
DataDirOpt = Annotated[str | None, typer.Option("--data-dir", help="where runs are stored (overrides the config)")]


_JSON_ERRORS: ContextVar[bool] = ContextVar("json_errors", default=False)


def json_mode(on: bool) -> None:
    """Called first by every command with ``--json``: its errors then also go to stdout as one JSON object, so a
    script reading stdout always gets JSON, whatever happened."""
    _JSON_ERRORS.set(on)


def fail(code: int, message: str) -> typer.Exit:
    """The one-line message on stderr (and, under ``--json``, ``{"error": {"exit_code", "message"}}`` on stdout)
    and the exit code to leave with."""
    for line in message.splitlines():
        err.print(line, markup=False)
    if _JSON_ERRORS.get():
        sys.stdout.write(json.dumps({"error": {"exit_code": code, "message": message}}) + "\n")
    return typer.Exit(code)


def existing(path: str, resolve, what: str) -> str:
    resolved = resolve(path)
    if not Path(resolved).is_file():
        raise fail(EXIT_USAGE, f"error: {what} '{path}' not found (give a path to a YAML file or a library name; "
                                f"'station library' lists them)")
    return resolved


def load_inputs(protocol: str, cell: str | None, sets: list[str] | None) -> tuple[LoadedProtocol, Cell | None]:
    try:
        overrides = parse_overrides(sets or [])
    except ValueError as exc:
        raise fail(EXIT_USAGE, f"error: {exc}") from None
    protocol_path = existing(protocol, resolve_protocol_path, "protocol")
    cell_path = existing(cell, resolve_cell_path, "cell") if cell else None
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
        raise fail(EXIT_INVALID, "\n".join(problems))
    assert loaded is not None
    return loaded, cell_record
