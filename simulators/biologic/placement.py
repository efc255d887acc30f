"""Which cell sits on a simulated channel: a library cell, a cell file, a model, or a factory asked on first use.

A cell file's ``model:`` names the physical model and its parameters; it is built with the cell's area,
capacity and thickness exactly as the station builds the model of a cell it places on a simulated channel. A
factory lets a cell be placed after the instrument exists (a person putting a coin cell in a holder): it is asked
for the channel's cell the first time the channel needs one.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from simulators.cells.base import CellModel
from simulators.cells.dummy import DummyCell

CellSource = str | os.PathLike[str] | CellModel | None
CellSpec = CellSource | Callable[[int], CellSource]
"""A library cell name or file, a model, None (the R/C test box), or ``channel -> one of those``."""


def build_cell(source: str | os.PathLike[str], seed: int = 0) -> CellModel:
    """The model of a library cell (``host-blocking``) or a cell YAML file; ValueError names what is missing."""
    from protocols.cells import load_cell
    from simulators.cells import build_model

    cell = load_cell(os.fspath(source))
    if not cell.model_type:
        raise ValueError(f"cell '{cell.name}' names no simulated model; add 'model: <type>' to its file")
    kelvin = None if cell.temperature is None else cell.temperature + 273.15  # cell records are in degC
    return build_model(cell.model_type, dict(cell.model_params), area=cell.area, capacity=cell.capacity,
                       thickness=cell.thickness, seed=seed, temperature=kelvin, ocv=cell.ocv)  # fmt: skip


def resolve(source: CellSource, seed: int = 0) -> CellModel:
    if source is None:
        return DummyCell()
    if isinstance(source, CellModel):
        return source
    return build_cell(source, seed)


def placements(spec: CellSpec, channels: int, seed: int = 0) -> dict[int, Callable[[], CellModel]]:
    """One deferred cell per channel ``0..channels-1``; a single model object cannot sit on two channels."""
    if isinstance(spec, CellModel) and channels > 1:
        raise ValueError("one cell model cannot be wired to several channels; give a cell name, a file or a "
                         "factory (channel -> cell)")  # fmt: skip
    if callable(spec) and not isinstance(spec, CellModel):
        factory = spec
        return {k: (lambda k=k: resolve(factory(k), seed)) for k in range(channels)}
    if isinstance(spec, str | os.PathLike):
        build_cell(spec, seed)  # fail now, naming the cell, rather than at the first start
    return {k: (lambda: resolve(spec, seed)) for k in range(channels)}  # type: ignore[arg-type]
