"""Model type names -> classes, and the one constructor the simulated instruments use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulators.cells.base import CellModel
from simulators.cells.blocking import BlockingCell
from simulators.cells.engine import SimulatedCell
from simulators.cells.errors import ParameterError, UnknownModelError
from simulators.cells.full_cell import AnodeFreeCell, NcmLiCell
from simulators.cells.half_cell import LiCuCell, LiHostCell, LiLltoCell

MODEL_TYPES: dict[str, type[SimulatedCell]] = {
    cls.type_name: cls for cls in (NcmLiCell, AnodeFreeCell, LiHostCell, LiLltoCell, LiCuCell, BlockingCell)
}


def build_model(
    type_name: str,
    params: Mapping[str, Any] | None = None,
    *,
    area: float | None = None,
    capacity: float | None = None,
    thickness: float | None = None,
    seed: int | None = None,
    temperature: float | None = None,
    ocv: float | None = None,
) -> CellModel:
    """A fresh cell of ``type_name``; area in m^2, capacity in Ah, thickness in m, temperature in K, ocv (the
    as-assembled equilibrium voltage) in V; params override defaults."""
    cls = MODEL_TYPES.get(type_name)
    if cls is None:
        raise UnknownModelError(f"unknown cell model {type_name!r}; valid models: {', '.join(sorted(MODEL_TYPES))}")
    for name, value, unit in (("area", area, "m^2"), ("capacity", capacity, "Ah"), ("thickness", thickness, "m")):
        if value is not None and not (isinstance(value, int | float) and value > 0):
            raise ParameterError(f"cell model {type_name!r}: {name} must be a positive number in {unit}, got {value!r}")
    if temperature is not None and not (isinstance(temperature, int | float) and 200.0 <= temperature <= 400.0):
        raise ParameterError(f"cell model {type_name!r}: temperature must be 200-400 K, got {temperature!r}")
    return cls(params, area=area, capacity=capacity, thickness=thickness, seed=seed, temperature=temperature, ocv=ocv)
