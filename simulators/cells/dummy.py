"""A dummy cell: the fixed R/C test box potentiostats ship with, as a cell model for channel self-tests.

It lives with the cell models (any simulated instrument may hold one) but is not in the registry: it is a test
fixture of known answers, not a battery a protocol is written for.

The network is a source ``e0`` in series with ``r0`` and the parallel pair ``r1 || (r2 + c2)``. With ``r0 = 0``,
``r1`` electronic and ``r2`` ionic resistance and ``c2`` the blocking interface, it is the mixed conductor between
ion-blocking electrodes; with ``r2 = 0`` it is the classic ``Rs + R||C`` test box. It is linear, so every step has
an exact answer the tests can check the whole driver/simulator chain against, independent of the battery models.

Each step is solved on a uniform grid with the exact exponential update of the one state (the capacitor voltage)
for a stimulus held over each grid interval, then terminations are located on the grid and the samples thinned by
the recording rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from protocols.program import (
    CaStep,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    LsvStep,
    ProgramStep,
    Quantity,
    RecordRule,
    RestStep,
    Termination,
)
from simulators.cells.base import CellModel, StepResult

GRID_POINTS = 20_000
"""Grid intervals per step: sweeps move < 0.2 mV per interval over the P6 window, far below any recording rule."""
OPEN_STEP_S = 1.0e7
"""Horizon for a step with no time end, s (about 4 months)."""


@dataclass
class DummyCellParams:
    e0: float = 0.0
    r0: float = 10.0
    r1: float = 1000.0
    r2: float = 0.0
    c2: float = 1e-6


class DummyCell(CellModel):
    type_name = "dummy-cell"

    def __init__(self, params: DummyCellParams | None = None):
        self.p = params or DummyCellParams()
        if min(self.p.r0, self.p.r2) < 0 or self.p.r1 <= 0 or self.p.c2 <= 0:
            raise ValueError(f"dummy cell needs r0, r2 >= 0 and r1, c2 > 0 ohm/farad; found {self.p}")
        self.vc = 0.0

    # -- circuit --------------------------------------------------------------------------------------------
    @property
    def _k(self) -> float:
        return self.p.r1 / (self.p.r1 + self.p.r2)

    def _rest_voltage(self, vc: float) -> float:
        return self.p.e0 + vc * self._k

    def open_circuit_voltage(self) -> float:
        return self._rest_voltage(self.vc)

    def impedance(self, frequencies: np.ndarray) -> np.ndarray:
        omega = 2 * math.pi * np.asarray(frequencies, dtype=np.float64)
        branch = self.p.r2 + 1 / (1j * omega * self.p.c2)
        return self.p.r0 + self.p.r1 * branch / (self.p.r1 + branch)

    def state_dict(self) -> dict[str, Any]:
        return {"params": asdict(self.p), "vc": self.vc}

    def load_state(self, state: dict[str, Any]) -> None:
        self.p = DummyCellParams(**state["params"])
        self.vc = float(state["vc"])

    # -- stepping ---------------------------------------------------------------------------------------------
    def _solve(self, t: np.ndarray, u: np.ndarray, galvanostatic: bool) -> tuple[np.ndarray, np.ndarray]:
        """Terminal voltage and current on the grid, for current ``u`` (galvano) or voltage ``u`` (potentio)."""
        p, k = self.p, self._k
        tau = (p.r1 + p.r2) * p.c2
        r_par = p.r1 * p.r2 / (p.r1 + p.r2)
        vc = np.empty_like(t)
        vc[0] = self.vc
        dt = np.diff(t)
        if galvanostatic:
            decay = np.exp(-dt / tau)
            target = u[:-1] * p.r1
        else:
            if p.r0 + r_par == 0:
                raise ValueError("a potentiostat cannot drive this dummy cell's bare capacitor: set r0 or r2 > 0")
            # I = (V - e0 - k vc) / (r0 + r_par); dvc/dt = (I r1 - vc) / tau = a (V - e0) - b vc
            a = p.r1 / (tau * (p.r0 + r_par))
            b = (1 + p.r1 * k / (p.r0 + r_par)) / tau
            decay = np.exp(-b * dt)
            target = a * (u[:-1] - p.e0) / b
        for n in range(len(dt)):
            vc[n + 1] = target[n] + (vc[n] - target[n]) * decay[n]
        if galvanostatic:
            current = u
            voltage = p.e0 + current * (p.r0 + r_par) + vc * k
        else:
            voltage = u
            current = (voltage - p.e0 - k * vc) / (p.r0 + r_par)
        self._vc_grid = vc
        return voltage, current

    def _stimulus(self, step: ProgramStep) -> tuple[bool, Any, float | None]:
        """(galvanostatic, u(t), natural duration) for the step."""
        if isinstance(step, RestStep):
            return True, lambda t: np.zeros_like(t), None
        if isinstance(step, CurrentStep):
            return True, lambda t: np.full_like(t, step.current), None
        if isinstance(step, HoldStep):
            return False, lambda t: np.full_like(t, step.voltage), None
        if isinstance(step, CaStep):
            level = step.voltage + (self.open_circuit_voltage() if step.vs_ocv else 0.0)
            return False, lambda t: np.full_like(t, level), None
        if isinstance(step, CvStep | LsvStep):
            times, points = step.corners(self.open_circuit_voltage())  # the waveform as every model sweeps it
            return False, lambda t: np.interp(t, times, points), float(times[-1])
        raise TypeError(f"the dummy cell cannot run a {step.kind} step")

    def run_step(
        self,
        step: ProgramStep,
        *,
        extra_until: Sequence[Termination] = (),
        max_duration: float | None = None,
        sample_period: float = 0.0,
    ) -> StepResult:
        if isinstance(step, EisStep):
            return self._eis(step)
        terms = [*step.until, *extra_until]
        galvanostatic, stimulus, natural = self._stimulus(step)
        timed = [(x.value, n) for n, x in enumerate(terms) if x.quantity is Quantity.TIME]
        time_limit = min(timed) if timed else None
        duration = min(v for v in (time_limit and time_limit[0], natural, OPEN_STEP_S) if v is not None)
        cut = max_duration is not None and max_duration < duration
        if cut:
            duration = max_duration  # type: ignore[assignment]
        t = np.linspace(0.0, duration, GRID_POINTS + 1) if duration > 0 else np.zeros(1)
        settle = 20 * (self.p.r1 + self.p.r2) * self.p.c2  # resolve the transients of long, open-ended steps
        if 0 < settle < duration:
            t = np.union1d(t, np.linspace(0.0, settle, GRID_POINTS + 1))
        if step.record.every_s and duration > 0:  # put the recording instants on the grid itself
            t = np.union1d(t, np.arange(step.record.every_s, duration, step.record.every_s))
        voltage, current = self._solve(t, stimulus(t), galvanostatic)
        capacity = np.concatenate([[0.0], np.cumsum(np.diff(t) * (current[1:] + current[:-1]) / 2)]) / 3600
        power = voltage * current
        energy = np.concatenate([[0.0], np.cumsum(np.diff(t) * (power[1:] + power[:-1]) / 2)]) / 3600
        end, ended_by = len(t) - 1, None
        for number, term in enumerate(terms):
            measured = {
                Quantity.VOLTAGE: voltage, Quantity.CURRENT: np.abs(current), Quantity.CAPACITY: np.abs(capacity),
                Quantity.ENERGY: np.abs(energy),
            }.get(term.quantity)  # fmt: skip
            if measured is None:
                continue
            hits = np.flatnonzero(term.op.holds(measured[1:], term.value)) + 1
            if len(hits) and (hits[0] < end or (ended_by is None and hits[0] == end)):
                end, ended_by = int(hits[0]), number
        reason = "termination"
        if ended_by is None:
            if cut or (time_limit is None and natural is None):
                reason = "max_duration"
            elif time_limit is not None and (natural is None or time_limit[0] <= natural):
                ended_by = time_limit[1]
            else:
                reason = "complete"
        keep = _record_indices(t[: end + 1], voltage[: end + 1], current[: end + 1], step.record, sample_period)
        self.vc = float(self._vc_grid[end])
        return StepResult(
            t=t[keep], voltage=voltage[keep], current=current[keep], capacity=capacity[keep], energy=energy[keep],
            duration=float(t[end]), end_reason=reason, ended_by=ended_by,  # type: ignore[arg-type]
        )  # fmt: skip

    def _eis(self, step: EisStep) -> StepResult:
        freqs = np.asarray(step.frequencies())
        z = self.impedance(freqs)
        t = np.cumsum(1 / freqs)
        v = np.full(len(freqs), self.open_circuit_voltage())
        zeros = np.zeros(len(freqs))
        return StepResult(t=t, voltage=v, current=zeros, capacity=zeros, energy=zeros, duration=float(t[-1]),
                          end_reason="complete", frequency=freqs, z_real=z.real, z_imag=z.imag)  # fmt: skip


def _record_indices(
    t: np.ndarray, v: np.ndarray, i: np.ndarray, rule: RecordRule, sample_period: float = 0.0
) -> np.ndarray:
    """First and last sample, plus one sample per ``every_s`` and per voltage/current change of the rule.

    With an instrument ``sample_period`` the first record is the first grid sample at least one period after
    the switch, and records closer than a period to the one before are dropped (the end is always kept).
    """
    picks = [np.array([0, len(t) - 1])]
    if rule.every_s:
        marks = np.arange(rule.every_s, t[-1], rule.every_s)
        picks.append(np.minimum(np.searchsorted(t, marks - 1e-9), len(t) - 1))
    for values, change in ((v, rule.voltage_change), (i, rule.current_change)):
        if change:
            level = np.floor((values - values[0]) / change)
            picks.append(np.flatnonzero(np.diff(level) != 0) + 1)
    keep = np.unique(np.concatenate(picks))
    if sample_period <= 0.0:
        return keep
    keep[0] = min(int(np.searchsorted(t, t[0] + sample_period)), len(t) - 1)
    spaced, last = [], -np.inf
    for k in keep[:-1]:
        if t[k] >= last + sample_period and t[k] <= t[-1] - sample_period:
            spaced.append(k)
            last = t[k]
    return np.array([*spaced, len(t) - 1], dtype=int)
