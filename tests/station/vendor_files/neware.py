"""Neware files from known points: an .nda of format version 29 (BTS 8), one of version 130 (BTS 9, records of
version 19), and an .ndax whose data.ndc is of format version 2, file type 1 (the main records, with step, cycle,
capacities and time in each record).

Format facts (as fastnda 1.3.1 reads them):

* .nda: ``NEWARE`` at byte 0, the format version in byte 14, at bytes 16-19 the offset of a block whose bytes 26-29
  hold the channel's current range (signed). Version 29 records are 86 bytes and start with identifier 85 (0x55);
  the reader finds the first record by the bytes ``55 00 01 00 00 00`` (identifier, a spare byte, record index 1).
* .ndax: a zip archive; ``data.ndc`` starts with its file type (byte 0) and version (byte 2). Version 2 file type 1:
  a 512-byte header page, then 512-byte pages of five 94-byte records from byte 5 of each page; rows of index 0 are
  empty.
* Both: voltage in 0.1 mV (int32), step time in ms, cycle counted from 0, current and the four per-step capacity
  and energy counters (charge and discharge apart, both positive) as integers times a multiplier that the
  record's current range sets (range -10: 1e-4 mA, so capacities count 1e-4 mA·s and energies 1e-4 mW·s), and
  the record's wall-clock time as year, month, day, hour, minute, second.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

RANGE = -10
MULTIPLIER = 1e-4  # mA per count at RANGE
START = datetime(2026, 11, 30, 8, 0, 0)

#: the Neware step type codes the tests use
REST, CC_DCHG, CC_CHG, CCCV_CHG = 4, 2, 1, 7


@dataclass(frozen=True)
class Point:
    """One record as the instrument saw it (vendor units)."""

    step: int
    step_type: int
    cycle: int  # as the user sees it, from 1 (the file stores it from 0)
    step_time_s: float
    test_time_s: float
    voltage_v: float
    current_ma: float
    charge_mah: float
    discharge_mah: float
    charge_mwh: float
    discharge_mwh: float

    @property
    def when(self) -> datetime:
        return START + timedelta(seconds=self.test_time_s)


def cycling_points() -> list[Point]:
    """A rest, then two cycles of a 1 mA discharge and a 1 mA charge, then a CCCV charge to 4.2 V; capacity and
    energy integrate the current exactly (constant within the step, the voltage known at each record)."""
    points: list[Point] = []
    test_time = 0.0

    def step(number: int, kind: int, cycle: int, current_ma: float, volts: list[float], every: float = 60.0) -> None:
        nonlocal test_time
        energy = 0.0
        last_v = None
        for k, v in enumerate(volts, start=1):
            t = every * k
            test_time += every
            capacity = abs(current_ma) * t / 3600
            energy += abs(current_ma) * (v + (last_v if last_v is not None else v)) / 2 * every / 3600
            last_v = v
            charge = current_ma > 0
            points.append(Point(number, kind, cycle, t, test_time, v, current_ma,
                                capacity if charge else 0.0, 0.0 if charge else capacity,
                                energy if charge else 0.0, 0.0 if charge else energy))

    step(1, REST, 1, 0.0, [3.0512, 3.0513, 3.0514], every=10.0)
    for cycle in (1, 2):
        step(2, CC_DCHG, cycle, -1.0, [2.9, 2.5, round(2.1 - 0.1 * cycle, 4)])
        step(3, CC_CHG, cycle, 1.0, [3.4, 3.8, 4.1])
    step(4, CCCV_CHG, 2, 0.5, [4.15, 4.2, 4.2])
    return points


def _counts(value: float) -> int:
    return round(value / MULTIPLIER)


def _fill(rec: np.ndarray, points: list[Point]) -> None:
    if "identifier" in (rec.dtype.names or ()):
        rec["identifier"] = 85
    rec["index"] = np.arange(1, len(points) + 1)
    rec["cycle"] = [p.cycle - 1 for p in points]
    rec["step_index"] = [p.step for p in points]
    rec["step_type"] = [p.step_type for p in points]
    rec["step_time_ms"] = [round(p.step_time_s * 1000) for p in points]
    rec["voltage"] = [round(p.voltage_v * 10000) for p in points]
    rec["current"] = [_counts(p.current_ma) for p in points]
    rec["chg_cap"] = [_counts(p.charge_mah * 3600) for p in points]
    rec["dchg_cap"] = [_counts(p.discharge_mah * 3600) for p in points]
    rec["chg_eng"] = [_counts(p.charge_mwh * 3600) for p in points]
    rec["dchg_eng"] = [_counts(p.discharge_mwh * 3600) for p in points]
    for name, attr in (("year", "year"), ("month", "month"), ("day", "day"), ("hour", "hour"),
                       ("minute", "minute"), ("second", "second")):
        rec[name] = [getattr(p.when, attr) for p in points]
    rec["range"] = RANGE


NDA29_RECORD = np.dtype([
    ("identifier", "u1"), ("spare", "u1"), ("index", "<u4"), ("cycle", "<u4"), ("step_index", "<u2"),
    ("step_type", "u1"), ("step_count", "u1"), ("step_time_ms", "<u8"), ("voltage", "<i4"), ("current", "<i4"),
    ("spare2", "V8"), ("chg_cap", "<i8"), ("dchg_cap", "<i8"), ("chg_eng", "<i8"), ("dchg_eng", "<i8"),
    ("year", "<u2"), ("month", "u1"), ("day", "u1"), ("hour", "u1"), ("minute", "u1"), ("second", "u1"),
    ("spare3", "u1"), ("range", "<i4"), ("spare4", "V4")])
assert NDA29_RECORD.itemsize == 86

NDC2_RECORD = np.dtype([
    ("spare", "V8"), ("index", "<u4"), ("cycle", "<u4"), ("step_index", "u1"), ("step_type", "u1"),
    ("spare2", "V5"), ("step_time_ms", "<u8"), ("voltage", "<i4"), ("current", "<i4"), ("spare3", "V4"),
    ("chg_cap", "<i8"), ("dchg_cap", "<i8"), ("chg_eng", "<i8"), ("dchg_eng", "<i8"), ("year", "<u2"),
    ("month", "u1"), ("day", "u1"), ("hour", "u1"), ("minute", "u1"), ("second", "u1"), ("range", "<i4"),
    ("spare4", "V8")])
assert NDC2_RECORD.itemsize == 94


def nda29_bytes(points: list[Point], version: int = 29) -> bytes:
    header = bytearray(1024)
    header[:6] = b"NEWARE"
    header[14] = version
    block = 256  # where the channel block (with the range) sits
    header[16:20] = block.to_bytes(4, "little")
    header[block + 26:block + 30] = RANGE.to_bytes(4, "little", signed=True)
    rec = np.zeros(len(points), dtype=NDA29_RECORD)
    _fill(rec, points)
    steps = [p.step for p in points]
    rec["step_count"] = np.cumsum(np.r_[1, np.diff(steps) != 0]) % 256
    return bytes(header) + rec.tobytes()


def ndc2_bytes(points: list[Point]) -> bytes:
    page, rows = 512, (512 - 5 - 1) // NDC2_RECORD.itemsize
    header = bytearray(page)
    header[0], header[2] = 1, 2  # file type 1 (main data), version 2
    rec = np.zeros(len(points), dtype=NDC2_RECORD)
    _fill(rec, points)
    out = bytearray(header)
    for at in range(0, len(rec), rows):
        body = bytearray(page)
        chunk = rec[at:at + rows].tobytes()
        body[5:5 + len(chunk)] = chunk
        out += body
    return bytes(out)


BTS9_RECORD = np.dtype([
    ("identifier", "<u2"), ("step_index", "u1"), ("step_type", "u1"), ("spare", "V4"), ("index", "<u4"),
    ("total_s", "<u4"), ("total_ns", "<u4"), ("current_ma", "<f4"), ("voltage_v", "<f4"), ("capacity_mas", "<f4"),
    ("energy_mws", "<f4"), ("cycle", "<u4"), ("spare2", "V4"), ("unix_s", "<u4"), ("unix_ns", "<u4")])
assert BTS9_RECORD.itemsize == 52


def bts9_bytes(points: list[Point]) -> bytes:
    """An .nda of format version 130 (BTS 9) with records of version 19, 52 bytes each.

    Facts: the header gives the record version at bytes 16-17 and the data block as u64 begin and length at bytes
    82 and 90. Each record opens with a 2-byte identifier, the same in every record, by which the reader also finds
    the record length (the distance to the next identifier). Values are float32 in mA, V, mA·s and mW·s, signed
    (negative while discharging), the test time as whole seconds plus nanoseconds, the cycle from 0.
    """
    header = bytearray(1024)
    header[:6] = b"NEWARE"
    header[14] = 130
    header[16:18] = (19).to_bytes(2, "little")
    rec = np.zeros(len(points), dtype=BTS9_RECORD)
    rec["identifier"] = 0x55
    rec["step_index"] = [p.step for p in points]
    rec["step_type"] = [p.step_type for p in points]
    rec["index"] = np.arange(1, len(points) + 1)
    rec["total_s"] = [int(p.test_time_s) for p in points]
    rec["total_ns"] = [round((p.test_time_s % 1) * 1e9) for p in points]
    rec["current_ma"] = [p.current_ma for p in points]
    rec["voltage_v"] = [p.voltage_v for p in points]
    rec["capacity_mas"] = [(p.charge_mah - p.discharge_mah) * 3600 for p in points]
    rec["energy_mws"] = [(p.charge_mwh - p.discharge_mwh) * 3600 for p in points]
    rec["cycle"] = [p.cycle - 1 for p in points]
    rec["unix_s"] = [int(p.when.replace(tzinfo=UTC).timestamp()) for p in points]
    body = rec.tobytes()
    # the reader finds the second record by the identifier's bytes: they must not occur inside the first one
    assert body.find(body[:2], 1) == BTS9_RECORD.itemsize, "the first record holds the identifier's bytes"
    header[82:90] = len(header).to_bytes(8, "little")
    header[90:98] = len(body).to_bytes(8, "little")
    return bytes(header) + body


def write_bts9(path: Path, points: list[Point]) -> Path:
    path.write_bytes(bts9_bytes(points))
    return path


def write_nda(path: Path, points: list[Point], version: int = 29) -> Path:
    path.write_bytes(nda29_bytes(points, version))
    return path


def write_ndax(path: Path, points: list[Point], ndc_version: int = 2) -> Path:
    data = bytearray(ndc2_bytes(points))
    data[2] = ndc_version
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.ndc", bytes(data))
    path.write_bytes(buf.getvalue())
    return path
