"""Helpers shared by the protocol tests: build protocols and cells from text."""

from __future__ import annotations

import textwrap

import pytest

from protocols.cells import Cell, load_cell_text
from protocols.errors import ProtocolError
from protocols.loader import load_protocol_text
from protocols.program import StepProgram

HOST_12MM = """
name: host-12mm
diameter: 12 mm
thickness: 45 um
capacity: 0.5 mAh/cm^2
limits: {voltage: [-0.5 V, 3.5 V]}
"""

MASS_CELL = """
name: ncm-10mg
diameter: 12 mm
active_mass: 10 mg
specific_capacity: 175 mAh/g
ocv: 3.0 V
limits: {voltage: [2.5 V, 4.4 V]}
"""


def cell(text: str = HOST_12MM) -> Cell:
    return load_cell_text(textwrap.dedent(text), "cell.yaml")


def program(text: str, cell_text: str = HOST_12MM, **overrides: str) -> StepProgram:
    loaded = load_protocol_text(textwrap.dedent(text), "p.yaml", overrides=overrides)
    result = loaded.bind(cell(cell_text))
    assert result is not None
    return result


def problems(text: str, cell_text: str | None = HOST_12MM, **overrides: str) -> list:
    """Every problem reported for a protocol (parse + bind), as Problem objects."""
    with pytest.raises(ProtocolError) as info:
        loaded = load_protocol_text(textwrap.dedent(text), "p.yaml", overrides=overrides)
        loaded.bind(cell(cell_text) if cell_text else None)
    return info.value.problems
