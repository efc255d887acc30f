"""Biologic .mpr files (EC-Lab), read with galvani, into a :class:`VendorTable`.

Facts used: an .mpr is a magic line then modules; the data module's version (0, 2 or 3 in the EC-Lab versions
galvani knows) fixes its layout, and its column ids the record layout (an unknown id is a newer EC-Lab). EC-Lab's
current is positive when it oxidises the working electrode, which for the cells a station runs (the electrode under
test as working electrode against Li) is the station's charging direction, so it is kept as it is. ``Ns`` numbers
the sequences (steps) of a technique; the ``mode`` flag tells galvanostatic (1), potentiostatic (2) and rest (3)
points apart, and a frequency column marks impedance points. A .mpr does not say which technique ran in a form
galvani reads, so the kind of each sequence comes from those: impedance -> eis, rest -> rest, galvanostatic ->
charge or discharge by the current's sign, potentiostatic -> a CV scan when the applied potential sweeps, else a
chronoamperometry (``ca``) at it. The start time (the log module's) is the PC's clock, taken as UTC: a .mpr does
not say its time zone.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import numpy as np

from station.imports.common import (
    ImportFailure,
    UnsupportedVersion,
    VendorStep,
    VendorTable,
    decimal7,
    integrate_in_runs,
    since_run_start,
)
from station.imports.readers import need, version

#: applied potential moving by more than this inside one potentiostatic sequence makes it a sweep (V)
SWEEP_SPAN = 0.005
_MPR_MAGIC = b"BIO-LOGIC MODULAR FILE\x1a"


def _column(data: np.ndarray, *names: str) -> np.ndarray | None:
    """The first of ``names`` the file has, in float64 (float32 columns to their 7 significant digits)."""
    for name in names:
        if name in (data.dtype.names or ()):
            values = data[name]
            return decimal7(values) if values.dtype == np.float32 else np.asarray(values, dtype=float)
    return None


def file_version(path: Path) -> str:
    """The data module's version as the file declares it (read without galvani, so an error can name it)."""
    raw = path.read_bytes()
    if not raw.startswith(_MPR_MAGIC):
        raise ImportFailure(f"{path}: not a Biologic .mpr file (no BIO-LOGIC MODULAR FILE header); save the "
                            f"experiment from EC-Lab again")
    at = raw.find(b"MODULEVMP data")
    if at < 0:
        return "unknown (no data module)"
    header = at + 6
    if raw[header + 35:header + 39] == b"\xff\xff\xff\xff":  # the module header of EC-Lab 11.50 and later
        return f"data module version {int.from_bytes(raw[header + 43:header + 47], 'little')} (EC-Lab >= 11.50)"
    return f"data module version {int.from_bytes(raw[header + 39:header + 43], 'little')}"


def read(path: Path) -> VendorTable:
    need("galvani", "galvani", "Biologic .mpr files")
    from galvani.BioLogic import MPRfile

    reader = f"galvani {version('galvani')}"
    declared = file_version(path)
    try:
        mpr = MPRfile(str(path))
    except NotImplementedError as exc:  # a column id galvani does not know: a newer EC-Lab
        raise UnsupportedVersion(f"{path}: Biologic .mpr {declared} is not supported by {reader} ({exc}); nothing "
                                 f"was imported") from None
    except Exception as exc:  # galvani fails on a damaged file with ValueError, OSError, AssertionError...
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Unrecognised version" in text:
            raise UnsupportedVersion(f"{path}: Biologic .mpr {declared} is not supported by {reader} ({text}); "
                                     f"nothing was imported") from None
        raise ImportFailure(f"{path}: cannot be read as a Biologic .mpr file ({declared}; {type(exc).__name__}: "
                            f"{text}); nothing was imported") from None
    data = mpr.data
    n = len(data)
    if n == 0:
        raise ImportFailure(f"{path}: the file holds no data points; nothing was imported")
    t = _column(data, "time/s")
    v = _column(data, "Ewe/V", "<Ewe>/V", "Ecell/V")
    i_ma = _column(data, "I/mA", "<I>/mA", "control/mA")
    if t is None or v is None:
        raise ImportFailure(f"{path}: the file has no time or Ewe column (columns: "
                            f"{', '.join(data.dtype.names or ())}); nothing was imported")
    current = i_ma / 1000 if i_ma is not None else np.zeros(n)
    ns = np.asarray(data["Ns"], dtype=np.int64) if "Ns" in data.dtype.names else np.zeros(n, dtype=np.int64)
    run_start = np.r_[True, ns[1:] != ns[:-1]]
    cycle_col = _column(data, "cycle number")
    cycle = cycle_col.astype(np.int64) if cycle_col is not None else np.ones(n, dtype=np.int64)
    mode = mpr.get_flag("mode").astype(np.int64) if "mode" in mpr.flags_dict else None
    freq = _column(data, "freq/Hz")
    z_real = _column(data, "Re(Z)/Ohm")
    minus_im = _column(data, "-Im(Z)/Ohm")
    eis = freq is not None and z_real is not None and minus_im is not None
    control = _column(data, "control/V", "control/V/mA")

    q_mah = _column(data, "(Q-Qo)/mA.h")
    dq_mah = _column(data, "dq/mA.h", "dQ/mA.h")
    if q_mah is not None:
        capacity = since_run_start(q_mah, run_start) / 1000
    elif dq_mah is not None:
        capacity = since_run_start(np.cumsum(dq_mah), run_start) / 1000
    else:
        capacity = integrate_in_runs(current, t, run_start) / 3600
    energy = integrate_in_runs(v * current, t, run_start) / 3600
    first = np.flatnonzero(run_start)
    runs = np.cumsum(run_start) - 1
    before = np.r_[t[0], t[first[1:] - 1]]
    step_time = t - before[runs]

    amplitude = _column(data, "|Ewe|/V")
    steps: dict[int, VendorStep] = {}
    for number in np.unique(ns):
        here = ns == number
        if eis and np.any(np.isfinite(freq[here]) & (freq[here] > 0)):  # type: ignore[index]
            amp = float(np.median(amplitude[here])) if amplitude is not None else None
            steps[int(number)] = VendorStep("eis", "impedance (freq/Hz column)", amplitude=amp)
            continue
        modes = mode[here] if mode is not None else np.array([], dtype=np.int64)
        common = int(np.bincount(modes).argmax()) if len(modes) else 0
        if common == 3:
            steps[int(number)] = VendorStep("rest", "mode 3 (open circuit)")
        elif common == 1:
            steps[int(number)] = VendorStep("auto", "mode 1 (galvanostatic)")
        elif common == 2:
            applied = control[here] if control is not None else v[here]
            sweeping = float(np.ptp(applied)) > SWEEP_SPAN
            steps[int(number)] = VendorStep("cv" if sweeping else "ca",
                                            f"mode 2 (potentiostatic{', sweep' if sweeping else ''})")
        else:
            steps[int(number)] = VendorStep("auto", "no mode flag")
    start_unix = None
    stamp = getattr(mpr, "timestamp", None)
    if stamp is not None:
        start_unix = stamp.replace(tzinfo=UTC).timestamp()
    if eis:  # impedance columns only where a sequence is an impedance one
        not_eis = ~np.isin(ns, [k for k, s in steps.items() if s.kind == "eis"])
        freq, z_real, minus_im = (np.where(not_eis, np.nan, a) for a in (freq, z_real, minus_im))  # type: ignore
    return VendorTable(
        vendor="Biologic", file_version=declared, reader=reader, test_time=t, step_time=step_time, step=ns,
        run_start=run_start, cycle=cycle, voltage=v, current=current, capacity=capacity, energy=energy,
        steps=steps, frequency=freq if eis else None, z_real=z_real if eis else None,
        z_imag=-minus_im if eis else None, control=control if control is not None and mode is not None else None,
        start_unix=start_unix,
        warnings=[] if mode is not None else ["the file has no mode flag: step kinds follow the current's sign"])
