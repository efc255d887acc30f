"""How the run engine carries out temperature steps: a run's instrument segments, its waits for the chamber, and
the chamber shared by the runs in it.

The engine (:class:`station.runs.RunManager`) supervises an instrument test as it always has; this module takes
over at the seams of a run with temperature steps (:mod:`protocols.segments`):

* **before start**, every segment is checked against the channel, and the channel must sit in a chamber;
* **a segment the instrument reports finished** ends the run only if it was the last; otherwise the run waits for
  the chamber (its state stays ``running``: the cell is the run's and the channel is claimed, although no current
  flows, and the event log says why);
* **each round**, a waiting run reads its chamber (one reading per chamber per round), sets it once every other run
  in the chamber is waiting for the same set point, and judges the wait (:mod:`station.temperature_wait`): stable
  starts the next segment as a new test, too long fails the run, whose channel is already at rest;
* **starting a segment** writes its intent (the channel's start marker) before start is sent, so a station killed
  in between asks the instrument, by barcode and marker, whether the segment started, and never starts it twice.

A chamber is shared by its channels' cells, so one run cannot change it under another's test. A run that reaches a
temperature step waits until every other active run in the chamber (of this station process or any other, as the
store says) waits for the same set point; a run whose set point differs from one already waiting is refused
(failed with the reason) rather than left to wait for ever. ``max_wait`` counts from the set point being sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from drivers.base import ChannelDriver, DriverError, Refused
from protocols.clock import Clock
from protocols.program import StepProgram
from protocols.segments import Segment, SegmentError, segments, temperature_steps
from station.active_run import ActiveRun, handle_doc, place_from_row
from station.chambers import ChamberUnavailable, ChamberUnit, SetPointRefused
from station.run_policy import ENDED, RunState
from station.run_segments import Place
from station.temperature_wait import Verdict, WaitSpec, assess

S = RunState
#: how often (station clock) a waiting run's chamber is read when the poll interval is longer (a dry run's polls
#: jump hours of simulated time; a chamber's stability is judged on minutes)
WAIT_POLL_S = 60.0


def has_temperature_steps(program: StepProgram) -> bool:
    return bool(temperature_steps(program))


def instrument_program(program: StepProgram) -> StepProgram:
    """What a start of this run sends first: the first segment's program (the program itself without temperature
    steps); for a program opening with a temperature step, the segment after it."""
    if not has_temperature_steps(program):
        return program
    first = next((s.program for s in segments(program) if s.program is not None), None)
    return first if first is not None else program


def first_segment_place(program: StepProgram) -> Place | None:
    """Where a run stands once the first start it sent is confirmed (``None`` for a program without temperature
    steps): running the first segment that has an instrument program."""
    if not has_temperature_steps(program):
        return None
    found = next(((k, s) for k, s in enumerate(segments(program)) if s.program is not None), None)
    return None if found is None else Place(found[0], "running", step0=found[1].first_index - 1)


class Engine(Protocol):
    """What this module needs of the run engine (station.runs.RunManager), and all it may do to a run's state."""

    clock: Clock
    store: Any
    on_alert: Callable[[str, str, str], None]

    def finish_after_wait(self, run: ActiveRun, message: str) -> None: ...

    def end_waiting(self, run: ActiveRun, state: RunState, why: str) -> None: ...


class TemperatureStepError(ValueError):
    """A program with temperature steps that cannot run on this channel; the message says why and what to do."""


def _cycle0(last_record: Any, cycle_step: int | None) -> int:
    """What the run adds to a segment's own cycle numbers: the cycle of the run's last record, one less where the
    segment's first cycle goes on with it (a temperature step between a charge and its discharge:
    :attr:`protocols.segments.Segment.cycle_step`; unknown before the run: a new cycle, as between cycles)."""
    if last_record is None:
        return 0
    return int(last_record["cycle"]) + (cycle_step or 0)


class TemperatureSteps:
    """The engine's collaborator for runs with temperature steps (see the module docstring)."""

    def __init__(self, manager: Engine):
        self.manager = manager
        self.chamber_of: Callable[[str], ChamberUnit | None] = lambda channel: None
        """The chamber a channel sits in (the station's :class:`station.chambers.Chambers`)."""
        self.cell_temperature: Callable[[ChannelDriver, float], None] = lambda driver, celsius: None
        """Tell a simulated channel's cell its temperature (dry runs: the cell follows the chamber)."""
        self._hold_retry: dict[str, float] = {}
        """When a set point the chamber did not take may be sent again, by run."""
        self.compress_idle = False
        """A dry run: leave the time between a segment's end and the round that saw it out of the run's test time
        (:attr:`station.run_segments.Place.idle`)."""

    # -- before start -----------------------------------------------------------------------------------------

    def check(self, program: StepProgram, channel: str, driver: ChannelDriver) -> tuple[list[Segment], ChamberUnit]:
        """The run's segments and chamber; raises :class:`TemperatureStepError` naming what stops the program from
        running here."""
        try:
            parts = segments(program)
        except SegmentError as exc:
            raise TemperatureStepError(str(exc)) from None
        for part in parts:
            if part.program is not None:
                driver.check(part.program)
        chamber = self.chamber_of(channel)
        if chamber is None:
            raise TemperatureStepError(
                f"the program has temperature steps, and channel {channel} sits in no climate chamber: add the "
                "chamber to station.yaml (chambers: name, resource, channels) or choose a channel in one")
        return parts, chamber

    # -- the seams -----------------------------------------------------------------------------------------------

    def first_place(self, run: ActiveRun) -> Place:
        """Where a run begins: waiting for its first temperature step, or running its first segment."""
        first = run.segments[0]
        if first.temperature is not None:
            return Place(0, "waiting").waiting(self.manager.clock.unix())
        return Place(0, "running", step0=first.first_index - 1)

    def segment_finished(self, run: ActiveRun, message: str, test_time: float | None) -> bool:
        """The instrument reported the current segment finished. Returns False when it was the run's last (the
        run then finishes as usual); otherwise the run now waits for the next temperature step."""
        place = run.place
        if place is None or place.index + 1 >= len(run.segments):
            return False
        early = self._ended_early(run)
        if early is not None:
            self._event(run, "info", early)
            return False
        n = len(run.segments)
        nxt = run.segments[place.index + 1]
        assert nxt.temperature is not None
        now = self.manager.clock.unix()
        idle = place.idle
        if self.compress_idle and run.started_unix is not None:
            # the segment's last record (an instrument's status may count on past the end of its test)
            last = run.last_record
            ended = float(last["test_time"]) if last is not None and run.last_seq > place.seq0 else (test_time or 0.0)
            idle += max(0.0, now - (run.started_unix + place.idle + ended))
        run.place = replace(place.waiting(now), index=place.index + 1, idle=idle)
        self._persist(run, f"segment {place.index + 1} of {n} finished ({message}); waiting for the chamber: "
                           f"{WaitSpec.of(nxt.temperature).describe()}")
        return True

    def _ended_early(self, run: ActiveRun) -> str | None:
        """Why a segment the instrument reports finished ended the whole program (a ``then: end`` met before the
        segment's last step), or ``None`` when it ran to its end. An instrument reports both alike; the step of the
        last record tells them apart: a segment that ran to its end last recorded its last step. (A ``then: end``
        met on that very step, or in an earlier pass of a loop closing the segment, reads as the segment's end.)"""
        place = run.place
        assert place is not None
        program = run.segments[place.index].program
        last = max(s.index for s in program.steps if s.kind != "loop") + place.step0
        step = 0 if run.last_record is None else int(run.last_record["step_index"])
        if step in (0, last):
            return None
        return (f"the program ended at step {step} (a 'then: end' limit), before the end of segment "
                f"{place.index + 1} of {len(run.segments)}: the temperature steps after it are not carried out")

    def waiting(self, run: ActiveRun) -> bool:
        return run.place is not None and run.place.phase != "running"

    def describe_wait(self, run: ActiveRun) -> str:
        """One line for the terminal and the dashboard: what the run waits for, and the chamber now."""
        place = run.place
        assert place is not None
        if place.phase == "starting":
            return f"starting segment {place.index + 1} of {len(run.segments)}"
        step = run.segments[place.index].temperature
        chamber = run.chamber
        now = ""
        if chamber is not None and chamber.reading is not None:
            now = f", now {chamber.reading.temperature_c:.1f} °C"
        elif chamber is not None and chamber.error:
            now = ", not answering"
        name = chamber.name if chamber is not None else "(none)"
        return f"waiting for chamber {name}: {WaitSpec.of(step).describe()}{now}"

    def tend(self, runs: list[ActiveRun]) -> None:
        """One round of every waiting run: read each chamber once, then judge and act on each run."""
        readings: dict[str, Any] = {}
        for run in runs:
            if run.done:
                continue
            chamber = run.chamber
            if chamber is not None and chamber.name not in readings:
                readings[chamber.name] = chamber.read()
            try:
                self._tend(run, readings.get(chamber.name) if chamber is not None else None)
            except DriverError as exc:  # the channel did not answer a start or a question: next round again
                self._note(run, f"channel {run.driver.channel} did not answer ({exc}); trying again next round")

    def _tend(self, run: ActiveRun, reading: Any) -> None:
        place = run.place
        assert place is not None
        if run.stop_requested is not None:
            self.stop_waiting(run)
            return
        if place.phase == "starting":
            self._settle_start(run)
            return
        segment = run.segments[place.index]
        assert segment.temperature is not None and place.wait is not None
        spec = WaitSpec.of(segment.temperature)
        chamber = run.chamber
        if chamber is None:
            self._fail(run, f"channel {run.driver.channel} is no longer in a climate chamber in station.yaml, and "
                            f"the run waits for temperature step {segment.temperature.index}; nothing runs on it")
            return
        if reading is not None:
            self.cell_temperature(run.driver, reading.temperature_c)
        if not place.wait.applied:
            if not self._apply(run, spec, segment.temperature.index):
                return  # the run failed
            if run.place.wait.applied:
                reading = chamber.read()  # the stable time starts with a reading taken after the set point
        elif reading is None and chamber.error:
            self._note(run, f"chamber {chamber.name} did not answer: {chamber.error}")
        usable = None
        if reading is not None and not reading.alarms:
            usable = reading.temperature_c
        elif reading is not None and reading.door_open:
            self._note(run, f"chamber {chamber.name}: its door is open; the stable time starts again when it is "
                            "closed")
        elif reading is not None:
            codes = ", ".join(str(code) for code in reading.alarms)
            self._note(run, f"chamber {chamber.name} reports alarm {codes}; its temperature is not trusted until the "
                            "alarm is cleared on its panel")
        now = self.manager.clock.unix()
        wait, verdict = assess(spec, run.place.wait, now, usable)
        run.place = replace(run.place, wait=wait)
        if verdict is Verdict.STABLE:
            self._event(run, "info", f"chamber {chamber.name} stable at {usable:.1f} °C "
                                     f"({spec.describe()}) after {(now - wait.since) / 60:.0f} min")
            self.start_segment(run)
        elif verdict is Verdict.TIMED_OUT:
            last = "no reading" if reading is None else f"{reading.temperature_c:.1f} °C"
            if reading is not None and reading.door_open:
                last += ", door open"
            self._fail(run, f"temperature step {segment.temperature.index}: chamber {chamber.name} did not hold "
                            f"{spec.set_c:g} °C ± {spec.band_c:g} °C for {spec.stable_for_s / 60:g} min within "
                            f"max_wait {spec.max_wait_s / 3600:g} h (last reading: {last}); the cell is at rest, "
                            "nothing runs on the channel")

    def _apply(self, run: ActiveRun, spec: WaitSpec, step: int) -> bool:
        """Send the step's set point once the chamber is the run's to set; False when that failed the run."""
        chamber, wait = run.chamber, run.place.wait
        blocker = self._blocker(run, spec.set_c)
        if blocker is not None:
            refused, why = blocker
            if refused:
                self._fail(run, why)
                return False
            self._note(run, why)
            return True
        now = self.manager.clock.unix()
        if now < self._hold_retry.get(run.run_id, 0.0):
            return True
        try:
            sent = chamber.hold(spec.set_c)
        except SetPointRefused as exc:
            self._fail(run, f"temperature step {step}: chamber {chamber.name} refused {spec.set_c:g} °C: {exc}; the "
                            "cell is at rest, nothing runs on the channel")
            return False
        except ChamberUnavailable as exc:
            if now - wait.since >= spec.max_wait_s:
                self._fail(run, f"temperature step {step}: chamber {chamber.name} could not be set to "
                                f"{spec.set_c:g} °C within max_wait {spec.max_wait_s / 3600:g} h ({exc}); the cell "
                                "is at rest, nothing runs on the channel")
                return False
            # asked again a minute later, not every round: a silent chamber's timeouts would hold it up
            self._hold_retry[run.run_id] = now + WAIT_POLL_S
            self._note(run, f"could not set the chamber: {exc}")
            return True
        self._hold_retry.pop(run.run_id, None)
        run.place = replace(run.place, wait=replace(wait, applied=True, applied_at=now))
        self._persist(run, f"chamber {chamber.name} set to {sent:g} °C")
        return True

    def _blocker(self, run: ActiveRun, set_c: float) -> tuple[bool, str] | None:
        """Why the chamber cannot be set for ``run`` now, and whether never (the run is refused), or ``None``."""
        chamber = run.chamber
        store = self.manager.store
        for channel in chamber.channels:  # a chamber holds a few channels: only their runs are read
            others = [r for r in store.runs(active_only=True, channel=channel, light=True) if r.id != run.run_id]
            if not others:
                continue
            other = others[0]
            place = place_from_row(other)
            if place is None or place.phase != "waiting" or place.wait is None:
                return False, (f"waiting for run {other.id} on channel {other.channel}, which shares chamber "
                               f"{chamber.name}, to reach a temperature step")
            program = StepProgram.from_json(store.run(other.id).program)
            theirs = WaitSpec.of(segments(program)[place.index].temperature).set_c
            if theirs != set_c:
                mine = (run.place.wait.since if run.place and run.place.wait else 0.0, run.run_id)
                if (place.wait.since, other.id) < mine:  # the one that reached its step first keeps the chamber
                    return True, (f"chamber {chamber.name} is shared with run {other.id} on channel "
                                  f"{other.channel}, which waits for {theirs:g} °C; this run asks for {set_c:g} °C. "
                                  "Runs sharing a chamber must agree on its temperature")
                return False, (f"waiting for run {other.id} on channel {other.channel} (chamber {chamber.name}), "
                               f"which asks for {theirs:g} °C, to be refused or to agree")
        return None

    def start_segment(self, run: ActiveRun) -> None:
        """Start the segment after the wait: intent first (the channel's marker), then start, then the handle."""
        place = run.place
        assert place is not None
        segment = run.segments[place.index]
        if segment.program is None:  # a temperature step with nothing after it before the next one (or the end)
            if place.index + 1 < len(run.segments):
                run.place = replace(place.waiting(self.manager.clock.unix()), index=place.index + 1)
                self._persist(run, f"temperature step {segment.temperature.index} done; the next step is "
                                   "another temperature step")
                return
            self.manager.finish_after_wait(run, f"program completed (its last step, temperature step "
                                                f"{segment.temperature.index}, done)")
            return
        marker = run.driver.start_marker()
        now = self.manager.clock.unix()
        started = run.started_unix if run.started_unix is not None else now
        run.place = Place(place.index, "starting", seq0=run.last_seq, time0=max(0.0, now - started - place.idle),
                          cycle0=_cycle0(run.last_record, segment.cycle_step),
                          step0=segment.first_index - 1, marker=marker, idle=place.idle)
        self._persist(run, f"starting segment {place.index + 1} of {len(run.segments)} on {run.driver.channel}")
        try:
            handle = run.driver.start(segment.program, barcode=run.barcode or run.run_id)
        except Refused as exc:
            self._fail(run, f"segment {place.index + 1} could not start: {exc}; nothing runs on the channel")
            return
        except Exception as exc:
            why = str(exc) if isinstance(exc, DriverError) else f"{type(exc).__name__}: {exc}"
            self._note(run, f"start of segment {place.index + 1} failed ({why}); asking the instrument whether it "
                            "started before trying again")
            return
        self._adopt(run, handle, "started")

    def _settle_start(self, run: ActiveRun) -> None:
        """A segment start whose outcome is not known (a failed reply, a restart): the instrument decides."""
        place = run.place
        assert place is not None
        segment = run.segments[place.index]
        handle = run.driver.find_test(segment.program, run.barcode or run.run_id, place.marker)
        if handle is None:
            run.place = replace(place, phase="waiting", marker=None)
            self.start_segment(run)
            return
        run.driver.attach(handle)
        self._adopt(run, handle, "adopted (it had started)")

    def _adopt(self, run: ActiveRun, handle: Any, how: str) -> None:
        place = run.place
        assert place is not None
        run.handle = handle
        run.place = replace(place, phase="running", marker=None, wait=None)
        run.last_status = None
        self._persist(run, f"segment {place.index + 1} of {len(run.segments)} {how}: test {handle.test_id} on "
                           f"{handle.channel}")

    def stop_waiting(self, run: ActiveRun) -> None:
        """A stop asked for while the run waits: it ends once the instrument confirms nothing runs (while nothing
        was ever sent to the channel there is nothing to ask). No start is sent on this path: a segment whose start
        may have reached the channel is looked for and adopted, and the next round stops it as any running test."""
        place = run.place
        assert place is not None
        why = run.stop_requested or "stopped by the operator"
        if place.phase == "waiting" and run.handle is not None and not run.handle.test_id:
            self.manager.end_waiting(run, S.STOPPED, f"{why}; the run was waiting for its chamber, and nothing had "
                                                     "been sent to the channel yet")
            return
        if place.phase == "starting":  # a start was sent and its outcome is unknown: the instrument decides
            segment = run.segments[place.index]
            handle = run.driver.find_test(segment.program, run.barcode or run.run_id, place.marker)
            if handle is not None:
                run.driver.attach(handle)
                self._adopt(run, handle, "adopted (it had started)")
                return
        status = run.driver.status()
        if status.state in ENDED:
            self.manager.end_waiting(run, S.STOPPED, f"{why}; the run was waiting for its chamber, and the "
                                                     f"channel reports '{status.state}'")
            return
        self._note(run, f"channel {run.driver.channel} reports '{status.state}' while the run waits; the stop "
                        "is kept and asked again next round")

    # -- while a segment runs ------------------------------------------------------------------------------------

    def watch(self, runs: list[ActiveRun]) -> None:
        """Read the chamber of each running run once this round (before its records are downloaded, so that the
        trace covers them), let a simulated cell follow it, and raise one alarm when the chamber leaves the band
        of the set point the run's last temperature step asked for (and one note when it is back)."""
        readings: dict[str, Any] = {}
        for run in runs:
            chamber = run.chamber
            if chamber is None or run.done:
                continue
            if chamber.name not in readings:
                readings[chamber.name] = chamber.read()
            reading = readings[chamber.name]
            if reading is not None:
                self.cell_temperature(run.driver, reading.temperature_c)
            wanted = self.set_point(run)
            if wanted is None:
                continue
            band = max(chamber.alarm_band_c, WaitSpec.of(self._last_step(run)).band_c)
            if reading is None or (abs(reading.temperature_c - wanted) <= band and not reading.door_open):
                if run.band_alarmed and reading is not None:
                    run.band_alarmed = False
                    self._event(run, "info", f"chamber {chamber.name} back within {band:g} °C of {wanted:g} °C "
                                             f"({reading.temperature_c:.1f} °C)")
                continue
            if not run.band_alarmed:
                run.band_alarmed = True
                door = "; its door is open" if reading.door_open else ""
                why = (f"chamber {chamber.name} at {reading.temperature_c:.1f} °C, more than {band:g} °C from the "
                       f"set point {wanted:g} °C while the run cycles{door}; its records carry the temperature")
                self._event(run, "alarm", why)
                self.manager.on_alert("temperature", run.run_id, why)

    def _last_step(self, run: ActiveRun) -> Any:
        place = run.place
        if place is None:
            return None
        return next((s.temperature for s in reversed(run.segments[:place.index + 1]) if s.temperature), None)

    def target(self, run: ActiveRun) -> float | None:
        """The set point the run wants of its chamber now: the awaited step's while it waits, else the last one's."""
        if self.waiting(run) and run.place is not None:
            step = run.segments[run.place.index].temperature
            return None if step is None else WaitSpec.of(step).set_c
        return self.set_point(run) if run.segments else None

    def set_point(self, run: ActiveRun) -> float | None:
        """The set point the run's chamber should hold now (``None`` before its first temperature step)."""
        step = self._last_step(run)
        return None if step is None else WaitSpec.of(step).set_c

    # -- temperature of records ---------------------------------------------------------------------------------

    def stamp(self, run: ActiveRun, block: np.ndarray) -> None:
        """Each record's chamber temperature, from the chamber's trace at the record's time."""
        if run.chamber is None or "temperature" not in (block.dtype.names or ()) or not len(block):
            return
        start = run.started_unix if run.started_unix is not None else self.manager.clock.unix()
        idle = run.place.idle if run.place is not None else 0.0
        block["temperature"] = run.chamber.temperatures(start + idle + block["test_time"])

    # -- bookkeeping ----------------------------------------------------------------------------------------------

    def _persist(self, run: ActiveRun, message: str) -> None:
        doc = handle_doc(run.handle) if run.handle is not None else {
            "channel": run.driver.channel, "test_id": "", "barcode": run.barcode or run.run_id, "extra": {}}
        doc["segment"] = run.place.to_doc() if run.place is not None else None
        self.manager.store.set_handle(run.run_id, doc, self.manager.clock.unix(), message)
        run.noted = None

    def _note(self, run: ActiveRun, message: str) -> None:
        """An event once per distinct message while it lasts (not one per round)."""
        if run.noted != message:
            run.noted = message
            self._event(run, "warning", message)

    def _event(self, run: ActiveRun, kind: str, message: str) -> None:
        self.manager.store.add_event(run.run_id, kind, message, self.manager.clock.unix())

    def _fail(self, run: ActiveRun, why: str) -> None:
        self._event(run, "alarm", why)
        self.manager.on_alert("temperature", run.run_id, why)
        self.manager.end_waiting(run, S.FAILED, why)
