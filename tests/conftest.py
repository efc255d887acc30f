"""Suite-wide set-up: the per-user data folder points into a temporary folder, so that no test (or the commands it
starts) writes runs into the real user's data directory."""

from __future__ import annotations

import os
import subprocess

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_user_data(tmp_path_factory: pytest.TempPathFactory):
    saved = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    yield
    if saved is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = saved


@pytest.fixture(scope="session")
def postgres():
    """The test session's PostgreSQL server (tests/postgres.py), started on first use."""
    from tests.postgres import PostgresForTests

    server = PostgresForTests()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request, monkeypatch):
    """Run the test once on each store backend: the data directory's SQLite, and a fresh database of its own on
    the session's PostgreSQL, chosen the way a lab chooses it ($STATION_DATABASE), so that the processes a test
    starts use it too."""
    if request.param == "postgresql":
        monkeypatch.setenv("STATION_DATABASE", request.getfixturevalue("postgres").fresh())
    else:
        monkeypatch.delenv("STATION_DATABASE", raising=False)
    return request.param


def pytest_collection_modifyitems(config, items):
    """A test marked ``sqlite_only`` in a module run on both backends keeps only its SQLite run."""
    keep, drop = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        on_postgres = spec is not None and spec.params.get("store_backend") == "postgresql"
        (drop if on_postgres and item.get_closest_marker("sqlite_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def processes():
    """Processes a test starts (append them); any still alive when it ends, a failed assertion included, are
    killed, so no simulator or station outlives its test."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
