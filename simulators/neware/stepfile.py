"""Read BTS step files the way the simulated BTS Client does, independently of the driver's compiler.

The simulator must accept files written by the real BTS Client and by other generators (aurora-unicycler,
neware-utils, bmgen, hand-edited files), so this parser is deliberately lenient about layout and strict about
meaning: GB2312 or UTF-8, integer or decimal values (``42000``, ``42000.000000``, ``1E-05``), ``Curr`` or only
``Rate`` (turned into a current through ``MultCap``), self-closing or empty End steps, unknown extra elements
(``AdvancedPrt``, ``SMBUS_Path``, ``Is_Select`` attributes) ignored. It refuses what it cannot execute faithfully
(``Num`` disagreeing with the steps, unknown Step_Type codes, a CC step without a current) with a
:class:`StepFileError` naming the step and the element, which the server turns into ``start`` -> ``false``.

Scaling is the reference's (neware-bts-api.md 3.4): 0.1 mV, mA, ms, mA*s. ``Energy`` in ``Limit/Main`` is read
in mW*s, the driver compiler's documented assumption.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET

from protocols.program import (
    Comparison,
    CurrentStep,
    HoldStep,
    LsvStep,
    ProgramStep,
    Quantity,
    RecordRule,
    RestStep,
    Termination,
)


class StepFileError(ValueError):
    """A step file the simulated BTS Client cannot run; the message names the step and element."""


#: Step_Type codes this simulator executes (neware-bts-api.md 3.3)
CC_CHG, CC_DCHG, CV_CHG, REST, CYCLE, END, CCCV_CHG = 1, 2, 3, 4, 5, 6, 7
PAUSE, CV_DCHG, CCCV_DCHG, CONTROL, RAMP = 13, 19, 20, 21, 25
SUPPORTED_TYPES = {CC_CHG, CC_DCHG, CV_CHG, REST, CYCLE, END, CCCV_CHG, PAUSE, CV_DCHG, CCCV_DCHG, CONTROL, RAMP}
CHARGE_TYPES = {CC_CHG, CV_CHG, CCCV_CHG}
DISCHARGE_TYPES = {CC_DCHG, CV_DCHG, CCCV_DCHG}

#: API step-type strings used in inquire/download (neware-bts-api.md 2.16)
API_STEP_NAMES = {
    CC_CHG: "cc",
    CC_DCHG: "dc",
    CV_CHG: "cv",
    REST: "rest",
    CYCLE: "cycle",
    END: "end",
    CCCV_CHG: "cccv",
    PAUSE: "pause",
    CV_DCHG: "dv",
    CCCV_DCHG: "cccd",
    CONTROL: "control",
    RAMP: "ramp",
}


@dataclass(frozen=True, slots=True)
class NativeRecord:
    every_s: float | None = None
    voltage_change: float | None = None
    current_change: float | None = None

    def to_rule(self) -> RecordRule:
        return RecordRule(every_s=self.every_s, voltage_change=self.voltage_change, current_change=self.current_change)


@dataclass(frozen=True, slots=True)
class NativeProtection:
    """Limits that trip the channel into ``protect``; currents signed in A, capacity in Ah."""

    voltage_max: float | None = None
    voltage_min: float | None = None
    current_upper: float | None = None
    current_lower: float | None = None
    capacity_max: float | None = None
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class NativeStep:
    """One step of the file in SI units; ``current`` is the magnitude, the sign comes from ``step_type``."""

    step_id: int
    step_type: int
    current: float | None = None
    voltage: float | None = None
    stop_voltage: float | None = None
    stop_current: float | None = None
    time_s: float | None = None
    capacity_ah: float | None = None
    energy_wh: float | None = None
    record: NativeRecord | None = None
    protect: NativeProtection | None = None
    loop_start: int | None = None
    loop_count: int | None = None
    ramp: tuple[float, float, float] | None = None  # start V, end V, rate V/s

    @property
    def api_name(self) -> str:
        return API_STEP_NAMES.get(self.step_type, "--")

    @property
    def sign(self) -> int:
        """+1 for charge steps, -1 for discharge steps, 0 otherwise (used to sign capacity)."""
        if self.step_type in CHARGE_TYPES:
            return 1
        if self.step_type in DISCHARGE_TYPES:
            return -1
        return 0


@dataclass(frozen=True, slots=True)
class NativePlan:
    steps: tuple[NativeStep, ...]
    start_step: int = 1
    protection: NativeProtection = NativeProtection()
    record: NativeRecord = NativeRecord()
    mult_cap_ah: float | None = None
    rate_type: int | None = None

    def step(self, step_id: int) -> NativeStep:
        return self.steps[step_id - 1]


_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>", re.DOTALL)
_ENCODING = re.compile(rb"encoding\s*=\s*[\"']([A-Za-z0-9_.-]+)[\"']")


def decode(data: bytes) -> str:
    """Bytes -> text using the declared encoding (GB2312 read as its superset GB18030), BOM-aware."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    match = _DECLARATION.match(data)
    encoding = "utf-8"
    if match:
        declared = _ENCODING.search(match.group(0))
        if declared:
            encoding = declared.group(1).decode("ascii").lower()
        data = data[match.end() :]
    if encoding in ("gb2312", "gbk", "gb18030"):
        encoding = "gb18030"
    try:
        return data.decode(encoding)
    except (LookupError, UnicodeDecodeError) as exc:
        raise StepFileError(f"the step file is not valid {encoding} text: {exc}") from exc


def _number(element: Element | None, where: str) -> float | None:
    if element is None:
        return None
    text = element.get("Value")
    if text is None or text.strip() == "":
        return None
    try:
        number = float(text)
    except ValueError:
        raise StepFileError(f"{where}: Value={text!r} is not a number") from None
    if not math.isfinite(number):
        raise StepFileError(f"{where}: Value={text!r} is not a finite number")
    return number


def _child_value(parent: Element | None, name: str, where: str) -> float | None:
    return None if parent is None else _number(parent.find(name), f"{where}/{name}")


def _parse_record(element: Element | None, where: str) -> NativeRecord | None:
    if element is None:
        return None
    main = element.find("Main")
    if main is None:
        return None
    every = _child_value(main, "Time", f"{where}/Main")
    volt = _child_value(main, "Volt", f"{where}/Main")
    curr = _child_value(main, "Curr", f"{where}/Main")
    return NativeRecord(
        every_s=every / 1000 if every else None,
        voltage_change=volt / 10_000 if volt else None,
        current_change=curr / 1000 if curr else None,
    )


def _parse_protect(element: Element | None, where: str) -> NativeProtection | None:
    if element is None:
        return None
    main = element.find("Main")
    if main is None:
        return None
    volt, curr, cap = main.find("Volt"), main.find("Curr"), main.find("Cap")
    v_up = _child_value(volt, "Upper", f"{where}/Volt")
    v_lo = _child_value(volt, "Lower", f"{where}/Volt")
    i_up = _child_value(curr, "Upper", f"{where}/Curr")
    i_lo = _child_value(curr, "Lower", f"{where}/Curr")
    c_up = _child_value(cap, "Upper", f"{where}/Cap")
    delay = _child_value(main, "Delay_Time", where)
    return NativeProtection(
        voltage_max=None if v_up is None else v_up / 10_000,
        voltage_min=None if v_lo is None else v_lo / 10_000,
        current_upper=None if i_up is None else i_up / 1000,
        current_lower=None if i_lo is None else i_lo / 1000,
        capacity_max=None if c_up is None else c_up / 3_600_000,
        delay_s=0.0 if delay is None else delay / 1000,
    )


def _parse_step(element: Element, position: int, mult_cap_ah: float | None) -> NativeStep:
    where = f"Step_Info/{element.tag}"
    try:
        step_id = int(element.get("Step_ID", position))
        step_type = int(element.get("Step_Type", ""))
    except ValueError:
        raise StepFileError(f"{where}: Step_ID and Step_Type must be integers") from None
    if step_id != position:
        raise StepFileError(f"{where}: Step_ID {step_id} is out of order (expected {position})")
    if step_type not in SUPPORTED_TYPES:
        raise StepFileError(f"{where}: Step_Type {step_type} is not supported by the simulated BTS")
    limit = element.find("Limit")
    main = limit.find("Main") if limit is not None else None
    other = limit.find("Other") if limit is not None else None
    lw = f"{where}/Limit/Main"

    def value(name: str) -> float | None:
        return _child_value(main, name, lw)

    curr, rate = value("Curr"), value("Rate")
    if curr is None and rate is not None and mult_cap_ah is not None:
        curr = rate * mult_cap_ah * 1000
    stop_curr, stop_rate = value("Stop_Curr"), value("Stop_Rate")
    if stop_curr is None and stop_rate is not None and mult_cap_ah is not None:
        stop_curr = stop_rate * mult_cap_ah * 1000
    volt, stop_volt, time_ms = value("Volt"), value("Stop_Volt"), value("Time")
    cap, energy = value("Cap"), value("Energy")
    step = NativeStep(
        step_id=step_id,
        step_type=step_type,
        current=None if curr is None else abs(curr) / 1000,
        voltage=None if volt is None else volt / 10_000,
        stop_voltage=None if stop_volt is None else stop_volt / 10_000,
        stop_current=None if stop_curr is None else abs(stop_curr) / 1000,
        time_s=None if time_ms is None else time_ms / 1000,
        capacity_ah=None if cap is None else cap / 3_600_000,
        energy_wh=None if energy is None else energy / 3_600_000,
        record=_parse_record(element.find("Record"), f"{where}/Record"),
        protect=_parse_protect(element.find("Protect"), f"{where}/Protect"),
    )
    if step_type == CYCLE:
        start = _child_value(other, "Start_Step", f"{where}/Limit/Other")
        count = _child_value(other, "Cycle_Count", f"{where}/Limit/Other")
        if start is None or count is None or count < 1:
            raise StepFileError(f"{where}: a Cycle step needs Limit/Other/Start_Step and a Cycle_Count >= 1")
        if not 1 <= start < step_id:
            raise StepFileError(f"{where}: Start_Step {start:g} must name an earlier step")
        return _replace(step, loop_start=int(start), loop_count=int(count))
    if step_type == RAMP:
        slope = element.find("Slope")
        first = slope.find("Slope1") if slope is not None else None
        if first is None:
            raise StepFileError(f"{where}: a Ramp step needs Slope/Slope1")
        try:
            start_v = float(first.get("StartValue", "")) / 10_000
            end_v = float(first.get("EndValue", "")) / 10_000
            rate_v = float(first.get("Value", "")) / 1000
        except ValueError:
            raise StepFileError(f"{where}/Slope/Slope1: StartValue, EndValue and Value must be numbers") from None
        if not all(math.isfinite(x) for x in (start_v, end_v, rate_v)) or rate_v <= 0:
            raise StepFileError(f"{where}/Slope/Slope1: needs finite voltages and a positive rate (Value, mV/s)")
        return _replace(step, ramp=(start_v, end_v, rate_v))
    if step_type in (CC_CHG, CC_DCHG, CCCV_CHG, CCCV_DCHG, CV_CHG, CV_DCHG) and not step.current:
        raise StepFileError(f"{where}: Step_Type {step_type} needs a current (Limit/Main/Curr or Rate with MultCap)")
    if step_type in (CCCV_CHG, CCCV_DCHG, CV_CHG, CV_DCHG) and step.voltage is None:
        raise StepFileError(f"{where}: Step_Type {step_type} needs a voltage (Limit/Main/Volt)")
    if step_type in (CC_CHG, CC_DCHG, CCCV_CHG, CCCV_DCHG, CV_CHG, CV_DCHG, REST, RAMP) and not any(
        v is not None for v in (step.stop_voltage, step.stop_current, step.time_s, step.capacity_ah, step.energy_wh)
    ):
        raise StepFileError(f"{where}: the step has no end condition (Time, Stop_Volt, Stop_Curr, Cap or Energy)")
    return step


def _replace(step: NativeStep, **changes: object) -> NativeStep:
    return replace(step, **changes)  # type: ignore[arg-type]


def parse_step_file(data: bytes | str) -> NativePlan:
    """Parse a whole step file; raise :class:`StepFileError` for anything the simulator cannot run."""
    text = decode(data) if isinstance(data, bytes) else re.sub(r"^\s*<\?xml[^>]*\?>", "", data, count=1)
    try:
        root = SafeET.fromstring(text)
    except SafeET.ParseError as exc:
        raise StepFileError(f"the step file is not well-formed XML: {exc}") from None
    except Exception as exc:  # defusedxml's refusals (entities, DTDs) are user errors here, not crashes
        raise StepFileError(f"the step file was refused by the XML parser: {exc}") from None
    config = root if root.tag == "config" else root.find("config")
    if config is None:
        raise StepFileError("the step file has no <config> element under <root>")
    head = config.find("Head_Info")
    mult_cap = _child_value(head, "MultCap", "Head_Info")
    mult_cap_ah = mult_cap / 3_600_000 if mult_cap else None
    rate_type = _child_value(head, "RateType", "Head_Info")
    start_step = _child_value(head, "Start_Step", "Head_Info")
    info = config.find("Step_Info")
    if info is None:
        raise StepFileError("the step file has no <Step_Info> element")
    elements = [child for child in info if child.tag.startswith("Step")]
    declared = info.get("Num")
    if declared is None or not declared.strip().isdigit():
        raise StepFileError("Step_Info needs Num = the number of steps including End")
    if int(declared) != len(elements):
        raise StepFileError(f"Step_Info Num={declared} but the file holds {len(elements)} steps (Num counts End)")
    steps = tuple(_parse_step(element, position, mult_cap_ah) for position, element in enumerate(elements, 1))
    if not steps or steps[-1].step_type != END:
        raise StepFileError("the last step must be End (Step_Type 6)")
    whole = config.find("Whole_Prt")
    protection = _parse_protect(whole.find("Protect") if whole is not None else None, "Whole_Prt/Protect")
    record = _parse_record(whole.find("Record") if whole is not None else None, "Whole_Prt/Record")
    first = int(start_step) if start_step else 1
    if not 1 <= first <= len(steps):
        raise StepFileError(f"Head_Info/Start_Step {first} names no step")
    return NativePlan(
        steps=steps,
        start_step=first,
        protection=protection or NativeProtection(),
        record=record or NativeRecord(),
        mult_cap_ah=mult_cap_ah,
        rate_type=None if rate_type is None else int(rate_type),
    )


def to_program_step(step: NativeStep, record: RecordRule) -> ProgramStep | None:
    """The cell-model view of one executable native step (``None`` for End, Cycle, Pause and Control).

    The index is the native Step_ID, so that a model's error or a record maps back to the file's step.
    """
    until: list[Termination] = []
    if step.time_s is not None:
        until.append(Termination(quantity=Quantity.TIME, op=Comparison.GE, value=step.time_s))
    if step.capacity_ah is not None:
        until.append(Termination(quantity=Quantity.CAPACITY, op=Comparison.GE, value=step.capacity_ah))
    if step.energy_wh is not None:
        until.append(Termination(quantity=Quantity.ENERGY, op=Comparison.GE, value=step.energy_wh))
    if step.stop_current is not None and step.step_type not in (CC_CHG, CC_DCHG):
        until.append(Termination(quantity=Quantity.CURRENT, op=Comparison.LE, value=step.stop_current))
    kind = step.step_type
    if step.stop_voltage is not None and kind not in (CCCV_CHG, CCCV_DCHG, CV_CHG, CV_DCHG):
        op = Comparison.LE if kind in DISCHARGE_TYPES else Comparison.GE
        until.append(Termination(quantity=Quantity.VOLTAGE, op=op, value=step.stop_voltage))
    common = {"index": step.step_id, "until": tuple(until), "record": record}
    if kind == REST:
        return RestStep(**common)
    if kind in (CC_CHG, CC_DCHG, CCCV_CHG, CCCV_DCHG):
        assert step.current is not None
        charge = kind in CHARGE_TYPES
        hold = step.voltage if kind in (CCCV_CHG, CCCV_DCHG) else None
        return CurrentStep(
            kind="charge" if charge else "discharge",
            current=step.current if charge else -step.current,
            hold_voltage=hold,
            **common,
        )
    if kind in (CV_CHG, CV_DCHG):
        assert step.voltage is not None
        return HoldStep(voltage=step.voltage, current_limit=step.current, **common)
    if kind == RAMP:
        assert step.ramp is not None
        start, end, rate = step.ramp
        return LsvStep(start=start, end=end, scan_rate=rate, **common)
    return None
