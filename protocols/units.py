"""Quantities with units, parsed once at the boundary into value objects that hold SI floats and their text.

pint does the unit algebra. Two things it cannot do for us are handled first: C-rates (``0.1C``, ``C/10``) would
otherwise be read as coulombs, and ``cm2`` is common lab shorthand pint does not know. Relative quantities (C-rate,
per area, per mass) stay relative here (:class:`Current`, :class:`Capacity`) and are resolved against a cell when a
protocol is bound; :meth:`Current.resolve` answers ``None`` when the cell lacks the property, so a caller reports
that as a problem of the file instead of catching an exception.

Every value object keeps the ``text`` it was read from, because every message about a value quotes what the user
wrote (``'0.5C' = 875 uA``), not our float. The pydantic field types of :mod:`protocols.fields` build these objects
when a model reads a file; nothing downstream parses the text again.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from tokenize import TokenError
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, TypeVar

if TYPE_CHECKING:  # pint itself (~0.2 s) is imported when the first quantity is read: commands that read none skip it
    import pint

T = TypeVar("T")


class QuantityError(ValueError):
    """A value that is not the quantity expected; carries what was expected and found for the error report."""

    def __init__(self, message: str, expected: str, found: str):
        super().__init__(message)
        self.expected = expected
        self.found = found


#: where pint keeps its parsed unit definitions between processes (its own cache, keyed by the definitions'
#: content): building the registry takes ~0.13 s from the text and ~0.02 s from the cache, on every command
PINT_CACHE = "pint-cache"


@functools.cache
def ureg() -> pint.UnitRegistry:
    import pint
    import platformdirs

    folder = platformdirs.user_cache_path("battery-test-station", appauthor=False) / PINT_CACHE
    try:
        return pint.UnitRegistry(cache_folder=folder)
    except Exception:  # a folder that cannot be written (a read-only home) or a cache file another
        return pint.UnitRegistry()  # process was still writing: the definitions are parsed from the text instead


_EXAMPLES = {
    "current": "a current such as '0.5 mA', '0.1C', 'C/10', '2 mA/cm^2' or '20 mA/g'",
    "capacity": "a capacity such as '1.2 mAh', '4 mAh/cm^2' or '175 mAh/g'",
    "voltage": "a voltage such as '4.2 V' or '0 V'",
    "time": "a duration such as '1 h', '30 min' or '10 s'",
    "frequency": "a frequency such as '20 kHz' or '100 mHz'",
    "power": "a power such as '5 mW'",
    "scan_rate": "a scan rate such as '0.1 mV/s'",
    "energy": "an energy such as '2 mWh'",
    "temperature": "a temperature such as '45 degC'",
    "length": "a length such as '12 mm' or '45 um'",
    "area": "an area such as '1.131 cm^2'",
    "mass": "a mass such as '10 mg'",
    "specific_capacity": "a specific capacity such as '175 mAh/g'",
    "volume": "a volume such as '30 uL'",
    "resistance": "a resistance such as '10 ohm'",
    "conductivity": "a conductivity such as '1e-4 S/cm'",
}

# pint unit strings whose dimensionality defines each plain (non-relative) kind, with the SI unit we convert to.
_PLAIN = {
    "voltage": ("V", "V"),
    "time": ("s", "s"),
    "frequency": ("Hz", "Hz"),
    "power": ("W", "W"),
    "scan_rate": ("V/s", "V/s"),
    "energy": ("Wh", "Wh"),
    "length": ("m", "m"),
    "area": ("m^2", "m^2"),
    "mass": ("kg", "kg"),
    "specific_capacity": ("Ah/kg", "Ah/kg"),
    "volume": ("m^3", "m^3"),
    "resistance": ("ohm", "ohm"),
    "conductivity": ("S/m", "S/m"),
}

_DIMENSION_NAMES = [
    ("A", "a current"), ("A/m^2", "a current per area"), ("A/kg", "a current per mass"),
    ("Ah", "a capacity"), ("Ah/m^2", "an areal capacity"), ("Ah/kg", "a specific capacity"),
    ("V", "a voltage"), ("s", "a time"), ("Hz", "a frequency"), ("W", "a power"), ("V/s", "a scan rate"),
    ("Wh", "an energy"), ("m", "a length"), ("m^2", "an area"), ("kg", "a mass"), ("m^3", "a volume"),
    ("ohm", "a resistance"), ("S/m", "a conductivity"),
]

_C_RATE = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?|\.\d+)?\s*C(?:\s*/\s*(?P<den>\d+(?:\.\d*)?|\.\d+))?\s*$")
_SQUARED = re.compile(r"(?<=m)([23])(?![\d.])")  # cm2, mm2, m2, um3: lab shorthand for ^2 / ^3
_TEMPERATURE = re.compile(r"^\s*(?P<num>[-+]?\d+(?:\.\d*)?)\s*(?P<unit>degC|°C|C|K|degF)\s*$")


@functools.cache
def _dimensionality(unit: str) -> object:
    return ureg().Quantity(1, unit).dimensionality


def describe_dimension(q: pint.Quantity) -> str:
    for unit, name in _DIMENSION_NAMES:
        if q.dimensionality == _dimensionality(unit):
            return name
    if not q.dimensionality:  # not ``q.dimensionless``: that converts to root units, which can overflow
        return "a plain number with no unit"
    return f"a quantity in {q.units:~}"


#: Longer than any quantity a person writes; pint's parser is an expression evaluator, so what it gets is bounded.
MAX_QUANTITY_TEXT = 100
#: Largest magnitude, in SI units, of any quantity in a protocol or cell (1e15 s is 30 million years, 1e15 A or V
#: is beyond any instrument). Values past it are typing accidents such as ``1e308 h``; refusing them keeps every
#: sum, product and estimate downstream finite.
MAX_MAGNITUDE = 1e15
ABSOLUTE_ZERO_C = -273.15

_POWER = re.compile(r"\*\*|\^")
_SMALL_EXPONENT = re.compile(r"\s*[-+]?\s*\d{1,2}(?![\w.(])\s*(?!\*\*|\^)")  # not 1_000, 0x10, 2e5, 2.5


def _unsafe_reason(text: str) -> str | None:
    """Why pint must not evaluate ``text``, or ``None``.

    pint evaluates arithmetic (``9**9**9 mA`` is a number with 370 million digits, computed for minutes), so a
    power is allowed only as a unit or number raised to a literal integer of one or two digits (``cm^2``,
    ``10^-4 S/cm``): no powers of powers and no powers of parenthesised expressions.
    """
    if len(text) > MAX_QUANTITY_TEXT:
        return f"longer than {MAX_QUANTITY_TEXT} characters"
    for match in _POWER.finditer(text):
        base = text[:match.start()].rstrip()
        if not base or base[-1] == ")" or not _SMALL_EXPONENT.match(text, match.end()):
            return "a power must be a unit or a number raised to a small whole number, such as 'cm^2'"
    return None


@functools.lru_cache(maxsize=4096)
def _pint_quantity(cleaned: str) -> pint.Quantity:
    """pint's parse of an already checked text; cached because pint takes ~0.2 ms and protocols repeat values."""
    return ureg().Quantity(cleaned)


def to_quantity(text: str) -> pint.Quantity:
    """``text`` as a pint quantity, with lab shorthand (``cm2``, ``²``) normalised and hostile input refused.

    Raises ``ValueError`` (with a reason) for anything pint cannot or must not read.
    """
    cleaned = _SQUARED.sub(r"^\1", text.strip().replace("²", "^2").replace("³", "^3"))
    reason = _unsafe_reason(cleaned)
    if reason is not None:
        raise ValueError(reason)
    import pint

    try:
        quantity = _pint_quantity(cleaned)
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, AttributeError, TypeError,
            ValueError, SyntaxError, AssertionError, pint.errors.OffsetUnitCalculusError, TokenError,
            OverflowError, ZeroDivisionError, RecursionError, pint.errors.DimensionalityError) as exc:
        raise ValueError(type(exc).__name__) from None
    if not isinstance(quantity, pint.Quantity):
        raise ValueError("not a quantity")
    return quantity


def _to_pint(text: str, kind: str) -> pint.Quantity:
    try:
        return to_quantity(text)
    except ValueError as exc:
        raise QuantityError(f"cannot read '{_short(text)}' as a quantity ({exc})", _EXAMPLES[kind],
                            repr(_short(text))) from None


def _short(text: str) -> str:
    """Long values cut for messages: the user needs to recognise the value, not see all of it."""
    return text if len(text) <= 40 else text[:37] + "..."


def _magnitude(q: pint.Quantity, unit: str, text: str, kind: str) -> float:
    """The magnitude of ``q`` in ``unit`` as a finite float no larger than :data:`MAX_MAGNITUDE`."""
    try:
        value = float(q.to(unit).magnitude)
    except (OverflowError, ValueError, TypeError, ZeroDivisionError):
        value = math.inf
    return _finite(value, text, kind)


def _require_text(value: object, kind: str) -> str:
    if isinstance(value, bool) or value is None:
        raise QuantityError(f"expected {kind} with a unit", _EXAMPLES[kind], repr(value))
    if isinstance(value, int | float):
        raise QuantityError(f"a {kind} needs a unit", _EXAMPLES[kind], f"{_short(repr(value))} (no unit)")
    if not isinstance(value, str):
        raise QuantityError(f"expected {kind} as text with a unit", _EXAMPLES[kind], type(value).__name__)
    return value


def _finite(value: float, text: str, kind: str) -> float:
    """``value`` if it is a usable number: finite and at most :data:`MAX_MAGNITUDE` in SI units."""
    if not math.isfinite(value):
        raise QuantityError(f"'{_short(text)}' is not a finite number", _EXAMPLES[kind], repr(_short(text)))
    if abs(value) > MAX_MAGNITUDE:
        raise QuantityError(f"'{_short(text)}' is out of range for any instrument or cell",
                            f"{_EXAMPLES[kind]}, at most {MAX_MAGNITUDE:g} in SI units", repr(_short(text)))
    return value


def _remembered(function: Callable[..., T]) -> Callable[..., T]:
    """An LRU cache of outcomes, refusals included: a protocol names the same few values hundreds of times (a
    broken one the same bad value), and pint's parsing and conversions take ~0.2 ms each. Texts too long to be a
    quantity are refused before pint sees them and are not kept."""
    @functools.lru_cache(maxsize=8192)
    def outcome(*args: Any) -> tuple[bool, Any]:
        try:
            return True, function(*args)
        except QuantityError as exc:
            return False, (str(exc), exc.expected, exc.found)

    @functools.wraps(function)
    def wrapper(*args: Any) -> T:
        if len(args[0]) > MAX_QUANTITY_TEXT:
            return function(*args)
        ok, value = outcome(*args)
        if ok:
            return value
        raise QuantityError(*value)

    return wrapper


def parse_plain(value: object, kind: str) -> float:
    """A non-relative quantity in SI (volt, second, hertz, watt, V/s, Wh, m, m^2, kg, Ah/kg, m^3, ohm, S/m)."""
    if kind == "temperature":
        return parse_temperature(value)
    return _parse_plain_text(_require_text(value, kind), kind)


@_remembered
def _parse_plain_text(text: str, kind: str) -> float:
    q = _to_pint(text, kind)
    dim_unit, si_unit = _PLAIN[kind]
    if q.dimensionality != _dimensionality(dim_unit):
        raise QuantityError(f"'{_short(text)}' is {describe_dimension(q)}, not "
                            f"{_EXAMPLES[kind].split(' such as')[0]}", _EXAMPLES[kind], repr(_short(text)))
    return _magnitude(q, si_unit, text, kind)


def parse_temperature(value: object) -> float:
    """A temperature in degrees Celsius (the unit labs and BDF use)."""
    text = _require_text(value, "temperature")
    match = _TEMPERATURE.match(text)
    if not match:
        raise QuantityError(f"cannot read '{_short(text)}' as a temperature", _EXAMPLES["temperature"],
                            repr(_short(text)))
    unit = {"°C": "degC", "C": "degC"}.get(match["unit"], match["unit"])
    number = float(match["num"]) if len(match["num"]) <= MAX_QUANTITY_TEXT else math.inf
    celsius = _finite(float(ureg().Quantity(number, unit).to("degC").magnitude) if math.isfinite(number)
                      else number, text, "temperature")
    if celsius < ABSOLUTE_ZERO_C:
        raise QuantityError(f"'{_short(text)}' is below absolute zero", _EXAMPLES["temperature"], repr(_short(text)))
    return celsius


@dataclass(frozen=True, slots=True)
class Scalar:
    """A quantity that needs no cell: its value in SI units (a temperature in degC) and the text it was read from.

    One subclass per kind, so that a model field says what it holds (``Voltage``, not a float whose unit is a
    comment) and a value of one kind cannot be passed where another is expected.
    """

    value: float
    text: str
    kind: ClassVar[str] = ""

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self  # immutable: a copied model (a cached shorthand step) may share it

    @classmethod
    def parse(cls, value: object) -> Self:
        """``value`` (text with a unit) read as this kind; raises :class:`QuantityError` naming what was found."""
        return _read_scalar(_require_text(value, cls.kind), cls)


@dataclass(frozen=True, slots=True)
class Voltage(Scalar):
    """V."""

    kind: ClassVar[str] = "voltage"


@dataclass(frozen=True, slots=True)
class Duration(Scalar):
    """s."""

    kind: ClassVar[str] = "time"


@dataclass(frozen=True, slots=True)
class Frequency(Scalar):
    """Hz."""

    kind: ClassVar[str] = "frequency"


@dataclass(frozen=True, slots=True)
class Power(Scalar):
    """W, a magnitude (a step's direction says which way it flows)."""

    kind: ClassVar[str] = "power"


@dataclass(frozen=True, slots=True)
class Energy(Scalar):
    """Wh."""

    kind: ClassVar[str] = "energy"


@dataclass(frozen=True, slots=True)
class ScanRate(Scalar):
    """V/s: a sweep's scan rate, or a dV/dt end."""

    kind: ClassVar[str] = "scan_rate"


@dataclass(frozen=True, slots=True)
class Temperature(Scalar):
    """degC (the unit labs and BDF use), not K."""

    kind: ClassVar[str] = "temperature"


@dataclass(frozen=True, slots=True)
class Length(Scalar):
    """m."""

    kind: ClassVar[str] = "length"


@dataclass(frozen=True, slots=True)
class Area(Scalar):
    """m^2."""

    kind: ClassVar[str] = "area"


@dataclass(frozen=True, slots=True)
class Mass(Scalar):
    """kg."""

    kind: ClassVar[str] = "mass"


@dataclass(frozen=True, slots=True)
class SpecificCapacity(Scalar):
    """Ah/kg."""

    kind: ClassVar[str] = "specific_capacity"


@_remembered
def _read_scalar(text: str, cls: type[Scalar]) -> Scalar:
    """One object per distinct text and kind: a protocol repeats its values, and the objects are immutable."""
    value = parse_temperature(text) if cls.kind == "temperature" else _parse_plain_text(text, cls.kind)
    return cls(value, text)


CurrentBasis = Literal["absolute", "c_rate", "per_area", "per_mass"]
CapacityBasis = Literal["absolute", "per_area", "per_mass"]


@dataclass(frozen=True, slots=True)
class Current:
    """A current magnitude before binding: A, C-rate (1/h), A/m^2 or A/kg."""

    value: float
    basis: CurrentBasis
    text: str

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self  # immutable, see Scalar

    def resolve(self, *, capacity: float | None, area: float | None, mass: float | None) -> float | None:
        """The current in A given the cell's capacity (Ah), area (m^2) and active mass (kg); ``None`` when the cell
        property it is relative to (:attr:`needs`) is not known."""
        factor = {"absolute": 1.0, "c_rate": capacity, "per_area": area, "per_mass": mass}[self.basis]
        return None if factor is None else self.value * factor

    @property
    def needs(self) -> str | None:
        """The cell property a relative current is a multiple of (``None``: it is absolute)."""
        return {"absolute": None, "c_rate": "capacity", "per_area": "area", "per_mass": "active_mass"}[self.basis]


@dataclass(frozen=True, slots=True)
class Capacity:
    """A capacity before binding: Ah, Ah/m^2 or Ah/kg."""

    value: float
    basis: CapacityBasis
    text: str

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self  # immutable, see Scalar

    def resolve(self, *, area: float | None, mass: float | None) -> float | None:
        """The capacity in Ah given the cell's area (m^2) and active mass (kg); ``None`` when the cell property it
        is relative to (:attr:`needs`) is not known."""
        factor = {"absolute": 1.0, "per_area": area, "per_mass": mass}[self.basis]
        return None if factor is None else self.value * factor

    @property
    def needs(self) -> str | None:
        """The cell property a relative capacity is a multiple of (``None``: it is absolute)."""
        return {"absolute": None, "per_area": "area", "per_mass": "active_mass"}[self.basis]


def parse_c_rate(text: str) -> float | None:
    """The C-rate in 1/h of ``0.1C``, ``C/10``, ``2C/3``, ``C``; ``None`` if the text is not a C-rate."""
    match = _C_RATE.match(text)
    if not match:
        return None
    numerator = float(match["num"]) if match["num"] else 1.0
    denominator = float(match["den"]) if match["den"] else 1.0
    if denominator == 0:
        return None
    return numerator / denominator


def parse_current(value: object) -> Current:
    """``value`` (text: ``'0.5 mA'``, ``'0.1C'``, ``'2 mA/cm^2'``, ``'20 mA/g'``) as a :class:`Current`."""
    return _parse_current_text(_require_text(value, "current"))


@_remembered
def _parse_current_text(text: str) -> Current:
    rate = parse_c_rate(text)
    if rate is not None:
        return Current(_finite(rate, text, "current"), "c_rate", text)
    q = _to_pint(text, "current")
    for unit, basis in (("A", "absolute"), ("A/m^2", "per_area"), ("A/kg", "per_mass")):
        if q.dimensionality == _dimensionality(unit):
            return Current(_magnitude(q, unit, text, "current"), basis, text)  # type: ignore[arg-type]
    raise QuantityError(f"'{_short(text)}' is {describe_dimension(q)}, not a current", _EXAMPLES["current"],
                        repr(_short(text)))


def parse_capacity(value: object) -> Capacity:
    """``value`` (text: ``'1.2 mAh'``, ``'4 mAh/cm^2'``, ``'175 mAh/g'``) as a :class:`Capacity`."""
    return _parse_capacity_text(_require_text(value, "capacity"))


@_remembered
def _parse_capacity_text(text: str) -> Capacity:
    q = _to_pint(text, "capacity")
    for unit, basis in (("Ah", "absolute"), ("Ah/m^2", "per_area"), ("Ah/kg", "per_mass")):
        if q.dimensionality == _dimensionality(unit):
            return Capacity(_magnitude(q, unit, text, "capacity"), basis, text)  # type: ignore[arg-type]
    raise QuantityError(f"'{_short(text)}' is {describe_dimension(q)}, not a capacity", _EXAMPLES["capacity"],
                        repr(_short(text)))


def format_si(value: float, unit: str) -> str:
    """A compact human rendering of an SI value, e.g. 5.655e-4 A -> '0.5655 mA'."""
    if value == 0:
        return f"0 {unit}"
    magnitude = abs(value)
    for factor, prefix in ((1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e3, "k")):
        if (magnitude / factor >= 1 or factor == 1e-9) and magnitude / factor < 1000:
            return f"{value / factor:.4g} {prefix}{unit}"
    return f"{value:.4g} {unit}"
