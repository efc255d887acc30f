"""An ordered fake EClib (PyMeasure's expected_protocol idea, at the DLL boundary).

Each expected call is ``(export name, handler)``; the handler receives the arguments exactly as the export would
(after ctypes conversion when the fake is exposed as C function pointers), asserts on them, fills the
out-parameters and returns the int code. Calls must arrive in the listed order; used as a context manager, the
fake checks when the block ends (without an exception) that every expected call came. The ``BL_Define*Parameter``
setters are answered by a built-in implementation (filling the ``TEccParam`` as the DLL does) and only logged,
since their order is the parameter table's.

:func:`as_c_library` wraps the fake in real C function pointers (``CFUNCTYPE`` with the header's signatures), so
the driver's calls cross a genuine ctypes foreign-function boundary: ``None`` becomes NULL, arrays decay to
pointers, ``TEccParams`` travels by value, and a float must be declared as a C float to get through.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from drivers.biologic.eclib import SIGNATURES
from drivers.biologic.structs import TEccParam

Handler = Callable[..., int]


def ok(*_args: Any) -> int:
    return 0


class OrderedEClib:
    def __init__(self, expected: Sequence[tuple[str, Handler]], *, absent: Sequence[str] = ()):
        self.expected = list(expected)
        self.position = 0
        self.log: list[str] = []
        self.absent = set(absent)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if not name.startswith("BL_") or name in self.absent:
            raise AttributeError(name)
        if name.startswith("BL_Define"):
            return lambda *args: self._define(name, *args)

        def call(*args: Any) -> Any:
            assert self.position < len(self.expected), f"unexpected extra call {name}{args}"
            want, handler = self.expected[self.position]
            assert name == want, f"call {self.position + 1}: expected {want}, got {name}{args}"
            self.position += 1
            self.log.append(name)
            return handler(*args)

        return call

    def _define(self, name: str, label: bytes, value: Any, index: int, param_ptr: Any) -> int:
        self.log.append(name)
        kind = {"BL_DefineIntParameter": 0, "BL_DefineBoolParameter": 1, "BL_DefineSglParameter": 2}[name]
        raw = struct.unpack("<i", struct.pack("<f", value))[0] if kind == 2 else int(value)
        param = param_ptr.contents if hasattr(param_ptr, "contents") else param_ptr[0]
        param.ParamStr, param.ParamType, param.ParamVal, param.ParamIndex = label, kind, raw, index
        return 0

    def __enter__(self) -> OrderedEClib:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:  # a failure inside the block is the one to report
            missing = [name for name, _ in self.expected[self.position :]]
            assert not missing, f"expected calls never came: {missing}"


def as_c_library(fake: OrderedEClib) -> SimpleNamespace:
    """The fake's exports as C function pointers with the header's prototypes (cdecl: the platform's ctypes)."""
    library = SimpleNamespace()
    keep: list[Any] = []
    for name, (argtypes, restype) in SIGNATURES.items():
        if name in fake.absent:
            continue
        prototype = ctypes.CFUNCTYPE(restype, *argtypes)

        def forward(*args: Any, _name: str = name) -> Any:
            return getattr(fake, _name)(*args)

        callback = prototype(forward)
        keep.append(callback)
        # a bare function pointer at the callback's address: what a DLL export is, with no Python signature left
        pointer = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.cast(callback, ctypes.c_void_p).value)
        setattr(library, name, pointer)
    library._keep = keep
    return library


def contents(pointer: Any) -> Any:
    """The structure behind an out-parameter, whether it arrived as ``ctypes.pointer(x)`` or through C."""
    return pointer.contents if hasattr(pointer, "contents") else pointer[0]


def ecc_params(params: Any) -> list[TEccParam]:
    """The ``TEccParam`` entries of a ``TEccParams`` received by value."""
    return [params.pParams[i] for i in range(params.len)]
