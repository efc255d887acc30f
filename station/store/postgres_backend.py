"""The lab backend: one PostgreSQL database shared by every station of a lab (DESIGN sections 8 and 10).

The store's SQL is written once, with SQLite's ``?`` placeholders; this backend hands it to psycopg 3 with
``%s`` ones (and a literal ``%`` doubled). Record blocks go in with binary COPY, the bulk path PostgreSQL
offers: one round trip per supervision round however many channels it stored pages for.

The connection runs in autocommit mode and the store opens its own transactions (``BEGIN`` ... ``COMMIT``), as it
does on SQLite. A connection that broke (the server restarted, the network went) is opened again by the next call
outside a transaction; a call that fails meanwhile raises one StoreError saying where the database is.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from station.store.rows import StoreError, StoreUnreachable

MISSING = ("the PostgreSQL backend needs psycopg 3, which is missing: pip install 'psycopg[binary]' (or "
           "pip install --force-reinstall battery-test-station)")
#: the advisory lock that keeps two stations from migrating one database at once (any fixed 64-bit number)
_SCHEMA_LOCK = 0x5354_4154_494F_4E  # "STATION"
_PLACEHOLDER = re.compile(r"\?")


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and url.split(":", 1)[0] in ("postgresql", "postgres")


def shown(url: str) -> str:
    """The URL as messages show it: without its password."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def to_pyformat(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s``; a literal ``%`` (in ``LIKE 'x%'``) doubled first."""
    return _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))


class _Connection:
    """The part of a DB-API connection the store uses (``execute`` returning a cursor, ``executemany``), over
    psycopg, with SQLite's placeholders."""

    def __init__(self, backend: PostgresBackend):
        self._backend = backend

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        conn = self._backend.connection()
        if not params:
            return conn.execute(sql)  # no parameters: the text goes as it is (a migration's LIKE 'x: %')
        return conn.execute(to_pyformat(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._backend.connection().cursor() as cur:
            cur.executemany(to_pyformat(sql), [tuple(r) for r in rows])


class PostgresBackend:
    """A psycopg connection to the lab's database."""

    dialect = "postgresql"
    #: what a write reads to decide is locked until the write commits: several stations write at once
    for_update = " FOR UPDATE"

    def __init__(self, url: str, *, connect_timeout: float = 5.0):
        try:
            import psycopg
        except ImportError:
            raise StoreError(MISSING) from None
        self._psycopg = psycopg
        self.url = url
        self.where = shown(url)
        self.errors: tuple[type[Exception], ...] = (psycopg.Error,)
        self._timeout = connect_timeout
        self._conn: Any = None
        self.db = _Connection(self)
        self.connection()

    def connection(self) -> Any:
        """The open connection; a broken one is replaced, unless a transaction was under way on it (that
        transaction is lost, and its caller must hear so)."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None and getattr(self, "_in_tx", False):
            raise StoreUnreachable(f"the connection to {self.where} broke in the middle of a transaction; nothing "
                                   f"of it was written, ask again")
        try:
            self._conn = self._psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self._timeout)))
        except self._psycopg.Error as exc:
            raise self.explain(exc) from None
        return self._conn

    def configure(self) -> None:
        """Nothing to set per connection: durability and locking are the server's."""

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(self._psycopg.Error):
                self._conn.close()

    # -- what the store asks of a backend --------------------------------------------------------------------------

    def tables(self) -> set[str]:
        rows = self.db.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                               "current_schema()").fetchall()
        return {r[0] for r in rows}

    def begin(self) -> None:
        self.db.execute("BEGIN")
        self._in_tx = True

    def commit(self) -> None:
        try:
            self.db.execute("COMMIT")
        finally:
            self._in_tx = False

    def rollback(self) -> None:
        self._in_tx = False
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            with contextlib.suppress(self._psycopg.Error):
                conn.execute("ROLLBACK")

    def lock_schema(self) -> None:
        """Hold the schema lock until the migration's transaction ends: a second station waits, then finds the
        schema migrated."""
        self.db.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))

    def inserted_id(self, sql: str, params: Sequence[Any]) -> int:
        return int(self.db.execute(sql + " RETURNING id", params).fetchone()[0])

    def insert_blocks(self, rows: Iterable[tuple[str, int, int, int, bytes]]) -> None:
        copy_in = "COPY record_blocks (run_id, first_seq, last_seq, count, data) FROM STDIN (FORMAT BINARY)"
        with self.connection().cursor() as cur, cur.copy(copy_in) as copy:
            copy.set_types(["text", "int8", "int8", "int8", "bytea"])
            for row in rows:
                copy.write_row(row)

    def is_conflict(self, exc: Exception) -> bool:
        return isinstance(exc, self._psycopg.errors.UniqueViolation)

    def damaged(self, why: str) -> StoreError:
        return StoreError(f"the database {self.where} holds data this station cannot read ({why}); check which "
                          f"program wrote it, or restore a backup")

    def explain(self, exc: Exception) -> StoreError:
        text = " ".join(str(exc).split()) or type(exc).__name__
        errors = self._psycopg.errors
        if isinstance(exc, errors.DiskFull):
            return StoreError(f"cannot write to {self.where}: the disk is full; free space on the database "
                              f"server's drive")
        if isinstance(exc, errors.InsufficientPrivilege):
            return StoreError(f"{self.where} refuses this station ({text}); grant its user the rights on the "
                              f"database")
        if isinstance(exc, (errors.UndefinedTable, errors.UndefinedColumn)):
            return StoreError(f"{self.where} lacks part of the station schema ({text}); run `station db upgrade`")
        if isinstance(exc, errors.TransactionRollback):  # a deadlock or a serialization failure
            return StoreError(f"{self.where} undid a write that collided with another station's ({text}); nothing "
                              f"of it was kept, ask again")
        if isinstance(exc, self._psycopg.OperationalError):
            return StoreUnreachable(f"cannot reach the database {self.where} ({text}); check that the server runs and "
                              f"the address in station.yaml or $STATION_DATABASE")
        return StoreError(f"database error in {self.where}: {text}")

    def release_reserve(self) -> bool:
        """There is no ballast: the database server's disk is not this station's to manage."""
        return False
