"""The one error every figure raises for input it cannot draw, kept free of matplotlib so callers can catch it
without importing it."""

from __future__ import annotations


class PlotError(ValueError):
    """A figure cannot be made as asked; the one-line message names the run or option and what to do instead."""
