"""Nominal durations and record counts, before anything runs.

Fixed-time and fixed-capacity steps are exact (capacity / current). A voltage-limited step depends on the cell, so
it is estimated with a charge-balance rule and marked as an estimate:

* the cell's charge ``q`` runs from 0 (at its lower voltage limit) to its capacity (at the upper limit); a cell
  starts at the end its ``ocv`` is nearer to (assembled full cells start discharged, a host half cell starts
  delithiated at the top), or at 0 when no ``ocv`` is given;
* a voltage-limited charge passes ``capacity - q`` and a voltage-limited discharge passes ``q``, each then sets
  ``q`` to that end; fixed-capacity and fixed-time steps move ``q`` by the charge they pass (plating moves it below
  0, so the strip that follows is estimated to return that charge as well);
* the CV phase of a CCCV step is assumed to add :data:`CV_TAIL_FRACTION` of the CC phase's time;
* an EIS point takes ``max(EIS_MIN_POINT_S, (0.1 + measures) / f)`` (a 0.1-period settle, then the averaged
  periods), a sweep takes its path length over the scan rate;
* any ``time`` limit caps the estimate. Steps with nothing to estimate from (a rest until a voltage) are unknown.

Records: one at each step's start and end plus one every ``every_s``; one per EIS frequency. Change-triggered
records (``voltage_change``) add the swept voltage over the threshold for sweeps only, so counts are nominal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from protocols.cells import Cell
from protocols.program import (
    CaStep,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    LsvStep,
    PowerStep,
    ProgramStep,
    Quantity,
    RestStep,
    StepProgram,
    walk,
)

CV_TAIL_FRACTION = 0.1
EIS_MIN_POINT_S = 0.5


@dataclass
class StepEstimate:
    index: int
    passes: int = 0
    first_s: float | None = None
    total_s: float = 0.0
    end_s: float = 0.0
    exact: bool = True
    known: bool = True
    records: int = 0


@dataclass
class PlanEstimate:
    total_s: float
    exact: bool
    complete: bool
    records: int
    steps: dict[int, StepEstimate] = field(default_factory=dict)
    executions: int = 0


@dataclass
class _Balance:
    capacity: float | None
    q: float


def _time_cap(step: ProgramStep) -> float | None:
    t = step.limit(Quantity.TIME)
    return t.value if t is not None else None


def _cap(value: float | None, limit: float | None) -> tuple[float | None, bool]:
    """``(duration, limited_by_time)``."""
    if value is None:
        return limit, limit is not None
    if limit is not None and limit < value:
        return limit, True
    return value, False


def _current_step(step: CurrentStep, balance: _Balance) -> tuple[float | None, bool]:
    current = abs(step.current)
    capacity_limit = step.limit(Quantity.CAPACITY)
    voltage_ended = step.limit(Quantity.VOLTAGE) is not None or step.hold_voltage is not None
    exact = True
    duration: float | None = None
    if capacity_limit is not None:
        duration = capacity_limit.value / current * 3600
    if voltage_ended:
        if balance.capacity is None:
            needed = None
        elif step.current > 0:
            needed = max(0.0, balance.capacity - balance.q)
        else:
            needed = max(0.0, balance.q)
        if needed is not None:
            by_voltage = needed / current * 3600
            if step.hold_voltage is not None:
                by_voltage *= 1 + CV_TAIL_FRACTION
            if duration is None or by_voltage < duration:
                duration, exact = by_voltage, False
        elif duration is None:
            exact = False
    duration, by_time = _cap(duration, _time_cap(step))
    if by_time:
        exact = exact and not voltage_ended
    if duration is not None:
        passed = current * duration / 3600
        if voltage_ended and not by_time and balance.capacity is not None and (
                capacity_limit is None or duration < capacity_limit.value / current * 3600):
            balance.q = balance.capacity if step.current > 0 else 0.0
        else:
            balance.q += math.copysign(passed, step.current)
    return duration, exact


def _sweep_length(step: CvStep | LsvStep, ocv: float | None) -> tuple[float, bool]:
    if isinstance(step, LsvStep):
        start = step.start if step.start is not None else ocv
        if start is None:
            return 0.0, False
        return abs(step.end - start), step.start is not None
    start = step.start if step.start is not None else ocv
    exact = start is not None
    start = start if start is not None else step.vertex_1
    span = abs(step.vertex_2 - step.vertex_1)
    end = step.end if step.end is not None else start
    length = abs(start - step.vertex_1) + span + (step.cycles - 1) * 2 * span + abs(step.vertex_2 - end)
    return length, exact


def _eis_duration(step: EisStep) -> float:
    return sum(max(EIS_MIN_POINT_S, (0.1 + step.measures_per_point) / f) for f in step.frequencies())


def estimate_step(step: ProgramStep, balance: _Balance, cell: Cell | None) -> tuple[float | None, bool]:
    """(duration in s or None when unknown, exact?) and updates the charge balance."""
    if isinstance(step, CurrentStep):
        return _current_step(step, balance)
    if isinstance(step, RestStep | HoldStep | CaStep):
        limit = _time_cap(step)
        others = [t for t in step.until if t.quantity is not Quantity.TIME]
        return limit, not others
    if isinstance(step, PowerStep):
        if cell is None or cell.voltage_min is None or cell.voltage_max is None:
            return _time_cap(step), False
        mean_v = (cell.voltage_min + cell.voltage_max) / 2
        fake = CurrentStep(index=step.index, kind="charge" if step.power > 0 else "discharge",
                           current=step.power / mean_v, until=step.until)
        duration, _ = _current_step(fake, balance)
        return duration, False
    if isinstance(step, EisStep):
        return _eis_duration(step), False
    if isinstance(step, CvStep | LsvStep):
        length, exact = _sweep_length(step, cell.ocv if cell else None)
        return length / step.scan_rate, exact
    return None, False


def _records(step: ProgramStep, duration: float | None, program: StepProgram) -> int:
    if isinstance(step, EisStep):
        return len(step.frequencies())
    if duration is None:
        return 2
    rule = step.record
    count = 2
    if rule.every_s:
        count += int(duration // rule.every_s)
    if rule.voltage_change and isinstance(step, CvStep | LsvStep):
        count += int(duration * step.scan_rate / rule.voltage_change)
    return count


def estimate_program(program: StepProgram, cell: Cell | None) -> PlanEstimate:
    capacity = cell.capacity if cell else None
    start_q = 0.0
    if cell and capacity and cell.ocv is not None and cell.voltage_min is not None and cell.voltage_max is not None:
        start_q = capacity if cell.ocv > (cell.voltage_min + cell.voltage_max) / 2 else 0.0
    balance = _Balance(capacity=capacity, q=start_q)
    steps = {s.index: StepEstimate(index=s.index) for s in program.steps}
    elapsed, exact, complete, records, executions = 0.0, True, True, 0, 0
    for executed in walk(program):
        step = executed.step
        duration, step_exact = estimate_step(step, balance, cell)
        est = steps[step.index]
        est.passes += 1
        executions += 1
        if duration is None:
            est.known = complete = False
            step_exact = False
        else:
            elapsed += duration
            est.total_s += duration
            if est.first_s is None:
                est.first_s = duration
        est.exact = est.exact and step_exact
        exact = exact and step_exact
        est.end_s = elapsed
        n = _records(step, duration, program)
        est.records += n
        records += n
    for s in program.steps:
        est = steps[s.index]
        if est.passes == 0:
            est.end_s = max((e.end_s for i, e in steps.items() if i < s.index), default=0.0)
    return PlanEstimate(total_s=elapsed, exact=exact, complete=complete, records=records, steps=steps,
                        executions=executions)
