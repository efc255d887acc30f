"""The run store: one SQLite database (WAL) per data directory holding runs, events and records.

Why SQLite: one file a lab can copy, transactions that survive a killed process (WAL, ``synchronous=FULL`` for
run and event rows), and concurrent readers (``station status`` in another terminal) while the supervising
process writes. Records are append-only, stored in blocks of consecutive records (one row per downloaded page, a packed
array of :data:`RECORD_DTYPE`): a page downloaded twice after a reconnect is dropped, not duplicated, and long
runs read back fast enough for exports of a million records in well under the budget.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np

from drivers.base import Record
from station.run_policy import TERMINAL_STATES, UNCONFIRMED_STATES, RunState

SCHEMA_VERSION = 5
DB_NAME = "station.sqlite"
RESERVE_NAME = "station.sqlite.reserve"
#: Ballast kept beside the database. When the disk fills up, deleting it frees room for the few pages that record
#: a pause and its reason, so the store never claims "running" for a channel the station paused for lack of space.
RESERVE_BYTES = 1024 * 1024
SQLITE_MAGIC = b"SQLite format 3\x00"
#: run ids per ``IN (...)`` query: well under SQLite's bound on parameters in one statement
_IN_CHUNK = 500

RECORD_COLUMNS = ("seq", "test_time", "step_time", "step_index", "cycle", "voltage", "current", "capacity", "energy",
                  "frequency", "z_real", "z_imag", "cv_cycle")
#: The packed layout of one record in a block: little-endian, SI units, positive current charging, NaN where an
#: impedance column does not apply. Blocks hold consecutive seqs, so a run reads back as a few hundred blobs.
RECORD_DTYPE = np.dtype([("seq", "<i8"), ("test_time", "<f8"), ("step_time", "<f8"), ("step_index", "<i8"),
                         ("cycle", "<i8"), ("voltage", "<f8"), ("current", "<f8"), ("capacity", "<f8"),
                         ("energy", "<f8"), ("frequency", "<f8"), ("z_real", "<f8"), ("z_imag", "<f8"),
                         ("cv_cycle", "<i8")])
#: The layout before records carried ``cv_cycle``: blocks written then read back with ``cv_cycle`` 0 (no CV scan had
#: its cycles counted), so a data directory from before needs no rewrite.
RECORD_DTYPE_V1 = np.dtype(RECORD_DTYPE.descr[:-1])

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        state TEXT NOT NULL,
        channel TEXT NOT NULL,
        instrument TEXT NOT NULL,
        protocol_name TEXT NOT NULL,
        protocol_file TEXT,
        protocol_source TEXT NOT NULL,
        parameters TEXT NOT NULL,
        program TEXT NOT NULL,
        cell TEXT NOT NULL,
        handle TEXT,
        dry_run INTEGER NOT NULL DEFAULT 0,
        last_seq INTEGER NOT NULL DEFAULT 0,
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX IF NOT EXISTS runs_by_channel ON runs(channel, state);
    CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(id),
        at REAL NOT NULL,
        test_time REAL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT
    );
    CREATE INDEX IF NOT EXISTS events_by_run ON events(run_id, id);
    CREATE TABLE IF NOT EXISTS record_blocks (
        run_id TEXT NOT NULL REFERENCES runs(id),
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        count INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (run_id, first_seq)
    ) WITHOUT ROWID;
    """,
    # stop_requested: an operator or the station asked for a stop that the instrument has not confirmed yet; the
    # run stays active (and its channel claimed) until it does. contact_lost_at: the start of the current outage.
    2: """
    ALTER TABLE runs ADD COLUMN stop_requested TEXT;
    ALTER TABLE runs ADD COLUMN contact_lost_at REAL;
    """,
    # started_at: when the station sent start to the instrument (written with the "starting" intent), the time
    # the instrument's test time counts from, for the unix time of exported records. Runs stored before it get
    # the time of their first "starting" state event, or for runs older than that state, of their first "running".
    3: """
    ALTER TABLE runs ADD COLUMN started_at REAL;
    UPDATE runs SET started_at = COALESCE(
        (SELECT e.at FROM events e WHERE e.run_id = runs.id AND e.kind = 'state'
            AND (e.message = 'starting' OR e.message LIKE 'starting: %') ORDER BY e.id LIMIT 1),
        (SELECT e.at FROM events e WHERE e.run_id = runs.id AND e.kind = 'state'
            AND (e.message = 'running' OR e.message LIKE 'running: %') ORDER BY e.id LIMIT 1));
    """,
    # samples: one physical cell each (an id a lab prints as a barcode, its cell record, who made it, notes); a
    # run belongs to the sample it was run on (NULL for runs given only a cell).
    4: """
    CREATE TABLE IF NOT EXISTS samples (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at REAL NOT NULL,
        cell TEXT NOT NULL,
        cell_file TEXT,
        operator TEXT,
        notes TEXT,
        metadata TEXT NOT NULL DEFAULT '{}'
    );
    ALTER TABLE runs ADD COLUMN sample_id TEXT REFERENCES samples(id);
    CREATE INDEX IF NOT EXISTS runs_by_sample ON runs(sample_id, created_at);
    """,
    # campaigns (station.campaigns): a chain of protocols on one sample. The campaign row holds its source and the
    # validated plan (every stage with its protocols' text as started), where it is (state, current stage, the
    # channel the sample is on, why it waits and for what), and the operator requests the service has not carried
    # out yet (confirm, stop: JSON with who and when). campaign_steps is one row per run the campaign started
    # (stage, role run/chunk/rpt, the run, its outcome and the cycles it counted); campaign_events records every
    # decision and operator action with who did it. A run knows its campaign and stage.
    5: """
    CREATE TABLE IF NOT EXISTS campaigns (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        sample_id TEXT NOT NULL REFERENCES samples(id),
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        state TEXT NOT NULL,
        source_file TEXT,
        source_text TEXT NOT NULL,
        plan TEXT NOT NULL,
        stage INTEGER NOT NULL DEFAULT 0,
        location TEXT,
        waiting TEXT,
        pending TEXT,
        confirm_requested TEXT,
        stop_requested TEXT,
        started_by TEXT,
        confirmed_by TEXT,
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX IF NOT EXISTS campaigns_by_state ON campaigns(state, created_at);
    CREATE INDEX IF NOT EXISTS campaigns_by_sample ON campaigns(sample_id, created_at);
    CREATE TABLE IF NOT EXISTS campaign_steps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        campaign_id TEXT NOT NULL REFERENCES campaigns(id),
        stage INTEGER NOT NULL,
        stage_name TEXT NOT NULL,
        role TEXT NOT NULL,
        chunk INTEGER,
        first_cycle INTEGER,
        parameters TEXT NOT NULL DEFAULT '{}',
        channel TEXT,
        run_id TEXT REFERENCES runs(id),
        created_at REAL NOT NULL,
        ended_at REAL,
        outcome TEXT,
        message TEXT NOT NULL DEFAULT '',
        cycles TEXT
    );
    CREATE INDEX IF NOT EXISTS campaign_steps_by_campaign ON campaign_steps(campaign_id, id);
    CREATE TABLE IF NOT EXISTS campaign_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        campaign_id TEXT NOT NULL REFERENCES campaigns(id),
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        who TEXT,
        data TEXT
    );
    CREATE INDEX IF NOT EXISTS campaign_events_by_campaign ON campaign_events(campaign_id, id);
    ALTER TABLE runs ADD COLUMN campaign_id TEXT REFERENCES campaigns(id);
    ALTER TABLE runs ADD COLUMN campaign_stage TEXT;
    CREATE INDEX IF NOT EXISTS runs_by_campaign ON runs(campaign_id, created_at);
    """,
}

#: The columns of a run row, named rather than ``SELECT *``: a process opened before a later schema added a
#: column keeps reading the rows it knows.
RUN_COLUMNS = ("id", "created_at", "updated_at", "state", "channel", "instrument", "protocol_name", "protocol_file",
               "protocol_source", "parameters", "program", "cell", "handle", "dry_run", "last_seq", "message",
               "stop_requested", "contact_lost_at", "started_at", "sample_id", "campaign_id", "campaign_stage")
_SELECT_RUNS = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
_LIGHT_COLUMNS = ["''" if c in ("protocol_source", "program") else c for c in RUN_COLUMNS]
_ACTIVE = f"state NOT IN ({', '.join(repr(s.value) for s in TERMINAL_STATES)})"


class UnknownSample(Exception):
    """No sample has this id (or the id is taken, for a new one): the caller named it wrong."""


@dataclass(frozen=True)
class SampleRow:
    """One physical cell: the id a lab prints as a barcode, its cell record (SI, as bound), and its story."""

    id: str
    name: str
    created_at: float
    cell: dict[str, Any]
    cell_file: str | None = None
    operator: str | None = None
    notes: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


_SAMPLE_COLUMNS = ("id", "name", "created_at", "cell", "cell_file", "operator", "notes", "metadata")
_SELECT_SAMPLES = f"SELECT {', '.join(_SAMPLE_COLUMNS)} FROM samples"


def _sample_row(row: Sequence[Any]) -> SampleRow:
    data = dict(zip(_SAMPLE_COLUMNS, row, strict=True))
    return SampleRow(id=data["id"], name=data["name"], created_at=data["created_at"], cell=json.loads(data["cell"]),
                     cell_file=data["cell_file"], operator=data["operator"], notes=data["notes"],
                     metadata=json.loads(data["metadata"] or "{}"))


class UnknownCampaign(Exception):
    """No campaign has this id (or more than one starts with it), or it cannot take the request (it has ended)."""


#: the campaign states that are final (station.campaign_policy.CampaignState names them all)
CAMPAIGN_ENDED = ("finished", "failed", "stopped")


@dataclass(frozen=True)
class CampaignRow:
    """A campaign as stored: its source and plan, where it is, and the operator requests not yet carried out."""

    id: str
    name: str
    sample_id: str
    created_at: float
    updated_at: float
    state: str
    source_file: str | None
    source_text: str
    plan: str
    """The validated plan (protocols.campaign.CampaignPlan as JSON), protocols' text included."""
    stage: int = 0
    """Index of the current stage."""
    location: str | None = None
    """The channel the sample is on, as far as the station knows (``None``: not known yet)."""
    waiting: str | None = None
    """Why the campaign waits (for an operator, or for a free channel); ``None`` when it does not."""
    pending: dict[str, Any] | None = None
    """The start that waits for a confirmation (or a free channel), or that a confirmation would retry."""
    confirm_requested: dict[str, Any] | None = None
    stop_requested: dict[str, Any] | None = None
    started_by: str | None = None
    confirmed_by: str | None = None
    message: str = ""

    @property
    def active(self) -> bool:
        return self.state not in CAMPAIGN_ENDED


@dataclass(frozen=True)
class CampaignStepRow:
    """One run a campaign started: its stage, its role (run, chunk or rpt), the run, and how it ended."""

    id: int
    campaign_id: str
    stage: int
    stage_name: str
    role: str
    chunk: int | None
    first_cycle: int | None
    parameters: dict[str, str]
    channel: str | None
    run_id: str | None
    created_at: float
    ended_at: float | None = None
    outcome: str | None = None
    message: str = ""
    cycles: list[list[float | None]] | None = None
    """The cycles the run counted (charged and discharged): [run's cycle number, charge Ah, discharge Ah, CE]."""


@dataclass(frozen=True)
class CampaignEventRow:
    id: int
    campaign_id: str
    at: float
    kind: str
    message: str
    who: str | None
    data: dict[str, Any] | None


_CAMPAIGN_COLUMNS = ("id", "name", "sample_id", "created_at", "updated_at", "state", "source_file", "source_text",
                     "plan", "stage", "location", "waiting", "pending", "confirm_requested", "stop_requested",
                     "started_by", "confirmed_by", "message")
_CAMPAIGN_JSON = ("pending", "confirm_requested", "stop_requested")
_CAMPAIGN_UPDATABLE = frozenset(_CAMPAIGN_COLUMNS) - {"id", "name", "sample_id", "created_at", "source_file",
                                                       "source_text", "plan"}
_STEP_COLUMNS = ("id", "campaign_id", "stage", "stage_name", "role", "chunk", "first_cycle", "parameters", "channel",
                 "run_id", "created_at", "ended_at", "outcome", "message", "cycles")


class UnknownRun(Exception):
    """No run has this id (or more than one starts with it): the caller named it wrong, the store is fine."""


class StoreError(Exception):
    """The data directory or database cannot be used; the message says where and what to do."""


@dataclass(frozen=True)
class RunRow:
    id: str
    created_at: float
    updated_at: float
    state: RunState
    channel: str
    instrument: dict[str, Any]
    protocol_name: str
    protocol_file: str | None
    protocol_source: str
    parameters: dict[str, str]
    program: str
    cell: dict[str, Any]
    handle: dict[str, Any] | None
    dry_run: bool
    last_seq: int
    message: str
    stop_requested: str | None = None
    contact_lost_at: float | None = None
    started_at: float | None = None
    """When the station sent start to the instrument; ``None`` for a run that never got that far."""
    sample_id: str | None = None
    """The sample (physical cell) it ran on; ``None`` for a run given only a cell record."""
    campaign_id: str | None = None
    """The campaign that started it (station.campaigns), ``None`` for a run started on its own."""
    campaign_stage: str | None = None
    """The name of the campaign stage it ran for."""

    @property
    def active(self) -> bool:
        return self.state not in TERMINAL_STATES

    @property
    def unconfirmed(self) -> bool:
        """Start may have reached the instrument, but no handle says so: reconcile with the instrument first."""
        return self.state in UNCONFIRMED_STATES and self.handle is None


@dataclass(frozen=True)
class EventRow:
    id: int
    run_id: str
    at: float
    test_time: float | None
    kind: str
    message: str
    data: dict[str, Any] | None


def damaged(where: Path, why: str) -> StoreError:
    return StoreError(
        f"{where} is damaged ({why}); stop every station using it and keep a copy, then recover it with "
        f"`sqlite3 {where.name} .recover | sqlite3 recovered.sqlite` and put recovered.sqlite in its place, or "
        f"restore a backup; move the file away to start an empty store")


def _explain(exc: sqlite3.Error, where: Path) -> StoreError:
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and any(
            s in text for s in ("not a database", "malformed", "disk image", "file is encrypted", "no such table",
                                "no such column", "corrupt")):
        return damaged(where, text)
    if "disk is full" in text or "disk I/O" in text:
        return StoreError(f"cannot write to {where}: the disk is full; free space on that drive or choose another "
                          f"--data-dir")
    if "readonly" in text or "unable to open" in text or "permission" in text.lower():
        return StoreError(f"cannot write to {where}: the directory is not writable; fix its permissions or choose "
                          f"another --data-dir")
    if "locked" in text:
        return StoreError(f"{where} is locked by another process for too long; retry, or check for a hung station")
    return StoreError(f"database error in {where}: {text}")


P = ParamSpec("P")
R = TypeVar("R")


def _guarded(method: Callable[P, R]) -> Callable[P, R]:
    """Every store call fails as a one-line StoreError naming the file (a damaged page can surface on any read)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise _explain(exc, args[0].path) from None  # type: ignore[attr-defined]

    return wrapper


#: Stores open in this process, by database file. POSIX record locks belong to a process and a file, and closing
#: *any* descriptor of a file drops all of them: reading the database's header with an ordinary open() while
#: another Store of this process is connected silently drops the locks SQLite holds for that connection (in WAL mode
#: its shared lock on the database file). Another process can then take the file exclusively when it closes and
#: checkpoint and delete the WAL under this one, whose later commits go to an unlinked file nobody else sees. So the
#: header is read only by the first Store of a file in a process (before SQLite holds anything on it).
_OPEN: dict[Path, int] = {}
_OPEN_LOCK = threading.Lock()


class Store:
    """All access to the database; one instance per process (connections are not shared across threads)."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data directory {self.data_dir}: {exc.strerror}; choose another "
                             f"--data-dir or fix its permissions") from None
        if not self.path.exists():
            self._create()
        self._key = self.path.resolve()
        with _OPEN_LOCK:
            if not _OPEN.get(self._key):
                self._check_file()
            try:
                self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as exc:
                raise _explain(exc, self.path) from None
            _OPEN[self._key] = _OPEN.get(self._key, 0) + 1  # counted until close(); one never closed stays counted
        self._closed = False
        try:
            self._refuse_foreign()
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            self.close()
            raise _explain(exc, self.path) from None
        except StoreError:
            self.close()
            raise
        self._keep_reserve()

    def _create(self) -> None:
        """Make a new store whole, then link it into place: two processes opening the same new data directory at
        once must not see each other's half-made (0-byte) file and take it for a truncated store. Where the file
        system cannot link, or the directory is not writable, the store is made in place as before (and any error
        is then reported by the normal open)."""
        new = self.data_dir / f".{DB_NAME}.{os.getpid()}.{secrets.token_hex(4)}.new"
        try:
            self.db = sqlite3.connect(new, timeout=30, isolation_level=None)
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                self._migrate()
            finally:
                self.db.close()
            with contextlib.suppress(FileExistsError):  # another process made it first: theirs is the store
                os.link(new, self.path)
        except (sqlite3.Error, StoreError, OSError):
            pass
        finally:
            for leftover in (new, new.with_name(new.name + "-wal"), new.with_name(new.name + "-shm")):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    def _check_file(self) -> None:
        """Refuse a file that is not a station database before SQLite quietly makes an empty one out of it."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror}; fix its permissions") from None
        wal = self.path.with_name(self.path.name + "-wal")
        if size == 0:
            if wal.exists() and wal.stat().st_size > 0:
                return  # a database whose only content is still in its write-ahead log: SQLite recovers it
            raise StoreError(f"{self.path} is empty (0 bytes), so its runs are gone: it was truncated or never "
                             f"written; restore it from a backup, or delete it to start an empty store")
        try:
            with self.path.open("rb") as f:
                head = f.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror}; fix its permissions") from None
        if head != SQLITE_MAGIC:
            raise damaged(self.path, "it does not start with the SQLite header")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
        with _OPEN_LOCK:
            if not getattr(self, "_closed", True):
                self._closed = True
                _OPEN[self._key] -= 1

    # -- reserve -------------------------------------------------------------------------------------------------

    @property
    def reserve_path(self) -> Path:
        return self.data_dir / RESERVE_NAME

    def _keep_reserve(self) -> None:
        """Create the ballast file if it is missing; a disk too full for it is no reason to refuse to open."""
        if self.reserve_path.exists():
            return
        with contextlib.suppress(OSError), self.reserve_path.open("wb") as f:
            f.truncate(0)
            f.write(b"\0" * RESERVE_BYTES)  # written, not sparse, so that deleting it really frees space

    def release_reserve(self) -> bool:
        """Delete the ballast so that the next small write fits on a full disk; True if there was one."""
        try:
            self.reserve_path.unlink()
        except OSError:
            return False
        return True

    # -- schema ----------------------------------------------------------------------------------------------------

    def _refuse_foreign(self) -> None:
        """Read-only, before any pragma writes: another program's database is left exactly as it was."""
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise StoreError(f"{self.path} is an SQLite database of another program (tables: "
                             f"{', '.join(sorted(tables)[:5])}); choose another --data-dir")

    def _migrate(self) -> None:
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        try:
            version = int(row[0]) if row else 0
        except ValueError:
            raise damaged(self.path, f"schema version {row[0]!r} is not a number") from None
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer station (schema {version} > {SCHEMA_VERSION}); "
                             f"upgrade this program")
        if version == 0 and tables - {"meta"}:
            raise damaged(self.path, "it has tables but no schema version")
        while version < SCHEMA_VERSION:
            with self.transaction():
                # read again under the write lock: another process opening the same new store may have migrated it
                row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                version = max(version, int(row[0]) if row else 0)
                if version >= SCHEMA_VERSION:
                    break
                target = version + 1
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                                (str(target),))
            version = target

    @property
    @_guarded
    def schema_version(self) -> int:
        return int(self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])

    # -- transactions --------------------------------------------------------------------------------------------

    class _Tx:
        def __init__(self, store: Store):
            self.store = store

        def _rollback(self) -> None:
            if self.store.db.in_transaction:  # SQLite may already have rolled back (e.g. on a full disk)
                self.store.db.execute("ROLLBACK")

        def __enter__(self) -> sqlite3.Connection:
            self.store.db.execute("BEGIN IMMEDIATE")
            return self.store.db

        def __exit__(self, exc_type, exc, tb) -> None:
            if exc_type is None:
                try:
                    self.store.db.execute("COMMIT")
                except sqlite3.Error as error:
                    self._rollback()
                    raise _explain(error, self.store.path) from None
            else:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise _explain(exc, self.store.path) from None

    def transaction(self) -> Store._Tx:
        return Store._Tx(self)

    # -- runs ------------------------------------------------------------------------------------------------------

    @_guarded
    def create_run(self, *, run_id: str, at: float, channel: str, instrument: dict[str, Any], protocol_name: str,
                   protocol_file: str | None, protocol_source: str, parameters: dict[str, str], program: str,
                   cell: dict[str, Any], dry_run: bool, sample_id: str | None = None) -> None:
        """Insert a run in state ``created``, refusing when the channel already has an active run."""
        with self.transaction() as db:
            busy = db.execute(f"SELECT id, state FROM runs WHERE channel=? AND {_ACTIVE}", (channel,)).fetchone()
            if busy:
                raise ChannelBusy(channel, busy[0], busy[1])
            db.execute(
                "INSERT INTO runs(id, created_at, updated_at, state, channel, instrument, protocol_name, "
                "protocol_file, protocol_source, parameters, program, cell, dry_run, sample_id) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, at, at, RunState.CREATED.value, channel, json.dumps(instrument), protocol_name, protocol_file,
                 protocol_source, json.dumps(parameters), program, json.dumps(cell), int(dry_run), sample_id))
            db.execute("INSERT INTO events(run_id, at, kind, message) VALUES (?,?,?,?)",
                       (run_id, at, "state", RunState.CREATED.value))

    @_guarded
    def import_run(self, *, run_id: str, at: float, channel: str, instrument: dict[str, Any], protocol_name: str,
                   protocol_file: str | None, protocol_source: str, program: str, cell: dict[str, Any],
                   sample_id: str | None, started_at: float | None, ended_at: float | None, records: np.ndarray,
                   message: str) -> None:
        """Store a finished run read from a vendor file with all its records in ONE transaction: a file that fails
        halfway (or a full disk) leaves no run behind, and a stored import is always whole. ``started_at`` and
        ``ended_at`` are the file's test start and end (the run's last change is its end, not the import)."""
        block = _conformed(records)
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs(id, created_at, updated_at, state, channel, instrument, protocol_name, "
                "protocol_file, protocol_source, parameters, program, cell, dry_run, sample_id, started_at, "
                "last_seq, message) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, at, at if ended_at is None else ended_at, RunState.FINISHED.value, channel,
                 json.dumps(instrument), protocol_name, protocol_file, protocol_source, "{}", program,
                 json.dumps(cell), 0, sample_id, started_at, int(block["seq"][-1]) if len(block) else 0, message))
            db.execute("INSERT INTO events(run_id, at, kind, message) VALUES (?,?,?,?)",
                       (run_id, at, "state", f"{RunState.FINISHED.value}: {message}"))
            step = 1 << 16  # records per block row, as a long run's downloaded pages would be
            db.executemany("INSERT INTO record_blocks(run_id, first_seq, last_seq, count, data) VALUES (?,?,?,?,?)",
                           [(run_id, int(part["seq"][0]), int(part["seq"][-1]), len(part), part.tobytes())
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
    def start_intent(self, run_id: str) -> dict[str, Any]:
        """What the last intent to start said (the barcode sent and the channel's start marker), for settling an
        unconfirmed start with the instrument; empty for runs stored before intents carried it."""
        row = self.db.execute("SELECT data FROM events WHERE run_id=? AND kind='state' AND message LIKE 'starting%' "
                              "AND data IS NOT NULL ORDER BY id DESC LIMIT 1", (run_id,)).fetchone()
        try:
            return json.loads(row[0]) if row else {}
        except ValueError as exc:
            raise damaged(self.path, f"the start intent of run {run_id} cannot be read: {exc}") from None

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
                raise UnknownRun(f"no run '{run_id}' in {self.path}; 'station runs' lists them" if not row else
                                 f"run id '{run_id}' is ambiguous ({len(row)} runs start with it); give more of it")
            row = row[0]
        return self._run_row(row)

    @_guarded
    def runs(self, *, active_only: bool = False, channel: str | None = None, light: bool = False) -> list[RunRow]:
        """Runs oldest first; ``channel``: only that channel's. ``light`` leaves out the two large texts (the
        protocol source and the step program, given as empty strings): what a service looking over thousands of
        runs every few seconds, or a channel list, needs is everything else."""
        sql = f"SELECT {', '.join(_LIGHT_COLUMNS)} FROM runs" if light else _SELECT_RUNS
        where, args = [], []
        if active_only:
            where.append(_ACTIVE)
        if channel is not None:
            where.append("channel=?")
            args.append(channel)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [self._run_row(r) for r in self.db.execute(sql + " ORDER BY created_at, id", args).fetchall()]

    @_guarded
    def active_run_ids(self) -> set[str]:
        """The ids of the active runs, and nothing else: what a service that rescans thousands of runs every few
        seconds needs first, without reading (and decoding) their rows."""
        return {run_id for (run_id,) in self.db.execute(f"SELECT id FROM runs WHERE {_ACTIVE}")}

    def _run_row(self, row: Sequence[Any]) -> RunRow:
        data = dict(zip(RUN_COLUMNS, row, strict=True))
        try:
            return self._decode_run(data)
        except (ValueError, TypeError, KeyError) as exc:  # json or type damage inside a row
            raise damaged(self.path, f"run {data.get('id')!r} cannot be read: {exc}") from None

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
            campaign_id=data["campaign_id"], campaign_stage=data["campaign_stage"])

    # -- samples ---------------------------------------------------------------------------------------------------

    @_guarded
    def create_sample(self, sample: SampleRow) -> None:
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM samples WHERE id=?", (sample.id,)).fetchone():
                raise UnknownSample(f"sample '{sample.id}' already exists in {self.path}; give another id")
            db.execute("INSERT INTO samples(id, name, created_at, cell, cell_file, operator, notes, metadata) "
                       "VALUES (?,?,?,?,?,?,?,?)",
                       (sample.id, sample.name, sample.created_at, json.dumps(sample.cell), sample.cell_file,
                        sample.operator, sample.notes, json.dumps(sample.metadata)))

    @_guarded
    def sample(self, sample_id: str) -> SampleRow:
        row = self.db.execute(f"{_SELECT_SAMPLES} WHERE id=?", (sample_id,)).fetchone()
        if row is None:
            raise UnknownSample(f"no sample '{sample_id}' in {self.path}; 'station sample list' lists them")
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
            values = [getattr(row, c) for c in _CAMPAIGN_COLUMNS]
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
            raise damaged(self.path, f"campaign {data['id']!r} cannot be read: {exc}") from None
        return CampaignRow(**data)

    @_guarded
    def campaign(self, campaign_id: str) -> CampaignRow:
        select = f"SELECT {', '.join(_CAMPAIGN_COLUMNS)} FROM campaigns"
        row = self.db.execute(f"{select} WHERE id=?", (campaign_id,)).fetchone()
        if row is None:
            rows = self.db.execute(f"{select} WHERE id LIKE ? ORDER BY created_at DESC", (f"{campaign_id}%",))
            rows = rows.fetchall()
            if len(rows) != 1:
                raise UnknownCampaign(f"no campaign '{campaign_id}' in {self.path}; 'station campaign status' lists "
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
            raise damaged(self.path, f"an event of campaign {campaign_id} cannot be read: {exc}") from None

    @_guarded
    def add_campaign_step(self, campaign_id: str, *, stage: int, stage_name: str, role: str, chunk: int | None,
                          first_cycle: int | None, parameters: dict[str, str], channel: str | None,
                          at: float) -> int:
        """Record, before the run is started, that the campaign starts one (its intent); returns the step's id."""
        with self.transaction() as db:
            cursor = db.execute("INSERT INTO campaign_steps(campaign_id, stage, stage_name, role, chunk, first_cycle, "
                                "parameters, channel, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                                (campaign_id, stage, stage_name, role, chunk, first_cycle, json.dumps(parameters),
                                 channel, at))
            return int(cursor.lastrowid or 0)

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
                raise damaged(self.path, f"a step of campaign {campaign_id} cannot be read: {exc}") from None
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
            raise damaged(self.path, f"an event of run {run_id} cannot be read: {exc}") from None

    @_guarded
    def events_after(self, event_id: int, limit: int = 1000) -> list[EventRow]:
        """Events of every run stored after event ``event_id``, oldest first: what changed since a reader looked."""
        rows = self.db.execute("SELECT id, run_id, at, test_time, kind, message, data FROM events WHERE id>? "
                               "ORDER BY id LIMIT ?", (event_id, limit)).fetchall()
        try:
            return [EventRow(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else None) for r in rows]
        except ValueError as exc:
            raise damaged(self.path, f"an event cannot be read: {exc}") from None

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
                last.update(db.execute(f"SELECT id, last_seq FROM runs WHERE id IN ({marks})", chunk).fetchall())
            rows: list[tuple[str, int, int, int, bytes]] = []
            for run_id in run_ids:
                if run_id not in last:
                    raise UnknownRun(f"no run '{run_id}' in {self.path} to store records for")
                block = _conformed(_newer(blocks[run_id], last[run_id]))
                if len(block):
                    last[run_id] = int(block["seq"][-1])
                    rows.append((run_id, int(block["seq"][0]), last[run_id], len(block), block.tobytes()))
            if rows:
                db.executemany("INSERT INTO record_blocks(run_id, first_seq, last_seq, count, data) "
                               "VALUES (?,?,?,?,?)", rows)
                db.executemany("UPDATE runs SET last_seq=? WHERE id=?", [(r[2], r[0]) for r in rows])
        return {run_id: last[run_id] for run_id in run_ids}

    @_guarded
    def record_count(self, run_id: str) -> int:
        row = self.db.execute("SELECT COALESCE(SUM(count), 0) FROM record_blocks WHERE run_id=?", (run_id,))
        return row.fetchone()[0]

    def iter_record_blocks(self, run_id: str, after_seq: int = 0) -> Iterator[np.ndarray]:
        """Stored records in seq order, one block (structured array of :data:`RECORD_DTYPE`) at a time."""
        try:
            cursor = self.db.execute("SELECT first_seq, count, data FROM record_blocks WHERE run_id=? AND last_seq>? "
                                     "ORDER BY first_seq", (run_id, after_seq))
            for first, count, data in cursor:
                if not isinstance(data, bytes):
                    raise damaged(self.path, f"the record block of run {run_id} from record {first} is not binary")
                block = _block(data, count)
                if block is None:
                    raise damaged(self.path, f"the record block of run {run_id} from record {first} has the wrong "
                                  f"size")
                yield block[block["seq"] > after_seq] if block["seq"][0] <= after_seq else block
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from None

    @_guarded
    def records(self, run_id: str) -> np.ndarray:
        """All records of a run as one structured array (fields as in :data:`RECORD_DTYPE`)."""
        blocks = list(self.iter_record_blocks(run_id))
        return np.concatenate(blocks) if blocks else np.empty(0, dtype=RECORD_DTYPE)


def _block(data: bytes, count: int) -> np.ndarray | None:
    """A stored block as :data:`RECORD_DTYPE`, whichever layout wrote it; None when its size fits neither."""
    if len(data) == count * RECORD_DTYPE.itemsize:
        return np.frombuffer(data, dtype=RECORD_DTYPE)
    if len(data) == count * RECORD_DTYPE_V1.itemsize:
        old = np.frombuffer(data, dtype=RECORD_DTYPE_V1)
        block = np.zeros(count, dtype=RECORD_DTYPE)
        for name in RECORD_DTYPE_V1.names:
            block[name] = old[name]
        return block
    return None


def _conformed(block: np.ndarray) -> np.ndarray:
    """``block`` in :data:`RECORD_DTYPE`: a block built with fewer fields (an older layout, an importer's own) gets
    the missing ones as a record without them reads (NaN impedance, ``cv_cycle`` 0), so every stored blob has one
    size per record."""
    if block.dtype == RECORD_DTYPE:
        return block
    out = np.zeros(len(block), dtype=RECORD_DTYPE)
    for name in ("frequency", "z_real", "z_imag"):
        out[name] = np.nan
    for name in RECORD_DTYPE.names:
        if name in (block.dtype.names or ()):
            out[name] = block[name]
    return out


def to_block(records: Sequence[Record]) -> np.ndarray:
    nan = float("nan")
    return np.array([(r.seq, r.test_time, r.step_time, r.step_index, r.cycle, r.voltage, r.current, r.capacity,
                      r.energy, nan if r.frequency is None else r.frequency, nan if r.z_real is None else r.z_real,
                      nan if r.z_imag is None else r.z_imag, r.cv_cycle) for r in records], dtype=RECORD_DTYPE)


def _newer(parts: Sequence[np.ndarray], last: int) -> np.ndarray:
    """The records of ``parts`` (pages in download order) after seq ``last``, sorted, each seq once."""
    block = parts[0] if len(parts) == 1 else np.concatenate(parts)
    block = block[block["seq"] > last]
    if len(block) > 1 and np.any(np.diff(block["seq"]) <= 0):  # out of order or repeated within the pages
        block = block[np.argsort(block["seq"], kind="stable")]
        block = block[np.r_[True, np.diff(block["seq"]) > 0]]
    return block


class ChannelBusy(StoreError):
    def __init__(self, channel: str, run_id: str, state: str):
        self.channel, self.run_id, self.state = channel, run_id, state
        super().__init__(f"channel {channel} already has run {run_id} ({state}); stop it or wait for it to finish "
                         f"before starting another")
