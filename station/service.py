"""`station serve`: one always-on process per data directory that watches every active run, whether or not
anyone has a terminal open (DESIGN section 7).

On start it takes the data directory's service lock (a second service is refused by name), settles what no
process looked after (unconfirmed starts and stops), and adopts every active run no other process supervises:
re-attaches, catches up its records and checks them. Then it supervises them all in rounds on one beat (one
status exchange per instrument link, downloads only where there is new data), and looks again for runs to adopt
every ``rescan_s`` (a run whose `station run` terminal detached or died; an instrument that was unreachable). On
SIGTERM, SIGINT or Ctrl-C it stops supervising and leaves every program running on its instrument.

This slice has no HTTP API yet; ``service.json`` in the data directory says which process serves it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from drivers.base import DriverError
from station.instruments import InstrumentError
from station.leases import Lease
from station.runs import RunEnded, RunError
from station.session import Station

SERVICE_FILE = "service.json"
_SERVICE_LEASE = "_service"
#: how often a stop request (a signal) is looked at while waiting for the next round, s of wall time
_WAKE_S = 0.2


class ServiceRunning(Exception):
    """Another station service already serves this data directory."""


class StationService:
    def __init__(self, station: Station, *, rescan_s: float = 10.0, say: Callable[[str], None] = lambda _: None):
        self.station = station
        self.rescan_s = rescan_s
        self.say = say
        self._lock = Lease(station.store.data_dir, _SERVICE_LEASE)
        self._waiting: dict[str, str] = {}
        """Runs that could not be adopted yet (their instrument did not answer), with why: retried every rescan."""

    @property
    def info_path(self) -> Path:
        return Path(self.station.store.data_dir) / SERVICE_FILE

    def claim(self) -> None:
        """Become the data directory's one service, or refuse with who holds it."""
        if not self._lock.acquire():
            holder = self._lock.holder()
            raise ServiceRunning(f"a station service{f' (pid {holder})' if holder else ''} already serves "
                                 f"{self.station.store.data_dir}; stop it first, or give another --data-dir")
        self.info_path.write_text(json.dumps({"pid": os.getpid(), "data_dir": str(self.station.store.data_dir),
                                              "started_at": self.station.clock.unix()}))

    def adopt(self) -> list[str]:
        """Settle and attach every active run nobody supervises; one note per run touched."""
        store, manager = self.station.store, self.station.manager
        rows = store.runs(active_only=True)
        notes = self.station.settle(rows)
        for row in store.runs(active_only=True):
            if row.dry_run or (row.id in manager.active and not manager.active[row.id].done):
                continue
            if not manager.lease_free(row.id):
                continue  # a `station run` or `attach` terminal supervises it
            try:
                self.station.attach(row.id)
            except RunEnded as exc:
                notes.append(str(exc))
                self._waiting.pop(row.id, None)
                continue
            except (DriverError, InstrumentError, RunError) as exc:
                if self._waiting.get(row.id) != str(exc):
                    notes.append(f"run {row.id}: cannot attach yet ({exc}); retrying every {self.rescan_s:g} s")
                self._waiting[row.id] = str(exc)
                continue
            self._waiting.pop(row.id, None)
            notes.append(f"run {row.id}: watched (channel {row.channel}, from record {row.last_seq + 1})")
        return notes

    def watched(self) -> list[str]:
        return [run_id for run_id, run in self.station.manager.active.items() if not run.done]

    def serve(self, should_stop: Callable[[], bool]) -> None:
        """Rounds on one beat until ``should_stop``; adopts new runs every ``rescan_s``."""
        clock = self.station.clock  # nothing here reads the wall clock but through it
        poll = self.station.config.poll_seconds
        next_scan = clock.now()
        while not should_stop():
            started = clock.now()
            if started >= next_scan:
                for note in self.adopt():
                    self.say(note)
                next_scan = started + self.rescan_s
            runs = self.watched()
            if runs:
                for progress in self.station.manager.poll_round(runs):
                    if self.station.manager.active[progress.run_id].done:
                        self.say(f"run {progress.run_id}: {progress.state}")
            while not should_stop() and clock.now() - started < poll:
                clock.sleep(min(_WAKE_S, max(0.0, poll - (clock.now() - started))))

    def close(self) -> None:
        """Leave every program running on its instrument; give back the runs' leases and the service lock."""
        with contextlib.suppress(OSError):
            self.info_path.unlink()
        self.station.close()
        self._lock.release()
