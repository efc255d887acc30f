"""Turn decoded data chunks into station records: step index, cycle, step time, step capacity and energy.

The instrument numbers nothing the station needs: it reports which technique produced a chunk, when that technique
started and raw time, voltage and current. This module maps techniques back to program steps, numbers records,
integrates charge and energy per step (trapezoids over the recorded points, exact for constant current), and takes
the cycle of each step run from the program's own nominal path. No I/O here: the channel driver feeds it chunks.

It also finds safety breaches, two ways. Where a step's technique carries safety limit tests
(:func:`drivers.biologic.limits.plan_safety`, derived from the program alone, so a re-attached builder knows them
too), a record that breaks one is the point at which the instrument stopped the channel; it is compared exactly
as the instrument compares, single against single, so a stop right at the limit is recognised and not mistaken
for a finished run. Every point is also checked with the station's own safety rule
(:func:`protocols.safety.first_breach`): the fallback for what only polling watches (OCV, EIS and CV steps, limits
a step had no room for).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.base import DriverError, Record
from drivers.biologic.decode import DataChunk
from drivers.biologic.limits import LimitTest, plan_safety
from drivers.nominal_path import NominalPath
from protocols.program import CvStep, SafetyLimits, StepProgram
from protocols.safety import first_breach


@dataclass
class _Occurrence:
    """One run of one technique: its start time and the step integrals so far."""

    technique_index: int
    start_time: float
    last: tuple[float, float, float] | None = None  # (t, V, I)
    from_start: bool = True
    """Integrate from the technique start: the first point comes an acquisition period after the switch, and
    the charge passed before it counts. False when re-attaching into the middle of a technique."""
    capacity: float = 0.0
    energy: float = 0.0


class RecordBuilder:
    """Records of one started (or re-attached) technique list, kept until the station acknowledges them."""

    def __init__(self, program: StepProgram, step_map: list[int], *, reattached: bool = False):
        self.step_map = step_map
        self.safety: SafetyLimits = program.safety
        self.instrument_tests: dict[int, tuple[LimitTest, ...]] = {
            index: plan.tests for index, plan in plan_safety(program).items() if plan.tests
        }
        self.path = NominalPath(program)
        #: program steps that are CV scans: their records carry the instrument's cycle count, 1-based
        self.cv_steps = frozenset(step.index for step in program.steps if isinstance(step, CvStep))
        self.cycle = 1
        self.reattached = reattached
        self.seq: int | None = None if reattached else 0
        self.records: list[Record] = []
        self._occurrence: _Occurrence | None = None

    @property
    def last(self) -> Record | None:
        return self.records[-1] if self.records else None

    def acknowledge(self, after_seq: int) -> None:
        """Drop what the station has stored; a re-attached builder continues the station's numbering."""
        if self.seq is None:
            self.seq = after_seq
        self.records = [r for r in self.records if r.seq > after_seq]

    def _enter(self, chunk: DataChunk) -> _Occurrence:
        occ = self._occurrence
        index = chunk.technique_index
        if occ is not None and occ.technique_index == index and occ.start_time == chunk.start_time:
            return occ
        if not 0 <= index < len(self.step_map):
            raise DriverError(f"the instrument sent data for technique {index}, which was not loaded")
        # On re-attach the first chunk's ``loop`` (loop jumps since the start) finds our place on the path
        # [verify the meaning of ``loop`` on hardware]; afterwards every new occurrence is simply the next one.
        jumps = chunk.loop if self.reattached and occ is None else None
        self.cycle = self.path.next_occurrence(self.step_map[index], jumps)
        self._occurrence = _Occurrence(index, chunk.start_time, from_start=jumps is None)
        return self._occurrence

    def add(self, chunk: DataChunk) -> str:
        """Append the chunk's records; returns the first broken safety limit ("" if none)."""
        occ = self._enter(chunk)
        step_index = self.step_map[chunk.technique_index]
        eis = chunk.frequency is not None
        tests = () if eis else self.instrument_tests.get(step_index, ())
        # EClib's ``cycle`` column counts a CV technique's repeats from 0 (reference 4.3: arrivals at E2)
        cv_cycles = chunk.cycle if step_index in self.cv_steps and chunk.cycle is not None else None
        for n in range(len(chunk)):
            t, v, i = float(chunk.t[n]), float(chunk.voltage[n]), float(chunk.current[n])
            if occ.last is None and occ.from_start and not eis:
                occ.last = (chunk.start_time, v, i)  # the control held from the switch to the first point
            if occ.last is not None and not eis:
                t0, v0, i0 = occ.last
                occ.capacity += (t - t0) * (i + i0) / 2 / 3600
                occ.energy += (t - t0) * (i * v + i0 * v0) / 2 / 3600
            occ.last = (t, v, i)
            self.seq = (self.seq or 0) + 1
            self.records.append(
                Record(
                    seq=self.seq, test_time=t, step_time=t - chunk.start_time, step_index=step_index,
                    cycle=self.cycle, voltage=v, current=i, capacity=occ.capacity, energy=occ.energy,
                    frequency=float(chunk.frequency[n]) if eis else None,  # type: ignore[index]
                    z_real=float(chunk.z_real[n]) if eis else None,  # type: ignore[index]
                    z_imag=float(chunk.z_imag[n]) if eis else None,  # type: ignore[index]
                    cv_cycle=int(cv_cycles[n]) + 1 if cv_cycles is not None else 0,
                )
            )  # fmt: skip
        return self._first_broken(chunk, tests)

    def _first_broken(self, chunk: DataChunk, tests: tuple[LimitTest, ...]) -> str:
        """The earliest point of the chunk at which the instrument's own limit test stopped the channel, or which
        breaks the program's safety rule (the station's, applied to what EClib returned); the instrument's test
        names the point when both hold there."""
        stop = next(((n, why) for n in range(len(chunk))
                     if (why := instrument_stop(tests, float(chunk.voltage[n]), float(chunk.current[n])))),
                    None)
        breach = first_breach({"voltage": chunk.voltage, "current": chunk.current}, self.safety)
        if breach is not None and (stop is None or breach.index < stop[0]):
            return breach.message
        return stop[1] if stop is not None else ""


def instrument_stop(tests: tuple[LimitTest, ...], voltage: float, current: float) -> str:
    """The safety test the instrument stopped on at this record ("" if none holds).

    Safety tests are OR-ed after the step's own, so any one holding alone made the whole combination hold, and the
    technique's exit for it is "stop experiment" (reference 3.4).
    """
    test = next((t for t in tests if t.holds(voltage, current)), None)
    if test is None:
        return ""
    return f"the instrument's own limit test {test.describe()} stopped the channel at {voltage:.9g} V, {current:.9g} A"
