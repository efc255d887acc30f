"""Runs: the persisted state machine and the supervisor that drives channels through it.

A run goes created -> validated -> started -> running <-> paused -> finished | stopped | failed, and every
transition is written to the store before anything else happens, so a crash at any point leaves a run that
``attach`` can pick up. The instrument runs the program on its own; the supervisor only polls, downloads
records, checks the protocol's safety limits and reacts. Like bluesky's engine, it knows nothing about what a
step means beyond what the driver reports.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from drivers.base import ChannelDriver, ChannelState, ChannelStatus, DriverError, TestHandle
from protocols.cells import Cell
from protocols.clock import Clock
from protocols.estimate import estimate_program
from protocols.loader import LoadedProtocol
from protocols.program import StepProgram
from station.store import TERMINAL_STATES, Store, StoreError, to_block

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "created": ("validated", "failed"),
    "validated": ("started", "failed"),
    "started": ("running", "finished", "stopped", "failed"),
    "running": ("paused", "finished", "stopped", "failed"),
    "paused": ("running", "finished", "stopped", "failed"),
}


class RunError(Exception):
    """A run cannot do what was asked; the message says why and what to do."""


def new_run_id(clock: Clock) -> str:
    """A sortable, readable id: UTC start second plus 24 random bits (many runs start in the same second)."""
    stamp = datetime.fromtimestamp(clock.unix(), UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass
class Progress:
    """What the CLI shows while a run is supervised."""

    run_id: str
    state: str
    status: ChannelStatus | None
    records: int
    tag: str | None = None
    eta_s: float | None = None


@dataclass
class ActiveRun:
    run_id: str
    driver: ChannelDriver
    program: StepProgram
    last_seq: int
    estimated_s: float | None
    records: int = 0
    done: bool = False
    failures: int = 0
    last_status: ChannelStatus | None = None
    safety_hits: list[str] = field(default_factory=list)
    state: str = "validated"
    """The run's state as this process last wrote or saw it: polls read it here, not from the store."""


class RunManager:
    """Starts, supervises, pauses, stops and re-attaches runs on channels, one process for many channels."""

    #: consecutive failed polls of one channel before the run is marked as having lost contact
    MAX_POLL_FAILURES = 5

    def __init__(self, store: Store, clock: Clock, *, page: int = 1000):
        self.store = store
        self.clock = clock
        self.page = page
        self.active: dict[str, ActiveRun] = {}

    # -- state machine -----------------------------------------------------------------------------------------

    def _transition(self, run_id: str, state: str, message: str = "", **kwargs: Any) -> None:
        current = self.store.run(run_id).state
        run = self.active.get(run_id)
        if current == state and run is not None and run.state != state:
            run.state = state  # another process (an operator's `station pause`) got there first
            return
        if state not in TRANSITIONS.get(current, ()):
            raise RunError(f"run {run_id} is {current}; it cannot become {state}")
        self.store.set_state(run_id, state, self.clock.unix(), message, **kwargs)
        if run is not None:
            run.state = state

    # -- start -----------------------------------------------------------------------------------------------

    def create(self, loaded: LoadedProtocol, cell: Cell, channel: str, driver: ChannelDriver, *,
               instrument: dict[str, Any], dry_run: bool) -> str:
        """Bind, check against the channel and persist a run (created -> validated). Nothing is sent yet."""
        program = loaded.bind(cell)
        assert program is not None
        run_id = new_run_id(self.clock)
        while self.store.has_run(run_id):
            run_id = new_run_id(self.clock)
        self.store.create_run(
            run_id=run_id, at=self.clock.unix(), channel=channel, instrument=instrument,
            protocol_name=loaded.name, protocol_file=loaded.source.file, protocol_source=loaded.source.text,
            parameters=loaded.resolved_parameters(), program=program.to_json(), cell=cell.model_dump(mode="json"),
            dry_run=dry_run)
        try:
            driver.check(program)
        except DriverError as exc:
            self._transition(run_id, "failed", f"the channel cannot run this program: {exc}")
            raise RunError(f"channel {channel} cannot run this program: {exc}") from None
        self._transition(run_id, "validated", f"checked against channel {channel}")
        estimate = estimate_program(program, cell)
        self.active[run_id] = ActiveRun(run_id, driver, program, 0, estimate.total_s if estimate.complete else None)
        return run_id

    def start(self, run_id: str) -> TestHandle:
        run = self.active[run_id]
        try:
            handle = run.driver.start(run.program, barcode=run_id)
        except DriverError as exc:
            self._safe_stop(run, f"start failed: {exc}")
            self._transition(run_id, "failed", f"start failed: {exc}")
            raise RunError(f"run {run_id} could not start: {exc}") from None
        self._transition(run_id, "started", f"test {handle.test_id} on {handle.channel}",
                         handle={"channel": handle.channel, "test_id": handle.test_id, "barcode": handle.barcode,
                                 "extra": handle.extra})
        self._transition(run_id, "running")
        return handle

    def attach(self, run_id: str, driver: ChannelDriver) -> None:
        """Resume supervising a run whose program kept running on the instrument (after a crash or a detach)."""
        row = self.store.run(run_id)
        if not row.active:
            raise RunError(f"run {run_id} is {row.state}; only an active run can be attached")
        if row.handle is None:
            raise RunError(f"run {run_id} never started on the instrument; start a new run instead")
        handle = TestHandle(channel=row.handle["channel"], test_id=row.handle["test_id"],
                            barcode=row.handle["barcode"], extra=row.handle.get("extra", {}))
        driver.attach(handle)
        program = StepProgram.from_json(row.program)
        cell = Cell.model_validate(row.cell)
        estimate = estimate_program(program, cell)
        self.active[run_id] = ActiveRun(run_id, driver, program, row.last_seq,
                                        estimate.total_s if estimate.complete else None,
                                        records=self.store.record_count(run_id), state=row.state)
        self.store.add_event(run_id, "operator", f"attached; catching up from record {row.last_seq + 1}",
                             self.clock.unix())
        if row.state == "started":
            self._transition(run_id, "running")

    # -- supervision ---------------------------------------------------------------------------------------------

    def poll(self, run_id: str) -> Progress:
        """One supervision round for one run: status, new records, safety, and the end of the run."""
        return self.poll_round([run_id])[0]

    def poll_round(self, run_ids: list[str]) -> list[Progress]:
        """One supervision round for many runs. Channels that share a link are asked for their status together
        (one exchange for a whole BTS), and a channel whose instrument holds no record newer than ours is not
        asked for records: that is what keeps hundreds of channels at a 1 s poll cheap."""
        groups: dict[tuple[type, object], list[ActiveRun]] = {}
        for run_id in run_ids:
            run = self.active[run_id]
            groups.setdefault((type(run.driver), run.driver.batch_key()), []).append(run)
        for (driver_type, _), runs in groups.items():
            try:
                statuses = driver_type.statuses([r.driver for r in runs])
            except DriverError as exc:
                for run in runs:
                    self._poll_failed(run, exc)
                continue
            for run, status in zip(runs, statuses, strict=True):
                self._after_status(run, status)
        return [self.progress(run_id) for run_id in run_ids]

    def _poll_failed(self, run: ActiveRun, exc: DriverError) -> None:
        run.failures += 1
        self.store.add_event(run.run_id, "warning", f"poll failed ({run.failures}x): {exc}", self.clock.unix())
        if run.failures == self.MAX_POLL_FAILURES:
            self.store.add_event(run.run_id, "alarm", "lost contact with the instrument; the program keeps running "
                                 "on it; retrying", self.clock.unix())

    def _after_status(self, run: ActiveRun, status: ChannelStatus) -> None:
        run_id = run.run_id
        try:  # everything the status reports, up to the end of a finished or stopped program, is stored first
            if status.last_seq is None or status.last_seq > run.last_seq:
                self._download(run)
            run.failures = 0
        except DriverError as exc:
            self._poll_failed(run, exc)
            return
        run.last_status = status
        if run.safety_hits:
            self._breach(run, run.safety_hits[0])
        elif status.state in (ChannelState.FINISHED, ChannelState.IDLE) and not run.done:
            self._transition(run_id, "finished", status.message or "program completed", test_time=status.test_time)
            run.done = True
        elif status.state is ChannelState.PROTECTED:
            self.store.add_event(run_id, "alarm", f"the instrument tripped its protection: {status.message}",
                                 self.clock.unix(), test_time=status.test_time)
            self._safe_stop(run, "protection")
            self._transition(run_id, "stopped", f"instrument protection: {status.message}",
                             test_time=status.test_time)
            run.done = True
        elif status.state is ChannelState.STOPPED and not run.done:
            self._transition(run_id, "stopped", status.message or "stopped at the instrument",
                             test_time=status.test_time)
            run.done = True
        elif status.state is ChannelState.ERROR:
            self._safe_stop(run, "instrument error")
            self._transition(run_id, "failed", f"instrument error: {status.message}")
            run.done = True
        elif status.state is ChannelState.PAUSED and run.state == "running":
            self._transition(run_id, "paused", "paused at the instrument")
        elif status.state is ChannelState.RUNNING and run.state == "paused":
            self._transition(run_id, "running", "continued at the instrument")

    def _download(self, run: ActiveRun) -> None:
        while True:
            records = run.driver.read_records(run.last_seq, self.page)
            if not records:
                return
            block = to_block(records)
            block = block[block["seq"] > run.last_seq]
            if not len(block):
                return
            if block["seq"][0] != run.last_seq + 1:
                self.store.add_event(run.run_id, "warning", f"records {run.last_seq + 1}..{block['seq'][0] - 1} "
                                     "were not delivered by the instrument", self.clock.unix())
            breach = self._check_safety(run.program, block)
            try:
                run.last_seq = self.store.append_records(run.run_id, block)
            except StoreError as exc:
                self._safe_pause(run, str(exc))
                raise
            run.records += len(block)
            if breach and not run.safety_hits:
                run.safety_hits.append(breach)
            if len(records) < self.page:
                return

    @staticmethod
    def _check_safety(program: StepProgram, block: np.ndarray) -> str | None:
        s = program.safety
        v, i, t = block["voltage"], block["current"], block["test_time"]
        checks = [
            (s.voltage_max, v > (s.voltage_max or 0) + 1e-9, "voltage {:.4f} V above the safety limit {} V", v),
            (s.voltage_min, v < (s.voltage_min or 0) - 1e-9, "voltage {:.4f} V below the safety limit {} V", v),
            (s.current_max, np.abs(i) > (s.current_max or 0) * (1 + 1e-6) + 1e-12,
             "current {:.6g} A above the safety limit {} A", i),
            (s.run_duration_max, t > (s.run_duration_max or 0), "test time {:.0f} s beyond the run limit {} s", t),
        ]
        for limit, mask, text, values in checks:
            if limit is not None and mask.any():
                k = int(np.argmax(mask))
                return f"record {int(block['seq'][k])}: " + text.format(values[k], limit)
        return None

    def _breach(self, run: ActiveRun, message: str) -> None:
        self.store.add_event(run.run_id, "alarm", f"safety limit broken, stopping the channel: {message}",
                             self.clock.unix())
        self._safe_stop(run, "safety")
        self._download_quietly(run)
        self._transition(run.run_id, "stopped", f"safety: {message}")
        run.done = True

    def _download_quietly(self, run: ActiveRun) -> None:
        with contextlib.suppress(DriverError):
            self._download(run)

    def _safe_stop(self, run: ActiveRun, why: str) -> None:
        try:
            run.driver.stop()
            self.store.add_event(run.run_id, "safe-state", f"channel stopped ({why}); no current flows",
                                 self.clock.unix())
        except DriverError as exc:
            self.store.add_event(run.run_id, "alarm", f"could not stop the channel ({why}): {exc}; stop it at the "
                                 "instrument", self.clock.unix())

    def _safe_pause(self, run: ActiveRun, why: str) -> None:
        """Storage failed: pause the instrument so nothing runs unrecorded; the data stays on the instrument."""
        try:
            run.driver.pause()
        except DriverError:
            with contextlib.suppress(DriverError):
                run.driver.stop()
        with contextlib.suppress(StoreError):  # the store is what failed; `attach` catches up later
            self.store.set_state(run.run_id, "paused", self.clock.unix(), f"storage failed: {why}")
        run.state = "paused"
        run.done = True

    def progress(self, run_id: str) -> Progress:
        run = self.active[run_id]
        status = run.last_status
        tag = None
        if status and status.step_index and 1 <= status.step_index <= len(run.program.steps):
            tag = run.program.step(status.step_index).tag
        eta = None
        if run.estimated_s is not None and status and status.test_time is not None:
            eta = max(0.0, run.estimated_s - status.test_time)
        return Progress(run_id, run.state, status, run.records, tag, eta)

    def supervise(self, run_ids: list[str], poll_seconds: float,
                  on_progress: Callable[[Progress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> None:
        """Poll the runs until all are done (or ``should_stop`` says so), sleeping on the injected clock."""
        pending = list(run_ids)
        next_round = self.clock.now()
        while pending:
            for progress in self.poll_round(pending):
                if on_progress:
                    on_progress(progress)
            pending = [run_id for run_id in pending if not self.active[run_id].done]
            if not pending or (should_stop and should_stop()):
                return
            # rounds on a fixed beat: a slow round shortens the wait instead of stretching the poll interval
            next_round = max(next_round + poll_seconds, self.clock.now())
            self.clock.sleep(next_round - self.clock.now())

    # -- operator actions -------------------------------------------------------------------------------------------

    def pause(self, run_id: str) -> None:
        run = self.active[run_id]
        run.driver.pause()
        self.store.add_event(run_id, "operator", "pause", self.clock.unix())
        self._transition(run_id, "paused", "paused by the operator")

    def resume(self, run_id: str) -> None:
        run = self.active[run_id]
        run.driver.resume()
        self.store.add_event(run_id, "operator", "continue", self.clock.unix())
        self._transition(run_id, "running", "continued by the operator")

    def stop(self, run_id: str, why: str = "stopped by the operator") -> None:
        run = self.active[run_id]
        self.store.add_event(run_id, "operator", "stop", self.clock.unix())
        self._safe_stop(run, why)
        self._download_quietly(run)
        if self.store.run(run_id).state not in TERMINAL_STATES:
            self._transition(run_id, "stopped", why)
        run.done = True

