"""One segment of a BTS step on a cell model: the BTS's record grid, its current direction, its measurement.

The cell model (``CellModel.run_step``) computes a step's whole trajectory at once and picks the records with the
instrument-neutral rule of ``simulators.cells.recording``. A BTS differs in three ways the channel engine must
reproduce (neware-bts-api.md section 9, "Record timing" and "CV step type carries direction"):

* **Record grid.** The BTS records at whole multiples of the record interval *from the step start*, the first
  record at step time 0.0 s and the last at the step's end (so the end record of one step and the first of the
  next share a test time). Change thresholds (``Volt``/``Curr``) add records between grid points (the real
  capture has ``36080000, 36080300, 36090000`` ms). The model places time records relative to the last record
  when a change rule is also given, so such a step is run twice from the same saved state: once with the time
  rule alone (the grid, whose trajectory, duration and end are the step's) and once with the change rule alone
  (the extra records inside that duration, kept no closer than the channel's 0.1 s sampling to any other), and
  the two record sets are merged; with a change rule and no interval the "grid" is the step's start and end.
  Steps with a time rule alone run once. No sample period is asked of the grid run: its first record is at the
  switch. (The change run measures each change from its own last change record, not from the grid record in
  between as the BTS may: a difference of where, never whether, a change is recorded.)
* **Direction.** A CV charge (3) only sources current and a CV discharge (19) only sinks it; the BTS does not
  cross zero within the step. The simulator's reading of what happens when the cell would need the other sign:
  the current is clamped at 0, and with no current flowing the step's cut-off current (``Stop_Curr``) is met at
  that instant, so the step ends there and the program goes on with the next line. A CV step without a cut-off
  current ends there too: with its current held at zero it no longer holds its voltage, and regulating through
  zero is what the BTS does not do. At step time 0 (a CV charge below the cell's voltage) the step thus ends at
  once with one record at zero current and the cell's open-circuit voltage. CCCV steps (7, 20) follow their
  type's sign in the same way. Detection works on the records: the step is cut at the zero crossing interpolated
  between the last record of the right sign and the first of the wrong one.
* **Measurement.** Optional seeded noise (about 0.2 uA on the current and 0.5 mV on a held voltage in the real
  data) and the current's start transient (the real step layer has a CC step start at 0.999x its set current),
  both off by default so that tests stay exact; see :class:`Measurement`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from protocols.program import CurrentStep, HoldStep, ProgramStep, RecordRule, RestStep, Termination
from simulators.cells.base import CellModel, StepResult

#: the channel's fastest sampling (BTS4000 series: 10 Hz recording; ``totaltime`` has 0.1 s resolution): change
#: records are never closer than this
SAMPLE_PERIOD_S = 0.1


def run_on_grid(
    model: CellModel, program: ProgramStep, extra: Sequence[Termination], max_duration: float | None
) -> StepResult:
    """Run ``program`` from the model's state with the BTS record grid (module notes)."""
    rule = program.record
    if rule.voltage_change is None and rule.current_change is None:
        return model.run_step(program, extra_until=extra, max_duration=max_duration)
    state = model.state_dict()
    change_rule = RecordRule(voltage_change=rule.voltage_change, current_change=rule.current_change)
    on_change = model.run_step(
        program.model_copy(update={"record": change_rule}), extra_until=extra, max_duration=max_duration
    )
    model.load_state(state)
    # no interval: the grid is the step's start and end only
    on_grid = model.run_step(
        program.model_copy(update={"record": RecordRule(every_s=rule.every_s)}),
        extra_until=extra,
        max_duration=max_duration,
    )
    return merge_records(on_grid, on_change)


def merge_records(main: StepResult, extra: StepResult, spacing: float = SAMPLE_PERIOD_S) -> StepResult:
    """``main`` with the records of ``extra`` that fall inside its duration, in time order.

    The channel samples no faster than ``spacing``: an extra record closer than that to a record of ``main`` (a
    change crossing next to a grid point) or to the extra record kept before it is the same sample, and dropped.
    """
    keep: list[int] = []
    times = main.t
    last = -np.inf
    for k in np.flatnonzero((extra.t > main.t[0]) & (extra.t < main.duration)):
        t = float(extra.t[k])
        slot = int(np.searchsorted(times, t))
        nearest = min(abs(t - times[max(slot - 1, 0)]), abs(times[min(slot, len(times) - 1)] - t))
        if nearest >= spacing and t - last >= spacing:
            keep.append(int(k))
            last = t
    if not keep:
        return main
    chosen = np.asarray(keep)
    t = np.concatenate([main.t, extra.t[chosen]])
    order = np.argsort(t, kind="stable")
    columns = {}
    for name in ("voltage", "current", "capacity", "energy"):
        columns[name] = np.concatenate([getattr(main, name), getattr(extra, name)[chosen]])[order]
    return replace(main, t=t[order], **columns)


def direction_of(program: ProgramStep, step_sign: int) -> int:
    """The only sign the current of this step may take (+1 source, -1 sink), or 0 when the model keeps it anyway."""
    if isinstance(program, HoldStep) or (isinstance(program, CurrentStep) and program.hold_voltage is not None):
        return step_sign
    return 0


def run_directed(
    model: CellModel,
    program: ProgramStep,
    extra: Sequence[Termination],
    max_duration: float | None,
    direction: int,
) -> tuple[StepResult, bool]:
    """:func:`run_on_grid`, then the direction rule; returns the result and whether the rule ended the step."""
    if not direction:
        return run_on_grid(model, program, extra, max_duration), False
    state = model.state_dict()
    result = run_on_grid(model, program, extra, max_duration)
    limit = max(np.abs(result.current).max(initial=0.0), 1e-9)
    wrong = np.flatnonzero(direction * result.current < -1e-6 * limit)
    if wrong.size == 0:
        return _clipped(result, direction), False
    k = int(wrong[0])
    model.load_state(state)
    if k == 0:
        rest = RestStep(index=program.index, record=program.record)
        cut = model.run_step(rest, max_duration=0.0)
    else:
        t0, t1 = float(result.t[k - 1]), float(result.t[k])
        i0, i1 = float(result.current[k - 1]), float(result.current[k])
        crossing = t0 + (t1 - t0) * i0 / (i0 - i1) if i0 != i1 else t0
        cut = run_on_grid(model, program, extra, crossing)
    return replace(_clipped(cut, direction), end_reason="termination", ended_by=None), True


def _clipped(result: StepResult, direction: int) -> StepResult:
    """Currents of the wrong sign (solver residue around zero) read as zero."""
    current = np.maximum(result.current, 0.0) if direction > 0 else np.minimum(result.current, 0.0)
    return replace(result, current=current)


@dataclass(frozen=True, slots=True)
class Measurement:
    """How the simulated channel measures: seeded noise and the current's start transient; all off by default.

    ``current_noise_a``: standard deviation of the current noise on every record of a step that drives current
    (the real data: about 0.2 uA at 22.5 mA). ``cv_voltage_noise_v``: standard deviation of the voltage noise on
    the records of a voltage hold (CV steps and the CV phase of CCCV steps; real data: within about 0.5 mV).
    ``start_transient``: the fraction by which the first record of a current step falls short of its set current
    (the real step layer: 0.000294779 A at the start of a 0.000295047 A step, 0.0009). ``seed``: the noise is
    reproducible per channel (the channel's key is mixed in).
    """

    current_noise_a: float = 0.0
    cv_voltage_noise_v: float = 0.0
    start_transient: float = 0.0
    seed: int = 0

    @classmethod
    def realistic(cls, seed: int = 0) -> Measurement:
        """The figures of the reference's real data (section 9)."""
        return cls(current_noise_a=2e-7, cv_voltage_noise_v=5e-4, start_transient=9e-4, seed=seed)

    @property
    def exact(self) -> bool:
        return not (self.current_noise_a or self.cv_voltage_noise_v or self.start_transient)

    def apply(
        self,
        result: StepResult,
        program: ProgramStep,
        rng: np.random.Generator,
        *,
        first: bool,
    ) -> StepResult:
        """The records as the channel measures them (``first``: the segment starts the step)."""
        if self.exact or len(result.t) == 0:
            return result
        current, voltage = result.current, result.voltage
        drives = not isinstance(program, RestStep)
        if self.start_transient and first and isinstance(program, CurrentStep):
            current = current.copy()
            current[0] *= 1.0 - self.start_transient
        if self.current_noise_a and drives:
            current = current + rng.normal(0.0, self.current_noise_a, len(current))
        hold = _held_voltage(program)
        if self.cv_voltage_noise_v and hold is not None:
            held = np.abs(voltage - hold) < 1e-6
            if held.any():
                voltage = voltage.copy()
                voltage[held] += rng.normal(0.0, self.cv_voltage_noise_v, int(held.sum()))
        return replace(result, current=current, voltage=voltage)


def _held_voltage(program: ProgramStep) -> float | None:
    if isinstance(program, HoldStep):
        return program.voltage
    if isinstance(program, CurrentStep):
        return program.hold_voltage
    return None
