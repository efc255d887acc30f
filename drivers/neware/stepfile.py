"""Compile a step program into a BTS step file (the XML that ``start`` points to).

Why a hand-written text emitter rather than an XML library: the BTS Client is picky about layout it was never
documented to need (element order under ``config``, ``Num`` counting the End step, CRLF line ends), and a
text emitter makes the exact bytes obvious in review and in tests. Every attribute value still goes through
:func:`drivers.neware.codec.quote_attribute`.

Scaling follows the reference (neware-bts-api.md section 3.4): voltage x 10 000 (0.1 mV), current in mA,
time in ms, capacity in mA*s. The file is written in absolute-current mode (``RateType 103``): the program already
carries absolute currents, and in C-rate mode (105) the BTS takes the current from ``Rate x MultCap`` and ignores
``Curr`` (section 9), so this compiler never writes 105 or ``Rate``. ``MultCap`` is still the cell's nominal
capacity (the program's, from the cell record), because analysis tools read it as such (section 9).

Semantics the real BTS applies, from section 9 of the reference:

* **CV direction.** A CV charge (type 3) only sources current and a CV discharge (19) only sinks it. A hold's
  type follows the voltage the cell is at when it starts (:mod:`protocols.paths`: every way into the step,
  along the nominal path, loops and jumps), or the protocol's ``direction``; when neither tells, the hold is
  refused with the ``direction:`` fix. Its ``Curr`` is its current limit: the protocol's ``current_limit``, the
  current of the CC step it continues (same direction, ending at its voltage, as aurora-unicycler writes), or the
  program's safety current, never the channel's maximum.
* **Zero limits.** Whether the BTS reads ``Stop_Volt="0"`` as a limit is unconfirmed (a zero limit may mean "no
  limit"), so a voltage limit at 0 V is written as the smallest positive count, 1 = 0.1 mV (:func:`notes` says so
  for the plan). The same holds for a 0 V protection bound and a 0 V condition.
* **Conditions.** A termination that jumps or ends the run is a condition in ``Limit/Other``: ``<Other
  CndCount="n">`` with ``Cnd1..n`` carrying ``type`` (1 voltage, 2 current, 3 time: neware-utils' codes; bmgen
  uses other codes for expressions, the reference marks the column disputed), ``CmpType`` (3 ">", 5 "<", bmgen),
  ``Jump_Line`` (the target's Step_ID; the End step's to end the run, so that the test finishes rather than
  stops; 65526 "next line" for a rest's voltage end that goes on) and ``Value``. **[assumption]** ``Value`` is
  scaled like the same quantity in ``Limit/Main`` (0.1 mV, mA, ms): no public source gives its unit. Capacity and
  energy have no documented condition type and are refused as conditions. On a discharge-type step the sign of the
  current a condition compares is undocumented, so current conditions are refused there. At most
  :data:`MAX_CONDITIONS` per step (the BTS 9 manual's five exit conditions).

Two choices that the reference leaves open and that this compiler fixes (and the simulator's independent
parser follows):

* an energy cut-off is written as ``<Energy Value=...>`` in ``Limit/Main`` in mW*s (mWh x 3600), by analogy
  with ``Cap``; no public source names that element **[assumption]**;
* native ``Step_ID`` N is program step N (the compiler never merges steps), plus one End step; the mapping is
  still returned explicitly so that a later merge (CC + CV into CCCV) cannot silently break data mapping.

Anything a Neware channel cannot run, or that this file format cannot express safely, is refused before any
byte is sent, with one problem per offending step. What can run is written down once, as the module-level tables
below (:data:`REFUSED_KINDS`, :data:`REFUSED_FORMS`, :data:`MAIN_ENDS`, :data:`MAIN_RULES`,
:data:`CONDITION_RULES`, :data:`REQUIRED_ENDS`, :data:`REFUSED_SAFETY`): :func:`check_program` reads them, and
:func:`capabilities` declares them to the station as :class:`drivers.base.Capabilities`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from drivers.base import Capabilities, CapabilityError, ChannelRanges, StepSupport, station_step_problem
from drivers.neware.codec import quote_attribute
from protocols.paths import Arrival, HoldDirection, arrivals, hold_direction
from protocols.program import (
    Action,
    CaStep,
    Comparison,
    CurrentStep,
    HoldStep,
    LoopStep,
    LsvStep,
    ProgramStep,
    Quantity,
    RecordRule,
    RestStep,
    SafetyLimits,
    StepProgram,
    Termination,
)

#: the BTS step editor allows at most 254 editable steps plus the End step (neware-bts-api.md 3.3)
MAX_STEPS = 254

#: Step_Type codes used by the compiler (neware-bts-api.md 3.3)
CC_CHG, CC_DCHG, CV_CHG, REST, CYCLE, END, CCCV_CHG, CV_DCHG, CCCV_DCHG, RAMP = 1, 2, 3, 4, 5, 6, 7, 19, 20, 25
DISCHARGE_TYPES = frozenset({CC_DCHG, CV_DCHG, CCCV_DCHG})

#: passes of one loop (``Cycle_Count``). The reference (neware-bts-api.md 3.3, "Loop (Cycle, type 5)") says the
#: count is the total number of passes but gives no range for it, so this is a conservative choice: the largest
#: value of an unsigned 16-bit field, the narrowest a step-editor count plausibly has. It is far above any real
#: test (65 535 one-hour cycles run 7.5 years) and a count the instrument might truncate is refused before upload.
MAX_CYCLE_COUNT = 65_535

#: NU's default reference capacity (1 Ah in mA*s), written when neither the caller nor the cell gives one
DEFAULT_MULTCAP_MAS = 3_600_000.0

#: the BTS default record interval when neither the program nor a step says anything (NW-WEB: 1 s)
DEFAULT_RECORD_S = 1.0

#: absolute-current mode: ``Curr`` is the current (105 would take it from ``Rate x MultCap``, section 9)
RATE_TYPE = 103

#: condition ``type`` per quantity (neware-utils: 1 voltage, 2 current, 3 time; reference 3.6, disputed with bmgen)
CONDITION_TYPES = {Quantity.VOLTAGE: 1, Quantity.CURRENT: 2, Quantity.TIME: 3}
#: ``CmpType`` (bmgen: 3 ">", 5 "<"); the program's >= and <= mean the same for measured data
COMPARE_GT, COMPARE_LT = 3, 5
#: ``Jump_Line`` "next line" (bmgen)
NEXT_LINE = 65526
#: exit conditions per step in the BTS step editor (BTS 9 manual, reference lab-software-peers.md 3)
MAX_CONDITIONS = 5

CLIENT_VERSION = "BTS Client 8.0.0.478(2024.06.24)(R3)"


@dataclass(frozen=True, slots=True)
class CompileOptions:
    """Knobs of the compiler; every default is from the reference or stated here."""

    #: MultCap in Ah; ``None`` takes the program's nominal capacity (the cell record's), else the 1 Ah default
    reference_capacity_ah: float | None = None
    protect_delay_s: float = 0.0  # Delay_Time of the global protection (real file: 5 s)
    max_steps: int = MAX_STEPS
    default_record_s: float = DEFAULT_RECORD_S
    #: fixed so that the same program always gives the same bytes (the BTS Client writes its own stamp)
    date: str = "20250101000000"
    guid: str = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True, slots=True)
class CompiledStepFile:
    """The step file bytes plus what the driver needs to map data back to the program."""

    xml: bytes
    native_to_program: dict[int, int] = field(default_factory=dict)
    end_step_id: int = 0

    def program_index(self, step_id: int) -> int | None:
        return self.native_to_program.get(step_id)

    def step_map_text(self) -> str:
        """The mapping as a compact string, stored in a TestHandle so that ``attach`` can recover it."""
        return ",".join(f"{native}:{index}" for native, index in sorted(self.native_to_program.items()))


def parse_step_map(text: str) -> dict[int, int]:
    """Inverse of :meth:`CompiledStepFile.step_map_text`."""
    mapping: dict[int, int] = {}
    for pair in filter(None, text.split(",")):
        native, _, index = pair.partition(":")
        mapping[int(native)] = int(index)
    return mapping


class _Unencodable(ValueError):
    """A value that scales beyond a finite number: :func:`check_program` turns it into a refusal."""


def _num(value: float) -> str:
    """Short decimal text: integers without a fraction, otherwise up to 12 significant digits."""
    if not math.isfinite(value):
        raise _Unencodable(f"{value}")
    if abs(value) < 1e15 and value == int(value):
        return str(int(value))
    return f"{value:.12G}"


def _xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (controls, lone surrogates): the remark is a label."""
    return "".join(c for c in text if c in "\t\n\r" or ("\x20" <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd")
                   or c >= "\U00010000")


def _v(volts: float) -> str:
    return _num(round(volts * 10_000, 6))


def _limit_v(volts: float) -> str:
    """A voltage *limit*: one that scales to 0 is written as 1 count (0.1 mV), so that it is a limit on any BTS."""
    count = round(volts * 10_000, 6)
    return "1" if count == 0 else _num(count)


def _ma(amps: float) -> str:
    return _num(round(amps * 1000, 9))


def _ms(seconds: float) -> str:
    return _num(round(seconds * 1000, 3))


def _mas(amp_hours: float) -> str:
    return _num(round(amp_hours * 3_600_000, 6))


# ----------------------------------------------------------------------------------------------------------------
# what the whole program decides for each step


@dataclass(frozen=True, slots=True)
class _Context:
    """Facts about the whole program that single steps compile from: where the cell arrives at each step."""

    program: StepProgram
    ranges: ChannelRanges
    ways_in: dict[int, list[Arrival]]

    @classmethod
    def of(cls, program: StepProgram, ranges: ChannelRanges) -> _Context:
        return cls(program, ranges, arrivals(program))

    @property
    def end_id(self) -> int:
        return len(self.program.steps) + 1

    def direction(self, step: HoldStep | CaStep) -> HoldDirection:
        return hold_direction(step, self.ways_in.get(step.index, []))

    def previous(self, step: ProgramStep) -> ProgramStep | None:
        return self.program.step(step.index - 1) if step.index > 1 else None


def _where(step: ProgramStep) -> str:
    text = f"step {step.index} ({step.kind}"
    if step.label:
        text += f" '{step.label}'"
    text += ")"
    if step.source is not None:
        text += f" at {step.source.file}:{step.source.line}:{step.source.column}"
    return text


def _is_condition(step: ProgramStep, term: Termination) -> bool:
    """Whether ``term`` is written as a ``Cnd`` (a jump, an end, or a rest's voltage end) rather than in Main."""
    if term.quantity in ALWAYS_CONDITIONS.get(step.kind, ()):
        return True
    if term.then is Action.JUMP and term.target == step.index + 1:
        return False  # a jump to the next step is going on
    return term.then is not Action.NEXT


def _hold_current(step: HoldStep | CaStep, ctx: _Context, direction: str | None) -> float | None:
    """The CV step's ``Curr``: its own limit, the CC step it continues, or the program's safety current."""
    limit = getattr(step, "current_limit", None)
    if limit is not None:
        return abs(limit)
    previous = ctx.previous(step)
    if isinstance(previous, CurrentStep) and previous.hold_voltage is None:
        ends_here = previous.limit(Quantity.VOLTAGE)
        same_way = ("charge" if previous.current > 0 else "discharge") == direction
        if same_way and ends_here is not None and math.isclose(ends_here.value, step.voltage, abs_tol=1e-9):
            return abs(previous.current)  # aurora-unicycler: a CV after a CC at its voltage inherits its current
    safety = ctx.program.safety.current_max
    return abs(safety) if safety is not None else None


def _cv_type(step: HoldStep | CaStep, ctx: _Context) -> int | None:
    direction = ctx.direction(step).direction
    if direction is None:
        return None
    return CV_CHG if direction == "charge" else CV_DCHG


# ----------------------------------------------------------------------------------------------------------------
# what a Neware channel can run: the tables the check reads, and that capabilities() declares to the station

_GE, _LE = Comparison.GE, Comparison.LE
_TIME, _VOLTAGE, _CURRENT, _CAPACITY, _ENERGY = (
    Quantity.TIME, Quantity.VOLTAGE, Quantity.CURRENT, Quantity.CAPACITY, Quantity.ENERGY,
)

#: step kinds no BTS step file can express, and why (the step's one refusal)
REFUSED_KINDS: dict[str, str] = {
    "eis": "a Neware channel cannot measure impedance; run EIS on a potentiostat",
    "cv": "cyclic voltammetry is not supported on Neware (Step_Type 30 is undocumented); run it on a potentiostat",
    "power": "constant-power steps are refused: the BTS step-file element for a power set-point is not documented; "
             "use current steps",
}

#: forms of a kind that cannot run: kind -> ((has the step that form?, why; ``{step.*}`` is filled in), ...)
REFUSED_FORMS: dict[str, tuple[tuple[Callable[[Any], bool], str], ...]] = {
    "ca": ((lambda step: step.vs_ocv, "a hold relative to the OCV is impossible on Neware; give an absolute voltage"),),
    "lsv": ((lambda step: step.start is None, "a Neware ramp needs an explicit start voltage, not the OCV"),),
    "loop": ((lambda step: step.count > MAX_CYCLE_COUNT,
              "{step.count} passes; a Neware loop (Cycle_Count) runs at most " + str(MAX_CYCLE_COUNT)
              + "; split the protocol into several runs"),),
}

#: the native form of each runnable step (:func:`_form`): the Limit/Main ends it takes, quantity -> the one comparison
#: the BTS applies there (a CC step stops at a voltage in its own direction; a CV or CCCV step when |I| falls)
_COMMON = {_TIME: _GE, _CAPACITY: _GE, _ENERGY: _GE}
MAIN_ENDS: dict[str, dict[Quantity, Comparison]] = {
    "rest": {_TIME: _GE},
    "cc_charge": {**_COMMON, _VOLTAGE: _GE},
    "cc_discharge": {**_COMMON, _VOLTAGE: _LE},
    "cccv": {**_COMMON, _CURRENT: _LE},
    "cv": {**_COMMON, _CURRENT: _LE},
    "ramp": dict(_COMMON),
}
#: step kind -> ends written as a condition (``Cnd``) even when they go on: a rest's voltage end (Jump_Line 65526,
#: "next line")
ALWAYS_CONDITIONS: dict[str, frozenset[Quantity]] = {"rest": frozenset({_VOLTAGE})}
#: Limit/Main values that must be positive
POSITIVE_ENDS = frozenset({_TIME, _CAPACITY, _ENERGY, _CURRENT})
#: a form that must end on one of these quantities (``None``: on anything), and what to say when it does not
REQUIRED_ENDS: dict[str, tuple[frozenset[Quantity] | None, str]] = {
    "rest": (frozenset({_TIME, _VOLTAGE}), "a Neware rest step ends on time or voltage only; give a duration"),
    **dict.fromkeys(("cc_charge", "cc_discharge", "cccv", "cv"),
                    (None, "the step has no termination and would never end")),
}
#: voltage ends checked against the channel's range, and what the message calls them
RANGED_VOLTAGE_ENDS: dict[str, str] = {
    "rest": "voltage condition", **dict.fromkeys(("cc_charge", "cc_discharge", "cccv"), "cut-off voltage"),
}
#: the program step kinds each form serves (a charge or discharge with ``hold_voltage`` is CCCV)
KIND_FORMS: dict[str, tuple[str, ...]] = {
    "rest": ("rest",), "charge": ("cc_charge", "cccv"), "discharge": ("cc_discharge", "cccv"),
    "hold": ("cv",), "ca": ("cv",), "lsv": ("ramp",),
}
#: whole-run limits a BTS step file cannot protect, and why
REFUSED_SAFETY: dict[str, str] = {
    "temperature_max": "the Neware driver has no auxiliary temperature channel configured",
    "step_duration_max": "a BTS step file has no per-step duration protection; remove it",
    "run_duration_max": "a BTS step file has no whole-test duration protection; remove it",
}


class _End(NamedTuple):
    """One termination as the rules below see it: the step's allowed Main ends, the quantities already ended on,
    and the step's Step_Type code (``None`` when a hold's direction is unknown)."""

    term: Termination
    allowed: dict[Quantity, Comparison]
    seen: frozenset[Quantity]
    code: int | None


class _Rule(NamedTuple):
    """A refusal of a termination: when ``refuses`` holds, ``message`` (``{where}``, ``{kind}``, ``{q}``, ``{op}``
    (the allowed comparison), ``{names}``, ``{text}`` and ``{value}`` are filled in). ``still_counts``: an end
    refused by this rule is still the step's end on its quantity (a second one is then "two ... terminations")."""

    refuses: Callable[[_End], bool]
    message: str
    still_counts: bool = False


#: a termination written in Limit/Main is held to these in order; the first that refuses it is its one refusal
MAIN_RULES: tuple[_Rule, ...] = (
    _Rule(lambda e: e.term.quantity not in e.allowed,
          "{where}: a Neware {kind} step cannot end on {q}; it can end on: {names}"),
    _Rule(lambda e: e.term.op is not e.allowed[e.term.quantity],
          "{where}: a Neware {kind} step ends on {q} {op} only, not '{text}'"),
    _Rule(lambda e: e.term.quantity in e.seen, "{where}: two {q} terminations; Neware keeps one per step"),
    _Rule(lambda e: e.term.quantity in POSITIVE_ENDS and e.term.value <= 0,
          "{where}: the {q} limit must be positive, found {value:g}", still_counts=True),
)
#: a termination written as a condition (``Cnd``: it jumps, ends the run, or is always one) is held to these
CONDITION_RULES: tuple[_Rule, ...] = (
    _Rule(lambda e: e.term.quantity not in CONDITION_TYPES,
          "{where}: the termination '{text}' jumps or ends the test on {q}; a BTS step-file condition (Cnd) has a "
          "documented type only for " + ", ".join(q.value for q in CONDITION_TYPES)),
    _Rule(lambda e: e.term.quantity is _CURRENT and e.code in DISCHARGE_TYPES,
          "{where}: the condition '{text}' is on the current of a discharge step; whether a BTS condition compares "
          "the signed or the absolute current there is undocumented; end the step on current with 'next' "
          "(Stop_Curr) instead"),
    _Rule(lambda e: e.term.quantity is _CURRENT and e.term.op is not _LE,
          "{where}: a current condition is '|I| <=' only, not '{text}'"),
    _Rule(lambda e: e.term.value <= 0 and e.term.quantity is not _VOLTAGE,
          "{where}: the {q} condition must be positive, found {value:g}"),
)


def capabilities(ranges: ChannelRanges | None = None, options: CompileOptions = CompileOptions()) -> Capabilities:
    """What a Neware channel can run, from the tables above (no I/O): ends per kind from its forms' Main ends and
    always-conditions, branches from the documented condition types (no current condition on a discharge)."""
    steps = [StepSupport("loop")]
    for kind, forms in KIND_FORMS.items():
        ends = frozenset().union(*(MAIN_ENDS[f] for f in forms), ALWAYS_CONDITIONS.get(kind, ()))
        branches = frozenset(CONDITION_TYPES) - ({_CURRENT} if kind == "discharge" else set())
        steps.append(StepSupport(kind, ends, branches, frozenset({"cccv"} & set(forms))))
    return Capabilities(
        instrument="neware", steps=tuple(steps), jumps=True, pause=True, ranges=ranges,
        max_steps=options.max_steps, max_passes=MAX_CYCLE_COUNT,
        safety=frozenset(SafetyLimits.model_fields) - frozenset(REFUSED_SAFETY),
    )


def _form(step: ProgramStep) -> str:
    """The native form a runnable step compiles to (a key of :data:`MAIN_ENDS`)."""
    if isinstance(step, CurrentStep):
        if step.hold_voltage is not None:
            return "cccv"
        return "cc_charge" if step.current > 0 else "cc_discharge"
    return {"rest": "rest", "hold": "cv", "ca": "cv", "lsv": "ramp"}[step.kind]


def _refusal(step: ProgramStep) -> str | None:
    """Why ``step`` cannot run at all (:data:`REFUSED_KINDS`, :data:`REFUSED_FORMS`), or ``None``."""
    if step.kind in REFUSED_KINDS:
        return REFUSED_KINDS[step.kind]
    for has_form, why in REFUSED_FORMS.get(step.kind, ()):
        if has_form(step):
            return why.format(step=step)
    return None


def _check_range(step: ProgramStep, what: str, volts: float, ranges: ChannelRanges, problems: list[str]) -> None:
    if not ranges.voltage_min <= volts <= ranges.voltage_max:
        problems.append(
            f"{_where(step)}: {what} {volts:g} V is outside the channel's range "
            f"{ranges.voltage_min:g}..{ranges.voltage_max:g} V"
        )


def _check_current(step: ProgramStep, amps: float, ranges: ChannelRanges, problems: list[str]) -> None:
    if abs(amps) > ranges.current_max:
        problems.append(
            f"{_where(step)}: current {abs(amps) * 1000:g} mA exceeds the channel's maximum "
            f"{ranges.current_max * 1000:g} mA"
        )
    elif abs(amps) < ranges.current_min_resolution:
        problems.append(
            f"{_where(step)}: current {abs(amps) * 1000:g} mA is below the channel's resolution "
            f"{ranges.current_min_resolution * 1000:g} mA"
        )


def _check_terminations(step: ProgramStep, form: str, code: int | None, problems: list[str]) -> bool:
    """Hold each termination to :data:`MAIN_RULES` or :data:`CONDITION_RULES`; True when none was refused."""
    allowed = MAIN_ENDS[form]
    seen: set[Quantity] = set()
    conditions = 0
    clean = True
    for term in step.until:
        condition = _is_condition(step, term)
        conditions += condition
        end = _End(term, allowed, frozenset(seen), code)
        failed = next((rule for rule in (CONDITION_RULES if condition else MAIN_RULES) if rule.refuses(end)), None)
        if not condition and (failed is None or failed.still_counts):
            seen.add(term.quantity)
        if failed is not None:
            clean = False
            op = allowed.get(term.quantity)
            problems.append(failed.message.format(
                where=_where(step), kind=step.kind, q=term.quantity.value, op=op.value if op else "",
                names=", ".join(q.value for q in allowed) or "none", text=term.describe(), value=term.value,
            ))
    if conditions > MAX_CONDITIONS:
        clean = False
        problems.append(f"{_where(step)}: {conditions} conditions that jump or end; a BTS step has at most "
                        f"{MAX_CONDITIONS} (BTS 9 manual)")
    return clean


def _check_hold(step: HoldStep | CaStep, ctx: _Context, problems: list[str]) -> int | None:
    """A CV step needs a direction (its type) and a current limit (its ``Curr``); returns its type if known."""
    ranges = ctx.ranges
    _check_range(step, "hold voltage", step.voltage, ranges, problems)
    found = ctx.direction(step)
    if found.direction is None:
        fix = ("add 'direction: charge' (the hold only sources current) or 'direction: discharge' (it only sinks "
               "it) to the hold") if isinstance(step, HoldStep) else "write it as a 'hold' with 'direction: charge' " \
            "or 'direction: discharge'"
        problems.append(
            f"{_where(step)}: cannot tell which way the hold at {step.voltage:g} V drives current ({found.reason}); "
            f"a Neware CV step either only charges (CV_Chg, type 3) or only discharges (CV_DChg, type 19): {fix}"
        )
    limit = _hold_current(step, ctx, found.direction)
    if limit is None:
        if found.direction is not None:
            problems.append(
                f"{_where(step)}: a Neware CV step needs a current limit (Curr) and this hold has none: give it "
                "'current_limit:' or the protocol a safety current"
            )
    else:
        _check_current(step, limit, ranges, problems)
    return _cv_type(step, ctx)


def _check_setpoints(step: ProgramStep, ctx: _Context, problems: list[str]) -> int | None:
    """The checks of what a step holds (current, hold or ramp voltages); returns its Step_Type if known."""
    ranges = ctx.ranges
    if isinstance(step, CurrentStep):
        _check_current(step, step.current, ranges, problems)
        if step.hold_voltage is not None:
            _check_range(step, "hold voltage", step.hold_voltage, ranges, problems)
        return _step_type(step, ctx)
    if isinstance(step, HoldStep | CaStep):
        return _check_hold(step, ctx, problems)
    if isinstance(step, LsvStep):
        assert step.start is not None  # refused by REFUSED_FORMS otherwise
        _check_range(step, "ramp start", step.start, ranges, problems)
        _check_range(step, "ramp end", step.end, ranges, problems)
    return _step_type(step, ctx)


def _check_step(step: ProgramStep, ctx: _Context, problems: list[str]) -> None:
    refusal = _refusal(step)
    if refusal is not None:
        problems.append(f"{_where(step)}: {refusal}")
        return
    if isinstance(step, LoopStep):
        return
    form = _form(step)
    code = _check_setpoints(step, ctx, problems)
    clean = _check_terminations(step, form, code, problems)
    required = REQUIRED_ENDS.get(form)
    if required is not None and clean:
        quantities, why = required
        if not any(quantities is None or t.quantity in quantities for t in step.until):
            problems.append(f"{_where(step)}: {why}")
    what = RANGED_VOLTAGE_ENDS.get(form)
    if what is not None:
        for term in step.until:
            if term.quantity is Quantity.VOLTAGE:
                _check_range(step, what, term.value, ctx.ranges, problems)


def _check_encodable(step: ProgramStep | None, emit: Callable[[], object], problems: list[str]) -> None:
    """Emit a step (or the header) once to find values the step file cannot hold: a finite value in the program
    can still overflow once scaled (1e305 s is inf in ms), and the emitter must never fail after the check."""
    try:
        emit()
    except _Unencodable:
        where = _where(step) if step is not None else "the safety limits, recording rule or options"
        problems.append(f"{where}: a value is too large to write into a BTS step file")


def check_program(program: StepProgram, ranges: ChannelRanges, options: CompileOptions = CompileOptions()) -> None:
    """Raise :class:`CapabilityError` listing every step (and safety limit) a Neware channel cannot run."""
    station = station_step_problem(program)
    if station is not None:  # a program with temperature steps reaches a channel only as its segments
        raise CapabilityError([station])
    problems: list[str] = []
    native_steps = len(program.steps)
    if native_steps > options.max_steps:
        problems.append(
            f"the program has {native_steps} steps; a BTS step file holds at most {options.max_steps} plus End; "
            "use loops instead of unrolled steps"
        )
    ctx = _Context.of(program, ranges)
    for step in program.steps:
        found: list[str] = []
        _check_step(step, ctx, found)
        if not found:  # only a step that passed can be emitted
            _check_encodable(step, lambda s=step: _step_lines(s, ctx), found)
        problems += found
    _check_encodable(None, lambda: _header_lines(program, options), problems)
    safety = program.safety
    for name, why in REFUSED_SAFETY.items():
        if getattr(safety, name) is not None:
            problems.append(f"safety.{name}: {why}")
    for name in ("voltage_min", "voltage_max"):
        value = getattr(safety, name)
        if value is not None and not ranges.voltage_min <= value <= ranges.voltage_max:
            problems.append(
                f"safety.{name} {value:g} V is outside the channel's range "
                f"{ranges.voltage_min:g}..{ranges.voltage_max:g} V"
            )
    if safety.current_max is not None and safety.current_max > ranges.current_max:
        problems.append(
            f"safety.current_max {safety.current_max * 1000:g} mA exceeds the channel's maximum "
            f"{ranges.current_max * 1000:g} mA"
        )
    if problems:
        raise CapabilityError(problems)


def notes(program: StepProgram) -> list[str]:
    """What the step file writes differently from the program, for ``station plan`` (no check is made here)."""
    out = []
    why = ("whether the BTS reads a zero voltage limit as a limit is unconfirmed (reference section 9), so it is "
           "written as the smallest positive count, 1 = 0.1 mV")
    for step in program.steps:
        for term in step.until:
            if term.quantity is Quantity.VOLTAGE and _limit_v(term.value) != _v(term.value):
                out.append(f"step {step.index}: '{term.describe()}' is written to a Neware step file as 0.1 mV: {why}")
    for name in ("voltage_min", "voltage_max"):
        value = getattr(program.safety, name)
        if value is not None and _limit_v(value) != _v(value):
            out.append(f"safety.{name} 0 V is written to a Neware step file's protection as 0.1 mV: {why}")
    return out


# ----------------------------------------------------------------------------------------------------------------
# emitter


def _attr(value: str) -> str:
    return quote_attribute(value)


def _record_lines(rule: RecordRule, indent: str, default_s: float | None) -> list[str]:
    # the default interval fills only an empty rule: a change-only rule stays change-only
    every = rule.every_s if rule.every_s is not None else (default_s if rule == RecordRule() else None)
    parts = []
    if every is not None:
        parts.append(f"{indent}  <Time Value={_attr(_ms(every))} />")
    if rule.voltage_change is not None:
        parts.append(f"{indent}  <Volt Value={_attr(_v(rule.voltage_change))} />")
    if rule.current_change is not None:
        parts.append(f"{indent}  <Curr Value={_attr(_ma(rule.current_change))} />")
    if not parts:
        return []
    return [
        f"{indent}<Record>",
        f"{indent}  <Main>",
        *(" " * 2 + p for p in parts),
        f"{indent}  </Main>",
        f"{indent}</Record>",
    ]


def _limit_values(step: ProgramStep, ctx: _Context) -> list[tuple[str, str]]:
    values: list[tuple[str, str]] = []
    if isinstance(step, CurrentStep):
        values.append(("Curr", _ma(abs(step.current))))
        if step.hold_voltage is not None:
            values.append(("Volt", _v(step.hold_voltage)))
    elif isinstance(step, HoldStep | CaStep):
        limit = _hold_current(step, ctx, ctx.direction(step).direction)
        assert limit is not None  # checked
        values.append(("Curr", _ma(limit)))
        values.append(("Volt", _v(step.voltage)))
    for term in step.until:
        if _is_condition(step, term):
            continue
        if term.quantity is Quantity.TIME:
            values.append(("Time", _ms(term.value)))
        elif term.quantity is Quantity.VOLTAGE:
            values.append(("Stop_Volt", _limit_v(term.value)))
        elif term.quantity is Quantity.CURRENT:
            values.append(("Stop_Curr", _ma(term.value)))
        elif term.quantity is Quantity.CAPACITY:
            values.append(("Cap", _mas(term.value)))
        elif term.quantity is Quantity.ENERGY:
            values.append(("Energy", _mas(term.value)))
    return values


def _condition_attributes(step: ProgramStep, term: Termination, ctx: _Context) -> dict[str, str]:
    """One ``Cnd``'s attributes, in the order of the reference's example (neware-bts-api.md 3.6)."""
    value = {Quantity.VOLTAGE: _limit_v, Quantity.CURRENT: _ma, Quantity.TIME: _ms}[term.quantity](term.value)
    if term.then is Action.END:
        jump = ctx.end_id
    elif term.then is Action.JUMP:
        assert term.target is not None
        jump = term.target
    else:
        jump = NEXT_LINE
    return {
        "type": str(CONDITION_TYPES[term.quantity]),
        "Function": "0",
        "CmpType": str(COMPARE_LT if term.op is Comparison.LE else COMPARE_GT),
        "Jump_Line": str(jump),
        "Value": value,
        "TimeGoto": "0",
        "Aux": "0",
    }


def _step_type(step: ProgramStep, ctx: _Context) -> int:
    if isinstance(step, RestStep):
        return REST
    if isinstance(step, LoopStep):
        return CYCLE
    if isinstance(step, LsvStep):
        return RAMP
    if isinstance(step, CurrentStep):
        if step.hold_voltage is not None:
            return CCCV_CHG if step.current > 0 else CCCV_DCHG
        return CC_CHG if step.current > 0 else CC_DCHG
    if isinstance(step, HoldStep | CaStep):
        code = _cv_type(step, ctx)
        assert code is not None  # checked
        return code
    raise AssertionError(f"unchecked step kind {step.kind}")


def _step_lines(step: ProgramStep, ctx: _Context) -> list[str]:
    code = _step_type(step, ctx)
    head = f"      <Step{step.index} Step_ID={_attr(str(step.index))} Step_Type={_attr(str(code))}>"
    body: list[str] = []
    if isinstance(step, LoopStep):
        body += [
            "        <Limit>",
            "          <Other>",
            f"            <Start_Step Value={_attr(str(step.target))} />",
            f"            <Cycle_Count Value={_attr(str(step.count))} />",
            "          </Other>",
            "        </Limit>",
        ]
    else:
        if step.record != RecordRule() and step.record != ctx.program.record:
            body += _record_lines(step.record, "        ", None)
        limits = _limit_values(step, ctx)
        conditions = [t for t in step.until if _is_condition(step, t)]
        if limits or conditions:
            body.append("        <Limit>")
        if limits:
            body.append("          <Main>")
            body += [f"            <{name} Value={_attr(value)} />" for name, value in limits]
            body.append("          </Main>")
        if conditions:
            body.append(f"          <Other CndCount={_attr(str(len(conditions)))}>")
            for n, term in enumerate(conditions, start=1):
                attrs = " ".join(f"{k}={_attr(v)}" for k, v in _condition_attributes(step, term, ctx).items())
                body.append(f"            <Cnd{n} {attrs} />")
            body.append("          </Other>")
        if limits or conditions:
            body.append("        </Limit>")
        if isinstance(step, LsvStep):
            assert step.start is not None
            body += [
                '        <Slope SlopeType="1" Cycle_Count="1" ItemCount="1">',
                f"          <Slope1 StartValue={_attr(_v(step.start))} EndValue={_attr(_v(step.end))} "
                f"Value={_attr(_num(round(step.scan_rate * 1000, 9)))} />",
                "        </Slope>",
            ]
    return [head, *body, f"      </Step{step.index}>"]


def _whole_protection(program: StepProgram, options: CompileOptions) -> list[str]:
    safety = program.safety
    lines = ["    <Whole_Prt>", "      <Protect>", "        <Main>"]
    if safety.voltage_max is not None or safety.voltage_min is not None:
        lines.append("          <Volt>")
        if safety.voltage_max is not None:
            lines.append(f"            <Upper Value={_attr(_limit_v(safety.voltage_max))} />")
        if safety.voltage_min is not None:
            lines.append(f"            <Lower Value={_attr(_limit_v(safety.voltage_min))} />")
        lines.append("          </Volt>")
    if safety.current_max is not None:
        lines += [
            "          <Curr>",
            f"            <Upper Value={_attr(_ma(safety.current_max))} />",
            f"            <Lower Value={_attr(_ma(-safety.current_max))} />",
            "          </Curr>",
        ]
    lines.append(f"          <Delay_Time Value={_attr(_ms(options.protect_delay_s))} />")
    if safety.capacity_max is not None:
        upper = _attr(_mas(safety.capacity_max))
        lines += ["          <Cap>", f"            <Upper Value={upper} />", "          </Cap>"]
    lines += ["        </Main>", "      </Protect>"]
    lines += _record_lines(program.record, "      ", options.default_record_s)
    lines.append("    </Whole_Prt>")
    return lines


def reference_capacity_ah(program: StepProgram, options: CompileOptions) -> float | None:
    """The capacity ``MultCap`` records: the caller's, else the cell's nominal capacity (``None``: the default)."""
    return options.reference_capacity_ah if options.reference_capacity_ah is not None else program.nominal_capacity


def _header_lines(program: StepProgram, options: CompileOptions) -> list[str]:
    capacity = reference_capacity_ah(program, options)
    multcap = capacity * 3_600_000 if capacity is not None else DEFAULT_MULTCAP_MAS
    return [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<root>",
        f'  <config type="Step File" version="17" client_version={_attr(CLIENT_VERSION)} '
        f"date={_attr(options.date)} Guid={_attr(options.guid)}>",
        "    <Head_Info>",
        '      <Operate Value="66" />',
        '      <Scale Value="1" />',
        '      <Start_Step Value="1" Hide_Ctrl_Step="0" />',
        '      <Creator Value="battery-test-station" />',
        f"      <Remark Value={_attr(_xml_text(program.protocol + ' / ' + program.cell))} />",
        f"      <RateType Value={_attr(str(RATE_TYPE))} />",
        f"      <MultCap Value={_attr(_num(round(multcap, 6)))} />",
        "    </Head_Info>",
        *_whole_protection(program, options),
    ]


def compile_program(
    program: StepProgram, ranges: ChannelRanges, options: CompileOptions = CompileOptions()
) -> CompiledStepFile:
    """Check the program against the channel, then emit the BTS step file (UTF-8, CRLF)."""
    check_program(program, ranges, options)
    ctx = _Context.of(program, ranges)
    end_id = ctx.end_id
    lines = [*_header_lines(program, options), f"    <Step_Info Num={_attr(str(end_id))}>"]
    for step in program.steps:
        lines += _step_lines(step, ctx)
    lines += [
        f'      <Step{end_id} Step_ID="{end_id}" Step_Type="{END}" />',
        "    </Step_Info>",
        "    <SMBUS>",
        '      <SMBUS_Info Num="0" AdjacentInterval="0" />',
        "    </SMBUS>",
        "  </config>",
        "</root>",
        "",
    ]
    mapping = {step.index: step.index for step in program.steps}
    return CompiledStepFile(xml="\r\n".join(lines).encode("utf-8"), native_to_program=mapping, end_step_id=end_id)
