"""The metadata sidecar, shaped after BDF's and BattINFO's metadata: which vocabulary the files use, the cell in SI
with units, the sample, the protocol (source, sha256, parameters resolved to numbers with units, the step program
it ran), the instrument and its firmware, the software that wrote the files, and the run's events.

Parameters are stored as the text the protocol or ``--set`` gave (``"2 mA/cm^2"``); the sidecar resolves each with
the protocol language's own unit reading, so a reader gets ``20.0 A/m^2`` and, for a current or capacity relative
to the cell, the absolute value it resolved to on this cell.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from protocols.parameters import coerce_override
from protocols.program import StepProgram
from protocols.units import parse_c_rate, parse_temperature, to_quantity, ureg
from station.exports import vocabulary as bdf
from station.exports.step_types import step_type
from station.store import EventRow, RunRow
from station.version import software_version

#: the SI unit each dimension is given in (the step program's units, DESIGN section 4)
SI_UNITS = ("A", "A/m^2", "A/kg", "Ah", "Ah/m^2", "Ah/kg", "V", "s", "Hz", "W", "V/s", "Wh", "m", "m^2", "kg",
            "m^3", "ohm", "S/m")
#: which cell property a relative unit is a multiple of, and the absolute unit it resolves to
_RELATIVE = {"A/m^2": ("area", "A"), "A/kg": ("active_mass", "A"), "Ah/m^2": ("area", "Ah"),
             "Ah/kg": ("active_mass", "Ah")}
#: units of the cell's SI fields (protocols.cells.Cell)
CELL_UNITS = {"area": "m^2", "capacity": "Ah", "active_mass": "kg", "specific_capacity": "Ah/kg",
              "thickness": "m", "ocv": "V", "voltage_min": "V", "voltage_max": "V", "current_max": "A",
              "temperature_max": "degC", "temperature": "degC"}


@functools.cache
def _dimensionality(unit: str) -> Any:
    return ureg().Quantity(1, unit).dimensionality


def resolve_parameter(value: object, cell: dict[str, Any]) -> dict[str, Any]:
    """One parameter as ``{"text", "value", "unit"}`` in SI (``"resolved"`` too for a C-rate or a per-area or
    per-mass quantity on this cell); text that is no quantity keeps only ``"text"``."""
    text = str(value)
    out: dict[str, Any] = {"text": text}
    if isinstance(value, bool):
        return out
    if isinstance(value, str):
        value = coerce_override(text)  # "10" -> 10, as the protocol language reads a count
    if isinstance(value, int | float):
        return {**out, "value": value, "unit": "1"}
    rate = parse_c_rate(text)
    if rate is not None:
        out.update(value=rate, unit="1/h", kind="C-rate")
        if cell.get("capacity"):
            out["resolved"] = {"value": rate * cell["capacity"], "unit": "A"}
        return out
    try:
        quantity = to_quantity(text)
    except ValueError:
        try:
            return {**out, "value": parse_temperature(text), "unit": "degC"}
        except ValueError:
            return out
    if not quantity.dimensionality:
        return {**out, "value": float(quantity.magnitude), "unit": "1"}
    for unit in SI_UNITS:
        if quantity.dimensionality == _dimensionality(unit):
            magnitude = float(quantity.to(unit).magnitude)
            out.update(value=magnitude, unit=unit)
            if unit in _RELATIVE and cell.get(_RELATIVE[unit][0]):
                prop, absolute = _RELATIVE[unit]
                out["resolved"] = {"value": magnitude * cell[prop], "unit": absolute}
            return out
    return out


def _with_units(cell: dict[str, Any]) -> dict[str, Any]:
    """The cell with each SI number as ``{"value", "unit"}``; names and free facts as they are."""
    return {key: ({"value": value, "unit": CELL_UNITS[key]} if key in CELL_UNITS and value is not None else value)
            for key, value in cell.items()}


def battery(run: RunRow) -> dict[str, Any]:
    """The cell in batterydf's ``battery.json`` shape (its bundled ``battery.schema.json``: a spec and the cells it
    applies to), so BDF tooling that ingests a battery description finds one: the cell file as the model, the
    sample (or, without one, the run) as the cell's id."""
    cell = dict(run.cell or {})
    spec = {"model": cell.get("name"), "description": cell.get("description"),
            "rated_capacity_ah": cell.get("capacity")}
    return {"schema_version": "1.0.0", "spec": {k: v for k, v in spec.items() if v is not None},
            "cells": [{"name": str(cell.get("name") or run.id), "id": run.sample_id or run.id}]}


def sidecar(run: RunRow, events: list[EventRow], started_unix: float, files: dict[str, str | None],
            columns: dict[str, list[dict[str, str | None]]]) -> dict[str, Any]:
    """The whole sidecar for a run whose files (name by role: records, eis, summary) are being written."""
    program = StepProgram.from_json(run.program)
    source = run.protocol_source or ""
    instrument = dict(run.instrument or {})
    return {
        "bdf": {"ontology": bdf.ONTOLOGY_IRI, "ontology_version": bdf.ONTOLOGY_VERSION,
                "ontology_version_iri": bdf.ONTOLOGY_VERSION_IRI,
                "ontology_file": {"name": bdf.ONTOLOGY_FILE, "sha256": bdf.ONTOLOGY_SHA256},
                "validated_with": {"package": bdf.VALIDATOR, "version": bdf.VALIDATOR_VERSION,
                                   "ontology": bdf.ONTOLOGY_FILE},
                "current_sign": "positive current charges the cell",
                "step_types": {"listed_in_ontology": list(bdf.ONTOLOGY_STEP_TYPES), "values": bdf.STEP_TYPES},
                "columns": columns},
        "files": files,
        "run": {"id": run.id, "state": run.state, "dry_run": run.dry_run, "channel": run.channel,
                "test": run.handle, "campaign": run.campaign_id, "campaign_stage": run.campaign_stage},
        "created_at_unix": run.created_at,
        "started_at_unix": started_unix,
        "sample": {"id": run.sample_id},
        "cell": _with_units(dict(run.cell or {})),
        "battery": battery(run),
        "protocol": {
            "name": run.protocol_name, "file": run.protocol_file, "source": source,
            "sha256": hashlib.sha256(source.encode()).hexdigest(),
            "parameters": {name: resolve_parameter(value, run.cell or {}) for name, value in run.parameters.items()},
            "cycle_rule": program.cycle_rule,
            "steps": [{"index": step.index, "type": step_type(step) or "CV_CHG or CV_DCH, by the charge each "
                       "execution passed", "tag": step.tag,
                       **json.loads(step.model_dump_json())} for step in program.steps],
        },
        "instrument": {**instrument, "firmware": instrument.get("firmware")},
        "software": {"name": "battery-test-station", "version": software_version()},
        "events": [{"at": e.at, "kind": e.kind, "message": e.message} for e in events],
    }
