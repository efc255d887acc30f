"""One simulated BTS channel: executes a parsed step file on a cell model, lazily, under an injected clock.

Nothing ticks in the background. Whenever the server is asked about a channel it calls :meth:`advance` with
the clock's present time, and the channel catches up: it runs every step that has ended since (one
``CellModel.run_step`` call each, which returns the whole recorded trajectory at once) and releases the records
whose time has come. That makes a VirtualClock dry run as fast as the model, and a real-time or scaled server
exactly as correct, with one code path.

Behaviour follows neware-bts-api.md 2.15 and the checklist in section 8. Choices the reference leaves open:

* cycle numbering is the BTS's loop counter: it starts at 1 and increments each time a Cycle step (5) is reached,
  if any other step ran since the last increment. That reproduces the one real plan in the reference (CC, CV,
  CC, loop x5 -> cycles 1..5). It is *not* the step program's rule (which also counts the steps before a loop
  as a cycle of their own); the driver maps cycles itself. ``download`` and ``downloadStepLayer`` both report
  it 1-based (the reference disputes a 0-based download);
* protection limits (``Whole_Prt`` and per-step ``Protect``) trip as soon as they are exceeded by more than the
  file's resolution (0.1 mV, 1e-6 relative in current); ``Delay_Time`` is not simulated; a ``Cap`` upper
  limit applies to the step capacity;
* a pause (Pause step, ``setpause`` or the operator) cuts the step; ``continue`` resumes it with what remains
  of its time, capacity and energy limits (a ramp from the voltage it had reached). Test time does not advance
  while paused;
* a step-level ``Record`` replaces the global one (the reference leaves this open);
* log codes: 100000 at the first record, 100001 at the last record when the End step is reached.

The work of one :meth:`ChannelEngine.advance` is bounded whatever the step file, because it runs inside the server's
event loop: at most :data:`MAX_MOVES_PER_ADVANCE` step entries and about :data:`MAX_RECORDS_PER_ADVANCE` records
per call (a channel that has more to catch up on lags behind the clock and catches up on the next requests, as
reads are lazy anyway), and a step that could yield more than :data:`MAX_RECORDS_PER_RUN` records is run in pieces
of that many (continued like a resumed pause), so no single cell-model call builds an array of absurd size.
The admission check of the step file (``stepfile.check_plan``) bounds the total.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocols.program import (
    Action,
    Comparison,
    LsvStep,
    ProgramStep,
    Quantity,
    RecordRule,
    RestStep,
    Termination,
)
from simulators.cells.base import CellModel, StepResult
from simulators.neware.records import RecordStore
from simulators.neware.stepfile import (
    CONTROL,
    CYCLE,
    END,
    MAX_STEP_S,
    PAUSE,
    NativePlan,
    NativeProtection,
    NativeStep,
    to_program_step,
)

log = logging.getLogger(__name__)

LOG_START, LOG_FINISH = 100000, 100001
LOG_WORKING = 102000

#: step entries (a step started, a loop or control step passed, a long step's next piece) per advance() call:
#: a request never waits for more than this many cell-model calls per channel
MAX_MOVES_PER_ADVANCE = 64
#: the most records one cell-model call may return (a few MB of arrays, tens of ms)
MAX_RECORDS_PER_RUN = 1 << 18
#: records computed per advance() call before it stops starting new work
MAX_RECORDS_PER_ADVANCE = 1 << 18

#: the BTS default record interval when the file says nothing (NW-WEB: 1 s)
DEFAULT_RECORD_S = 1.0

#: the channel's fastest sampling (BTS4000 series: 10 Hz recording; ``totaltime`` has 0.1 s resolution): no two
#: records closer, and a step's first record one period after the switch, so test time strictly increases
SAMPLE_PERIOD_S = 0.1


@dataclass(frozen=True, slots=True)
class StepRow:
    """One ``downloadStepLayer`` row (SI units; the server scales to the wire)."""

    startseqid: int
    endseqid: int
    stepindex: int
    stepid: int
    cycleid: int
    steptype: str
    steptime: float
    end_test_time: float
    startvolt: float
    endvolt: float
    startcurr: float
    endcurr: float
    cap: float
    eng: float


@dataclass(frozen=True, slots=True)
class Live:
    """What ``inquire`` reports."""

    workstatus: str
    cycle_id: int
    step_id: int | None
    step_type: str
    voltage: float
    current: float
    capacity: float
    energy: float
    total_time: float
    relative_time: float
    log_code: int


@dataclass(slots=True)
class _StepRun:
    """A native step in execution, possibly split into segments by pauses."""

    native: NativeStep
    program: ProgramStep
    extra: tuple[Termination, ...]
    stepindex: int
    cycle: int
    first_seq: int
    test_time0: float  # test time when the step began
    start_volt: float = 0.0
    start_curr: float = 0.0
    # the running segment
    segment_start: float = 0.0  # clock time
    segment_step_time0: float = 0.0
    segment_cap0: float = 0.0  # signed Ah before the segment
    segment_eng0: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)
    result: StepResult | None = None
    released: int = 0
    # a long step runs in pieces of ``piece_s`` (None: in one call) up to ``limit_s`` of step time
    piece_s: float | None = None
    limit_s: float = MAX_STEP_S


def _protection_terms(*limits: NativeProtection | None) -> tuple[Termination, ...]:
    terms: list[Termination] = []
    for p in limits:
        if p is None:
            continue
        if p.voltage_max is not None:
            terms.append(_end(Quantity.VOLTAGE, Comparison.GE, p.voltage_max + 1e-4))
        if p.voltage_min is not None:
            terms.append(_end(Quantity.VOLTAGE, Comparison.LE, p.voltage_min - 1e-4))
        bounds = [abs(x) for x in (p.current_upper, p.current_lower) if x is not None]
        if bounds:
            terms.append(_end(Quantity.CURRENT, Comparison.GE, max(bounds) * (1 + 1e-6) + 1e-9))
        if p.capacity_max is not None:
            terms.append(_end(Quantity.CAPACITY, Comparison.GE, p.capacity_max))
    return tuple(terms)


def _end(quantity: Quantity, op: Comparison, value: float) -> Termination:
    return Termination(quantity=quantity, op=op, value=value, then=Action.END)


def _pieces(native: NativeStep, rule: RecordRule) -> tuple[float | None, float]:
    """(piece length or None for one call, step-time limit) for a step run under ``rule``.

    The record count is bounded from above by the step's longest possible time over the closest record spacing
    (the time interval, or the sample period when a change rule may record at every sample). Steps under the
    bound run in one call, exactly as before; only longer ones are cut into pieces.
    """
    limit = MAX_STEP_S if native.time_s is None else min(native.time_s, MAX_STEP_S)
    if native.ramp is not None:
        start, end, rate = native.ramp
        limit = min(limit, abs(end - start) / rate)
    time_only = rule.voltage_change is None and rule.current_change is None
    spacing = max(rule.every_s or 0.0, SAMPLE_PERIOD_S) if time_only else SAMPLE_PERIOD_S
    if limit <= MAX_RECORDS_PER_RUN * spacing:
        return None, limit
    return MAX_RECORDS_PER_RUN * spacing, limit


class ChannelEngine:
    def __init__(self, model_factory: Callable[[], CellModel], *, live_refresh_s: float = 5.0):
        self._model_factory = model_factory
        self.model: CellModel | None = None
        self.live_refresh_s = live_refresh_s
        self.workstatus = "finish"
        self.barcode: str | None = None
        self.testid = 0
        self.plan: NativePlan | None = None
        self.records = RecordStore()
        self.step_rows: list[StepRow] = []
        self.log: list[tuple[int, int, float]] = []  # (seqid, code, test time)
        self.test_start = 0.0  # clock time of the start, for atime
        self.protect_reason = ""
        self._reset_execution()
        self._live_cache: tuple[float, Live] | None = None
        self._moves = 0  # work done by the running advance() call
        self._records_made = 0

    def _reset_execution(self) -> None:
        self.position = 1
        self.cycle = 1
        self._ran_since_increment = False
        self._passes: dict[int, int] = {}
        self._stepindex = 0
        self._run: _StepRun | None = None
        self._cursor = 0.0  # clock time at which the next step begins
        self._paused_at = 0.0
        self._test_time = 0.0  # test time at the cursor (excludes paused time)
        self._last: tuple[int | None, str, float, float, float, float, float] | None = None

    def _cell(self) -> CellModel:
        if self.model is None:
            self.model = self._model_factory()
        return self.model

    # -- commands -------------------------------------------------------------------------------------------

    def start(self, plan: NativePlan, barcode: str, testid: int, now: float) -> bool:
        if self.workstatus not in ("finish", "stop", "protect"):
            return False
        self._cell()
        self.plan, self.barcode, self.testid = plan, barcode, testid
        self.records.close()
        self.records = RecordStore()
        self.step_rows = []
        self.log = []
        self.protect_reason = ""
        self._reset_execution()
        self.position = plan.start_step
        self._cursor = now
        self.test_start = now
        self.workstatus = "working"
        self._live_cache = None
        self.advance(now)
        return True

    def stop(self, now: float) -> bool:
        self.advance(now)
        if self.workstatus not in ("working", "pause"):
            return False
        self._cut(now)
        self._close_run()
        self.workstatus = "stop"
        self._live_cache = None
        return True

    def pause(self, now: float) -> bool:
        self.advance(now)
        if self.workstatus != "working":
            return False
        self._cut(now)
        self.workstatus = "pause"
        self._paused_at = now
        self._live_cache = None
        return True

    def resume(self, now: float) -> bool:
        self.advance(now)
        if self.workstatus != "pause":
            return False
        self._relax(now - self._paused_at)
        self.workstatus = "working"
        self._cursor = now
        run = self._run
        if run is not None and run.result is not None:
            self._continue_segment(run, now)
        self._live_cache = None
        self.advance(now)
        return True

    def clearflag(self, now: float) -> bool:
        self.advance(now)
        if self.workstatus != "protect":
            return False
        self.workstatus = "stop"
        self._live_cache = None
        return True

    def trip(self, now: float, reason: str = "injected protection") -> bool:
        """Force a protection trip now (fault injection), as a limit would."""
        self.advance(now)
        if self.workstatus not in ("working", "pause"):
            return False
        self._cut(now)
        self._close_run()
        self.workstatus = "protect"
        self.protect_reason = reason
        self._live_cache = None
        return True

    # -- execution ------------------------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Catch up with ``now`` with a bounded amount of work; what is left is done by the next calls."""
        self._moves = 0
        self._records_made = 0
        while self.workstatus == "working":
            run = self._run
            if run is None:
                if self._spent():
                    return
                self._moves += 1
                self._enter(self._cursor)
                continue
            assert run.result is not None
            end = run.segment_start + run.result.duration
            self._release(run, min(now, end) - run.segment_start)
            if end > now:
                return
            self._cursor = end
            if not self._piece_ended(run):
                self._finish_step(run)
            elif self._spent():
                return
            else:
                self._moves += 1
                self._continue_segment(run, end)

    def _spent(self) -> bool:
        return self._moves >= MAX_MOVES_PER_ADVANCE or self._records_made >= MAX_RECORDS_PER_ADVANCE

    @staticmethod
    def _piece_ended(run: _StepRun) -> bool:
        """True when the segment stopped only because it was one piece of a longer step."""
        result = run.result
        assert result is not None
        return (
            run.piece_s is not None
            and result.end_reason == "max_duration"
            and result.ended_by is None
            and run.segment_step_time0 + result.duration < run.limit_s - 1e-9
        )

    def _enter(self, at: float) -> None:
        assert self.plan is not None
        if self.position > len(self.plan.steps):
            self._finish()
            return
        native = self.plan.step(self.position)
        if native.step_type == END:
            self._finish()
            return
        if native.step_type == CYCLE:
            if self._ran_since_increment:
                self.cycle += 1
                self._ran_since_increment = False
            assert native.loop_start is not None and native.loop_count is not None
            done = self._passes.get(native.step_id, 0) + 1
            if done < native.loop_count:
                self._passes[native.step_id] = done
                self.position = native.loop_start
            else:
                self._passes.pop(native.step_id, None)
                self.position += 1
            return
        if native.step_type == PAUSE:
            self.position += 1
            self.workstatus = "pause"
            self._paused_at = at
            return
        if native.step_type == CONTROL:
            self.position += 1
            return
        record = native.record or self.plan.record
        rule = record.to_rule()
        if rule == RecordRule():
            rule = RecordRule(every_s=DEFAULT_RECORD_S)
        program = to_program_step(native, rule)
        assert program is not None
        self._stepindex += 1
        self._ran_since_increment = True
        piece_s, limit_s = _pieces(native, rule)
        run = _StepRun(
            native=native,
            program=program,
            extra=_protection_terms(self.plan.protection, native.protect),
            stepindex=self._stepindex,
            cycle=self.cycle,
            first_seq=self.records.count + 1,
            test_time0=self._test_time,
            piece_s=piece_s,
            limit_s=limit_s,
        )
        self._run = run
        self._start_segment(run, at, program)
        if self._run is not None and run.result is not None and len(run.result):
            run.start_volt = float(run.result.voltage[0])
            run.start_curr = float(run.result.current[0])

    def _relax(self, seconds: float) -> None:
        """The cell rests at open circuit while the channel is paused (no records: the channel is not logging)."""
        if seconds <= 0 or self.model is None:
            return
        rest = RestStep(
            index=1,
            until=(Termination(quantity=Quantity.TIME, op=Comparison.GE, value=seconds),),
            record=RecordRule(every_s=seconds),
        )
        try:
            self.model.run_step(rest)
        except Exception as exc:  # relaxation is a refinement; a model that cannot rest keeps its state
            log.warning("cell model could not relax over a pause: %s", exc)

    def _start_segment(self, run: _StepRun, at: float, program: ProgramStep, step_time0: float = 0.0) -> None:
        model = self._cell()
        run.segment_start = at
        run.segment_step_time0 = step_time0
        run.state = model.state_dict()
        run.released = 0
        max_duration = None if run.piece_s is None else max(0.0, min(run.piece_s, run.limit_s - step_time0))
        try:
            run.result = model.run_step(
                program, extra_until=run.extra, max_duration=max_duration, sample_period=SAMPLE_PERIOD_S
            )
            self._records_made += len(run.result)
        except Exception as exc:  # a step the cell model cannot run alarms the channel, as a hardware fault would
            log.warning("channel model failed on step %d: %s", run.native.step_id, exc)
            run.result = None
            self._run = None
            self.workstatus = "protect"
            self.protect_reason = f"step {run.native.step_id}: the cell model cannot run it ({exc})"

    def _continue_segment(self, run: _StepRun, now: float) -> None:
        """Resume a step cut by a pause, or run a long step's next piece, with what remains of its limits.

        A ramp goes on from the voltage it had reached, not from its start again.
        """
        assert run.result is not None
        step_time = run.segment_step_time0 + run.result.duration
        cap = run.segment_cap0 + float(run.result.capacity[-1])
        eng = run.segment_eng0 + float(run.result.energy[-1])
        until = []
        for term in run.program.until:
            value = term.value
            if term.quantity is Quantity.TIME:
                value -= run.result.duration
            elif term.quantity is Quantity.CAPACITY:
                value -= abs(float(run.result.capacity[-1]))
            elif term.quantity is Quantity.ENERGY:
                value -= abs(float(run.result.energy[-1]))
            if value <= 0:
                # a limit was already met when the pause came: the step is over
                self._finish_step(run)
                self._cursor = now
                return
            until.append(term.model_copy(update={"value": value}))
        update: dict[str, Any] = {"until": tuple(until)}
        if isinstance(run.program, LsvStep) and run.program.start is not None:
            start, end = run.program.start, run.program.end
            swept = min(run.program.scan_rate * run.result.duration, abs(end - start))
            update["start"] = start + math.copysign(swept, end - start)
        run.program = run.program.model_copy(update=update)
        run.segment_cap0, run.segment_eng0 = cap, eng
        self._start_segment(run, now, run.program, step_time)
        if run.result is not None and len(run.result) > 1:
            # the new segment's first sample, one sample period in, is off the step's record grid; a segment
            # that short it has only its end sample, which is kept
            run.released = 1

    def _release(self, run: _StepRun, upto: float) -> None:
        result = run.result
        assert result is not None
        stop = int(np.searchsorted(result.t, upto, side="right"))
        start = run.released
        if stop <= start:
            return
        t = result.t[start:stop]
        step_time = run.segment_step_time0 + t
        cap = run.segment_cap0 + result.capacity[start:stop]
        eng = run.segment_eng0 + result.energy[start:stop]
        self.records.append(
            {
                "stepid": run.native.step_id,
                "cycleid": run.cycle,
                "steptype": run.native.step_type,
                "step_time": step_time,
                "test_time": run.test_time0 + step_time,
                "volt": result.voltage[start:stop],
                "curr": result.current[start:stop],
                "cap": np.abs(cap),
                "eng": np.abs(eng),
            },
            stop - start,
        )
        if self.records.count and not self.log:
            self.log.append((1, LOG_START, 0.0))
        run.released = stop

    def _cut(self, now: float) -> None:
        """Cut the running segment at ``now``: re-run it from its saved state with ``max_duration``."""
        run = self._run
        if run is None or run.result is None:
            return
        elapsed = now - run.segment_start
        if elapsed < run.result.duration:
            model = self._cell()
            model.load_state(run.state)
            run.result = model.run_step(
                run.program, extra_until=run.extra, max_duration=max(0.0, elapsed), sample_period=SAMPLE_PERIOD_S
            )
        self._release(run, run.result.duration)

    def _finish_step(self, run: _StepRun) -> None:
        result = run.result
        assert result is not None
        self._release(run, result.duration)
        tripped = result.ended_by is not None and result.ended_by >= len(run.program.until)
        self._close_run()
        if tripped:
            term = run.extra[result.ended_by - len(run.program.until)]  # type: ignore[operator]
            self.workstatus = "protect"
            self.protect_reason = f"step {run.native.step_id}: protection limit {term.describe()}"
            return
        self.position = run.native.step_id + 1

    def _close_run(self) -> None:
        run = self._run
        if run is None or run.result is None:
            self._run = None
            return
        result = run.result
        step_time = run.segment_step_time0 + result.duration
        cap = run.segment_cap0 + float(result.capacity[-1])
        eng = run.segment_eng0 + float(result.energy[-1])
        self._test_time = run.test_time0 + step_time
        self.step_rows.append(
            StepRow(
                startseqid=run.first_seq,
                endseqid=self.records.count,
                stepindex=run.stepindex,
                stepid=run.native.step_id,
                cycleid=run.cycle,
                steptype=run.native.api_name,
                steptime=step_time,
                end_test_time=self._test_time,
                startvolt=run.start_volt,
                endvolt=float(result.voltage[-1]),
                startcurr=run.start_curr,
                endcurr=float(result.current[-1]),
                cap=abs(cap),
                eng=abs(eng),
            )
        )
        self._last = (
            run.native.step_id,
            run.native.api_name,
            float(result.voltage[-1]),
            abs(cap),
            abs(eng),
            step_time,
            self._test_time,
        )
        self._run = None

    def _finish(self) -> None:
        self.workstatus = "finish"
        self.log.append((self.records.count, LOG_FINISH, self._test_time))
        self._run = None

    # -- reads ----------------------------------------------------------------------------------------------

    def live(self, now: float) -> Live:
        """inquire values, refreshed no faster than ``live_refresh_s`` (the real server's ~5 s)."""
        self.advance(now)
        cached = self._live_cache
        if cached is not None and now - cached[0] < self.live_refresh_s and cached[1].workstatus == self.workstatus:
            return cached[1]
        live = self._live_now(now)
        self._live_cache = (now, live)
        return live

    def _live_now(self, now: float) -> Live:
        run = self._run
        if self.workstatus == "working" and run is not None and run.result is not None:
            result = run.result
            rel = min(max(0.0, now - run.segment_start), result.duration)
            step_time = run.segment_step_time0 + rel
            return Live(
                workstatus="working",
                cycle_id=run.cycle,
                step_id=run.native.step_id,
                step_type=run.native.api_name,
                voltage=float(np.interp(rel, result.t, result.voltage)),
                current=float(np.interp(rel, result.t, result.current)),
                capacity=abs(run.segment_cap0 + float(np.interp(rel, result.t, result.capacity))),
                energy=abs(run.segment_eng0 + float(np.interp(rel, result.t, result.energy))),
                total_time=run.test_time0 + step_time,
                relative_time=step_time,
                log_code=LOG_WORKING,
            )
        if self.workstatus == "finish" or (self._last is None and run is None):
            try:
                ocv = self._cell().open_circuit_voltage()
            except Exception as exc:  # a cell that cannot be built reads as an empty channel, not a server crash
                log.warning("channel cell model unavailable: %s", exc)
                ocv = 0.0
            return Live(
                "finish" if self.workstatus == "finish" else self.workstatus,
                1,
                None,
                "--",
                ocv,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0,
            )
        if run is not None and run.result is not None:  # paused inside a step
            result = run.result
            return Live(
                workstatus=self.workstatus,
                cycle_id=run.cycle,
                step_id=run.native.step_id,
                step_type=run.native.api_name,
                voltage=float(result.voltage[-1]),
                current=0.0,
                capacity=abs(run.segment_cap0 + float(result.capacity[-1])),
                energy=abs(run.segment_eng0 + float(result.energy[-1])),
                total_time=run.test_time0 + run.segment_step_time0 + result.duration,
                relative_time=run.segment_step_time0 + result.duration,
                log_code=0,
            )
        assert self._last is not None
        step_id, name, volt, cap, eng, step_time, test_time = self._last
        return Live(self.workstatus, self.cycle, step_id, name, volt, 0.0, cap, eng, test_time, step_time, 0)

    @property
    def last_seqid(self) -> int:
        return self.records.count
