"""`station db`: the run database itself. `upgrade` brings a lab's central PostgreSQL database (or a data
directory's SQLite) to this program's schema.

A station migrates its own SQLite when it opens it, but never a shared PostgreSQL database on its own: stations
of several versions may use it, so the lab upgrades it once, on purpose, after stopping the older stations.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from station.cli_common import EXIT_INVALID, EXIT_USAGE, ConfigOpt, DataDirOpt, JsonOpt, app, err, fail, json_mode
from station.config import ConfigError, load_config
from station.store import Store, StoreError, database_url

db_app = typer.Typer(help="The run database: schema upgrades.", no_args_is_help=True, add_completion=False)
app.add_typer(db_app, name="db")

DatabaseOpt = Annotated[str | None, typer.Option(
    "--database", help="postgresql://user@host/dbname (default: $STATION_DATABASE, then station.yaml's database:, "
                       "then the data directory's SQLite)")]


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, data_dir: DataDirOpt = None, database: DatabaseOpt = None,
               json_: JsonOpt = False) -> None:
    """Migrate the database to this program's schema (safe to run again: it does nothing when it is current)."""
    json_mode(json_)
    try:
        cfg, _ = load_config(config)
    except ConfigError as exc:
        raise fail(EXIT_USAGE, f"station config: {exc}") from None
    url = database or database_url(cfg.database)
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
