"""Step runs: the records cut into the executions of program steps, the unit every per-step analysis works on.

Records carry ``capacity`` and ``energy`` signed and counted from each step's start, so one step run's totals are
its last record's values, and a run-level figure is a sum over step runs instead of a loop over records. A new step
run starts where ``step_index`` or ``cycle`` changes, or where ``step_time`` goes back (a step that loops onto
itself starts its clock over without changing index or cycle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.program import StepProgram

#: step kinds whose charge counts in a cycle's charge and discharge capacity: the galvanostatic, potentiostatic
#: hold and constant-power steps. EIS, CV, LSV and CA steps are measurements (they move little or no net charge,
#: in both directions) and rests move none; counting them would blur the direction a cycle starts with.
CYCLING_KINDS = frozenset({"charge", "discharge", "hold", "power"})


def step_starts(records: np.ndarray) -> np.ndarray:
    """A boolean per record: True where it opens a new step run."""
    if len(records) == 0:
        return np.zeros(0, dtype=bool)
    idx, cyc, st = records["step_index"], records["cycle"], records["step_time"]
    return np.r_[True, (idx[1:] != idx[:-1]) | (cyc[1:] != cyc[:-1]) | (st[1:] < st[:-1])]


class StepBounds:
    """The records of a run that open or close a step run, gathered block by block: all a run's cycle table reads.

    A 1000-cycle dry run holds 82 MB of records and ~4000 step runs; the run's summary needs only these ~8000, so
    they are kept as the blocks are stored (:attr:`station.store.Store.on_stored`) or read (the blocks streamed
    once), and the rest is neither held nor read back. A record that opens a run still follows one that closes
    another across a block's edge: the last record of each block is held until the next block says whether it
    closed a run.
    """

    def __init__(self, dtype: np.dtype) -> None:
        self._dtype = dtype  # of the records, for a run without any
        self._kept: list[np.ndarray] = []
        self._last: np.ndarray | None = None
        self._last_kept = True
        self.count = 0
        """records seen"""
        self.first_seq: int | None = None
        """the seq of the first record seen (1: the run from its start)"""

    def add(self, block: np.ndarray) -> None:
        if not len(block):
            return
        if self.first_seq is None:
            self.first_seq = int(block["seq"][0])
        self.count += len(block)
        last = self._last
        opens = step_starts(block) if last is None else step_starts(np.concatenate([last, block]))[1:]
        if last is not None and opens[0] and not self._last_kept:
            self._kept.append(last)  # the previous block's last record closed a run
        keep = opens | np.r_[opens[1:], False]
        self._kept.append(block[keep])
        self._last, self._last_kept = block[-1:].copy(), bool(keep[-1])

    def records(self) -> np.ndarray:
        """The records that open or close a step run, in order (the run's last record among them)."""
        kept = self._kept if self._last is None or self._last_kept else [*self._kept, self._last]
        return np.concatenate(kept) if kept else np.empty(0, dtype=self._dtype)


@dataclass(frozen=True)
class StepRuns:
    """One entry per step run, in record order (numpy arrays of equal length)."""

    start: np.ndarray
    """index of the run's first record"""
    end: np.ndarray
    """index of the run's last record (inclusive)"""
    step: np.ndarray
    """the program step index (1-based) the run executed"""
    cycle: np.ndarray
    """the stored cycle number the run belongs to"""
    capacity: np.ndarray
    """signed Ah passed in the run (positive charges)"""
    energy: np.ndarray
    """signed Wh, the integral of I V dt over the run (positive into the cell)"""
    kind: np.ndarray
    """the program step's kind (``"charge"``, ``"rest"``, ...), ``""`` for an index outside the program"""
    tag: np.ndarray
    """the program step's tag (object array of str or None)"""

    def __len__(self) -> int:
        return len(self.start)

    def counted(self) -> np.ndarray:
        """True for runs whose charge counts in cycling: a cycling kind (or a step the program does not know, an
        imported one) that moved charge."""
        known = np.isin(self.kind, list(CYCLING_KINDS)) | (self.kind == "")
        return known & (self.capacity != 0) & np.isfinite(self.capacity)


def step_runs(records: np.ndarray, program: StepProgram) -> StepRuns:
    """Cut ``records`` into step runs (vectorised: no Python work per record)."""
    starts = np.flatnonzero(step_starts(records))
    ends = np.r_[starts[1:] - 1, len(records) - 1] if len(starts) else starts
    steps = records["step_index"][starts].astype(np.int64)
    kinds = np.array([s.kind for s in program.steps] + [""], dtype=object)
    tags = np.array([s.tag for s in program.steps] + [None], dtype=object)
    position = np.where((steps >= 1) & (steps <= len(program.steps)), steps - 1, len(program.steps))
    return StepRuns(start=starts, end=ends, step=steps, cycle=records["cycle"][starts].astype(np.int64),
                    capacity=records["capacity"][ends].astype(float), energy=records["energy"][ends].astype(float),
                    kind=kinds[position], tag=tags[position])
