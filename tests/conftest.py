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
