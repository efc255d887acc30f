"""The run store: runs, events, samples, campaigns and records, behind one interface with two backends (DESIGN
section 8): SQLite in the data directory, the embedded default, and PostgreSQL for a lab whose stations share one
database (``database: postgresql://...`` in station.yaml, or ``$STATION_DATABASE``).

The SQL here is written once for both. What differs (connecting, file checks, locking, bulk inserts, how an
error is explained) is the backend's (station.store.sqlite_backend, station.store.postgres_backend). Writes are
transactional and records append-only: a run's last stored seq moves in the same commit as the records it counts,
so a page downloaded twice after a reconnect is dropped, never stored twice.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np

from drivers.base import Record
from station.run_policy import TERMINAL_STATES, RunState
from station.store import schema
from station.store.postgres_backend import PostgresBackend, is_postgres_url
from station.store.records import RECORD_DTYPE, conformed, newer, read_block, to_block
from station.store.rows import (
    CAMPAIGN_ENDED,
    CampaignEventRow,
    CampaignRow,
    CampaignStepRow,
    ChannelBusy,
    ChannelOwned,
    EventRow,
    RunRow,
    SampleRow,
    StationRow,
    StoreError,
    UnknownCampaign,
    UnknownRun,
    UnknownSample,
)
from station.store.sqlite_backend import SQLiteBackend

#: the environment variable that points every station command at a database (it wins over station.yaml)
DATABASE_ENV = "STATION_DATABASE"
#: run ids per ``IN (...)`` query: well under SQLite's bound on parameters in one statement
_IN_CHUNK = 500


def database_url(given: str | None = None) -> str | None:
    """Which database a store opens: the URL given (empty: the data directory's SQLite); when none is given,
    ``$STATION_DATABASE``; else ``None``, the SQLite. (station.config.load_config puts ``$STATION_DATABASE`` over
    station.yaml's ``database:``, so a configured station passes its resolved URL.)"""
    if given is not None:
        return given or None
    return os.environ.get(DATABASE_ENV) or None


#: The columns of a run row, named rather than ``SELECT *``: a process opened before a later schema added a
#: column keeps reading the rows it knows.
RUN_COLUMNS = ("id", "created_at", "updated_at", "state", "channel", "instrument", "protocol_name", "protocol_file",
               "protocol_source", "parameters", "program", "cell", "handle", "dry_run", "last_seq", "message",
               "stop_requested", "contact_lost_at", "started_at", "sample_id", "campaign_id", "campaign_stage",
               "station")
_SELECT_RUNS = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
_LIGHT_COLUMNS = ["''" if c in ("protocol_source", "program") else c for c in RUN_COLUMNS]
_ACTIVE = f"state NOT IN ({', '.join(repr(s.value) for s in TERMINAL_STATES)})"


_SAMPLE_COLUMNS = ("id", "name", "created_at", "cell", "cell_file", "operator", "notes", "metadata")
_SELECT_SAMPLES = f"SELECT {', '.join(_SAMPLE_COLUMNS)} FROM samples"


def _sample_row(row: Sequence[Any]) -> SampleRow:
    data = dict(zip(_SAMPLE_COLUMNS, row, strict=True))
    return SampleRow(id=data["id"], name=data["name"], created_at=data["created_at"], cell=json.loads(data["cell"]),
                     cell_file=data["cell_file"], operator=data["operator"], notes=data["notes"],
                     metadata=json.loads(data["metadata"] or "{}"))


_CAMPAIGN_COLUMNS = ("id", "name", "sample_id", "created_at", "updated_at", "state", "source_file", "source_text",
                     "plan", "stage", "location", "waiting", "pending", "confirm_requested", "stop_requested",
                     "started_by", "confirmed_by", "message", "station")
_CAMPAIGN_JSON = ("pending", "confirm_requested", "stop_requested")
_CAMPAIGN_UPDATABLE = frozenset(_CAMPAIGN_COLUMNS) - {"id", "name", "sample_id", "created_at", "source_file",
                                                       "source_text", "plan", "station"}
_STEP_COLUMNS = ("id", "campaign_id", "stage", "stage_name", "role", "chunk", "first_cycle", "parameters", "channel",
                 "run_id", "created_at", "ended_at", "outcome", "message", "cycles")


P = ParamSpec("P")
R = TypeVar("R")


def _guarded(method: Callable[P, R]) -> Callable[P, R]:
    """Every store call fails as a one-line StoreError naming the database (a damaged page can surface on any read,
    a central database can go away between any two calls)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            backend = args[0].backend  # type: ignore[attr-defined]
            if isinstance(exc, backend.errors):
                raise backend.explain(exc) from None
            raise

    return wrapper


class Store:
    """All access to the run database; one instance per thread (a connection is not shared across threads).

    ``data_dir`` is the station's own folder (service lock, tokens, exports) and, by default, where its SQLite
    database lives. ``database``: station.yaml's ``database:`` URL (``$STATION_DATABASE`` wins over it). A
    data directory's SQLite is migrated when opened; a central PostgreSQL database is migrated only by
    ``station db upgrade`` (``migrate=True``), since stations of several versions may share it. ``station``: the
    name of the station this process works for (station.yaml's ``station:``). ``local``: the data directory's
    SQLite, whatever station.yaml or ``$STATION_DATABASE`` say (a station's own store, a directory to copy)."""

    on_stored: Callable[[str, np.ndarray], None] | None = None
    """Told each run's block of records once :meth:`append_blocks` has committed it (a run's summary gathers what
    it needs as the records are stored, instead of reading the whole run back)."""

    def __init__(self, data_dir: str | Path, database: str | None = None, *, migrate: bool | None = None,
                 station: str | None = None, local: bool = False):
        self._connect(data_dir, None if local else database_url(database))
        self.station = station
        """This station's name: stamped on the runs it creates, and the owner of the channels it uses."""
        try:
            self._refuse_foreign()
            self.backend.configure()
            self._migrate(self.backend.dialect == "sqlite" if migrate is None else migrate)
        except self.backend.errors as exc:
            self.close()
            raise self.backend.explain(exc) from None
        except StoreError:
            self.close()
            raise

    @classmethod
    def schema_of(cls, data_dir: str | Path, database: str | None = None) -> int:
        """The schema version of a database (0: a new, empty one), read without changing anything."""
        store = cls.__new__(cls)
        store._connect(data_dir, database_url(database))
        try:
            store._refuse_foreign()
            return store._version()
        except store.backend.errors as exc:
            raise store.backend.explain(exc) from None
        finally:
            store.close()

    def _connect(self, data_dir: str | Path, database: str | None) -> None:
        self.data_dir = Path(data_dir)
        self.database = database
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data directory {self.data_dir}: {exc.strerror}; choose another "
                             f"--data-dir or fix its permissions") from None
        if self.database is not None and not is_postgres_url(self.database):
            raise StoreError(f"database '{self.database}' is not a postgresql:// URL; give one in station.yaml "
                             f"(database: postgresql://user@host/dbname) or ${DATABASE_ENV}, or leave it out for "
                             f"the data directory's SQLite")
        self.backend: SQLiteBackend | PostgresBackend = (
            PostgresBackend(self.database) if self.database else SQLiteBackend(self.data_dir))
        self.db = self.backend.db
        self.where = self.backend.where
        """Where the data is, as messages name it: the SQLite file, or the database URL without its password."""

    def close(self) -> None:
        self.backend.close()

    @property
    def location(self) -> str:
        """Where the runs are, as a command tells its user: the data directory, or the central database and the
        folder of this station's own files."""
        if self.backend.dialect == "sqlite":
            return str(self.data_dir)
        return f"{self.where} (station files in {self.data_dir})"

    def release_reserve(self) -> bool:
        """Free the ballast beside a SQLite database so that the next small write fits on a full disk."""
        return self.backend.release_reserve()

    @property
    def reserve_path(self) -> Path | None:
        return getattr(self.backend, "reserve_path", None)

    def _damaged(self, why: str) -> StoreError:
        return self.backend.damaged(why)

    # -- schema ----------------------------------------------------------------------------------------------------

    def _refuse_foreign(self) -> None:
        """Read-only, before anything writes: another program's database is left exactly as it was."""
        tables = self.backend.tables()
        if tables and "meta" not in tables:
            raise StoreError(f"{self.where} is a database of another program (tables: "
                             f"{', '.join(sorted(tables)[:5])}); choose another "
                             f"{'--data-dir' if self.backend.dialect == 'sqlite' else 'database'}")

    def _version(self) -> int:
        if "meta" not in self.backend.tables():
            return 0
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        try:
            return int(row[0]) if row else 0
        except ValueError:
            raise self._damaged(f"schema version {row[0]!r} is not a number") from None

    def _migrate(self, allowed: bool) -> None:
        """Bring the schema to :data:`schema.SCHEMA_VERSION`, in one transaction under the schema lock (another
        process opening the same new store at once finds it migrated, or migrates it itself, never half)."""
        version = self._version()
        if version > schema.SCHEMA_VERSION:
            raise StoreError(f"{self.where} was written by a newer station (schema {version} > "
                             f"{schema.SCHEMA_VERSION}); upgrade this program")
        if version == 0 and self.backend.tables() - {"meta"}:
            raise self._damaged("it has tables but no schema version")
        if version == schema.SCHEMA_VERSION:
            return
        if not allowed:
            raise StoreError(f"{self.where} has schema {version} and this station needs {schema.SCHEMA_VERSION}; "
                             f"run `station db upgrade` once (stop the stations of older versions first)")
        with self.transaction() as db:
            self.backend.lock_schema()
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            version = self._version()  # again under the lock: another process may have migrated meanwhile
            for target in range(version + 1, schema.SCHEMA_VERSION + 1):
                for statement in schema.statements(target, self.backend.dialect):
                    db.execute(statement)
            if version < schema.SCHEMA_VERSION:
                db.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE "
                           "SET value=excluded.value", (str(schema.SCHEMA_VERSION),))

    @property
    @_guarded
    def schema_version(self) -> int:
        return int(self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])

    # -- transactions --------------------------------------------------------------------------------------------

    class _Tx:
        def __init__(self, store: Store):
            self.store = store

        def __enter__(self) -> Any:
            self.store.backend.begin()
            return self.store.db

        def __exit__(self, exc_type, exc, tb) -> None:
            backend = self.store.backend
            if exc_type is None:
                try:
                    backend.commit()
                except backend.errors as error:
                    backend.rollback()
                    raise backend.explain(error) from None
            else:
                backend.rollback()
                if isinstance(exc, backend.errors) and not backend.is_conflict(exc):
                    raise backend.explain(exc) from None

    def transaction(self) -> Store._Tx:
        return Store._Tx(self)

    # -- runs ------------------------------------------------------------------------------------------------------

    @_guarded
    def create_run(self, *, run_id: str, at: float, channel: str, instrument: dict[str, Any], protocol_name: str,
                   protocol_file: str | None, protocol_source: str, parameters: dict[str, str], program: str,
                   cell: dict[str, Any], dry_run: bool, sample_id: str | None = None) -> None:
        """Insert a run in state ``created``, refusing when the channel already has an active run: checked first for
        a message naming that run, and enforced by the database's unique index for two writers at once (two
        stations, or two clients of one)."""
        try:
            self._insert_run(run_id=run_id, at=at, channel=channel, instrument=instrument, protocol_name=protocol_name,
                             protocol_file=protocol_file, protocol_source=protocol_source, parameters=parameters,
                             program=program, cell=cell, dry_run=dry_run, sample_id=sample_id)
        except self.backend.errors as exc:
            if not self.backend.is_conflict(exc):
                raise
            busy = self.db.execute(f"SELECT id, state FROM runs WHERE channel=? AND {_ACTIVE}", (channel,)).fetchone()
            if busy is None:  # the conflict was the run id itself
                raise StoreError(f"run id {run_id} is taken in {self.where}; start it again for a new id") from None
            raise ChannelBusy(channel, busy[0], busy[1]) from None

    def _insert_run(self, *, run_id: str, at: float, channel: str, instrument: dict[str, Any], protocol_name: str,
                    protocol_file: str | None, protocol_source: str, parameters: dict[str, str], program: str,
                    cell: dict[str, Any], dry_run: bool, sample_id: str | None) -> None:
        with self.transaction() as db:
            busy = db.execute(f"SELECT id, state FROM runs WHERE channel=? AND {_ACTIVE}", (channel,)).fetchone()
            if busy:
                raise ChannelBusy(channel, busy[0], busy[1])
            if not dry_run:  # a dry run drives no instrument: it claims nothing
                self._claim(db, channel, at)
            db.execute(
                "INSERT INTO runs(id, created_at, updated_at, state, channel, instrument, protocol_name, "
                "protocol_file, protocol_source, parameters, program, cell, dry_run, sample_id, station) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, at, at, RunState.CREATED.value, channel, json.dumps(instrument), protocol_name, protocol_file,
                 protocol_source, json.dumps(parameters), program, json.dumps(cell), int(dry_run), sample_id,
                 self.station))
            db.execute("INSERT INTO events(run_id, at, kind, message) VALUES (?,?,?,?)",
                       (run_id, at, "state", RunState.CREATED.value))

    def _claim(self, db: Any, channel: str, at: float) -> None:
        """Make ``channel`` this station's if no station owns it; refuse if another does. The owners' primary key
        decides between two stations claiming at once: the second waits for the first's commit, then finds it."""
        if self.station is None:
            return
        db.execute("INSERT INTO channel_owners(channel, station, claimed_at) VALUES (?,?,?) ON CONFLICT(channel) DO "
                   "NOTHING", (channel, self.station, at))
        owner = db.execute("SELECT station FROM channel_owners WHERE channel=?", (channel,)).fetchone()[0]
        if owner != self.station:
            raise ChannelOwned(channel, owner)

    @_guarded
    def claim_channels(self, channels: Sequence[str], at: float) -> dict[str, str]:
        """Claim every one of ``channels`` that no station owns, in one transaction (a service of 2048 channels
        starts with one commit); returns those another station owns, with it. Claimed in sorted order: two
        stations claiming overlapping channels at once then wait for each other, never deadlock."""
        if self.station is None or not channels:
            return {}
        channels = sorted(set(channels))
        owners: dict[str, str] = {}
        with self.transaction() as db:
            db.executemany("INSERT INTO channel_owners(channel, station, claimed_at) VALUES (?,?,?) ON "
                           "CONFLICT(channel) DO NOTHING", [(c, self.station, at) for c in channels])
            for at_chunk in range(0, len(channels), _IN_CHUNK):
                chunk = list(channels[at_chunk:at_chunk + _IN_CHUNK])
                marks = ",".join("?" * len(chunk))
                owners.update(db.execute(f"SELECT channel, station FROM channel_owners WHERE channel IN ({marks})",
                                         chunk).fetchall())
        return {c: owner for c, owner in owners.items() if owner != self.station}

    @_guarded
    def channel_owners(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT channel, station FROM channel_owners ORDER BY channel").fetchall())

    @_guarded
    def release_channel(self, channel: str) -> str | None:
        """Forget who owns ``channel`` (a lab moved the instrument to another PC); refused while a run is active on
        it. Returns the station that owned it (``None``: nobody did)."""
        with self.transaction() as db:
            busy = db.execute(f"SELECT id, state, station FROM runs WHERE channel=? AND {_ACTIVE}",
                              (channel,)).fetchone()
            if busy:
                raise StoreError(f"channel {channel} has run {busy[0]} ({busy[1]}) of station {busy[2]}; stop it or "
                                 f"let it finish first")
            row = db.execute("SELECT station FROM channel_owners WHERE channel=?", (channel,)).fetchone()
            db.execute("DELETE FROM channel_owners WHERE channel=?", (channel,))
        return row[0] if row else None

    @_guarded
    def station_seen(self, at: float, *, started_at: float | None = None, api_url: str | None = None,
                     pid: int | None = None, version: str | None = None) -> None:
        """Record that this station's service runs (at its start: where it listens; then on every rescan)."""
        if self.station is None:
            return
        with self.transaction() as db:
            if started_at is not None:
                db.execute("INSERT INTO stations(name, started_at, seen_at, api_url, pid, version) VALUES "
                           "(?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET started_at=excluded.started_at, seen_at="
                           "excluded.seen_at, api_url=excluded.api_url, pid=excluded.pid, version=excluded.version",
                           (self.station, started_at, at, api_url, pid, version))
            else:
                db.execute("UPDATE stations SET seen_at=? WHERE name=?", (at, self.station))

    @_guarded
    def stations(self) -> list[StationRow]:
        rows = self.db.execute("SELECT name, started_at, seen_at, api_url, pid, version FROM stations ORDER BY "
                               "name").fetchall()
        return [StationRow(*r) for r in rows]

    @_guarded
    def import_run(self, *, run_id: str, at: float, channel: str, instrument: dict[str, Any], protocol_name: str,
                   protocol_file: str | None, protocol_source: str, program: str, cell: dict[str, Any],
                   sample_id: str | None, started_at: float | None, ended_at: float | None, records: np.ndarray,
                   message: str) -> None:
        """Store a finished run read from a vendor file with all its records in ONE transaction: a file that fails
        halfway (or a full disk) leaves no run behind, and a stored import is always whole. ``started_at`` and
        ``ended_at`` are the file's test start and end (the run's last change is its end, not the import)."""
        block = conformed(records)
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs(id, created_at, updated_at, state, channel, instrument, protocol_name, "
                "protocol_file, protocol_source, parameters, program, cell, dry_run, sample_id, started_at, "
                "last_seq, message, station) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, at, at if ended_at is None else ended_at, RunState.FINISHED.value, channel,
                 json.dumps(instrument), protocol_name, protocol_file, protocol_source, "{}", program,
                 json.dumps(cell), 0, sample_id, started_at, int(block["seq"][-1]) if len(block) else 0, message,
                 self.station))
            db.execute("INSERT INTO events(run_id, at, kind, message) VALUES (?,?,?,?)",
                       (run_id, at, "state", f"{RunState.FINISHED.value}: {message}"))
            step = 1 << 16  # records per block row, as a long run's downloaded pages would be
            self.backend.insert_blocks([(run_id, int(part["seq"][0]), int(part["seq"][-1]), len(part), part.tobytes())
                            for part in (block[k:k + step] for k in range(0, len(block), step))])

    @_guarded
    def set_state(self, run_id: str, state: RunState | str, at: float, message: str = "", *,
                  test_time: float | None = None, handle: dict[str, Any] | None = None,
                  data: dict[str, Any] | None = None) -> None:
        """Write a state with its event (``data`` kept with the event); entering ``starting`` stores the start time
        (the first attempt's)."""
        state = RunState(state)
        with self.transaction() as db:
            if handle is not None:
                db.execute("UPDATE runs SET handle=? WHERE id=?", (json.dumps(handle), run_id))
            db.execute("UPDATE runs SET state=?, updated_at=?, message=? WHERE id=?",
                       (state.value, at, message, run_id))
            if state is RunState.STARTING:
                db.execute("UPDATE runs SET started_at=COALESCE(started_at, ?) WHERE id=?", (at, run_id))
            if state in TERMINAL_STATES:
                db.execute("UPDATE runs SET stop_requested=NULL, contact_lost_at=NULL WHERE id=?", (run_id,))
            db.execute("INSERT INTO events(run_id, at, test_time, kind, message, data) VALUES (?,?,?,?,?,?)",
                       (run_id, at, test_time, "state", f"{state}: {message}" if message else state.value,
                        json.dumps(data) if data is not None else None))

    @_guarded
    def set_handle(self, run_id: str, handle: dict[str, Any], at: float, message: str, kind: str = "info") -> None:
        """Replace a running run's handle with its event, in one transaction: a run with temperature steps starts
        a new instrument test for each segment, and where it stands must survive a crash with the event that
        says so."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET handle=?, updated_at=? WHERE id=?", (json.dumps(handle), at, run_id))
            db.execute("INSERT INTO events(run_id, at, test_time, kind, message, data) VALUES (?,?,?,?,?,?)",
                       (run_id, at, None, kind, message, None))

    @_guarded
    def start_intent(self, run_id: str) -> dict[str, Any]:
        """What the last intent to start said (the barcode sent and the channel's start marker), for settling an
        unconfirmed start with the instrument; empty for runs stored before intents carried it."""
        row = self.db.execute("SELECT data FROM events WHERE run_id=? AND kind='state' AND message LIKE 'starting%' "
                              "AND data IS NOT NULL ORDER BY id DESC LIMIT 1", (run_id,)).fetchone()
        try:
            return json.loads(row[0]) if row else {}
        except ValueError as exc:
            raise self._damaged(f"the start intent of run {run_id} cannot be read: {exc}") from None

    @_guarded
    def add_event(self, run_id: str, kind: str, message: str, at: float, *, test_time: float | None = None,
                  data: dict[str, Any] | None = None) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO events(run_id, at, test_time, kind, message, data) VALUES (?,?,?,?,?,?)",
                       (run_id, at, test_time, kind, message, json.dumps(data) if data is not None else None))

    @_guarded
    def request_stop(self, run_id: str, why: str, at: float) -> None:
        """Persist that a stop was asked for; it holds until the instrument confirms the channel stopped."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET stop_requested=COALESCE(stop_requested, ?), updated_at=? WHERE id=?",
                       (why, at, run_id))

    @_guarded
    def stop_requests(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The pending stop requests among ``run_ids`` (one query per supervision round, whoever asked)."""
        if not run_ids:
            return {}
        marks = ",".join("?" * len(run_ids))
        rows = self.db.execute(f"SELECT id, stop_requested FROM runs WHERE stop_requested IS NOT NULL AND id IN "
                               f"({marks})", list(run_ids)).fetchall()
        return dict(rows)

    @_guarded
    def set_contact(self, run_id: str, lost_at: float | None) -> None:
        """Mark the start of an outage (or its end, ``None``) so that every reader shows it, not stale values."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET contact_lost_at=? WHERE id=?", (lost_at, run_id))

    @_guarded
    def has_run(self, run_id: str) -> bool:
        """Whether exactly this id exists (no prefix matching)."""
        return self.db.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is not None

    @_guarded
    def run(self, run_id: str) -> RunRow:
        row = self.db.execute(f"{_SELECT_RUNS} WHERE id=?", (run_id,)).fetchone()
        if row is None:
            row = self.db.execute(f"{_SELECT_RUNS} WHERE id LIKE ? ORDER BY created_at DESC",
                                  (f"{run_id}%",)).fetchall()
            if len(row) != 1:
                raise UnknownRun(f"no run '{run_id}' in {self.where}; 'station runs' lists them" if not row else
                                 f"run id '{run_id}' is ambiguous ({len(row)} runs start with it); give more of it")
            row = row[0]
        return self._run_row(row)

    @_guarded
    def runs(self, *, active_only: bool = False, channel: str | None = None, light: bool = False,
             station: str | None = None) -> list[RunRow]:
        """Runs oldest first; ``channel``: only that channel's; ``station``: only that station's (and those from
        before stations had names). ``light`` leaves out the two large texts (the protocol source and the step
        program, given as empty strings): what a service looking over thousands of runs every few seconds, or a
        channel list, needs is everything else."""
        sql = f"SELECT {', '.join(_LIGHT_COLUMNS)} FROM runs" if light else _SELECT_RUNS
        where, args = [], []
        if active_only:
            where.append(_ACTIVE)
        if channel is not None:
            where.append("channel=?")
            args.append(channel)
        if station is not None:
            where.append("(station=? OR station IS NULL)")
            args.append(station)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [self._run_row(r) for r in self.db.execute(sql + " ORDER BY created_at, id", args).fetchall()]

    @_guarded
    def active_run_ids(self, station: str | None = None) -> set[str]:
        """The ids of the active runs (of ``station``, and from before stations had names, when given), and nothing
        else: what a service that rescans thousands of runs every few seconds needs first, without reading (and
        decoding) their rows."""
        if station is None:
            return {run_id for (run_id,) in self.db.execute(f"SELECT id FROM runs WHERE {_ACTIVE}")}
        rows = self.db.execute(f"SELECT id FROM runs WHERE {_ACTIVE} AND (station=? OR station IS NULL)", (station,))
        return {run_id for (run_id,) in rows}

    def _run_row(self, row: Sequence[Any]) -> RunRow:
        data = dict(zip(RUN_COLUMNS, row, strict=True))
        try:
            return self._decode_run(data)
        except (ValueError, TypeError, KeyError) as exc:  # json or type damage inside a row
            raise self._damaged(f"run {data.get('id')!r} cannot be read: {exc}") from None

    @staticmethod
    def _decode_run(data: dict[str, Any]) -> RunRow:
        return RunRow(
            id=data["id"], created_at=data["created_at"], updated_at=data["updated_at"],
            state=RunState(data["state"]),
            channel=data["channel"], instrument=json.loads(data["instrument"]), protocol_name=data["protocol_name"],
            protocol_file=data["protocol_file"], protocol_source=data["protocol_source"],
            parameters=json.loads(data["parameters"]), program=data["program"], cell=json.loads(data["cell"]),
            handle=json.loads(data["handle"]) if data["handle"] else None, dry_run=bool(data["dry_run"]),
            last_seq=int(data["last_seq"]), message=data["message"], stop_requested=data["stop_requested"],
            contact_lost_at=data["contact_lost_at"], started_at=data["started_at"], sample_id=data["sample_id"],
            campaign_id=data["campaign_id"], campaign_stage=data["campaign_stage"], station=data["station"])

    # -- samples ---------------------------------------------------------------------------------------------------

    @_guarded
    def create_sample(self, sample: SampleRow) -> None:
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM samples WHERE id=?", (sample.id,)).fetchone():
                raise UnknownSample(f"sample '{sample.id}' already exists in {self.where}; give another id")
            db.execute("INSERT INTO samples(id, name, created_at, cell, cell_file, operator, notes, metadata) "
                       "VALUES (?,?,?,?,?,?,?,?)",
                       (sample.id, sample.name, sample.created_at, json.dumps(sample.cell), sample.cell_file,
                        sample.operator, sample.notes, json.dumps(sample.metadata)))

    @_guarded
    def sample(self, sample_id: str) -> SampleRow:
        row = self.db.execute(f"{_SELECT_SAMPLES} WHERE id=?", (sample_id,)).fetchone()
        if row is None:
            raise UnknownSample(f"no sample '{sample_id}' in {self.where}; 'station sample list' lists them")
        return _sample_row(row)

    @_guarded
    def samples(self) -> list[SampleRow]:
        return [_sample_row(r) for r in self.db.execute(f"{_SELECT_SAMPLES} ORDER BY created_at").fetchall()]

    @_guarded
    def runs_of_sample(self, sample_id: str) -> list[RunRow]:
        rows = self.db.execute(f"{_SELECT_RUNS} WHERE sample_id=? ORDER BY created_at", (sample_id,)).fetchall()
        return [self._run_row(r) for r in rows]

    # -- campaigns -------------------------------------------------------------------------------------------------

    @_guarded
    def create_campaign(self, row: CampaignRow, note: str) -> None:
        """Insert a campaign with its first event; refused while another campaign of the sample is active (one
        physical cell is in one place)."""
        with self.transaction() as db:
            marks = ",".join("?" * len(CAMPAIGN_ENDED))
            busy = db.execute(f"SELECT id, state FROM campaigns WHERE sample_id=? AND state NOT IN ({marks})",
                              (row.sample_id, *CAMPAIGN_ENDED)).fetchone()
            if busy:
                raise UnknownCampaign(f"sample {row.sample_id} is already in campaign {busy[0]} ({busy[1]}); stop "
                                      f"it (station campaign stop {busy[0]}) or let it end first")
            values = [getattr(row, c) if c != "station" else (row.station or self.station) for c in _CAMPAIGN_COLUMNS]
            values = [json.dumps(v) if c in _CAMPAIGN_JSON and v is not None else v
                      for c, v in zip(_CAMPAIGN_COLUMNS, values, strict=True)]
            db.execute(f"INSERT INTO campaigns({', '.join(_CAMPAIGN_COLUMNS)}) VALUES "
                       f"({','.join('?' * len(_CAMPAIGN_COLUMNS))})", values)
            db.execute("INSERT INTO campaign_events(campaign_id, at, kind, message, who) VALUES (?,?,?,?,?)",
                       (row.id, row.created_at, "operator", note, row.started_by))

    def _campaign_row(self, row: Sequence[Any]) -> CampaignRow:
        data = dict(zip(_CAMPAIGN_COLUMNS, row, strict=True))
        try:
            for key in _CAMPAIGN_JSON:
                data[key] = json.loads(data[key]) if data[key] else None
        except ValueError as exc:
            raise self._damaged(f"campaign {data['id']!r} cannot be read: {exc}") from None
        return CampaignRow(**data)

    @_guarded
    def campaign(self, campaign_id: str) -> CampaignRow:
        select = f"SELECT {', '.join(_CAMPAIGN_COLUMNS)} FROM campaigns"
        row = self.db.execute(f"{select} WHERE id=?", (campaign_id,)).fetchone()
        if row is None:
            rows = self.db.execute(f"{select} WHERE id LIKE ? ORDER BY created_at DESC", (f"{campaign_id}%",))
            rows = rows.fetchall()
            if len(rows) != 1:
                raise UnknownCampaign(f"no campaign '{campaign_id}' in {self.where}; 'station campaign status' lists "
                                      f"them" if not rows else f"campaign id '{campaign_id}' is ambiguous "
                                      f"({len(rows)} campaigns start with it); give more of it")
            row = rows[0]
        return self._campaign_row(row)

    @_guarded
    def campaigns(self, *, active_only: bool = False) -> list[CampaignRow]:
        sql = f"SELECT {', '.join(_CAMPAIGN_COLUMNS)} FROM campaigns"
        args: tuple[str, ...] = ()
        if active_only:
            sql += f" WHERE state NOT IN ({','.join('?' * len(CAMPAIGN_ENDED))})"
            args = CAMPAIGN_ENDED
        return [self._campaign_row(r) for r in self.db.execute(sql + " ORDER BY created_at, id", args).fetchall()]

    @_guarded
    def update_campaign(self, campaign_id: str, at: float, *, event: tuple[str, str] | None = None,
                        who: str | None = None, data: dict[str, Any] | None = None, **fields: Any) -> None:
        """Change a campaign's columns and record why (``event``: kind, message) in one transaction."""
        unknown = set(fields) - _CAMPAIGN_UPDATABLE
        if unknown:
            raise ValueError(f"campaign columns that cannot be updated: {sorted(unknown)}")
        values = {k: json.dumps(v) if k in _CAMPAIGN_JSON and v is not None else v for k, v in fields.items()}
        values["updated_at"] = at
        with self.transaction() as db:
            db.execute(f"UPDATE campaigns SET {', '.join(f'{k}=?' for k in values)} WHERE id=?",
                       (*values.values(), campaign_id))
            if event is not None:
                db.execute("INSERT INTO campaign_events(campaign_id, at, kind, message, who, data) VALUES "
                           "(?,?,?,?,?,?)", (campaign_id, at, event[0], event[1], who,
                                             json.dumps(data) if data is not None else None))

    @_guarded
    def request_campaign(self, campaign_id: str, what: str, request: dict[str, Any], at: float, note: str,
                         *, states: Sequence[str]) -> bool:
        """Store an operator's ``confirm`` or ``stop`` for the service to carry out, only while the campaign is in
        one of ``states`` (checked in the same transaction); False, and nothing written, otherwise."""
        column = {"confirm": "confirm_requested", "stop": "stop_requested"}[what]
        with self.transaction() as db:
            marks = ",".join("?" * len(states))
            changed = db.execute(f"UPDATE campaigns SET {column}=?, updated_at=? WHERE id=? AND state IN ({marks})",
                                 (json.dumps(request), at, campaign_id, *states)).rowcount
            if changed:
                db.execute("INSERT INTO campaign_events(campaign_id, at, kind, message, who) VALUES (?,?,?,?,?)",
                           (campaign_id, at, "operator", note, request.get("by")))
            return bool(changed)

    @_guarded
    def add_campaign_event(self, campaign_id: str, kind: str, message: str, at: float, *, who: str | None = None,
                           data: dict[str, Any] | None = None) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO campaign_events(campaign_id, at, kind, message, who, data) VALUES (?,?,?,?,?,?)",
                       (campaign_id, at, kind, message, who, json.dumps(data) if data is not None else None))

    @_guarded
    def campaign_events(self, campaign_id: str) -> list[CampaignEventRow]:
        rows = self.db.execute("SELECT id, campaign_id, at, kind, message, who, data FROM campaign_events WHERE "
                               "campaign_id=? ORDER BY id", (campaign_id,)).fetchall()
        try:
            return [CampaignEventRow(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else None)
                    for r in rows]
        except ValueError as exc:
            raise self._damaged(f"an event of campaign {campaign_id} cannot be read: {exc}") from None

    @_guarded
    def add_campaign_step(self, campaign_id: str, *, stage: int, stage_name: str, role: str, chunk: int | None,
                          first_cycle: int | None, parameters: dict[str, str], channel: str | None,
                          at: float) -> int:
        """Record, before the run is started, that the campaign starts one (its intent); returns the step's id."""
        with self.transaction():
            return self.backend.inserted_id(
                "INSERT INTO campaign_steps(campaign_id, stage, stage_name, role, chunk, first_cycle, parameters, "
                "channel, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (campaign_id, stage, stage_name, role, chunk, first_cycle, json.dumps(parameters), channel, at))

    @_guarded
    def update_campaign_step(self, step_id: int, **fields: Any) -> None:
        allowed = {"run_id", "ended_at", "outcome", "message", "cycles", "channel"}
        if set(fields) - allowed:
            raise ValueError(f"campaign step columns that cannot be updated: {sorted(set(fields) - allowed)}")
        values = {k: json.dumps(v) if k == "cycles" and v is not None else v for k, v in fields.items()}
        with self.transaction() as db:
            db.execute(f"UPDATE campaign_steps SET {', '.join(f'{k}=?' for k in values)} WHERE id=?",
                       (*values.values(), step_id))

    @_guarded
    def campaign_steps(self, campaign_id: str) -> list[CampaignStepRow]:
        rows = self.db.execute(f"SELECT {', '.join(_STEP_COLUMNS)} FROM campaign_steps WHERE campaign_id=? ORDER BY "
                               f"id", (campaign_id,)).fetchall()
        out = []
        for row in rows:
            data = dict(zip(_STEP_COLUMNS, row, strict=True))
            try:
                data["parameters"] = json.loads(data["parameters"] or "{}")
                data["cycles"] = json.loads(data["cycles"]) if data["cycles"] else None
            except ValueError as exc:
                raise self._damaged(f"a step of campaign {campaign_id} cannot be read: {exc}") from None
            out.append(CampaignStepRow(**data))
        return out

    @_guarded
    def link_run(self, run_id: str, campaign_id: str, stage_name: str) -> None:
        """Mark a run as started by a campaign for one of its stages."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET campaign_id=?, campaign_stage=? WHERE id=?", (campaign_id, stage_name, run_id))

    @_guarded
    def runs_of_campaign(self, campaign_id: str) -> list[RunRow]:
        rows = self.db.execute(f"{_SELECT_RUNS} WHERE campaign_id=? ORDER BY created_at", (campaign_id,)).fetchall()
        return [self._run_row(r) for r in rows]

    @_guarded
    def events(self, run_id: str) -> list[EventRow]:
        rows = self.db.execute("SELECT id, run_id, at, test_time, kind, message, data FROM events WHERE run_id=? "
                               "ORDER BY id", (run_id,)).fetchall()
        try:
            return [EventRow(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else None) for r in rows]
        except ValueError as exc:
            raise self._damaged(f"an event of run {run_id} cannot be read: {exc}") from None

    @_guarded
    def events_after(self, event_id: int, limit: int = 1000) -> list[EventRow]:
        """Events of every run stored after event ``event_id``, oldest first: what changed since a reader looked."""
        rows = self.db.execute("SELECT id, run_id, at, test_time, kind, message, data FROM events WHERE id>? "
                               "ORDER BY id LIMIT ?", (event_id, limit)).fetchall()
        try:
            return [EventRow(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else None) for r in rows]
        except ValueError as exc:
            raise self._damaged(f"an event cannot be read: {exc}") from None

    @_guarded
    def last_event_id(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]

    # -- records ---------------------------------------------------------------------------------------------------

    @_guarded
    def append_records(self, run_id: str, records: Sequence[Record] | np.ndarray) -> int:
        """Append the records newer than the last stored one, in one transaction; returns the new last seq.

        Records at or below the stored last seq (a page downloaded again after a reconnect) are dropped, so the
        stored sequence is strictly increasing and free of duplicates by construction.
        """
        block = records if isinstance(records, np.ndarray) else to_block(records)
        return self.append_blocks({run_id: [block]})[run_id]

    @_guarded
    def append_blocks(self, blocks: Mapping[str, Sequence[np.ndarray]]) -> dict[str, int]:
        """Append the new records of many runs in ONE transaction; returns every run's last stored seq.

        Why: a supervision round downloads a page for each of hundreds of channels, and a transaction per
        channel (BEGIN, a read, an insert, an update, COMMIT with its fsync) was most of the station's CPU. One
        commit per round keeps every guarantee of :meth:`append_records`: each run's last_seq moves only with
        the records it counts, in the same commit (a crash before it leaves both where they were, and the
        instrument still holds the records); records at or below a run's stored last seq are dropped, so
        nothing is stored twice. Either every run's records are stored or none are (the caller then retries
        run by run to find whose do not fit). Each run's pages become one block row.
        """
        if not blocks:
            return {}
        run_ids = list(blocks)
        with self.transaction() as db:
            last: dict[str, int] = {}
            for at in range(0, len(run_ids), _IN_CHUNK):
                chunk = run_ids[at:at + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                last.update(db.execute(f"SELECT id, last_seq FROM runs WHERE id IN ({marks})"
                                       f"{self.backend.for_update}", chunk).fetchall())
            rows: list[tuple[str, int, int, int, bytes]] = []
            stored: list[tuple[str, np.ndarray]] = []
            for run_id in run_ids:
                if run_id not in last:
                    raise UnknownRun(f"no run '{run_id}' in {self.where} to store records for")
                block = conformed(newer(blocks[run_id], last[run_id]))
                if len(block):
                    last[run_id] = int(block["seq"][-1])
                    rows.append((run_id, int(block["seq"][0]), last[run_id], len(block), block.tobytes()))
                    stored.append((run_id, block))
            if rows:
                self.backend.insert_blocks(rows)
                db.executemany("UPDATE runs SET last_seq=? WHERE id=?", [(r[2], r[0]) for r in rows])
        if self.on_stored is not None:  # committed: what a watcher of the stored records may now count on
            for run_id, block in stored:
                self.on_stored(run_id, block)
        return {run_id: last[run_id] for run_id in run_ids}

    @_guarded
    def record_count(self, run_id: str) -> int:
        row = self.db.execute("SELECT COALESCE(SUM(count), 0) FROM record_blocks WHERE run_id=?", (run_id,))
        return int(row.fetchone()[0])  # PostgreSQL sums bigints as a numeric

    def iter_record_blocks(self, run_id: str, after_seq: int = 0) -> Iterator[np.ndarray]:
        """Stored records in seq order, one block (structured array of :data:`RECORD_DTYPE`) at a time."""
        try:
            cursor = self.db.execute("SELECT first_seq, count, data FROM record_blocks WHERE run_id=? AND last_seq>? "
                                     "ORDER BY first_seq", (run_id, after_seq))
            for first, count, data in cursor:
                if not isinstance(data, bytes):
                    raise self._damaged(f"the record block of run {run_id} from record {first} is not binary")
                block = read_block(data, count)
                if block is None:
                    raise self._damaged(f"the record block of run {run_id} from record {first} has the wrong "
                                        f"size")
                yield block[block["seq"] > after_seq] if block["seq"][0] <= after_seq else block
        except self.backend.errors as exc:
            raise self.backend.explain(exc) from None

    @_guarded
    def records(self, run_id: str) -> np.ndarray:
        """All records of a run as one structured array (fields as in :data:`RECORD_DTYPE`)."""
        blocks = list(self.iter_record_blocks(run_id))
        return np.concatenate(blocks) if blocks else np.empty(0, dtype=RECORD_DTYPE)
