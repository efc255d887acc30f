"""Loading the optional reader packages lazily: ``station`` starts without them, and a command that needs one
says in one line how to install it."""

from __future__ import annotations

import importlib
from importlib import metadata
from types import ModuleType

from station.imports.common import MissingReader

INSTALL_HINT = 'pip install "battery-test-station[import]"'


def need(module: str, package: str, what: str) -> ModuleType:
    """The reader module, or :class:`MissingReader` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingReader(f"reading {what} needs the {package} package, which is not installed; {INSTALL_HINT}") \
            from None


def version(package: str) -> str:
    """The installed version of a reader package (what the run records as its reader)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
