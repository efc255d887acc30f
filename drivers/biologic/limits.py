"""The limit tests of CALIMIT, CPLIMIT and VSCANLIMIT: the ``TestN_Config`` bit-field, and which of a protocol's
safety limits each step's technique carries.

Bit-field (reference section 3.9): bit 0 active, bit 1 logic (0 OR, 1 AND with the tests before it), bits 2-4
comparison (0 "<", 1 ">"), bits 5 and up the variable (0 Ewe, 1 AUX1, 2 AUX2, 3 I). Written LSB-first:
easy-biologic wrote multi-bit fields MSB-first and so encoded AUX2 as AUX1.

Safety inside the instrument. EClib has no channel-wide protection: the "Safety Limits" block exists only in
EC-Lab's own settings files (route B, reference sections 1.3 and 5.1). What stops a Development Package channel
on its own is a limit test on a step whose ``Exit_Cond`` is 2, "stop experiment" (section 3.4); codes 0 and 1 only
move on to the next step or technique. So every step whose technique takes limit tests carries the protocol's
safety limits as extra tests OR-ed after its own, with ``Exit_Cond`` 2, and the firmware stops the channel at the
first acquisition that breaks one, whatever the station's poll period. The reference bounds what fits:

* One ``Exit_Cond`` per step serves all its tests (section 3.4). A step whose own ends go on ("charge until
  4.2 V, then discharge") cannot also stop the channel on a safety test: it keeps its own tests, and a safety
  limit it cannot carry relies on polling. A rising end below ``voltage_max`` (a falling one above
  ``voltage_min``, an ``|I| >=`` end below ``current_max``) ends the step before that safety limit can be
  reached; that is reported as covered by the step's own limit.
* Three tests per step (sections 3.4, 3.9), combined left to right: the step's own AND-ed ``|I| <`` pairs come
  first so that "(A and B) or C" reads the same whichever way the firmware groups them; safety tests that do not
  fit rely on polling.
* OCV, PEIS/GEIS and CV take no limit tests (sections 3.1, 3.5-3.7). ``E_Range``/``I_Range`` are measurement
  ranges that saturate, not limits that stop (section 2.10). Such steps rely on polling for whatever their
  control does not bound (a CV sweeps only between its vertices; an OCV passes no current).
* Temperature, charge and durations have no test variable (section 3.9 lists Ewe, AUX1, AUX2 and I): polling.

"Polling" means the station's check of every downloaded block and the driver's per-record check
(:mod:`drivers.biologic.records`), which stop the channel within one poll of the breach.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from protocols.program import (
    Action,
    CaStep,
    Comparison,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    LoopStep,
    LsvStep,
    ProgramStep,
    Quantity,
    RestStep,
    SafetyLimits,
    StepProgram,
    Termination,
)

MAX_LIMIT_TESTS = 3
"""Limit tests per step of a limit technique (``Test1..Test3``, reference section 3.4)."""


class LimitVariable(IntEnum):
    EWE = 0
    AUX1 = 1
    AUX2 = 2
    I = 3  # noqa: E741 - the vendor's name for the current


class LimitComparison(IntEnum):
    LT = 0
    GT = 1


def single(value: float) -> float:
    """``value`` as the single-precision number the instrument holds (``TestN_Value`` is a single, section 3.4)."""
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:  # beyond the single range: the nearest single is infinite
        return math.copysign(math.inf, value)


@dataclass(frozen=True, slots=True)
class LimitTest:
    variable: LimitVariable
    comparison: LimitComparison
    value: float
    and_previous: bool = False

    def config(self) -> int:
        return 1 | (int(self.and_previous) << 1) | (int(self.comparison) << 2) | (int(self.variable) << 5)

    @classmethod
    def from_config(cls, config: int, value: float) -> LimitTest | None:
        """Decode a config word; ``None`` for an inactive test."""
        if not config & 1:
            return None
        return cls(
            LimitVariable((config >> 5) & 0x7FFFFFF),
            LimitComparison((config >> 2) & 0b111),
            value,
            bool(config & 0b10),
        )

    def holds(self, ewe: float, current: float) -> bool:
        """Whether this test alone holds for a recorded point, compared as the instrument compares.

        The recorded words are the instrument's own singles, so a record breaks the test exactly when the
        instrument saw it break: no tolerance is needed, and a point exactly at the limit does not count. AUX
        inputs are not in the records: such a test never holds here.
        """
        measured = {LimitVariable.EWE: ewe, LimitVariable.I: current}.get(self.variable)
        if measured is None:
            return False
        limit = single(self.value)
        return measured > limit if self.comparison is LimitComparison.GT else measured < limit

    def describe(self) -> str:
        name, unit = ("Ewe", "V") if self.variable is LimitVariable.EWE else (self.variable.name, "A")
        if self.variable in (LimitVariable.AUX1, LimitVariable.AUX2):
            unit = "V"
        return f"{name} {'>' if self.comparison is LimitComparison.GT else '<'} {self.value:g} {unit}"


def termination_tests(terminations: Sequence[Termination]) -> list[LimitTest]:
    """A step's own ends as limit tests: |I| pairs (AND-ed or OR-ed) first, then voltages OR-ed onto them."""
    tests: list[LimitTest] = []
    for t in terminations:
        if t.quantity is Quantity.CURRENT:
            if t.op is Comparison.LE:  # -x < I < x
                tests += [
                    LimitTest(LimitVariable.I, LimitComparison.LT, t.value),
                    LimitTest(LimitVariable.I, LimitComparison.GT, -t.value, and_previous=True),
                ]
            else:
                tests += [
                    LimitTest(LimitVariable.I, LimitComparison.GT, t.value),
                    LimitTest(LimitVariable.I, LimitComparison.LT, -t.value),
                ]
    for t in terminations:
        if t.quantity is Quantity.VOLTAGE:
            comparison = LimitComparison.LT if t.op is Comparison.LE else LimitComparison.GT
            tests.append(LimitTest(LimitVariable.EWE, comparison, t.value))
    return tests


# -- which safety limits each step's technique carries ---------------------------------------------------------


class Enforcement(StrEnum):
    INSTRUMENT = "instrument"
    """A limit test with ``Exit_Cond`` "stop experiment": the firmware stops the channel within one acquisition."""
    CONTROL = "control"
    """The technique holds the quantity inside the limit (the set current of a CP, the vertices of a CV)."""
    STEP_LIMIT = "step limit"
    """The step's own tighter end stops the step before the safety limit can be reached."""
    POLLING = "polling"
    """Only the station's and the driver's check of downloaded records watch it: a breach stops within a poll."""


@dataclass(frozen=True, slots=True)
class LimitCoverage:
    limit: str
    """The :class:`~protocols.program.SafetyLimits` field, e.g. ``voltage_max``."""
    enforcement: Enforcement
    reason: str


@dataclass(frozen=True, slots=True)
class StepSafety:
    """How one step's technique enforces each safety limit the program sets, and the tests it adds for them."""

    step_index: int
    tests: tuple[LimitTest, ...] = ()
    """Safety tests appended after the step's own tests; non-empty means the step's ``Exit_Cond`` is "stop"."""
    coverage: tuple[LimitCoverage, ...] = field(default_factory=tuple)

    @property
    def polled(self) -> tuple[str, ...]:
        """The safety limits that only polling watches on this step."""
        return tuple(c.limit for c in self.coverage if c.enforcement is Enforcement.POLLING)

    def describe(self) -> list[str]:
        return [f"step {self.step_index}: {c.limit} by {c.enforcement.value}: {c.reason}" for c in self.coverage]


_ONE_EXIT = (
    "the step's own ends go on to the next step and a Biologic step has one Exit_Cond for all its limit tests "
    "(reference 3.4), so it cannot also stop the channel"
)
_NO_VARIABLE = {
    "temperature_max": "limit tests watch only Ewe, AUX1, AUX2 and I (reference 3.9)",
    "capacity_max": "limit tests have no charge variable (reference 3.9)",
    "step_duration_max": "a Duration_step end goes on to the next step; only limit tests can stop (reference 3.4)",
    "run_duration_max": "EClib has no whole-run timer (reference 1.3)",
}


class _Plan:
    """Collects one step's coverage; safety tests go in while the technique's three test slots allow."""

    def __init__(self, step: ProgramStep, safety: SafetyLimits, own: Sequence[Termination] = ()):
        self.step, self.safety = step, safety
        self.own = list(own)
        self.own_count = len(termination_tests(self.own))
        self.own_goes_on = bool(self.own_count) and not any(t.then is Action.END for t in self.own)
        self.free = max(0, MAX_LIMIT_TESTS - self.own_count)
        self.tests: list[LimitTest] = []
        self.coverage: list[LimitCoverage] = []

    def note(self, limit: str, how: Enforcement, reason: str) -> None:
        if getattr(self.safety, limit) is not None and all(c.limit != limit for c in self.coverage):
            self.coverage.append(LimitCoverage(limit, how, reason))

    def test(self, limit: str, tests: Sequence[LimitTest]) -> None:
        """Carry ``limit`` as ``tests`` in the instrument if the step's exit and free slots allow."""
        if getattr(self.safety, limit) is None:
            return
        if self.own_goes_on:
            self.note(limit, Enforcement.POLLING, _ONE_EXIT)
        elif len(tests) > self.free:
            used = f"{self.own_count} by its own ends, {len(self.tests)} by the safety limits before it"
            self.note(limit, Enforcement.POLLING, f"needs {len(tests)} more limit test(s); the step's "
                      f"{MAX_LIMIT_TESTS} (reference 3.4) are taken, {used}")  # fmt: skip
        else:
            self.tests += tests
            self.free -= len(tests)
            self.note(limit, Enforcement.INSTRUMENT, " or ".join(t.describe() for t in tests) + " stops the channel")

    def own_end(self, limit: str) -> bool:
        """Note ``limit`` as covered when one of the step's own ends must stop the step before it is reached."""
        t = next((t for t in self.own if _stops_before(t, limit, self.safety)), None)
        if t is None:
            return False
        self.note(limit, Enforcement.STEP_LIMIT, f"its own end '{t.describe()}' stops the step first")
        return True

    def voltage_tests(self, order: Sequence[str]) -> None:
        for limit in order:
            if not self.own_end(limit):
                self.test(limit, [_voltage_test(limit, self.safety)])

    def current_pair(self) -> None:
        c = self.safety.current_max
        if c is not None and not self.own_end("current_max"):
            self.test("current_max", [LimitTest(LimitVariable.I, LimitComparison.GT, c),
                                      LimitTest(LimitVariable.I, LimitComparison.LT, -c)])  # fmt: skip

    def window(self, limit: str, points: Sequence[float], what: str, otherwise: str) -> None:
        """CONTROL when every point the control visits is inside the bound, else POLLING with ``otherwise``."""
        bound = getattr(self.safety, limit)
        if bound is None:
            return
        inside = _inside(limit, bound, points)
        self.note(limit, Enforcement.CONTROL if inside else Enforcement.POLLING, what if inside else otherwise)

    def done(self) -> StepSafety:
        for limit, reason in _NO_VARIABLE.items():
            self.note(limit, Enforcement.POLLING, reason)
        return StepSafety(self.step.index, tuple(self.tests), tuple(self.coverage))


def _stops_before(end: Termination, limit: str, safety: SafetyLimits) -> bool:
    """Whether the step's own ``end`` must hold before the safety ``limit`` can break (the values are continuous)."""
    bound = getattr(safety, limit)
    if bound is None:
        return False
    if end.quantity is Quantity.VOLTAGE and limit == "voltage_max":
        return end.op is Comparison.GE and end.value < bound
    if end.quantity is Quantity.VOLTAGE and limit == "voltage_min":
        return end.op is Comparison.LE and end.value > bound
    return end.quantity is Quantity.CURRENT and limit == "current_max" and end.op is Comparison.GE and end.value < bound


def _inside(limit: str, bound: float, points: Sequence[float]) -> bool:
    """Whether every point is within ``bound``; currents compare by magnitude, with the binder's 1e-9 slack."""
    if limit == "voltage_max":
        return all(p <= bound for p in points)
    if limit == "voltage_min":
        return all(p >= bound for p in points)
    return all(abs(p) <= bound * (1 + 1e-9) for p in points)


def _voltage_test(limit: str, safety: SafetyLimits) -> LimitTest:
    if limit == "voltage_max":
        return LimitTest(LimitVariable.EWE, LimitComparison.GT, safety.voltage_max)  # type: ignore[arg-type]
    return LimitTest(LimitVariable.EWE, LimitComparison.LT, safety.voltage_min)  # type: ignore[arg-type]


def _galvanostatic(plan: _Plan, current: float) -> None:
    c = plan.safety.current_max
    if c is not None and _inside("current_max", c, [current]):
        plan.note("current_max", Enforcement.CONTROL, f"the technique holds I at {current:g} A")
    elif c is not None:
        plan.test("current_max", [LimitTest(LimitVariable.I, LimitComparison.GT, c) if current > 0
                                  else LimitTest(LimitVariable.I, LimitComparison.LT, -c)])  # fmt: skip
    plan.voltage_tests(("voltage_min", "voltage_max") if current < 0 else ("voltage_max", "voltage_min"))


def _potentiostatic(plan: _Plan, voltage: float, vs_ocv: bool) -> None:
    plan.current_pair()
    if vs_ocv:  # the held voltage depends on the cell's OCV at the step's start
        plan.voltage_tests(("voltage_min", "voltage_max") if voltage < 0 else ("voltage_max", "voltage_min"))
        return
    for limit in ("voltage_max", "voltage_min"):
        bound = getattr(plan.safety, limit)
        if bound is not None and _inside(limit, bound, [voltage]):
            plan.note(limit, Enforcement.CONTROL, f"the technique holds Ewe at {voltage:g} V")
        else:
            plan.voltage_tests((limit,))


def _sweep(plan: _Plan, step: LsvStep) -> None:
    plan.current_pair()
    for limit in ("voltage_max", "voltage_min"):
        bound = getattr(plan.safety, limit)
        if step.start is not None and bound is not None and _inside(limit, bound, [step.start, step.end]):
            plan.note(limit, Enforcement.CONTROL, f"the sweep runs from {step.start:g} to {step.end:g} V")
        else:  # it starts at the cell's OCV, unknown before the step, or it leaves the window
            plan.voltage_tests((limit,))


_NO_TESTS = "{} has no limit tests (reference {})"


def _cv(plan: _Plan, step: CvStep) -> None:
    points = [p for p in (step.start, step.vertex_1, step.vertex_2, step.end) if p is not None]
    ocv = " and the cell's own OCV" if step.start is None or step.end is None else ""
    for limit in ("voltage_max", "voltage_min"):
        plan.window(limit, points, f"the sweep stays between its vertices{ocv}", _NO_TESTS.format("CV", "3.7"))
    plan.note("current_max", Enforcement.POLLING, _NO_TESTS.format("CV", "3.7"))


def _eis(plan: _Plan, step: EisStep) -> None:
    name, section = ("PEIS", "3.5") if step.mode == "potentio" else ("GEIS", "3.6")
    polled = _NO_TESTS.format(name, section)
    if step.mode == "potentio" and not step.bias_vs_ocv:
        swing = [step.bias - step.amplitude, step.bias + step.amplitude]
        for limit in ("voltage_max", "voltage_min"):
            plan.window(limit, swing, f"the technique holds Ewe within {step.bias:g} +- {step.amplitude:g} V", polled)
    if step.mode == "galvano":
        peak = abs(step.bias) + step.amplitude
        plan.window("current_max", [peak], f"the technique holds |I| within {peak:g} A", polled)
    for limit in ("voltage_max", "voltage_min", "current_max"):
        plan.note(limit, Enforcement.POLLING, polled)


def plan_step(step: ProgramStep, safety: SafetyLimits) -> StepSafety:
    """The safety coverage of one step, for the technique the compiler gives it (it makes the same choices)."""
    if isinstance(step, RestStep) and any(t.quantity is Quantity.VOLTAGE for t in step.until):
        plan = _Plan(step, safety, [t for t in step.until if t.quantity is Quantity.VOLTAGE])
        _galvanostatic(plan, 0.0)  # a rest with a voltage end runs as a 0 A CPLIMIT
    elif isinstance(step, RestStep):
        plan = _Plan(step, safety)
        plan.note("current_max", Enforcement.CONTROL, "OCV leaves the cell on open circuit: no current flows")
        for limit in ("voltage_max", "voltage_min"):
            plan.note(limit, Enforcement.POLLING, _NO_TESTS.format("OCV", "3.1") + "; a rest with a voltage end "
                      "runs as a 0 A CPLIMIT, which can carry them")  # fmt: skip
    elif isinstance(step, CurrentStep):
        plan = _Plan(step, safety, [t for t in step.until if t.quantity is Quantity.VOLTAGE])
        _galvanostatic(plan, step.current)
    elif isinstance(step, HoldStep | CaStep):
        plan = _Plan(step, safety, [t for t in step.until if t.quantity is Quantity.CURRENT])
        _potentiostatic(plan, step.voltage, isinstance(step, CaStep) and step.vs_ocv)
    elif isinstance(step, LsvStep):
        plan = _Plan(step, safety, step.until)
        _sweep(plan, step)
    elif isinstance(step, CvStep):
        plan = _Plan(step, safety)
        _cv(plan, step)
    elif isinstance(step, EisStep):
        plan = _Plan(step, safety)
        _eis(plan, step)
    else:
        plan = _Plan(step, safety)
        for limit in ("voltage_max", "voltage_min", "current_max"):
            plan.note(limit, Enforcement.POLLING, f"a {step.kind} step has no Biologic technique")
    return plan.done()


def plan_safety(program: StepProgram) -> dict[int, StepSafety]:
    """Every non-loop step's :class:`StepSafety`, keyed by step index.

    It depends on the program alone (not on the channel), so the record builder re-derives exactly the tests the
    compiler loaded, also when it re-attaches to a run another process started.
    """
    return {s.index: plan_step(s, program.safety) for s in program.steps if not isinstance(s, LoopStep)}
