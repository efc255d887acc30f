"""Compile a step program into a Biologic technique list, choosing ranges and bandwidth from each step's needs.

One program step becomes one technique (a single-step CA/CP/limit technique, OCV, PEIS/GEIS, CV, a one-segment
VSCANLIMIT for a linear sweep, or LOOP for a loop step), so a technique's position maps straight back to the step
index in the data. Every problem in the whole program is collected before anything is raised, so the user sees all
the steps the channel cannot run in one message, before anything is loaded on the instrument.

Choices the reference leaves to us, made explicit here:

* Galvanostatic techniques get the smallest decade current range whose full scale covers |I| (AUTO is refused by
  the firmware for them); potentiostatic ones get the smallest range covering a known bound (the step's current
  limit or the program's safety current) and AUTO when there is none.
* The voltage range is the smallest of +-2.5/5/10 V strictly larger than every absolute voltage the step or the
  safety window names (a vertex at exactly 2.5 V would sit on the rail of the 2.5 V range); AUTO when none is known.
* Bandwidth 5 ("medium", EC-Lab's default) for DC techniques; for impedance 7 up to 200 kHz, 8 up to 1 MHz and 9
  above, refused if the channel's ``MaxBandwidth`` is lower.
* A rest that ends on a voltage is a 0 A CPLIMIT step on the 10 uA range (OCV has no limit tests); a rest ending on
  dV/dt cannot run (no limit test watches dV/dt).
* A current step that ends on capacity is a constant-current step, so the capacity end is compiled exactly into
  its duration (Q / |I|): the limit techniques have no charge test.
* Conditional jumps. A limit test ends its step by the step's ``Exit_Cond``: 0 next step (of the technique),
  1 next technique, 2 stop the experiment (reference sections 3.4 and 3.9); EClib has no goto, and LOOP jumps back
  unconditionally. With one single-step technique per program step, "next technique" is the technique at index
  i + 1 in the loaded list, i.e. the program's next step: so a termination compiles as ``Exit_Cond`` 1 when it goes
  on or jumps to the step whose technique comes next (``then: <id of the next step>``), as 2 when it ends the run
  (``then: end``), and any other jump (back, or over steps or a loop's end) is refused by name. Merging steps into
  multi-step techniques would make a forward skip expressible (1 skips the technique's remaining steps), but data
  rows of CP/CA techniques carry no step number (reference section 4), so records could not be mapped back.
* The program's safety limits ride in the limit tests of every step that can carry them, with ``Exit_Cond``
  "stop experiment", so the instrument itself stops the channel at the first acquisition past a limit; a CP or CA
  step becomes CPLIMIT or CALIMIT for that. Which limits each step carries, and which rely on the station's
  polling instead (OCV, EIS and CV take no tests; a step whose own ends go on has no exit left for them), is
  decided in :mod:`drivers.biologic.limits` (reference sections 3.4 and 3.9) and returned as
  :attr:`CompiledProgram.safety`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from drivers.base import Capabilities, CapabilityError, ChannelRanges, StepSupport, station_step_problem
from drivers.biologic.codes import ERange, ExitCond, IRange
from drivers.biologic.limits import MAX_LIMIT_TESTS, LimitTest, StepSafety, plan_safety, termination_tests
from drivers.biologic.params import (
    CA,
    CALIMIT,
    CP,
    CPLIMIT,
    CV,
    GEIS,
    LOOP,
    OCV,
    PEIS,
    VSCANLIMIT,
    ParamValue,
    TechniqueSpec,
    encode,
)
from drivers.biologic.scan_rate import DEFAULT_SCAN_RATE_UNIT, ScanRateUnit, scan_rate_parameter
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
    RecordRule,
    RestStep,
    StepProgram,
    Termination,
)

DEFAULT_RECORD_DT = 10.0
"""Seconds between recorded points when neither the step nor the program sets a recording rule."""
DEFAULT_CV_RECORD_DE = 0.001
"""Volts between recorded CV/LSV points when no voltage-change rule is given (2490 points over 0.01-2.5 V)."""
OPEN_DURATION_S = 1_000_000.0
"""Duration given to a step that ends only on a limit: the instrument needs a finite ``Duration_step``."""
DC_BANDWIDTH = 5


#: the ends each technique takes, by the name messages give it; any other end of a step is refused by name. Time
#: and capacity ends are compiled into the technique's duration (they go on); voltage and current ends are limit
#: tests, which can also stop the experiment (Exit_Cond 2)
TECHNIQUE_ENDS: dict[str, frozenset[Quantity]] = {
    "rest (OCV)": frozenset({Quantity.TIME}),
    "rest with a voltage end": frozenset({Quantity.TIME, Quantity.VOLTAGE}),
    "constant-current": frozenset({Quantity.TIME, Quantity.VOLTAGE, Quantity.CAPACITY}),
    "potentiostatic": frozenset({Quantity.TIME, Quantity.CURRENT}),
    "impedance": frozenset(),
    "cyclic voltammetry": frozenset(),
    "linear sweep": frozenset({Quantity.VOLTAGE, Quantity.CURRENT}),
}
#: ends that are limit tests: the only ones that can end the run before the last step (EClib has no goto)
LIMIT_TEST_ENDS = frozenset({Quantity.VOLTAGE, Quantity.CURRENT})
#: program step kind -> the techniques it compiles to (one technique per step)
KIND_TECHNIQUES: dict[str, tuple[str, ...]] = {
    "rest": ("rest (OCV)", "rest with a voltage end"),
    "charge": ("constant-current",), "discharge": ("constant-current",),
    "hold": ("potentiostatic",), "ca": ("potentiostatic",),
    "eis": ("impedance",), "cv": ("cyclic voltammetry",), "lsv": ("linear sweep",),
}
#: optional step forms (``drivers.base.STEP_FEATURES``) the techniques run: a set-point relative to the OCV is the
#: techniques' ``vs_initial``
KIND_FEATURES: dict[str, frozenset[str]] = dict.fromkeys(("ca", "eis", "cv", "lsv"), frozenset({"vs_ocv"}))
#: optional step forms no technique runs, and what to do instead
REFUSED_FEATURES = {"cccv": "a CCCV step has no Biologic technique; write it as a charge step then a hold"}


def capabilities(caps: ChannelCapabilities) -> Capabilities:
    """What a Biologic channel with ``caps`` can run, from the tables above (no I/O); without an EIS board, no
    impedance. Pause: EClib has none; jumps: a limit test only goes on or stops the experiment."""
    steps = [StepSupport("loop")]
    for kind, techniques in KIND_TECHNIQUES.items():
        if kind == "eis" and not caps.has_eis:
            continue
        ends = frozenset().union(*(TECHNIQUE_ENDS[t] for t in techniques))
        steps.append(StepSupport(kind, ends, ends & LIMIT_TEST_ENDS, KIND_FEATURES.get(kind, frozenset())))
    return Capabilities(instrument="biologic", steps=tuple(steps), jumps=False, pause=False, ranges=caps.ranges)


@dataclass(frozen=True, slots=True)
class ChannelCapabilities:
    """What one channel can do, from ``BL_GetChannelInfos``, the board type and the station config."""

    min_i_range: IRange = IRange.I_1NA
    max_i_range: IRange = IRange.I_1A
    max_bandwidth: int = 7
    has_eis: bool = True
    ranges: ChannelRanges | None = None
    scan_rate_unit: ScanRateUnit = DEFAULT_SCAN_RATE_UNIT
    """What the firmware's ``Scan_Rate`` means on this channel (:mod:`drivers.biologic.scan_rate`)."""

    def decade_ranges(self) -> list[IRange]:
        lo, hi = max(0, int(self.min_i_range)), min(10, int(self.max_i_range))
        return [IRange(k) for k in range(lo, hi + 1)]


@dataclass(frozen=True, slots=True)
class CompiledTechnique:
    spec: TechniqueSpec
    params: tuple[ParamValue, ...]
    step_index: int
    values: dict[str, object] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class CompiledProgram:
    techniques: tuple[CompiledTechnique, ...]
    safety: tuple[StepSafety, ...] = ()
    """Per step, how each safety limit is enforced: by the instrument's own limit tests, by the technique's
    control, by the step's own tighter end, or only by polling (see :mod:`drivers.biologic.limits`)."""

    def step_index(self, technique_index: int) -> int:
        return self.techniques[technique_index].step_index

    def polled(self) -> dict[int, tuple[str, ...]]:
        """Step index -> the safety limits only the station's polling watches there (steps with none omitted)."""
        return {s.step_index: s.polled for s in self.safety if s.polled}

    def is_loop(self, technique_index: int) -> bool:
        return self.techniques[technique_index].spec is LOOP


class _Problems(list[str]):
    def add(self, step: ProgramStep, message: str) -> None:
        name = step.label or step.kind
        self.append(f"step {step.index} ({name}): {message}")


def _record(step: ProgramStep, program: StepProgram) -> RecordRule:
    rule = step.record
    if rule.every_s is None and rule.voltage_change is None and rule.current_change is None:
        rule = program.record
    return rule


def pick_current_range(need: float, caps: ChannelCapabilities) -> IRange | None:
    """The smallest decade range covering ``need`` amperes on this channel, or ``None`` if none does."""
    for code in caps.decade_ranges():
        if code.full_scale is not None and code.full_scale >= need * (1 - 1e-9):
            return code
    return None


def pick_voltage_range(need: float | None) -> ERange | None:
    if need is None:
        return ERange.AUTO
    for code in (ERange.E_2_5V, ERange.E_5V, ERange.E_10V):
        if need < code.full_scale:  # type: ignore[operator]
            return code
    return None


def eis_bandwidth(f_max: float) -> int:
    if f_max <= 200e3:
        return 7
    return 8 if f_max <= 1e6 else 9


class _StepCompiler:
    """Compiles one step; collects problems instead of raising so the whole program is reported at once."""

    def __init__(self, program: StepProgram, caps: ChannelCapabilities, problems: _Problems):
        self.program = program
        self.caps = caps
        self.problems = problems
        self.last_index = program.steps[-1].index
        self.safety = plan_safety(program)

    # -- shared needs ----------------------------------------------------------------------------------------
    def _voltages(self, step: ProgramStep, values: Sequence[float | None]) -> ERange:
        safety = self.program.safety
        absolute = [v for v in values if v is not None]
        absolute += [t.value for t in step.until if t.quantity is Quantity.VOLTAGE]
        ranges = self.caps.ranges
        if ranges is not None:
            for v in absolute:
                if not ranges.voltage_min <= v <= ranges.voltage_max:
                    self.problems.add(
                        step,
                        f"{v:g} V is outside the channel's {ranges.voltage_min:g}..{ranges.voltage_max:g} V window",
                    )
        window = absolute + [v for v in (safety.voltage_min, safety.voltage_max) if v is not None]
        need = max((abs(v) for v in window), default=None)
        code = pick_voltage_range(need)
        if code is None:
            self.problems.add(step, f"needs {need:g} V, beyond the largest voltage range (+-10 V)")
            return ERange.E_10V
        return code

    def _current_range(self, step: ProgramStep, need: float | None, *, galvanostatic: bool) -> IRange:
        ranges = self.caps.ranges
        if need is not None and ranges is not None and need > ranges.current_max:
            self.problems.add(step, f"needs {need:g} A, above the channel's {ranges.current_max:g} A maximum")
        if need is None:
            safety = self.program.safety.current_max
            if safety is None or galvanostatic:
                return IRange.AUTO
            need = safety
        code = pick_current_range(need, self.caps)
        if code is None:
            largest = self.caps.decade_ranges()[-1].full_scale if self.caps.decade_ranges() else 0.0
            self.problems.add(step, f"needs a {need:g} A current range; the channel's largest is {largest:g} A")
            return IRange.AUTO
        return code

    def _bandwidth(self, step: ProgramStep, wanted: int) -> int:
        if wanted > self.caps.max_bandwidth:
            if wanted == DC_BANDWIDTH:
                return self.caps.max_bandwidth
            self.problems.add(step, f"needs bandwidth {wanted}; the channel supports at most {self.caps.max_bandwidth}")
        return min(wanted, self.caps.max_bandwidth)

    def _exit(self, step: ProgramStep, terminations: Sequence[Termination]) -> ExitCond:
        """The one exit condition all of a step's limit tests share (the technique has one per step).

        ``Exit_Cond`` 1 goes to the next technique in the loaded list: technique ``step.index`` (0-based), the one
        compiled from step ``step.index + 1``. A jump there is going on; ``end`` is 2; nothing else is expressible.
        """
        actions = set()
        next_technique = step.index  # the 0-based technique index of program step index + 1
        for t in terminations:
            if t.then is Action.JUMP and t.target is not None and t.target - 1 != next_technique:
                self.problems.add(
                    step, f"'{t.describe()}' jumps to step {t.target}; a Biologic limit test can only go on to the "
                    f"next technique (Exit_Cond 1: step {step.index + 1}) or stop the experiment (Exit_Cond 2): "
                    "EClib has no goto (reference 3.4)"
                )  # fmt: skip
            actions.add(Action.END if t.then is Action.END else Action.NEXT)
        if len(actions) > 1:
            self.problems.add(step, "its limits end in different actions; Biologic steps have one exit per step")
        return ExitCond.STOP if Action.END in actions else ExitCond.NEXT_TECHNIQUE

    def _duration(self, step: ProgramStep, extra: Sequence[float] = ()) -> float:
        times = [t for t in step.until if t.quantity is Quantity.TIME]
        for t in times:
            if t.op is not Comparison.GE:
                self.problems.add(step, f"'{t.describe()}': a time end must be '>='")
            if t.then is Action.END and step.index != self.last_index:
                self.problems.add(step, f"'{t.describe()}': a timed end cannot stop the run on Biologic")
            if t.then is Action.JUMP and t.target != step.index + 1:
                self.problems.add(step, f"'{t.describe()}': a timed end cannot jump on Biologic")
        candidates = [t.value for t in times] + list(extra)
        if not candidates:
            candidates = [self.program.safety.step_duration_max or OPEN_DURATION_S]
        return min(candidates)

    def _refuse(self, step: ProgramStep, technique: str) -> None:
        """Refuse every end the technique cannot take (:data:`TECHNIQUE_ENDS`)."""
        allowed = TECHNIQUE_ENDS[technique]
        for t in step.until:
            if t.quantity not in allowed:
                self.problems.add(step, f"'{t.describe()}' cannot end a {technique} step on Biologic")

    def _tests(self, step: ProgramStep, terminations: Sequence[Termination]) -> list[LimitTest]:
        """Limit tests: |I| pairs (AND-ed or OR-ed) first, then voltages OR-ed onto them, left to right."""
        tests = termination_tests(terminations)
        if len(tests) > MAX_LIMIT_TESTS:
            self.problems.add(step, f"needs {len(tests)} limit tests; Biologic steps have {MAX_LIMIT_TESTS}")
            tests = tests[:MAX_LIMIT_TESTS]
        return tests

    def _limit_values(self, step: ProgramStep, limits: Sequence[Termination], entries: int) -> dict[str, object]:
        """The step's own ends, then the safety tests its plan gives it; with safety tests the exit is "stop".

        Empty when the step has neither (it then runs as plain CP/CA). The plan only adds safety tests where the
        own ends also stop or there are none, and only into free slots (:mod:`drivers.biologic.limits`).
        """
        safety = self.safety[step.index].tests
        if not limits and not safety:
            return {}
        exit_cond = self._exit(step, limits)  # also reports ends Biologic cannot take
        if safety:
            exit_cond = ExitCond.STOP
        return self._test_values([*self._tests(step, limits), *safety], exit_cond, entries)

    @staticmethod
    def _test_values(tests: Sequence[LimitTest], exit_cond: ExitCond, entries: int) -> dict[str, object]:
        values: dict[str, object] = {}
        for n in range(MAX_LIMIT_TESTS):
            test = tests[n] if n < len(tests) else None
            values[f"Test{n + 1}_Config"] = [test.config() if test else 0] * entries
            values[f"Test{n + 1}_Value"] = [test.value if test else 0.0] * entries
        values["Exit_Cond"] = [int(exit_cond)] * entries
        return values

    # -- per kind --------------------------------------------------------------------------------------------
    def rest(self, step: RestStep) -> tuple[TechniqueSpec, dict[str, object]]:
        rule = _record(step, self.program)
        limits = [t for t in step.until if t.quantity is Quantity.VOLTAGE]
        if limits:
            return self._rest_with_limits(step, limits, rule)
        self._refuse(step, "rest (OCV)")
        if step.limit(Quantity.TIME) is None:
            self.problems.add(step, "a rest on Biologic (OCV) needs a time end")
        return OCV, {
            "Rest_time_T": self._duration(step),
            "Record_every_dE": rule.voltage_change or 0.0,
            "Record_every_dT": rule.every_s or DEFAULT_RECORD_DT,
            "E_Range": int(self._voltages(step, [])),
        }

    def _rest_with_limits(
        self, step: RestStep, limits: list[Termination], rule: RecordRule
    ) -> tuple[TechniqueSpec, dict[str, object]]:
        """OCV has no limit tests, so a rest that ends on a voltage is a 0 A galvanostatic step with limits."""
        self._refuse(step, "rest with a voltage end")
        i_range = IRange(max(min(IRange.I_10UA, self.caps.max_i_range), self.caps.min_i_range))
        return self._galvanostatic(step, 0.0, self._duration(step), i_range, limits, rule)

    def _galvanostatic(
        self, step: ProgramStep, current: float, duration: float, i_range: IRange, limits: list[Termination],
        rule: RecordRule,
    ) -> tuple[TechniqueSpec, dict[str, object]]:  # fmt: skip
        """CP at ``current`` for ``duration``; CPLIMIT when voltage limits may end it sooner."""
        values: dict[str, object] = {
            "Current_step": [current],
            "vs_initial": [False],
            "Duration_step": [duration],
            "Step_number": 0,
            "Record_every_dT": rule.every_s or DEFAULT_RECORD_DT,
            "Record_every_dE": rule.voltage_change or 0.0,
            "N_Cycles": 0,
            "I_Range": int(i_range),
            "E_Range": int(self._voltages(step, [])),
            "Bandwidth": self._bandwidth(step, DC_BANDWIDTH),
        }
        tests = self._limit_values(step, limits, 1)
        if not tests:
            return CP, values
        values.update(tests)
        return CPLIMIT, values

    def current(self, step: CurrentStep) -> tuple[TechniqueSpec, dict[str, object]]:
        if step.hold_voltage is not None:
            self.problems.add(step, REFUSED_FEATURES["cccv"])
        self._refuse(step, "constant-current")
        rule = _record(step, self.program)
        capacity_times = []
        for t in step.until:
            if t.quantity is Quantity.CAPACITY:
                if t.op is not Comparison.GE:
                    self.problems.add(step, f"'{t.describe()}': a capacity end must be '>='")
                # it is compiled into the step's duration, which goes on (on the last step: ends the run)
                elsewhere = t.then is Action.JUMP and t.target != step.index + 1
                if elsewhere or (t.then is Action.END and step.index != self.last_index):
                    self.problems.add(step, f"'{t.describe()}': a capacity end can only go on to the next step")
                capacity_times.append(t.value * 3600.0 / abs(step.current))
        limits = [t for t in step.until if t.quantity is Quantity.VOLTAGE]
        i_range = self._current_range(step, abs(step.current), galvanostatic=True)
        return self._galvanostatic(step, step.current, self._duration(step, capacity_times), i_range, limits, rule)

    def potentiostatic(self, step: HoldStep | CaStep) -> tuple[TechniqueSpec, dict[str, object]]:
        self._refuse(step, "potentiostatic")
        rule = _record(step, self.program)
        vs_ocv = isinstance(step, CaStep) and step.vs_ocv
        bound = step.current_limit if isinstance(step, HoldStep) else None
        limits = [t for t in step.until if t.quantity is Quantity.CURRENT]
        values: dict[str, object] = {
            "Voltage_step": [step.voltage],
            "vs_initial": [vs_ocv],
            "Duration_step": [self._duration(step)],
            "Step_number": 0,
            "Record_every_dT": rule.every_s or DEFAULT_RECORD_DT,
            "Record_every_dI": rule.current_change or 0.0,
            "N_Cycles": 0,
            "I_Range": int(self._current_range(step, bound, galvanostatic=False)),
            "E_Range": int(self._voltages(step, [] if vs_ocv else [step.voltage])),
            "Bandwidth": self._bandwidth(step, DC_BANDWIDTH),
        }
        tests = self._limit_values(step, limits, 1)
        if not tests:
            return CA, values
        values.update(tests)
        return CALIMIT, values

    def eis(self, step: EisStep) -> tuple[TechniqueSpec, dict[str, object]]:
        self._refuse(step, "impedance")
        if not self.caps.has_eis:
            self.problems.add(step, "impedance needs a channel with an EIS (Z) board; this channel has none")
        rule = _record(step, self.program)
        common: dict[str, object] = {
            "vs_initial": step.bias_vs_ocv if step.mode == "potentio" else False,
            "vs_final": step.bias_vs_ocv if step.mode == "potentio" else False,
            "Duration_step": 0.0,
            "Step_number": 0,
            "Record_every_dT": rule.every_s or DEFAULT_RECORD_DT,
            "Initial_frequency": step.f_start,
            "Final_frequency": step.f_end,
            "sweep": False,  # FALSE = logarithmic spacing, as the step program defines the frequencies
            "Frequency_number": len(step.frequencies()),
            "Average_N_times": step.measures_per_point,
            "Correction": False,
            "Wait_for_steady": 0.0,
        }
        bandwidth = self._bandwidth(step, eis_bandwidth(max(step.f_start, step.f_end)))
        if step.mode == "potentio":
            bias = None if step.bias_vs_ocv else step.bias
            return PEIS, {
                **common,
                "Initial_Voltage_step": step.bias,
                "Final_Voltage_step": step.bias,
                "Record_every_dI": rule.current_change or 0.0,
                "Amplitude_Voltage": step.amplitude,
                "I_Range": int(self._current_range(step, None, galvanostatic=False)),
                "E_Range": int(self._voltages(step, [bias])),
                "Bandwidth": bandwidth,
            }
        return GEIS, {
            **common,
            "Initial_Current_step": step.bias,
            "Final_Current_step": step.bias,
            "Record_every_dE": rule.voltage_change or 0.0,
            "Amplitude_Current": step.amplitude,
            "I_Range": int(self._current_range(step, abs(step.bias) + step.amplitude, galvanostatic=True)),
            "E_Range": int(self._voltages(step, [])),
            "Bandwidth": bandwidth,
        }

    def _scan_rate(self, rate: float) -> float:
        return scan_rate_parameter(rate, self.caps.scan_rate_unit)

    def cv(self, step: CvStep) -> tuple[TechniqueSpec, dict[str, object]]:
        self._refuse(step, "cyclic voltammetry")
        rule = _record(step, self.program)
        points = [step.start, step.vertex_1, step.vertex_2, step.start, step.end]
        return CV, {
            "vs_initial": [p is None for p in points],
            "Voltage_step": [0.0 if p is None else p for p in points],
            "Scan_Rate": [self._scan_rate(step.scan_rate)] * 5,
            "Scan_number": 2,
            "Record_every_dE": rule.voltage_change or DEFAULT_CV_RECORD_DE,
            "Average_over_dE": False,
            "N_Cycles": step.cycles - 1,
            "Begin_measuring_I": 0.5,
            "End_measuring_I": 1.0,
            "I_Range": int(self._current_range(step, None, galvanostatic=False)),
            "E_Range": int(self._voltages(step, points)),
            "Bandwidth": self._bandwidth(step, DC_BANDWIDTH),
        }

    def lsv(self, step: LsvStep) -> tuple[TechniqueSpec, dict[str, object]]:
        self._refuse(step, "linear sweep")
        rule = _record(step, self.program)
        limits = list(step.until)
        values: dict[str, object] = {
            "Voltage_step": [0.0 if step.start is None else step.start, step.end],
            "vs_initial": [step.start is None, False],
            "Scan_Rate": [self._scan_rate(step.scan_rate)] * 2,
            "Scan_number": 1,
            "Record_every_dE": rule.voltage_change or DEFAULT_CV_RECORD_DE,
            "Begin_measuring_I": 0.5,
            "End_measuring_I": 1.0,
            "N_Cycles": 0,
            "I_Range": int(self._current_range(step, None, galvanostatic=False)),
            "E_Range": int(self._voltages(step, [step.start, step.end])),
            "Bandwidth": self._bandwidth(step, DC_BANDWIDTH),
        }
        values.update(self._limit_values(step, limits, 2) or self._test_values([], ExitCond.NEXT_TECHNIQUE, 2))
        return VSCANLIMIT, values


def compile_program(program: StepProgram, caps: ChannelCapabilities) -> CompiledProgram:
    """The technique list for ``program``; raises :class:`CapabilityError` listing every step that cannot run."""
    station = station_step_problem(program)
    if station is not None:  # a program with temperature steps reaches a channel only as its segments
        raise CapabilityError([station])
    problems = _Problems()
    compiler = _StepCompiler(program, caps, problems)
    first_technique: dict[int, int] = {}
    techniques: list[CompiledTechnique] = []
    for step in program.steps:
        first_technique[step.index] = len(techniques)
        if isinstance(step, LoopStep):
            spec, values = LOOP, {"loop_N_times": step.count - 1, "protocol_number": first_technique[step.target]}
        elif isinstance(step, RestStep):
            spec, values = compiler.rest(step)
        elif isinstance(step, CurrentStep):
            spec, values = compiler.current(step)
        elif isinstance(step, HoldStep | CaStep):
            spec, values = compiler.potentiostatic(step)
        elif isinstance(step, EisStep):
            spec, values = compiler.eis(step)
        elif isinstance(step, CvStep):
            spec, values = compiler.cv(step)
        elif isinstance(step, LsvStep):
            spec, values = compiler.lsv(step)
        else:
            problems.add(step, f"{step.kind} steps have no Biologic technique in the Development Package")
            continue
        for label, value in values.items():
            flat = value if isinstance(value, list) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in flat):
                problems.add(step, f"parameter {label} is not a finite number")
        techniques.append(CompiledTechnique(spec, encode(spec, values), step.index, values))
    if problems:
        raise CapabilityError(problems)
    return CompiledProgram(tuple(techniques), tuple(compiler.safety.values()))
