"""What the simulated instrument knows as firmware: error codes, technique files, parameter tables, layouts.

These are the instrument's own facts (reference sections 2.5-4), kept separate from the driver's copy on purpose:
the simulator decodes what it is sent the way the firmware would, and refuses what the firmware would refuse.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass

# return codes (reference section 2.5)
OK = 0
NOT_CONNECTED = -1
CHANNEL_NOT_PLUGGED = -3
INVALID_PARAMETERS = -4
FILE_NOT_EXISTS = -5
FUNCTION_FAILED = -6
NO_CHANNEL_SELECTED = -7
ECLAB_LOADED = -9
CHANNEL_RUNNING = -13
DEVICE_NOT_ALLOWED = -14
UPDATE_PARAMETERS = -15
CONNECTION_FAILED = -201
FIRM_FILE_NOT_EXISTS = -300
FIRM_INVALID_FILE = -302
XIL_FILE_NOT_EXISTS = -304
XIL_INVALID_FILE = -306
FIRMWARE_NOT_LOADED = -308
FIRMWARE_INCOMPATIBLE = -309
ECC_FILE_NOT_EXISTS = -400
INCOMPATIBLE_ECC = -401
LOAD_TECHNIQUE_FAILED = -403

# channel states, firmware codes, board types
STOP, RUN, PAUSE = 0, 1, 2
FIRMWARE_NONE, FIRMWARE_ECLAB, FIRMWARE_KERNEL = 0, 1, 5
ESSENTIAL, PREMIUM, DIGICORE = 1, 2, 3

KERNEL_FILES = {ESSENTIAL: "kernel.bin", PREMIUM: "kernel4.bin", DIGICORE: "kernel.bin"}
"""The kernel each board loads when ``BL_LoadFirmware`` gets NULL (the vendor examples' choice)."""
KERNELS_ACCEPTED = {ESSENTIAL: {"kernel.bin"}, PREMIUM: {"kernel4.bin"}, DIGICORE: {"kernel.bin", "kernel5.bin"}}
"""Which kernel DIGICORE needs is open (reference 2.1 item 7 and open question 4: the examples name kernel.bin,
packages since 6.08 ship kernel5.bin next to the x5.ecc files), so a DIGICORE channel takes either; the other boards
refuse any kernel but their own."""
FPGA_FILES = {ESSENTIAL: "Vmp_ii_0437_a6.xlx", PREMIUM: "vmp_iv_0395_aa.xlx", DIGICORE: ""}
SHIPPED_FIRMWARE = frozenset({"kernel.bin", "kernel4.bin", "kernel5.bin", "Vmp_ii_0437_a6.xlx", "vmp_iv_0395_aa.xlx"})
ECC_SUFFIX = {ESSENTIAL: "", PREMIUM: "4", DIGICORE: "5"}
FPGA_VERSION = {ESSENTIAL: 0x0437, PREMIUM: 0x0395, DIGICORE: 0}
"""``XilinxVersion`` / ``BL_GetFPGAVer``: the revision in the FPGA file's name (``Vmp_ii_0437_a6.xlx``); none on
DIGICORE, which has no FPGA file."""

INT, BOOL, SINGLE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class TechniqueTable:
    technique_id: int
    labels: dict[str, tuple[int, bool]]  # label -> (type, per-step array)
    required: frozenset[str]
    max_steps: int = 1
    galvanostatic: bool = False


_HW = {"I_Range": (INT, False), "E_Range": (INT, False), "Bandwidth": (INT, False), "tb": (SINGLE, False),
       "xctr": (INT, False)}
"""Hardware settings most techniques take (reference 3). ``tb`` (time base) arrives as int or single (the kbio
examples disagree) and is accepted, not applied: the channel keeps its own time base. ``xctr`` selects extra data
columns; only 0 (none) is simulated."""
_EITHER_NUMBER = frozenset({"tb"})
_LIM = {f"Test{n}_{f}": (k, True) for n in (1, 2, 3) for f, k in (("Config", INT), ("Value", SINGLE))}
_LIM["Exit_Cond"] = (INT, True)
_CA = {
    "Voltage_step": (SINGLE, True), "vs_initial": (BOOL, True), "Duration_step": (SINGLE, True),
    "Step_number": (INT, False), "Record_every_dT": (SINGLE, False), "Record_every_dI": (SINGLE, False),
    "N_Cycles": (INT, False), **_HW,
}  # fmt: skip
_CP = {
    "Current_step": (SINGLE, True), "vs_initial": (BOOL, True), "Duration_step": (SINGLE, True),
    "Step_number": (INT, False), "Record_every_dT": (SINGLE, False), "Record_every_dE": (SINGLE, False),
    "N_Cycles": (INT, False), **_HW,
}  # fmt: skip
_EIS = {
    "vs_initial": (BOOL, False), "vs_final": (BOOL, False), "Duration_step": (SINGLE, False),
    "Step_number": (INT, False), "Record_every_dT": (SINGLE, False), "Final_frequency": (SINGLE, False),
    "Initial_frequency": (SINGLE, False), "sweep": (BOOL, False), "Frequency_number": (INT, False),
    "Average_N_times": (INT, False), "Correction": (BOOL, False), "Wait_for_steady": (SINGLE, False), **_HW,
}  # fmt: skip
_EIS_REQ = frozenset({"Initial_frequency", "Final_frequency", "Frequency_number"})

TECHNIQUES: dict[str, TechniqueTable] = {
    "ocv": TechniqueTable(
        100, {"Rest_time_T": (SINGLE, False), "Record_every_dE": (SINGLE, False), "Record_every_dT": (SINGLE, False),
              **_HW}, frozenset({"Rest_time_T"})),
    "ca": TechniqueTable(101, _CA, frozenset({"Voltage_step", "Duration_step", "Step_number"}), 99),
    "cp": TechniqueTable(102, _CP, frozenset({"Current_step", "Duration_step", "Step_number", "I_Range"}), 99, True),
    "calimit": TechniqueTable(157, {**_CA, **_LIM}, frozenset({"Voltage_step", "Duration_step", "Step_number"}), 20),
    "cplimit": TechniqueTable(
        155, {**_CP, **_LIM}, frozenset({"Current_step", "Duration_step", "Step_number", "I_Range"}), 20, True),
    "peis": TechniqueTable(
        104, {**_EIS, "Initial_Voltage_step": (SINGLE, False), "Final_Voltage_step": (SINGLE, False),
              "Record_every_dI": (SINGLE, False), "Amplitude_Voltage": (SINGLE, False)},
        _EIS_REQ | {"Amplitude_Voltage"}),
    "geis": TechniqueTable(
        107, {**_EIS, "Initial_Current_step": (SINGLE, False), "Final_Current_step": (SINGLE, False),
              "Record_every_dE": (SINGLE, False), "Amplitude_Current": (SINGLE, False)},
        _EIS_REQ | {"Amplitude_Current", "I_Range"}, 1, True),
    "cv": TechniqueTable(
        103, {"vs_initial": (BOOL, True), "Voltage_step": (SINGLE, True), "Scan_Rate": (SINGLE, True),
              "Scan_number": (INT, False), "Record_every_dE": (SINGLE, False), "Average_over_dE": (BOOL, False),
              "N_Cycles": (INT, False), "Begin_measuring_I": (SINGLE, False), "End_measuring_I": (SINGLE, False),
              **_HW}, frozenset({"Voltage_step", "Scan_Rate", "Scan_number"}), 5),
    "vscanlimit": TechniqueTable(
        158, {"Voltage_step": (SINGLE, True), "vs_initial": (BOOL, True), "Scan_Rate": (SINGLE, True),
              "Scan_number": (INT, False), "Record_every_dE": (SINGLE, False), "Begin_measuring_I": (SINGLE, False),
              "End_measuring_I": (SINGLE, False), "N_Cycles": (INT, False), **_HW, **_LIM},
        frozenset({"Voltage_step", "Scan_Rate", "Scan_number"}), 20),
    "loop": TechniqueTable(150, {"loop_N_times": (INT, False), "protocol_number": (INT, False)},
                           frozenset({"loop_N_times", "protocol_number"})),
}  # fmt: skip

I_RANGE_AUTO = 12
E_RANGE_FULL_SCALE = {0: 2.5, 1: 5.0, 2: 10.0, 3: 10.0}

# limit tests (reference sections 3.4 and 3.9)
LIMIT_TESTS = 3
LIMIT_VARIABLES = {0: "Ewe", 1: "AUX1", 2: "AUX2", 3: "I"}
EXIT_NEXT_STEP, EXIT_NEXT_TECHNIQUE, EXIT_STOP = 0, 1, 2


@dataclass(frozen=True, slots=True)
class LimitWord:
    """One decoded ``TestN_Config`` word: bit 0 active, bit 1 AND (else OR) with the tests before it, bits 2-4
    the comparison (0 "<", 1 ">"), bits 5 and up the variable (0 Ewe, 1 AUX1, 2 AUX2, 3 I)."""

    variable: int
    greater: bool
    and_previous: bool

    @classmethod
    def decode(cls, config: int) -> LimitWord | None:
        """``None`` for an inactive test; :class:`Refused` for a comparison or variable the reference lacks."""
        if not config & 1:
            return None
        comparison, variable = (config >> 2) & 0b111, (config >> 5) & 0x7FFFFFF
        if comparison > 1 or variable not in LIMIT_VARIABLES:
            raise Refused(INVALID_PARAMETERS, f"limit test config {config}: comparison {comparison} or variable "
                          f"{variable} is not defined")  # fmt: skip
        return cls(variable, comparison == 1, bool(config & 0b10))


class Refused(Exception):
    """The firmware refuses a request; carries the EClib code to return and a message for ``BL_GetMessage``."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class LoadedTechnique:
    """A technique as the firmware holds it after ``BL_LoadTechnique``: decoded values keyed by label."""

    stem: str
    table: TechniqueTable
    values: dict[str, object]

    def scalar(self, label: str, default: object = None) -> object:
        value = self.values.get(label, default)
        return value[0] if isinstance(value, list) else value

    def array(self, label: str, n: int, default: object = None) -> list[object]:
        value = self.values.get(label)
        if value is None:
            return [default] * n
        return list(value) if isinstance(value, list) else [value] * n


def decode_value(kind: int, raw: int) -> object:
    if kind == SINGLE:
        return struct.unpack("<f", struct.pack("<i", raw))[0]
    if kind == BOOL:
        return bool(raw)
    return int(raw)


def parse_technique(stem: str, params: ctypes.Array) -> LoadedTechnique:  # type: ignore[type-arg]
    """Decode the ``TEccParam`` array for technique ``stem``; :class:`Refused` (-4) for anything invalid."""
    values = decode_params(stem, params)
    validate(stem, values)
    return LoadedTechnique(stem, TECHNIQUES[stem], values)


def update_values(technique: LoadedTechnique, params: ctypes.Array) -> dict[str, object]:  # type: ignore[type-arg]
    """The technique's values with ``BL_UpdateParameters``' entries laid over them, validated as a whole.

    Only the entries sent change (one step of a per-step array at a time); :class:`Refused` if the result is not
    a technique the firmware would have accepted at load time.
    """
    merged: dict[str, object] = {k: list(v) if isinstance(v, list) else v for k, v in technique.values.items()}
    for label, value in decode_params(technique.stem, params).items():
        old = merged.get(label)
        if isinstance(value, list) and isinstance(old, list):
            old.extend([None] * (len(value) - len(old)))
            for index, item in enumerate(value):
                if item is not None:
                    old[index] = item
        else:
            merged[label] = value
    validate(technique.stem, merged)
    return merged


def decode_params(stem: str, params: ctypes.Array) -> dict[str, object]:  # type: ignore[type-arg]
    """Labels, types and indices of a ``TEccParam`` array checked against the technique's table and decoded."""
    table = TECHNIQUES[stem]
    values: dict[str, object] = {}
    for p in params:
        label = p.ParamStr.decode("ascii", "replace")
        spec = table.labels.get(label)
        if spec is None:
            raise Refused(INVALID_PARAMETERS, f"{stem}: unknown parameter '{label}'")
        kind, per_step = spec
        if label in _EITHER_NUMBER and p.ParamType in (INT, SINGLE):
            kind = p.ParamType
        if p.ParamType != kind:
            raise Refused(INVALID_PARAMETERS, f"{stem}: parameter '{label}' has type {p.ParamType}, expected {kind}")
        value = decode_value(kind, p.ParamVal)
        if per_step:
            if not 0 <= p.ParamIndex < table.max_steps:
                raise Refused(INVALID_PARAMETERS, f"{stem}: '{label}' index {p.ParamIndex} out of range")
            array = values.setdefault(label, [])
            assert isinstance(array, list)
            array.extend([None] * (p.ParamIndex + 1 - len(array)))
            array[p.ParamIndex] = value
        else:
            values[label] = value
    return values


def validate(stem: str, values: dict[str, object]) -> None:
    """Refuse a technique the firmware would not run: missing labels, ranges, gaps in step arrays, limit words."""
    table = TECHNIQUES[stem]
    missing = sorted(table.required - values.keys())
    if missing:
        raise Refused(INVALID_PARAMETERS, f"{stem}: missing parameters {', '.join(missing)}")
    if table.galvanostatic and values.get("I_Range") == I_RANGE_AUTO:
        raise Refused(INVALID_PARAMETERS, f"{stem}: I Auto-range is not allowed for a galvanostatic technique")
    if values.get("xctr", 0) != 0:
        raise Refused(INVALID_PARAMETERS, f"{stem}: xctr {values['xctr']}: extra data columns are not simulated")
    steps = values.get("Step_number")
    if isinstance(steps, int) and not 0 <= steps < table.max_steps:
        raise Refused(INVALID_PARAMETERS, f"{stem}: Step_number {steps} out of range 0..{table.max_steps - 1}")
    if stem == "cv" and (values.get("Scan_number") != 2 or len(values["Voltage_step"]) != 5):  # type: ignore[arg-type]
        raise Refused(INVALID_PARAMETERS, "cv: Scan_number must be 2 with 5 Voltage_step entries")
    for label, (_, per_step) in table.labels.items():
        value = values.get(label)
        if per_step and isinstance(value, list) and any(v is None for v in value):
            raise Refused(INVALID_PARAMETERS, f"{stem}: '{label}' has gaps in its step array")
    _check_limits(stem, values)


def _check_limits(stem: str, values: dict[str, object]) -> None:
    """Refuse test words and exit codes the reference does not define, rather than guess what they would do."""
    for n in range(1, LIMIT_TESTS + 1):
        for config in values.get(f"Test{n}_Config", []):  # type: ignore[union-attr]
            try:
                LimitWord.decode(int(config))  # type: ignore[call-overload]
            except Refused as refusal:
                raise Refused(refusal.code, f"{stem}: Test{n}_Config: {refusal}") from None
    for code in values.get("Exit_Cond", []):  # type: ignore[union-attr]
        if code not in (EXIT_NEXT_STEP, EXIT_NEXT_TECHNIQUE, EXIT_STOP):
            raise Refused(INVALID_PARAMETERS, f"{stem}: Exit_Cond {code} is not 0, 1 or 2")
