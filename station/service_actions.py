"""What an operator can ask the service to do, as plain functions of the station: start, stop, pause, continue.

The API turns a request into one of these and has the supervision thread carry it out (station.command_queue);
they check everything the CLI checks, with the same one-line errors, and record who asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from protocols.cells import Cell, load_cell, load_cell_text
from protocols.errors import ProtocolError
from protocols.library import resolve_cell_path, resolve_protocol_path
from protocols.loader import LoadedProtocol, load_protocol, load_protocol_text
from station.run_policy import RunState
from station.session import Station


class BadRequest(Exception):
    """The request cannot be carried out as given; the message says what to change."""


@dataclass
class StartRequest:
    """A run to start: the protocol (library name or a path on the service's PC, or its YAML text), the cell
    (likewise) or a sample, an optional channel and ``--set`` values."""

    protocol: str | None = None
    protocol_source: str | None = None
    protocol_file: str | None = None
    """The name the YAML text is reported under in errors (the client's file path)."""
    cell: str | None = None
    cell_source: str | None = None
    sample: str | None = None
    channel: str | None = None
    set: dict[str, str] = field(default_factory=dict)


def _protocol(req: StartRequest) -> LoadedProtocol:
    if (req.protocol is None) == (req.protocol_source is None):
        raise BadRequest("give the protocol as 'protocol' (a library name or a path on the station's PC) or as "
                         "'protocol_source' (its YAML text), one of them")
    if req.protocol_source is not None:
        return load_protocol_text(req.protocol_source, req.protocol_file or "<protocol>", req.set)
    assert req.protocol is not None
    if not Path(resolve_protocol_path(req.protocol)).is_file():
        raise BadRequest(f"protocol '{req.protocol}' not found on the station's PC (give a library name, a path "
                         f"there, or send its text as 'protocol_source')")
    return load_protocol(req.protocol, req.set)


def _cell(station: Station, req: StartRequest) -> Cell:
    given = [x for x in (req.cell, req.cell_source, req.sample) if x is not None]
    if len(given) != 1:
        raise BadRequest("give the cell on the channel as 'cell' (a library name or a path on the station's PC), "
                         "'cell_source' (its YAML text) or 'sample' (a sample id), one of them")
    if req.sample is not None:
        return Cell.model_validate(station.sample(req.sample).cell)
    if req.cell_source is not None:
        return load_cell_text(req.cell_source)
    assert req.cell is not None
    return library_cell(req.cell)


def library_cell(name: str) -> Cell:
    """A cell by library name or by a path on the station's PC."""
    if not Path(resolve_cell_path(name)).is_file():
        raise BadRequest(f"cell '{name}' not found on the station's PC (give a library name, a path there, or "
                         f"send its text as 'cell_source')")
    return load_cell(name)


def start_run(station: Station, req: StartRequest, who: str | None) -> str:
    """Check, claim, start: the run id once the instrument has started it (the service then supervises it)."""
    if station.dry_run:
        raise BadRequest("this station serves simulated instruments in a dry run; dry runs are started in-process "
                         "with `station run --dry-run`")
    problems = []  # every problem of protocol and cell at once, as `station validate` lists them
    loaded = cell = None
    try:
        loaded = _protocol(req)
    except ProtocolError as exc:
        problems += exc.problems
    try:
        cell = _cell(station, req)
    except ProtocolError as exc:
        problems += exc.problems
    if problems:
        raise ProtocolError(problems)
    assert loaded is not None and cell is not None
    run_id = station.launch(loaded, cell, req.channel, sample_id=req.sample)
    if who:
        station.store.add_event(run_id, "operator", f"started by {who}", station.clock.unix())
    return run_id


def stop_run(station: Station, run_id: str, who: str | None, force: bool = False) -> tuple[bool, str]:
    return station.stop(run_id, force=force, who=who)


def pause_run(station: Station, run_id: str, who: str | None) -> RunState:
    return station.pause(run_id, who)


def continue_run(station: Station, run_id: str, who: str | None) -> RunState:
    return station.resume(run_id, who)
