"""`station db`: the run database itself. `upgrade` brings a lab's central PostgreSQL database (or a data
directory's SQLite) to this program's schema.

A station migrates its own SQLite when it opens it, but never a shared PostgreSQL database on its own: stations
of several versions may use it, so the lab upgrades it once, on purpose, after stopping the older stations.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from station.cli_common import EXIT_INVALID, EXIT_USAGE, ConfigOpt, DataDirOpt, JsonOpt, app, err, fail, json_mode
from station.config import ConfigError, StationConfig, load_config
from station.store import DB_NAME, Store, StoreError

db_app = typer.Typer(help="The run database: schema upgrades.", no_args_is_help=True, add_completion=False)
app.add_typer(db_app, name="db")

DatabaseOpt = Annotated[str | None, typer.Option(
    "--database", help="postgresql://user@host/dbname (default: $STATION_DATABASE, then station.yaml's database:, "
                       "then the data directory's SQLite)")]


def _config(config: str | None) -> StationConfig:
    try:
        return load_config(config)[0]
    except ConfigError as exc:
        raise fail(EXIT_USAGE, f"station config: {exc}") from None


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, data_dir: DataDirOpt = None, database: DatabaseOpt = None,
               json_: JsonOpt = False) -> None:
    """Migrate the database to this program's schema (safe to run again: it does nothing when it is current)."""
    json_mode(json_)
    cfg = _config(config)
    url = database or cfg.database
    try:
        before = Store.schema_of(data_dir or cfg.data_dir, url)
        store = Store(data_dir or cfg.data_dir, url, migrate=True)
        after = store.schema_version
        where = store.where
        store.close()
    except StoreError as exc:
        raise fail(EXIT_INVALID, f"storage error: {exc}") from None
    if json_:
        sys.stdout.write(json.dumps({"database": where, "schema_before": before, "schema": after}) + "\n")
        return
    if before == after:
        err.print(f"{where}: schema {after}, current; nothing to do", markup=False)
    else:
        err.print(f"{where}: schema {before} -> {after}", markup=False)


@db_app.command("release-channel")
def db_release_channel(channel: Annotated[str, typer.Argument(help="the channel, as INSTRUMENT/ID")],
                       config: ConfigOpt = None, data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """Forget which station owns CHANNEL, so that the next station to start a run on it owns it (the lab moved
    the instrument to another PC). Refused while a run is active on it."""
    json_mode(json_)
    cfg = _config(config)
    try:
        store = Store(data_dir or cfg.data_dir, cfg.database, station=cfg.station)
        try:
            owner = store.release_channel(channel)
        finally:
            store.close()
    except StoreError as exc:
        raise fail(EXIT_INVALID, f"error: {exc}") from None
    if json_:
        sys.stdout.write(json.dumps({"channel": channel, "released_from": owner}) + "\n")
    elif owner is None:
        err.print(f"channel {channel} had no owner; nothing to do", markup=False)
    else:
        err.print(f"channel {channel} no longer belongs to station {owner}", markup=False)


@db_app.command("copy")
def db_copy(source: Annotated[str, typer.Option("--from", help="the data directory whose station.sqlite to copy")],
            to: Annotated[str, typer.Option("--to", help="the lab's database, postgresql://user@host/dbname")],
            station: Annotated[str | None, typer.Option(
                "--station", help="the station the copied runs belong to (default: station.yaml's station:, "
                                  "else this PC's name)")] = None,
            config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """Copy a data directory's runs, samples, campaigns, events and records into the lab's database. Run it
    again after an interruption: it goes on where it stopped, and copies nothing twice."""
    json_mode(json_)
    from station.store.forward import forward, summary

    cfg = _config(config)
    name = station or cfg.station
    if not (Path(source) / DB_NAME).is_file():
        raise fail(EXIT_USAGE, f"error: {source} holds no {DB_NAME}; give the data directory of a station with --from")
    try:
        local = Store(source, local=True)
        central = Store(source, to)
        try:
            done = forward(local, central, name, progress=None if json_ else _shown)
        finally:
            local.close()
            central.close()
    except StoreError as exc:
        raise fail(EXIT_INVALID, f"error: {exc}") from None
    if json_:
        sys.stdout.write(json.dumps({"from": str(source), "to": central.where, "station": name, **summary(done)})
                         + "\n")
    else:
        err.print(f"copied into {central.where} as station {name}: {done.samples} samples, {done.campaigns} "
                  f"campaigns, {done.runs} runs, {done.events} events, {done.records} records"
                  f"{' (nothing new)' if not done.total() else ''}", markup=False)


def _shown(done) -> None:
    err.print(f"  ... {done.runs} runs, {done.records} records", markup=False)
