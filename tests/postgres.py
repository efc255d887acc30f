"""A real PostgreSQL for the tests: the ``pgserver`` package (a PostgreSQL server in a pip wheel, started in about
0.5 s from a folder of the test session), one per test session. Each test that wants it gets a database of its
own, copied from a template that ``station db upgrade`` migrated once, so that tests never see each other's rows
and pay milliseconds, not a migration, each.

Why pgserver and not Debian's postgresql: it needs no root, no apt and no service manager, runs the same on a
developer's PC as in CI, and is a test-only pip dependency (the ``test`` extra)."""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from typing import Any

TEMPLATE = "station_template"
_names = itertools.count(1)


class PostgresForTests:
    """One server for the session; :meth:`fresh` hands out empty, migrated databases."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="station-pg-")
        os.environ.setdefault("XDG_RUNTIME_DIR", self._dir.name)  # pgserver asks platformdirs for one on import
        try:
            import pgserver
        except ImportError:
            raise RuntimeError("the store tests need a real PostgreSQL from the pgserver package: "
                               "pip install -e '.[test]'") from None
        self.server: Any = pgserver.get_server(Path(self._dir.name) / "pgdata", cleanup_mode="stop")
        self._template_ready = False

    def url(self, database: str) -> str:
        return self.server.get_uri(database)

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def empty(self) -> str:
        """A new database with nothing in it (not even the station schema)."""
        name = f"empty_{next(_names)}"
        self.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def fresh(self) -> str:
        """A new database holding the current station schema and no rows."""
        if not self._template_ready:
            from station.store import Store

            self.execute(f"CREATE DATABASE {TEMPLATE}")
            with tempfile.TemporaryDirectory() as files:
                Store(files, self.url(TEMPLATE), migrate=True).close()
            self._template_ready = True
        name = f"station_{next(_names)}"
        self.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    def stop(self) -> None:
        """Stop the server, as a lab's database goes away (fast: open connections are cut)."""
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        """Start it again, on the same socket: every URL it handed out works again."""
        with self.server._lock:
            self.server.ensure_postgres_running()

    def close(self) -> None:
        self.server.cleanup()
        self._dir.cleanup()
