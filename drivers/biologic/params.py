"""Technique parameter tables and their encoding into (label, type, value, index) entries.

Each technique declares its labels with the vendor's type and whether the label is a per-step array, from the
reference (section 3). The setter used for a value is chosen by the *declared* type, never guessed from the
Python value: a float sent through the int setter silently sets something else on the instrument. Unknown labels,
wrong types and oversized arrays are refused here, before the DLL sees anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from drivers.biologic.codes import ParamType, TechniqueId

B, INT, S = ParamType.BOOLEAN, ParamType.INT32, ParamType.SINGLE


@dataclass(frozen=True, slots=True)
class ParamSpec:
    label: str
    kind: ParamType
    per_step: bool = False


@dataclass(frozen=True, slots=True)
class TechniqueSpec:
    """One ``.ecc`` technique: its file stem, data-layout ID, labels, and the largest per-step array."""

    name: str
    ecc_stem: str
    technique_id: TechniqueId
    params: tuple[ParamSpec, ...]
    max_steps: int = 1

    def param(self, label: str) -> ParamSpec | None:
        return next((p for p in self.params if p.label == label), None)


_HARDWARE = (ParamSpec("I_Range", INT), ParamSpec("E_Range", INT), ParamSpec("Bandwidth", INT))
_LIMITS = (
    *(ParamSpec(f"Test{n}_{field}", kind, True) for n in (1, 2, 3) for field, kind in (("Config", INT), ("Value", S))),
    ParamSpec("Exit_Cond", INT, True),
)

OCV = TechniqueSpec(
    "OCV", "ocv", TechniqueId.OCV,
    (ParamSpec("Rest_time_T", S), ParamSpec("Record_every_dE", S), ParamSpec("Record_every_dT", S), *_HARDWARE),
)  # fmt: skip
_CA = (
    ParamSpec("Voltage_step", S, True), ParamSpec("vs_initial", B, True), ParamSpec("Duration_step", S, True),
    ParamSpec("Step_number", INT), ParamSpec("Record_every_dT", S), ParamSpec("Record_every_dI", S),
    ParamSpec("N_Cycles", INT), *_HARDWARE,
)  # fmt: skip
_CP = (
    ParamSpec("Current_step", S, True), ParamSpec("vs_initial", B, True), ParamSpec("Duration_step", S, True),
    ParamSpec("Step_number", INT), ParamSpec("Record_every_dT", S), ParamSpec("Record_every_dE", S),
    ParamSpec("N_Cycles", INT), *_HARDWARE,
)  # fmt: skip
CA = TechniqueSpec("CA", "ca", TechniqueId.CA, _CA, max_steps=99)
CP = TechniqueSpec("CP", "cp", TechniqueId.CP, _CP, max_steps=99)
CALIMIT = TechniqueSpec("CALIMIT", "calimit", TechniqueId.CALIMIT, _CA + _LIMITS, max_steps=20)
CPLIMIT = TechniqueSpec("CPLIMIT", "cplimit", TechniqueId.CPLIMIT, _CP + _LIMITS, max_steps=20)
_EIS_COMMON = (
    ParamSpec("vs_initial", B), ParamSpec("vs_final", B), ParamSpec("Duration_step", S), ParamSpec("Step_number", INT),
    ParamSpec("Record_every_dT", S), ParamSpec("Final_frequency", S), ParamSpec("Initial_frequency", S),
    ParamSpec("sweep", B), ParamSpec("Frequency_number", INT), ParamSpec("Average_N_times", INT),
    ParamSpec("Correction", B), ParamSpec("Wait_for_steady", S), *_HARDWARE,
)  # fmt: skip
PEIS = TechniqueSpec(
    "PEIS", "peis", TechniqueId.PEIS,
    (ParamSpec("Initial_Voltage_step", S), ParamSpec("Final_Voltage_step", S), ParamSpec("Record_every_dI", S),
     ParamSpec("Amplitude_Voltage", S), *_EIS_COMMON),
)  # fmt: skip
GEIS = TechniqueSpec(
    "GEIS", "geis", TechniqueId.GEIS,
    (ParamSpec("Initial_Current_step", S), ParamSpec("Final_Current_step", S), ParamSpec("Record_every_dE", S),
     ParamSpec("Amplitude_Current", S), *_EIS_COMMON),
)  # fmt: skip
CV = TechniqueSpec(
    "CV", "cv", TechniqueId.CV,
    (ParamSpec("vs_initial", B, True), ParamSpec("Voltage_step", S, True), ParamSpec("Scan_Rate", S, True),
     ParamSpec("Scan_number", INT), ParamSpec("Record_every_dE", S), ParamSpec("Average_over_dE", B),
     ParamSpec("N_Cycles", INT), ParamSpec("Begin_measuring_I", S), ParamSpec("End_measuring_I", S), *_HARDWARE),
    max_steps=5,
)  # fmt: skip
VSCANLIMIT = TechniqueSpec(
    "VSCANLIMIT", "vscanlimit", TechniqueId.VSCANLIMIT,
    (ParamSpec("Voltage_step", S, True), ParamSpec("vs_initial", B, True), ParamSpec("Scan_Rate", S, True),
     ParamSpec("Scan_number", INT), ParamSpec("Record_every_dE", S), ParamSpec("Begin_measuring_I", S),
     ParamSpec("End_measuring_I", S), ParamSpec("N_Cycles", INT), *_HARDWARE, *_LIMITS),
    max_steps=20,
)  # fmt: skip
LOOP = TechniqueSpec(
    "LOOP", "loop", TechniqueId.LOOP, (ParamSpec("loop_N_times", INT), ParamSpec("protocol_number", INT))
)

TECHNIQUES: dict[str, TechniqueSpec] = {
    t.name: t for t in (OCV, CA, CP, CALIMIT, CPLIMIT, PEIS, GEIS, CV, VSCANLIMIT, LOOP)
}


class ParameterError(ValueError):
    """A technique parameter the instrument would refuse; names the technique and label."""


@dataclass(frozen=True, slots=True)
class ParamValue:
    """One ``TEccParam`` to define: the label, its declared type, the value and its 0-based array index."""

    label: str
    kind: ParamType
    value: float | int | bool
    index: int


def _check_type(spec: TechniqueSpec, p: ParamSpec, value: object) -> float | int | bool:
    where = f"{spec.name} parameter '{p.label}'"
    if p.kind is ParamType.BOOLEAN:
        if not isinstance(value, bool):
            raise ParameterError(f"{where} is a boolean; found {value!r}")
        return value
    if isinstance(value, bool):
        raise ParameterError(f"{where} is {p.kind.name.lower()}, not a boolean; found {value!r}")
    if p.kind is ParamType.INT32:
        if not isinstance(value, int) or not -(2**31) <= value < 2**31:
            raise ParameterError(f"{where} is a 32-bit integer; found {value!r}")
        return value
    if not isinstance(value, int | float):
        raise ParameterError(f"{where} is a single-precision number; found {value!r}")
    return float(value)


def encode(spec: TechniqueSpec, values: Mapping[str, object]) -> tuple[ParamValue, ...]:
    """Flatten ``values`` (scalars, or sequences for per-step labels) into ``ParamValue`` entries in label order."""
    out: list[ParamValue] = []
    for label, value in values.items():
        p = spec.param(label)
        if p is None:
            known = ", ".join(q.label for q in spec.params)
            raise ParameterError(f"{spec.name} has no parameter '{label}' (labels are case-sensitive); known: {known}")
        if p.per_step:
            if isinstance(value, str | bytes) or not isinstance(value, Sequence):
                raise ParameterError(f"{spec.name} parameter '{label}' is a per-step array; found {value!r}")
            if not 1 <= len(value) <= spec.max_steps:
                raise ParameterError(
                    f"{spec.name} parameter '{label}' takes 1 to {spec.max_steps} entries; found {len(value)}"
                )
            out.extend(ParamValue(label, p.kind, _check_type(spec, p, v), i) for i, v in enumerate(value))
        else:
            out.append(ParamValue(label, p.kind, _check_type(spec, p, value), 0))
    return tuple(out)
