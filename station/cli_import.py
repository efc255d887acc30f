"""``station import FILE...``: vendor files (Neware .nda/.ndax, Biologic .mpr) into the store as finished runs.

Each file is one run in one transaction, so a file that fails leaves nothing behind and the others still import;
the command exits 2 when any file failed. The readers are optional packages, loaded only here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from protocols.cells import Cell, load_cell
from protocols.clock import RealClock
from protocols.errors import ProtocolError
from protocols.library import resolve_cell_path
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
from station.config import ConfigError, load_config
from station.store import Store, StoreError, UnknownSample


@app.command("import")
def import_(files: Annotated[list[str], typer.Argument(help="Neware .nda/.ndax or Biologic .mpr files")],
            sample: Annotated[str | None, typer.Option("--sample", help="the sample (station sample new) the files "
                                                                        "were measured on")] = None,
            cell: Annotated[str | None, typer.Option("--cell", "-c", help="instead of --sample: register a new "
                                                                          "sample on this cell record for the files")]
            = None,
            config: ConfigOpt = None, data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """Import vendor files as finished runs of a sample, so that analyze, plot and export apply to them."""
    json_mode(json_)
    from station.imports.common import ImportFailure
    from station.imports.importer import read_table, store_table

    if (sample is None) == (cell is None):
        raise fail(EXIT_USAGE, "error: give the sample the files belong to with --sample (station sample new makes "
                               "one), or --cell to register a new sample on that cell record; one of them")
    cell_record = _cell(cell) if cell is not None else None  # a wrong cell fails before any file is read
    try:
        cfg = load_config(config)[0]
        store = Store(data_dir or cfg.data_dir, cfg.database, station=cfg.station)
        err.print(f"data: {store.location}", markup=False, style="dim")
        if sample is not None:
            store.sample(sample)  # named wrong: fail before reading any file
    except ConfigError as exc:
        raise fail(EXIT_INVALID, f"station config: {exc}") from None
    except UnknownSample as exc:
        raise fail(EXIT_USAGE, f"error: {exc}") from None
    except StoreError as exc:
        raise fail(EXIT_INSTRUMENT, f"storage error: {exc}") from None
    done, failed = [], []
    clock = RealClock()
    for name in files:
        try:
            table = read_table(Path(name))
            if sample is None:  # --cell: the sample is registered with the first file that reads
                sample = _new_sample(store, cell_record, Path(name).stem)  # type: ignore[arg-type]
            result = store_table(store, Path(name), table, sample_id=sample, clock=clock)
        except ImportFailure as exc:
            failed.append({"file": name, "error": str(exc)})
            err.print(f"error: {exc}", markup=False)
            continue
        except StoreError as exc:
            raise fail(EXIT_INSTRUMENT, f"storage error: {exc}") from None
        done.append(result.as_dict())
        if not json_:
            out.print(result.run_id, markup=False)
            err.print(f"{name}: run {result.run_id}, {result.records} records, {len(result.steps)} steps "
                      f"({result.vendor} {result.file_version}, {result.reader}) for sample {sample}", markup=False)
        for warning in result.warnings:
            err.print(f"warning: {name}: {warning}", markup=False)
    if json_:
        sys.stdout.write(json.dumps({"sample": sample, "imported": done, "failed": failed}) + "\n")
    if failed:
        json_mode(False)  # stdout already holds this command's one JSON answer
        raise fail(EXIT_USAGE, f"{len(failed)} of {len(files)} files not imported (see above)")


def _cell(cell: str) -> Cell:
    try:
        return load_cell(existing(cell, resolve_cell_path, "cell"))
    except ProtocolError as exc:
        raise fail(EXIT_INVALID, str(exc)) from None


def _new_sample(store: Store, cell_record: Cell, name: str) -> str:
    from station.samples import register_sample

    row = register_sample(store, RealClock(), cell_record, name=name, notes="registered by station import")
    err.print(f"sample {row.id} ({row.name}) registered on cell {cell_record.name}", markup=False)
    return row.id
