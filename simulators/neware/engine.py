"""One simulated BTS channel: executes a parsed step file on a cell model, lazily, under an injected clock.

Nothing ticks in the background of the engine itself. Whoever looks at a channel (a request, or the server's
catch-up worker, :mod:`simulators.neware.catchup`) calls :meth:`ChannelEngine.advance` with the clock's present
time, and the channel catches up: it runs every step that has ended since (``stepping.run_directed``: one
``CellModel.run_step`` call each, which returns the whole recorded trajectory at once) and releases the records
whose time has come. A channel that has not been caught up yet shows its state as far as it has been computed
(its *frontier*), the way a real BTS's live values and uploaded records trail the channel; records are never
approximated, only released later. Each engine has its own lock (``lock``): its cell model runs under it and
never under the server's.

Behaviour follows neware-bts-api.md 2.15, the checklist in section 8 and the semantics of section 9:

* **Control flow.** A step ends when any of its ``Limit/Main`` limits is met (next line), when one of its jump
  conditions holds (``Cnd``: next line, a Step_ID, stop or protect; :mod:`simulators.neware.conditions`), or when a
  protection limit trips (``protect``). Conditions are checked continuously from step time 0, like the limits, so a
  condition that already holds when its step starts ends it at once. A jump out of a loop's range forgets that
  loop's passes (re-entering it starts a fresh count); a jump within keeps them. Control steps (21) hold no
  current and end on their conditions; one with nothing to wait for is passed at once. A program whose jumps go
  round steps that take no time is stopped into ``protect`` after :data:`MAX_IDLE_ENTRIES` such entries.
* **Cycles** are the BTS's loop counter: 1 at the start, +1 each time a Cycle step (5) is reached if any other
  step ran since the last increment (the one real plan in the reference: CC, CV, CC, loop x5 -> cycles 1..5).
  The engine stores it 1-based; the server decides how ``download`` numbers it.
* **Records** follow the BTS grid (``stepping``): step time 0 first, whole multiples of the interval, the exact end
  last; test time repeats at step boundaries. Paused time does not count as test time; after a pause the step's
  grid restarts at the resume (the resumed segment's first record would repeat the pause's and is dropped).
* **Direction** of CV and CCCV steps follows their type (``stepping``: clamped at zero, the step ends there).
* **Protection** limits (``Whole_Prt`` and per-step ``Protect``) trip as soon as they are exceeded by more than the
  file's resolution (0.1 mV, 1e-6 relative in current); ``Delay_Time`` is not simulated; a ``Cap`` upper limit
  applies to the step capacity.
* **Pauses** (Pause step, ``setpause`` now or at a scheduled cycle/step, the operator) cut the step; ``continue``
  resumes it with what remains of its time, capacity and energy limits (a ramp from the voltage it had reached).
* **Log codes** (``downloadlog``): 100000 at the first record, 100001 at the last when the End step is reached,
  102000 when the channel is stopped (Uni-Lab-OS's captures; inquire also shows 102000 on a stopped channel), and
  :data:`LOG_PROTECT` when it trips (the real code is not public: LogCode.csv is not available, reference 2.4).
* A step-level ``Record`` replaces the global one (the reference leaves this open).
* **Temperature.** Each record keeps the cell's temperature its segment was computed at (the model's
  ``temperature``, which ``set_temperature`` changes, as a climate chamber does: from the next segment computed on,
  like the physics); a channel with a thermocouple sends it as ``T1`` (:mod:`simulators.neware.commands`). A cut
  (stop, pause, trip) re-runs its segment from the saved state at that temperature and then puts the model back
  at the temperature it had been set to since.

The work of one :meth:`ChannelEngine.advance` is bounded whatever the step file: at most
:data:`MAX_MOVES_PER_ADVANCE` step entries and about :data:`MAX_RECORDS_PER_ADVANCE` records per call, and a caller's
:class:`Budget` (a wall-time allowance for a whole request) is checked before each model call. A step that could
yield more than :data:`MAX_RECORDS_PER_RUN` records is run in pieces (continued like a resumed pause). A ``stop`` or
``setpause`` that finds the channel behind the clock is recorded as *pending* at the request's time and carried out
exactly there when the channel catches up; meanwhile the channel reports the state asked for.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from protocols.clock import Clock
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
from simulators.cells.engine import COMMON_PARAMETERS
from simulators.neware.conditions import NativeCondition
from simulators.neware.records import COLUMNS, RecordStore
from simulators.neware.stepfile import (
    CONTROL,
    CYCLE,
    END,
    MAX_EXECUTED_STEPS,
    MAX_STEP_S,
    PAUSE,
    NativePlan,
    NativeProtection,
    NativeStep,
    to_program_step,
)
from simulators.neware.stepping import SAMPLE_PERIOD_S, Measurement, direction_of, run_directed

log = logging.getLogger(__name__)

LOG_START, LOG_FINISH = 100000, 100001
#: inquire's code while working, and the log entry of a stop (Uni-Lab-OS captures, reference 9)
LOG_WORKING = LOG_STOP = 102000
#: the log entry of a protection trip: **assumption**, the real code is not public (LogCode.csv)
LOG_PROTECT = 100100

#: step entries (a step started, a loop or control step passed, a long step's next piece) per advance() call:
#: a request never waits for more than this many cell-model calls per channel
MAX_MOVES_PER_ADVANCE = 64
#: the most records one cell-model call may return (a few MB of arrays, tens of ms)
MAX_RECORDS_PER_RUN = 1 << 18
#: records computed per advance() call before it stops starting new work
MAX_RECORDS_PER_ADVANCE = 1 << 18
#: step entries in a row that move no test time (a jump loop of steps that end at once) before the channel trips
MAX_IDLE_ENTRIES = 1000

#: the BTS default record interval when the file says nothing (NW-WEB: 1 s)
DEFAULT_RECORD_S = 1.0

KELVIN_AT_0_DEGC = 273.15
#: the temperature of a cell model that has none (no ``temperature`` parameter): the one the cell models default to
DEFAULT_KELVIN = COMMON_PARAMETERS["temperature"].default


def model_kelvin(model: CellModel | None) -> float:
    """The cell's temperature (K) as its model runs now: the ``temperature`` parameter, which ``set_temperature``
    changes (a climate chamber's set point); :data:`DEFAULT_KELVIN` for a model without one. What a thermocouple on
    the cell (the channel's auxiliary ``T1``) reads."""
    kelvin = getattr(getattr(model, "p", None), "temperature", None)
    return DEFAULT_KELVIN if not isinstance(kelvin, int | float) else float(kelvin)


def bts_energy(step_sign: int, energy: Any, out: np.ndarray | None = None) -> Any:
    """The step energy as a BTS accumulates it: V x |I| dt, from the model's signed integral of I x V dt.

    Capacity is counted unsigned, so energy is too in the current, but the voltage keeps its sign: a plating step
    below 0 V reports a negative energy (V < 0 while |I| flows), which a reader signs by the step type back to
    the positive I x V integral. A step with no fixed direction (rest, control) reports the magnitude. ``out``: the
    array to write it into (a column of the record store; ``energy`` may be it).
    """
    if step_sign:
        return step_sign * energy if out is None else np.multiply(energy, float(step_sign), out=out)
    return np.abs(energy, out=out)


class Budget:
    """A wall-time allowance shared by everything one request asks the channels to compute.

    The clock is the caller's (the server uses a real monotonic clock: the budget exists to answer the client in
    time); ``seconds=None`` never runs out, which keeps as-fast-as-possible dry runs and tests deterministic.
    """

    def __init__(self, clock: Clock | None, seconds: float | None):
        self._clock = clock
        self._deadline = None if clock is None or seconds is None else clock.now() + seconds

    def spent(self) -> bool:
        return self._deadline is not None and self._clock is not None and self._clock.now() >= self._deadline


UNLIMITED = Budget(None, None)


class _Prepared(NamedTuple):
    """What a native step becomes for the cell model (:meth:`ChannelEngine._prepare`)."""

    program: ProgramStep
    n_main: int
    extra: tuple[Termination, ...]
    direction: int
    piece_s: float | None
    limit_s: float


class StepRow(NamedTuple):
    """One ``downloadStepLayer`` row (SI units; the server scales to the wire).

    A tuple of plain numbers, which the cyclic garbage collector stops tracking: a server of 2048 channels keeps
    hundreds of thousands of them, and as tracked objects they lengthened every full collection.
    """

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
    """A native step in execution, possibly split into segments by pauses or pieces."""

    native: NativeStep
    program: ProgramStep
    extra: tuple[Termination, ...]
    n_main: int  # program.until[:n_main] are the step's own limits, the rest its jump conditions
    direction: int
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
    clamped: bool = False  # the direction rule ended the step
    released: int = 0
    #: the cell's temperature (degC) the running segment was computed at: its records' auxiliary temperature
    temperature_c: float = DEFAULT_KELVIN - KELVIN_AT_0_DEGC
    # a long step runs in pieces of ``piece_s`` (None: in one call) up to ``limit_s`` of step time
    piece_s: float | None = None
    limit_s: float = MAX_STEP_S

    @property
    def end(self) -> float:
        """Clock time at which the computed segment ends."""
        return self.segment_start + (self.result.duration if self.result is not None else 0.0)


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
    bound run in one call; only longer ones are cut into pieces, whose lengths are whole multiples of the interval
    so that the grid of a time rule runs on unbroken from piece to piece.
    """
    limit = MAX_STEP_S if native.time_s is None else min(native.time_s, MAX_STEP_S)
    if native.ramp is not None:
        start, end, rate = native.ramp
        limit = min(limit, abs(end - start) / rate)
    time_only = rule.voltage_change is None and rule.current_change is None
    spacing = max(rule.every_s or 0.0, SAMPLE_PERIOD_S) if time_only else SAMPLE_PERIOD_S
    if limit <= MAX_RECORDS_PER_RUN * spacing:
        return None, limit
    piece = MAX_RECORDS_PER_RUN * spacing
    if time_only and rule.every_s:
        piece = rule.every_s * max(1, math.floor(piece / rule.every_s))
    return piece, limit


class ChannelEngine:
    def __init__(
        self,
        model_factory: Callable[[], CellModel],
        *,
        live_refresh_s: float = 5.0,
        measurement: Measurement | None = None,
        noise_key: tuple[int, ...] = (),
    ):
        self._model_factory = model_factory
        self.model: CellModel | None = None
        self.lock = threading.RLock()
        self.live_refresh_s = live_refresh_s
        self.measurement = measurement or Measurement()
        self._rng = np.random.default_rng([self.measurement.seed, *noise_key])
        self.workstatus = "finish"
        self.barcode: str | None = None
        self.testid = 0
        self.plan: NativePlan | None = None
        #: the step file as read at ``start`` (its bytes and the path it was named by): later reads of the test
        #: (the step layer, an attach) never go back to the disk, where the file may have changed or gone
        self.step_file: bytes = b""
        self.step_path: str = ""
        self.records = RecordStore()
        self.step_rows: list[StepRow] = []
        self.log: list[tuple[int, int, float]] = []  # (seqid, code, test time)
        self.test_start = 0.0  # clock time of the start, for atime
        self.protect_reason = ""
        #: a scheduled pause (cycle, step), -1 = any; ``setpause`` with explicit values sets it
        self.pause_at: tuple[int, int] | None = None
        self._reset_execution()
        self._live_cache: tuple[float, Live, bool] | None = None  # (when, values, caught up then)
        self._moves = 0  # work done by the running advance() call
        self._records_made = 0

    def _reset_execution(self) -> None:
        self.position = 1
        self.cycle = 1
        self._ran_since_increment = False
        self._passes: dict[int, int] = {}
        self._stepindex = 0
        self._idle_entries = 0
        self._run: _StepRun | None = None
        self._prepared: dict[int, tuple[NativeStep, NativePlan, _Prepared]] = {}  # step_id -> (step, plan, view)
        self._cursor = 0.0  # clock time at which the next step begins
        self._paused_at = 0.0
        self._test_time = 0.0  # test time at the cursor (excludes paused time)
        self._last: tuple[int | None, str, float, float, float, float, float] | None = None
        self._pending: tuple[str, float] | None = None  # ("stop" | "pause", clock time) not carried out yet

    def _cell(self) -> CellModel:
        if self.model is None:
            self.model = self._model_factory()
        return self.model

    def ensure_cell(self) -> None:
        """Build the channel's cell now if it has none (the server does it ahead of the requests)."""
        self._cell()

    # -- what the channel shows -----------------------------------------------------------------------------

    @property
    def status(self) -> str:
        """The workstatus a client sees: a pending stop or pause shows as done."""
        return self._pending[0] if self._pending is not None else self.workstatus

    def lagging(self, now: float) -> bool:
        """True while the channel's computed state is behind ``now`` (or a command waits to be carried out)."""
        return self._pending is not None or not self._covered(now)

    def _covered(self, when: float) -> bool:
        if self.workstatus != "working":
            return True
        run = self._run
        return run is not None and run.result is not None and run.end > when

    def next_due(self) -> float | None:
        """Clock time from which the channel needs computing, or None while it needs nothing."""
        if self.workstatus != "working":
            return None
        run = self._run
        due = self._cursor if run is None or run.result is None else run.end
        return due if self._pending is None else min(due, self._pending[1])

    @property
    def last_seqid(self) -> int:
        return self.records.count

    def temperature_c(self) -> float:
        """The cell's temperature now (degC), as a thermocouple on it reads: ``inquire``'s live ``T1``."""
        return model_kelvin(self.model) - KELVIN_AT_0_DEGC

    # -- commands -------------------------------------------------------------------------------------------

    def start(
        self, plan: NativePlan, barcode: str, testid: int, now: float, *, step_file: bytes = b"", path: str = ""
    ) -> bool:
        """Start ``plan`` at ``now``; the first step is computed by the next :meth:`advance`."""
        if self._pending is not None:
            self.settle(now)
        if self.workstatus not in ("finish", "stop", "protect"):
            return False
        self.plan, self.barcode, self.testid = plan, barcode, testid
        self.step_file, self.step_path = step_file, path
        self.records.close()
        self.records = RecordStore()
        self.step_rows = []
        self.log = []
        self.protect_reason = ""
        self.pause_at = None
        self._reset_execution()
        self.position = plan.start_step
        self._cursor = now
        self.test_start = now
        self.workstatus = "working"
        self._live_cache = None
        return True

    def stop(self, now: float, budget: Budget = UNLIMITED) -> bool:
        return self._cut_command("stop", now, budget)

    def pause(self, now: float, budget: Budget = UNLIMITED) -> bool:
        return self._cut_command("pause", now, budget)

    def _cut_command(self, kind: str, now: float, budget: Budget) -> bool:
        """Stop or pause at ``now``: at once when the channel is caught up, else pending until it is."""
        self.advance(now, budget)
        if self._pending is not None:
            if kind == "stop" and self._pending[0] == "pause":
                self._pending = ("stop", self._pending[1])  # paused first, then stopped: no records between
                return True
            return False
        if self.workstatus not in (("working", "pause") if kind == "stop" else ("working",)):
            return False
        self._live_cache = None
        if not self._covered(now) or budget.spent():  # carrying it out re-runs the step up to ``now``: a model call
            self._pending = (kind, now)
            return True
        self._carry_out(kind, now)
        return True

    def _carry_out(self, kind: str, at: float) -> None:
        self._cut(at)
        if kind == "stop":
            self._close_run()
            self.workstatus = "stop"
            self._log(LOG_STOP)
        else:
            self.workstatus = "pause"
            self._paused_at = at
        self._live_cache = None

    def settle(self, now: float) -> None:
        """Catch up completely (commands that change the channel's course need its exact present state).

        Every advance() call enters a step or releases records, and the program is finite (its executed steps and
        its steps without time are bounded), so this ends; a pending stop or pause ends it at its own time.
        """
        while self.workstatus == "working" and self.lagging(now):
            self.advance(now)

    def resume(self, now: float) -> bool:
        self.settle(now)
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
        self.settle(now)
        if self.workstatus != "protect":
            return False
        self.workstatus = "stop"
        self._live_cache = None
        return True

    def trip(self, now: float, reason: str = "injected protection") -> bool:
        """Force a protection trip now (fault injection), as a limit would."""
        self.settle(now)
        if self.workstatus not in ("working", "pause"):
            return False
        self._cut(now)
        self._close_run()
        self._protect(reason)
        return True

    def goto(self, step_id: int, now: float) -> bool:
        """Jump to ``step_id`` now (``goto``): the running step ends here; a paused channel stays paused."""
        self.settle(now)
        if self.workstatus not in ("working", "pause") or self.plan is None:
            return False
        if not 1 <= step_id <= len(self.plan.steps):
            return False
        self._cut(now)
        self._close_run()
        self._jump_to(step_id)
        self._cursor = now
        self._live_cache = None
        self.advance(now)
        return True

    def schedule_pause(self, cycle: int, step: int, now: float, budget: Budget = UNLIMITED) -> bool:
        """``setpause``: -1/-1 pauses now; otherwise the channel pauses when it enters that step of that cycle."""
        if cycle == -1 and step == -1:
            return self.pause(now, budget)
        self.advance(now, budget)
        if self.status not in ("working", "pause"):
            return False
        self.pause_at = (cycle, step)
        return True

    def cancel_pause(self) -> bool:
        if self.pause_at is None:
            return False
        self.pause_at = None
        return True

    # -- execution ------------------------------------------------------------------------------------------

    def advance(self, now: float, budget: Budget = UNLIMITED) -> None:
        """Catch up with ``now`` with a bounded amount of work; what is left is done by the next calls."""
        self._moves = 0
        self._records_made = 0
        pending = self._pending
        target = now if pending is None else min(now, pending[1])
        self._run_until(target, budget)
        if pending is not None and self._pending is pending and self._covered(pending[1]):
            self._pending = None
            if self.workstatus == "working":
                self._carry_out(*pending)
            elif pending[0] == "stop" and self.workstatus == "pause":
                self._carry_out("stop", pending[1])

    def _run_until(self, now: float, budget: Budget) -> None:
        while self.workstatus == "working":
            run = self._run
            if run is None:
                if self._spent(budget):
                    return
                self._moves += 1
                self._enter(self._cursor)
                continue
            assert run.result is not None
            end = run.end
            self._release(run, min(now, end) - run.segment_start)
            if end > now:
                return
            self._cursor = end
            if not self._piece_ended(run):
                self._finish_step(run)
            elif self._spent(budget):
                return
            else:
                self._moves += 1
                self._continue_segment(run, end)

    def _spent(self, budget: Budget) -> bool:
        return self._moves >= MAX_MOVES_PER_ADVANCE or self._records_made >= MAX_RECORDS_PER_ADVANCE or budget.spent()

    @staticmethod
    def _piece_ended(run: _StepRun) -> bool:
        """True when the segment stopped only because it was one piece of a longer step."""
        result = run.result
        assert result is not None
        return (
            run.piece_s is not None
            and not run.clamped
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
        self._idle_entries += 1
        if self._idle_entries > MAX_IDLE_ENTRIES:
            self._protect(f"step {native.step_id}: {MAX_IDLE_ENTRIES} steps in a row took no time (a jump loop)")
            return
        if native.step_type == CYCLE:
            self._loop(native)
            return
        if native.step_type == PAUSE:
            self.position += 1
            self.workstatus = "pause"
            self._paused_at = at
            return
        if native.step_type == CONTROL and not native.has_end():
            self.position += 1  # nothing to control and nothing to wait for
            return
        if self.pause_at is not None and self._pause_due(native):
            self.pause_at = None
            self.workstatus = "pause"
            self._paused_at = at
            return
        if self._stepindex >= MAX_EXECUTED_STEPS:
            self._protect(f"step {native.step_id}: the program ran {MAX_EXECUTED_STEPS} steps, the simulator's most")
            return
        self._start_step(native, at)

    def _pause_due(self, native: NativeStep) -> bool:
        assert self.pause_at is not None
        cycle, step = self.pause_at
        return cycle in (-1, self.cycle) and step in (-1, native.step_id)

    def _loop(self, native: NativeStep) -> None:
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

    def _start_step(self, native: NativeStep, at: float) -> None:
        program, n_main, extra, direction, piece_s, limit_s = self._prepare(native)
        self._stepindex += 1
        self._ran_since_increment = True
        run = _StepRun(
            native=native,
            program=program,
            extra=extra,
            n_main=n_main,
            direction=direction,
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

    def _prepare(self, native: NativeStep) -> _Prepared:
        """The model's view of ``native`` under this plan: the same for every entry of the step (a 1000-cycle run
        enters each of its steps a thousand times), so built once per test; the plan and its steps are frozen."""
        plan = self.plan
        assert plan is not None
        cached = self._prepared.get(native.step_id)
        if cached is not None and cached[0] is native and cached[1] is plan:
            return cached[2]
        record = native.record or plan.record
        rule = record.to_rule()
        if rule == RecordRule():
            rule = RecordRule(every_s=DEFAULT_RECORD_S)
        program = to_program_step(native, rule)
        assert program is not None
        n_main = len(program.until)
        if native.conditions:
            terms = tuple(c.termination() for c in native.conditions)
            program = program.model_copy(update={"until": program.until + terms})
        piece_s, limit_s = _pieces(native, rule)
        prepared = _Prepared(
            program,
            n_main,
            _protection_terms(plan.protection, native.protect),
            direction_of(program, native.sign),
            piece_s,
            limit_s,
        )
        self._prepared[native.step_id] = (native, plan, prepared)
        return prepared

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

    def _compute(self, run: _StepRun, program: ProgramStep, max_duration: float | None, first: bool) -> None:
        """Run the segment on the model (BTS grid, direction, measurement) into ``run.result``."""
        model = self._cell()
        run.temperature_c = model_kelvin(model) - KELVIN_AT_0_DEGC
        result, clamped = run_directed(model, program, run.extra, max_duration, run.direction)
        run.result = self.measurement.apply(result, program, self._rng, first=first)
        run.clamped = clamped

    def _start_segment(self, run: _StepRun, at: float, program: ProgramStep, step_time0: float = 0.0) -> None:
        run.segment_start = at
        run.segment_step_time0 = step_time0
        run.released = 0
        max_duration = None if run.piece_s is None else max(0.0, min(run.piece_s, run.limit_s - step_time0))
        try:
            run.state = self._cell().state_dict()
            self._compute(run, program, max_duration, first=step_time0 == 0.0)
            assert run.result is not None
            self._records_made += len(run.result)
        except Exception as exc:  # a step the cell model cannot run alarms the channel, as a hardware fault would
            log.warning("channel model failed on step %d: %s", run.native.step_id, exc)
            run.result = None
            self._run = None
            self._protect(f"step {run.native.step_id}: the cell model cannot run it ({exc})")

    def _continue_segment(self, run: _StepRun, now: float) -> None:
        """Resume a step cut by a pause, or run a long step's next piece, with what remains of its limits.

        A ramp goes on from the voltage it had reached, not from its start again.
        """
        assert run.result is not None
        step_time = run.segment_step_time0 + run.result.duration
        cap = run.segment_cap0 + float(run.result.capacity[-1])
        eng = run.segment_eng0 + float(run.result.energy[-1])
        until = []
        for index, term in enumerate(run.program.until):
            value = term.value
            if term.quantity is Quantity.TIME:
                value -= run.result.duration
            elif term.quantity is Quantity.CAPACITY:
                value -= abs(float(run.result.capacity[-1]))
            elif term.quantity is Quantity.ENERGY:
                value -= abs(float(run.result.energy[-1]))
            if value <= 0:
                # a limit was already met when the pause came: the step is over, by that limit
                self._finish_step(run, ended_by=index)
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
        if run.result is not None:
            run.released = 1  # the segment's first record repeats the instant of the last one released

    def _release(self, run: _StepRun, upto: float) -> None:
        result = run.result
        assert result is not None
        start = run.released
        if start >= len(result.t):  # all released (a finished step is released once more at its end)
            return
        stop = int(result.t.searchsorted(upto, side="right"))
        if stop <= start:
            return
        n = stop - start
        sign = run.native.sign
        rows = self.records.room(n)
        in_place = rows is not None
        if rows is None:  # across chunks: built here, appended in pieces
            rows = {name: np.empty(n, dtype=dtype) for name, dtype in COLUMNS.items()}
        # each column computed into its place in the store: the operations of the plain expressions
        # (step_time = step_time0 + t, cap = |cap0 + capacity|, eng = bts_energy(sign, eng0 + energy)), no temporaries
        step_time = rows["step_time"]
        np.add(result.t[start:stop], run.segment_step_time0, out=step_time)
        np.add(step_time, run.test_time0, out=rows["test_time"])
        cap = rows["cap"]
        np.add(result.capacity[start:stop], run.segment_cap0, out=cap)
        np.abs(cap, out=cap)
        eng = rows["eng"]
        bts_energy(sign, np.add(result.energy[start:stop], run.segment_eng0, out=eng), out=eng)
        rows["volt"][...] = result.voltage[start:stop]
        rows["curr"][...] = result.current[start:stop]
        rows["stepid"][...] = run.native.step_id
        rows["cycleid"][...] = run.cycle
        rows["steptype"][...] = run.native.step_type
        rows["temperature_c"][...] = run.temperature_c
        if in_place:
            self.records.commit(n)
        else:
            self.records.append(rows, n)
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
            kelvin = model_kelvin(model)
            model.load_state(run.state)  # the segment's start, at the temperature it was computed at
            self._compute(run, run.program, max(0.0, elapsed), first=run.segment_step_time0 == 0.0)
            if model_kelvin(model) != kelvin:  # a chamber changed it since: the saved state must not undo that
                model.set_temperature(kelvin)
        self._release(run, run.result.duration)

    def _finish_step(self, run: _StepRun, ended_by: int | None = None) -> None:
        """Close the step and follow what ended it: its limits, a jump condition, or a protection limit."""
        result = run.result
        assert result is not None
        self._release(run, result.duration)
        if ended_by is None and not run.clamped:
            ended_by = result.ended_by
        self._close_run()
        n_until = len(run.program.until)
        if ended_by is not None and ended_by >= n_until:
            term = run.extra[ended_by - n_until]
            self._protect(f"step {run.native.step_id}: protection limit {term.describe()}")
            return
        if ended_by is not None and ended_by >= run.n_main:
            self._follow(run.native.conditions[ended_by - run.n_main], run.native)
            return
        self.position = run.native.step_id + 1

    def _follow(self, condition: NativeCondition, native: NativeStep) -> None:
        action = condition.action
        if action == "stop":
            self.workstatus = "stop"
            self._log(LOG_STOP)
        elif action == "protect":
            self._protect(f"step {native.step_id}: {condition.describe()}")
        elif action == "jump":
            self._jump_to(condition.jump)
        else:
            self.position = native.step_id + 1

    def _jump_to(self, step_id: int) -> None:
        """Go to ``step_id``; loops whose range the jump leaves forget their passes."""
        assert self.plan is not None
        for loop_step in list(self._passes):
            first = self.plan.step(loop_step).loop_start or 1
            if not first <= step_id <= loop_step:
                del self._passes[loop_step]
        self.position = step_id

    def _close_run(self) -> None:
        run = self._run
        if run is None or run.result is None:
            self._run = None
            return
        result = run.result
        step_time = run.segment_step_time0 + result.duration
        if step_time > 0:
            self._idle_entries = 0
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
                eng=bts_energy(run.native.sign, eng),
            )
        )
        self._last = (
            run.native.step_id,
            run.native.api_name,
            float(result.voltage[-1]),
            abs(cap),
            bts_energy(run.native.sign, eng),
            step_time,
            self._test_time,
        )
        self._run = None

    def _log(self, code: int) -> None:
        self.log.append((max(1, self.records.count), code, self._test_time))

    def _protect(self, reason: str) -> None:
        self.workstatus = "protect"
        self.protect_reason = reason
        self._live_cache = None
        self._log(LOG_PROTECT)

    def _finish(self) -> None:
        self.workstatus = "finish"
        self.log.append((self.records.count, LOG_FINISH, self._test_time))
        self._run = None

    # -- reads ----------------------------------------------------------------------------------------------

    def live(self, now: float, budget: Budget = UNLIMITED) -> Live:
        """inquire values, refreshed no faster than ``live_refresh_s`` (the real server's ~5 s)."""
        self.advance(now, budget)
        lagging = self.lagging(now)
        cached = self._live_cache
        if (
            cached is not None
            and now - cached[0] < self.live_refresh_s
            and cached[1].workstatus == self.status
            and (cached[2] or lagging)  # values shown while behind give way as soon as the channel has caught up
        ):
            return cached[1]
        live = self._live_now(now)
        self._live_cache = (now, live, not lagging)
        return live

    def _live_now(self, now: float) -> Live:
        run = self._run
        if self.workstatus == "working" and run is not None and run.result is not None:
            result = run.result
            rel = min(max(0.0, now - run.segment_start), result.duration)
            step_time = run.segment_step_time0 + rel
            live = Live(
                workstatus="working",
                cycle_id=run.cycle,
                step_id=run.native.step_id,
                step_type=run.native.api_name,
                voltage=float(np.interp(rel, result.t, result.voltage)),
                current=float(np.interp(rel, result.t, result.current)),
                capacity=abs(run.segment_cap0 + float(np.interp(rel, result.t, result.capacity))),
                energy=bts_energy(run.native.sign, run.segment_eng0 + float(np.interp(rel, result.t, result.energy))),
                total_time=run.test_time0 + step_time,
                relative_time=step_time,
                log_code=LOG_WORKING,
            )
            if self._pending is None:
                return live
            code = LOG_STOP if self._pending[0] == "stop" else 0
            return replace(live, workstatus=self._pending[0], current=0.0, log_code=code)
        if self.workstatus == "finish" or (self._last is None and run is None):
            return self._idle_live()
        if run is not None and run.result is not None:  # paused inside a step
            result = run.result
            return Live(
                workstatus=self.status,
                cycle_id=run.cycle,
                step_id=run.native.step_id,
                step_type=run.native.api_name,
                voltage=float(result.voltage[-1]),
                current=0.0,
                capacity=abs(run.segment_cap0 + float(result.capacity[-1])),
                energy=bts_energy(run.native.sign, run.segment_eng0 + float(result.energy[-1])),
                total_time=run.test_time0 + run.segment_step_time0 + result.duration,
                relative_time=run.segment_step_time0 + result.duration,
                log_code=LOG_STOP if self.status == "stop" else 0,
            )
        assert self._last is not None
        step_id, name, volt, cap, eng, step_time, test_time = self._last
        status = self.status
        code = LOG_WORKING if status in ("working", "stop") else 0
        return Live(status, self.cycle, step_id, name, volt, 0.0, cap, eng, test_time, step_time, code)

    def _idle_live(self) -> Live:
        """A finished (or never started) channel: the cell's present voltage and zeros (real capture)."""
        try:
            ocv = self._cell().open_circuit_voltage()
        except Exception as exc:  # a cell that cannot be built reads as an empty channel, not a server crash
            log.warning("channel cell model unavailable: %s", exc)
            ocv = 0.0
        return Live(self.status, 1, None, "--", ocv, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
