"""Cell records: the physical facts a protocol's relative quantities are resolved against.

A cell is its own YAML file so the same protocol runs on many cells (other disks, loadings, chemistries) and a
run stores exactly which cell it was bound to. Values are given with units in the file, read once by the field
types of :mod:`protocols.fields` (:class:`CellDoc`), and held in SI in a :class:`Cell`.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from protocols.errors import Problem, ProtocolError
from protocols.fields import (
    AreaField,
    CapacityField,
    CurrentField,
    LengthField,
    MassField,
    SpecificCapacityField,
    TemperatureField,
    VoltageField,
)
from protocols.units import Capacity, Current
from protocols.validation import pydantic_problems
from protocols.yamlsource import SourceDoc, load_yaml, load_yaml_file


class CellLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    voltage: list[VoltageField] | None = Field(None, min_length=2, max_length=2, description="[min, max] the cell "
                                               "tolerates; also the window duration estimates use")
    current: CurrentField | None = Field(None, description="largest |I| the cell tolerates (absolute, e.g. '5 mA')")
    temperature: TemperatureField | None = None


class ModelRef(BaseModel):
    """The simulated cell used in dry runs: a model type and its parameter overrides."""

    model_config = ConfigDict(extra="allow")
    type: str


class CellDoc(BaseModel):
    """A cell file as written: quantities with units."""

    # each quantity field holds its value object (protocols.fields), which keeps the text for messages; the
    # docstring above is the JSON Schema's description of a cell file

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str | None = None
    area: AreaField | None = Field(None, description="electrode area, e.g. '1.131 cm^2' (or give diameter)")
    diameter: LengthField | None = Field(None, description="disk diameter, e.g. '12 mm'")
    capacity: CapacityField | None = Field(None, description="nominal capacity for C-rates: '1.75 mAh' or "
                                           "'3 mAh/cm^2'")
    active_mass: MassField | None = Field(None, description="active material mass, e.g. '10 mg'")
    specific_capacity: SpecificCapacityField | None = Field(None, description="e.g. '175 mAh/g'")
    thickness: LengthField | None = Field(None, description="e.g. '45 um'")
    ocv: VoltageField | None = Field(None, description="open-circuit voltage as assembled (duration estimates)")
    limits: CellLimits = CellLimits()
    temperature: TemperatureField | None = None
    model: ModelRef | str | None = Field(None, description="simulated model for dry runs, e.g. 'li-host'")
    metadata: dict[str, Any] = Field(default_factory=dict, description="free facts kept with the data")

    @model_validator(mode="after")
    def _one_way_each(self) -> CellDoc:
        if self.area is not None and self.diameter is not None:
            raise PydanticCustomError("cell", "give area or diameter, not both",
                                      {"expected": "one of area, diameter", "found": "both"})
        if (self.active_mass is None) != (self.specific_capacity is None) and self.capacity is None:
            raise PydanticCustomError("cell", "active_mass and specific_capacity go together to give a capacity",
                                      {"expected": "both, or a capacity", "found": "only one"})
        return self


class Cell(BaseModel):
    """A cell in SI: area m^2, capacity Ah, active_mass kg, thickness m, voltages V, currents A."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    description: str | None = None
    area: float | None = None
    capacity: float | None = None
    active_mass: float | None = None
    specific_capacity: float | None = None
    thickness: float | None = None
    ocv: float | None = None
    voltage_min: float | None = None
    voltage_max: float | None = None
    current_max: float | None = None
    temperature_max: float | None = None
    temperature: float | None = None
    model_type: str | None = None
    model_params: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: str | None = None

    def has(self, prop: str) -> bool:
        return getattr(self, prop, None) is not None


def _problem(source: SourceDoc | None, path: tuple[str, ...], message: str, *, expected: str, found: str) -> Problem:
    if source is None:
        return Problem("<cell>", 1, 1, ".".join(path), message, expected, found)
    return source.problem(path, message, expected=expected, found=found)


#: sizes and masses, by field name: magnitudes, so zero or less is a typing mistake
_POSITIVE = ("area", "diameter", "active_mass", "specific_capacity", "thickness")


def _positive_problems(doc: CellDoc, source: SourceDoc | None) -> list[Problem]:
    """Sizes, masses, capacities and the current limit are magnitudes: zero or less is a typing mistake that
    would otherwise resolve every C-rate or per-area current to zero or flip its sign."""
    problems: list[Problem] = []
    for name in _POSITIVE:
        value = getattr(doc, name)
        if value is not None and value.value <= 0:
            problems.append(_problem(source, (name,), f"the cell's {name} must be above zero",
                                     expected=f"{value.kind.replace('_', ' ')} above 0", found=repr(value.text)))
    if doc.capacity is not None and doc.capacity.value <= 0:
        problems.append(_problem(source, ("capacity",), "the cell's capacity must be above zero",
                                 expected="a capacity above 0 Ah", found=repr(doc.capacity.text)))
    if doc.limits.current is not None and doc.limits.current.value <= 0:
        problems.append(_problem(source, ("limits", "current"), "the cell's current limit must be above zero (it "
                                 "is a magnitude)", expected="a current above 0 A",
                                 found=repr(doc.limits.current.text)))
    return problems


def _needs(source: SourceDoc | None, path: tuple[str, ...], spec: Current | Capacity, what: str) -> Problem:
    """A relative capacity or current limit that the cell's own properties cannot resolve."""
    return _problem(source, path, f"'{spec.text}' needs the cell's {spec.needs}",
                    expected=f"{spec.needs} in the cell, or {what}", found=f"no {spec.needs}")


def cell_from_doc(doc: CellDoc, source: SourceDoc | None = None) -> Cell:
    """The cell in SI: the diameter becomes an area, a relative capacity and current limit are resolved against
    the cell's own area and mass (a capacity also from active_mass x specific_capacity)."""
    problems = _positive_problems(doc, source)
    if problems:
        raise ProtocolError(problems)
    area = doc.area.value if doc.area else None
    if doc.diameter:
        area = math.pi * (doc.diameter.value / 2) ** 2
    mass = doc.active_mass.value if doc.active_mass else None
    specific = doc.specific_capacity.value if doc.specific_capacity else None
    capacity = None
    if doc.capacity is not None:
        capacity = doc.capacity.resolve(area=area, mass=mass)
        if capacity is None:
            raise ProtocolError([_needs(source, ("capacity",), doc.capacity, "an absolute capacity such as '2 mAh'")])
    elif mass is not None and specific is not None:
        capacity = mass * specific
    limits = doc.limits
    v_window = [v.value for v in limits.voltage] if limits.voltage else [None, None]
    if v_window[0] is not None and v_window[0] >= v_window[1]:
        raise ProtocolError([_problem(source, ("limits", "voltage"), "the voltage window is empty",
                                      expected="[min, max] with min < max",
                                      found=f"{[v.text for v in limits.voltage]}")])
    current_max = None
    if limits.current:
        current_max = limits.current.resolve(capacity=capacity, area=area, mass=mass)
        if current_max is None:
            raise ProtocolError([_needs(source, ("limits", "current"), limits.current, "an absolute current")])
    model_type, model_params = None, {}
    if isinstance(doc.model, str):
        model_type = doc.model
    elif doc.model is not None:
        model_type = doc.model.type
        model_params = dict(doc.model.model_extra or {})
    return Cell(
        name=doc.name, description=doc.description, area=area, capacity=capacity, active_mass=mass,
        specific_capacity=specific,
        thickness=doc.thickness.value if doc.thickness else None,
        ocv=doc.ocv.value if doc.ocv else None,
        voltage_min=v_window[0], voltage_max=v_window[1], current_max=current_max,
        temperature_max=limits.temperature.value if limits.temperature else None,
        temperature=doc.temperature.value if doc.temperature else None,
        model_type=model_type, model_params=model_params, metadata=doc.metadata, source=source.file if source else None,
    )


def parse_cell(source: SourceDoc) -> Cell:
    if not isinstance(source.data, dict):
        raise ProtocolError([source.problem((), "a cell file is a mapping of cell properties",
                                            expected="'name: ...', 'diameter: 12 mm', ...",
                                            found=type(source.data).__name__)])
    try:
        doc = CellDoc.model_validate(source.data)
    except ValidationError as exc:
        raise ProtocolError(pydantic_problems(exc, source, CellDoc)) from None
    return cell_from_doc(doc, source)


def load_cell(path: str) -> Cell:
    """A cell from a YAML file path, or the name of a library cell (``host-cu-li``)."""
    from protocols.library import resolve_cell_path

    return parse_cell(load_yaml_file(resolve_cell_path(path)))


def load_cell_text(text: str, file: str = "<cell>") -> Cell:
    return parse_cell(load_yaml(text, file))
