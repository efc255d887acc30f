"""Load easy-biologic 0.4.0's low-level modules, unchanged, bound to a simulated EClib library object.

easy-biologic cannot be imported as a package here: its ``__init__`` refuses anything but Windows, and its
``lib/ec_lib.py`` calls ``ctypes.WinDLL(<its bundled EClib64.dll>)`` at import. So, for one load:

* a bare package object stands in for ``easy_biologic`` (and ``easy_biologic.lib``), pointing at the installed
  directory, so the submodules import from the installed files without the package ``__init__`` running (its
  ``common.py``, which finds the DLL folder through ``pkg_resources``, runs as shipped);
* ``ctypes.WinDLL`` returns the simulated library for the duration of the import (the requested path is kept);
* everything is put back afterwards, so each load binds a fresh copy of the modules to its own library.

No easy-biologic file is edited or copied; its functions run exactly as on a Windows PC with the vendor DLL.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE = "easy_biologic"


@dataclass
class EasyBiologic:
    ec_lib: types.ModuleType
    data_parser: types.ModuleType
    technique_fields: types.ModuleType
    dll_paths: list[str]


def installed_directory() -> Path:
    spec = importlib.util.find_spec(PACKAGE)  # finds the top-level package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("easy-biologic is not installed; install the test extra: pip install '.[test]'")
    return Path(next(iter(spec.submodule_search_locations)))


def _bare_package(name: str, directory: Path) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = [str(directory)]
    module.__file__ = str(directory / "__init__.py")  # where pkg_resources looks for the package's resources
    module.__package__ = name
    return module


def load(library: Any) -> EasyBiologic:
    """easy-biologic's ``ec_lib``, ``data_parser`` and ``technique_fields`` with ``library`` as their DLL."""
    root = installed_directory()
    saved = {k: v for k, v in sys.modules.items() if k == PACKAGE or k.startswith(PACKAGE + ".")}
    had_windll, old_windll = hasattr(ctypes, "WinDLL"), getattr(ctypes, "WinDLL", None)
    asked: list[str] = []

    def win_dll(path: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(str(path))
        return library

    for key in saved:
        del sys.modules[key]
    sys.modules[PACKAGE] = _bare_package(PACKAGE, root)
    sys.modules[f"{PACKAGE}.lib"] = _bare_package(f"{PACKAGE}.lib", root / "lib")
    ctypes.WinDLL = win_dll  # type: ignore[attr-defined]
    try:
        ec_lib = importlib.import_module(f"{PACKAGE}.lib.ec_lib")
        data_parser = importlib.import_module(f"{PACKAGE}.lib.data_parser")
        technique_fields = importlib.import_module(f"{PACKAGE}.lib.technique_fields")
    finally:
        if had_windll:
            ctypes.WinDLL = old_windll  # type: ignore[attr-defined]
        else:
            del ctypes.WinDLL  # type: ignore[attr-defined]
        for key in [k for k in sys.modules if k == PACKAGE or k.startswith(PACKAGE + ".")]:
            del sys.modules[key]
        sys.modules.update(saved)
    return EasyBiologic(ec_lib, data_parser, technique_fields, asked)
