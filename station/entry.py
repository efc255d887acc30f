"""The ``station`` program's entry point: the allocator tuned for page-sized buffers, the command line app, then a
quick exit.

When a command is done, CPython's own teardown (collecting every module and object of numpy, pyarrow, pydantic and
the rest) takes ~0.12 s, a tenth of a short dry run, before the shell gets its prompt back; nothing the station
keeps depends on it. So once the command has returned, and it left no thread that is not a daemon still working
(those are joined by a normal exit, and are let finish), the logs and the standard streams are flushed and the
process ends with the command's exit code. Stores are closed by the commands themselves, and SQLite's committed
transactions are durable without a close. Tests call ``station.cli.app`` in-process, never this.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading

#: glibc mallopt parameters (malloc.h): the free memory at the top of the heap kept rather than given back to the
#: kernel, and the size from which an allocation gets its own mapping
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Download pages and their decoded columns are a few hundred KB each, allocated and freed page after page, in the
#: station and in a dry run's simulated instrument. glibc's adaptive thresholds kept handing that memory back to
#: the kernel and faulting it in again: ~80 000-100 000 page faults and ~0.2 s of kernel time in a 1000-cycle dry
#: run (3.5 s), ~23 000 with these. Peak memory is the same within 2 MB: only memory already used once is kept for
#: the next page (up to 64 MB of it); allocations of 32 MB and more (exports) still get mappings of their own,
#: returned when freed.
HEAP_KEPT, OWN_MAPPING_FROM = 64 << 20, 32 << 20


def keep_freed_heap() -> None:
    """Set the allocator's thresholds above (glibc only; elsewhere its own policy stands)."""
    import ctypes

    with contextlib.suppress(AttributeError, OSError):  # not glibc (musl, macOS): nothing to tune
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_TRIM_THRESHOLD, HEAP_KEPT)
        libc.mallopt(_M_MMAP_THRESHOLD, OWN_MAPPING_FROM)


def main() -> None:
    keep_freed_heap()
    gc.disable()  # importing the program makes ~110 000 objects and no garbage: the collector's 150 passes over
    try:  # them (~0.05 s) find nothing, and frozen they are not walked again by later collections
        from station.cli import app
    finally:
        gc.freeze()
        gc.enable()

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
