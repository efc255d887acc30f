"""One station process: config, clock, store, instruments and the run manager, wired once.

The CLI calls these functions and only formats what they return, so everything a command does can also be done
from Python (a notebook, a scheduler) with the same checks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drivers.base import DriverError
from protocols.cells import Cell
from protocols.clock import Clock, RealClock, VirtualClock
from protocols.loader import LoadedProtocol
from protocols.program import StepProgram, TemperatureStep
from protocols.segments import prepend_temperature
from station.alerts import Alerts
from station.chambers import Chambers
from station.config import ConfigError, StationConfig
from station.instruments import InstrumentError, Instruments
from station.lab import LabLink
from station.run_policy import RunState
from station.runs import RunEnded, RunError, RunManager
from station.store import ChannelBusy, RunRow, SampleRow, Store, StoreError

#: records per poll a dry run aims for: large jumps of simulated time. Each round costs two status exchanges (the
#: simulated channel computes the round's records on the first), a commit whatever it holds and the round's own
#: bookkeeping, so few rounds of several pages are cheaper than many of one (P3, 1000 cycles: ~690 rounds of 1000
#: records took 8 s, ~140 of 4950 5.4 s on the tree of that day; on a later one ~140 of 4950 3.57 s, ~70 of 9950
#: 3.22 s, medians of five alternated runs). Just under ten 1000-record pages, with room for the extra record each
#: step end adds, so that a round reads ten pages and not an eleventh nearly empty one. Every record still passes
#: the safety check (runs.RunManager._fetch reads page after page); a breach is acted on at the end of its round, up
#: to one poll of simulated time later (~83 h of a protocol recording every 30 s): a dry run's stop after a breach
#: comes later in simulated time than a real station's would, which its report shows as records past the breach.
DRY_RUN_RECORDS_PER_POLL = 9950
#: at most a week of simulated time per poll (a protocol recording once an hour would otherwise poll every 7 months)
DRY_RUN_MAX_POLL_S = 7 * 86_400.0


def dry_run_poll_seconds(program: StepProgram) -> float:
    """A dry run polls as rarely as it can while each poll still fits a few download pages."""
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
    alerts: Alerts | None = None
    claimed: str | None = None
    """The run the last :meth:`launch` claimed (stored), also when it then failed: the id the operator looks up."""
    lab: LabLink | None = None
    """The lab's database, when station.yaml (or $STATION_DATABASE) names one: the station's own store is still
    its data directory's, and everything in it is forwarded there (station.lab)."""
    _next_forward: float = 0.0
    chambers: Chambers | None = None
    """The climate chambers of station.yaml (simulated in a dry run), opened when a run first needs one."""

    @classmethod
    def open(cls, config: StationConfig, *, dry_run: bool = False, data_dir: str | None = None) -> Station:
        clock: Clock = VirtualClock() if dry_run else RealClock()
        store = Store(Path(data_dir or config.data_dir), local=True, station=config.station)
        lab = LabLink(config.database, config.station, store, clock) if config.database else None
        instruments = Instruments(config, clock, store.data_dir, simulate_all=dry_run)
        manager = RunManager(store, clock)
        manager.cell_events = instruments.cell_events
        chambers = Chambers(config, clock, simulate_all=dry_run, background=not dry_run)
        manager.temperature.chamber_of = chambers.of
        manager.temperature.cell_temperature = instruments.set_cell_temperature
        manager.temperature.compress_idle = dry_run
        alerts = Alerts(config.alerts, clock)
        manager.on_alert = alerts.notify
        return cls(config, clock, store, instruments, manager, dry_run, alerts, lab=lab, chambers=chambers)

    def close(self) -> None:
        if self.alerts is not None:
            self.alerts.close()  # what is queued still goes out, for a few seconds at most
        self.manager.close()
        if self.chambers is not None:
            self.chambers.close()
        self.instruments.close()
        if self.lab is not None:
            with contextlib.suppress(StoreError):  # what does not go now goes with the next station process
                self.lab.forward(budget_bytes=None)
            self.lab.close()
        self.store.close()

    def forward_to_lab(self) -> None:
        """Forward to the lab's database, at most once a second of the station's clock: a terminal supervising its
        run keeps the lab's view current as the service does. An outage is buffered (the store keeps all); a
        conflict is told by the service or the next command."""
        if self.lab is None:
            return
        now = self.clock.now()
        if now < self._next_forward:
            return
        self._next_forward = now + 1.0
        with contextlib.suppress(StoreError):
            self.lab.forward()

    def sample(self, sample_id: str) -> SampleRow:
        """A sample of this station, or of the lab (copied into this station's store for the runs on it)."""
        return self.lab.sample(sample_id) if self.lab is not None else self.store.sample(sample_id)

    def launch(self, loaded: LoadedProtocol, cell: Cell, channel: str | None = None, *,
               sample_id: str | None = None, temperature: TemperatureStep | None = None) -> str:
        """Bind, claim and check the channel, start the program; returns the run id (state: running).

        The run is stored (``created``) before anything else touches the channel: that row is the atomic claim of
        the channel, and a failure from then until start is sent (the cell cannot be placed, the driver cannot be
        built, the channel cannot run the program, Ctrl-C) ends the run as ``failed`` and frees the channel."""
        program = loaded.bind(cell)
        assert program is not None
        if temperature is not None:  # a campaign stage's chamber temperature, carried out before its protocol
            program = prepend_temperature(program, temperature)
        if channel is not None:
            instrument, chan = self.config.find(channel)
            channel = f"{instrument.name}/{chan.id}"
        self._free_abandoned(channel)
        self.claimed = None
        run_id = self._claim(loaded, cell, program, channel, sample_id)
        self.claimed = run_id
        try:
            channel = self.store.run(run_id).channel
            self.instruments.place(channel, cell)
            driver = self.instruments.driver(channel)
            self.manager.validate(run_id, driver)
        except (Exception, KeyboardInterrupt) as exc:  # not a kill: nothing runs after one, as after SIGKILL
            with contextlib.suppress(StoreError, RunError):  # a store that cannot be written: the cause is told
                self.manager.fail_before_start(run_id, exc)  # a no-op when validate already failed the run
            raise
        self.manager.start(run_id)
        return run_id

    def _claim(self, loaded: LoadedProtocol, cell: Cell, program: StepProgram, channel: str | None,
               sample_id: str | None = None) -> str:
        """Claim ``channel``, or the first free one that fits; a channel another client claimed since it looked
        free is skipped for the next one, so clients starting at once get different channels (or, when none is
        left, one clear refusal: :class:`ChannelBusy`)."""
        if channel is not None:
            self._claim_in_lab(channel)
            return self.manager.claim(loaded, cell, channel, instrument=self.instruments.identity(channel),
                                      dry_run=self.dry_run, sample_id=sample_id, program=program)
        busy = {r.channel for r in self.store.runs(active_only=True, light=True)}
        lost: ChannelBusy | None = None
        while True:
            try:
                chosen = self.instruments.choose_channel(program, busy)
            except ConfigError:
                if lost is not None:  # every channel that fits was claimed by others meanwhile
                    raise lost from None
                raise
            try:
                self._claim_in_lab(chosen)
                return self.manager.claim(loaded, cell, chosen, instrument=self.instruments.identity(chosen),
                                          dry_run=self.dry_run, sample_id=sample_id, program=program)
            except ChannelBusy as exc:
                lost = exc
                busy.add(chosen)

    def _claim_in_lab(self, channel: str) -> None:
        """With a lab database, the channel must be this station's there first (another station's is refused);
        a dry run drives no instrument and claims nothing."""
        if self.lab is not None and not self.dry_run:
            self.lab.claim(channel, self.clock.unix())

    def _free_abandoned(self, channel: str | None) -> None:
        """Before claiming a channel, settle runs on it that no process looks after and that cannot be running:
        a dry run whose process died (its simulated instrument died with it), or a start that never reached the
        instrument. Anything the instrument may still be running keeps the channel busy."""
        for row in self.store.runs(active_only=True, channel=channel, light=True, station=self.store.station):
            if row.dry_run != self.dry_run or not (row.dry_run or row.unconfirmed):
                continue  # anything else may be running on the instrument, so it keeps the channel
            if not self.manager.lease_free(row.id):
                continue
            if row.dry_run:
                self._end_orphaned_dry_run(row)
            elif row.unconfirmed:
                with contextlib.suppress(DriverError, InstrumentError, RunError):
                    self.manager.reconcile(row.id, self.instruments.driver(row.channel))

    def _end_orphaned_dry_run(self, row: RunRow) -> None:
        """A dry run nobody supervises cannot be running: its simulated instrument lived in the dead process."""
        self.store.add_event(row.id, "warning", "the dry run's process ended without finishing it", self.clock.unix())
        self.store.set_state(row.id, RunState.FAILED, self.clock.unix(), "dry run interrupted: its simulated "
                             "instrument ended with its process")

    def attach(self, run_id: str, *, supervise: bool = True) -> None:
        run = self.store.run(run_id)
        if run.dry_run:
            raise RunError(f"run {run.id} was a dry run; its simulated instrument ended with its process, so there "
                           f"is nothing to attach to")
        self.manager.attach(run.id, self.instruments.driver(run.channel), supervise=supervise)

    def settle(self, rows: list[RunRow], on_contact: Callable[[RunRow], None] | None = None) -> list[str]:
        """Settle what no live process looks after: starts that were never confirmed (the instrument decides)
        and stops that were never confirmed (sent again). Returns one note per run touched, for the operator."""
        notes = []
        for row in rows:
            if not row.active or not (row.dry_run or row.unconfirmed or row.stop_requested):
                continue
            if not self.manager.lease_free(row.id):
                continue  # a live process starts or supervises it and does this itself
            if row.dry_run:
                self._end_orphaned_dry_run(row)
                notes.append(f"run {row.id}: a dry run whose process ended; marked failed")
                continue
            if on_contact is not None:  # an unreachable instrument takes its reconnect schedule: say why we wait
                on_contact(row)
            try:
                driver = self.instruments.driver(row.channel)
                if row.unconfirmed:
                    state = self.manager.reconcile(row.id, driver)
                    notes.append(f"run {row.id}: " + ("never started on the instrument; marked failed" if
                                                      state is RunState.FAILED else "the instrument runs it; adopted"))
                row = self.store.run(row.id)
                if row.active and row.stop_requested:
                    self.manager.attach(row.id, driver, supervise=False)
                    confirmed = self.manager.retry_stop(row.id)
                    notes.append(f"run {row.id}: " + ("pending stop confirmed; the channel is stopped" if confirmed
                                                      else "stop still pending: the channel did not confirm it"))
            except (DriverError, InstrumentError, ConfigError, RunError, KeyError) as exc:
                notes.append(f"run {row.id}: could not settle it with its instrument ({exc}); retried next time")
        return notes

    def pause(self, run_id: str, who: str | None = None) -> RunState:
        """Pause a run at its instrument; returns the run's state afterwards."""
        return self._operator("pause", run_id, who)

    def resume(self, run_id: str, who: str | None = None) -> RunState:
        """Continue a paused run at its instrument; returns the run's state afterwards."""
        return self._operator("continue", run_id, who)

    def _operator(self, action: str, run_id: str, who: str | None) -> RunState:
        row = self.store.run(run_id)
        if not row.active:
            raise RunError(f"run {row.id} is {row.state}; there is nothing to {action}")
        if row.dry_run:
            raise RunError(f"run {row.id} is a dry run inside another process; press Ctrl-C there")
        self._attach_for_action(row.id)
        (self.manager.pause if action == "pause" else self.manager.resume)(row.id, who)
        return self.store.run(row.id).state

    def _attach_for_action(self, run_id: str) -> None:
        """Reach a run's channel for an operator action. A run this process already watches is used as it is; one
        nobody supervises is taken up (its lease too, so a service goes on watching it after the action); one
        another process supervises is only reached, and that process carries on."""
        run = self.manager.active.get(run_id)
        if run is not None and not run.done:
            return
        self.attach(run_id, supervise=self.manager.lease_free(run_id))

    def stop(self, run_id: str, *, force: bool = False, who: str | None = None) -> tuple[bool, str]:
        """Stop a run (or with ``force`` abandon one whose test is gone); returns (confirmed, message)."""
        row = self.store.run(run_id)
        if not row.active:
            raise RunError(f"run {row.id} is {row.state}; there is nothing to stop")
        if row.dry_run:
            raise RunError(f"run {row.id} is a dry run inside another process; press Ctrl-C there")
        if force:
            try:
                driver = self.instruments.driver(row.channel)
            except ConfigError:
                driver = None  # the channel is gone from station.yaml: the operator's word that the instrument is
            self.manager.abandon(row.id, driver, "the test is gone from the instrument" + (f" (by {who})" if who
                                                                                            else ""))
            return True, f"run {row.id}: failed (abandoned by the operator; every stored record is kept)"
        why = "stopped by the operator" + (f" (by {who})" if who else "")
        self.store.request_stop(row.id, why, self.clock.unix())  # durable first: any supervisor carries it out
        try:
            if (row.unconfirmed and self.manager.reconcile(row.id, self.instruments.driver(row.channel))
                    is RunState.FAILED):
                return True, f"run {row.id}: never started on the instrument; marked failed, nothing to stop"
            self._attach_for_action(row.id)
            confirmed = self.manager.stop(row.id, why, who)
        except (DriverError, InstrumentError) as exc:
            return False, _pending(row, f"could not reach channel {row.channel} ({exc})")
        except RunEnded as exc:  # its test is gone from the instrument: nothing of ours runs there
            return True, str(exc)
        except RunError as exc:  # another process holds the run's lease: it carries out the stored request
            return False, f"run {row.id}: stop requested; {exc}"
        if not confirmed:
            return False, _pending(row, f"channel {row.channel} did not confirm the stop")
        return True, f"run {row.id}: stopped; the instrument confirmed the channel is in a safe state"

    def poll_seconds(self, run_id: str) -> float:
        if self.dry_run:
            return dry_run_poll_seconds(self.manager.active[run_id].program)
        return self.config.poll_seconds


def _pending(row: RunRow, what: str) -> str:
    return (f"run {row.id}: {what}: the cell may still be running. The stop stays requested and is sent again "
            f"whenever the station reaches the instrument (`station stop {row.id}` or `station attach {row.id}`)")


__all__ = ["DriverError", "Station", "dry_run_poll_seconds"]
