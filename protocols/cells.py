"""Cell records: the physical facts a protocol's relative quantities are resolved against.

A cell is its own YAML file so the same protocol runs on many cells (other disks, loadings, chemistries) and a
run stores exactly which cell it was bound to. Values are given with units in the file and held in SI here.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from protocols.errors import Problem, ProtocolError
from protocols.model import TemperatureText, _quantity
from protocols.units import QuantityError, parse_capacity, parse_current, parse_plain
from protocols.validation import pydantic_problems
from protocols.yamlsource import SourceDoc, load_yaml, load_yaml_file

LengthText = Annotated[str, _quantity("length")]
AreaText = Annotated[str, _quantity("area")]
MassText = Annotated[str, _quantity("mass")]
SpecificCapacityText = Annotated[str, _quantity("specific_capacity")]
VolumeText = Annotated[str, _quantity("volume")]
VoltageText = Annotated[str, _quantity("voltage")]
CurrentText = Annotated[str, _quantity("current")]


class CellLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    voltage: list[VoltageText] | None = Field(None, min_length=2, max_length=2, description="[min, max] the cell "
                                              "tolerates; also the window duration estimates use")
    current: CurrentText | None = Field(None, description="largest |I| the cell tolerates (absolute, e.g. '5 mA')")
    temperature: TemperatureText | None = None


class ModelRef(BaseModel):
    """The simulated cell used in dry runs: a model type and its parameter overrides."""

    model_config = ConfigDict(extra="allow")
    type: str


class CellDoc(BaseModel):
    """A cell file as written: quantities with units."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str | None = None
    area: AreaText | None = Field(None, description="electrode area, e.g. '1.131 cm^2' (or give diameter)")
    diameter: LengthText | None = Field(None, description="disk diameter, e.g. '12 mm'")
    capacity: str | None = Field(None, description="nominal capacity for C-rates: '1.75 mAh' or '3 mAh/cm^2'")
    active_mass: MassText | None = Field(None, description="active material mass, e.g. '10 mg'")
    specific_capacity: SpecificCapacityText | None = Field(None, description="e.g. '175 mAh/g'")
    thickness: LengthText | None = Field(None, description="e.g. '45 um'")
    ocv: VoltageText | None = Field(None, description="open-circuit voltage as assembled (duration estimates)")
    limits: CellLimits = CellLimits()
    temperature: TemperatureText | None = None
    model: ModelRef | str | None = Field(None, description="simulated model for dry runs, e.g. 'li-host'")
    metadata: dict[str, Any] = Field(default_factory=dict, description="free facts kept with the data")

    @field_validator("capacity", mode="before")
    @classmethod
    def _capacity(cls, value: Any) -> Any:
        if value is None:
            return value
        from pydantic_core import PydanticCustomError

        try:
            parse_capacity(value)
        except QuantityError as exc:
            raise PydanticCustomError("quantity", "{message}", {"message": str(exc), "expected": exc.expected,
                                                                 "found": exc.found}) from None
        return str(value)

    @model_validator(mode="after")
    def _one_way_each(self) -> CellDoc:
        from pydantic_core import PydanticCustomError

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


_POSITIVE = {"area": "area", "diameter": "length", "active_mass": "mass", "specific_capacity": "specific_capacity",
             "thickness": "length"}


def _positive_problems(doc: CellDoc, source: SourceDoc | None) -> list[Problem]:
    """Sizes, masses, capacities and the current limit are magnitudes: zero or less is a typing mistake that
    would otherwise resolve every C-rate or per-area current to zero or flip its sign."""
    problems: list[Problem] = []
    for name, kind in _POSITIVE.items():
        text = getattr(doc, name)
        if text is not None and parse_plain(text, kind) <= 0:
            problems.append(_problem(source, (name,), f"the cell's {name} must be above zero",
                                     expected=f"{kind.replace('_', ' ')} above 0", found=repr(text)))
    if doc.capacity is not None and parse_capacity(doc.capacity).value <= 0:
        problems.append(_problem(source, ("capacity",), "the cell's capacity must be above zero",
                                 expected="a capacity above 0 Ah", found=repr(doc.capacity)))
    if doc.limits.current is not None and parse_current(doc.limits.current).value <= 0:
        problems.append(_problem(source, ("limits", "current"), "the cell's current limit must be above zero (it "
                                 "is a magnitude)", expected="a current above 0 A", found=repr(doc.limits.current)))
    return problems


def cell_from_doc(doc: CellDoc, source: SourceDoc | None = None) -> Cell:
    problems = _positive_problems(doc, source)
    if problems:
        raise ProtocolError(problems)
    area = parse_plain(doc.area, "area") if doc.area else None
    if doc.diameter:
        area = math.pi * (parse_plain(doc.diameter, "length") / 2) ** 2
    mass = parse_plain(doc.active_mass, "mass") if doc.active_mass else None
    specific = parse_plain(doc.specific_capacity, "specific_capacity") if doc.specific_capacity else None
    capacity = None
    if doc.capacity is not None:
        spec = parse_capacity(doc.capacity)
        try:
            capacity = spec.resolve(area=area, mass=mass)
        except KeyError:
            need = spec.needs
            problems.append(_problem(source, ("capacity",), f"'{doc.capacity}' needs the cell's {need}",
                                     expected=f"{need} in the cell, or an absolute capacity such as '2 mAh'",
                                     found=f"no {need}"))
    elif mass is not None and specific is not None:
        capacity = mass * specific
    if problems:
        raise ProtocolError(problems)
    v_window = [parse_plain(v, "voltage") for v in doc.limits.voltage] if doc.limits.voltage else [None, None]
    if v_window[0] is not None and v_window[0] >= v_window[1]:
        raise ProtocolError([_problem(source, ("limits", "voltage"), "the voltage window is empty",
                                      expected="[min, max] with min < max", found=f"{doc.limits.voltage}")])
    current_max = None
    if doc.limits.current:
        current_spec = parse_current(doc.limits.current)
        try:
            current_max = current_spec.resolve(capacity=capacity, area=area, mass=mass)
        except KeyError:
            raise ProtocolError([_problem(source, ("limits", "current"),
                                          f"'{doc.limits.current}' needs the cell's {current_spec.needs}",
                                          expected=f"{current_spec.needs} in the cell, or an absolute current",
                                          found=f"no {current_spec.needs}")]) from None
    model_type, model_params = None, {}
    if isinstance(doc.model, str):
        model_type = doc.model
    elif doc.model is not None:
        model_type = doc.model.type
        model_params = dict(doc.model.model_extra or {})
    return Cell(
        name=doc.name, description=doc.description, area=area, capacity=capacity, active_mass=mass,
        specific_capacity=specific,
        thickness=parse_plain(doc.thickness, "length") if doc.thickness else None,
        ocv=parse_plain(doc.ocv, "voltage") if doc.ocv else None,
        voltage_min=v_window[0], voltage_max=v_window[1], current_max=current_max,
        temperature_max=parse_plain(doc.limits.temperature, "temperature") if doc.limits.temperature else None,
        temperature=parse_plain(doc.temperature, "temperature") if doc.temperature else None,
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
