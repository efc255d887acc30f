"""A run as the engine holds it while it supervises it, and the handle a run stores: shared by the engine
(:mod:`station.runs`) and what carries out temperature steps for it (:mod:`station.temperature_runs`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivers.base import ChannelDriver, ChannelStatus, TestHandle
from protocols.program import StepProgram
from station.run_policy import RunState
from station.run_segments import Place
from station.store import RunRow


def handle_from_row(row: RunRow) -> TestHandle | None:
    if not row.handle:
        return None
    h = row.handle
    return TestHandle(channel=h["channel"], test_id=h["test_id"], barcode=h["barcode"], extra=h.get("extra", {}))


def handle_doc(handle: TestHandle, place: Place | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"channel": handle.channel, "test_id": handle.test_id, "barcode": handle.barcode,
                           "extra": handle.extra}
    if place is not None:
        doc["segment"] = place.to_doc()
    return doc


def place_from_row(row: RunRow) -> Place | None:
    """Where a run with temperature steps stands, as stored with its handle."""
    doc = (row.handle or {}).get("segment")
    return Place.from_doc(doc) if doc else None


@dataclass
class ActiveRun:
    run_id: str
    driver: ChannelDriver
    program: StepProgram
    last_seq: int
    estimated_s: float | None
    records: int = 0
    done: bool = False
    failures: int = 0
    """Consecutive polls the instrument did not answer."""
    data_failures: int = 0
    """Consecutive download pages that could not be trusted."""
    last_status: ChannelStatus | None = None
    breach: str | None = None
    """The first record that broke a safety limit; it stays the run's breach until the run ends."""
    state: RunState = RunState.VALIDATED
    """The run's state as this process last wrote or saw it: polls read it here, not from the store."""
    handle: TestHandle | None = None
    stop_requested: str | None = None
    barcode: str | None = None
    """What start sent as the barcode: the sample's id, or the run id for a run on a bare cell record."""
    marker: dict[str, str] | None = None
    """The channel's start marker from before start (drivers.base.ChannelDriver.start_marker)."""
    ends_as: RunState = RunState.STOPPED
    """The state a confirmed stop ends the run in: failed when the stop cleans up after a failed start."""
    stop_alarmed: bool = False
    breach_alarmed: bool = False
    contact_lost_at: float | None = None
    segments: list[Any] = field(default_factory=list)
    """The program's instrument segments (protocols.segments), for a program with temperature steps; else empty."""
    place: Place | None = None
    """Where a run with temperature steps stands (station.run_segments)."""
    chamber: Any = None
    """The climate chamber the run's channel sits in (station.chambers.ChamberUnit), if the station has one."""
    started_unix: float | None = None
    """When the run's start was first intended: its test time 0."""
    last_record: np.void | None = None
    """The last stored record (store layout), kept by runs with temperature steps: a new segment's record numbers,
    times and cycles go on from it, and its step tells a segment's end from a ``then: end``."""
    noted: str | None = None
    """The last warning noted while waiting for the chamber (each distinct one is stored once)."""
    band_alarmed: bool = False
    """An alarm was raised for the chamber out of its band; cleared when it is back."""
