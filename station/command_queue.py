"""Operator actions that arrive through the API, carried out on the service's supervision thread.

The supervision thread owns the instruments' connections, the run leases and the run manager's bookkeeping; a
start or a stop from another thread would race it. So an API request puts its action here and waits for the
result, and the supervision loop carries actions out between rounds (and wakes early for them), one at a time,
in the order they came. A request that waits too long gets a clear answer and the action still completes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class CommandQueue:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future]] = queue.SimpleQueue()
        self._wake = threading.Event()

    def submit(self, action: Callable[[], Any]) -> Future:
        future: Future = Future()
        self._queue.put((action, future))
        self._wake.set()
        return future

    def drain(self) -> int:
        """Carry out every queued action on the calling (supervision) thread; returns how many ran."""
        self._wake.clear()
        done = 0
        while True:
            try:
                action, future = self._queue.get_nowait()
            except queue.Empty:
                return done
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(action())
            except BaseException as exc:  # the requester gets the error, supervision goes on
                future.set_exception(exc)
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
            done += 1

    def wait(self, timeout: float) -> bool:
        """Sleep until an action arrives or ``timeout`` passes (wall time); True if one arrived."""
        return self._wake.wait(timeout)

    def cancel_all(self, why: str) -> None:
        """The service is stopping: every request still waiting is told so, none hangs."""
        while True:
            try:
                _, future = self._queue.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(ServiceStopping(why))


class ServiceStopping(Exception):
    """The service stopped before it could carry out the request."""
