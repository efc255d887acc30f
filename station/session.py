"""One station process: config, clock, store, instruments and the run manager, wired once.

The CLI calls these functions and only formats what they return, so everything a command does can also be done
from Python (a notebook, a scheduler) with the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drivers.base import DriverError, TestHandle
from protocols.cells import Cell
from protocols.clock import Clock, RealClock, VirtualClock
from protocols.loader import LoadedProtocol
from protocols.program import StepProgram
from station.config import StationConfig
from station.instruments import Instruments
from station.runs import RunManager
from station.store import Store

#: records per poll a dry run aims for: large jumps of simulated time, one download page each
DRY_RUN_RECORDS_PER_POLL = 1000
DRY_RUN_MAX_POLL_S = 86_400.0


def dry_run_poll_seconds(program: StepProgram) -> float:
    """A dry run polls as rarely as it can while each poll still fits about one download page."""
    intervals = [s.record.every_s for s in program.steps if s.record.every_s]
    if program.record.every_s:
        intervals.append(program.record.every_s)
    every = min(intervals) if intervals else 60.0
    return min(DRY_RUN_MAX_POLL_S, max(1.0, every * DRY_RUN_RECORDS_PER_POLL))


@dataclass
class Station:
    config: StationConfig
    clock: Clock
    store: Store
    instruments: Instruments
    manager: RunManager
    dry_run: bool

    @classmethod
    def open(cls, config: StationConfig, *, dry_run: bool = False, data_dir: str | None = None) -> Station:
        clock: Clock = VirtualClock() if dry_run else RealClock()
        store = Store(Path(data_dir or config.data_dir))
        instruments = Instruments(config, clock, store.data_dir, simulate_all=dry_run)
        return cls(config, clock, store, instruments, RunManager(store, clock), dry_run)

    def close(self) -> None:
        self.instruments.close()
        self.store.close()

    def launch(self, loaded: LoadedProtocol, cell: Cell, channel: str | None = None) -> str:
        """Bind, choose and check the channel, start the program; returns the run id (state: running)."""
        program = loaded.bind(cell)
        assert program is not None
        if channel is None:
            busy = {r.channel for r in self.store.runs(active_only=True)}
            channel = self.instruments.choose_channel(program, busy)
        else:
            instrument, chan = self.config.find(channel)
            channel = f"{instrument.name}/{chan.id}"
        self.instruments.place(channel, cell)
        driver = self.instruments.driver(channel)
        run_id = self.manager.create(loaded, cell, channel, driver, instrument=self.instruments.identity(channel),
                                     dry_run=self.dry_run)
        self.manager.start(run_id)
        return run_id

    def attach(self, run_id: str) -> None:
        run = self.store.run(run_id)
        if run.dry_run:
            from station.runs import RunError

            raise RunError(f"run {run.id} was a dry run; its simulated instrument ended with its process, so there "
                           f"is nothing to attach to")
        self.manager.attach(run.id, self.instruments.driver(run.channel))

    def poll_seconds(self, run_id: str) -> float:
        if self.dry_run:
            return dry_run_poll_seconds(self.manager.active[run_id].program)
        return self.config.poll_seconds


def handle_of(run_handle: dict | None) -> TestHandle | None:
    if not run_handle:
        return None
    return TestHandle(run_handle["channel"], run_handle["test_id"], run_handle["barcode"], run_handle.get("extra", {}))


__all__ = ["DriverError", "Station", "dry_run_poll_seconds", "handle_of"]
