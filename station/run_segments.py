"""Where a run with temperature steps stands: which instrument segment, doing what, and where its records go on.

A program with temperature steps runs as instrument tests between them (:mod:`protocols.segments`): the cycler
runs a segment, reports it finished, the station brings the chamber to the next set point and waits until it is
stable, then starts the next segment as a new test on the same channel. Each test numbers its records, times and
cycles from its own start, and knows only its segment's steps; the run's records go on from the last stored one,
so a segment's records are shifted as they are stored: record number by the records stored before it, test time
by the time from the run's start to the segment's, step index to the whole program's, cycle by the last stored
cycle. The offsets are fixed when the segment starts and stored with the run's handle, so a restarted station
shifts the rest of the segment's records the same way.

The phase is stored too (``waiting`` for the chamber, ``starting`` a segment, ``running`` one), so a station
restarted during a wait goes on waiting (its stability timed again from the first new reading: what happened
while nobody watched is not known), and one restarted while starting a segment asks the instrument whether it
started before starting it again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from drivers.base import ChannelStatus
from station.temperature_wait import WaitState

Phase = Literal["waiting", "starting", "running"]


@dataclass(frozen=True)
class Place:
    index: int
    """The segment (0-based) running, being started, or waited for."""
    phase: Phase
    seq0: int = 0
    time0: float = 0.0
    cycle0: int = 0
    step0: int = 0
    """The whole program's index of the segment's step 1, less one."""
    wait: WaitState | None = None
    marker: dict[str, str] | None = None
    """The channel's start marker taken before the segment's start was sent (phase ``starting``)."""
    idle: float = 0.0
    """Station-clock seconds left out of the run's test time: a dry run's rounds jump hours, and the time between
    a segment's end and the round that sees it is the simulation's, not the run's (0 on a real station, whose
    seconds of it are the cell's real rest)."""

    def to_doc(self) -> dict[str, Any]:
        return {"index": self.index, "phase": self.phase, "seq0": self.seq0, "time0": self.time0,
                "cycle0": self.cycle0, "step0": self.step0,
                "wait": self.wait.to_doc() if self.wait is not None else None, "marker": self.marker,
                "idle": self.idle}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Place:
        wait = doc.get("wait")
        return cls(int(doc["index"]), doc["phase"], int(doc.get("seq0", 0)), float(doc.get("time0", 0.0)),
                   int(doc.get("cycle0", 0)), int(doc.get("step0", 0)),
                   WaitState.from_doc(wait) if wait else None, doc.get("marker"), float(doc.get("idle", 0.0)))

    def waiting(self, since: float) -> Place:
        return replace(self, phase="waiting", wait=WaitState(since), marker=None)

    def shift_block(self, block: np.ndarray, lead_steps: frozenset[int] = frozenset()) -> None:
        """A page of this segment's records (store layout) in the run's numbering, in place. ``lead_steps``: the
        segment's steps whose first cycle the whole program counts one lower (:attr:`protocols.segments.Segment.
        lead_steps`)."""
        if lead_steps:
            lead = (block["cycle"] == 1) & np.isin(block["step_index"], list(lead_steps))
            block["cycle"] -= lead
        if self.seq0:
            block["seq"] += self.seq0
        if self.time0:
            block["test_time"] += self.time0
        if self.step0:
            block["step_index"] += self.step0
        if self.cycle0:
            block["cycle"] += self.cycle0

    def shift_status(self, status: ChannelStatus) -> ChannelStatus:
        """A status of this segment's test in the run's numbering."""
        return replace(
            status,
            last_seq=None if status.last_seq is None else status.last_seq + self.seq0,
            test_time=None if status.test_time is None else status.test_time + self.time0,
            step_index=None if status.step_index is None else status.step_index + self.step0,
            cycle=None if status.cycle is None else status.cycle + self.cycle0,
        )
