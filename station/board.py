"""What the service knows live, shared between its supervision thread and its API.

The supervision loop is the only writer: after each round it publishes each watched run's live document (state,
step, cycle, V, I, capacity, ETA) and an entry in a bounded change log. The API only reads: channel lists come
from the latest documents, and the server-sent event stream from the change log, resumable by entry number
(``Last-Event-ID``). A slow or vanished client never slows supervision: nothing here waits for a reader, and a
reader that falls further behind than the log keeps is told to reload (``reset``) instead of being fed a gap.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

#: change-log entries kept for readers that reconnect; at 2048 channels one round's channel update is one entry
LOG_LENGTH = 4096


@dataclass(frozen=True)
class Change:
    id: int
    kind: str
    """``channels`` (live documents that changed this round), ``run`` (a run's state changed), ``event`` (a run
    event was stored), ``campaign``, ``station``."""
    data: Any


class Board:
    def __init__(self, log_length: int = LOG_LENGTH):
        self._lock = threading.Lock()
        self._live: dict[str, dict[str, Any]] = {}
        self._log: deque[Change] = deque(maxlen=log_length)
        self._next = 1
        self._changed = threading.Condition(self._lock)
        self._chambers: list[dict[str, Any]] = []

    # -- the supervision thread -----------------------------------------------------------------------------------

    def chambers(self) -> list[dict[str, Any]]:
        """The climate chambers' latest documents (the last ``chambers`` change published)."""
        with self._lock:
            return list(self._chambers)

    def publish(self, kind: str, data: Any) -> int:
        with self._lock:
            if kind == "chambers":
                self._chambers = list(data)
            change = Change(self._next, kind, data)
            self._next += 1
            self._log.append(change)
            self._changed.notify_all()
            return change.id

    def update_live(self, docs: dict[str, dict[str, Any]], *, gone: list[str] = ()) -> None:
        """Replace the live documents of some runs (by run id) and drop those no longer watched; one ``channels``
        change lists the documents that differ from what readers last saw."""
        with self._lock:
            changed = [doc for run_id, doc in docs.items() if self._live.get(run_id) != doc]
            self._live.update(docs)
            for run_id in gone:
                self._live.pop(run_id, None)
        if changed:
            self.publish("channels", changed)

    # -- readers ----------------------------------------------------------------------------------------------------

    def live(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._live)

    @property
    def last_id(self) -> int:
        with self._lock:
            return self._next - 1

    def since(self, after: int) -> tuple[list[Change], bool]:
        """Changes after entry ``after``, and whether some were already dropped (the reader must reload)."""
        with self._lock:
            if not self._log:
                return [], False
            first = self._log[0].id
            missed = after + 1 < first and after < self._next - 1
            return [c for c in self._log if c.id > after], missed

    def wait(self, after: int, timeout: float) -> None:
        """Block (a reader's thread, never the supervisor) until there is a change after ``after`` or ``timeout``."""
        with self._lock:
            if self._next - 1 > after:
                return
            self._changed.wait(timeout)
