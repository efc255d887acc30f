"""A small, exact stand-in cell for the simulated BTS tests: linear OCV, series resistance, closed forms.

OCV(q) = v_empty + (v_full - v_empty) * q / capacity, V = OCV + I*R. Under a voltage hold the current decays
exponentially with tau = 3600 * R * capacity / (v_full - v_empty). Being exact, it lets tests check the server's
bookkeeping (capacity, step ends, cycles, protection) against arithmetic rather than against another model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from protocols.program import CurrentStep, HoldStep, ProgramStep, Quantity, RecordRule, RestStep, Termination
from simulators.cells.base import CellModel, StepResult
from simulators.cells.recording import record_times

DENSE = 20_001


class LinearCell(CellModel):
    type_name = "linear-standin"

    def __init__(
        self, capacity: float = 0.002, v_empty: float = 3.0, v_full: float = 4.2, r: float = 10.0, q0: float = 0.0
    ):
        self.capacity, self.v_empty, self.v_full, self.r, self.q = capacity, v_empty, v_full, r, q0

    def ocv(self, q: np.ndarray | float) -> np.ndarray | float:
        return self.v_empty + (self.v_full - self.v_empty) * q / self.capacity

    def open_circuit_voltage(self) -> float:
        return float(self.ocv(self.q))

    def impedance(self, frequencies: np.ndarray) -> np.ndarray:
        return np.full(len(frequencies), self.r, dtype=complex)

    def state_dict(self) -> dict[str, Any]:
        return {"q": self.q}

    def load_state(self, state: dict[str, Any]) -> None:
        self.q = state["q"]

    # -- trajectory ---------------------------------------------------------------------------------------------

    def _trajectory(self, step: ProgramStep, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Current and charge state on the dense grid ``t``."""
        slope = (self.v_full - self.v_empty) / self.capacity
        tau = 3600 * self.r / slope
        if isinstance(step, RestStep):
            return np.zeros_like(t), np.full_like(t, self.q)
        if isinstance(step, CurrentStep):
            current = step.current
            if step.hold_voltage is None:
                return np.full_like(t, current), self.q + current * t / 3600
            # CC until OCV + IR = hold, then exponential decay
            q_switch = (step.hold_voltage - current * self.r - self.v_empty) / slope
            t1 = max(0.0, (q_switch - self.q) * 3600 / current)
            i = np.where(t < t1, current, current * np.exp(-(t - t1) / tau))
            q = np.where(
                t < t1,
                self.q + current * t / 3600,
                self.q + current * t1 / 3600 + current * tau / 3600 * (1 - np.exp(-(t - t1) / tau)),
            )
            return i, q
        if isinstance(step, HoldStep):
            i0 = (step.voltage - self.open_circuit_voltage()) / self.r
            i = i0 * np.exp(-t / tau)
            return i, self.q + i0 * tau / 3600 * (1 - np.exp(-t / tau))
        raise NotImplementedError(step.kind)

    def _horizon(self, step: ProgramStep, terms: Sequence[Termination], max_duration: float | None) -> float:
        limits = [t.value for t in terms if t.quantity is Quantity.TIME]
        if max_duration is not None:
            limits.append(max_duration)
        if isinstance(step, CurrentStep):
            charge_ah = self.capacity * 3  # far beyond any voltage limit of this cell
            limits.append(charge_ah * 3600 / abs(step.current) * (1 if step.hold_voltage is None else 3))
        elif isinstance(step, HoldStep):
            slope = (self.v_full - self.v_empty) / self.capacity
            limits.append(3600 * self.r / slope * 40)
        return min(limits) if limits else 3600.0

    def _evaluate(self, step: ProgramStep, t: np.ndarray) -> dict[str, np.ndarray]:
        i, q = self._trajectory(step, t)
        v = self.ocv(q) + i * self.r
        return {"t": t, "i": i, "q": q, "v": v}

    @staticmethod
    def _first_hit(
        traj: dict[str, np.ndarray], q0: float, terms: Sequence[Termination], e0: float
    ) -> tuple[int, int | None]:
        t, i, v = traj["t"], traj["i"], traj["v"]
        # energy is only needed for energy terminations; the trapezoid is exact enough on the refined grid
        energy = e0 + np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] * i[1:] + v[:-1] * i[:-1]) * np.diff(t))]) / 3600
        end_index, ended_by = len(t) - 1, None
        for index, term in enumerate(terms):
            measured = {
                Quantity.VOLTAGE: v,
                Quantity.CURRENT: np.abs(i),
                Quantity.CAPACITY: np.abs(traj["q"] - q0),
                Quantity.ENERGY: np.abs(energy),
                Quantity.TIME: t,
            }[term.quantity]
            hits = np.flatnonzero(measured >= term.value if term.op.value == ">=" else measured <= term.value)
            if hits.size and (hits[0] < end_index or (hits[0] == end_index and ended_by is None)):
                end_index, ended_by = int(hits[0]), index
        return end_index, ended_by

    def run_step(
        self,
        step: ProgramStep,
        *,
        extra_until: Sequence[Termination] = (),
        max_duration: float | None = None,
        sample_period: float = 0.0,
    ) -> StepResult:
        terms = [*step.until, *extra_until]
        horizon = self._horizon(step, terms, max_duration)
        lo, hi = 0.0, horizon
        for _ in range(4):  # refine the end instant: each pass zooms into the grid cell where it happens
            traj = self._evaluate(step, np.linspace(lo, hi, 2001))
            end_index, ended_by = self._first_hit_from(traj, terms, lo, step)
            if ended_by is None or end_index == 0:
                hi = float(traj["t"][end_index])
                break
            lo, hi = float(traj["t"][end_index - 1]), float(traj["t"][end_index])
        duration = hi
        dense = self._evaluate(step, np.linspace(0.0, duration, DENSE) if duration > 0 else np.array([0.0]))
        t, i, v = dense["t"], dense["i"], dense["v"]
        cap = dense["q"] - self.q
        energy = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] * i[1:] + v[:-1] * i[:-1]) * np.diff(t))]) / 3600
        rule = step.record
        if rule == RecordRule():
            rule = RecordRule(every_s=1.0)
        times = record_times(t, v, i, rule, None, sample_period)
        self.q = float(dense["q"][-1])
        reason = "termination" if ended_by is not None else ("max_duration" if max_duration is not None else "complete")
        return StepResult(
            t=times,
            voltage=np.interp(times, t, v),
            current=np.interp(times, t, i),
            capacity=np.interp(times, t, cap),
            energy=np.interp(times, t, energy),
            duration=duration,
            end_reason=reason,  # type: ignore[arg-type]
            ended_by=ended_by,
        )

    def _first_hit_from(self, traj: dict[str, np.ndarray], terms: Sequence[Termination], lo: float, step):
        """Terminations on a zoomed grid: capacity and energy count from the step start, not from ``lo``."""
        e0 = 0.0
        if lo > 0:
            head = self._evaluate(step, np.linspace(0.0, lo, DENSE))
            e0 = float(np.trapezoid(head["v"] * head["i"], head["t"]) / 3600)
        return self._first_hit(traj, self.q, terms, e0)
