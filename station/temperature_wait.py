"""When a temperature step is done: the chamber has held its set point long enough, or waited too long.

A pure rule on the chamber's readings, so it is tested as a table and the run engine only carries it out:

* the step is **stable** once every reading for ``stable_for_s`` has been within ``band_c`` of the step's set
  point (the step's, not the set point the chamber reports, which another user may have changed at its panel);
* a reading outside the band, a chamber that did not answer, or one in alarm (its door open) starts the stable
  time again: stability is only what was seen, never assumed between readings one could not take;
* the step has **timed out** when ``max_wait_s`` has passed since the set point was sent without it being stable:
  a chamber that cannot reach or hold it (a failed compressor, a door left open) fails the run. Time spent before,
  waiting for other runs sharing the chamber to reach their own temperature step, does not count: their tests
  are finite, the run says whom it waits for, and a neighbour that disagrees on the temperature is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class WaitSpec:
    """What a temperature step asks for (degrees Celsius, seconds)."""

    set_c: float
    band_c: float
    stable_for_s: float
    max_wait_s: float

    @classmethod
    def of(cls, step: Any) -> WaitSpec:
        """The spec of a program's temperature step."""
        return cls(step.setpoint, step.band, step.stable_for, step.max_wait)

    def describe(self) -> str:
        return (f"{self.set_c:g} °C ± {self.band_c:g} °C held for {self.stable_for_s / 60:g} min "
                f"(at most {self.max_wait_s / 3600:g} h)")


@dataclass(frozen=True)
class WaitState:
    """A wait in progress (unix seconds): persisted with the run, so a restarted station goes on with it."""

    since: float
    """When the run reached the step."""
    applied: bool = False
    """The set point was sent to the chamber (it may have had to wait for other runs in the chamber first)."""
    applied_at: float | None = None
    """When it was sent: ``max_wait`` counts from here."""
    stable_since: float | None = None
    """The first reading of the present unbroken series within the band."""

    def to_doc(self) -> dict[str, Any]:
        return {"since": self.since, "applied": self.applied, "applied_at": self.applied_at,
                "stable_since": self.stable_since}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> WaitState:
        return cls(float(doc["since"]), bool(doc.get("applied", False)), doc.get("applied_at"),
                   doc.get("stable_since"))


class Verdict(StrEnum):
    WAITING = "waiting"
    STABLE = "stable"
    TIMED_OUT = "timed out"


def assess(spec: WaitSpec, state: WaitState, now: float, temperature_c: float | None) -> tuple[WaitState, Verdict]:
    """The wait after one reading at ``now`` (``None``: no trustworthy reading this time)."""
    inside = (state.applied and temperature_c is not None and math.isfinite(temperature_c)
              and abs(temperature_c - spec.set_c) <= spec.band_c)
    if not inside:
        state = replace(state, stable_since=None)
    elif state.stable_since is None:
        state = replace(state, stable_since=now)
    if state.stable_since is not None and now - state.stable_since >= spec.stable_for_s:
        return state, Verdict.STABLE
    if state.applied and now - (state.applied_at if state.applied_at is not None else state.since) >= spec.max_wait_s:
        return state, Verdict.TIMED_OUT
    return state, Verdict.WAITING
