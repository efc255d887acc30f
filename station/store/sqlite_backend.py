"""The embedded backend: one SQLite database (WAL) in the data directory.

Why SQLite: one file a lab can copy, transactions that survive a killed process (WAL, ``synchronous=FULL`` for
run and event rows), and concurrent readers (``station status`` in another terminal) while the supervising
process writes. It keeps a ballast file beside the database so that a full disk still has room to record why a
channel was paused.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from station.store.rows import StoreError

DB_NAME = "station.sqlite"
RESERVE_NAME = "station.sqlite.reserve"
#: Ballast kept beside the database. When the disk fills up, deleting it frees room for the few pages that record
#: a pause and its reason, so the store never claims "running" for a channel the station paused for lack of space.
RESERVE_BYTES = 1024 * 1024
SQLITE_MAGIC = b"SQLite format 3\x00"

#: Stores open in this process, by database file. POSIX record locks belong to a process and a file, and closing
#: *any* descriptor of a file drops all of them: reading the database's header with an ordinary open() while
#: another Store of this process is connected silently drops the locks SQLite holds for that connection (in WAL mode
#: its shared lock on the database file). Another process can then take the file exclusively when it closes and
#: checkpoint and delete the WAL under this one, whose later commits go to an unlinked file nobody else sees. So the
#: header is read only by the first Store of a file in a process (before SQLite holds anything on it).
_OPEN: dict[Path, int] = {}
_OPEN_LOCK = threading.Lock()


def damaged(where: Path | str, why: str) -> StoreError:
    name = Path(where).name
    return StoreError(
        f"{where} is damaged ({why}); stop every station using it and keep a copy, then recover it with "
        f"`sqlite3 {name} .recover | sqlite3 recovered.sqlite` and put recovered.sqlite in its place, or "
        f"restore a backup; move the file away to start an empty store")


class SQLiteBackend:
    """The connection to ``DATA_DIR/station.sqlite`` and what only SQLite needs: the file checks before SQLite
    touches a file, the ballast, and its error texts turned into advice."""

    dialect = "sqlite"
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    #: appended to the SELECT that reads what a write depends on; SQLite's BEGIN IMMEDIATE already holds the lock
    for_update = ""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.path = data_dir / DB_NAME
        self.where = str(self.path)
        if not self.path.exists():
            self._create()
        self._key = self.path.resolve()
        with _OPEN_LOCK:
            if not _OPEN.get(self._key):
                self._check_file()
            try:
                self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as exc:
                raise self.explain(exc) from None
            _OPEN[self._key] = _OPEN.get(self._key, 0) + 1  # counted until close(); one never closed stays counted
        self._closed = False

    def configure(self) -> None:
        """After the foreign-database check (which must not write): WAL, durable commits, foreign keys."""
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._keep_reserve()

    def _create(self) -> None:
        """Make a new (empty) database file whole, then link it into place: two processes opening the same new data
        directory at once must not see each other's half-made (0-byte) file and take it for a truncated store.
        Where the file system cannot link, or the directory is not writable, the store is made in place (and any
        error is then reported by the normal open)."""
        new = self.data_dir / f".{DB_NAME}.{os.getpid()}.{secrets.token_hex(4)}.new"
        try:
            db = sqlite3.connect(new, timeout=30, isolation_level=None)
            try:
                # 16 KB pages (SQLite's default is 4 KB): records are blobs of a few to 120 KB, and a catch-up's
                # append of a million records took 0.76 s with 4 KB pages, 0.6 s with these (bench_catch_up); a
                # service's small commits cost no more (bench_service_2048: 63 % of a core either way). Set before
                # the first table; a data directory made before keeps its own page size.
                db.execute("PRAGMA page_size=16384")
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            finally:
                db.close()
            with contextlib.suppress(FileExistsError):  # another process made it first: theirs is the store
                os.link(new, self.path)
        except (sqlite3.Error, OSError):
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

    # -- what the store asks of a backend --------------------------------------------------------------------------

    def tables(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")  # the write lock now: a read inside decides what is written

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:  # SQLite may already have rolled back (e.g. on a full disk)
            self.db.execute("ROLLBACK")

    def lock_schema(self) -> None:
        """Nothing to do: BEGIN IMMEDIATE already keeps a second process's migration out."""

    def inserted_id(self, sql: str, params: Sequence[Any]) -> int:
        return int(self.db.execute(sql + " RETURNING id", params).fetchone()[0])

    def insert_blocks(self, rows: Iterable[tuple[str, int, int, int, bytes]]) -> None:
        self.db.executemany("INSERT INTO record_blocks(run_id, first_seq, last_seq, count, data) VALUES (?,?,?,?,?)",
                            rows)

    def is_conflict(self, exc: Exception) -> bool:
        """A unique constraint refused the write (another writer got there first)."""
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)

    def damaged(self, why: str) -> StoreError:
        return damaged(self.path, why)

    def explain(self, exc: Exception) -> StoreError:
        text = str(exc)
        where = self.path
        if isinstance(exc, sqlite3.DatabaseError) and any(
                s in text for s in ("not a database", "malformed", "disk image", "file is encrypted", "no such table",
                                    "no such column", "corrupt")):
            return damaged(where, text)
        if "disk is full" in text or "disk I/O" in text:
            return StoreError(f"cannot write to {where}: the disk is full; free space on that drive or choose "
                              f"another --data-dir")
        if "readonly" in text or "unable to open" in text or "permission" in text.lower():
            return StoreError(f"cannot write to {where}: the directory is not writable; fix its permissions or "
                              f"choose another --data-dir")
        if "locked" in text:
            return StoreError(f"{where} is locked by another process for too long; retry, or check for a hung "
                              f"station")
        return StoreError(f"database error in {where}: {text}")

    # -- ballast ---------------------------------------------------------------------------------------------------

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
