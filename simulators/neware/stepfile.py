"""Read BTS step files the way the simulated BTS Client does, independently of the driver's compiler.

The simulator must accept files written by the real BTS Client and by other generators (aurora-unicycler,
neware-utils, bmgen, hand-edited files), so this parser is deliberately lenient about layout and strict about
meaning: GB2312 or UTF-8, integer or decimal values (``42000``, ``42000.000000``, ``1E-05``), ``Curr`` or only
``Rate`` (turned into a current through ``MultCap``), self-closing or empty End steps, unknown extra elements
(``AdvancedPrt``, ``SMBUS_Path``, ``Is_Select`` attributes) ignored. It refuses what it cannot execute faithfully
(``Num`` disagreeing with the steps, unknown Step_Type codes, a CC step without a current) with a
:class:`StepFileError` naming the step and the element, which the server turns into ``start`` -> ``false``.

Scaling is the reference's (neware-bts-api.md 3.4): 0.1 mV, mA, ms, mA*s. ``Energy`` in ``Limit/Main`` is read
in mW*s, the driver compiler's documented assumption. Three readings follow reference section 9:

* ``RateType 105`` (C-rate mode): a step's current is ``Rate x MultCap`` and a stale ``Curr`` beside the ``Rate`` is
  ignored (likewise ``Stop_Rate`` over ``Stop_Curr``); in ``103`` (absolute) mode ``Curr`` counts and ``Rate`` is
  used only when ``Curr`` is missing;
* a limit of 0 (``Stop_Volt``, ``Stop_Curr``, ``Time``, ``Cap``, ``Energy``, protection bounds, record thresholds)
  is absent, the way aurora-cycler-manager's step reader drops zero-valued limits. Set-points (``Curr``, ``Volt``)
  are not limits and keep their value;
* jump conditions (``Limit/Other/CndN``, :mod:`simulators.neware.conditions`) and Control steps (21) are control
  flow: they are read into the plan and executed, or refused at ``start`` when the reference does not say what
  they mean. A Control step that sets an external device (``ControlStepValue``, e.g. a chamber temperature) is
  refused: the simulated BTS drives no chamber.

A step file is whatever a client names, so the reading is hostile-input safe in three layers, each refusing with
a :class:`StepFileError` (the server answers ``start`` -> ``false`` and logs it):

* :func:`read_step_file` opens only regular files (``stat`` first, then ``O_NONBLOCK`` and ``fstat`` on the open
  descriptor, so a FIFO or device swapped in between can neither block nor stream forever) and at most
  :data:`MAX_FILE_BYTES`;
* :func:`parse_step_file` parses with defusedxml (no DTD, no entities: no entity bombs), bounds the element count
  and depth while parsing, reads only the encodings the BTS Client writes (GB2312, UTF-8) and checks the file's
  structure: ``Num``, at most :data:`MAX_STEPS` steps, jump targets that name a step;
* :func:`check_plan` is the admission check of ``start``: set-points inside the device's :class:`DeviceRanges`,
  times within :data:`MAX_STEP_S`, loop passes within :data:`MAX_LOOP_PASSES`, and a whole program that executes
  at most :data:`MAX_EXECUTED_STEPS` steps, counted from the loop nesting without walking any pass.

It is kept apart from parsing so that tools can still read any well-formed file back (the driver's round trips),
while only what the simulated device can really run is started.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field, replace
from xml.etree.ElementTree import Element, TreeBuilder

import defusedxml.ElementTree as SafeET
from defusedxml.common import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

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
from simulators.neware.conditions import ConditionError, NativeCondition, parse_conditions, refusal


class StepFileError(ValueError):
    """A step file the simulated BTS Client cannot run; the message names the step and element."""


# -- limits on what a start accepts ------------------------------------------------------------------------------
# The reference gives the step count (254 editable steps plus End, NW-WEB) and that a channel has current and voltage
# ranges (TestInfo ``CurrRange``/``VoltRange``); it gives no number for file size, step time or loop passes, so
# those are conservative choices, each far above any real file and far below what would load the server.

#: a real 255-step file is ~130 kB (about 500 bytes a step); 4 MB is 30x that and still a bounded read and parse
MAX_FILE_BYTES = 4 * 1024 * 1024
#: 254 editable steps plus End (neware-bts-api.md 3.3, NW-WEB)
MAX_STEPS = 255
#: a 255-step file with every optional element has under 10 000 elements; the bound caps the parse tree's memory
MAX_ELEMENTS = 50_000
#: real files nest 7 deep (root/config/Step_Info/StepN/Limit/Main/Curr)
MAX_DEPTH = 32
#: no element of a real file carries more than a dozen attributes
MAX_ATTRIBUTES = 64
#: longest step time: 90 days, the limit at which the simulated cells end any step (simulators/cells
#: ``max_step_duration``), so a longer ``Time`` could not be run faithfully. 1e15 ms (30 000 years) is refused.
MAX_STEP_S = 90 * 86_400.0
#: passes of one Cycle step: the longest published cycle-life tests run tens of thousands of cycles (LTO cells);
#: 100 000 covers them, a 1e12-pass loop is refused
MAX_LOOP_PASSES = 100_000
#: step visits the whole program may make, loops multiplied out (loop and End steps count too): 50x the 1000-cycle
#: reference workload (P3, ~5000 steps), 50 000 cycles of a 4-step body. The step layer keeps a row per executed
#: step (a few hundred bytes each in the simulator), and a 1 ms step still costs a cell-model call (~0.3 ms)
MAX_EXECUTED_STEPS = 250_000
#: the encodings the BTS Client writes and reads (neware-bts-api.md 3.1), by declared name -> the codec used:
#: GB2312 is read as its superset GB18030; ASCII is a subset of both
ENCODINGS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "gb18030": "gb18030",
    "ascii": "ascii",
    "us-ascii": "ascii",
}


@dataclass(frozen=True, slots=True)
class DeviceRanges:
    """The simulated channels' ranges, which a step's set-points and cut-offs must lie in (like a real channel's
    ``CurrRange``/``VoltRange``, neware-bts-api.md 4.1).

    The defaults are the widest channel the reference names, the BST8-10A30V (10 A, 30 V; NW-WEB), so any
    configuration the station may give a simulated channel fits. Below 0 V no public source gives a figure:
    -5 V admits the bipolar windows used for plating on Cu|Li (station default -1 V) and refuses absurd values.
    """

    current_max: float = 10.0  # A
    voltage_min: float = -5.0  # V
    voltage_max: float = 30.0  # V


#: Step_Type codes this simulator executes (neware-bts-api.md 3.3)
CC_CHG, CC_DCHG, CV_CHG, REST, CYCLE, END, CCCV_CHG = 1, 2, 3, 4, 5, 6, 7
PAUSE, CV_DCHG, CCCV_DCHG, CONTROL, RAMP = 13, 19, 20, 21, 25
SUPPORTED_TYPES = {CC_CHG, CC_DCHG, CV_CHG, REST, CYCLE, END, CCCV_CHG, PAUSE, CV_DCHG, CCCV_DCHG, CONTROL, RAMP}
CHARGE_TYPES = {CC_CHG, CV_CHG, CCCV_CHG}
DISCHARGE_TYPES = {CC_DCHG, CV_DCHG, CCCV_DCHG}

#: Head_Info RateType values (reference 3.2): 105 = C-rate mode (current = Rate x MultCap), 103 = absolute current
RATE_MODE, ABSOLUTE_MODE = 105, 103

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
    conditions: tuple[NativeCondition, ...] = ()
    control: tuple[tuple[str, str], ...] = ()  # ControlStepValue attributes of a Control step

    def has_end(self) -> bool:
        """True when something in the file ends the step: a limit of Limit/Main or a jump condition."""
        limits = (self.stop_voltage, self.stop_current, self.time_s, self.capacity_ah, self.energy_wh)
        return any(v is not None for v in limits) or bool(self.conditions)

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
    #: the file's bytes as read (``load_step_file``): the channel keeps them, whatever happens to the file later
    source: bytes = field(default=b"", repr=False, compare=False)

    def step(self, step_id: int) -> NativeStep:
        return self.steps[step_id - 1]


_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>", re.DOTALL)
_ENCODING = re.compile(rb"encoding\s*=\s*[\"']([A-Za-z0-9_.-]+)[\"']")
_WHOLE = re.compile(r"\s*[0-9]{1,6}\s*")


def _show(text: str, limit: int = 40) -> str:
    """A value for an error message, cut short: a hostile file's 4 MB attribute must not reach the log whole."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _require_regular(info: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise StepFileError(f"the path is {_kind(info.st_mode)}, not a regular step file")
    if info.st_size > max_bytes:
        raise StepFileError(f"the file has {info.st_size} bytes; a step file may have at most {max_bytes}")


def read_step_file(path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes``.

    The path comes from a client, so it may name anything: a FIFO would block the reader forever and a device such
    as /dev/zero never ends. Hence ``stat`` before opening (a device is never even opened, some have side effects
    on open), ``O_NONBLOCK`` so that a FIFO swapped in after the ``stat`` cannot block the open, ``fstat`` on the
    open descriptor to catch that swap, and a read that stops one byte past the limit.
    """
    try:
        _require_regular(os.stat(path), max_bytes)
        flags = os.O_RDONLY
        for name in ("O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC", "O_BINARY"):
            flags |= getattr(os, name, 0)
        fd = os.open(path, flags)
    except (OSError, ValueError) as exc:  # ValueError: a path with a NUL byte
        raise StepFileError(f"cannot open the step file: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        _require_regular(os.fstat(fd), max_bytes)
        return _read_at_most(fd, max_bytes)
    except OSError as exc:
        raise StepFileError(f"cannot read the step file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _read_at_most(fd: int, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, min(1 << 16, max_bytes + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:  # the file grew since the fstat
            raise StepFileError(f"the file has more than {max_bytes} bytes; a step file may have at most {max_bytes}")
    return b"".join(chunks)


def decode(data: bytes) -> str:
    """Bytes -> text using the declared encoding (GB2312 read as its superset GB18030), BOM-aware.

    Only the encodings the BTS Client writes are read: any other declared name (UTF-16, a codec that is not a
    text encoding, an unknown name) is refused without ever being looked up in Python's codec registry.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    match = _DECLARATION.match(data)
    encoding = "utf-8"
    if match:
        declared = _ENCODING.search(match.group(0))
        if declared:
            encoding = declared.group(1).decode("ascii").lower()
        data = data[match.end() :]
    codec = ENCODINGS.get(encoding.replace("_", "-"))
    if codec is None:
        raise StepFileError(f"the step file declares encoding {_show(encoding)}; the BTS Client reads GB2312 or UTF-8")
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise StepFileError(f"the step file is not valid {encoding} text: {exc}") from None


class _BoundedTreeBuilder(TreeBuilder):
    """A tree builder that refuses, while parsing, a document too big or deep for any real step file.

    Counting during the parse (not after it) keeps a 4 MB file of tiny elements from ever becoming a large tree.
    """

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0
        self.depth = 0

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        self.elements += 1
        self.depth += 1
        if self.elements > MAX_ELEMENTS:
            raise StepFileError(f"the step file has more than {MAX_ELEMENTS} elements; no real step file has")
        if self.depth > MAX_DEPTH:
            raise StepFileError(f"the step file nests elements more than {MAX_DEPTH} deep; no real step file does")
        if len(attrs) > MAX_ATTRIBUTES:
            raise StepFileError(f"<{_show(tag)}> has {len(attrs)} attributes; no real step file element has")
        return super().start(tag, attrs)

    def end(self, tag: str) -> Element:
        self.depth -= 1
        return super().end(tag)


def _parse_xml(text: str) -> Element:
    """defusedxml with no DTD at all (a step file has none) and no entities: entity bombs are refused."""
    parser = SafeET.XMLParser(target=_BoundedTreeBuilder(), forbid_dtd=True)
    try:
        parser.feed(text)
        return parser.close()
    except StepFileError:
        raise
    except SafeET.ParseError as exc:
        raise StepFileError(f"the step file is not well-formed XML: {exc}") from None
    except DTDForbidden:
        raise StepFileError("the step file has a DTD (<!DOCTYPE>: entity bombs); step files have none") from None
    except (EntitiesForbidden, ExternalReferenceForbidden) as exc:
        raise StepFileError(f"the step file declares entities ({type(exc).__name__}); step files have none") from None
    except Exception as exc:  # any other refusal of the parser is the file's fault, not a crash
        raise StepFileError(f"the step file was refused by the XML parser: {type(exc).__name__}") from None


def _number(element: Element | None, where: str) -> float | None:
    if element is None:
        return None
    text = element.get("Value")
    if text is None or text.strip() == "":
        return None
    try:
        number = float(text)
    except ValueError:
        raise StepFileError(f"{where}: Value={_show(text)} is not a number") from None
    if not math.isfinite(number):
        raise StepFileError(f"{where}: Value={_show(text)} is not a finite number")
    return number


def _whole(value: float, where: str) -> int:
    if not value.is_integer():
        raise StepFileError(f"{where}: {value:g} is not a whole number")
    return int(value)


def _child_value(parent: Element | None, name: str, where: str) -> float | None:
    return None if parent is None else _number(parent.find(name), f"{where}/{name}")


def _limit(parent: Element | None, name: str, where: str) -> float | None:
    """A limit's value, with 0 read as absent (aurora-cycler-manager drops zero-valued limits; reference 9)."""
    value = _child_value(parent, name, where)
    return None if value == 0 else value


def _parse_record(element: Element | None, where: str) -> NativeRecord | None:
    if element is None:
        return None
    main = element.find("Main")
    if main is None:
        return None
    every = _limit(main, "Time", f"{where}/Main")
    volt = _limit(main, "Volt", f"{where}/Main")
    curr = _limit(main, "Curr", f"{where}/Main")
    return NativeRecord(
        every_s=None if every is None else every / 1000,
        voltage_change=None if volt is None else volt / 10_000,
        current_change=None if curr is None else curr / 1000,
    )


def _parse_protect(element: Element | None, where: str) -> NativeProtection | None:
    if element is None:
        return None
    main = element.find("Main")
    if main is None:
        return None
    volt, curr, cap = main.find("Volt"), main.find("Curr"), main.find("Cap")
    v_up = _limit(volt, "Upper", f"{where}/Volt")
    v_lo = _limit(volt, "Lower", f"{where}/Volt")
    i_up = _limit(curr, "Upper", f"{where}/Curr")
    i_lo = _limit(curr, "Lower", f"{where}/Curr")
    c_up = _limit(cap, "Upper", f"{where}/Cap")
    delay = _child_value(main, "Delay_Time", where)
    return NativeProtection(
        voltage_max=None if v_up is None else v_up / 10_000,
        voltage_min=None if v_lo is None else v_lo / 10_000,
        current_upper=None if i_up is None else i_up / 1000,
        current_lower=None if i_lo is None else i_lo / 1000,
        capacity_max=None if c_up is None else c_up / 3_600_000,
        delay_s=0.0 if delay is None else delay / 1000,
    )


def _parse_conditions(other: Element | None, where: str, steps: int) -> tuple[NativeCondition, ...]:
    try:
        return parse_conditions(other, where, steps)
    except ConditionError as exc:
        raise StepFileError(str(exc)) from None


def _parse_control(element: Element) -> tuple[tuple[str, str], ...]:
    """The ``ControlStepValue`` attributes of a Control step (e.g. ``ControlType 5, TempValue 50``), if any."""
    value = element.find("ControlStepValue")
    return () if value is None else tuple(sorted(value.attrib.items()))


def _parse_loop(step: NativeStep, other: Element | None, where: str) -> NativeStep:
    start = _child_value(other, "Start_Step", f"{where}/Limit/Other")
    count = _child_value(other, "Cycle_Count", f"{where}/Limit/Other")
    if start is None or count is None or count < 1:
        raise StepFileError(f"{where}: a Cycle step needs Limit/Other/Start_Step and a Cycle_Count >= 1")
    if not 1 <= start < step.step_id:
        raise StepFileError(f"{where}: Start_Step {start:g} must name an earlier step")
    first = _whole(start, f"{where}/Limit/Other/Start_Step")
    return _replace(step, loop_start=first, loop_count=_whole(count, f"{where}/Limit/Other/Cycle_Count"))


def _parse_ramp(step: NativeStep, element: Element, where: str) -> NativeStep:
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


def _current(main: Element | None, lw: str, names: tuple[str, str], mult_cap_ah: float | None, rate_mode: bool):
    """A current in mA from ``Curr``/``Rate`` (or ``Stop_Curr``/``Stop_Rate``).

    In C-rate mode (RateType 105) the rate times ``MultCap`` is the current and a ``Curr`` beside it is stale
    (reference 9); otherwise ``Curr`` counts and the rate only stands in for a missing ``Curr``.
    """
    curr_name, rate_name = names
    curr, rate = _child_value(main, curr_name, lw), _child_value(main, rate_name, lw)
    if rate is not None and mult_cap_ah is not None and (rate_mode or curr is None):
        return rate * mult_cap_ah * 1000
    if rate_mode and rate is not None and mult_cap_ah is None:
        raise StepFileError(
            f"{lw}/{rate_name}: RateType 105 makes the current Rate x MultCap, but Head_Info has no MultCap"
        )
    return curr


def _parse_step(
    element: Element, position: int, mult_cap_ah: float | None, steps: int, rate_mode: bool = False
) -> NativeStep:
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
    conditions = _parse_conditions(other, f"{where}/Limit/Other", steps)
    lw = f"{where}/Limit/Main"
    curr = _current(main, lw, ("Curr", "Rate"), mult_cap_ah, rate_mode)
    stop_curr = _current(main, lw, ("Stop_Curr", "Stop_Rate"), mult_cap_ah, rate_mode)
    stop_curr = None if stop_curr == 0 else stop_curr
    volt = _child_value(main, "Volt", lw)
    stop_volt, time_ms = _limit(main, "Stop_Volt", lw), _limit(main, "Time", lw)
    cap, energy = _limit(main, "Cap", lw), _limit(main, "Energy", lw)
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
        conditions=conditions,
        control=_parse_control(element) if step_type == CONTROL else (),
    )
    if step_type == CYCLE:
        return _parse_loop(step, other, where)
    if step_type == RAMP:
        return _parse_ramp(step, element, where)
    _require_set_points(step, where)
    return step


def _require_set_points(step: NativeStep, where: str) -> None:
    step_type = step.step_type
    if step_type in (CC_CHG, CC_DCHG, CCCV_CHG, CCCV_DCHG, CV_CHG, CV_DCHG) and not step.current:
        raise StepFileError(f"{where}: Step_Type {step_type} needs a current (Limit/Main/Curr or Rate with MultCap)")
    if step_type in (CCCV_CHG, CCCV_DCHG, CV_CHG, CV_DCHG) and step.voltage is None:
        raise StepFileError(f"{where}: Step_Type {step_type} needs a voltage (Limit/Main/Volt)")
    if step_type in (CC_CHG, CC_DCHG, CCCV_CHG, CCCV_DCHG, CV_CHG, CV_DCHG, REST, RAMP) and not step.has_end():
        raise StepFileError(
            f"{where}: the step has no end condition (Time, Stop_Volt, Stop_Curr, Cap, Energy or a Cnd condition)"
        )


def _replace(step: NativeStep, **changes: object) -> NativeStep:
    return replace(step, **changes)  # type: ignore[arg-type]


def _text(data: bytes | str) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise StepFileError(f"the step file has {len(data)} bytes; a step file may have at most {MAX_FILE_BYTES}")
    return decode(data) if isinstance(data, bytes) else re.sub(r"^\s*<\?xml[^>]*\?>", "", data, count=1)


def _step_elements(config: Element) -> list[Element]:
    """The steps of ``Step_Info``, checked against ``Num`` (which counts End) and the BTS's 255-step limit."""
    info = config.find("Step_Info")
    if info is None:
        raise StepFileError("the step file has no <Step_Info> element")
    elements = [child for child in info if child.tag.startswith("Step")]
    declared = info.get("Num")
    if declared is None or not _WHOLE.fullmatch(declared):
        raise StepFileError("Step_Info needs Num = the number of steps including End")
    if int(declared) != len(elements):
        raise StepFileError(f"Step_Info Num={declared} but the file holds {len(elements)} steps (Num counts End)")
    if len(elements) > MAX_STEPS:
        raise StepFileError(f"the file holds {len(elements)} steps; the BTS runs at most 254 plus End")
    return elements


def parse_step_file(data: bytes | str) -> NativePlan:
    """Parse a whole step file; raise :class:`StepFileError` for anything the simulator cannot read or run."""
    root = _parse_xml(_text(data))
    config = root if root.tag == "config" else root.find("config")
    if config is None:
        raise StepFileError("the step file has no <config> element under <root>")
    head = config.find("Head_Info")
    mult_cap = _child_value(head, "MultCap", "Head_Info")
    mult_cap_ah = mult_cap / 3_600_000 if mult_cap else None
    rate_type = _child_value(head, "RateType", "Head_Info")
    start_step = _child_value(head, "Start_Step", "Head_Info")
    elements = _step_elements(config)
    count = len(elements)
    rate_mode = rate_type == RATE_MODE
    steps = tuple(
        _parse_step(element, position, mult_cap_ah, count, rate_mode) for position, element in enumerate(elements, 1)
    )
    if not steps or steps[-1].step_type != END:
        raise StepFileError("the last step must be End (Step_Type 6)")
    whole = config.find("Whole_Prt")
    protection = _parse_protect(whole.find("Protect") if whole is not None else None, "Whole_Prt/Protect")
    record = _parse_record(whole.find("Record") if whole is not None else None, "Whole_Prt/Record")
    if start_step is not None and not 1 <= start_step <= len(steps):
        raise StepFileError(f"Head_Info/Start_Step {start_step:g} names no step (the file has {len(steps)})")
    return NativePlan(
        steps=steps,
        start_step=1 if start_step is None else _whole(start_step, "Head_Info/Start_Step"),
        protection=protection or NativeProtection(),
        record=record or NativeRecord(),
        mult_cap_ah=mult_cap_ah,
        rate_type=None if rate_type is None or not rate_type.is_integer() else int(rate_type),
    )


# -- admission: what a start of this device accepts ---------------------------------------------------------------


def _check_between(value: float | None, low: float, high: float, where: str, unit: str, scale: float = 1.0) -> None:
    """``value`` (SI) must lie in [low, high]; the message shows file-side numbers (``scale`` x SI, in ``unit``)."""
    if value is not None and not low <= value <= high:
        raise StepFileError(
            f"{where} {value * scale:g} {unit} is outside what the device accepts ({low * scale:g}..{high * scale:g})"
        )


def _check_record(record: NativeRecord | None, where: str) -> None:
    if record is None:
        return
    _check_between(record.every_s, 0.0, MAX_STEP_S, f"{where}/Main/Time", "ms", 1000)
    _check_between(record.voltage_change, 0.0, math.inf, f"{where}/Main/Volt", "V")
    _check_between(record.current_change, 0.0, math.inf, f"{where}/Main/Curr", "mA", 1000)


def _check_step(step: NativeStep, ranges: DeviceRanges) -> None:
    where = f"Step{step.step_id}"
    lw = f"{where}/Limit/Main"
    amps, v_lo, v_hi = ranges.current_max, ranges.voltage_min, ranges.voltage_max
    _check_between(step.current, 0.0, amps, f"{lw}/Curr", "mA", 1000)
    _check_between(step.stop_current, 0.0, amps, f"{lw}/Stop_Curr", "mA", 1000)
    _check_between(step.voltage, v_lo, v_hi, f"{lw}/Volt", "V")
    _check_between(step.stop_voltage, v_lo, v_hi, f"{lw}/Stop_Volt", "V")
    _check_between(step.time_s, 0.0, MAX_STEP_S, f"{lw}/Time", "ms", 1000)
    # the most a step can pass at full current for the longest step time: beyond that a limit is never reached
    most_ah = amps * MAX_STEP_S / 3600
    _check_between(step.capacity_ah, 0.0, most_ah, f"{lw}/Cap", "mA*s", 3_600_000)
    _check_between(step.energy_wh, 0.0, most_ah * max(abs(v_lo), abs(v_hi)), f"{lw}/Energy", "mW*s", 3_600_000)
    _check_record(step.record, f"{where}/Record")
    if step.protect is not None:
        _check_between(step.protect.delay_s, 0.0, MAX_STEP_S, f"{where}/Protect/Main/Delay_Time", "ms", 1000)
    if step.loop_count is not None and step.loop_count > MAX_LOOP_PASSES:
        raise StepFileError(
            f"{where}/Limit/Other/Cycle_Count {step.loop_count} is more passes than the simulated BTS runs "
            f"({MAX_LOOP_PASSES})"
        )
    _check_control_flow(step, where)
    if step.ramp is not None:
        start, end, rate = step.ramp
        _check_between(start, v_lo, v_hi, f"{where}/Slope/Slope1/StartValue", "V")
        _check_between(end, v_lo, v_hi, f"{where}/Slope/Slope1/EndValue", "V")
        sweep_s = abs(end - start) / rate
        if step.time_s is None and sweep_s > MAX_STEP_S:
            raise StepFileError(
                f"{where}/Slope/Slope1: the sweep takes {sweep_s:g} s, beyond the {MAX_STEP_S:g} s step limit"
            )


def _check_control_flow(step: NativeStep, where: str) -> None:
    """Refuse what the simulator cannot execute as the BTS would: unknown conditions, external device control."""
    for condition in step.conditions:
        reason = refusal(condition)
        if reason is not None:
            raise StepFileError(f"{where}/Limit/Other/{reason}")
    if step.conditions and step.step_type in (CYCLE, END, PAUSE):
        raise StepFileError(
            f"{where}/Limit/Other: a {step.api_name} step with jump conditions has no documented meaning"
        )
    if step.control:
        shown = ", ".join(f"{k} {v}" for k, v in step.control)
        raise StepFileError(
            f"{where}/ControlStepValue ({shown}): the Control step sets an external device (a chamber), which the "
            "simulated BTS does not have"
        )


def _loops(steps: tuple[NativeStep, ...]) -> list[tuple[int, int, int]]:
    """(first step, loop step, passes) of every Cycle step, refusing loops that cross (the BTS's behaviour for them
    is undocumented, and aurora-unicycler refuses them too)."""
    loops = sorted((s.loop_start, s.step_id, s.loop_count) for s in steps if s.loop_start and s.loop_count)
    for i, (start_a, end_a, _) in enumerate(loops):
        for start_b, end_b, _ in loops[i + 1 :]:
            if start_a < start_b <= end_a < end_b:
                raise StepFileError(f"the loops of Step{end_a} and Step{end_b} cross; loops must nest")
    return loops


def executed_steps(steps: tuple[NativeStep, ...], limit: int = MAX_EXECUTED_STEPS) -> int:
    """How many steps the program executes, loops multiplied out, without walking a single pass.

    With nested loops a step runs the product of the passes of every loop around it (a loop step itself once per
    pass of its own loop). Counting stops once past ``limit``, so a 1e12-pass loop costs no more than a small one.
    """
    loops = _loops(steps)
    total = 0
    for step in steps:
        runs = 1
        for start, end, passes in loops:
            if start <= step.step_id <= end:
                runs *= passes
                if runs > limit:
                    return limit + 1
        total += runs
        if total > limit:
            return limit + 1
    return total


def check_plan(plan: NativePlan, ranges: DeviceRanges | None = None) -> None:
    """Refuse a parsed plan this device cannot start: values outside its ranges or beyond the module's limits.

    Protection limits are thresholds, not set-points: a wide one only never trips, so they are only required to be
    finite (by the parser).
    """
    ranges = ranges or DeviceRanges()
    for step in plan.steps:
        _check_step(step, ranges)
    _check_record(plan.record, "Whole_Prt/Record")
    _check_between(plan.protection.delay_s, 0.0, MAX_STEP_S, "Whole_Prt/Protect/Main/Delay_Time", "ms", 1000)
    count = executed_steps(plan.steps)
    if count > MAX_EXECUTED_STEPS:
        raise StepFileError(
            f"with its loops the program executes more than {MAX_EXECUTED_STEPS} steps, the most the simulated BTS runs"
        )


def load_step_file(path: str, ranges: DeviceRanges | None = None) -> NativePlan:
    """Read, parse and admit the step file a ``start`` names (blocking I/O: call it off the event loop).

    The plan carries the bytes it was read from (``source``), so the channel that runs it never reads the disk
    again (reference 9: the BTS Client reads the file at ``start``; the file may change or go afterwards).
    """
    data = read_step_file(path)
    plan = parse_step_file(data)
    check_plan(plan, ranges)
    return replace(plan, source=data)


def to_program_step(step: NativeStep, record: RecordRule) -> ProgramStep | None:
    """The cell-model view of one executable native step (``None`` for End, Cycle and Pause).

    The index is the native Step_ID, so that a model's error or a record maps back to the file's step. Only the
    step's own limits (``Limit/Main``) become terminations here; its jump conditions are the channel engine's to
    add, since what follows them is not the next step. A Control step drives no current: the channel rests while
    it waits for its conditions (reference 3.3: Control is control flow, section 9).
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
    if kind in (REST, CONTROL):
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
