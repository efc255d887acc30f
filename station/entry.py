"""The ``station`` program's entry point: the command line app, then a quick exit.

When a command is done, CPython's own teardown (collecting every module and object of numpy, pyarrow, pydantic and
the rest) takes ~0.12 s, a tenth of a short dry run, before the shell gets its prompt back; nothing the station
keeps depends on it. So once the command has returned, and it left no thread that is not a daemon still working
(those are joined by a normal exit, and are let finish), the logs and the standard streams are flushed and the
process ends with the command's exit code. Stores are closed by the commands themselves, and SQLite's committed
transactions are durable without a close. Tests call ``station.cli.app`` in-process, never this.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading


def main() -> None:
    from station.cli import app

    try:
        app(prog_name="station")
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)  # a worker still has work: the normal exit joins it
    logging.shutdown()
    _leave(code)


def _leave(code: object) -> None:
    """Exit as ``sys.exit(code)`` would (an int is the status, None is 0, anything else is printed and is 1)."""
    status = 0
    if isinstance(code, int):
        status = code
    elif code is not None:
        print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (| head): nothing more can reach it
            stream.flush()
    os._exit(status)
