"""The firmware's limit tests (CALIMIT, CPLIMIT, VSCANLIMIT): evaluated as the firmware does, and located on a
cell model's trajectory at the acquisition where they first hold.

Reference facts (sections 3.4 and 3.9): up to three tests per step, ``TestN_Config`` a bit-field (see
:class:`~simulators.biologic.firmware.LimitWord`) and ``TestN_Value`` a single (V for Ewe, A for I); Test2 is
ignored when Test1 is inactive and Test3 when Test2 is; one ``Exit_Cond`` per step (0 next step, 1 next technique,
2 stop the experiment) applies when the tests end the step, and the end of ``Duration_step`` goes to the next step.

Interpretations the reference leaves open, stated once:

* Tests combine left to right, each with its own logic bit: ((T1 op2 T2) op3 T3); the first test's bit is unused.
* They are evaluated at every acquisition (``RunConfig.sample_period``, the first one a period after the step
  starts), on the measured value as a single against the single ``TestN_Value``, strictly ("<" / ">"). The step
  ends at the first acquisition where the combination holds, and that acquisition is recorded (the end of a step
  always is); an excursion that begins and ends between two acquisitions is not seen.
* AUX1 and AUX2 read 0 V: nothing is wired to the simulated channel's analog inputs.

How the acquisition is found. A cell model runs a whole step at once and stops it on step-program terminations
(signed voltage, current by magnitude) placed to its own solver's accuracy. With everything but one quantity held
by the technique (I in CPLIMIT, Ewe in CALIMIT), the tests are a predicate of that quantity alone: the set where
it holds is a union of intervals, so the step first meets it where the quantity leaves the interval it starts in,
which two terminations express exactly. Currents are tracked by magnitude on the sign they start with (exact when
the tests depend on |I| only, as every client's +-x pairs do, or when the current keeps its sign). A VSCANLIMIT
sweep moves Ewe as well; the sweep is cut where a crossing of an Ewe threshold changes what the current tests
mean. The model's crossing is then moved to the acquisition grid: the first acquisition at which the tests hold is
searched backwards from the one after the crossing by re-running the step from its saved start (each run gives
the exact state at its end), so the result does not depend on how finely the model resolves crossings. Where a
crossing turns out not to satisfy the tests at an acquisition, the step goes on from there as a fresh model step
under the same control, which adds one record at that instant.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from protocols.program import (
    CaStep,
    Comparison,
    CurrentStep,
    LsvStep,
    ProgramStep,
    Quantity,
    RecordRule,
    RestStep,
    Termination,
)
from simulators.biologic.firmware import LIMIT_TESTS, LimitWord, LoadedTechnique
from simulators.cells.base import CellModel, StepResult

MAX_PIECES = 1000
"""Fresh model steps one technique step may be cut into before the firmware gives up on it (a safeguard)."""
EWE, AUX1, AUX2, CURRENT = 0, 1, 2, 3
"""The variable codes of a test word (reference 3.9)."""


@dataclass(frozen=True, slots=True)
class LimitTest:
    word: LimitWord
    value: float
    """The single-precision value as the firmware holds it."""

    def boundary(self) -> float:
        """Where the measured value starts to satisfy the test: half-way to the next single beyond the value."""
        toward = np.float32(np.inf if self.word.greater else -np.inf)
        return (self.value + float(np.nextafter(np.float32(self.value), toward))) / 2


def read_tests(t: LoadedTechnique, k: int) -> list[LimitTest]:
    """The active tests of step ``k``, up to the first inactive one."""
    tests: list[LimitTest] = []
    for n in range(1, LIMIT_TESTS + 1):
        word = LimitWord.decode(int(_entry(t, f"Test{n}_Config", k, 0)))  # type: ignore[call-overload]
        if word is None:
            break
        value = float(np.float32(_entry(t, f"Test{n}_Value", k, 0.0)))  # type: ignore[arg-type]
        tests.append(LimitTest(word, value))
    return tests


def exit_cond(t: LoadedTechnique, k: int) -> int:
    return int(_entry(t, "Exit_Cond", k, 0))  # type: ignore[call-overload]


def _entry(t: LoadedTechnique, label: str, k: int, default: object) -> object:
    value = t.values.get(label)
    if isinstance(value, list):
        return value[k] if k < len(value) else default
    return default if value is None else value


def holds(tests: Sequence[LimitTest], ewe: float, current: float) -> bool:
    """The combination of ``tests`` for one acquisition, compared single against single."""
    measured = {EWE: float(np.float32(ewe)), CURRENT: float(np.float32(current)), AUX1: 0.0, AUX2: 0.0}
    result = False
    for n, test in enumerate(tests):
        x = measured[test.word.variable]
        hit = x > test.value if test.word.greater else x < test.value
        if n and test.word.and_previous:
            hit = result and hit
        elif n:
            hit = result or hit
        result = hit
    return result


# -- where the tests first hold, as terminations a cell model understands -----------------------------------------


def _first_entry(
    pred: Callable[[float], bool], bounds: Sequence[float], x: float, floor: float | None
) -> tuple[float | None, float | None]:
    """(lo, hi): the nearest boundaries below and above ``x`` past which ``pred`` holds (``None`` if none).

    ``pred`` is constant between consecutive boundaries, so each gap is probed at its middle; ``floor`` closes
    the axis below (magnitudes stop at 0).
    """
    ordered = sorted(set(bounds))
    up = [b for b in ordered if b > x]
    down = [b for b in reversed(ordered) if b < x and (floor is None or b > floor)]
    hi = next((b for b, c in _with_next(up, None) if pred(_middle(b, c, 1.0))), None)
    lo = next((b for b, c in _with_next(down, floor) if pred(_middle(b, c, -1.0))), None)
    return lo, hi


def _with_next(bounds: list[float], last: float | None) -> list[tuple[float, float | None]]:
    """Each boundary with the one after it in the list (``last`` after the final one)."""
    return list(zip(bounds, [*bounds[1:], last], strict=True)) if bounds else []


def _middle(b: float, c: float | None, direction: float) -> float:
    """A point strictly between boundary ``b`` and the next one ``c`` (or beyond ``b`` when there is none)."""
    return (b + c) / 2 if c is not None else b + direction * (1.0 + abs(b))


def _cuts(quantity: Quantity, lo: float | None, hi: float | None) -> list[Termination]:
    cuts = []
    if hi is not None:
        cuts.append(Termination(quantity=quantity, op=Comparison.GE, value=hi))
    if lo is not None and (quantity is Quantity.VOLTAGE or lo > 0):
        cuts.append(Termination(quantity=quantity, op=Comparison.LE, value=lo))
    return cuts


@dataclass(frozen=True, slots=True)
class _Axes:
    """The tests as predicates of Ewe and of the current's magnitude |I| on one sign."""

    tests: tuple[LimitTest, ...]
    sign: float

    def at(self, ewe: float, magnitude: float) -> bool:
        return holds(self.tests, ewe, self.sign * magnitude)

    def ewe_bounds(self) -> list[float]:
        return [t.boundary() for t in self.tests if t.word.variable == EWE]

    def magnitude_bounds(self) -> list[float]:
        return [self.sign * b for t in self.tests if t.word.variable == CURRENT and self.sign * (b := t.boundary()) > 0]


def _sign(tests: Sequence[LimitTest], ewe: float, current: float, hint: float) -> float:
    """The sign whose magnitudes stand for the current: any, when the tests depend on |I| only."""
    bounds = [t.boundary() for t in tests if t.word.variable == CURRENT]
    points = sorted({0.0, *bounds, *(-b for b in bounds)})
    probes = [*points, *((a + b) / 2 for a, b in itertools.pairwise(points)), points[-1] + 1]
    if all(holds(tests, ewe, x) == holds(tests, ewe, -x) for x in probes):
        return 1.0
    return math.copysign(1.0, current if current else hint)


def cuts_for(tests: Sequence[LimitTest], held: Literal["current", "voltage", "sweep"], ewe: float, current: float,
             hint: float = 1.0) -> list[Termination]:  # fmt: skip
    """Terminations that stop a step where the tests may first hold, from an acquisition where they do not."""
    axes = _Axes(tuple(tests), _sign(tests, ewe, current, hint))
    magnitude = abs(current)
    if held == "current":  # CPLIMIT: I is the set current, Ewe moves
        return _cuts(Quantity.VOLTAGE, *_first_entry(lambda v: axes.at(v, magnitude), axes.ewe_bounds(), ewe, None))
    cuts = _cuts(Quantity.CURRENT, *_first_entry(lambda a: axes.at(ewe, a), axes.magnitude_bounds(), magnitude, 0.0))
    if held == "sweep":  # Ewe moves too: cut where crossing an Ewe threshold changes what the current tests say
        mags = sorted({0.0, *axes.magnitude_bounds()})
        probes = [*((a + b) / 2 for a, b in itertools.pairwise(mags)), mags[-1] + 1]

        def changed(v: float) -> bool:
            return any(axes.at(v, a) != axes.at(ewe, a) for a in probes)

        cuts += _cuts(Quantity.VOLTAGE, *_first_entry(changed, axes.ewe_bounds(), ewe, None))
    return cuts


# -- running a step with its tests ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Drive:
    """What the technique holds during one of its steps, so the step can be re-issued from any acquisition."""

    held: Literal["current", "voltage", "sweep"]
    first: ProgramStep
    """The step as the technique starts it (a CA relative to the OCV, a sweep from its own start point)."""
    duration: float | None = None
    current: float = 0.0
    end: float = 0.0
    rate: float = 0.0

    def resume(self, elapsed: float, ewe: float) -> ProgramStep:
        """The rest of the step from ``elapsed`` s, where Ewe reads ``ewe`` V, as a fresh model step."""
        record: RecordRule = self.first.record
        if self.held == "sweep":
            return LsvStep(index=1, scan_rate=self.rate, start=ewe, end=self.end, record=record)
        assert self.duration is not None
        until = (Termination(quantity=Quantity.TIME, op=Comparison.GE, value=max(0.0, self.duration - elapsed)),)
        if self.held == "voltage":  # the held potential, now absolute
            return CaStep(index=1, voltage=ewe, until=until, record=record)
        if self.current == 0:
            return RestStep(index=1, until=until, record=record)
        kind = "charge" if self.current > 0 else "discharge"
        return CurrentStep(index=1, kind=kind, current=self.current, until=until, record=record)

    def hint(self) -> float:
        """The current's sign when the first acquisition reads exactly 0 A: anodic on a rising sweep."""
        if self.held == "sweep" and isinstance(self.first, LsvStep) and self.first.start is not None:
            return 1.0 if self.end >= self.first.start else -1.0
        return 1.0


@dataclass
class _Piece:
    offset: float
    result: StepResult


class LimitedStep:
    """One technique step run with its tests; :meth:`run` gives the trajectory and whether the tests ended it."""

    def __init__(self, model: CellModel, drive: Drive, tests: Sequence[LimitTest], sample_period: float):
        if sample_period <= 0:
            raise ValueError("limit tests are evaluated per acquisition: the channel needs a sample period")
        self.model, self.drive, self.tests, self.sp = model, drive, tuple(tests), sample_period

    def run(self, horizon: float | None = None) -> tuple[StepResult, bool]:
        """Run from the model's present state, stopping at ``horizon`` s if given (an operator stop)."""
        pieces: list[_Piece] = []
        step, k0 = self.drive.first, 0
        for _ in range(MAX_PIECES):
            if pieces and horizon is not None and k0 * self.sp >= horizon:
                return _joined(pieces), False
            piece, hit, k = self._piece(step, k0, horizon)
            pieces.append(piece)
            if k is None:
                return _joined(pieces), hit
            result = piece.result
            step, k0 = self.drive.resume(k * self.sp, float(result.voltage[-1])), k
        raise RuntimeError(f"the limit tests were crossed {MAX_PIECES} times without holding at an acquisition")

    def _run(self, step: ProgramStep, samples: int | None, cap: float | None, cuts: Sequence[Termination] = ()
             ) -> StepResult:  # fmt: skip
        limit = None if samples is None else samples * self.sp
        if cap is not None:
            limit = cap if limit is None else min(limit, cap)
        return self.model.run_step(step, extra_until=cuts, max_duration=limit, sample_period=self.sp)

    def _piece(self, step: ProgramStep, k0: int, horizon: float | None) -> tuple[_Piece, bool, int | None]:
        """Run ``step`` from acquisition ``k0``: (piece, tests held, acquisition to go on from or ``None``)."""
        offset = k0 * self.sp
        cap = None if horizon is None else max(0.0, horizon - offset)
        saved = self.model.state_dict()
        first = self._run(step, 1, cap)
        if first.end_reason != "max_duration" or (cap is not None and cap <= self.sp):
            return _Piece(offset, first), False, None  # the step, or the run, ends before its first acquisition
        if holds(self.tests, float(first.voltage[-1]), float(first.current[-1])):
            return _Piece(offset, first), True, None
        self.model.load_state(saved)
        cuts = cuts_for(self.tests, self.drive.held, float(first.voltage[-1]), float(first.current[-1]),
                        self.drive.hint())  # fmt: skip
        search = self._run(step, None, cap, cuts)
        own = len(step.until)
        if search.end_reason != "termination" or search.ended_by is None or search.ended_by < own:
            return _Piece(offset, search), False, None  # its own end (time, sweep end) or the horizon came first
        k = max(2, math.ceil(search.duration / self.sp - 1e-9))  # the first acquisition at or after the crossing
        return self._settle(step, saved, offset, cap, k)

    def _at(self, step: ProgramStep, saved: dict, k: int, cap: float | None) -> tuple[StepResult, bool | None]:
        """The step re-run to acquisition ``k``: (result, tests hold there), ``None`` if it ended before ``k``."""
        self.model.load_state(saved)
        result = self._run(step, k, cap)
        if result.end_reason != "max_duration" or result.duration < k * self.sp * (1 - 1e-12):
            return result, None
        return result, holds(self.tests, float(result.voltage[-1]), float(result.current[-1]))

    def _settle(self, step: ProgramStep, saved: dict, offset: float, cap: float | None, k: int
                ) -> tuple[_Piece, bool, int | None]:  # fmt: skip
        """Move a crossing found near acquisition ``k`` to the first acquisition where the tests hold."""
        result, ok = self._at(step, saved, k, cap)
        if ok is None:
            return _Piece(offset, result), False, None
        if not ok:  # crossed and came back between acquisitions, or a crossing on the other sign: go on
            return _Piece(offset, result), False, round(offset / self.sp) + k
        lo, hi, stride, galloping = 1, k, 1, True  # the tests fail at acquisition 1 and hold at ``hi``
        while hi - lo > 1:
            j = max(hi - stride, lo + 1) if galloping else (lo + hi) // 2
            _, ok = self._at(step, saved, j, cap)
            if ok:
                hi, stride = j, stride * 2
            else:
                lo, galloping = j, False
        result, _ = self._at(step, saved, hi, cap)  # leaves the model at that acquisition
        return _Piece(offset, result), True, None


def _joined(pieces: list[_Piece]) -> StepResult:
    """One step's pieces as one result, times from the step's start; each piece after the first adds its charge."""
    if len(pieces) == 1:
        return pieces[0].result
    q0 = e0 = 0.0
    parts = []
    for p in pieces:
        r = p.result
        parts.append((r.t + p.offset, r.voltage, r.current, r.capacity + q0, r.energy + e0))
        q0, e0 = q0 + float(r.capacity[-1]), e0 + float(r.energy[-1])
    last = pieces[-1]
    t, v, i, q, e = (np.concatenate(column) for column in zip(*parts, strict=True))
    return StepResult(t=t, voltage=v, current=i, capacity=q, energy=e, duration=last.offset + last.result.duration,
                      end_reason=last.result.end_reason, ended_by=last.result.ended_by)  # fmt: skip
