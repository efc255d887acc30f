"""Li plating figures (P1, P2 on a host or on Cu): host lithiation, and per plating and stripping step.

Which steps are which comes from the program, as the library protocols are shaped (rest; discharge to 0 V, which
lithiates a host; then discharges that plate Li and charges that strip it):

* the **lithiation step** is the first discharge step that ends at a voltage at or below
  :data:`LITHIATION_CUTOFF_V` (0 V vs Li/Li+ in P1 and P2); its capacity is the host lithiation capacity (on Cu,
  the little charge the surface and its SEI take before Li plates);
* **plating steps** are the discharge steps after it, **stripping steps** the charge steps after it. A program
  without a lithiation step has plating steps where a discharge runs below 0 V (its median voltage is negative:
  Li plates only there), and stripping steps are the charge steps after the first of them.

Per plating step run (the voltage is the working electrode against Li, negative while Li plates). Li plates only
below 0 V: a step that starts above (a host delithiated by the last strip) first lithiates the host, so the
plating part starts at the step's first record below 0 V, its **onset**; fractions below are of the charge
passed from the onset to the step's end:

* ``dip_voltage_v``: the most negative voltage over the first half (:data:`DIP_WINDOW`) of the plating part,
  where the nuclei form. On Cu the dip comes within the first per cent; on a lithiophilic host whose surface
  reached 0 V before its bulk was full, only once the host fills, a fifth of the way in. The window stops
  before a late drift (Li growing beyond the host's room) can pass for a dip;
* ``plateau_voltage_v``: the median voltage over the middle half of the plating part (:data:`PLATEAU_WINDOW`,
  25 % to 75 %), the growth plateau;
* ``nucleation_overpotential_v``: plateau minus dip voltage (>= 0), the extra overpotential nucleation needs over
  growth, as Li||Cu studies define it (Yan et al., Nat. Energy 1 (2016) 16010; Pei et al., Nano Lett. 17 (2017)
  1132); 0 when the profile has no dip;
* ``plateau_overpotential_v``: minus the plateau voltage, the overpotential of growth against Li/Li+;
* ``plated_ah``: the step's whole charge (what the protocol set), and ``above_zero_ah``: the part of it passed
  before the onset, which went into the host. A step that never went below 0 V plated nothing: its voltages
  and overpotentials are NaN (None in JSON).

Per stripping step run: the stripped capacity, the median voltage over its middle half, and where it ended: the
last record's voltage, step time and capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from protocols.program import Comparison, CurrentStep, Quantity, StepProgram
from station.analysis.run_data import RunData
from station.analysis.steps import StepRuns, step_runs

LITHIATION_CUTOFF_V = 0.05
DIP_WINDOW = 0.5
PLATEAU_WINDOW = (0.25, 0.75)


@dataclass(frozen=True)
class PlatingStep:
    cycle: int
    step: int
    plated_ah: float
    duration_s: float
    dip_voltage_v: float
    dip_capacity_ah: float
    """charge the step had passed when the dip was reached"""
    above_zero_ah: float
    plateau_voltage_v: float
    nucleation_overpotential_v: float
    plateau_overpotential_v: float
    plated_ah_per_m2: float | None = None


@dataclass(frozen=True)
class StrippingStep:
    cycle: int
    step: int
    stripped_ah: float
    plateau_voltage_v: float
    end_voltage_v: float
    end_time_s: float
    end_capacity_ah: float
    stripped_ah_per_m2: float | None = None


@dataclass(frozen=True)
class PlatingResult:
    lithiation_step: int | None
    lithiation_ah: float | None
    """the host lithiation capacity: the charge of the discharge to 0 V (None: no such step ran)"""
    lithiation_end_voltage_v: float | None
    lithiation_ah_per_m2: float | None
    plating: list[PlatingStep] = field(default_factory=list)
    stripping: list[StrippingStep] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready: SI floats (capacities in Ah, areal in Ah/m^2), keys carry their unit, NaN as None."""
        doc = _plain(self)
        doc["plating"] = [_plain(s) for s in self.plating]
        doc["stripping"] = [_plain(s) for s in self.stripping]
        return doc


def _plain(item: object) -> dict:
    """A dataclass's own fields as a dict, NaN made None (standard JSON has no NaN); shallow, so thousands of
    steps convert fast."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in vars(item).items()}


def lithiation_step(program: StepProgram) -> int | None:
    """The index of the first discharge step that ends at or below :data:`LITHIATION_CUTOFF_V`, if any."""
    for step in program.steps:
        if isinstance(step, CurrentStep) and step.current < 0:
            limit = step.limit(Quantity.VOLTAGE)
            if limit is not None and limit.op is Comparison.LE and limit.value <= LITHIATION_CUTOFF_V:
                return step.index
    return None


def analyze_plating(data: RunData) -> PlatingResult | None:
    """The plating figures of the run, or None when its program has no lithiation and no plating step (or none
    of them has passed charge yet)."""
    program, records = data.program, data.records
    runs = step_runs(records, program)
    lith = lithiation_step(program)
    current_kind = _current_kinds(program, runs)
    plating_rows, stripping_rows = _plating_and_stripping(runs, records, current_kind, lith)
    if lith is None and not plating_rows:
        return None
    lith_rows = np.flatnonzero((runs.step == lith) & (runs.capacity < 0)) if lith is not None else []
    if not (len(lith_rows) or plating_rows or stripping_rows):  # a plating program that has passed no charge yet
        return None
    area = data.cell.area or None
    lith_ah = lith_v = None
    columns = _Columns(np.ascontiguousarray(records["voltage"], dtype=float), np.abs(records["capacity"]),
                       np.ascontiguousarray(records["step_time"], dtype=float))
    if len(lith_rows):
        k = lith_rows[0]
        lith_ah = float(-runs.capacity[k])
        lith_v = float(records["voltage"][runs.end[k]])
    return PlatingResult(
        lithiation_step=lith, lithiation_ah=lith_ah, lithiation_end_voltage_v=lith_v,
        lithiation_ah_per_m2=lith_ah / area if lith_ah is not None and area else None,
        plating=[_plating(columns, runs, k, area) for k in plating_rows],
        stripping=[_stripping(columns, runs, k, area) for k in stripping_rows])


def _current_kinds(program: StepProgram, runs: StepRuns) -> np.ndarray:
    """+1 for runs of a charge step, -1 for a discharge step, 0 otherwise (by the program, not the data)."""
    sign = np.zeros(len(program.steps) + 1)
    for step in program.steps:
        if isinstance(step, CurrentStep):
            sign[step.index - 1] = 1.0 if step.current > 0 else -1.0
    position = np.where((runs.step >= 1) & (runs.step <= len(program.steps)), runs.step - 1, len(program.steps))
    return sign[position]


def _plating_and_stripping(runs: StepRuns, records: np.ndarray, kind: np.ndarray,
                           lith: int | None) -> tuple[list[int], list[int]]:
    moved = runs.capacity != 0
    if lith is not None:
        first = np.flatnonzero((runs.step == lith) & moved)
        after = np.arange(len(runs)) > first[0] if len(first) else np.zeros(len(runs), dtype=bool)
        plating = np.flatnonzero(after & (kind < 0) & (runs.step != lith) & moved)
        stripping = np.flatnonzero(after & (kind > 0) & moved)
        return plating.tolist(), stripping.tolist()
    below = [k for k in np.flatnonzero((kind < 0) & moved)
             if np.median(records["voltage"][runs.start[k]:runs.end[k] + 1]) < 0]
    if not below:
        return [], []
    stripping = np.flatnonzero((np.arange(len(runs)) > below[0]) & (kind > 0) & moved)
    return below, stripping.tolist()


def _fraction_rows(q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Rows whose charge lies within [lo, hi] of the way from ``q[0]`` to ``q[-1]`` (q growing)."""
    span = q[-1] - q[0]
    return np.flatnonzero((q >= q[0] + lo * span) & (q <= q[0] + hi * span))


def _plateau(volts: np.ndarray, q: np.ndarray) -> float:
    """Median voltage over the middle of the curve; the voltage half-way when no record lies there."""
    middle = _fraction_rows(q, *PLATEAU_WINDOW)
    if len(middle):
        return _median(volts[middle])
    return float(np.interp(0.5 * (q[0] + q[-1]), q, volts))


class _Columns(NamedTuple):
    """The record fields the per-step figures read, each pulled out of the structured array once (slicing plain
    float arrays per step is what keeps thousands of steps fast)."""

    voltage: np.ndarray
    charge: np.ndarray
    """|capacity|: the charge passed since the step's start, growing"""
    step_time: np.ndarray


def _median(values: np.ndarray) -> float:
    """The median (the mean of the two middle values for an even count), as :func:`numpy.median` gives it, without
    its per-call overhead: thousands of steps each take one."""
    ordered = np.sort(values)
    n = len(ordered)
    return float(ordered[n // 2]) if n % 2 else float(0.5 * (ordered[n // 2 - 1] + ordered[n // 2]))


def _plating(columns: _Columns, runs: StepRuns, k: int, area: float | None) -> PlatingStep:
    sl = slice(runs.start[k], runs.end[k] + 1)
    volts, q = columns.voltage[sl], columns.charge[sl]
    plated = float(-runs.capacity[k])
    below = np.flatnonzero(volts < 0)
    if len(below) == 0:  # the step never went below 0 V: all its charge went into the host, no Li plated
        nan = float("nan")
        return PlatingStep(cycle=int(runs.cycle[k]), step=int(runs.step[k]), plated_ah=plated,
                           duration_s=float(columns.step_time[sl][-1]), dip_voltage_v=nan, dip_capacity_ah=nan,
                           above_zero_ah=float(q[-1]), plateau_voltage_v=nan, nucleation_overpotential_v=nan,
                           plateau_overpotential_v=nan, plated_ah_per_m2=plated / area if area else None)
    onset = int(below[0])
    v_on, q_on = volts[onset:], q[onset:]
    early = _fraction_rows(q_on, 0.0, DIP_WINDOW)
    at = early[np.argmin(v_on[early])]
    dip, plateau = float(v_on[at]), _plateau(v_on, q_on)
    return PlatingStep(cycle=int(runs.cycle[k]), step=int(runs.step[k]), plated_ah=plated,
                       duration_s=float(columns.step_time[sl][-1]), dip_voltage_v=dip, dip_capacity_ah=float(q_on[at]),
                       above_zero_ah=float(q[onset]), plateau_voltage_v=plateau,
                       nucleation_overpotential_v=max(plateau - dip, 0.0), plateau_overpotential_v=-plateau,
                       plated_ah_per_m2=plated / area if area else None)


def _stripping(columns: _Columns, runs: StepRuns, k: int, area: float | None) -> StrippingStep:
    sl = slice(runs.start[k], runs.end[k] + 1)
    volts, q = columns.voltage[sl], columns.charge[sl]
    stripped = float(runs.capacity[k])
    return StrippingStep(cycle=int(runs.cycle[k]), step=int(runs.step[k]), stripped_ah=stripped,
                         plateau_voltage_v=_plateau(volts, q), end_voltage_v=float(volts[-1]),
                         end_time_s=float(columns.step_time[sl][-1]), end_capacity_ah=float(q[-1]),
                         stripped_ah_per_m2=stripped / area if area else None)
