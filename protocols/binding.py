"""Binding: a validated protocol plus a cell become a step program, or a list of every problem found.

This is where the checks that need more than one line of the file live: C-rates and per-area values need the
cell; a limit's direction needs the step's kind; "can this step ever end?" needs the safety window, the cell's
window and the step before it. Without a cell (``station validate`` with no ``--cell``) the same pass runs and
reports everything that does not depend on the cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from protocols import model as m
from protocols.cells import Cell
from protocols.errors import Path, Problem, did_you_mean, format_path, name_list
from protocols.program import (
    MAX_PASSES,
    Action,
    CaStep,
    Comparison,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    LoopStep,
    LsvStep,
    PowerStep,
    Quantity,
    RecordRule,
    RestStep,
    SafetyLimits,
    SourceLocation,
    StepProgram,
    Termination,
)
from protocols.units import Capacity, Current, format_si, parse_capacity, parse_current, parse_plain
from protocols.yamlsource import SourceDoc

#: Steps in one program. A program is uploaded whole to one channel: a BTS step file holds 254 steps and an EClib
#: sequence is one BL_LoadTechnique round trip per step. 1000 is four times the Neware bound and far above any
#: real protocol (the library's have at most 7); long tests are loops, not steps written out. The bound also keeps
#: planning a huge file fast (``station plan`` prints a row per step).
MAX_PROGRAM_STEPS = 1000
#: EIS frequencies an impedance analyser can measure: Biologic boards span 10 uHz to 7 MHz (SP-300 family), other
#: makers similar; one decade of margin each side. Outside it a spectrum is a typing mistake (``20 kHz`` as ``20 GHz``).
EIS_MIN_HZ, EIS_MAX_HZ = 1e-6, 1e8

# Which terminations make sense for each step kind, and why the others do not.
_ALLOWED: dict[str, set[str]] = {
    "rest": {"time", "voltage", "dvdt"},
    "charge": {"voltage", "capacity", "energy", "time"},
    "discharge": {"voltage", "capacity", "energy", "time"},
    "hold": {"current", "time", "capacity", "energy"},
    "power": {"voltage", "current", "capacity", "energy", "time"},
    "ca": {"current", "time", "capacity"},
}
_WHY_NOT = {
    ("charge", "current"): "the current of a constant-current step never changes; use then_hold for CCCV",
    ("discharge", "current"): "the current of a constant-current step never changes; use then_hold for CCCV",
    ("hold", "voltage"): "the voltage of a hold never changes",
    ("ca", "voltage"): "the voltage of a CA step never changes",
    ("rest", "current"): "no current flows during a rest",
    ("rest", "capacity"): "no charge passes during a rest",
    ("rest", "energy"): "no energy passes during a rest",
}


@dataclass
class _Pending:
    """A ``then: <id>`` waiting for every id to be known: the termination it rewrites, in the step at
    ``step_position`` (``None`` when that step could not be bound: the id is still checked)."""

    step_position: int | None
    termination: Termination
    label: str
    path: Path


@dataclass
class Binder:
    doc: m.ProtocolDoc
    source: SourceDoc
    cell: Cell | None
    origins: dict[Path, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    pending: list[_Pending] = field(default_factory=list)
    safety: SafetyLimits = field(default_factory=SafetyLimits)
    default_record: RecordRule = field(default_factory=RecordRule)
    passes: int = 1  # how often the steps being bound run: the product of the enclosing repeat counts
    _last_voltage_end: tuple[str, float] | None = None

    # -- reporting ---------------------------------------------------------------------------------------------

    def problem(self, path: Path, message: str, expected: str | None = None, found: str | None = None,
                key: bool = False) -> None:
        origin = next((self.origins[path[:i]] for i in range(len(path), 0, -1) if path[:i] in self.origins), None)
        if origin and found is not None:
            found = f"{found} (from parameter '{origin}')"
        self.problems.append(self.source.problem(path, message, expected=expected, found=found, key=key))

    # -- quantities ----------------------------------------------------------------------------------------------

    def current(self, text: str, path: Path) -> float | None:
        return self._relative(parse_current(text), text, path)

    def capacity(self, text: str, path: Path) -> float | None:
        return self._relative(parse_capacity(text), text, path)

    def _relative(self, spec: Current | Capacity, text: str, path: Path) -> float | None:
        """An absolute value as is; a relative one (C-rate, per area, per mass) times the cell's property."""
        if spec.needs is None:
            return spec.value
        cell = self.cell
        if cell is None:
            return None
        try:
            if isinstance(spec, Current):
                return spec.resolve(capacity=cell.capacity, area=cell.area, mass=cell.active_mass)
            return spec.resolve(area=cell.area, mass=cell.active_mass)
        except KeyError:
            self._missing_property(spec.needs, text, path)
            return None

    def _missing_property(self, prop: str, text: str, path: Path) -> None:
        hint = {"capacity": "capacity (or active_mass and specific_capacity)", "area": "area or diameter",
                "active_mass": "active_mass"}[prop]
        self.problem(path, f"'{text}' needs the cell's {prop}, which cell '{self.cell.name}' does not give",
                     expected=f"a cell with {hint}", found=f"no {prop} in {self.cell.source or self.cell.name}")

    # -- whole-document parts --------------------------------------------------------------------------------------

    def bind_header(self) -> None:
        if self.cell is not None:
            for i, prop in enumerate(self.doc.requires):
                if not self.cell.has(prop):
                    self.problem(("requires", i), f"the protocol requires the cell's {prop}, which cell "
                                 f"'{self.cell.name}' does not give", expected=f"a cell with {prop}",
                                 found=f"no {prop} in {self.cell.source or self.cell.name}")
        s = self.doc.safety
        v_min = v_max = None
        if s.voltage:
            v_min, v_max = (parse_plain(v, "voltage") for v in s.voltage)
            if v_min >= v_max:
                self.problem(("safety", "voltage"), "the safety voltage window is empty",
                             expected="[min, max] with min < max", found=f"[{s.voltage[0]}, {s.voltage[1]}]")
        current_max = self._limit_current(s.current, ("safety", "current"), "the safety current")
        c = self.cell
        self.safety = SafetyLimits(
            voltage_min=_tighter(v_min, c.voltage_min if c else None, max),
            voltage_max=_tighter(v_max, c.voltage_max if c else None, min),
            current_max=_tighter(current_max, c.current_max if c else None, min),
            temperature_max=_tighter(parse_plain(s.temperature, "temperature") if s.temperature else None,
                                     c.temperature_max if c else None, min),
            capacity_max=self._limit_capacity(s.capacity, ("safety", "capacity")),
            step_duration_max=self._limit_time(s.step_duration, ("safety", "step_duration"), "a step"),
            run_duration_max=self._limit_time(s.duration, ("safety", "duration"), "the run"),
        )
        if self.doc.record is not None:
            self.default_record = self.record(self.doc.record, ("record",)) or RecordRule()

    def _limit_current(self, text: str | None, path: Path, what: str) -> float | None:
        """A current magnitude that must be above zero; the sign of a relative one is known before the cell is."""
        if text is None:
            return None
        if parse_current(text).value <= 0:
            self.problem(path, f"{what} must be above zero (it is a magnitude)", "a current above 0 A", repr(text))
            return None
        return self.current(text, path)

    def _limit_capacity(self, text: str | None, path: Path) -> float | None:
        if text is None:
            return None
        if parse_capacity(text).value <= 0:
            self.problem(path, "the safety capacity must be above zero", "a capacity above 0 Ah", repr(text))
            return None
        return self.capacity(text, path)

    def _limit_time(self, text: str | None, path: Path, what: str) -> float | None:
        if text is None:
            return None
        value = parse_plain(text, "time")
        if value <= 0:
            self.problem(path, f"the longest {what} may take must be above zero", "a duration above 0 s", repr(text))
            return None
        return value

    def record(self, spec: m.RecordSpec | None, path: Path) -> RecordRule | None:
        if spec is None:
            return None
        every = parse_plain(spec.every, "time") if spec.every else None
        if every is not None and every <= 0:
            self.problem((*path, "every"), "the recording interval must be above zero", "> 0 s", repr(spec.every))
            every = None
        dv = parse_plain(spec.voltage_change, "voltage") if spec.voltage_change else None
        if dv is not None and dv <= 0:
            self.problem((*path, "voltage_change"), "a recording voltage step must be above zero",
                         "a voltage above 0 V such as '5 mV'", repr(spec.voltage_change))
            dv = None
        di = self._limit_current(spec.current_change, (*path, "current_change"), "a recording current step")
        return RecordRule(every_s=every, voltage_change=dv, current_change=di)

    # -- steps ---------------------------------------------------------------------------------------------------

    def bind_steps(self, steps: list[Any], path: Path, tag: str | None,
                   indices: list[int] | None = None) -> None:
        for i, step in zip(indices or range(len(steps)), steps, strict=True):
            self.bind_step(step, (*path, i), tag)

    def bind_step(self, step: BaseModel, path: Path, tag: str | None) -> None:
        kind = m.step_kind_of(step)
        if isinstance(step, m.RepeatDoc):
            self._bind_repeat(step, path, tag)
            return
        body = getattr(step, kind)
        body_path = (*path, kind)
        binder = getattr(self, f"_bind_{kind}")
        mark = len(self.pending)
        fields = binder(body, body_path)
        if fields is None or not fields.get("until"):
            for pending in self.pending[mark:]:  # no step carries these terminations: only their ids are checked
                pending.step_position = None
        if fields is None:
            self._last_voltage_end = None
            return
        until = fields.pop("until", [])
        record = self.record(getattr(body, "record", None), (*body_path, "record")) or self.default_record
        label = getattr(body, "id", None)
        if label is not None:
            if label in self.labels:
                self.problem((*body_path, "id"), f"step id '{label}' is used twice", "a unique id", repr(label))
            self.labels[label] = len(self.steps) + 1
        self._append(path, kind=fields.pop("kind", kind), until=until, record=record, tag=tag, label=label, **fields)

    def _bind_repeat(self, step: m.RepeatDoc, path: Path, tag: str | None) -> None:
        """A loop; nested counts multiply, and their product is held to the same bound as one count, because the
        instruments number every pass (cycle) with counters of that width."""
        first = len(self.steps) + 1
        outer = self.passes
        total = outer * step.repeat
        if total > MAX_PASSES >= outer:
            self.problem((*path, "repeat"), f"nested repeats run these steps {total} times in all, more than any "
                         "instrument's cycle counter holds", expected=f"at most {MAX_PASSES} passes in all (the "
                         "product of the nested counts)", found=f"{step.repeat} x {outer}")
        self.passes = min(total, MAX_PASSES + 1)
        self._last_voltage_end = None
        self.bind_steps(step.steps, (*path, "steps"), step.tag or tag)
        self.passes = outer
        self._append(path, kind="loop", target=first, count=step.repeat, tag=step.tag or tag)
        self._last_voltage_end = None

    def _append(self, path: Path, **fields: Any) -> None:
        if len(self.steps) == MAX_PROGRAM_STEPS:
            self.problem(path, f"the protocol has more than {MAX_PROGRAM_STEPS} steps once its repeats are loops",
                         expected=f"at most {MAX_PROGRAM_STEPS} steps (a BTS step file holds 254): repeat steps "
                         "with 'repeat' instead of writing them out", found=f"step {len(self.steps) + 1} here")
        line, column = self.source.locate(path)
        fields["index"] = len(self.steps) + 1
        fields["source"] = SourceLocation(file=self.source.file, line=line, column=column, path=format_path(path))
        self.steps.append(fields)

    # -- terminations ----------------------------------------------------------------------------------------------

    def terminations(self, until: m.Limits | list[m.LimitEntry] | None, kind: str, path: Path,
                     direction: str | None) -> list[Termination] | None:
        entries: list[tuple[m.Limits, str, Path]] = []
        if isinstance(until, list):
            entries = [(e, e.then, (*path, "until", i)) for i, e in enumerate(until)]
        elif until is not None:
            entries = [(until, "next", (*path, "until"))]
        result: list[Termination] = []
        ok = True
        for limits, then, where in entries:
            for quantity, text in limits.given().items():
                t = self._termination(quantity, text, kind, (*where, quantity), direction)
                if t is None:
                    ok = False
                    continue
                if then == "end":
                    t = t.model_copy(update={"then": Action.END})
                elif then != "next":
                    self.pending.append(_Pending(len(self.steps), t, then, (*where, "then")))
                result.append(t)
        return result if ok else None

    def _termination(self, quantity: str, text: str, kind: str, path: Path,
                     direction: str | None) -> Termination | None:
        if quantity not in _ALLOWED.get(kind, set()):
            why = _WHY_NOT.get((kind, quantity), f"a {kind} step cannot end on {quantity}")
            self.problem(path, f"a {kind} step cannot end on {quantity}: {why}",
                         expected="one of " + ", ".join(sorted(_ALLOWED.get(kind, ()))), found=quantity, key=True)
            return None
        if quantity == "voltage":
            op_text, value_text = m.split_operator(text)
            value = parse_plain(value_text, "voltage")
            natural = {"charge": ">=", "discharge": "<="}.get(direction or "")
            if op_text is None and natural is None:
                self.problem(path, f"cannot tell whether a {kind} step ends above or below {value_text}",
                             expected=f"an explicit operator: '< {value_text}' or '> {value_text}'", found=repr(text))
                return None
            if op_text is not None and natural is not None and op_text != natural:
                rises = "rises" if direction == "charge" else "falls"
                self.problem(path, f"the voltage of a {direction} step {rises}, so this limit is on the wrong side",
                             expected=f"'{natural} {value_text}' (or just '{value_text}')", found=repr(text))
                return None
            op = Comparison(op_text or natural)
            if not self._voltage_reachable(value, op, path, text):
                return None
            return Termination(quantity=Quantity.VOLTAGE, op=op, value=value)
        if quantity == "current":
            op_text, value_text = m.split_operator(text)
            if op_text == ">=":
                self.problem(path, "a current end means |I| fell to the value; '>' cannot end a hold",
                             expected=f"'{value_text}'", found=repr(text))
                return None
            if parse_current(value_text).value <= 0:
                self.problem(path, "a current end at or below zero is never reached", "a current above 0",
                             repr(text))
                return None
            value = self.current(value_text, path)
            if value is not None and value <= 0:  # a tiny relative value times a tiny cell property
                self.problem(path, "a current end at or below zero is never reached", "a current above 0",
                             repr(text))
                return None
            return Termination(quantity=Quantity.CURRENT, op=Comparison.LE, value=value if value is not None else 0)
        if quantity == "capacity":
            if parse_capacity(text).value <= 0:
                self.problem(path, "a capacity end must be above zero", "a capacity above 0", repr(text))
                return None
            value = self.capacity(text, path)
            if value is not None and value <= 0:
                self.problem(path, "a capacity end must be above zero", "a capacity above 0", repr(text))
                return None
            return Termination(quantity=Quantity.CAPACITY, op=Comparison.GE, value=value if value is not None else 0)
        if quantity == "energy":
            value = parse_plain(text, "energy")
            if value <= 0:
                self.problem(path, "an energy end must be above zero", "an energy above 0", repr(text))
                return None
            return Termination(quantity=Quantity.ENERGY, op=Comparison.GE, value=value)
        if quantity == "time":
            value = parse_plain(text, "time")
            if value <= 0:
                self.problem(path, "a step time limit must be above zero", "a duration above 0 s", repr(text))
                return None
            return Termination(quantity=Quantity.TIME, op=Comparison.GE, value=value)
        # dvdt
        op_text, value_text = m.split_operator(text)
        value = parse_plain(value_text, "scan_rate")
        if value <= 0:
            self.problem(path, "a dV/dt end must be above zero", "a rate above 0 such as '1 mV/h'", repr(text))
            return None
        return Termination(quantity=Quantity.DVDT, op=Comparison.LE, value=value)

    def _voltage_reachable(self, value: float, op: Comparison, path: Path, text: str) -> bool:
        low, high = self.safety.voltage_min, self.safety.voltage_max
        if op is Comparison.GE and high is not None and value >= high:
            self.problem(path, f"the limit {text} is never reached: the safety/cell limit stops the run at "
                         f"{high:g} V first", expected=f"a voltage below {high:g} V, or a higher safety limit",
                         found=repr(text))
            return False
        if op is Comparison.LE and low is not None and value <= low:
            self.problem(path, f"the limit {text} is never reached: the safety/cell limit stops the run at "
                         f"{low:g} V first", expected=f"a voltage above {low:g} V, or a lower safety limit",
                         found=repr(text))
            return False
        if op is Comparison.GE and low is not None and value <= low:
            self.problem(path, f"a rising limit at {text} is at or below the lowest allowed voltage {low:g} V, so "
                         "it is met the moment the step starts", expected=f"a voltage above {low:g} V",
                         found=repr(text))
            return False
        if op is Comparison.LE and high is not None and value >= high:
            self.problem(path, f"a falling limit at {text} is at or above the highest allowed voltage {high:g} V, "
                         "so it is met the moment the step starts", expected=f"a voltage below {high:g} V",
                         found=repr(text))
            return False
        return True

    def _check_current(self, value: float | None, path: Path, text: str) -> None:
        if value is None:
            return
        if value <= 0:
            self.problem(path, "a current set-point must be above zero (the direction comes from the step)",
                         "a positive magnitude", repr(text))
        elif self.safety.current_max is not None and value > self.safety.current_max * (1 + 1e-9):
            self.problem(path, f"{format_si(value, 'A')} is above the safety/cell current limit "
                         f"{format_si(self.safety.current_max, 'A')}", expected=f"at most "
                         f"{format_si(self.safety.current_max, 'A')}", found=_with_value(text, value, "A"))

    def _check_setpoint_voltage(self, value: float, path: Path, text: str) -> None:
        low, high = self.safety.voltage_min, self.safety.voltage_max
        if (low is not None and value < low) or (high is not None and value > high):
            self.problem(path, f"{text} is outside the safety/cell voltage window",
                         expected=f"a voltage within [{low if low is not None else '-inf'}, "
                         f"{high if high is not None else 'inf'}] V", found=repr(text))

    def _require_end(self, until: list[Termination] | None, path: Path, kind: str) -> bool:
        if until is None:
            return False
        if not until:
            self.problem(path, f"this {kind} step can never end: give it an 'until'",
                         expected="'until: {voltage: ..., time: ...}'", found="no termination")
            return False
        return True

    def _check_start(self, direction: str, until: list[Termination], path: Path) -> None:
        """A step whose voltage limit is already met where the previous step left the cell ends at once."""
        limit = next((t for t in until if t.quantity is Quantity.VOLTAGE), None)
        previous = self._last_voltage_end
        if limit is None or previous is None:
            return
        prev_dir, prev_v = previous
        if direction == "charge" and prev_dir == "discharge" and limit.value <= prev_v:
            self.problem((*path, "until", "voltage"), f"this charge ends at {limit.value:g} V but the step before "
                         f"leaves the cell at {prev_v:g} V: it would end at once", expected=f"a limit above "
                         f"{prev_v:g} V", found=f"{limit.value:g} V")
        if direction == "discharge" and prev_dir == "charge" and limit.value >= prev_v:
            self.problem((*path, "until", "voltage"), f"this discharge ends at {limit.value:g} V but the step "
                         f"before leaves the cell at {prev_v:g} V: it would end at once", expected=f"a limit below "
                         f"{prev_v:g} V", found=f"{limit.value:g} V")

    def _remember_end(self, direction: str | None, until: list[Termination]) -> None:
        only = until[0] if len(until) == 1 else None
        if direction and only is not None and only.quantity is Quantity.VOLTAGE:
            self._last_voltage_end = (direction, only.value)
        else:
            self._last_voltage_end = None

    # -- per kind --------------------------------------------------------------------------------------------------

    def _bind_rest(self, body: m.RestBody, path: Path) -> dict[str, Any] | None:
        until = self.terminations(body.until, "rest", path, None)
        if not self._require_end(until, path, "rest"):
            return None
        return {"until": until}

    def _bind_current(self, body: m.CurrentBody, path: Path, direction: str) -> dict[str, Any] | None:
        magnitude = self.current(body.current, (*path, "current"))
        if magnitude is None and parse_current(body.current).value <= 0:
            magnitude = parse_current(body.current).value  # relative and no cell to resolve it: the sign is known
        self._check_current(magnitude, (*path, "current"), body.current)
        until = self.terminations(body.until, direction, path, direction)
        hold_voltage = None
        if body.then_hold is not None and until is not None:
            voltage_limit = next((t for t in until if t.quantity is Quantity.VOLTAGE), None)
            if voltage_limit is not None and (voltage_limit.then is not Action.NEXT or any(
                    p.termination is voltage_limit for p in self.pending)):
                self.problem((*path, "until"), "the voltage limit of a CCCV step is where its hold starts, so it "
                             "cannot jump or end the run", expected="'then' on the hold's own limits (then_hold) "
                             "or on another limit of the step", found=f"a 'then' on {voltage_limit.value:g} V")
                return None
            if body.then_hold.voltage is not None:
                hold_voltage = parse_plain(body.then_hold.voltage, "voltage")
                self._check_setpoint_voltage(hold_voltage, (*path, "then_hold", "voltage"), body.then_hold.voltage)
            elif voltage_limit is not None:
                hold_voltage = voltage_limit.value
            else:
                self.problem((*path, "then_hold"), "then_hold holds at the step's voltage limit, and this step has "
                             "none", expected="'until: {voltage: ...}' on the step, or then_hold.voltage",
                             found="no voltage limit")
                return None
            hold_until = self.terminations(body.then_hold.until, "hold", (*path, "then_hold"), None)
            if hold_until is None:
                return None
            hold_current = next((t for t in hold_until if t.quantity is Quantity.CURRENT), None)
            if hold_current is None:
                self.problem((*path, "then_hold", "until"), "the hold phase of a CCCV step ends on a current",
                             expected="'until: {current: C/20}'", found="no current limit")
                return None
            if magnitude is not None and hold_current.value and hold_current.value >= magnitude:
                self.problem((*path, "then_hold", "until", "current"), "the hold would end at once: its end "
                             "current is not below the constant current", expected=f"below "
                             f"{format_si(magnitude, 'A')}", found=format_si(hold_current.value, "A"))
            until = [t for t in until if t.quantity is not Quantity.VOLTAGE] + hold_until
        if not self._require_end(until, path, direction):
            return None
        if body.then_hold is None:
            self._check_start(direction, until, path)
        self._remember_end(direction, until)
        if magnitude is None or magnitude <= 0:
            return None if self.cell is not None else {}
        sign = 1.0 if direction == "charge" else -1.0
        return {"kind": direction, "current": sign * magnitude, "hold_voltage": hold_voltage, "until": until}

    def _bind_charge(self, body: m.CurrentBody, path: Path) -> dict[str, Any] | None:
        return self._bind_current(body, path, "charge")

    def _bind_discharge(self, body: m.CurrentBody, path: Path) -> dict[str, Any] | None:
        return self._bind_current(body, path, "discharge")

    def _bind_hold(self, body: m.HoldBody, path: Path) -> dict[str, Any] | None:
        voltage = parse_plain(body.voltage, "voltage")
        self._check_setpoint_voltage(voltage, (*path, "voltage"), body.voltage)
        current_limit = None
        if body.current_limit is not None:
            current_limit = self._limit_current(body.current_limit, (*path, "current_limit"), "a hold's current limit")
            self._check_current(current_limit, (*path, "current_limit"), body.current_limit)
        until = self.terminations(body.until, "hold", path, None)
        if not self._require_end(until, path, "hold"):
            return None
        if body.current_limit is not None and current_limit is None and self.cell is not None:
            return None
        return {"voltage": voltage, "current_limit": current_limit, "direction": body.direction, "until": until}

    def _bind_power(self, body: m.PowerBody, path: Path) -> dict[str, Any] | None:
        power = parse_plain(body.power, "power")
        if power <= 0:
            self.problem((*path, "power"), "a power set-point must be above zero (the direction says which way)",
                         "a positive magnitude", repr(body.power))
            return None
        until = self.terminations(body.until, "power", path, body.direction)
        if not self._require_end(until, path, "power"):
            return None
        self._remember_end(body.direction, until)
        return {"power": power if body.direction == "charge" else -power, "until": until}

    def _bind_ca(self, body: m.CaBody, path: Path) -> dict[str, Any] | None:
        voltage = parse_plain(body.voltage, "voltage")
        if body.vs == "reference":
            self._check_setpoint_voltage(voltage, (*path, "voltage"), body.voltage)
        until = self.terminations(body.until, "ca", path, None)
        if not self._require_end(until, path, "ca"):
            return None
        return {"voltage": voltage, "vs_ocv": body.vs == "ocv", "until": until}

    def _bind_eis(self, body: m.EisBody, path: Path) -> dict[str, Any] | None:
        kind = "voltage" if body.mode == "potentio" else "current"
        amplitude = (parse_plain(body.amplitude, "voltage") if kind == "voltage"
                     else self.current(body.amplitude, (*path, "amplitude")))
        bias = 0.0
        if body.bias != "ocv":
            bias = (parse_plain(body.bias, "voltage") if kind == "voltage"
                    else self.current(body.bias, (*path, "bias")) or 0.0)
        if amplitude is None and kind == "current" and parse_current(body.amplitude).value <= 0:
            amplitude = parse_current(body.amplitude).value  # relative and no cell to resolve it: the sign is known
        if amplitude is not None and amplitude <= 0:
            self.problem((*path, "amplitude"), "the EIS amplitude must be above zero", "> 0", repr(body.amplitude))
            return None
        f_start, f_end = parse_plain(body.from_, "frequency"), parse_plain(body.to, "frequency")
        for name, value, text in (("from", f_start, body.from_), ("to", f_end, body.to)):
            if value <= 0:
                self.problem((*path, name), "a frequency must be above zero", "> 0 Hz", repr(text))
                return None
            if not EIS_MIN_HZ <= value <= EIS_MAX_HZ:
                self.problem((*path, name), "no impedance analyser measures at this frequency",
                             "a frequency from 1 uHz to 100 MHz", repr(text))
                return None
        if f_start == f_end:
            self.problem((*path, "to"), "the spectrum has no width", "a frequency other than 'from'", body.to)
            return None
        self._last_voltage_end = None
        if amplitude is None:
            return None if self.cell is not None else {}
        return {"mode": body.mode, "f_start": f_start, "f_end": f_end, "points_per_decade": body.points_per_decade,
                "amplitude": amplitude, "bias": bias, "bias_vs_ocv": body.bias == "ocv" or body.vs == "ocv",
                "measures_per_point": body.measures_per_point}

    def _bind_cv(self, body: m.CvBody, path: Path) -> dict[str, Any] | None:
        rate = parse_plain(body.scan_rate, "scan_rate")
        if rate <= 0:
            self.problem((*path, "scan_rate"), "the scan rate must be above zero", "> 0 V/s", body.scan_rate)
            return None
        v1, v2 = (parse_plain(v, "voltage") for v in body.vertices)
        if v1 == v2:
            self.problem((*path, "vertices"), "the two vertices are equal, so nothing is swept",
                         "two different voltages", str(body.vertices))
            return None
        for i, (v, text) in enumerate(zip((v1, v2), body.vertices, strict=True)):
            self._check_setpoint_voltage(v, (*path, "vertices", i), text)
        start = None if body.start == "ocv" else parse_plain(body.start, "voltage")
        end = None if body.end == "ocv" else parse_plain(body.end, "voltage")
        self._last_voltage_end = None
        return {"scan_rate": rate, "start": start, "vertex_1": v1, "vertex_2": v2, "end": end, "cycles": body.cycles}

    def _bind_lsv(self, body: m.LsvBody, path: Path) -> dict[str, Any] | None:
        rate = parse_plain(body.scan_rate, "scan_rate")
        if rate <= 0:
            self.problem((*path, "scan_rate"), "the scan rate must be above zero", "> 0 V/s", body.scan_rate)
            return None
        end = parse_plain(body.to, "voltage")
        self._check_setpoint_voltage(end, (*path, "to"), body.to)
        start = None if body.from_ == "ocv" else parse_plain(body.from_, "voltage")
        if start is not None and start == end:
            self.problem((*path, "to"), "the sweep has no width", "a voltage other than 'from'", body.to)
            return None
        self._last_voltage_end = None
        return {"scan_rate": rate, "start": start, "end": end}

    # -- finish ------------------------------------------------------------------------------------------------

    def resolve_jumps(self) -> None:
        ids = name_list(sorted(self.labels)) or "(no step has an id)"
        for pending in self.pending:
            target = self.labels.get(pending.label)
            if target is None:
                self.problem(pending.path, f"'then' names no step: '{pending.label}'"
                             f"{did_you_mean(pending.label, self.labels)}",
                             expected="'next', 'end' or the id of a step: " + ids, found=repr(pending.label))
                continue
            if pending.step_position is None:
                continue
            until = list(self.steps[pending.step_position]["until"])
            at = next((i for i, t in enumerate(until) if t is pending.termination), None)
            if at is None:
                continue
            until[at] = until[at].model_copy(update={"then": Action.JUMP, "target": target})
            self.steps[pending.step_position]["until"] = until


_KIND_TYPES = {"rest": RestStep, "charge": CurrentStep, "discharge": CurrentStep, "hold": HoldStep,
               "power": PowerStep, "ca": CaStep, "eis": EisStep, "cv": CvStep, "lsv": LsvStep, "loop": LoopStep}


def _with_value(text: str, value: float, unit: str) -> str:
    """'0.5C' -> '0.5C = 875 uA'; an absolute text is shown as given."""
    rendered = format_si(value, unit)
    return text if text.replace(" ", "") == rendered.replace(" ", "") else f"{text} = {rendered}"


def _tighter(a: float | None, b: float | None, pick: Any) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return pick(a, b)


def bind(doc: m.ProtocolDoc, source: SourceDoc, cell: Cell | None, *, origins: dict[Path, str] | None = None,
         parameters: dict[str, str] | None = None,
         steps: list[tuple[int, Any]] | None = None) -> tuple[StepProgram | None, list[Problem]]:
    """Resolve ``doc`` against ``cell``. Returns the program (``None`` without a cell or with problems) and the
    problems found; all problems are collected in one pass. ``steps`` replaces ``doc.steps`` with (index, step)
    pairs when only some steps of a broken file are checkable."""
    binder = Binder(doc=doc, source=source, cell=cell, origins=origins or {}, parameters=parameters or {})
    binder.bind_header()
    if steps is None:
        binder.bind_steps(doc.steps, ("steps",), None)
    else:
        binder.bind_steps([s for _, s in steps], ("steps",), None, [i for i, _ in steps])
    binder.resolve_jumps()
    if binder.problems or cell is None:
        return None, binder.problems
    steps = []
    for fields in binder.steps:
        kind = fields["kind"]
        steps.append(_KIND_TYPES[kind](**{k: v for k, v in fields.items() if v is not None or k == "tag"}))
    program = StepProgram(protocol=doc.protocol, cell=cell.name, parameters=binder.parameters, safety=binder.safety,
                          record=binder.default_record, steps=tuple(steps),
                          nominal_capacity=cell.capacity if cell.capacity and cell.capacity > 0 else None,
                          start_voltage=cell.ocv)
    return program, []
