"""Run leases: which process is supervising (or starting) a run, decided by the operating system.

A run whose start was sent but whose handle is not stored is a question only the instrument can answer, and only
once nobody is still in the middle of starting it: `station status` in a second terminal must not declare a run
"never started" while the first terminal is about to send `start`. The lease is an exclusive lock on a small
file per run, held by the process that creates, starts or supervises it. The kernel releases it when that
process ends in any way (SIGKILL and power loss included), so a free lease means "nobody is looking after this
run" without trusting a pid or a heartbeat that a dead process cannot clear.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

if sys.platform == "win32":  # pragma: no cover - exercised on Windows lab PCs
    import msvcrt

    def _lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # per open file: two opens in one process conflict too
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)


class LeaseError(Exception):
    """The lease file cannot be created (an unwritable data directory); the message names it."""


class Lease:
    """The exclusive right to start or supervise one run; :meth:`acquire` never waits."""

    def __init__(self, data_dir: Path, run_id: str):
        self.path = Path(data_dir) / "leases" / f"{run_id}.lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """True if this process now holds the lease (or already did); False if another process holds it."""
        if self._fd is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LeaseError(f"cannot create the run lease {self.path}: {exc.strerror}; fix the data directory's "
                             f"permissions") from None
        if not _lock(fd):
            os.close(fd)
            return False
        with contextlib.suppress(OSError):  # who holds it, for the message another process prints
            os.lseek(fd, 1, os.SEEK_SET)  # byte 0 is the Windows lock byte
            os.ftruncate(fd, 1)
            os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        """The pid recorded by the holder, for messages ("" when unknown)."""
        try:
            return self.path.read_bytes()[1:].decode("ascii", "replace").strip()
        except OSError:
            return ""

    def release(self) -> None:
        if self._fd is None:
            return
        _unlock(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None
