"""Biologic .mpr files from known points: a battery-cycling file (rest, galvanostatic discharge and charge, a
potentiostatic hold), an impedance (PEIS) file and a cyclic voltammetry file.

Format facts (as galvani 0.5.0 reads them): the file opens with ``BIO-LOGIC MODULAR FILE`` then 0x1A, padded with
spaces to 48 bytes, and four zero bytes; then modules, each ``MODULE`` and a header (short name 10 bytes, long name
25, data length u32, version u32, date 8 bytes ``mm/dd/yy``; from EC-Lab 11.50 on, 0xFFFFFFFF then the length,
the version, four more bytes, the date) and its data. The settings module (``VMP Set``) gives the start date; the
data module (``VMP data``) of version 2 holds the point count (u32), the column count (u8), the column ids (u16
each), zeros up to byte 405 (version 3: one more byte, 0x01), then the points, packed in column order; the flag
columns (mode, ox/red, error, control changes, Ns changes, counter inc.) share one byte at the place of the first
of them (mode in bits 0-1). The log module (``VMP LOG``) holds the start time as an OLE date (days since
1899-12-30, float64) at byte 465 and must carry the settings' date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import numpy as np

MAGIC = b"BIO-LOGIC MODULAR FILE\x1a".ljust(48) + b"\x00" * 4
START = datetime(2026, 11, 30, 9, 30, 0)

#: column id -> (galvani's name, numpy type) for the columns these files use
COLUMNS = {4: ("time/s", "<f8"), 5: ("control/V/mA", "<f4"), 6: ("Ewe/V", "<f4"), 8: ("I/mA", "<f4"),
           13: ("(Q-Qo)/mA.h", "<f8"), 19: ("control/V", "<f4"), 24: ("cycle number", "<f8"),
           32: ("freq/Hz", "<f4"), 33: ("|Ewe|/V", "<f4"), 37: ("Re(Z)/Ohm", "<f4"), 38: ("-Im(Z)/Ohm", "<f4"),
           76: ("<I>/mA", "<f4"), 77: ("<Ewe>/V", "<f4"), 131: ("Ns", "<u2")}
FLAG_IDS = (1, 2, 3, 21, 31, 65)  # mode, ox/red, error, control changes, Ns changes, counter inc.
MODE_GALVANO, MODE_POTENTIO, MODE_REST = 1, 2, 3


@dataclass(frozen=True)
class MprData:
    """The points of one file: its column ids (flags first) and one array per column, by galvani's name."""

    column_ids: tuple[int, ...]
    values: dict[str, np.ndarray]
    mode: np.ndarray

    def __len__(self) -> int:
        return len(self.mode)


def _module(short: bytes, data: bytes, version: int, date: bytes, *, new_header: bool = False) -> bytes:
    """A module; ``new_header``: the header of EC-Lab 11.50 and later (a maximum length of 0xFFFFFFFF before the
    length, and four more bytes after the version)."""
    size, ver = len(data).to_bytes(4, "little"), version.to_bytes(4, "little")
    if new_header:
        header = short.ljust(10) + b"".ljust(25) + b"\xff" * 4 + size + ver + (11).to_bytes(4, "little")
    else:
        header = short.ljust(10) + b"".ljust(25) + size + ver
    return b"MODULE" + header + date + data


def mpr_bytes(points: MprData, *, data_version: int = 2, new_header: bool = False) -> bytes:
    """The file; ``data_version`` 3 puts one more byte (0x01) before the points, as EC-Lab's later files do."""
    date = START.strftime("%m/%d/%y").encode()
    fields: list[tuple[str, str]] = [("flags", "u1")]
    for cid in points.column_ids:
        if cid not in FLAG_IDS:
            fields.append(COLUMNS[cid])
    rec = np.zeros(len(points), dtype=np.dtype(fields))
    rec["flags"] = points.mode & 0x03
    for name, _ in fields[1:]:
        rec[name] = points.values[name]
    ids = list(FLAG_IDS) + [c for c in points.column_ids if c not in FLAG_IDS]
    head = bytearray(406 if data_version == 3 else 405)
    if data_version == 3:
        head[405] = 1
    head[0:4] = len(points).to_bytes(4, "little")
    head[4] = len(ids)
    head[5:5 + 2 * len(ids)] = np.asarray(ids, dtype="<u2").tobytes()
    data = bytes(head) + rec.tobytes()
    log = bytearray(600)
    ole = (START - datetime(1899, 12, 30)).total_seconds() / 86400
    log[465:473] = np.float64(ole).tobytes()
    return (MAGIC + _module(b"VMP Set", bytes(64), 0, date, new_header=new_header)
            + _module(b"VMP data", data, data_version, date, new_header=new_header)
            + _module(b"VMP LOG", bytes(log), 0, date, new_header=new_header))


def write_mpr(path: Path, points: MprData, *, data_version: int = 2, new_header: bool = False) -> Path:
    path.write_bytes(mpr_bytes(points, data_version=data_version, new_header=new_header))
    return path


def cycling() -> MprData:
    """Ns 0: 3 rest points; Ns 1: -0.5 mA for 3 points; Ns 2: +0.5 mA for 3 points; Ns 3: a 3.8 V hold. Points every
    30 s; (Q-Qo) is the exact charge since the start (constant current between points)."""
    ns = np.repeat([0, 1, 2, 3], 3)
    mode = np.array([MODE_REST] * 3 + [MODE_GALVANO] * 6 + [MODE_POTENTIO] * 3)
    current = np.array([0, 0, 0, -0.5, -0.5, -0.5, 0.5, 0.5, 0.5, 0.2, 0.1, 0.05])
    time = 30.0 * np.arange(1, 13)
    volts = np.array([3.25, 3.25, 3.25, 3.1, 3.0, 2.9, 3.5, 3.6, 3.7, 3.8, 3.8, 3.8])
    control = np.array([0, 0, 0, -0.5, -0.5, -0.5, 0.5, 0.5, 0.5, 3.8, 3.8, 3.8])
    dq = current * np.r_[0.0, np.diff(time)] / 3600  # mA·h passed since the point before
    values = {"time/s": time, "control/V/mA": control, "Ewe/V": volts, "I/mA": current,
              "(Q-Qo)/mA.h": np.cumsum(dq), "cycle number": np.zeros(12), "Ns": ns}
    return MprData((1, 2, 3, 21, 31, 65, 4, 5, 6, 8, 13, 24, 131), values, mode)


def impedance() -> MprData:
    """A potentiostatic spectrum at OCV, 10 kHz to 1 Hz, 3 points per decade, of R0 = 10 ohm in series with a
    100 ohm || 10 uF element (Z = R0 + R/(1 + jwRC)), 10 mV amplitude."""
    freq = np.logspace(4, 0, 13)
    w = 2 * np.pi * freq
    z = 10.0 + 100.0 / (1 + 1j * w * 100.0 * 10e-6)
    n = len(freq)
    values = {"freq/Hz": freq, "Re(Z)/Ohm": z.real, "-Im(Z)/Ohm": -z.imag, "|Ewe|/V": np.full(n, 0.01),
              "time/s": 2.0 * np.arange(1, n + 1), "<Ewe>/V": np.full(n, 3.2), "<I>/mA": np.zeros(n),
              "cycle number": np.ones(n), "Ns": np.zeros(n)}
    return MprData((1, 2, 3, 21, 31, 65, 32, 37, 38, 33, 4, 77, 76, 24, 131), values,
                   np.full(n, MODE_POTENTIO))


def voltammetry() -> MprData:
    """Two cycles of a 10 mV/s sweep from 2.0 V up to 2.5 V, down to 1.5 V and back to 2.0 V, a point every 5 s
    (50 mV), current 1 mA per volt above 2.0 V."""
    corners = [2.0, 2.5, 1.5, 2.0]
    one = np.concatenate([np.linspace(a, b, round(abs(b - a) / 0.05) + 1)[1:] for a, b in pairwise(corners)])
    e = np.concatenate([one, one])
    n = len(e)
    values = {"time/s": 5.0 * np.arange(1, n + 1), "control/V": e, "Ewe/V": e, "I/mA": (e - 2.0),
              "cycle number": np.repeat([1.0, 2.0], len(one)), "Ns": np.zeros(n)}
    return MprData((1, 2, 3, 21, 31, 65, 4, 19, 6, 8, 24, 131), values, np.full(n, MODE_POTENTIO))
