"""Encode simulated samples into the uint32 words ``BL_GetData`` returns, per technique, process and board.

Time-domain rows carry time as two words counting ticks of the channel's time base since the technique started;
impedance rows (process 1) carry it as a single-precision float in seconds since the technique started. Singles
are written in the board's own format (:mod:`simulators.biologic.dspfloat`): TI DSP floats on ESSENTIAL and PREMIUM
boards, IEEE-754 bits on DIGICORE, whose two time words also come low word first. ``columns`` names the columns in
the reference's table order (``t_high, t_low, ...``); on DIGICORE the first time column holds the low word.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from simulators.biologic.dspfloat import float_words, time_words
from simulators.biologic.firmware import ESSENTIAL

_DC = ("t_high", "t_low", "Ewe", "I", "cycle")
_EIS1 = (
    "freq", "abs_Ewe", "abs_I", "phase_Zwe", "Ewe", "I", "blank", "abs_Ece", "abs_Ice", "phase_Zce", "Ece",
    "blank", "blank", "t",
)  # fmt: skip
_INTS = frozenset({"t_high", "t_low", "cycle", "Irange"})


def columns(technique_id: int, process: int, board: int) -> tuple[str, ...]:
    vmp3 = board == ESSENTIAL
    if technique_id == 100:
        return ("t_high", "t_low", "Ewe", "Ece") if vmp3 else ("t_high", "t_low", "Ewe")
    if technique_id in (101, 102, 155, 157):
        return _DC
    if technique_id in (103, 158):
        return ("t_high", "t_low", "Ec", "I", "Ewe", "cycle") if vmp3 else ("t_high", "t_low", "I", "Ewe", "cycle")
    if technique_id in (104, 107):
        if process == 0:
            return ("t_high", "t_low", "Ewe", "I")
        return (*_EIS1, "Irange") if vmp3 else _EIS1
    raise ValueError(f"technique {technique_id} produces no data")


def ticks(t: np.ndarray, timebase: float) -> np.ndarray:
    """Whole periods of the float32 time base elapsed at ``t`` (host time = start + tb * ticks).

    A counter counts whole periods, so this floors: a row is never stamped after the true time, and the last row
    of a technique never after the next technique's ``StartTime``, which keeps record times monotonic.
    """
    tb = float(np.float32(timebase))
    return np.floor(np.asarray(t, dtype=np.float64) / tb + 1e-9).astype(np.uint64)


def encode_rows(names: tuple[str, ...], data: Mapping[str, np.ndarray], n: int, board: int) -> np.ndarray:
    """An (n, len(names)) uint32 array as the channel of ``board`` sends it; ``t_ticks`` in ``data`` feeds the two
    time words, missing singles are written as the board's zero, blank columns stay raw zero words."""
    out = np.zeros((n, len(names)), dtype=np.uint32)
    if "t_high" in names:
        out[:, names.index("t_high")], out[:, names.index("t_low")] = time_words(data["t_ticks"], board)
    for i, name in enumerate(names):
        if name in ("t_high", "t_low", "blank"):
            continue
        if name in _INTS:
            out[:, i] = np.asarray(data.get(name, np.zeros(n)), dtype=np.int64).astype(np.uint32)
        else:
            out[:, i] = float_words(np.asarray(data[name], dtype=np.float64) if name in data else np.zeros(n), board)
    return out
