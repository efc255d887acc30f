"""Runs: the engine that drives channels through the persisted state machine of :mod:`station.run_policy`.

A run goes created -> validated -> starting -> started -> running <-> paused -> finished | stopped | failed, and
every transition is written to the store before anything else happens, so a crash at any point leaves a run that
a later process can pick up. ``starting`` is the written intent to start, with the barcode sent (the sample's id,
else the run id) and the channel's start marker (the BTS's test id before start, which tells this run's test from an
earlier run of the same sample): a station killed after the instrument accepted ``start`` and before the handle was
stored left a run that only the instrument can settle, so :meth:`RunManager.reconcile` asks it by barcode and marker
and adopts the test or fails the run.

The station believes the instrument, never itself: a stop is only *requested* until the instrument reports the
channel stopped; a channel that reports idle or finished under another test id, or with fewer records than are
stored, has lost this run's test rather than finished it. The instrument runs the program on its own; the
supervisor polls, downloads records, checks each page's record numbers and the protocol's safety limits, and
reacts. What it does about each status is decided by :func:`station.run_policy.decide`, a pure function; this
module observes (status, downloads, the safety check), carries out the actions it returns, and keeps the counts
and once-only alarms the next decision needs. Like bluesky's engine, it knows nothing about what a step means beyond
what the driver reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from drivers.base import (
    ChannelDriver,
    ChannelState,
    ChannelStatus,
    DriverError,
    Record,
    Refused,
    TestGone,
    TestHandle,
)
from protocols.cells import Cell
from protocols.clock import Clock
from protocols.estimate import estimate_program
from protocols.loader import LoadedProtocol
from protocols.program import StepProgram
from protocols.safety import first_breach
from protocols.segments import segments
from station.active_run import ActiveRun, handle_doc, handle_from_row, place_from_row
from station.leases import Lease, LeaseError
from station.run_policy import (
    ENDED,
    MAX_BAD_PAGES,
    MAX_FAILED_POLLS,
    TERMINAL_STATES,
    TRANSITIONS,
    Action,
    BadPage,
    CatchUp,
    ContactLost,
    ContactRestored,
    Event,
    NoAnswer,
    RequestStop,
    RunState,
    RunView,
    SafeStop,
    Seen,
    Stop,
    Transition,
    decide,
    lost_test,
    stop_pending,
)
from station.store import RECORD_DTYPE, RunRow, Store, StoreError, to_block
from station.store.records import conformed
from station.temperature_runs import (
    WAIT_POLL_S,
    TemperatureStepError,
    TemperatureSteps,
    first_segment_place,
    has_temperature_steps,
    instrument_program,
)

S = RunState
INT64_MAX = 2**63 - 1


class RunError(Exception):
    """A run cannot do what was asked; the message says why and what to do. ``instrument``: the cause is an
    instrument that could not be used (no answer), not the request."""

    def __init__(self, message: str, *, instrument: bool = False):
        super().__init__(message)
        self.instrument = instrument


class RunEnded(RunError):
    """Asked to act on a run, the station found that it has ended (never started, or its test is gone)."""


class InstrumentDataError(DriverError):
    """The instrument sent records that cannot be true (wrong or out-of-order numbers); never stored as data."""


def _why(exc: BaseException) -> str:
    """An exception as the one-line reason a run failed: our own errors by their message, others with their type."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C) before start was sent"
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    ours = type(exc).__module__.split(".")[0] in ("station", "protocols", "drivers", "simulators")
    return text if ours and text else f"{type(exc).__name__}: {text}"


def _by(who: str | None) -> str:
    """Who did an operator action, as the events and messages record it (the API token's name)."""
    return f" (by {who})" if who else ""


def new_run_id(clock: Clock) -> str:
    """A sortable, readable id: UTC start second plus 24 random bits (many runs start in the same second)."""
    stamp = datetime.fromtimestamp(clock.unix(), UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass
class Progress:
    """What the CLI shows while a run is supervised."""

    run_id: str
    state: RunState
    status: ChannelStatus | None
    records: int
    tag: str | None = None
    eta_s: float | None = None
    contact_lost_s: float | None = None
    """How long the instrument has not answered; while set, ``status`` is stale and must not be shown as live."""
    stop_requested: str | None = None
    waiting: str | None = None
    """What a run with temperature steps waits for (its chamber), while no instrument test runs."""
    chamber_c: float | None = None
    """The last reading of the run's climate chamber, when it sits in one."""
    chamber_set_c: float | None = None
    """The set point the run wants of its chamber now (its last or awaited temperature step)."""


#: records a round stages before it commits early: bounds memory (about 100 bytes a record) when hundreds of
#: channels catch up after an outage; an ordinary round of 2048 channels stages a few thousand
ROUND_RECORDS = 200_000
#: instrument links observed at once (threads): a PC beside a lab's BTS Clients talks to a handful of them
LINK_THREADS = 8


@dataclass
class _Observed:
    """What one round saw of one run, held until the round's records are stored and the policy may act."""

    run: ActiveRun
    view: RunView
    """The run as of its status (records downloaded after the status are newer than what it counted)."""
    status: ChannelStatus | None = None
    no_answer: str | None = None
    """The instrument did not answer the status or a download (a round with no status has only this)."""
    bad_page: str | None = None
    """A page whose record numbers cannot be true; pages before it are stored."""
    lost: bool = False
    """The status shows that the channel no longer holds this run's test: nothing was downloaded."""
    pages: list[np.ndarray] = field(default_factory=list)
    """Checked pages not yet committed."""
    fetched_seq: int = 0
    """The last record fetched (stored or staged): the next page starts after it."""
    breach: str | None = None
    """The first safety breach in the fetched pages; it becomes the run's once they are stored."""
    unstored: str | None = None
    """Why the store refused this run's records (its channel was then paused)."""
    pause_recorded: bool = True


@dataclass
class _Round:
    """A supervision round's observations, in order, and how many records are staged and not yet stored."""

    seen: list[_Observed] = field(default_factory=list)
    staged: int = 0
    limit: int = field(default_factory=lambda: ROUND_RECORDS)
    """Records staged before an early commit."""


def _block_reader(driver: ChannelDriver) -> Callable[[int, int], np.ndarray] | None:
    """The driver's ``read_block`` (its pages as arrays), unless ``read_records`` was replaced where ``read_block``
    would not see it (a subclass or an instance that wraps or alters the records, as fault injectors do)."""
    mro = type(driver).__mro__
    owner = next((k for k in mro if "read_block" in vars(k)), None)
    if owner is None or "read_records" in getattr(driver, "__dict__", {}):
        return None
    if next(k for k in mro if "read_records" in vars(k)) is not owner:
        return None
    return driver.read_block


class RunManager:
    """Starts, supervises, pauses, stops and re-attaches runs on channels, one process for many channels."""

    #: consecutive failed polls of one channel before the outage is raised to an alarm (the policy's)
    MAX_POLL_FAILURES = MAX_FAILED_POLLS
    #: consecutive pages of impossible records before the channel is stopped (the policy's)
    MAX_DATA_FAILURES = MAX_BAD_PAGES

    def __init__(self, store: Store, clock: Clock, *, page: int = 1000):
        self.store = store
        self.clock = clock
        self.page = page
        self.active: dict[str, ActiveRun] = {}
        self.leases: dict[str, Lease] = {}
        self._claimed: dict[str, tuple[StepProgram, Cell]] = {}
        """Runs claimed (``created``) and not yet checked against their channel: their bound program and cell."""
        self.on_alert: Callable[[str, str, str], None] = lambda kind, run_id, message: None
        """Told (kind, run id, message) of every alarm someone must hear of now and of every finished run; the
        station's alerts (station.alerts) send it on without ever holding up supervision."""
        self.cell_events: Callable[[ChannelDriver], list[tuple[str, str]]] = lambda driver: []
        """What a simulated channel's cell model reports (kind, message) that no instrument can: Li grown beyond
        the host's pores. The station's instruments fill it in; each is stored as a warning."""
        self._links: ThreadPoolExecutor | None = None
        """Threads that observe independent instrument links at once (see :meth:`poll_round`), made when needed."""
        self._store_lock = threading.Lock()
        """Held for every write of a round's records, which link threads may make while the round is observed."""
        self.temperature = TemperatureSteps(self)
        """Carries out temperature steps (station.temperature_runs); the station tells it its chambers."""

    def close(self) -> None:
        if self._links is not None:
            self._links.shutdown(wait=True)
            self._links = None
        for lease in self.leases.values():
            lease.release()
        self.leases.clear()

    # -- leases ----------------------------------------------------------------------------------------------------

    def _lease(self, run_id: str) -> None:
        """Take the run's lease or refuse: one process starts or supervises a run at a time."""
        lease = self.leases.get(run_id) or Lease(self.store.data_dir, run_id)
        try:
            acquired = lease.acquire()
        except LeaseError as exc:
            raise RunError(str(exc)) from None
        if not acquired:
            holder = lease.holder()
            raise RunError(f"run {run_id} is being started or supervised by another station process"
                           + (f" (pid {holder})" if holder else "") + "; watch it with `station status "
                           f"{run_id}`, or stop that process first")
        self.leases[run_id] = lease

    def lease_free(self, run_id: str) -> bool:
        """True if no other process holds the run's lease (this process may take it)."""
        if run_id in self.leases:
            return True
        lease = Lease(self.store.data_dir, run_id)
        try:
            free = lease.acquire()
        except LeaseError:
            return False
        lease.release()
        return free

    def _release(self, run_id: str) -> None:
        lease = self.leases.pop(run_id, None)
        if lease is not None:
            lease.release()

    # -- state machine -----------------------------------------------------------------------------------------

    def _transition(self, run_id: str, state: RunState, message: str = "", **kwargs: Any) -> None:
        current = self.store.run(run_id).state
        run = self.active.get(run_id)
        if run is not None and run.state != current and (current == state or current in TERMINAL_STATES):
            # another process got there first (an operator's `station pause`, `stop` or `stop --force`)
            run.state = current
            run.done = current in TERMINAL_STATES
            return
        if state not in TRANSITIONS.get(current, ()):
            raise RunError(f"run {run_id} is {current}; it cannot become {state}")
        self.store.set_state(run_id, state, self.clock.unix(), message, **kwargs)
        if run is not None:
            run.state = state
            if state in TERMINAL_STATES:
                run.done = True
                run.stop_requested = None
        if state in TERMINAL_STATES:
            self._release(run_id)

    def _event(self, run_id: str, kind: str, message: str, **kwargs: Any) -> None:
        self.store.add_event(run_id, kind, message, self.clock.unix(), **kwargs)

    # -- start -----------------------------------------------------------------------------------------------

    def create(self, loaded: LoadedProtocol, cell: Cell, channel: str, driver: ChannelDriver, *,
               instrument: dict[str, Any], dry_run: bool) -> str:
        """Bind, check against the channel and persist a run (created -> validated). Nothing is sent yet."""
        run_id = self.claim(loaded, cell, channel, instrument=instrument, dry_run=dry_run)
        self.validate(run_id, driver)
        return run_id

    def claim(self, loaded: LoadedProtocol, cell: Cell, channel: str, *, instrument: dict[str, Any],
              dry_run: bool, sample_id: str | None = None, program: StepProgram | None = None) -> str:
        """Bind and persist a run in ``created``: the atomic claim of ``channel`` (:class:`~station.store.ChannelBusy`
        when an active run holds it, and then no run is stored). The run's lease is taken before the row exists, so
        no other process can mistake the new run for an abandoned one. Until :meth:`start` sends anything, every
        failure must end the run with :meth:`fail_before_start`, which frees the channel again."""
        program = program or loaded.bind(cell)  # the caller's binding when it has one: a program is bound once
        assert program is not None
        run_id = new_run_id(self.clock)
        while self.store.has_run(run_id):
            run_id = new_run_id(self.clock)
        self._lease(run_id)
        try:
            self.store.create_run(
                run_id=run_id, at=self.clock.unix(), channel=channel, instrument=instrument,
                protocol_name=loaded.name, protocol_file=loaded.source.file, protocol_source=loaded.source.text,
                parameters=loaded.resolved_parameters(), program=program.to_json(),
                cell=cell.model_dump(mode="json"), dry_run=dry_run, sample_id=sample_id)
        except BaseException:
            self._release(run_id)
            raise
        self._claimed[run_id] = (program, cell)
        return run_id

    def validate(self, run_id: str, driver: ChannelDriver) -> None:
        """Check a claimed run's program against its channel's driver (created -> validated); a program the
        channel cannot run ends the run as failed, which frees the channel."""
        program, cell = self._claimed.pop(run_id)
        channel = self.store.run(run_id).channel
        parts: list[Any] = []
        chamber = None
        try:
            if has_temperature_steps(program):
                parts, chamber = self.temperature.check(program, channel, driver)
            else:
                driver.check(program)
            estimate = estimate_program(program, cell)
        except Exception as exc:  # whatever failed, nothing was sent: the run ends here and frees the channel
            known = DriverError | RunError | TemperatureStepError
            why = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
            self.fail_before_start(run_id, f"the channel cannot run this program: {why}")
            raise RunError(f"channel {channel} cannot run this program: {why}") from None
        except KeyboardInterrupt as exc:
            self.fail_before_start(run_id, exc)
            raise
        self._transition(run_id, S.VALIDATED, f"checked against channel {channel}")
        self.active[run_id] = ActiveRun(run_id, driver, program, 0, estimate.total_s if estimate.complete else None,
                                        segments=parts, chamber=chamber)

    def fail_before_start(self, run_id: str, exc: BaseException | str) -> None:
        """End a run that failed before start was sent (created or validated): ``failed``, with the reason as an
        event and as the run's message, and its channel free again. A run already ``starting`` or beyond is left
        alone: start may have reached the instrument, and only the instrument can settle it (:meth:`reconcile`)."""
        self._claimed.pop(run_id, None)
        row = self.store.run(run_id)
        if row.state not in (S.CREATED, S.VALIDATED):
            return
        why = exc if isinstance(exc, str) else _why(exc)
        self._event(run_id, "warning", f"the run could not start: {why}; nothing was sent to the instrument")
        self._transition(run_id, S.FAILED, f"failed before start: {why}")
        self.active.pop(run_id, None)

    def start(self, run_id: str) -> TestHandle:
        """Write the intent, send start, store the handle. A refusal leaves the channel untouched; any other
        failure is settled by asking the instrument whether our barcode runs (never by stopping blindly)."""
        run = self.active[run_id]
        run.barcode = self.store.run(run_id).sample_id or run_id  # a Neware barcode names the physical cell
        try:
            marker = run.driver.start_marker()
        except DriverError as exc:  # nothing was sent: the run ends here and frees the channel
            self.fail_before_start(run_id, f"channel {run.driver.channel} did not answer before start: {exc}")
            raise RunError(f"run {run_id} could not start: channel {run.driver.channel} did not answer ({exc}); "
                           f"nothing was sent", instrument=True) from None
        run.marker = marker
        run.started_unix = self.clock.unix()
        if run.segments:
            run.place = self.temperature.first_place(run)
            if run.place.phase == "waiting":
                return self._start_waiting(run)
        self._transition(run_id, S.STARTING, f"sending start to {run.driver.channel} with barcode {run.barcode}",
                         data={"barcode": run.barcode, "marker": marker})
        try:
            handle = run.driver.start(instrument_program(run.program), barcode=run.barcode)
        except Refused as exc:  # nothing reached the channel; it may be running someone else's test
            self._transition(run_id, S.FAILED, f"start refused: {exc}")
            raise RunError(f"run {run_id} could not start: {exc}", instrument=exc.unreachable) from None
        except Exception as exc:
            why = str(exc) if isinstance(exc, DriverError) else f"{type(exc).__name__}: {exc}"
            if self._start_failed(run, why):
                raise RunError(f"run {run_id} could not start: {why}") from None
            raise RunError(f"run {run_id}: start failed ({why}) and the instrument cannot say whether the test "
                           f"started; the run stays 'starting' with its channel claimed, and `station attach "
                           f"{run_id}` settles it once the instrument answers", instrument=True) from None
        self._record_started(run, handle, f"test {handle.test_id} on {handle.channel}")
        return handle

    def _start_waiting(self, run: ActiveRun) -> TestHandle:
        """Start a program that opens with a temperature step: the run is running (the channel and cell are its
        own) while the station waits for the chamber; nothing is sent to the channel until it is stable."""
        self._transition(run.run_id, S.STARTING, f"waiting for the chamber before anything is sent to "
                         f"{run.driver.channel}", data={"barcode": run.barcode, "marker": run.marker})
        handle = TestHandle(run.driver.channel, "", run.barcode or run.run_id)
        run.handle = handle
        self._transition(run.run_id, S.STARTED, f"waiting for chamber {run.chamber.name}; the first segment starts "
                         "when it is stable", handle=handle_doc(handle, run.place))
        self._transition(run.run_id, S.RUNNING)
        return handle

    def _record_started(self, run: ActiveRun, handle: TestHandle, message: str) -> None:
        run.handle = handle
        self._transition(run.run_id, S.STARTED, message, handle=handle_doc(handle, run.place))
        polled = handle.extra.get("polled_limits")
        if polled:
            self._event(run.run_id, "info", f"safety limits the instrument cannot enforce itself, checked on every "
                        f"downloaded record instead: {polled}")
        self._transition(run.run_id, S.RUNNING)

    def _start_failed(self, run: ActiveRun, why: str) -> bool:
        """Start failed after something may have reached the instrument: find out before deciding anything.
        Returns False when the instrument cannot tell (the run then stays 'starting', to be reconciled)."""
        try:
            handle = run.driver.find_test(instrument_program(run.program), run.barcode or run.run_id, run.marker)
        except DriverError as exc:
            self._event(run.run_id, "alarm", f"start failed ({why}) and channel {run.driver.channel} cannot tell "
                        f"whether it started the test ({exc}); the run stays 'starting' and `station attach "
                        f"{run.run_id}` settles it once the instrument answers")
            run.done = True
            return False
        if handle is None:
            self._transition(run.run_id, S.FAILED, f"start failed: {why}; the instrument did not start the test")
            return True
        run.handle = handle
        self._transition(run.run_id, S.STARTED, f"test {handle.test_id} started although start failed ({why})",
                         handle=handle_doc(handle, run.place))
        run.ends_as = S.FAILED
        run.stop_requested = f"start failed: {why}; the instrument had started the test, so it was stopped"
        self.store.request_stop(run.run_id, run.stop_requested, self.clock.unix())
        try:
            run.driver.attach(handle)
        except DriverError as exc:
            self._carry_out(run, stop_pending(self._view(run), f"could not attach to channel {run.driver.channel} "
                                                                f"to stop it ({exc})"))
            return True
        self._try_stop(run)
        return True

    def reconcile(self, run_id: str, driver: ChannelDriver) -> RunState:
        """Settle a run whose start was intended but never confirmed, by the instrument's word; returns the
        run's state afterwards. Needs the run's lease, so a run another process is starting is left alone."""
        row = self.store.run(run_id)
        if not row.unconfirmed:
            return row.state
        self._lease(run_id)
        if row.state is S.CREATED:
            self._transition(run_id, S.FAILED, "the station stopped before it checked this run against the channel; "
                             "nothing was sent to the instrument")
            return S.FAILED
        program = StepProgram.from_json(row.program)
        barcode, marker = self._intent(row)
        first = first_segment_place(program)
        try:
            handle = driver.find_test(instrument_program(program), barcode, marker)
        except DriverError:
            self._release(run_id)
            raise
        if row.state is S.VALIDATED:
            self._transition(run_id, S.STARTING, "reconciling with the instrument")
        if handle is None:
            newer = " newer than the marker taken before start" if marker else ""
            self._transition(run_id, S.FAILED, f"never started: channel {row.channel} holds no test with barcode "
                             f"{barcode}{newer}; start a new run")
            return S.FAILED
        self._event(run_id, "operator", f"reconciled: the instrument runs test {handle.test_id} with barcode "
                    f"{barcode}; adopting it")
        self._transition(run_id, S.STARTED, f"adopted test {handle.test_id} on {handle.channel}",
                         handle=handle_doc(handle, first))
        self._release(run_id)
        return S.STARTED

    def _intent(self, row: RunRow) -> tuple[str, dict[str, str] | None]:
        """The barcode a start of this run sent and the channel's marker from before it (runs stored before
        intents carried them were started with their run id as the barcode)."""
        intent = self.store.start_intent(row.id)
        return intent.get("barcode") or row.id, intent.get("marker") or None

    def attach(self, run_id: str, driver: ChannelDriver, *, supervise: bool = True) -> None:
        """Resume supervising a run whose program kept running on the instrument (after a crash or a detach).

        ``supervise=False`` is for one-off operator commands (stop, pause) that may run while another process
        supervises the run: they need the driver attached but not the run's lease."""
        row = self.store.run(run_id)
        if not row.active:
            raise RunError(f"run {run_id} is {row.state}; only an active run can be attached")
        if row.unconfirmed:
            if self.reconcile(run_id, driver) is S.FAILED:
                raise RunEnded(f"run {run_id} never started on the instrument (checked by its barcode); it is "
                               f"marked failed, start a new run")
            row = self.store.run(run_id)
        handle = handle_from_row(row)
        assert handle is not None
        place = place_from_row(row)
        if supervise:
            self._lease(run_id)
        try:
            if place is None or place.phase == "running":
                driver.attach(handle)
            elif handle.test_id:  # waiting after a segment: its finished test tells whether the channel is at rest
                try:
                    driver.attach(handle)
                except TestGone as exc:  # no test of this run runs; the next segment starts only on an idle channel
                    self._event(run_id, "warning", f"{exc}; the run waits for its chamber and none of its tests "
                                "runs; the next segment starts only on a channel the instrument reports free")
        except TestGone as exc:  # the instrument was reset or the channel reused: the run did not finish
            self._event(run_id, "alarm", f"{exc}; every record stored so far ({row.last_seq}) is kept; check the "
                        "instrument (was it reset, or the channel reused?)")
            self._transition(run_id, S.FAILED, str(exc))
            raise RunEnded(f"run {run_id}: {exc}; marked failed, every stored record is kept") from None
        except DriverError:
            if supervise:
                self._release(run_id)
            raise
        program = StepProgram.from_json(row.program)
        cell = Cell.model_validate(row.cell)
        estimate = estimate_program(program, cell)
        active = ActiveRun(run_id, driver, program, row.last_seq, estimate.total_s if estimate.complete else None,
                           records=self.store.record_count(run_id), state=row.state, handle=handle,
                           stop_requested=row.stop_requested, contact_lost_at=row.contact_lost_at,
                           started_unix=row.started_at)
        if has_temperature_steps(program):
            active.segments = segments(program)
            active.chamber = self.temperature.chamber_of(row.channel)
            if place is not None and place.wait is not None:  # stability seen before the restart is not known now
                place = dataclasses.replace(place, wait=dataclasses.replace(place.wait, stable_since=None))
            active.place = place
            active.last_record = self._last_record(run_id, row.last_seq)
        self.active[run_id] = active
        if supervise:
            self._event(run_id, "operator", f"attached; catching up from record {row.last_seq + 1}")
        if row.state is S.STARTED:
            self._transition(run_id, S.RUNNING)

    # -- supervision ---------------------------------------------------------------------------------------------

    def poll(self, run_id: str) -> Progress:
        """One supervision round for one run: status, new records, safety, and the end of the run."""
        return self.poll_round([run_id])[0]

    def poll_round(self, run_ids: list[str]) -> list[Progress]:
        """One supervision round for many runs. Channels that share a link are asked for their status together
        (one exchange for a whole BTS), and a channel whose instrument holds no record newer than ours is not
        asked for records: that is what keeps hundreds of channels at a 1 s poll cheap.

        A round has three phases, so that the store commits once per round instead of once per channel (the
        commit and its fsync were most of a 512-channel station's CPU): observe (statuses, downloads, record
        numbers and the safety rule on every page, nothing written), store (every run's new records in one
        transaction), decide (the policy acts on each status). No decision precedes the storing of the records
        that led to it, and last_seq moves only with committed records, so a crash anywhere in a round loses
        nothing the instrument does not still hold. Records that cannot be stored pause their channel
        (:meth:`_safe_pause`); the others' decisions are still carried out, then the failure is raised.

        Links whose driver says they are independent (``independent_links``: one BTS Client connection each) are
        observed at the same time, one thread per link: a download is one round trip per channel, so with several
        BTS Clients on a LAN a round one link after the other would mostly wait (2048 round trips of 1 ms are 2 s,
        twice the poll). Nothing but the link's own driver is touched in its thread (and the store, for an early
        commit of a large catch-up, under a lock); the round's last commit and every decision are made here,
        after all links are observed."""
        with contextlib.suppress(StoreError):  # a stop asked for by another process (`station stop`)
            for run_id, why in self.store.stop_requests(run_ids).items():
                self.active[run_id].stop_requested = self.active[run_id].stop_requested or why
        once = [self.active[run_id] for run_id in dict.fromkeys(run_ids)]  # two observations would stage twice
        deferred: StoreError | None = None  # the store failing for a waiting run must not leave the running
        waiting = [run for run in once if not run.done and self.temperature.waiting(run)]  # channels unwatched:
        try:  # they are observed and their records stored first, then the failure is raised
            if waiting:
                self.temperature.tend(waiting)
            chambered = [run for run in once if not run.done and run.chamber is not None and not
                         self.temperature.waiting(run)]
            if chambered:
                self.temperature.watch(chambered)
        except StoreError as exc:
            deferred = exc
        groups: dict[tuple[type, object], list[ActiveRun]] = {}
        for run in once:
            if run.done or self.temperature.waiting(run):
                continue
            groups.setdefault((type(run.driver), run.driver.batch_key()), []).append(run)
        links = list(groups.values())
        limit = max(self.page, ROUND_RECORDS // max(1, len(links)))  # the round's bound, shared by its links
        if len(links) > 1 and all(getattr(type(runs[0].driver), "independent_links", False) for runs in links):
            if self._links is None:
                self._links = ThreadPoolExecutor(max_workers=LINK_THREADS, thread_name_prefix="station-link")
            observed = list(self._links.map(lambda runs: self._observe_link(runs, limit), links))
        else:
            observed = [self._observe_link(runs, limit) for runs in links]
        self._finish(_Round(seen=[seen for link in observed for seen in link.seen]))
        if deferred is not None:
            raise deferred
        return [self.progress(run_id) for run_id in run_ids]

    def _observe_link(self, runs: list[ActiveRun], limit: int) -> _Round:
        """Status of every run on one link (one exchange where the driver can), then their new records."""
        batch = _Round(limit=limit)
        try:
            statuses = type(runs[0].driver).statuses([r.driver for r in runs])
        except DriverError as exc:
            batch.seen.extend(_Observed(run, self._view(run), no_answer=str(exc)) for run in runs)
            return batch
        for run, status in zip(runs, statuses, strict=True):
            self._observe(run, status, batch)
        return batch

    def _after_status(self, run: ActiveRun, status: ChannelStatus) -> None:
        """A round of one run on a status already read: observe, store, decide."""
        batch = _Round()
        self._observe(run, status, batch)
        self._finish(batch)

    def _finish(self, batch: _Round) -> None:
        """Store what the round staged, then let the policy act on every run whose records are stored."""
        self._commit(batch)
        for seen in batch.seen:
            self._conclude(seen)
        refused = [seen for seen in batch.seen if seen.unstored is not None]
        if refused:
            raise self._store_failure(refused)

    def _observe(self, run: ActiveRun, status: ChannelStatus, batch: _Round) -> None:
        """Download and check what the status announces, up to the end of a finished or stopped program; the
        pages are staged in ``batch``, never another test's records under this run."""
        if run.place is not None:  # a segment's test counts from its own start: in the run's numbering
            status = run.place.shift_status(status)
        seen = _Observed(run, self._view(run), status=status, fetched_seq=run.last_seq)  # the view is as of the
        batch.seen.append(seen)  # status: records downloaded after it are newer than what it counted
        if lost_test(seen.view, status) is not None:
            seen.lost = True
            return
        if status.last_seq is not None and status.last_seq <= run.last_seq:
            return
        try:
            self._fetch(seen, batch)
        except InstrumentDataError as exc:
            seen.bad_page = str(exc)
        except DriverError as exc:
            seen.no_answer = str(exc)

    def _conclude(self, seen: _Observed) -> None:
        """Carry out what the policy decides on what a round saw of one run (its records are stored by now)."""
        run = seen.run
        if seen.unstored is not None:
            return  # paused for lack of storage: nothing else happens to it this round
        if seen.no_answer is not None:
            run.failures += 1
            self._decide(run, NoAnswer(seen.no_answer))
            return
        if seen.bad_page is not None:
            run.data_failures += 1
            self._decide(run, BadPage(seen.bad_page))
            return
        assert seen.status is not None
        if not seen.lost:
            run.data_failures = 0
            run.last_status = seen.status
            for kind, message in self.cell_events(run.driver):
                self._event(run.run_id, "warning", f"simulated cell: {kind}: {message}",
                            test_time=seen.status.test_time)
        self._carry_out(run, decide(seen.view, seen.status, run.breach))

    # -- carrying out the policy ------------------------------------------------------------------------------------

    def _view(self, run: ActiveRun, *, stop_sent: bool = False) -> RunView:
        return RunView(
            run_id=run.run_id, channel=run.driver.channel, state=run.state,
            test_id=run.handle.test_id if run.handle is not None else None, stored_seq=run.last_seq,
            stop_requested=run.stop_requested, ends_as=run.ends_as, stop_sent=stop_sent,
            breach_alarmed=run.breach_alarmed, stop_alarmed=run.stop_alarmed, failed_polls=run.failures,
            outage_s=None if run.contact_lost_at is None else self.clock.unix() - run.contact_lost_at,
            bad_pages=run.data_failures)

    def _decide(self, run: ActiveRun, seen: Seen, *, stop_sent: bool = False) -> None:
        self._carry_out(run, decide(self._view(run, stop_sent=stop_sent), seen, run.breach))

    def _carry_out(self, run: ActiveRun, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Transition(state, message, test_time):
                    if state is S.FINISHED and self.temperature.segment_finished(run, message, test_time):
                        continue  # a segment of the program, not its end: the run now waits for the chamber
                    self._transition(run.run_id, state, message, test_time=test_time)
                    if state is S.FINISHED:
                        self.on_alert("finished", run.run_id, message)
                case Event(kind, message, test_time, latch, alert):
                    self._event(run.run_id, kind, message, test_time=test_time)
                    if alert is not None:
                        self.on_alert(alert, run.run_id, message)
                    if latch == "breach":
                        run.breach_alarmed = True
                    elif latch == "stop":
                        run.stop_alarmed = True
                case RequestStop(why, replace):
                    run.stop_requested = why if replace else (run.stop_requested or why)
                    self.store.request_stop(run.run_id, why, self.clock.unix())
                case Stop():
                    self._try_stop(run)
                case SafeStop(why):
                    self._safe_stop(run, why)
                case CatchUp():
                    with contextlib.suppress(DriverError):
                        self._download(run)
                case ContactLost():
                    run.contact_lost_at = self.clock.unix()
                    self.store.set_contact(run.run_id, run.contact_lost_at)
                case ContactRestored():
                    if run.contact_lost_at is not None:
                        self.store.set_contact(run.run_id, None)
                    run.failures = 0
                    run.contact_lost_at = None
                case _:
                    raise AssertionError(f"unknown action {action!r}")

    # -- downloads -----------------------------------------------------------------------------------------------

    def _download(self, run: ActiveRun, status: ChannelStatus | None = None) -> None:
        """Download and store everything new of one run now (a catch-up the policy asked for), page by page."""
        batch = _Round()
        seen = _Observed(run, self._view(run), status=status, fetched_seq=run.last_seq)
        batch.seen.append(seen)
        try:
            self._fetch(seen, batch)
        except DriverError:
            self._commit(batch)  # pages checked before the failing one are stored
            if seen.unstored is not None:
                raise self._store_failure([seen]) from None
            raise
        self._commit(batch)
        if seen.unstored is not None:
            raise self._store_failure([seen])

    def _fetch(self, seen: _Observed, batch: _Round) -> None:
        """Read pages from the last record fetched, check their numbers and the safety rule, and stage them;
        the round is committed early once it holds :data:`ROUND_RECORDS`, so a catch-up of many channels after
        an outage stays within bounded memory."""
        run, status = seen.run, seen.status
        final = status.last_seq if status is not None and status.state in ENDED else None
        while not run.done:
            block = self._read_block(run, seen.fetched_seq, final)
            if not len(block):
                return
            breach = self._check_safety(run.program, block)
            seen.pages.append(block)
            seen.fetched_seq = int(block["seq"][-1])
            seen.breach = seen.breach or breach
            batch.staged += len(block)
            if batch.staged >= batch.limit:
                self._commit(batch)
            if len(block) < self.page:
                return

    def _read_block(self, run: ActiveRun, after: int, final: int | None) -> np.ndarray:
        """The next page as a store block (:data:`RECORD_DTYPE`), its record numbers checked. A driver with
        ``read_block`` (the Neware one) hands its columns over as an array, with no object per record: a dry run
        or a catch-up reads hundreds of thousands of records; any other driver's records are packed here."""
        place = run.place
        if place is not None and place.seq0:  # a segment's test numbers its records from 1
            after -= place.seq0
            final = None if final is None else final - place.seq0
        read_block = _block_reader(run.driver)
        if read_block is None:
            records = run.driver.read_records(after, self.page)
            if records:
                self._check_numbers(run, after, records, final)
            block = to_block(records) if records else np.empty(0, dtype=RECORD_DTYPE)
        else:
            columns = read_block(after, self.page)
            if len(columns):
                self._check_numbers(run, after, columns["seq"], final)
            block = conformed(columns)  # a driver's own layout gets the fields it lacks as "none" (NaN, 0)
        if len(block) and place is not None:
            place.shift_block(block, run.segments[place.index].lead_steps)
        if len(block) and run.chamber is not None:
            self.temperature.stamp(run, block)
        return block

    def _commit(self, batch: _Round) -> None:
        """Store every staged page of the round in one transaction. If the store refuses it, every run is tried
        on its own, and only a run whose records still cannot be stored is paused (its records stay on the
        instrument, and last_seq where it was)."""
        pending = [seen for seen in batch.seen if seen.pages]
        batch.staged = 0
        if not pending:
            return
        with self._store_lock:  # a link thread's early commit; the pause below uses that link's own driver
            try:
                stored = self.store.append_blocks({seen.run.run_id: seen.pages for seen in pending})
            except StoreError:
                stored = {}
                for seen in pending:
                    try:
                        stored.update(self.store.append_blocks({seen.run.run_id: seen.pages}))
                    except StoreError as exc:
                        seen.pages = []
                        seen.unstored = str(exc)
                        seen.pause_recorded = self._safe_pause(seen.run, str(exc))
        for seen in pending:
            if seen.unstored is not None:
                continue
            run = seen.run
            last = stored[run.run_id]
            run.records += max(0, last - run.last_seq)
            run.last_seq = last
            if run.segments:
                run.last_record = seen.pages[-1][-1].copy()
            if seen.breach and run.breach is None:
                run.breach = seen.breach
            seen.pages = []

    def _store_failure(self, refused: list[_Observed]) -> StoreError:
        """One error for the runs whose records could not be stored, naming the channels paused for it."""
        channels = ", ".join(seen.run.driver.channel for seen in refused)
        unrecorded = [seen.run.run_id for seen in refused if not seen.pause_recorded]
        return StoreError(
            f"{refused[0].unstored}; channel{'s' if len(refused) > 1 else ''} {channels} "
            f"{'were' if len(refused) > 1 else 'was'} paused so that nothing runs unrecorded"
            + ("" if not unrecorded else " (the store could not record the pause: `station attach "
               f"{' '.join(unrecorded)}` records it once there is space)"))

    def _check_numbers(self, run: ActiveRun, after: int, records: Sequence[Record] | np.ndarray,
                       final: int | None) -> None:
        """A page continues exactly where the records already fetched end (``after``), one number per record,
        never past the count of an ended test. Anything else (a renumbered record, a page from elsewhere) is the
        instrument's error. ``records``: the records, or their numbers as an int64 array (checked at once)."""
        first = after + 1
        expected = range(first, first + len(records))
        if isinstance(records, np.ndarray):
            if records[0] == first and (len(records) == 1 or np.all(np.diff(records) == 1)):
                if final is not None and records[-1] > final:
                    raise InstrumentDataError(f"channel {run.driver.channel} sent record {int(records[-1])}, past "
                                              f"the {final} records its ended test holds")
                return
            seqs = records.tolist()
        else:
            seqs = [r.seq for r in records]
        if seqs != list(expected):
            k = next(i for i, (a, b) in enumerate(zip(seqs, expected, strict=False)) if a != b)
            raise InstrumentDataError(f"channel {run.driver.channel} sent record {seqs[k]!r} where record "
                                      f"{expected[k]} belongs (page from record {first})")
        if seqs[-1] > INT64_MAX or (final is not None and seqs[-1] > final):
            raise InstrumentDataError(f"channel {run.driver.channel} sent record {seqs[-1]}, past the "
                                      f"{final} records its ended test holds")

    @staticmethod
    def _check_safety(program: StepProgram, block: np.ndarray) -> str | None:
        """The program's safety rule (:func:`protocols.safety.first_breach`) on a block, named by record number."""
        breach = first_breach(block, program.safety)
        return None if breach is None else f"record {int(block['seq'][breach.index])}: {breach.message}"

    # -- stopping ---------------------------------------------------------------------------------------------

    def _try_stop(self, run: ActiveRun) -> bool:
        """Send stop and believe it only when the instrument reports the channel ended; True once confirmed.

        Until then the run stays active with its stop request stored, the channel stays claimed, and every
        round sends the stop again: a stop the instrument never heard must not read as a safe channel."""
        try:
            run.driver.stop()
            status = run.driver.status()
        except DriverError as exc:
            self._decide(run, NoAnswer(str(exc)), stop_sent=True)
            return False
        if run.place is not None:
            status = run.place.shift_status(status)
        self._decide(run, status, stop_sent=True)
        return run.state in TERMINAL_STATES

    def _safe_stop(self, run: ActiveRun, why: str) -> None:
        """Stop for a reason the run ends with anyway (protection, an instrument error); an alarm if unconfirmed."""
        try:
            run.driver.stop()
            self._event(run.run_id, "safe-state", f"channel stopped ({why}); no current flows")
        except DriverError as exc:
            self._event(run.run_id, "alarm", f"could not stop the channel ({why}): {exc}; the cell may still be "
                        "running: stop it at the instrument")

    def _safe_pause(self, run: ActiveRun, why: str) -> bool:
        """Storage failed: pause the instrument so nothing runs unrecorded; the data stays on the instrument.

        The pause itself must reach the store, or `station status` would show "running" for a paused channel:
        the ballast beside the database is given up for it, and if even that fails it is written again every
        returns whether the store took it."""
        try:
            run.driver.pause()
        except DriverError:
            with contextlib.suppress(DriverError):
                run.driver.stop()
        message = f"storage failed: {why}"
        run.state = S.PAUSED
        run.done = True
        for attempt in range(2):
            try:
                self.store.set_state(run.run_id, S.PAUSED, self.clock.unix(), message)
                return True
            except StoreError:
                if attempt == 0 and not self.store.release_reserve():
                    break
        return False

    # -- the ends of a wait for the chamber (station.temperature_runs) -------------------------------------------

    def finish_after_wait(self, run: ActiveRun, message: str) -> None:
        """The program's last step was a temperature step, now done: the instrument had finished the segment
        before it."""
        self._transition(run.run_id, S.FINISHED, message)
        self.on_alert("finished", run.run_id, message)

    def end_waiting(self, run: ActiveRun, state: RunState, why: str) -> None:
        """End a run while it waits for the chamber: no instrument test runs (the instrument said so)."""
        self._transition(run.run_id, state, why)

    def _last_record(self, run_id: str, last_seq: int) -> np.void | None:
        """The last stored record (``None`` before any)."""
        last = None
        if last_seq > 0:
            for block in self.store.iter_record_blocks(run_id, after_seq=last_seq - 1):
                if len(block):
                    last = block[-1].copy()
        return last

    # -- progress ---------------------------------------------------------------------------------------------

    def progress(self, run_id: str) -> Progress:
        run = self.active[run_id]
        status = run.last_status
        tag = None
        if status and status.step_index and 1 <= status.step_index <= len(run.program.steps):
            tag = run.program.step(status.step_index).tag
        eta = None
        if run.estimated_s is not None and status and status.test_time is not None:
            eta = max(0.0, run.estimated_s - status.test_time)
        lost = None if run.contact_lost_at is None else max(0.0, self.clock.unix() - run.contact_lost_at)
        waiting = self.temperature.describe_wait(run) if self.temperature.waiting(run) else None
        reading = run.chamber.reading if run.chamber is not None else None
        return Progress(run_id, run.state, status, run.records, tag, eta, lost, run.stop_requested, waiting,
                        reading.temperature_c if reading is not None else None, self.temperature.target(run))

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
            # rounds on a fixed beat: a slow round shortens the wait instead of stretching the poll interval; a run
            # waiting for its chamber is looked at every WAIT_POLL_S at least
            beat = poll_seconds
            if any(self.temperature.waiting(self.active[run_id]) for run_id in pending):
                beat = min(beat, WAIT_POLL_S)
            next_round = max(next_round + beat, self.clock.now())
            self.clock.sleep(next_round - self.clock.now())

    # -- operator actions -------------------------------------------------------------------------------------------

    def pause(self, run_id: str, who: str | None = None) -> None:
        run = self.active[run_id]
        if self.temperature.waiting(run):
            raise RunError(f"run {run_id} is waiting for its chamber and nothing runs on channel "
                           f"{run.driver.channel} to pause; `station stop {run_id}` ends it, or let the wait finish")
        run.driver.pause()
        self._event(run_id, "operator", "pause" + _by(who))
        self._transition(run_id, S.PAUSED, "paused by the operator" + _by(who))

    def resume(self, run_id: str, who: str | None = None) -> None:
        run = self.active[run_id]
        run.driver.resume()
        self._event(run_id, "operator", "continue" + _by(who))
        self._transition(run_id, S.RUNNING, "continued by the operator" + _by(who))

    def stop(self, run_id: str, why: str = "stopped by the operator", who: str | None = None) -> bool:
        """Request a stop and try it now; True once the instrument confirmed it (the run is then stopped)."""
        run = self.active[run_id]
        self._event(run_id, "operator", "stop" + _by(who))
        run.stop_requested = run.stop_requested or why
        self.store.request_stop(run_id, why, self.clock.unix())
        if self.store.run(run_id).state in TERMINAL_STATES:
            run.done = True
            return True
        if self.temperature.waiting(run):
            with contextlib.suppress(DriverError):
                self.temperature.stop_waiting(run)
            return run.state in TERMINAL_STATES
        return self._try_stop(run)

    def retry_stop(self, run_id: str) -> bool:
        """Send a pending stop again (no new operator action); True once the instrument confirmed it."""
        run = self.active[run_id]
        if run.stop_requested is None:
            raise RunError(f"run {run_id} has no pending stop")
        return self._try_stop(run)

    def abandon(self, run_id: str, driver: ChannelDriver | None, why: str) -> None:
        """``station stop --force``: end a run whose test is gone from the instrument, as an operator's decision.

        Refused while the instrument still runs the test; ``driver`` is ``None`` only when the channel is no
        longer configured, which is itself the operator's statement that the instrument is gone."""
        row = self.store.run(run_id)
        if not row.active:
            raise RunError(f"run {run_id} is {row.state}; there is nothing to abandon")
        if driver is not None:
            program = StepProgram.from_json(row.program)
            barcode, marker = self._intent(row)
            handle = driver.find_test(instrument_program(program), barcode, marker)  # DriverError: cannot tell
            if handle is not None and (row.handle is None or handle.test_id == row.handle.get("test_id")):
                driver.attach(handle)
                state = driver.status().state
                if state in (ChannelState.RUNNING, ChannelState.PAUSED):
                    raise RunError(f"the instrument still runs test {handle.test_id} of run {run_id} ({state}); "
                                   f"`station stop {run_id}` stops it")
        self._event(run_id, "operator", f"abandoned by the operator (stop --force): {why}")
        self._transition(run_id, S.FAILED, f"abandoned by the operator: {why}")

