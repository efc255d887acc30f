"""Runs built by hand for the analysis tests: every record chosen, so the expected figures follow from the
construction (capacity = I t, energy = the integral of I V dt of a linear voltage ramp), not from the code."""

from __future__ import annotations

import numpy as np

from protocols.cells import Cell
from protocols.program import (
    CurrentStep,
    EisStep,
    LoopStep,
    Quantity,
    RestStep,
    StepProgram,
    Termination,
)
from station.analysis.run_data import RunData
from station.store import RECORD_DTYPE


def segment(step: int, cycle: int, current: float, volts: np.ndarray | list[float], hours: float) -> np.ndarray:
    """One step run: records evenly spaced over ``hours`` at constant ``current`` (A), voltages as given."""
    volts = np.asarray(volts, dtype=float)
    n = len(volts)
    t = np.linspace(0.0, hours * 3600.0, n)
    rec = np.zeros(n, dtype=RECORD_DTYPE)
    rec["step_time"] = t
    rec["step_index"] = step
    rec["cycle"] = cycle
    rec["current"] = current
    rec["voltage"] = volts
    rec["capacity"] = current * t / 3600.0
    power = current * volts
    rec["energy"] = np.r_[0.0, np.cumsum(0.5 * (power[1:] + power[:-1]) * np.diff(t))] / 3600.0
    for name in ("frequency", "z_real", "z_imag"):
        rec[name] = np.nan
    return rec


def ramp(v0: float, v1: float, n: int = 101) -> np.ndarray:
    return np.linspace(v0, v1, n)


def run(program: StepProgram, segments: list[np.ndarray], cell: Cell | None = None) -> RunData:
    records = np.concatenate(segments)
    dt = np.diff(records["step_time"])
    records["test_time"] = np.r_[0.0, np.cumsum(np.where(dt > 0, dt, 1.0))]
    records["seq"] = np.arange(1, len(records) + 1)
    return RunData(run_id="hand", records=records, program=program, cell=cell or Cell(name="hand"))


def volts_until(op: str, value: float) -> tuple[Termination, ...]:
    return (Termination(quantity=Quantity.VOLTAGE, op=op, value=value),)


def full_cell_program() -> StepProgram:
    """rest; 2 formation cycles at 1 mA; 3 cycling cycles at 2 mA with an EIS after each discharge."""
    return StepProgram(protocol="hand-full", cell="hand", steps=(
        RestStep(index=1, until=(Termination(quantity=Quantity.TIME, op=">=", value=60.0),)),
        CurrentStep(index=2, kind="charge", current=1e-3, tag="formation", until=volts_until(">=", 4.2)),
        CurrentStep(index=3, kind="discharge", current=-1e-3, tag="formation", until=volts_until("<=", 3.0)),
        LoopStep(index=4, target=2, count=2, tag="formation"),
        CurrentStep(index=5, kind="charge", current=2e-3, tag="cycling", until=volts_until(">=", 4.2)),
        CurrentStep(index=6, kind="discharge", current=-2e-3, tag="cycling", until=volts_until("<=", 3.0)),
        EisStep(index=7, f_start=1e4, f_end=1.0, points_per_decade=5, amplitude=0.01, tag="cycling"),
        LoopStep(index=8, target=5, count=3, tag="cycling"),
    ))


def plating_program(lithiation: bool = True) -> StepProgram:
    """(discharge to 0 V;) then plate 1 mAh / strip to 1 V cycles, P2's shape."""
    steps: list = []
    if lithiation:
        steps.append(CurrentStep(index=1, kind="discharge", current=-1e-3, until=volts_until("<=", 0.0)))
    first = len(steps) + 1
    steps += [
        CurrentStep(index=first, kind="discharge", current=-1e-3, tag="plating-stripping",
                    until=(Termination(quantity=Quantity.CAPACITY, op=">=", value=1e-3),)),
        CurrentStep(index=first + 1, kind="charge", current=1e-3, tag="plating-stripping",
                    until=volts_until(">=", 1.0)),
        LoopStep(index=first + 2, target=first, count=2, tag="plating-stripping"),
    ]
    return StepProgram(protocol="hand-plating", cell="hand", steps=tuple(steps))
