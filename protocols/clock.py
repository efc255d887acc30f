"""The only place that reads time or sleeps.

Every timeout, poll interval and simulated instrument takes a :class:`Clock`, so the same code runs in real time
on a lab PC, faster than real time in a demo, and as fast as possible in dry runs and tests. It lives in the
bottom layer because drivers, simulators and the station all need it and may not import one another.

Only :class:`RealClock` touches the operating system's clocks; the scaled and virtual clocks are built on a
wall clock they are given (a real one by default), so a test can drive even them without the wall.
"""

from __future__ import annotations

import abc
import asyncio
import threading
import time


class Clock(abc.ABC):
    """Seconds on a monotonic scale that starts wherever the clock likes; only differences matter."""

    @abc.abstractmethod
    def now(self) -> float: ...

    @abc.abstractmethod
    def sleep(self, seconds: float) -> None: ...

    async def sleep_async(self, seconds: float) -> None:
        """Yield to the event loop for ``seconds`` of this clock's time."""
        await asyncio.sleep(self.real_seconds(seconds))

    def real_seconds(self, seconds: float) -> float:
        """How long ``seconds`` of this clock's time take on the wall."""
        return max(0.0, seconds)

    @abc.abstractmethod
    def unix(self) -> float:
        """Calendar time (UTC seconds since 1970) for timestamps in stored data and events."""


class RealClock(Clock):
    def now(self) -> float:
        return time.monotonic()

    def unix(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ScaledClock(Clock):
    """Runs ``speed`` times faster than ``wall`` (``speed=3600``: an hour per second)."""

    def __init__(self, speed: float, start: float = 0.0, wall: Clock | None = None):
        if speed <= 0:
            raise ValueError(f"clock speed must be positive, found {speed}")
        self.speed = speed
        self.wall = wall or RealClock()
        self._origin = self.wall.now()
        self._start = start

    def now(self) -> float:
        return self._start + (self.wall.now() - self._origin) * self.speed

    def sleep(self, seconds: float) -> None:
        self.wall.sleep(seconds / self.speed)

    def unix(self) -> float:
        return self.wall.unix()

    def real_seconds(self, seconds: float) -> float:
        return max(0.0, seconds / self.speed)


class VirtualClock(Clock):
    """As fast as possible: time stands still until someone sleeps, then jumps.

    Shared by an in-process simulator and the station in dry runs, so the station's poll interval, not the
    wall, sets the pace. Thread-safe because a simulated server may run in another thread.
    """

    def __init__(self, start: float = 0.0, epoch: float | None = None):
        self._now = start
        self._lock = threading.Lock()
        self._epoch = RealClock().unix() if epoch is None else epoch

    def unix(self) -> float:
        """Calendar time advances with the virtual clock from the moment the clock was made."""
        return self._epoch + self.now()

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._now += seconds

    async def sleep_async(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)

    def real_seconds(self, seconds: float) -> float:
        return 0.0
