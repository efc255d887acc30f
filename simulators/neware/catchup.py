"""Catching the simulated channels up with the clock outside the requests, so that no client waits on cell models.

When many channels change steps at once (2048 channels started in one batch share every step boundary), each
needs a cell-model call, and a hold step costs milliseconds: computing all of them inside the first request after
the change once took 27 s for 256 channels. So a request computes only what its budget allows
(``engine.Budget``) and answers with each channel as far as it has been computed; this worker, a daemon thread
of the server, computes the rest: it repeatedly advances every channel whose computed state has fallen behind the
clock, the most behind first, each under that channel's own lock (never the server's), and then sleeps until the
next step boundary it knows of or until a request wakes it. Requests come first: while one is being answered the
worker starts no new channel (:meth:`CatchUp.serving`), so a request competes at most with the one model run in
progress, not with a thread that holds the interpreter's lock half the time. It computes in the gaps between
requests, which a client that reads what it asked for always leaves.

It runs only under a clock that passes in real time (real or scaled). Under an as-fast-as-possible clock
(``VirtualClock``) nothing moves between requests, and the requests compute everything themselves, which keeps dry
runs and tests deterministic.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from protocols.clock import Clock
from simulators.neware.engine import ChannelEngine

log = logging.getLogger(__name__)

#: the longest the worker sleeps without looking (a request that starts or stops channels wakes it anyway)
IDLE_WAIT_S = 0.5


class CatchUp:
    """The server's catch-up worker (module notes)."""

    def __init__(self, engines: Iterable[ChannelEngine], clock: Clock, *, idle_wait_s: float = IDLE_WAIT_S):
        self._engines = list(engines)
        self._clock = clock
        self._idle_wait_s = idle_wait_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._requests = 0
        self._quiet = threading.Condition()
        #: the largest lag (s of the channels' clock) between a channel's due time and its catching up, and the
        #: number of advance() calls made: figures for benchmarks and logs
        self.max_lag_s = 0.0
        self.advances = 0

    def start(self) -> CatchUp:
        self._thread = threading.Thread(target=self._main, name="bts-catch-up", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        with self._quiet:
            self._quiet.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Mark a request being answered: the worker waits for it before it starts on another channel."""
        with self._quiet:
            self._requests += 1
        try:
            yield
        finally:
            with self._quiet:
                self._requests -= 1
                if not self._requests:
                    self._quiet.notify_all()

    def _yield_to_requests(self) -> None:
        with self._quiet:
            self._quiet.wait_for(lambda: not self._requests or self._stopping.is_set(), timeout=self._idle_wait_s)

    def wake(self) -> None:
        """Look again now (a request started, stopped or found channels behind)."""
        self._wake.set()

    def _main(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.clear()  # a wake during the pass below makes the sleep after it return at once
                if not self._pass():
                    self._sleep()
        except Exception:  # the worker must not die silently: requests still catch channels up, only slower
            log.exception("the catch-up worker of the simulated BTS failed")

    def _pass(self) -> bool:
        """Advance every channel that is due, the most behind first; False when none was."""
        now = self._clock.now()
        due = []
        for index, engine in enumerate(self._engines):
            when = engine.next_due()
            if when is not None and when <= now:
                due.append((when, index))
        if not due:
            return False
        due.sort()
        for when, index in due:
            self._yield_to_requests()
            if self._stopping.is_set():
                break
            engine = self._engines[index]
            with engine.lock:
                engine.advance(now)
            self.advances += 1
            self.max_lag_s = max(self.max_lag_s, now - when)
        return True

    def _sleep(self) -> None:
        now = self._clock.now()
        upcoming = [when for engine in self._engines if (when := engine.next_due()) is not None]
        wait = self._idle_wait_s
        if upcoming:
            wait = min(wait, max(0.0, self._clock.real_seconds(min(upcoming) - now)))
        self._wake.wait(wait)
