"""Execute a loaded technique list on a cell model, lazily, as an injected clock passes.

Each technique is turned into step-program steps (the firmware's own reading of its parameters) and run on the
cell model one step at a time; the model returns a whole step at once and the runner releases its rows only as
``now`` passes them. A step is computed when the previous one ends in simulated time, never ahead of the model
state. Stopping mid-step restores the model state saved before the step and re-runs it up to the stop time, so the
cell is left exactly where the released data say it is.

Interpretations the reference leaves open, stated once:

* ``Scan_Rate`` is in the unit the channel is configured with (V/s by default, see ``SimChannelConfig``).
* CV ``Voltage_step`` [Ei, E1, E2, Ei, Ef]: Ei -> E1 -> E2, then (E1 -> E2) ``N_Cycles`` more times, then Ef;
  the fourth entry is not part of the path. The ``cycle`` column counts arrivals at E2, up to ``N_Cycles``.
* Limit tests (CALIMIT, CPLIMIT, VSCANLIMIT) are evaluated as :mod:`simulators.biologic.limits` describes: at
  every acquisition, single against single, combined left to right. Tests that end a step apply the step's
  ``Exit_Cond`` (0 next step, 1 next technique, 2 stop the experiment); the end of ``Duration_step`` goes to the
  next step.
* Impedance points use the model's impedance at the present state, at ``Frequency_number`` log-spaced frequencies
  from ``Initial_frequency`` to ``Final_frequency`` (linear when ``sweep`` is true); each point takes
  ``(Average_N_times + Wait_for_steady)`` periods plus ``EIS_POINT_OVERHEAD_S``.
* ``loop`` in the data infos counts the loop jumps taken since the start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocols.program import (
    CaStep,
    Comparison,
    CurrentStep,
    CvStep,
    LsvStep,
    ProgramStep,
    Quantity,
    RecordRule,
    RestStep,
    Termination,
)
from simulators.biologic.encode import columns, encode_rows, ticks
from simulators.biologic.firmware import EXIT_NEXT_TECHNIQUE, EXIT_STOP, LoadedTechnique
from simulators.biologic.limits import Drive, LimitedStep, LimitTest, exit_cond, read_tests
from simulators.cells.base import CellModel, StepResult

EIS_POINT_OVERHEAD_S = 1.0
"""Settling and computation time of one impedance point, s (a documented simulator parameter)."""


@dataclass
class Segment:
    """Rows one step produced: their times relative to the segment start, the encoded words and live values."""

    technique_index: int
    technique_id: int
    process: int
    loop: int
    technique_start: float
    start: float
    times: np.ndarray
    words: np.ndarray
    voltage: np.ndarray
    current: np.ndarray
    duration: float
    exit_cond: int = 0  # the technique's Exit_Cond if a limit test ended the segment, else 0 (next step)
    frequency: np.ndarray | None = None
    truncate: Callable[[float], Segment] | None = None
    emitted: int = 0

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class RunConfig:
    board: int
    timebase: float
    scan_rate_unit: str = "V/s"
    phase_unit: str = "rad"
    sample_period: float = 200e-6
    """The fastest acquisition of a VMP3-family channel (200 us, the datasheet figure; the 20-24 us timebase is
    the clock tick, not a rate the channel can log at): no two records closer, none at a technique switch."""


def _record(t: LoadedTechnique, dt: str = "Record_every_dT", de: str = "Record_every_dE") -> RecordRule:
    def positive(label: str) -> float | None:
        value = t.scalar(label)
        return float(value) if isinstance(value, float) and value > 0 else None

    return RecordRule(every_s=positive(dt), voltage_change=positive(de), current_change=positive("Record_every_dI"))


class TechniqueRun:
    """Runs the technique list; ``advance(now)`` yields the segments (and their rows) that ``now`` has reached."""

    def __init__(self, techniques: list[LoadedTechnique], model: CellModel, config: RunConfig, start: float):
        self.techniques = techniques
        self.model = model
        self.config = config
        self.started = start
        self.cursor = start
        self.position = 0
        self.loop_passes: dict[int, int] = {}
        self.loop_jumps = 0
        self.finished_at: float | None = None
        self.current: Segment | None = None
        self._steps: Iterator[Callable[[float], Segment]] | None = None
        self._technique_start = start
        self._last_jump: dict[int, float] = {}

    # -- public --------------------------------------------------------------------------------------------
    def advance(self, now: float, emit: Callable[[Segment, int, int], None]) -> None:
        """Release every row with time <= ``now``; ``emit(segment, first_row, end_row)``."""
        while self.finished_at is None:
            if self.current is None:
                self.current = self._next_segment()
                if self.current is None:
                    return
            seg = self.current
            if now >= seg.end:
                self._release(seg, len(seg.times), emit)
                self.cursor = seg.end
                self.current = None
                if seg.exit_cond == EXIT_NEXT_TECHNIQUE:
                    self._end_technique()
                elif seg.exit_cond == EXIT_STOP:
                    self.finished_at = self.cursor
                continue
            self._release(seg, int(np.searchsorted(seg.times, now - seg.start, side="right")), emit)
            return

    def stop(self, now: float, emit: Callable[[Segment, int, int], None]) -> None:
        """Stop at ``now``: cut the running step there (the model state follows) and finish."""
        self.advance(now, emit)
        seg = self.current
        if seg is not None and seg.truncate is not None:
            cut = seg.truncate(max(0.0, now - seg.start))
            # rows up to ``now`` are out already; the cut adds only its final sample, at the stop
            last_t = seg.times[seg.emitted - 1] if seg.emitted else -1.0
            if len(cut.times) and cut.times[-1] > last_t + 1e-9:
                cut.emitted = len(cut.times) - 1
                self._release(cut, len(cut.times), emit)
        self.current = None
        if self.finished_at is None:
            self.finished_at = now

    def live(self, now: float) -> tuple[float, float, float]:
        """(Ewe, I, frequency) at ``now`` for ``BL_GetCurrentValues``."""
        seg = self.current
        if seg is None or self.finished_at is not None or len(seg.times) == 0:
            return self.model.open_circuit_voltage(), 0.0, 0.0
        rel = now - seg.start
        freq = 0.0
        if seg.frequency is not None and seg.emitted:
            freq = float(seg.frequency[seg.emitted - 1])
        return float(np.interp(rel, seg.times, seg.voltage)), float(np.interp(rel, seg.times, seg.current)), freq

    # -- sequencing -----------------------------------------------------------------------------------------
    @staticmethod
    def _release(seg: Segment, upto: int, emit: Callable[[Segment, int, int], None]) -> None:
        if upto > seg.emitted:
            emit(seg, seg.emitted, upto)
            seg.emitted = upto

    def _end_technique(self) -> None:
        self._steps = None
        self.position += 1

    def _next_segment(self) -> Segment | None:
        while True:
            if self._steps is None:
                if self.position >= len(self.techniques):
                    self.finished_at = self.cursor
                    return None
                technique = self.techniques[self.position]
                if technique.stem == "loop":
                    self._loop(technique)
                    continue
                self._technique_start = self.cursor
                self._steps = self._expand(technique)
            factory = next(self._steps, None)
            if factory is None:
                self._end_technique()
                continue
            return factory(self.cursor)

    def _loop(self, technique: LoadedTechnique) -> None:
        repeats = int(technique.scalar("loop_N_times"))  # type: ignore[arg-type]
        done = self.loop_passes.get(self.position, 0)
        if repeats < 0 or done < repeats:
            if self._last_jump.get(self.position) == self.cursor:
                raise ValueError(f"the loop at technique {self.position} repeats a body that takes no time")
            self._last_jump[self.position] = self.cursor
            self.loop_passes[self.position] = done + 1
            self.loop_jumps += 1
            self.position = int(technique.scalar("protocol_number"))  # type: ignore[arg-type]
        else:
            self.loop_passes.pop(self.position, None)
            self.position += 1

    # -- techniques -> segments -----------------------------------------------------------------------------
    def _expand(self, t: LoadedTechnique) -> Iterator[Callable[[float], Segment]]:
        stem = t.stem
        if stem == "ocv":
            step = RestStep(index=1, until=(self._time(t.scalar("Rest_time_T")),), record=_record(t))
            yield lambda start: self._model_segment(t, step, start, 0)
        elif stem in ("ca", "calimit", "cp", "cplimit"):
            n_steps = int(t.scalar("Step_number", 0)) + 1  # type: ignore[arg-type]
            for cycle in range(int(t.scalar("N_Cycles", 0)) + 1):  # type: ignore[arg-type]
                for k in range(n_steps):
                    yield self._dc_factory(t, k, cycle)
        elif stem in ("peis", "geis"):
            duration = float(t.scalar("Duration_step", 0.0))  # type: ignore[arg-type]
            if duration > 0:
                yield self._eis_bias_factory(t, duration)
            yield lambda start: self._eis_segment(t, start)
        elif stem == "cv":
            yield lambda start: self._cv_segment(t, start)
        elif stem == "vscanlimit":
            for k in range(int(t.scalar("Scan_number", 1))):  # type: ignore[arg-type]
                yield self._scan_factory(t, k)

    @staticmethod
    def _time(value: object) -> Termination:
        return Termination(quantity=Quantity.TIME, op=Comparison.GE, value=float(value))  # type: ignore[arg-type]

    def _dc_factory(self, t: LoadedTechnique, k: int, cycle: int) -> Callable[[float], Segment]:
        n = k + 1
        duration = float(t.array("Duration_step", n)[k])  # type: ignore[arg-type]
        until = (self._time(duration),)
        tests = read_tests(t, k) if t.stem.endswith("limit") else []
        if t.stem in ("ca", "calimit"):
            step: ProgramStep = CaStep(
                index=1, voltage=float(t.array("Voltage_step", n)[k]),  # type: ignore[arg-type]
                vs_ocv=bool(t.array("vs_initial", n, False)[k]), until=until, record=_record(t),
            )  # fmt: skip
            drive = Drive("voltage", step, duration)
        else:
            current = float(t.array("Current_step", n)[k])  # type: ignore[arg-type]
            if current == 0:
                step = RestStep(index=1, until=until, record=_record(t))
            else:
                kind = "charge" if current > 0 else "discharge"
                step = CurrentStep(index=1, kind=kind, current=current, until=until, record=_record(t))
            drive = Drive("current", step, duration, current=current)
        if tests:
            return lambda start: self._limited_segment(t, drive, tests, start, cycle, exit_cond(t, k))
        return lambda start: self._model_segment(t, step, start, cycle)

    def _eis_bias_factory(self, t: LoadedTechnique, duration: float) -> Callable[[float], Segment]:
        until = (self._time(duration),)
        record = _record(t, de="Record_every_dE")
        if t.stem == "peis":
            step: ProgramStep = CaStep(
                index=1, voltage=float(t.scalar("Initial_Voltage_step", 0.0)),  # type: ignore[arg-type]
                vs_ocv=bool(t.scalar("vs_initial", True)), until=until, record=record,
            )  # fmt: skip
        else:
            current = float(t.scalar("Initial_Current_step", 0.0))  # type: ignore[arg-type]
            kind = "charge" if current > 0 else "discharge"
            step = (
                CurrentStep(index=1, kind=kind, current=current, until=until, record=record)
                if current
                else RestStep(index=1, until=until, record=record)
            )
        return lambda start: self._model_segment(t, step, start, 0)

    def _scan_factory(self, t: LoadedTechnique, k: int) -> Callable[[float], Segment]:
        n = k + 2
        points, relative = t.array("Voltage_step", n), t.array("vs_initial", n, False)
        rate = self._rate(t.array("Scan_Rate", n)[k])
        start = None if relative[k] and points[k] == 0.0 else points[k]
        if relative[k] and start is not None:
            start = self.model.open_circuit_voltage() + float(points[k])  # type: ignore[arg-type]
        end = float(points[k + 1])  # type: ignore[arg-type]
        step = LsvStep(index=1, scan_rate=rate, start=start, end=end, record=_record(t))
        tests = read_tests(t, k)
        if tests:
            drive = Drive("sweep", step, end=end, rate=rate)
            return lambda s: self._limited_segment(t, drive, tests, s, 0, exit_cond(t, k))
        return lambda s: self._model_segment(t, step, s, 0)

    def _rate(self, value: object) -> float:
        rate = float(value)  # type: ignore[arg-type]
        return rate / 1000.0 if self.config.scan_rate_unit == "mV/s" else rate

    # -- segment builders -------------------------------------------------------------------------------------
    def _model_segment(
        self, t: LoadedTechnique, step: ProgramStep, start: float, cycle: int,
        cycle_of: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Segment:  # fmt: skip
        """A step without limit tests: it ends at its own end and goes on to the next step."""
        saved = self.model.state_dict()
        result = self.model.run_step(step, sample_period=self.config.sample_period)

        def truncate(elapsed: float) -> Segment:
            self.model.load_state(saved)
            res = self.model.run_step(step, max_duration=elapsed, sample_period=self.config.sample_period)
            return self._dc_segment(t, res, start, cycle, 0, cycle_of)

        seg = self._dc_segment(t, result, start, cycle, 0, cycle_of)
        seg.truncate = truncate
        return seg

    def _limited_segment(
        self, t: LoadedTechnique, drive: Drive, tests: list[LimitTest], start: float, cycle: int, exit_code: int
    ) -> Segment:
        """A step with limit tests: when they end it, the step's ``Exit_Cond`` decides what comes next."""
        saved = self.model.state_dict()
        limited = LimitedStep(self.model, drive, tests, self.config.sample_period)
        result, hit = limited.run()

        def truncate(elapsed: float) -> Segment:
            self.model.load_state(saved)
            return self._dc_segment(t, limited.run(horizon=elapsed)[0], start, cycle, 0, None)

        seg = self._dc_segment(t, result, start, cycle, exit_code if hit else 0, None)
        seg.truncate = truncate
        return seg

    def _dc_segment(
        self, t: LoadedTechnique, res: StepResult, start: float, cycle: int, exit_cond: int,
        cycle_of: Callable[[np.ndarray], np.ndarray] | None,
    ) -> Segment:  # fmt: skip
        names = columns(t.table.technique_id, 0, self.config.board)
        offset = start - self._technique_start
        n = len(res.t)
        cycles = cycle_of(res.t) if cycle_of is not None else np.full(n, cycle)
        data: dict[str, Any] = {
            "t_ticks": ticks(offset + res.t, self.config.timebase),
            "Ewe": res.voltage, "I": res.current, "Ec": res.voltage, "cycle": cycles,
        }  # fmt: skip
        return Segment(
            self.position, t.table.technique_id, 0, self.loop_jumps, self._technique_start, start,
            np.asarray(res.t, dtype=np.float64), encode_rows(names, data, n, self.config.board), res.voltage,
            res.current, float(res.duration), exit_cond,
        )  # fmt: skip

    def _cv_segment(self, t: LoadedTechnique, start: float) -> Segment:
        points, relative = t.array("Voltage_step", 5), t.array("vs_initial", 5, False)
        ocv = self.model.open_circuit_voltage()

        def absolute(i: int) -> float | None:
            if relative[i]:
                return None if points[i] == 0.0 else ocv + float(points[i])  # type: ignore[arg-type]
            return float(points[i])  # type: ignore[arg-type]

        extra = int(t.scalar("N_Cycles", 0))  # type: ignore[arg-type]
        rate = self._rate(t.array("Scan_Rate", 5)[0])
        record = RecordRule(voltage_change=float(t.scalar("Record_every_dE", 0.0)) or None)  # type: ignore[arg-type]
        v1, v2 = float(points[1]), float(points[2])  # type: ignore[arg-type]
        begin = absolute(0)
        step = CvStep(index=1, scan_rate=rate, start=begin, vertex_1=v1, vertex_2=v2, end=absolute(4),
                      cycles=extra + 1, record=record)  # fmt: skip
        first_v2 = (abs(v1 - (ocv if begin is None else begin)) + abs(v2 - v1)) / rate
        period = 2 * abs(v2 - v1) / rate

        def cycle_of(times: np.ndarray) -> np.ndarray:
            passed = np.floor((times - first_v2) / period + 1e-9) + 1
            return np.clip(np.where(times < first_v2 - 1e-9, 0, passed), 0, extra).astype(np.int64)

        return self._model_segment(t, step, start, 0, cycle_of)

    def _eis_segment(self, t: LoadedTechnique, start: float) -> Segment:
        fi, ff = float(t.scalar("Initial_frequency")), float(t.scalar("Final_frequency"))  # type: ignore[arg-type]
        n = max(1, int(t.scalar("Frequency_number")))  # type: ignore[arg-type]
        if t.scalar("sweep", False):
            freqs = np.linspace(fi, ff, n)
        else:
            freqs = np.geomspace(fi, ff, n) if n > 1 else np.array([fi])
        potentio = t.stem == "peis"
        amplitude = float(t.scalar("Amplitude_Voltage" if potentio else "Amplitude_Current"))  # type: ignore[arg-type]
        # what the analyser reads is the fundamental at the sine's amplitude: a model with nonlinear interfaces
        # answers for it (a large amplitude distorts the spectrum); a linear one (the R/C test box) need not
        measured = getattr(self.model, "measured_impedance", None)
        z = np.asarray(measured(freqs, amplitude, "potentio" if potentio else "galvano") if measured is not None
                       else self.model.impedance(freqs), dtype=np.complex128)
        periods = int(t.scalar("Average_N_times", 1)) + float(t.scalar("Wait_for_steady", 0.0))  # type: ignore[arg-type]
        times = np.cumsum(periods / freqs + EIS_POINT_OVERHEAD_S)
        ocv = self.model.open_circuit_voltage()
        z_low = float(z[np.argmin(freqs)].real)
        if potentio:
            bias = float(t.scalar("Initial_Voltage_step", 0.0))  # type: ignore[arg-type]
            e_dc = ocv + bias if t.scalar("vs_initial", True) else bias
            i_dc = (e_dc - ocv) / z_low if z_low else 0.0
            abs_e, abs_i = np.full(n, amplitude), amplitude / np.abs(z)
        else:
            i_dc = float(t.scalar("Initial_Current_step", 0.0))  # type: ignore[arg-type]
            e_dc = ocv + i_dc * z_low
            abs_e, abs_i = amplitude * np.abs(z), np.full(n, amplitude)
        phase = np.angle(z)
        if self.config.phase_unit == "deg":
            phase = np.rad2deg(phase)
        offset = start - self._technique_start
        stamp = (offset + times).astype(np.float32)  # a single: round down so no row is stamped late
        stamp = np.where(stamp > offset + times, np.nextafter(stamp, np.float32(0)), stamp)
        data = {
            "freq": freqs, "abs_Ewe": abs_e, "abs_I": abs_i, "phase_Zwe": phase, "Ewe": np.full(n, e_dc),
            "I": np.full(n, i_dc), "t": stamp, "Irange": np.full(n, int(t.scalar("I_Range", 12))),
        }  # fmt: skip
        words = encode_rows(columns(t.table.technique_id, 1, self.config.board), data, n, self.config.board)
        voltage, current = np.full(n, e_dc), np.full(n, i_dc)

        def truncate(elapsed: float) -> Segment:
            keep = int(np.searchsorted(times, elapsed, side="right"))
            return Segment(self.position, t.table.technique_id, 1, self.loop_jumps, self._technique_start, start,
                           times[:keep], words[:keep], voltage[:keep], current[:keep], elapsed,
                           frequency=freqs[:keep])  # fmt: skip

        return Segment(
            self.position, t.table.technique_id, 1, self.loop_jumps, self._technique_start, start, times, words,
            voltage, current, float(times[-1]) if n else 0.0, frequency=freqs, truncate=truncate,
        )  # fmt: skip


@dataclass
class DataBlock:
    """Pending rows of one technique and process, waiting for ``BL_GetData``."""

    technique_index: int
    technique_id: int
    process: int
    loop: int
    start_time: float
    rows: list[np.ndarray] = field(default_factory=list)
    count: int = 0

    def take(self, max_rows: int) -> np.ndarray:
        words = np.concatenate(self.rows) if len(self.rows) > 1 else self.rows[0]
        head, rest = words[:max_rows], words[max_rows:]
        self.rows = [rest] if len(rest) else []
        self.count = len(rest)
        return head
