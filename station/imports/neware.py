"""Neware .nda / .ndax files, read with fastnda (polars underneath), into a :class:`VendorTable`.

Facts used: an .nda starts with ``NEWARE`` and names its format version in byte 14 (BTS 9 files, versions 129 and
130, also a record version in bytes 16-17); an .ndax is a zip archive whose ``data.ndc`` names its format version in
byte 2 and its file type in byte 0. Neware counts capacity and energy per step, both positive, split into charge
and discharge columns; fastnda gives the net (charge minus discharge) value in mAh/mWh, which is the signed
since-step-start value of our records. Cycles are read raw (``cycle_mode="raw"``): the file's own counter, never
renumbered. Values pass through fastnda's float32 columns, so they are kept to their 7 significant digits. Record
times are the instrument PC's clock, which fastnda (and so the run's start) takes as UTC: the file has no time zone.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np

from station.imports.common import (
    ImportFailure,
    UnsupportedVersion,
    VendorStep,
    VendorTable,
    decimal7,
    integrate_in_runs,
)
from station.imports.readers import need, version

#: Neware step type codes (as fastnda numbers them) -> (our kind, the vendor's name)
STEP_TYPES: dict[int, tuple[str, str]] = {
    1: ("charge", "CC_Chg"), 2: ("discharge", "CC_DChg"), 3: ("hold_charge", "CV_Chg"), 4: ("rest", "Rest"),
    7: ("cccv_charge", "CCCV_Chg"), 8: ("power", "CP_DChg"), 9: ("power", "CP_Chg"), 10: ("discharge", "CR_DChg"),
    11: ("charge", "CR_Chg"), 13: ("rest", "Pause"), 18: ("cccv_charge", "PCCCV_Chg"),
    19: ("hold_discharge", "CV_DChg"), 20: ("cccv_discharge", "CCCV_DChg"), 22: ("rest", "OCV"),
    26: ("power", "CPCV_DChg"), 27: ("power", "CPCV_Chg"), 28: ("discharge", "CRCV_DChg"),
    29: ("charge", "CRCV_Chg"), 30: ("cv", "CyclicVoltammetry"),
}


def file_version(path: Path) -> str:
    """The format version the file declares, read before fastnda so that an error can name it."""
    if path.suffix.lower() == ".nda":
        with path.open("rb") as f:
            head = f.read(18)
        if head[:6] != b"NEWARE" or len(head) < 15:
            raise ImportFailure(f"{path}: not a Neware .nda file (it does not start with NEWARE); export the test "
                                f"again from BTSDA")
        nda = head[14]
        if nda in (129, 130) and len(head) >= 18:
            return f"nda {nda} (record version {int.from_bytes(head[16:18], 'little')})"
        return f"nda {nda}"
    try:
        with zipfile.ZipFile(path) as archive:
            if "data.ndc" not in archive.namelist():
                raise ImportFailure(f"{path}: this .ndax archive holds no data.ndc; export the test again from BTSDA")
            ndc = archive.read("data.ndc")[:3]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ImportFailure(f"{path}: not a Neware .ndax file ({exc}); export the test again from BTSDA") from None
    if len(ndc) < 3:
        raise ImportFailure(f"{path}: the data.ndc of this .ndax is truncated; export the test again from BTSDA")
    return f"ndax (data.ndc version {ndc[2]}, file type {ndc[0]})"


def read(path: Path) -> VendorTable:
    fastnda = need("fastnda", "fastnda", "Neware .nda/.ndax files")
    reader = f"fastnda {version('fastnda')}"
    declared = file_version(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            df = fastnda.read(path, cycle_mode="raw", raw_categories=True)
        except NotImplementedError as exc:
            raise UnsupportedVersion(f"{path}: Neware file version {declared} is not supported by {reader} "
                                     f"({exc}); nothing was imported — a newer fastnda may read it") from None
        except Exception as exc:  # a damaged file fails anywhere inside the reader (struct, polars, zip)
            raise ImportFailure(f"{path}: cannot be read as a Neware file of version {declared} "
                                f"({type(exc).__name__}: {exc}); nothing was imported") from None
    # fastnda reads some versions by analogy, unconfirmed on real files: the import goes on and says so
    notes = [f"{reader}: {w.message}".splitlines()[0] for w in caught
             if w.category.__name__ == "UnverifiedFormatWarning"]
    if df.height == 0:
        raise ImportFailure(f"{path}: the file holds no data points; nothing was imported")
    col = {name: df[name].to_numpy() for name in df.columns}
    steps_seen = col["step_index"].astype(np.int64)
    step_type = col["step_type"].astype(np.int64)
    steps: dict[int, VendorStep] = {}
    for number in np.unique(steps_seen):
        codes = step_type[steps_seen == number]
        code = int(np.bincount(codes).argmax())
        kind, name = STEP_TYPES.get(code, ("auto", f"step type {code}"))
        steps[int(number)] = VendorStep(kind=kind, vendor_type=name)
    count = col["step_count"].astype(np.int64)
    run_start = np.r_[True, (count[1:] != count[:-1]) | (steps_seen[1:] != steps_seen[:-1])]
    voltage, current = decimal7(col["voltage_V"]), decimal7(col["current_mA"]) / 1000
    test_time = col["total_time_s"].astype(float)
    if "energy_mWh" in col:
        energy = decimal7(col["energy_mWh"]) / 1000
    else:  # the oldest .nda versions record no energy
        energy = integrate_in_runs(voltage * current, test_time, run_start) / 3600
        notes.append("the file records no energy: it is integrated from voltage and current")
    unix = col.get("unix_time_s")
    start_unix = None
    if unix is not None and len(unix) and np.isfinite(unix[0]) and unix[0] > 0:
        start_unix = float(unix[0] - col["total_time_s"][0])
    return VendorTable(
        vendor="Neware", file_version=declared, reader=reader,
        test_time=test_time, step_time=col["step_time_s"].astype(float),
        step=steps_seen, run_start=run_start, cycle=col["cycle_count"].astype(np.int64),
        voltage=voltage, current=current, capacity=decimal7(col["capacity_mAh"]) / 1000, energy=energy,
        steps=steps, start_unix=start_unix, warnings=notes)
