"""Errors a cell model raises for caller mistakes, each naming the place and the fix in one line."""

from __future__ import annotations


class CellModelError(Exception):
    """Base class: a cell model was asked for something it cannot do as asked."""


class UnknownModelError(CellModelError, ValueError):
    """A cell record names a model type the registry does not know."""


class ParameterError(CellModelError, ValueError):
    """A parameter override has an unknown name or an unusable value."""


class StateError(CellModelError, ValueError):
    """A saved state does not belong to this model (wrong type or format)."""


class StepKindError(CellModelError, TypeError):
    """A step kind that a cell model does not execute (loops are the instrument's job)."""
