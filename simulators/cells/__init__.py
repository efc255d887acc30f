"""Physical cell models for dry runs and tests, behind one interface (:class:`CellModel`).

``build_model("ncm622-li", area=1.131e-4, capacity=2.0e-3)`` gives a cell; ``run_step`` executes one
step-program step on it. No wire formats here: the simulated instruments translate.
"""

from simulators.cells.base import CellModel, StepResult
from simulators.cells.errors import CellModelError, ParameterError, StateError, UnknownModelError
from simulators.cells.registry import MODEL_TYPES, build_model

__all__ = [
    "MODEL_TYPES",
    "CellModel",
    "CellModelError",
    "ParameterError",
    "StateError",
    "StepResult",
    "UnknownModelError",
    "build_model",
]
