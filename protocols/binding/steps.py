"""The steps of a protocol as step-program steps: one method per step kind, each returning its program step type.

:class:`StepBinder` walks the steps in order because some checks need the step before ("this charge ends below
where the discharge before it left the cell") and because a ``repeat`` becomes a jump back to the index its body
starts at. Each kind's method checks what the kind needs (a CCCV's hold current below its constant current, an
EIS spectrum an analyser can measure) and returns the :mod:`protocols.program` step it binds to, ``None`` when it
reported a problem, or :data:`NEEDS_CELL` when nothing is wrong but its values need the cell and none was given.

Every step takes an index, even one with a problem, so that ids and the step bound count the steps as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Final, TypedDict

from pydantic import BaseModel

from protocols import model as m
from protocols.binding.context import Binding
from protocols.binding.quantities import (
    check_current_setpoint,
    check_setpoint_voltage,
    positive_current,
    record_rule,
    resolve,
)
from protocols.binding.terminations import Jump, bind_until
from protocols.errors import Path, did_you_mean, format_path, name_list
from protocols.program import (
    MAX_PASSES,
    Action,
    CaStep,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    LoopStep,
    LsvStep,
    PowerStep,
    ProgramStep,
    Quantity,
    RecordRule,
    RestStep,
    SourceLocation,
    TemperatureStep,
    Termination,
)
from protocols.units import Current, Voltage, format_si

#: Steps in one program. A program is uploaded whole to one channel: a BTS step file holds 254 steps and an EClib
#: sequence is one BL_LoadTechnique round trip per step. 1000 is four times the Neware bound and far above any
#: real protocol (the library's have at most 7); long tests are loops, not steps written out. The bound also keeps
#: planning a huge file fast (``station plan`` prints a row per step).
MAX_PROGRAM_STEPS = 1000
#: EIS frequencies an impedance analyser can measure: Biologic boards span 10 uHz to 7 MHz (SP-300 family), other
#: makers similar; one decade of margin each side. Outside it a spectrum is a typing mistake (``20 kHz`` as ``20 GHz``).
EIS_MIN_HZ, EIS_MAX_HZ = 1e-6, 1e8


class _NeedsCell(Enum):
    NEEDS_CELL = "valid as far as can be told without a cell, but its values need one"


#: what a step method returns for a step that is fine without a cell but cannot be built without one
NEEDS_CELL: Final = _NeedsCell.NEEDS_CELL
Bound = ProgramStep | _NeedsCell | None


class StepCommon(TypedDict):
    """The fields every program step has, decided by where the step stands rather than by its kind."""

    index: int
    record: RecordRule
    tag: str | None
    label: str | None
    source: SourceLocation


@dataclass
class StepBinder:
    """Binds the steps of one document in order; ``steps`` holds each program step, or ``None`` where a step could
    not be built (a problem, or no cell)."""

    b: Binding
    default_record: RecordRule
    steps: list[ProgramStep | None] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    jumps: list[tuple[int, Jump]] = field(default_factory=list)  # (position in steps, jump)
    passes: int = 1  # how often the steps being bound run: the product of the enclosing repeat counts
    depth: int = 0  # how many repeats enclose the steps being bound
    temperature_steps: list[int] = field(default_factory=list)  # indices of temperature steps, built or not
    last_voltage_end: tuple[str, float] | None = None  # (direction, V) where the step before left the cell

    def bind_steps(self, steps: list[BaseModel], path: Path, tag: str | None, indices: list[int] | None = None) -> None:
        for i, step in zip(indices or range(len(steps)), steps, strict=True):
            self.bind_step(step, (*path, i), tag)

    def bind_step(self, step: BaseModel, path: Path, tag: str | None) -> None:
        if isinstance(step, m.RepeatDoc):
            self.repeat(step, path, tag)
            return
        kind = m.step_kind_of(step)
        body = getattr(step, kind)
        body_path = (*path, kind)
        common = self._common(body, body_path, path, tag)
        match step:
            case m.RestStepDoc(rest=rest):
                bound = self.rest(rest, body_path, common)
            case m.ChargeStepDoc(charge=current) | m.DischargeStepDoc(discharge=current):
                bound = self.current(current, body_path, kind, common)
            case m.HoldStepDoc(hold=hold):
                bound = self.hold(hold, body_path, common)
            case m.PowerStepDoc(power=power):
                bound = self.power(power, body_path, common)
            case m.CaStepDoc(ca=ca):
                bound = self.ca(ca, body_path, common)
            case m.EisStepDoc(eis=eis):
                bound = self.eis(eis, body_path, common)
            case m.CvStepDoc(cv=cv):
                bound = self.cv(cv, body_path, common)
            case m.LsvStepDoc(lsv=lsv):
                bound = self.lsv(lsv, body_path, common)
            case m.TemperatureStepDoc(temperature=temperature):
                self.temperature_steps.append(common["index"])
                bound = self.temperature(temperature, body_path, path, common)
            case _:  # pragma: no cover - the models admit no other step
                raise TypeError(f"not a step model: {type(step).__name__}")
        if bound is None:
            self.last_voltage_end = None
        self.steps.append(None if bound is NEEDS_CELL else bound)

    # -- what every step has ---------------------------------------------------------------------------------------

    def _next_index(self, path: Path) -> int:
        if len(self.steps) == MAX_PROGRAM_STEPS:
            self.b.problem(path, f"the protocol has more than {MAX_PROGRAM_STEPS} steps once its repeats are loops",
                           expected=f"at most {MAX_PROGRAM_STEPS} steps (a BTS step file holds 254): repeat steps "
                           "with 'repeat' instead of writing them out", found=f"step {len(self.steps) + 1} here")
        return len(self.steps) + 1

    def _source(self, path: Path) -> SourceLocation:
        line, column = self.b.source.locate(path)
        return SourceLocation(file=self.b.source.file, line=line, column=column, path=format_path(path))

    def _common(self, body: BaseModel, body_path: Path, path: Path, tag: str | None) -> StepCommon:
        index = self._next_index(path)
        record = record_rule(self.b, getattr(body, "record", None), (*body_path, "record")) or self.default_record
        label = getattr(body, "id", None)
        if label is not None:
            if label in self.labels:
                self.b.problem((*body_path, "id"), f"step id '{label}' is used twice", "a unique id", repr(label))
            self.labels[label] = index
        return StepCommon(index=index, record=record, tag=tag, label=label, source=self._source(path))

    def _ends(self, until: m.Limits | list[m.LimitEntry] | None, kind: str, path: Path,
              direction: str | None) -> list[Termination] | None:
        """The step's terminations; their jumps wait in :attr:`jumps` for every id to be known."""
        ends = bind_until(self.b, until, kind, path, direction)
        self.jumps.extend((len(self.steps), jump) for jump in ends.jumps)
        return ends.terminations

    def _require_end(self, until: list[Termination] | None, path: Path, kind: str) -> bool:
        if until is None:
            return False
        if not until:
            self.b.problem(path, f"this {kind} step can never end: give it an 'until'",
                           expected="'until: {voltage: ..., time: ...}'", found="no termination")
            return False
        return True

    def _check_start(self, direction: str, until: list[Termination], path: Path) -> None:
        """A step whose voltage limit is already met where the previous step left the cell ends at once."""
        limit = next((t for t in until if t.quantity is Quantity.VOLTAGE), None)
        previous = self.last_voltage_end
        if limit is None or previous is None:
            return
        prev_dir, prev_v = previous
        if direction == "charge" and prev_dir == "discharge" and limit.value <= prev_v:
            self.b.problem((*path, "until", "voltage"), f"this charge ends at {limit.value:g} V but the step before "
                           f"leaves the cell at {prev_v:g} V: it would end at once", expected=f"a limit above "
                           f"{prev_v:g} V", found=f"{limit.value:g} V")
        if direction == "discharge" and prev_dir == "charge" and limit.value >= prev_v:
            self.b.problem((*path, "until", "voltage"), f"this discharge ends at {limit.value:g} V but the step "
                           f"before leaves the cell at {prev_v:g} V: it would end at once", expected=f"a limit below "
                           f"{prev_v:g} V", found=f"{limit.value:g} V")

    def _remember_end(self, direction: str | None, until: list[Termination]) -> None:
        only = until[0] if len(until) == 1 else None
        if direction and only is not None and only.quantity is Quantity.VOLTAGE:
            self.last_voltage_end = (direction, only.value)
        else:
            self.last_voltage_end = None

    # -- per kind --------------------------------------------------------------------------------------------------

    def rest(self, body: m.RestBody, path: Path, common: StepCommon) -> Bound:
        until = self._ends(body.until, "rest", path, None)
        if not self._require_end(until, path, "rest"):
            return None
        return RestStep(until=tuple(until), **common)

    def current(self, body: m.CurrentBody, path: Path, direction: str, common: StepCommon) -> Bound:
        """A constant-current step, or with ``then_hold`` a CCCV step (CC to the voltage limit, then CV at it)."""
        b = self.b
        magnitude = resolve(b, body.current, (*path, "current"))
        if magnitude is None and body.current.value <= 0:
            magnitude = body.current.value  # relative and no cell to resolve it: the sign is known
        check_current_setpoint(b, magnitude, (*path, "current"), body.current)
        until = self._ends(body.until, direction, path, direction)
        hold_voltage = None
        if body.then_hold is not None and until is not None:
            voltage_limit = next((t for t in until if t.quantity is Quantity.VOLTAGE), None)
            if voltage_limit is not None and (voltage_limit.then is not Action.NEXT or any(
                    jump.termination is voltage_limit for _, jump in self.jumps)):
                b.problem((*path, "until"), "the voltage limit of a CCCV step is where its hold starts, so it "
                          "cannot jump or end the run", expected="'then' on the hold's own limits (then_hold) "
                          "or on another limit of the step", found=f"a 'then' on {voltage_limit.value:g} V")
                return None
            if body.then_hold.voltage is not None:
                hold_voltage = body.then_hold.voltage.value
                check_setpoint_voltage(b, hold_voltage, (*path, "then_hold", "voltage"), body.then_hold.voltage.text)
            elif voltage_limit is not None:
                hold_voltage = voltage_limit.value
            else:
                b.problem((*path, "then_hold"), "then_hold holds at the step's voltage limit, and this step has "
                          "none", expected="'until: {voltage: ...}' on the step, or then_hold.voltage",
                          found="no voltage limit")
                return None
            hold_until = self._ends(body.then_hold.until, "hold", (*path, "then_hold"), None)
            if hold_until is None:
                return None
            hold_current = next((t for t in hold_until if t.quantity is Quantity.CURRENT), None)
            if hold_current is None:
                b.problem((*path, "then_hold", "until"), "the hold phase of a CCCV step ends on a current",
                          expected="'until: {current: C/20}'", found="no current limit")
                return None
            if magnitude is not None and hold_current.value and hold_current.value >= magnitude:
                b.problem((*path, "then_hold", "until", "current"), "the hold would end at once: its end current "
                          "is not below the constant current", expected=f"below {format_si(magnitude, 'A')}",
                          found=format_si(hold_current.value, "A"))
            until = [t for t in until if t.quantity is not Quantity.VOLTAGE] + hold_until
        if not self._require_end(until, path, direction):
            return None
        if body.then_hold is None:
            self._check_start(direction, until, path)
        self._remember_end(direction, until)
        if magnitude is None or magnitude <= 0:
            return None if b.cell is not None else NEEDS_CELL
        sign = 1.0 if direction == "charge" else -1.0
        return CurrentStep(kind="charge" if direction == "charge" else "discharge", current=sign * magnitude,
                           hold_voltage=hold_voltage, until=tuple(until), **common)

    def hold(self, body: m.HoldBody, path: Path, common: StepCommon) -> Bound:
        b = self.b
        check_setpoint_voltage(b, body.voltage.value, (*path, "voltage"), body.voltage.text)
        current_limit = None
        if body.current_limit is not None:
            current_limit = positive_current(b, body.current_limit, (*path, "current_limit"),
                                             "a hold's current limit")
            check_current_setpoint(b, current_limit, (*path, "current_limit"), body.current_limit)
        until = self._ends(body.until, "hold", path, None)
        if not self._require_end(until, path, "hold"):
            return None
        if body.current_limit is not None and current_limit is None:
            return None if b.cell is not None else NEEDS_CELL
        return HoldStep(voltage=body.voltage.value, current_limit=current_limit, direction=body.direction,
                        until=tuple(until), **common)

    def power(self, body: m.PowerBody, path: Path, common: StepCommon) -> Bound:
        power = body.power.value
        if power <= 0:
            self.b.problem((*path, "power"), "a power set-point must be above zero (the direction says which way)",
                           "a positive magnitude", repr(body.power.text))
            return None
        until = self._ends(body.until, "power", path, body.direction)
        if not self._require_end(until, path, "power"):
            return None
        self._remember_end(body.direction, until)
        return PowerStep(power=power if body.direction == "charge" else -power, until=tuple(until), **common)

    def ca(self, body: m.CaBody, path: Path, common: StepCommon) -> Bound:
        if body.vs == "reference":
            check_setpoint_voltage(self.b, body.voltage.value, (*path, "voltage"), body.voltage.text)
        until = self._ends(body.until, "ca", path, None)
        if not self._require_end(until, path, "ca"):
            return None
        return CaStep(voltage=body.voltage.value, vs_ocv=body.vs == "ocv", until=tuple(until), **common)

    def _eis_setpoint(self, value: Voltage | Current, path: Path) -> float | None:
        """An EIS amplitude or bias in V (potentio) or A (galvano: a relative current needs the cell)."""
        return value.value if isinstance(value, Voltage) else resolve(self.b, value, path)

    def eis(self, body: m.EisBody, path: Path, common: StepCommon) -> Bound:
        b = self.b
        amplitude = self._eis_setpoint(body.amplitude, (*path, "amplitude"))
        if amplitude is None and body.amplitude.value <= 0:
            amplitude = body.amplitude.value  # relative and no cell to resolve it: the sign is known
        bias = 0.0
        if body.bias != "ocv":
            bias = self._eis_setpoint(body.bias, (*path, "bias")) or 0.0
        if amplitude is not None and amplitude <= 0:
            b.problem((*path, "amplitude"), "the EIS amplitude must be above zero", "> 0", repr(body.amplitude.text))
            return None
        f_start, f_end = body.from_.value, body.to.value
        for name, value, text in (("from", f_start, body.from_.text), ("to", f_end, body.to.text)):
            if value <= 0:
                b.problem((*path, name), "a frequency must be above zero", "> 0 Hz", repr(text))
                return None
            if not EIS_MIN_HZ <= value <= EIS_MAX_HZ:
                b.problem((*path, name), "no impedance analyser measures at this frequency",
                          "a frequency from 1 uHz to 100 MHz", repr(text))
                return None
        if f_start == f_end:
            b.problem((*path, "to"), "the spectrum has no width", "a frequency other than 'from'", body.to.text)
            return None
        self.last_voltage_end = None
        if amplitude is None:
            return None if b.cell is not None else NEEDS_CELL
        return EisStep(mode=body.mode, f_start=f_start, f_end=f_end, points_per_decade=body.points_per_decade,
                       amplitude=amplitude, bias=bias, bias_vs_ocv=body.bias == "ocv" or body.vs == "ocv",
                       measures_per_point=body.measures_per_point, **common)

    def cv(self, body: m.CvBody, path: Path, common: StepCommon) -> Bound:
        b = self.b
        rate = body.scan_rate.value
        if rate <= 0:
            b.problem((*path, "scan_rate"), "the scan rate must be above zero", "> 0 V/s", body.scan_rate.text)
            return None
        first, second = body.vertices
        if first.value == second.value:
            b.problem((*path, "vertices"), "the two vertices are equal, so nothing is swept",
                      "two different voltages", str([first.text, second.text]))
            return None
        for i, vertex in enumerate(body.vertices):
            check_setpoint_voltage(b, vertex.value, (*path, "vertices", i), vertex.text)
        self.last_voltage_end = None
        return CvStep(scan_rate=rate, start=None if body.start == "ocv" else body.start.value,
                      vertex_1=first.value, vertex_2=second.value,
                      end=None if body.end == "ocv" else body.end.value, cycles=body.cycles, **common)

    def lsv(self, body: m.LsvBody, path: Path, common: StepCommon) -> Bound:
        b = self.b
        rate = body.scan_rate.value
        if rate <= 0:
            b.problem((*path, "scan_rate"), "the scan rate must be above zero", "> 0 V/s", body.scan_rate.text)
            return None
        end = body.to.value
        check_setpoint_voltage(b, end, (*path, "to"), body.to.text)
        start = None if body.from_ == "ocv" else body.from_.value
        if start is not None and start == end:
            b.problem((*path, "to"), "the sweep has no width", "a voltage other than 'from'", body.to.text)
            return None
        self.last_voltage_end = None
        return LsvStep(scan_rate=rate, start=start, end=end, **common)

    def temperature(self, body: m.TemperatureBody, path: Path, step_path: Path, common: StepCommon) -> Bound:
        """A chamber set point the station waits on. The station runs the instrument programs between temperature
        steps one after the other (:mod:`protocols.segments`), so a temperature step cannot be repeated by an
        instrument's loop."""
        inside = bool(self.depth)
        if inside:
            self.b.problem(step_path, "a temperature step is carried out by the station between instrument programs, "
                           "so in this version it stands at the top level of 'steps', not inside 'repeat'",
                           expected="the temperature step before or after the repeat (repeat the protocol at several "
                           "temperatures with a campaign)", found="a temperature step inside a repeat", key=True)
        self.last_voltage_end = None  # the open-circuit voltage moves with the temperature
        step = temperature_step(self.b, body, path, common)
        return None if inside else step

    def repeat(self, step: m.RepeatDoc, path: Path, tag: str | None) -> None:
        """A loop: its body, then a jump back to the body's first step. Nested counts multiply, and their product
        is held to the same bound as one count, because the instruments number every pass (cycle) with counters of
        that width."""
        first = len(self.steps) + 1
        outer = self.passes
        total = outer * step.repeat
        if total > MAX_PASSES >= outer:
            self.b.problem((*path, "repeat"), f"nested repeats run these steps {total} times in all, more than any "
                           "instrument's cycle counter holds", expected=f"at most {MAX_PASSES} passes in all (the "
                           "product of the nested counts)", found=f"{step.repeat} x {outer}")
        self.passes = min(total, MAX_PASSES + 1)
        self.last_voltage_end = None
        self.depth += 1
        self.bind_steps(step.steps, (*path, "steps"), step.tag or tag)
        self.depth -= 1
        self.passes = outer
        index = self._next_index(path)
        self.steps.append(LoopStep(index=index, target=first, count=step.repeat, tag=step.tag or tag,
                                   source=self._source(path)))
        self.last_voltage_end = None

    # -- finish ------------------------------------------------------------------------------------------------

    def _temperature_between(self, source: int, target: int) -> int | None:
        """The index of a temperature step a jump from step ``source`` to step ``target`` crosses or lands on
        (``None``: both are in the same instrument program)."""
        low, high = min(source, target), max(source, target)
        return next((i for i in self.temperature_steps if low <= i <= high and i != source), None)

    def resolve_jumps(self) -> None:
        """Every ``then: <id>`` becomes a jump to that step's index, or a problem naming the ids there are."""
        ids = name_list(sorted(self.labels)) or "(no step has an id)"
        for position, jump in self.jumps:
            target = self.labels.get(jump.label)
            if target is None:
                self.b.problem(jump.path, f"'then' names no step: '{jump.label}'"
                               f"{did_you_mean(jump.label, self.labels)}",
                               expected="'next', 'end' or the id of a step: " + ids, found=repr(jump.label))
                continue
            crossed = self._temperature_between(position + 1, target)
            if crossed is not None:
                self.b.problem(jump.path, f"'then: {jump.label}' jumps across the temperature step {crossed}: the "
                               "station runs the steps between temperature steps as separate instrument programs, "
                               "and an instrument cannot jump into another", expected="a step between the same "
                               "temperature steps, 'next' or 'end'", found=repr(jump.label))
                continue
            step = self.steps[position]
            if step is None:  # not built: only the id is checked
                continue
            until = list(step.until)
            at = next((i for i, t in enumerate(until) if t is jump.termination), None)
            if at is None:
                continue
            until[at] = until[at].model_copy(update={"then": Action.JUMP, "target": target})
            self.steps[position] = step.model_copy(update={"until": tuple(until)})


def temperature_step(b: Binding, body: m.TemperatureBody, path: Path, common: StepCommon) -> TemperatureStep | None:
    """A temperature step's set point, band and waits, checked (``None``: a problem was reported at ``path``).

    The set point, and the top of its band, must keep the cell within the whole-run and cell temperature limits
    (``b.safety``): a chamber that settles within its band must not stop the run. Campaign stages that set the
    chamber are held to the same rules (:mod:`protocols.campaign`)."""
    ok = True
    setpoint, band = body.setpoint.value, body.band.value
    if band <= 0:
        b.problem((*path, "band"), "the stability band must be above zero", "a difference such as '0.5 degC'",
                  repr(body.band.text))
        ok = False
    if body.stable_for.value < 0:
        b.problem((*path, "stable_for"), "the time to stay stable cannot be negative", "a duration such as "
                  "'30 min' (0 s: go on once within the band)", repr(body.stable_for.text))
        ok = False
    if body.max_wait.value <= 0:
        b.problem((*path, "max_wait"), f"max_wait {body.max_wait.text} leaves no time to wait for the chamber",
                  expected="a duration above zero, such as '4 h'", found=repr(body.max_wait.text))
        ok = False
    elif body.max_wait.value < body.stable_for.value:
        b.problem((*path, "max_wait"), f"max_wait {body.max_wait.text} is shorter than stable_for "
                  f"{body.stable_for.text}, so the wait would always fail",
                  expected=f"at least {body.stable_for.text} plus the chamber's ramp time",
                  found=repr(body.max_wait.text))
        ok = False
    limit = b.safety.temperature_max
    if limit is not None and setpoint > limit:
        b.problem((*path, "set"), f"the set point {body.setpoint.text} is above the safety/cell temperature limit "
                  f"{limit:g} degC, so the run would stop once the chamber got there",
                  expected=f"a set point of at most {limit:g} degC, or a higher safety.temperature",
                  found=repr(body.setpoint.text))
        ok = False
    elif limit is not None and band > 0 and setpoint + band > limit:
        b.problem((*path, "band"), f"the band reaches {setpoint + band:g} degC, above the safety/cell temperature "
                  f"limit {limit:g} degC: an ordinary reading within the band would stop the run",
                  expected=f"a band of at most {limit - setpoint:g} K, or a lower set point",
                  found=repr(body.band.text))
        ok = False
    if not ok:
        return None
    return TemperatureStep(setpoint=setpoint, band=band, stable_for=body.stable_for.value,
                           max_wait=body.max_wait.value, **common)
