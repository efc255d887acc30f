"""What every vendor reader hands over, and how it becomes our records and a step program.

A reader (neware.py, biologic.py) only decodes: it gives a :class:`VendorTable`, the vendor's columns already in SI
units with positive current charging, and a :class:`VendorStep` per vendor step number saying what the vendor
called that step. This module turns the table into records of the store's layout and synthesises the step program
the run "ran": one program step per vendor step number (program index = rank of the vendor number), its kind from
the vendor's step type and its set-point from the data, so that analysis, which reads step kinds, applies to old
data as it does to our own runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from protocols.program import (
    CaStep,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    PowerStep,
    ProgramStep,
    RestStep,
    StepProgram,
)
from station.store import RECORD_DTYPE

#: The step kinds a reader may name (its vendor step types mapped onto them). "auto": the reader cannot tell, the
#: data decides (no current: rest; else charge or discharge by the current's sign).
KINDS = ("rest", "charge", "discharge", "cccv_charge", "cccv_discharge", "hold_charge", "hold_discharge", "hold",
         "power", "eis", "ca", "cv", "auto")

#: |I| at or below this counts as no current (A): a rest read back from a cycler shows offsets of a few nA.
NO_CURRENT = 1e-9


class ImportFailure(Exception):
    """A vendor file cannot be imported; the message is one line naming the file and what to do."""


class UnsupportedVersion(ImportFailure):
    """The file is of a vendor format version the installed reader does not know."""


class MissingReader(ImportFailure):
    """The optional reader package is not installed."""


@dataclass(frozen=True)
class VendorStep:
    """One vendor step number: what the vendor calls its type, and the kind of ours it maps to (:data:`KINDS`)."""

    kind: str
    vendor_type: str
    amplitude: float | None = None
    """EIS only: the excitation amplitude (V) when the file records it."""


@dataclass
class VendorTable:
    """One file's data points, in SI units, positive current charging, in the order they were recorded.

    ``step`` is the vendor's step number; ``run_start`` marks the first point of each pass through a step (a step
    looped onto itself starts again). ``capacity``/``energy`` are signed, counted from each step's start (Ah, Wh).
    Impedance arrays are NaN outside EIS; ``z_imag`` is Im(Z) as measured (negative for a capacitive cell).
    """

    vendor: str
    file_version: str
    reader: str
    test_time: np.ndarray
    step_time: np.ndarray
    step: np.ndarray
    run_start: np.ndarray
    cycle: np.ndarray
    voltage: np.ndarray
    current: np.ndarray
    capacity: np.ndarray
    energy: np.ndarray
    steps: dict[int, VendorStep]
    frequency: np.ndarray | None = None
    z_real: np.ndarray | None = None
    z_imag: np.ndarray | None = None
    control: np.ndarray | None = None
    """The set-point the instrument applied at each point (V or A), when the file has it: sweeps are read from it."""
    start_unix: float | None = None
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.test_time)


def run_ids(start: np.ndarray) -> np.ndarray:
    """0-based number of the step pass each point belongs to."""
    return np.cumsum(start.astype(np.int64)) - 1


def since_run_start(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """A running total (e.g. charge passed since the test began) as the amount since each step pass began: the
    total at the last point before the pass is taken off (nothing for the first pass)."""
    runs = run_ids(start)
    first = np.flatnonzero(start)
    before = np.r_[0.0, values[first[1:] - 1]]
    return values - before[runs]


def integrate_in_runs(y: np.ndarray, t: np.ndarray, start: np.ndarray) -> np.ndarray:
    """The integral of ``y`` over ``t`` since each step pass began, in y·s: each point's own value over the interval
    since the point before it (the control the instrument held until it took the point, as EC-Lab's ``dq`` counts
    charge), the first interval of a pass included; 0 at the file's first point."""
    pieces = np.r_[0.0, y[1:] * np.diff(t)]
    total = np.cumsum(pieces)
    first = np.flatnonzero(start)
    before = np.r_[0.0, total[first[1:] - 1]]
    return total - before[run_ids(start)]


def decimal7(values: np.ndarray) -> np.ndarray:
    """float32 values (what the readers hand over) as the nearest 7-significant-digit decimal in float64: 2.9 V
    stays 2.9 and does not become 2.9000000953674316. float32 carries 7 significant digits, so nothing measured is
    lost."""
    x = np.asarray(values, dtype=np.float64)
    out = x.copy()
    ok = np.isfinite(x) & (x != 0)
    scale = 10.0 ** (6 - np.floor(np.log10(np.abs(x[ok]))))
    out[ok] = np.round(x[ok] * scale) / scale
    return out


def _setpoint(value: float) -> float:
    """A set-point read from float32 data, to 7 significant digits (see :func:`decimal7`)."""
    return float(decimal7(np.array([value]))[0])


def to_records(table: VendorTable, index_of: dict[int, int], program: StepProgram) -> np.ndarray:
    """The table as a block of store records (seq 1..n), vendor step numbers replaced by program indices.

    ``cv_cycle`` counts the sweeps of a CV step from 1 by the file's cycle counter within each pass (0 elsewhere).
    """
    n = len(table)
    block = np.zeros(n, dtype=RECORD_DTYPE)
    block["seq"] = np.arange(1, n + 1)
    block["test_time"] = table.test_time
    block["step_time"] = table.step_time
    numbers = np.array(sorted(index_of), dtype=np.int64)
    block["step_index"] = np.array([index_of[k] for k in numbers], dtype=np.int64)[
        np.searchsorted(numbers, table.step)] if n else 0
    block["cycle"] = table.cycle
    block["voltage"] = table.voltage
    block["current"] = table.current
    block["capacity"] = table.capacity
    block["energy"] = table.energy
    for name in ("frequency", "z_real", "z_imag"):
        values = getattr(table, name)
        block[name] = np.nan if values is None else values
    block["temperature"] = np.nan  # no chamber reading in a vendor file (not 0 degC)
    block["aux_temperature"] = np.nan  # nor a sensor's (an auxiliary channel of the file is not read yet)
    if "cv_cycle" in RECORD_DTYPE.names:
        cv_steps = [s.index for s in program.steps if s.kind == "cv"]
        if cv_steps:
            runs = run_ids(table.run_start)
            inside = np.isin(block["step_index"], cv_steps)
            first_cycle = table.cycle[np.flatnonzero(table.run_start)][runs]
            block["cv_cycle"] = np.where(inside, table.cycle - first_cycle + 1, 0)
    return block


def synthesise_program(table: VendorTable, *, name: str, cell: str,
                       nominal_capacity: float | None = None) -> tuple[StepProgram, dict[int, int]]:
    """The step program a vendor file describes, and the map vendor step number -> program index.

    Set-points are what the data shows (the median current of a CC step, the median voltage of a hold, the end
    voltage of a CCCV step's CV part, the sweep of a CV), labelled with the vendor's step number and type; the
    program holds no terminations, since a file records where a step ended, not why.
    """
    numbers = sorted(table.steps)
    index_of = {number: k for k, number in enumerate(numbers, start=1)}
    steps = [_step(table, number, index_of[number]) for number in numbers]
    program = StepProgram(protocol=name, cell=cell, steps=tuple(steps), nominal_capacity=nominal_capacity,
                          parameters={"imported_from": name})
    return program, index_of


def _step(table: VendorTable, number: int, index: int) -> ProgramStep:
    info = table.steps[number]
    mask = table.step == number
    v, i = table.voltage[mask], table.current[mask]
    label = f"{table.vendor} step {number}: {info.vendor_type}"
    base = {"index": index, "label": label}
    kind = info.kind
    if kind == "auto":
        kind = _by_current(i)
    if kind == "eis":
        eis = _eis(table, mask, info, base)
        if eis is not None:
            return eis
        kind = "rest"
    if kind in ("charge", "discharge", "cccv_charge", "cccv_discharge"):
        charge = kind.endswith("charge") and not kind.endswith("discharge")
        moving = i[(i > NO_CURRENT) if charge else (i < -NO_CURRENT)]
        if not len(moving):
            return RestStep(**base)
        hold = None
        if kind.startswith("cccv") and len(v):
            hold = _setpoint(float(np.max(v) if charge else np.min(v)))
        return CurrentStep(kind="charge" if charge else "discharge", current=_median(moving), hold_voltage=hold,
                           **base)
    if kind in ("hold", "hold_charge", "hold_discharge"):
        direction = {"hold_charge": "charge", "hold_discharge": "discharge"}.get(kind)
        return HoldStep(voltage=_median(v), direction=direction, **base)
    if kind == "ca":
        return CaStep(voltage=_median(_setpoints(table, mask, v)), **base)
    if kind == "power" and len(v):
        power = _median(v * i)
        if power != 0:
            return PowerStep(power=power, **base)
    if kind == "cv":
        sweep = _sweep(table, mask, v)
        if sweep is not None:
            return CvStep(**sweep, **base)
        return CaStep(voltage=_median(v), **base)
    return RestStep(**base)


def _by_current(i: np.ndarray) -> str:
    moving = i[np.abs(i) > NO_CURRENT]
    if len(moving) < max(1, len(i) // 2):
        return "rest"
    return "charge" if np.median(moving) > 0 else "discharge"


def _median(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return _setpoint(float(np.median(finite))) if len(finite) else 0.0


def _setpoints(table: VendorTable, mask: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    return table.control[mask] if table.control is not None else fallback


def _eis(table: VendorTable, mask: np.ndarray, info: VendorStep, base: dict) -> EisStep | None:
    if table.frequency is None:
        return None
    freq = table.frequency[mask]
    freq = freq[np.isfinite(freq) & (freq > 0)]
    if len(freq) < 2 or freq[0] == freq[-1]:
        return None
    decades = abs(math.log10(freq[-1]) - math.log10(freq[0]))
    per_decade = min(100, max(1, round((len(np.unique(freq)) - 1) / decades)))
    amplitude = _setpoint(info.amplitude) if info.amplitude and info.amplitude > 0 else 0.01
    if not (info.amplitude and info.amplitude > 0):
        base = {**base, "label": f"{base['label']} (amplitude not in the file; 10 mV assumed)"}
    return EisStep(f_start=_setpoint(float(freq[0])), f_end=_setpoint(float(freq[-1])), points_per_decade=per_decade,
                   amplitude=amplitude, **base)


def _sweep(table: VendorTable, mask: np.ndarray, v: np.ndarray) -> dict | None:
    """Scan rate, vertices and cycle count of a CV step, from the applied potential (the measured one without it)."""
    e = _setpoints(table, mask, v)
    t = table.test_time[mask]
    if len(e) < 3:
        return None
    rate = np.abs(np.diff(e)) / np.maximum(np.diff(t), 1e-12)
    rate = rate[rate > 0]
    if not len(rate):
        return None
    low, high = _setpoint(float(np.min(e))), _setpoint(float(np.max(e)))
    # the first vertex is the end the sweep reaches first from its start
    first_turn = np.flatnonzero(np.diff(np.sign(np.diff(e))) != 0)
    heading_up = e[first_turn[0] + 1] >= e[0] if len(first_turn) else e[-1] >= e[0]
    vertex_1, vertex_2 = (high, low) if heading_up else (low, high)
    cycles = len(np.unique(table.cycle[mask]))
    # a scan rate is set to a few digits (0.1 mV/s); the quotient of float32 steps is not
    return {"scan_rate": float(f"{np.median(rate):.4g}"), "start": _setpoint(float(e[0])), "vertex_1": vertex_1,
            "vertex_2": vertex_2, "cycles": max(1, cycles)}
