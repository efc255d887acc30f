"""The protocol document as pydantic models: structure, types and units, before any cell is known.

These models check what can be checked from the file alone (keys, kinds, unit dimensions, counts) and give the
JSON Schema editors use. Everything that needs the cell or the whole program (resolving C-rates, reachability of
limits, safety versus steps) happens when the protocol is bound (:mod:`protocols.binding`).

Each step is a one-key mapping naming its kind (``- discharge: {...}``), a ``repeat`` block, or a shorthand
string (``- Charge at 0.1C until 4.3 V``); the shorthand is parsed into the same models.

Every quantity is parsed here, once, by the field types of :mod:`protocols.fields`: a model holds the value objects
of :mod:`protocols.units` (``CurrentBody.current`` is a :class:`~protocols.units.Current`, ``0.1C`` as
``Current(value=0.1, basis='c_rate', text='0.1C')``), and binding uses them as they are.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from protocols.errors import did_you_mean
from protocols.fields import (
    CapacityField,
    CurrentField,
    DvdtLimitField,
    EnergyField,
    FrequencyField,
    Parsed,
    PowerField,
    ScanRateField,
    TemperatureField,
    Threshold,
    TimeField,
    VoltageField,
    VoltageLimitField,
    VoltageOrOcvField,
    refusal,
)
from protocols.program import MAX_PASSES
from protocols.units import (
    MAX_MAGNITUDE,
    MAX_QUANTITY_TEXT,
    Capacity,
    Current,
    Duration,
    Energy,
    QuantityError,
    Scalar,
    ScanRate,
    Voltage,
    parse_current,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


#: what one entry of an ``until`` holds: a voltage or dV/dt threshold, a current, capacity, energy or duration
LimitValue = Threshold[Voltage] | Threshold[ScanRate] | Current | Capacity | Energy | Duration
#: the quantities a step can end on, in the order an ``until`` lists them
LIMIT_NAMES = ("voltage", "current", "capacity", "energy", "time", "dvdt")


class Limits(_Strict):
    """Terminations: the step ends at the first of these (OR). Keys absent are not limits; ``0 V`` is a limit."""

    voltage: VoltageLimitField | None = Field(None, description="e.g. '4.3 V'; direction from the step, or "
                                              "'< 3.0 V'")
    current: CurrentField | None = Field(None, description="|I| falls to this (holds, CCCV, CA): e.g. 'C/20'")
    capacity: CapacityField | None = Field(None, description="charge passed in the step: '4 mAh/cm^2', '1 mAh'")
    energy: EnergyField | None = None
    time: TimeField | None = Field(None, description="step duration, e.g. '8 h'")
    dvdt: DvdtLimitField | None = Field(None, description="|dV/dt| falls below, e.g. '1 mV/h' (rests)")

    def given(self) -> dict[str, LimitValue]:
        """The limits present, by quantity name, in declaration order."""
        return {name: value for name in LIMIT_NAMES if (value := getattr(self, name)) is not None}


class LimitEntry(Limits):
    """One termination in the list form of ``until``, with what to do when it is met."""

    then: str = Field("next", description="'next' (default), 'end' (end the protocol) or the id of a step to jump to "
                      "when this limit is met (a conditional jump)")


#: the tags pydantic puts into error locations for the ``until`` union (:mod:`protocols.validation` drops them)
UNTIL_TAGS = ("map", "list")
Until = Annotated[
    Annotated[Limits, Tag("map")] | Annotated[list[LimitEntry], Tag("list")],
    Discriminator(lambda v: "list" if isinstance(v, list) else "map"),
]


class RecordSpec(_Strict):
    every: TimeField | None = Field(None, description="record at least this often, e.g. '10 s'")
    voltage_change: VoltageField | None = Field(None, description="and whenever V moved this much, e.g. '5 mV'")
    current_change: CurrentField | None = Field(None, description="and whenever I moved this much")


class _Body(_Strict):
    until: Until | None = None
    record: RecordSpec | None = None
    id: str | None = Field(None, description="a name other steps' 'then' can jump to")


class RestBody(_Body):
    @model_validator(mode="before")
    @classmethod
    def _duration_shorthand(cls, data: Any) -> Any:
        if isinstance(data, str | int | float) and not isinstance(data, bool):
            return {"until": {"time": data}}
        return data


class HoldAfter(_Strict):
    """The CV phase of a CCCV step, at the CC phase's voltage limit unless ``voltage`` says otherwise."""

    voltage: VoltageField | None = None
    until: Limits


class CurrentBody(_Body):
    current: CurrentField = Field(description="magnitude: '0.5 mA', '0.1C', 'C/10', '2 mA/cm^2', '20 mA/g'")
    then_hold: HoldAfter | None = Field(None, description="hold at the voltage limit afterwards (CCCV as one step)")


class HoldBody(_Body):
    voltage: VoltageField
    current_limit: CurrentField | None = Field(None, description="largest |I| the hold may draw, e.g. '1 mA' or "
                                               "'0.5C'; a Neware CV step needs one unless it follows a CC step")
    direction: Literal["charge", "discharge"] | None = Field(
        None, description="which way the hold drives current: 'charge' (it only sources current into the cell) or "
        "'discharge' (it only sinks it). Needed on Neware when the plan cannot tell from the voltage the cell is at "
        "when the hold starts")


class PowerBody(_Body):
    power: PowerField = Field(description="magnitude, e.g. '5 mW'")
    direction: Literal["charge", "discharge"]


class CaBody(_Body):
    voltage: VoltageField = Field(description="absolute, or relative to the OCV when vs: ocv (e.g. '10 mV')")
    vs: Literal["reference", "ocv"] = "reference"


def _eis_setpoint(value: Any, info: ValidationInfo) -> Voltage | Current | Literal["ocv"]:
    """An EIS amplitude or bias: a voltage in potentio mode, a current in galvano mode (a bias may be ``ocv``)."""
    mode = info.data.get("mode")
    if mode is None or isinstance(value, Voltage | Current) or (value == "ocv" and info.field_name == "bias"):
        return value  # without a valid mode the step is refused for its mode; nothing to say about this value yet
    kind = "voltage" if mode == "potentio" else "current"
    try:
        return Voltage.parse(value) if kind == "voltage" else parse_current(value)
    except QuantityError as exc:
        raise refusal(exc, message=f"{exc} ({mode} EIS controls the {kind})") from None


#: an EIS amplitude: a voltage (potentio) or a current (galvano), by the step's mode; a bias may also be ``ocv``
EisAmplitude = Annotated[Voltage | Current, Parsed(_eis_setpoint, with_info=True)]
EisBias = Annotated[Voltage | Current | Literal["ocv"], Parsed(_eis_setpoint, with_info=True)]


class EisBody(_Strict):
    mode: Literal["potentio", "galvano"] = "potentio"
    from_: FrequencyField = Field(alias="from", description="first frequency, e.g. '20 kHz'")
    to: FrequencyField = Field(description="last frequency, e.g. '100 mHz'")
    points_per_decade: int = Field(10, ge=1, le=100)
    amplitude: EisAmplitude = Field(description="sine amplitude: a voltage (potentio, e.g. '10 mV') or a current "
                                    "(galvano)")
    bias: EisBias = Field("ocv", description="'ocv' or a DC set-point (voltage or current)")
    vs: Literal["reference", "ocv"] = "reference"
    measures_per_point: int = Field(1, ge=1, le=100)
    record: RecordSpec | None = None
    id: str | None = None


class CvBody(_Strict):
    scan_rate: ScanRateField
    start: VoltageOrOcvField = "ocv"
    vertices: list[VoltageField] = Field(min_length=2, max_length=2, description="[first vertex, second vertex]")
    end: VoltageOrOcvField = "ocv"
    cycles: int = Field(1, ge=1, le=MAX_PASSES)
    record: RecordSpec | None = None
    id: str | None = None


class LsvBody(_Strict):
    scan_rate: ScanRateField
    from_: VoltageOrOcvField = Field("ocv", alias="from")
    to: VoltageField
    record: RecordSpec | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class TemperatureSpan(Scalar):
    """A temperature difference in K (a stability band): ``0.5 K`` and ``0.5 degC`` are the same span, unlike the
    temperatures ``0.5 K`` and ``0.5 degC``, which is why a band is not read as a :class:`Temperature`."""

    kind: ClassVar[str] = "temperature difference"


_SPAN = re.compile(r"^\s*(?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>mK|K|degC|°C|C|degF|°F)\s*$")
_SPAN_SCALE = {"mK": 1e-3, "K": 1.0, "degC": 1.0, "°C": 1.0, "C": 1.0, "degF": 5 / 9, "°F": 5 / 9}


def _temperature_span(value: Any) -> TemperatureSpan:
    if isinstance(value, TemperatureSpan):
        return value
    expected = "a temperature difference with its unit, such as '0.5 degC' or '1 K'"
    match = _SPAN.match(value) if isinstance(value, str) and len(value) <= MAX_QUANTITY_TEXT else None
    if match is None:
        raise PydanticCustomError("quantity", "{message}", {
            "message": f"cannot read {str(value)[:40]!r} as a temperature difference", "expected": expected,
            "found": repr(value)[:60]})
    kelvin = float(match["num"]) * _SPAN_SCALE[match["unit"]]
    if not math.isfinite(kelvin) or abs(kelvin) > MAX_MAGNITUDE:  # '1e999 K': refused here, with its place
        raise PydanticCustomError("quantity", "{message}", {
            "message": f"'{value}' is not a finite temperature difference", "expected": expected,
            "found": repr(value)})
    return TemperatureSpan(kelvin, value)


TemperatureSpanField = Annotated[TemperatureSpan, Parsed(_temperature_span)]
#: what a temperature step assumes when the protocol does not say: a coin cell in a chamber is taken as settled when
#: the chamber has held its set point within 1 K for 30 min; a chamber that has not settled in 4 h is faulty
DEFAULT_BAND = TemperatureSpan(1.0, "1 K")
DEFAULT_STABLE_FOR = Duration(1800.0, "30 min")
DEFAULT_MAX_WAIT = Duration(4 * 3600.0, "4 h")


class TemperatureBody(_Strict):
    """Set the climate chamber and wait until it is stable (carried out by the station, between instrument runs)."""

    setpoint: TemperatureField = Field(alias="set", description="the chamber set point, e.g. '45 degC'")
    band: TemperatureSpanField = Field(default=DEFAULT_BAND, description="stable while within "
                                       "this of the set point, e.g. '0.5 degC' (default 1 K)")
    stable_for: TimeField = Field(default=DEFAULT_STABLE_FOR, description="how long it must stay "
                                  "within the band before the next step starts, e.g. '30 min' (default 30 min)")
    max_wait: TimeField = Field(default=DEFAULT_MAX_WAIT, description="the longest the whole wait "
                                "(ramp and stable time) may take before the run fails, e.g. '4 h' (default 4 h)")
    id: str | None = Field(None, description="a name for the step (jumps cannot cross a temperature step)")

    @model_validator(mode="before")
    @classmethod
    def _setpoint_shorthand(cls, data: Any) -> Any:
        if isinstance(data, str | int | float) and not isinstance(data, bool):
            return {"set": data}
        return data


# -- steps -------------------------------------------------------------------------------------------------------


class RestStepDoc(_Strict):
    rest: RestBody


class ChargeStepDoc(_Strict):
    charge: CurrentBody


class DischargeStepDoc(_Strict):
    discharge: CurrentBody


class HoldStepDoc(_Strict):
    hold: HoldBody


class PowerStepDoc(_Strict):
    power: PowerBody


class CaStepDoc(_Strict):
    ca: CaBody


class EisStepDoc(_Strict):
    eis: EisBody


class CvStepDoc(_Strict):
    cv: CvBody


class LsvStepDoc(_Strict):
    lsv: LsvBody


class TemperatureStepDoc(_Strict):
    temperature: TemperatureBody


_WHOLE_NUMBER = re.compile(r"^\s*\+?\d+(?:\.0*)?(?:[eE]\+?\d{1,2})?\s*$")


def pass_count(value: Any) -> int:
    """A repeat count as an int: an integer, or a whole number written as ``1e9`` / ``1.0e9`` / ``500.0``.

    YAML 1.1 reads ``1e9`` as text and JSON-minded users write ``1.0e9``; both mean a whole number of passes, so
    both are accepted. Anything else (``2.5``, ``true``, ``ten``) is refused with the usual positioned error.
    """
    number: Any = value
    if isinstance(value, str) and _WHOLE_NUMBER.match(value):
        number = float(value)
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int):
        raise PydanticCustomError("repeat_count", "a repeat count is a whole number of passes",
                                  {"expected": "an integer >= 1", "found": repr(value)[:60]})
    if number > MAX_PASSES:
        raise PydanticCustomError("repeat_count", "more passes than any instrument's loop counter holds",
                                  {"expected": f"an integer from 1 to {MAX_PASSES}", "found": repr(value)[:60]})
    return number


class RepeatDoc(_Strict):
    repeat: int = Field(ge=1, description="total number of passes through the steps (>= 1)")
    tag: str | None = Field(None, description="carried into the data, e.g. 'formation'")
    steps: list[Step] = Field(min_length=1)

    @field_validator("repeat", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        return pass_count(value)


STEP_KINDS = ("rest", "charge", "discharge", "hold", "power", "ca", "eis", "cv", "lsv", "temperature", "repeat")
_STEP_MODELS: dict[str, type[BaseModel]] = {
    "rest": RestStepDoc, "charge": ChargeStepDoc, "discharge": DischargeStepDoc, "hold": HoldStepDoc,
    "power": PowerStepDoc, "ca": CaStepDoc, "eis": EisStepDoc, "cv": CvStepDoc, "lsv": LsvStepDoc,
    "temperature": TemperatureStepDoc, "repeat": RepeatDoc,
}


def step_kind_of(value: Any) -> str:
    """The discriminator: which kind of step a raw YAML item is (``invalid`` when none fits)."""
    if isinstance(value, BaseModel):
        for kind, model in _STEP_MODELS.items():
            if isinstance(value, model):
                return kind
        return "invalid"
    if isinstance(value, str):
        return "shorthand"
    if isinstance(value, dict):
        kinds = [k for k in value if k in STEP_KINDS]
        if len(kinds) == 1:
            return kinds[0]
    return "invalid"


def _invalid_step(value: Any) -> Any:
    if isinstance(value, dict):
        kinds = [k for k in value if k in STEP_KINDS]
        if len(kinds) > 1:
            raise PydanticCustomError("step_kind", "a step has exactly one kind",
                                      {"expected": "one of " + ", ".join(STEP_KINDS), "found": ", ".join(kinds)})
        unknown = ", ".join(f"'{k}'{did_you_mean(str(k), STEP_KINDS)}" for k in value) or "an empty mapping"
        raise PydanticCustomError("step_kind", "unknown step kind {unknown}",
                                  {"unknown": unknown, "expected": "one of " + ", ".join(STEP_KINDS),
                                   "found": ", ".join(f"'{k}'" for k in value) or "{}"})
    raise PydanticCustomError("step_kind", "a step is a mapping such as '{{rest: 1 h}}' or a shorthand string",
                              {"expected": "a mapping or a string", "found": repr(value)})


def _parse_shorthand(text: str) -> BaseModel:
    # no step sentence is longer than a line; longer texts are read but not kept in the cache
    ok, result = _shorthand_result(text) if len(text) > 500 else _cached_shorthand_result(text)
    if not ok:
        raise PydanticCustomError("shorthand", "{message}",
                                  {"message": result[0], "expected": result[1], "found": repr(text)[:80]})
    return result.model_copy(deep=True)


def _shorthand_result(text: str) -> tuple[bool, Any]:
    """(True, step model) or (False, (message, expected))."""
    from protocols.shorthand import ShorthandError, parse_shorthand

    try:
        raw = parse_shorthand(text)
    except ShorthandError as exc:
        return False, (str(exc), exc.expected)
    kind = next(iter(raw))
    return True, _STEP_MODELS[kind].model_validate(raw)


# a protocol repeats the same sentences, and a broken one the same broken sentence, many times
_cached_shorthand_result = functools.lru_cache(maxsize=2048)(_shorthand_result)


Step = Annotated[
    Annotated[RestStepDoc, Tag("rest")]
    | Annotated[ChargeStepDoc, Tag("charge")]
    | Annotated[DischargeStepDoc, Tag("discharge")]
    | Annotated[HoldStepDoc, Tag("hold")]
    | Annotated[PowerStepDoc, Tag("power")]
    | Annotated[CaStepDoc, Tag("ca")]
    | Annotated[EisStepDoc, Tag("eis")]
    | Annotated[CvStepDoc, Tag("cv")]
    | Annotated[LsvStepDoc, Tag("lsv")]
    | Annotated[TemperatureStepDoc, Tag("temperature")]
    | Annotated[RepeatDoc, Tag("repeat")]
    | Annotated[Annotated[str, AfterValidator(_parse_shorthand)], Tag("shorthand")]
    | Annotated[Annotated[Any, AfterValidator(_invalid_step)], Tag("invalid")],
    Discriminator(step_kind_of),
]
#: the tags pydantic puts into error locations for the step union (:mod:`protocols.validation` drops them)
STEP_TAGS = (*STEP_KINDS, "shorthand", "invalid")


# -- whole document ----------------------------------------------------------------------------------------------


class SafetyDoc(_Strict):
    voltage: list[VoltageField] | None = Field(None, min_length=2, max_length=2, description="[min, max]")
    current: CurrentField | None = Field(None, description="largest |I| allowed")
    temperature: TemperatureField | None = Field(None, description="highest cell temperature, e.g. '45 degC'")
    capacity: CapacityField | None = Field(None, description="largest charge in any one step")
    step_duration: TimeField | None = None
    duration: TimeField | None = Field(None, description="longest whole run")


class ParameterSpec(_Strict):
    default: str | int | float = Field(description="value with a unit ('0.5 mA/cm^2'), or a plain number/count")
    description: str | None = None


class ProtocolDoc(_Strict):
    protocol: str = Field(min_length=1, description="the protocol's name")
    description: str | None = None
    parameters: dict[str, ParameterSpec | str | int | float] = Field(default_factory=dict)
    requires: list[Literal["area", "capacity", "active_mass", "thickness"]] = Field(default_factory=list)
    safety: SafetyDoc = SafetyDoc()
    record: RecordSpec | None = None
    steps: list[Step] = Field(min_length=1)


RepeatDoc.model_rebuild()
ProtocolDoc.model_rebuild()
