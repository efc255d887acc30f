"""Child processes the tests start, and how they end them, however the test runner itself was started.

A process started in the background from a shell without job control inherits SIGINT *ignored*; Python then
installs no KeyboardInterrupt handler, and a test that stops its child with Ctrl-C's signal waits forever. So
children get SIGINT back at its default (where the platform has signals), and stopping falls back to kill().
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any


class _ChildEnv(Mapping[str, str]):
    """The environment of a child process, read when the child starts, not when a test module was imported: a
    variable a fixture sets for one test ($STATION_DATABASE, for the PostgreSQL run of a test) reaches the
    processes that test starts. Output unbuffered, so that a test reads a child's lines as they are written."""

    def _now(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1"}

    def __getitem__(self, key: str) -> str:
        return self._now()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._now())

    def __len__(self) -> int:
        return len(self._now())


CHILD_ENV: Mapping[str, str] = _ChildEnv()


def _interruptible() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen(args: list[str], **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen`` whose child answers SIGINT (Ctrl-C) even when this process ignores it."""
    if os.name == "posix":
        kwargs.setdefault("preexec_fn", _interruptible)
    return subprocess.Popen(args, **kwargs)


def interrupt(proc: subprocess.Popen, timeout_s: float = 20.0) -> int | None:
    """Ctrl-C the child and wait for it; kill it if it does not end in time. The exit code, or None if it had to
    be killed (a test that expects a clean exit then fails on its assertion, not on a hang)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
        return None


def wait_for(predicate: Callable[[], Any], timeout_s: float = 120.0, what: str = "what was awaited") -> Any:
    """Poll ``predicate`` until it is truthy and return its value: the tests wait for another process or thread
    to get somewhere, never a fixed time. A deadline that passes is a failure that says what never came."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
