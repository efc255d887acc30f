"""Quantities with units, parsed once at the boundary into plain SI floats.

pint does the unit algebra. Two things it cannot do for us are handled first: C-rates (``0.1C``, ``C/10``) would
otherwise be read as coulombs, and ``cm2`` is common lab shorthand pint does not know. Relative quantities (C-rate,
per area, per mass) stay relative here and are resolved against a cell when a protocol is bound.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from tokenize import TokenError
from typing import Literal

import pint


class QuantityError(ValueError):
    """A value that is not the quantity expected; carries what was expected and found for the error report."""

    def __init__(self, message: str, expected: str, found: str):
        super().__init__(message)
        self.expected = expected
        self.found = found


@functools.cache
def ureg() -> pint.UnitRegistry:
    return pint.UnitRegistry()


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


def describe_dimension(q: pint.Quantity) -> str:
    for unit, name in _DIMENSION_NAMES:
        if q.dimensionality == ureg().Quantity(1, unit).dimensionality:
            return name
    if q.dimensionless:
        return "a plain number with no unit"
    return f"a quantity in {q.units:~}"


def _to_pint(text: str, kind: str) -> pint.Quantity:
    cleaned = _SQUARED.sub(r"^\1", text.strip().replace("²", "^2").replace("³", "^3"))
    try:
        return ureg().Quantity(cleaned)
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, AttributeError, TypeError,
            ValueError, SyntaxError, AssertionError, pint.errors.OffsetUnitCalculusError, TokenError) as exc:
        raise QuantityError(f"cannot read '{text}' as a quantity ({type(exc).__name__})", _EXAMPLES[kind],
                            repr(text)) from None


def _require_text(value: object, kind: str) -> str:
    if isinstance(value, bool) or value is None:
        raise QuantityError(f"expected {kind} with a unit", _EXAMPLES[kind], repr(value))
    if isinstance(value, int | float):
        raise QuantityError(f"a {kind} needs a unit", _EXAMPLES[kind], f"{value!r} (no unit)")
    if not isinstance(value, str):
        raise QuantityError(f"expected {kind} as text with a unit", _EXAMPLES[kind], type(value).__name__)
    return value


def _finite(value: float, text: str, kind: str) -> float:
    if not math.isfinite(value):
        raise QuantityError(f"'{text}' is not a finite number", _EXAMPLES[kind], repr(text))
    return value


def parse_plain(value: object, kind: str) -> float:
    """A non-relative quantity in SI (volt, second, hertz, watt, V/s, Wh, m, m^2, kg, Ah/kg, m^3, ohm, S/m)."""
    if kind == "temperature":
        return parse_temperature(value)
    text = _require_text(value, kind)
    q = _to_pint(text, kind)
    dim_unit, si_unit = _PLAIN[kind]
    if q.dimensionality != ureg().Quantity(1, dim_unit).dimensionality:
        raise QuantityError(f"'{text}' is {describe_dimension(q)}, not {_EXAMPLES[kind].split(' such as')[0]}",
                            _EXAMPLES[kind], repr(text))
    return _finite(float(q.to(si_unit).magnitude), text, kind)


def parse_temperature(value: object) -> float:
    """A temperature in degrees Celsius (the unit labs and BDF use)."""
    text = _require_text(value, "temperature")
    match = _TEMPERATURE.match(text)
    if not match:
        raise QuantityError(f"cannot read '{text}' as a temperature", _EXAMPLES["temperature"], repr(text))
    unit = {"°C": "degC", "C": "degC"}.get(match["unit"], match["unit"])
    return float(ureg().Quantity(float(match["num"]), unit).to("degC").magnitude)


CurrentBasis = Literal["absolute", "c_rate", "per_area", "per_mass"]
CapacityBasis = Literal["absolute", "per_area", "per_mass"]


@dataclass(frozen=True, slots=True)
class Current:
    """A current magnitude before binding: A, C-rate (1/h), A/m^2 or A/kg."""

    value: float
    basis: CurrentBasis
    text: str

    def resolve(self, *, capacity: float | None, area: float | None, mass: float | None) -> float:
        """The current in A given the cell's capacity (Ah), area (m^2) and active mass (kg)."""
        factor = {"absolute": 1.0, "c_rate": capacity, "per_area": area, "per_mass": mass}[self.basis]
        if factor is None:
            raise KeyError(self.needs)
        return self.value * factor

    @property
    def needs(self) -> str | None:
        return {"absolute": None, "c_rate": "capacity", "per_area": "area", "per_mass": "active_mass"}[self.basis]


@dataclass(frozen=True, slots=True)
class Capacity:
    """A capacity before binding: Ah, Ah/m^2 or Ah/kg."""

    value: float
    basis: CapacityBasis
    text: str

    def resolve(self, *, area: float | None, mass: float | None) -> float:
        factor = {"absolute": 1.0, "per_area": area, "per_mass": mass}[self.basis]
        if factor is None:
            raise KeyError(self.needs)
        return self.value * factor

    @property
    def needs(self) -> str | None:
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
    text = _require_text(value, "current")
    rate = parse_c_rate(text)
    if rate is not None:
        return Current(_finite(rate, text, "current"), "c_rate", text)
    q = _to_pint(text, "current")
    for unit, basis in (("A", "absolute"), ("A/m^2", "per_area"), ("A/kg", "per_mass")):
        if q.dimensionality == ureg().Quantity(1, unit).dimensionality:
            return Current(_finite(float(q.to(unit).magnitude), text, "current"), basis, text)  # type: ignore[arg-type]
    raise QuantityError(f"'{text}' is {describe_dimension(q)}, not a current", _EXAMPLES["current"], repr(text))


def parse_capacity(value: object) -> Capacity:
    text = _require_text(value, "capacity")
    q = _to_pint(text, "capacity")
    for unit, basis in (("Ah", "absolute"), ("Ah/m^2", "per_area"), ("Ah/kg", "per_mass")):
        if q.dimensionality == ureg().Quantity(1, unit).dimensionality:
            return Capacity(_finite(float(q.to(unit).magnitude), text, "capacity"), basis, text)  # type: ignore[arg-type]
    raise QuantityError(f"'{text}' is {describe_dimension(q)}, not a capacity", _EXAMPLES["capacity"], repr(text))


def check_quantity_text(value: object, kind: str) -> None:
    """Validate ``value`` as ``kind`` (any kind above, or current/capacity), raising :class:`QuantityError`."""
    if kind == "current":
        parse_current(value)
    elif kind == "capacity":
        parse_capacity(value)
    else:
        parse_plain(value, kind)


def format_si(value: float, unit: str) -> str:
    """A compact human rendering of an SI value, e.g. 5.655e-4 A -> '0.5655 mA'."""
    if value == 0:
        return f"0 {unit}"
    magnitude = abs(value)
    for factor, prefix in ((1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e3, "k")):
        if (magnitude / factor >= 1 or factor == 1e-9) and magnitude / factor < 1000:
            return f"{value / factor:.4g} {prefix}{unit}"
    return f"{value:.4g} {unit}"
