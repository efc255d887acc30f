"""The one interface every simulated cell offers to the simulated instruments.

A simulated instrument (the BTS server, the EClib stand-in) parses its own native program into step-program
steps and asks a :class:`CellModel` to run them one at a time. The model answers with the whole recorded
trajectory of the step at once (closed forms and vectorised numpy make that cheap); the instrument then
releases the records as its injected clock passes them. To stop or pause mid-step the instrument restores the
state saved before the step and re-runs it with ``max_duration`` set to the elapsed time, which keeps the
model deterministic and free of any notion of wall time or wire formats.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from protocols.program import ProgramStep, Termination

EndReason = Literal["termination", "complete", "max_duration"]


@dataclass(frozen=True, slots=True)
class StepResult:
    """The recorded samples of one executed step, time relative to the step's start.

    ``capacity`` and ``energy`` are the signed net charge (Ah) and energy (Wh) passed since the step started,
    positive for charge. The first sample is the step's start (one instrument sample period after it when the
    instrument asks for one) and the last is its end, whatever the recording rule. EIS steps also fill the
    three impedance arrays (one row per frequency).
    """

    t: np.ndarray
    voltage: np.ndarray
    current: np.ndarray
    capacity: np.ndarray
    energy: np.ndarray
    duration: float
    end_reason: EndReason
    ended_by: int | None = None
    """Index into ``step.until + extra_until`` of the termination that ended the step, when one did."""
    frequency: np.ndarray | None = None
    z_real: np.ndarray | None = None
    z_imag: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.t)


@dataclass(frozen=True, slots=True)
class CellEvent:
    """Something physical happened in the cell that the data alone may not make obvious (Li grown beyond the
    host's pores, a reservoir exhausted). A simulated instrument has no way to report it; the station that owns the
    simulator collects it and records it as a warning, so a dry run says what a real run would leave unsaid."""

    kind: str
    message: str
    step_time: float
    """Step time (s) within the step that caused it."""


class CellModel(abc.ABC):
    """A deterministic physical cell model that executes step-program steps."""

    #: registry name, as used in a cell record's ``model:`` field
    type_name: str = ""

    @abc.abstractmethod
    def run_step(
        self,
        step: ProgramStep,
        *,
        extra_until: Sequence[Termination] = (),
        max_duration: float | None = None,
        sample_period: float = 0.0,
    ) -> StepResult:
        """Execute one non-loop step from the present state and advance the state to its end.

        ``extra_until`` adds terminations (the instrument's safety limits) OR-ed with the step's own.
        ``max_duration`` cuts the step short (an operator stop, or re-running a step up to a pause).
        ``sample_period`` is the instrument's fastest sampling: no two records closer, none at the switch.
        """

    @abc.abstractmethod
    def open_circuit_voltage(self) -> float:
        """The present equilibrium voltage, V."""

    @abc.abstractmethod
    def impedance(self, frequencies: np.ndarray) -> np.ndarray:
        """The complex impedance (ohm) at the present state, Z = Z' + jZ'' with Z'' < 0 for capacitive."""

    def drain_events(self) -> list[CellEvent]:
        """Events raised since the last call, oldest first (none for a model that raises none)."""
        return []

    def set_temperature(self, kelvin: float) -> None:
        """Put the cell at a new temperature from now on (a climate chamber's set point reached)."""
        raise NotImplementedError(f"{type(self).__name__} has no temperature dependence")

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of the whole state, parameters included, so a channel survives a restart."""

    @abc.abstractmethod
    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot taken by :meth:`state_dict`."""
