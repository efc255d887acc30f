"""The station's climate chambers: which channel sits in which, one reading per chamber per round, and the
temperature trace that stamps each record.

A chamber is opened when a run on one of its channels first needs it, not when the station starts: a chamber that
is switched off is only a problem for the runs that use it. In a dry run every chamber is simulated (an ESPEC on a
pseudo-terminal, driven through the real driver over pyvisa-py and pyserial, on the dry run's clock), and a
channel that station.yaml places in no chamber gets a simulated chamber of its own, so that any protocol with
temperature steps dry-runs on any channel. A real run on a channel in no chamber is refused before it starts.

Readings are kept as a trace (time, temperature) per chamber; a record's temperature is the trace interpolated at
the record's time, NaN before the first reading. A chamber that does not answer adds nothing to the trace, so its
gap shows as a straight line between the readings on each side of it, and its error is kept for the dashboard.

On a real station each chamber is read on a thread of its own every :data:`POLL_S` seconds, and a round takes the
latest reading without waiting: a chamber that stops answering costs its reads' timeouts and repeats (seconds) on
that thread, never in the round that supervises every channel. A reading older than :data:`STALE_S` counts as
none. A dry run reads on its own clock, in the round, since its rounds jump hours.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocols.clock import Clock
from station.config import ChamberConfig, StationConfig

#: how often a real station reads each chamber (seconds), on the chamber's own thread
POLL_S = 2.0
#: a reading older than this is no reading: the chamber's thread has not had an answer for that long
STALE_S = 30.0
#: readings kept per chamber for stamping records: at a 1 s poll, over an hour; a page older than the trace gets
#: the trace's first value (downloads lag by minutes at most, except a catch-up, whose records get what is known)
TRACE_LENGTH = 4096


class ChamberUnavailable(Exception):
    """The chamber cannot be opened or does not answer; the message says which and how to fix it."""


class SetPointRefused(ChamberUnavailable):
    """The chamber refused the set point (outside its own limits): asking again will not help."""


@dataclass
class ChamberUnit:
    """One chamber, its channels, its driver and what it last said."""

    name: str
    channels: tuple[str, ...]
    config: ChamberConfig | None
    """``None`` for a dry run's private chamber of a channel station.yaml places in none."""
    simulated: bool
    clock: Clock
    driver: Any = None
    """A :class:`drivers.chamber.Chamber`, made when first needed."""
    simulator: Any = None
    """The simulated chamber (dry runs and ``simulated: true``): tests open its door and silence it."""
    server: Any = None
    trace: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=TRACE_LENGTH))
    reading: Any = None
    """The last :class:`drivers.chamber.ChamberReading` (``None`` before the first, or after a failed read)."""
    error: str | None = None
    """Why the last read failed (``None`` when it succeeded)."""
    read_at: float | None = None
    held_c: float | None = None
    """The set point this station last sent."""
    background: bool = False
    """Read on a thread of its own (a real station), not in the caller's round (a dry run)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    """Guards what a reader sees (reading, error, trace); held for no I/O."""
    _io: threading.RLock = field(default_factory=threading.RLock)
    """Held across an exchange with the chamber (opening it, a read, a set point)."""
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def alarm_band_c(self) -> float:
        return self.config.alarm_band_c if self.config is not None else 2.0

    def _open(self) -> Any:
        if self.driver is not None:
            return self.driver
        from drivers.chamber import Espec  # pyvisa and pyserial only load where a chamber is used

        if self.simulated:
            from simulators.chamber import PtyLineServer, SimulatedEspec

            address = self.config.address if self.config is not None else None
            self.simulator = SimulatedEspec(self.clock, address=address or 1)
            self.server = PtyLineServer(self.simulator.handle).start()
            resource = self.server.resource
        else:
            assert self.config is not None and self.config.resource is not None  # config validation
            resource = self.config.resource
        config = self.config
        self.driver = Espec.connect(resource, clock=self.clock,
                                    timeout_s=config.timeout.value if config is not None else 2.0,
                                    address=config.address if config is not None else None,
                                    door_alarms=tuple(config.door_alarms) if config is not None else ())
        return self.driver

    def read(self) -> Any:
        """The chamber's reading: read now (a dry run), or the latest its thread took (a real station; ``None``
        while there is none newer than :data:`STALE_S`). ``None`` and :attr:`error` when it failed."""
        if not self.background:
            return self.read_now()
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name=f"chamber {self.name}", daemon=True)
            self._thread.start()
        with self._lock:
            if self.reading is not None and self.read_at is not None and self.clock.unix() - self.read_at > STALE_S:
                return None
            return self.reading

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.read_now()
            self._stop.wait(POLL_S)

    def read_now(self) -> Any:
        """Read the chamber now (one exchange, whatever its alarms); ``None`` and :attr:`error` when it fails."""
        from drivers.chamber import ChamberError

        now = self.clock.unix()
        reading, error = None, None
        with self._io:
            try:
                reading = self._open().read(allow_alarm=True)
            except ChamberError as exc:
                error = str(exc)
            except Exception as exc:  # pyvisa refusing the resource (no such port): told, never raised into a round
                error = f"chamber {self.name}: {type(exc).__name__}: {exc}"
        with self._lock:
            self.reading, self.error, self.read_at = reading, error, now
            if reading is not None and math.isfinite(reading.temperature_c):
                self.trace.append((now, reading.temperature_c))
        return reading

    def hold(self, celsius: float) -> float:
        """Set the chamber to hold ``celsius`` (and to run, if it stood by); the value it was sent."""
        from drivers.chamber import ChamberError, ChamberRefused

        with self._io:
            try:
                driver = self._open()
                sent = driver.set_point(celsius)
                driver.start()
            except ChamberRefused as exc:
                raise SetPointRefused(str(exc)) from None
            except ChamberError as exc:
                raise ChamberUnavailable(str(exc)) from None
            except Exception as exc:
                raise ChamberUnavailable(f"chamber {self.name}: {type(exc).__name__}: {exc}") from None
            self.held_c = sent
            return sent

    def temperatures(self, unix: np.ndarray) -> np.ndarray:
        """The chamber temperature at each of ``unix`` (seconds), from the trace; NaN without readings."""
        with self._lock:
            trace = list(self.trace)
        if not trace:
            return np.full(len(unix), np.nan)
        times, values = np.array(trace).T
        return np.interp(unix, times, values)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._io:
            if self.driver is not None:
                with contextlib.suppress(Exception):
                    self.driver.close()
            if self.server is not None:
                self.server.stop()
            self.driver = self.server = None


class Chambers:
    """Every chamber of the station, opened when first used."""

    def __init__(self, config: StationConfig, clock: Clock, *, simulate_all: bool = False, background: bool = False):
        self.clock = clock
        self.simulate_all = simulate_all
        self.units: dict[str, ChamberUnit] = {
            c.name: ChamberUnit(c.name, tuple(c.channels), c, simulate_all or c.simulated, clock, background=background)
            for c in config.chambers
        }
        self._lock = threading.Lock()

    def of(self, channel: str) -> ChamberUnit | None:
        """The chamber ``channel`` sits in; in a dry run, a private simulated one where station.yaml gives none."""
        with self._lock:
            found = next((u for u in self.units.values() if channel in u.channels), None)
            if found is None and self.simulate_all:
                name = f"sim-chamber-{channel.replace('/', '-')}"
                found = self.units[name] = ChamberUnit(name, (channel,), None, True, self.clock)
            return found

    def placed(self, channel: str) -> ChamberUnit | None:
        """The chamber station.yaml places ``channel`` in (no private dry-run chamber is made)."""
        return next((u for u in self.units.values() if channel in u.channels), None)

    def close(self) -> None:
        for unit in self.units.values():
            unit.close()
