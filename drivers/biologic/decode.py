"""Decode ``BL_GetData`` buffers: pick the column layout from technique, process and board, rebuild time.

A chunk holds rows of one technique and one process only. Layouts come from the reference (section 4); a column
count that disagrees with the layout is an error, never silently re-aligned, because a shifted column turns
current into voltage without anyone noticing.

Time of a time-domain row is ``StartTime + TimeBase * ticks`` with ``StartTime`` (NaN read as 0) from the chunk's
``TDataInfos`` and ``TimeBase`` from the ``TCurrentValues`` of the same call; the two tick words are
``t_high, t_low`` on VMP3 and VMP-300 boards and low word first on DIGICORE (:mod:`drivers.biologic.numbers`).
Impedance rows (process 1) carry their time as a float in seconds since the technique's start, to which
``StartTime`` is added the same way. Float words are TI-DSP floats except on DIGICORE (IEEE-754); the whole chunk
is decoded at once with numpy, never with one DLL conversion call per word.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from drivers.base import DriverError
from drivers.biologic.codes import BoardType, FloatFormat, TechniqueId
from drivers.biologic.numbers import board_type, ticks, time_order, words_to_floats
from drivers.biologic.structs import TCurrentValues, TDataBuffer, TDataInfos

PhaseUnit = Literal["rad", "deg"]

_DC = ("Ewe", "I", "cycle")
_SCAN = ("I", "Ewe", "cycle")  # <I> and <Ewe>: averaged over the Begin/End_measuring window
_EIS1 = (
    "freq", "abs_Ewe", "abs_I", "phase_Zwe", "Ewe", "I", "blank1", "abs_Ece", "abs_Ice", "phase_Zce", "Ece",
    "blank2", "blank3", "t",
)  # fmt: skip


def layout(technique_id: int, process: int, board: BoardType) -> tuple[str, ...]:
    """Column names of one row, in the board's word order; raises :class:`DataLayoutError` for techniques this
    driver has no layout for."""
    vmp3 = board_type(board) is BoardType.ESSENTIAL
    time = time_order(board)
    tid = TechniqueId(technique_id) if technique_id in TechniqueId._value2member_map_ else None
    if tid is TechniqueId.OCV:
        return (*time, "Ewe", "Ece") if vmp3 else (*time, "Ewe")
    if tid in (TechniqueId.CA, TechniqueId.CP, TechniqueId.CALIMIT, TechniqueId.CPLIMIT):
        return (*time, *_DC)
    if tid in (TechniqueId.CV, TechniqueId.PDYNLIMIT):
        return (*time, "Ec", *_SCAN) if vmp3 else (*time, *_SCAN)
    if tid is TechniqueId.GDYNLIMIT:
        return (*time, "Ic", *_SCAN) if vmp3 else (*time, *_SCAN)
    if tid in (TechniqueId.PEIS, TechniqueId.GEIS):
        if process == 0:
            return (*time, "Ewe", "I")
        if process == 1:
            return (*_EIS1, "Irange") if vmp3 else _EIS1
    raise DataLayoutError(f"no data layout for technique ID {technique_id} process {process}; it is not one we load")


class DataLayoutError(DriverError):
    """The instrument sent data whose shape does not match the technique's documented layout."""


@dataclass(frozen=True, slots=True)
class DataChunk:
    """The rows of one ``BL_GetData`` call, in SI units, with where they came from."""

    technique_index: int
    technique_id: int
    process: int
    loop: int
    start_time: float
    t: np.ndarray
    voltage: np.ndarray
    current: np.ndarray
    cycle: np.ndarray | None = None
    frequency: np.ndarray | None = None
    z_real: np.ndarray | None = None
    z_imag: np.ndarray | None = None
    irq_skipped: int = 0

    def __len__(self) -> int:
        return len(self.t)


def decode(
    buffer: TDataBuffer,
    infos: TDataInfos,
    values: TCurrentValues,
    board: BoardType,
    *,
    float_format: FloatFormat | int | None = None,
    phase_unit: PhaseUnit = "rad",
) -> DataChunk:
    """One ``BL_GetData`` result as SI arrays. ``float_format`` is the channel's reported ``FloatFormat`` (``None``
    when the DLL did not report it); it must agree with ``board``, which decides (:func:`numbers.float_format_of`)."""
    rows, cols = int(infos.NbRows), int(infos.NbCols)
    names = layout(infos.TechniqueID, infos.ProcessIndex, board)
    if rows < 0:
        raise DataLayoutError(f"the instrument reported {rows} rows")
    if rows and cols != len(names):
        raise DataLayoutError(
            f"technique ID {infos.TechniqueID} process {infos.ProcessIndex} on a {board_type(board).name} board has "
            f"{len(names)} columns; the instrument sent {cols} (extra 'xctr' columns are not supported)"
        )
    if not rows:
        rows, cols = 0, len(names)
    if rows * cols > len(buffer.data):
        raise DataLayoutError(f"the instrument reported {rows} x {cols} words, more than one buffer holds")
    words = np.frombuffer(buffer, dtype=np.uint32, count=rows * cols).reshape(rows, cols)
    floats = words_to_floats(words, board, float_format)  # the integer columns are decoded too, and never read
    column = {name: i for i, name in enumerate(names)}
    start = float(infos.StartTime)
    start = 0.0 if math.isnan(start) else start

    def f(name: str) -> np.ndarray:
        return floats[:, column[name]]

    common = {
        "technique_index": int(infos.TechniqueIndex),
        "technique_id": int(infos.TechniqueID),
        "process": int(infos.ProcessIndex),
        "loop": int(infos.loop),
        "start_time": start,
        "irq_skipped": int(infos.IRQskipped),
    }
    if "freq" in column:
        magnitude = f("abs_Ewe") / f("abs_I")
        phase = f("phase_Zwe")
        if phase_unit == "deg":
            phase = np.deg2rad(phase)
        return DataChunk(
            **common,
            t=start + f("t"),
            voltage=f("Ewe"),
            current=f("I"),
            frequency=f("freq"),
            z_real=magnitude * np.cos(phase),
            z_imag=magnitude * np.sin(phase),
        )
    count = ticks(words[:, column["t_high"]], words[:, column["t_low"]], board)
    t = start + float(values.TimeBase) * count
    current = f("I") if "I" in column else np.zeros(rows)
    cycle = words[:, column["cycle"]].astype(np.int64) if "cycle" in column else None
    return DataChunk(**common, t=t, voltage=f("Ewe"), current=current, cycle=cycle)
