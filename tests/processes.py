"""Child processes the tests start, and how they end them, however the test runner itself was started.

A process started in the background from a shell without job control inherits SIGINT *ignored*; Python then
installs no KeyboardInterrupt handler, and a test that stops its child with Ctrl-C's signal waits forever. So
children get SIGINT back at its default (where the platform has signals), and stopping falls back to kill().
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


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
