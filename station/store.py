"""The run store: one SQLite database (WAL) per data directory holding runs, events and records.

Why SQLite: one file a lab can copy, transactions that survive a killed process (WAL, ``synchronous=FULL`` for
run and event rows), and concurrent readers (``station status`` in another terminal) while the supervising
process writes. Records are append-only, stored in blocks of consecutive records (one row per downloaded page, a packed
array of :data:`RECORD_DTYPE`): a page downloaded twice after a reconnect is dropped, not duplicated, and long
runs read back fast enough for exports of a million records in well under the budget.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drivers.base import Record

SCHEMA_VERSION = 1
DB_NAME = "station.sqlite"

RECORD_COLUMNS = ("seq", "test_time", "step_time", "step_index", "cycle", "voltage", "current", "capacity", "energy",
                  "frequency", "z_real", "z_imag")
#: The packed layout of one record in a block: little-endian, SI units, positive current charging, NaN where an
#: impedance column does not apply. Blocks hold consecutive seqs, so a run reads back as a few hundred blobs.
RECORD_DTYPE = np.dtype([("seq", "<i8"), ("test_time", "<f8"), ("step_time", "<f8"), ("step_index", "<i8"),
                         ("cycle", "<i8"), ("voltage", "<f8"), ("current", "<f8"), ("capacity", "<f8"),
                         ("energy", "<f8"), ("frequency", "<f8"), ("z_real", "<f8"), ("z_imag", "<f8")])

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
}

TERMINAL_STATES = ("finished", "stopped", "failed")


class StoreError(Exception):
    """The data directory or database cannot be used; the message says where and what to do."""


@dataclass(frozen=True)
class RunRow:
    id: str
    created_at: float
    updated_at: float
    state: str
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

    @property
    def active(self) -> bool:
        return self.state not in TERMINAL_STATES


@dataclass(frozen=True)
class EventRow:
    id: int
    run_id: str
    at: float
    test_time: float | None
    kind: str
    message: str
    data: dict[str, Any] | None


def _explain(exc: sqlite3.Error, where: Path) -> StoreError:
    text = str(exc)
    if "disk is full" in text or "disk I/O" in text:
        return StoreError(f"cannot write to {where}: the disk is full; free space on that drive or choose another "
                          f"--data-dir")
    if "readonly" in text or "unable to open" in text or "permission" in text.lower():
        return StoreError(f"cannot write to {where}: the directory is not writable; fix its permissions or choose "
                          f"another --data-dir")
    if "locked" in text:
        return StoreError(f"{where} is locked by another process for too long; retry, or check for a hung station")
    return StoreError(f"database error in {where}: {text}")


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
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from None

    def close(self) -> None:
        self.db.close()

    # -- schema ----------------------------------------------------------------------------------------------------

    def _migrate(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer station (schema {version} > {SCHEMA_VERSION}); "
                             f"upgrade this program")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                                (str(target),))

    @property
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

    def create_run(self, *, run_id: str, at: float, channel: str, instrument: dict[str, Any], protocol_name: str,
                   protocol_file: str | None, protocol_source: str, parameters: dict[str, str], program: str,
                   cell: dict[str, Any], dry_run: bool) -> None:
        """Insert a run in state ``created``, refusing when the channel already has an active run."""
        with self.transaction() as db:
            busy = db.execute(
                f"SELECT id, state FROM runs WHERE channel=? AND state NOT IN {TERMINAL_STATES!r}", (channel,)
            ).fetchone()
            if busy:
                raise ChannelBusy(channel, busy[0], busy[1])
            db.execute(
                "INSERT INTO runs(id, created_at, updated_at, state, channel, instrument, protocol_name, "
                "protocol_file, protocol_source, parameters, program, cell, dry_run) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, at, at, "created", channel, json.dumps(instrument), protocol_name, protocol_file,
                 protocol_source, json.dumps(parameters), program, json.dumps(cell), int(dry_run)))
            db.execute("INSERT INTO events(run_id, at, kind, message) VALUES (?,?,?,?)",
                       (run_id, at, "state", "created"))

    def set_state(self, run_id: str, state: str, at: float, message: str = "", *, test_time: float | None = None,
                  handle: dict[str, Any] | None = None) -> None:
        with self.transaction() as db:
            if handle is not None:
                db.execute("UPDATE runs SET handle=? WHERE id=?", (json.dumps(handle), run_id))
            db.execute("UPDATE runs SET state=?, updated_at=?, message=? WHERE id=?", (state, at, message, run_id))
            db.execute("INSERT INTO events(run_id, at, test_time, kind, message) VALUES (?,?,?,?,?)",
                       (run_id, at, test_time, "state", f"{state}: {message}" if message else state))

    def add_event(self, run_id: str, kind: str, message: str, at: float, *, test_time: float | None = None,
                  data: dict[str, Any] | None = None) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO events(run_id, at, test_time, kind, message, data) VALUES (?,?,?,?,?,?)",
                       (run_id, at, test_time, kind, message, json.dumps(data) if data is not None else None))

    def has_run(self, run_id: str) -> bool:
        """Whether exactly this id exists (no prefix matching)."""
        return self.db.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is not None

    def run(self, run_id: str) -> RunRow:
        row = self.db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            row = self.db.execute("SELECT * FROM runs WHERE id LIKE ? ORDER BY created_at DESC",
                                  (f"{run_id}%",)).fetchall()
            if len(row) != 1:
                raise StoreError(f"no run '{run_id}' in {self.path}" if not row else
                                 f"run id '{run_id}' is ambiguous ({len(row)} runs start with it); give more of it")
            row = row[0]
        return self._run_row(row)

    def runs(self, *, active_only: bool = False) -> list[RunRow]:
        sql = "SELECT * FROM runs"
        if active_only:
            sql += f" WHERE state NOT IN {TERMINAL_STATES!r}"
        return [self._run_row(r) for r in self.db.execute(sql + " ORDER BY created_at, id").fetchall()]

    def _run_row(self, row: Sequence[Any]) -> RunRow:
        names = [d[0] for d in self.db.execute("SELECT * FROM runs LIMIT 0").description]
        data = dict(zip(names, row, strict=True))
        return RunRow(
            id=data["id"], created_at=data["created_at"], updated_at=data["updated_at"], state=data["state"],
            channel=data["channel"], instrument=json.loads(data["instrument"]), protocol_name=data["protocol_name"],
            protocol_file=data["protocol_file"], protocol_source=data["protocol_source"],
            parameters=json.loads(data["parameters"]), program=data["program"], cell=json.loads(data["cell"]),
            handle=json.loads(data["handle"]) if data["handle"] else None, dry_run=bool(data["dry_run"]),
            last_seq=data["last_seq"], message=data["message"])

    def events(self, run_id: str) -> list[EventRow]:
        rows = self.db.execute("SELECT id, run_id, at, test_time, kind, message, data FROM events WHERE run_id=? "
                               "ORDER BY id", (run_id,)).fetchall()
        return [EventRow(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else None) for r in rows]

    # -- records ---------------------------------------------------------------------------------------------------

    def append_records(self, run_id: str, records: Sequence[Record] | np.ndarray) -> int:
        """Append the records newer than the last stored one, in one transaction; returns the new last seq.

        Records at or below the stored last seq (a page downloaded again after a reconnect) are dropped, so the
        stored sequence is strictly increasing and free of duplicates by construction.
        """
        block = records if isinstance(records, np.ndarray) else to_block(records)
        with self.transaction() as db:
            last = db.execute("SELECT last_seq FROM runs WHERE id=?", (run_id,)).fetchone()[0]
            block = block[block["seq"] > last]
            if len(block):
                if np.any(np.diff(block["seq"]) <= 0):  # out of order or repeated within the page
                    block = block[np.argsort(block["seq"], kind="stable")]
                    block = block[np.r_[True, np.diff(block["seq"]) > 0]]
                db.execute("INSERT INTO record_blocks(run_id, first_seq, last_seq, count, data) VALUES (?,?,?,?,?)",
                           (run_id, int(block["seq"][0]), int(block["seq"][-1]), len(block), block.tobytes()))
                last = int(block["seq"][-1])
                db.execute("UPDATE runs SET last_seq=? WHERE id=?", (last, run_id))
            return last

    def record_count(self, run_id: str) -> int:
        row = self.db.execute("SELECT COALESCE(SUM(count), 0) FROM record_blocks WHERE run_id=?", (run_id,))
        return row.fetchone()[0]

    def iter_record_blocks(self, run_id: str, after_seq: int = 0) -> Iterator[np.ndarray]:
        """Stored records in seq order, one block (structured array of :data:`RECORD_DTYPE`) at a time."""
        cursor = self.db.execute("SELECT data FROM record_blocks WHERE run_id=? AND last_seq>? ORDER BY first_seq",
                                 (run_id, after_seq))
        for (data,) in cursor:
            block = np.frombuffer(data, dtype=RECORD_DTYPE)
            yield block[block["seq"] > after_seq] if block["seq"][0] <= after_seq else block

    def records(self, run_id: str) -> np.ndarray:
        """All records of a run as one structured array (fields as in :data:`RECORD_DTYPE`)."""
        blocks = list(self.iter_record_blocks(run_id))
        return np.concatenate(blocks) if blocks else np.empty(0, dtype=RECORD_DTYPE)


def to_block(records: Sequence[Record]) -> np.ndarray:
    nan = float("nan")
    return np.array([(r.seq, r.test_time, r.step_time, r.step_index, r.cycle, r.voltage, r.current, r.capacity,
                      r.energy, nan if r.frequency is None else r.frequency, nan if r.z_real is None else r.z_real,
                      nan if r.z_imag is None else r.z_imag) for r in records], dtype=RECORD_DTYPE)


class ChannelBusy(StoreError):
    def __init__(self, channel: str, run_id: str, state: str):
        self.channel, self.run_id, self.state = channel, run_id, state
        super().__init__(f"channel {channel} already has run {run_id} ({state}); stop it or wait for it to finish "
                         f"before starting another")
