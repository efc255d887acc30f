"""Quantity field types for the pydantic models of protocol, cell and station files: each value is parsed once.

A field such as ``current: CurrentField`` reads the text a person wrote (``'0.1C'``, ``'2 mA/cm^2'``) into the value
object of :mod:`protocols.units` (:class:`~protocols.units.Current` with its value, basis and text) when the model
validates the file. Binding, cell resolution and the station config use that object; none of them parses the text
again. A refusal is a pydantic error of type ``quantity`` whose context carries what was expected and what was
found, which :mod:`protocols.validation` turns into ``FILE:LINE:COL: path: message; expected x, found y``.

The fields serialise back to the text and appear in the JSON Schema as strings, as they are written in the files.
The protocol models (:mod:`protocols.model`), cell files (:mod:`protocols.cells`) and ``station.yaml``
(``station.config``) share these types; a new kind of quantity is added here once.

Besides one field per kind, two shapes the protocol language uses:

* a *threshold*, a limit with an optional comparison (``voltage: '< 3.0 V'``, ``dvdt: 1 mV/h``), held as a
  :class:`Threshold` with the comparison normalised (``<`` and ``<=`` mean the same for measured data);
* a voltage or ``ocv`` (a sweep's start: the open-circuit voltage at the step's start).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationInfo
from pydantic_core import PydanticCustomError, core_schema

from protocols.units import (
    Area,
    Capacity,
    Current,
    Duration,
    Energy,
    Frequency,
    Length,
    Mass,
    Power,
    QuantityError,
    Scalar,
    ScanRate,
    SpecificCapacity,
    Temperature,
    Voltage,
    parse_capacity,
    parse_current,
)

Q = TypeVar("Q", bound=Scalar)
Op = Literal["<=", ">="]


def refusal(exc: QuantityError, *, message: str | None = None, expected: str | None = None) -> PydanticCustomError:
    """The pydantic error for a value :mod:`protocols.units` refused, with its message, expected and found."""
    return PydanticCustomError("quantity", "{message}", {"message": message if message is not None else str(exc),
                                                         "expected": expected or exc.expected, "found": exc.found})


def _text(value: Any) -> Any:
    """What a parsed value serialises to: the text it was read from (``'ocv'`` and other plain values as they are)."""
    return getattr(value, "text", value)


@dataclass(frozen=True, slots=True)
class Parsed:
    """pydantic metadata: validate a field with ``parse`` (text -> value object), serialise it back to its text, and
    show it as a string in the JSON Schema.

    ``parse`` raises :class:`~protocols.units.QuantityError` (reported as a ``quantity`` error) or a
    ``PydanticCustomError`` of its own. With ``with_info`` it also receives pydantic's ``ValidationInfo``, for a
    field whose kind depends on another field (an EIS amplitude is a voltage or a current by the mode).
    """

    parse: Callable[..., Any]
    with_info: bool = False

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        parse = self.parse
        serializer = core_schema.plain_serializer_function_ser_schema(_text, when_used="always")
        if self.with_info:
            def validate_with_info(value: Any, info: ValidationInfo) -> Any:
                try:
                    return parse(value, info)
                except QuantityError as exc:
                    raise refusal(exc) from None

            return core_schema.with_info_plain_validator_function(validate_with_info, serialization=serializer)

        def validate(value: Any) -> Any:  # called for every quantity of every file: no more layers than needed
            try:
                return parse(value)
            except QuantityError as exc:
                raise refusal(exc) from None

        return core_schema.no_info_plain_validator_function(validate, serialization=serializer)

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {"type": "string"}


def _reading(cls: type, parse: Callable[[Any], Any]) -> Parsed:
    """A field holding a ``cls``: text is read with ``parse``; a value already read (by the shorthand) is kept."""
    return Parsed(lambda value: value if isinstance(value, cls) else parse(value))


VoltageField = Annotated[Voltage, _reading(Voltage, Voltage.parse)]
TimeField = Annotated[Duration, _reading(Duration, Duration.parse)]
FrequencyField = Annotated[Frequency, _reading(Frequency, Frequency.parse)]
PowerField = Annotated[Power, _reading(Power, Power.parse)]
EnergyField = Annotated[Energy, _reading(Energy, Energy.parse)]
ScanRateField = Annotated[ScanRate, _reading(ScanRate, ScanRate.parse)]
TemperatureField = Annotated[Temperature, _reading(Temperature, Temperature.parse)]
LengthField = Annotated[Length, _reading(Length, Length.parse)]
AreaField = Annotated[Area, _reading(Area, Area.parse)]
MassField = Annotated[Mass, _reading(Mass, Mass.parse)]
SpecificCapacityField = Annotated[SpecificCapacity, _reading(SpecificCapacity, SpecificCapacity.parse)]
#: absolute (A), a C-rate (1/h), per area (A/m^2) or per mass (A/kg); resolved against a cell when bound
CurrentField = Annotated[Current, _reading(Current, parse_current)]
#: absolute (Ah), per area (Ah/m^2) or per mass (Ah/kg); resolved against a cell when bound
CapacityField = Annotated[Capacity, _reading(Capacity, parse_capacity)]


# -- thresholds: a limit with an optional comparison -----------------------------------------------------------------

_OPERATOR = re.compile(r"^\s*(<=|>=|<|>)\s*(.*)$")


def split_operator(text: str) -> tuple[Op | None, str]:
    """``"< 3.0 V"`` -> ``("<=", "3.0 V")``; strict and non-strict comparisons mean the same for measured data."""
    match = _OPERATOR.match(text)
    if not match:
        return None, text
    return ("<=" if match[1].startswith("<") else ">="), match[2]


@dataclass(frozen=True, slots=True)
class Threshold(Generic[Q]):
    """A limit as written: the comparison given with it (``None``: the step's direction decides), the quantity,
    and the whole text (``'< 3.0 V'``) for messages. ``quantity.text`` is the value without the comparison."""

    op: Op | None
    quantity: Q
    text: str

    def __deepcopy__(self, memo: dict[int, Any]) -> Threshold[Q]:
        return self  # immutable, like the quantity it holds


def _voltage_threshold(value: Any) -> Threshold[Voltage]:
    if isinstance(value, Threshold):
        return value
    expected = "a voltage such as '4.2 V' or '< 3.0 V'"
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise PydanticCustomError("quantity", "a voltage limit needs a unit", {"expected": expected,
                                                                                "found": repr(value)})
    if not isinstance(value, str):
        raise PydanticCustomError("quantity", "expected a voltage limit", {"expected": expected, "found": repr(value)})
    try:
        return _threshold(value, Voltage)
    except QuantityError as exc:
        raise refusal(exc, expected=expected) from None


@functools.lru_cache(maxsize=4096)
def _threshold(text: str, kind: type[Q]) -> Threshold[Q]:
    """One object per distinct text: limits repeat through a protocol (``4.2 V`` on every charge of a loop)."""
    op, rest = split_operator(text)
    return Threshold(op, kind.parse(rest), text)


def _dvdt_threshold(value: Any) -> Threshold[ScanRate]:
    if isinstance(value, Threshold):
        return value
    text = value if isinstance(value, str) else repr(value)
    try:
        return _threshold(text, ScanRate)
    except QuantityError as exc:
        raise refusal(exc, message=str(exc).replace("scan rate", "dV/dt"),
                      expected="a voltage rate such as '1 mV/h'") from None


#: a voltage limit: ``'4.2 V'`` (the step's direction says which way it is crossed) or ``'< 3.0 V'``
VoltageLimitField = Annotated[Threshold[Voltage], Parsed(_voltage_threshold)]
#: a dV/dt end: ``'1 mV/h'`` or ``'< 1 mV/h'`` (|dV/dt| falls below it)
DvdtLimitField = Annotated[Threshold[ScanRate], Parsed(_dvdt_threshold)]


def _voltage_or_ocv(value: Any) -> Voltage | Literal["ocv"]:
    if value == "ocv" or isinstance(value, Voltage):
        return value
    return Voltage.parse(value)


#: a voltage, or ``'ocv'``: the open-circuit voltage when the step starts
VoltageOrOcvField = Annotated[Voltage | Literal["ocv"], Parsed(_voltage_or_ocv)]
