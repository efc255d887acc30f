"""How long a campaign is expected to take, stage by stage, with its climate chamber waits.

Each stage's protocol is bound to the stage's cell and estimated as ``station plan`` estimates it
(:func:`protocols.estimate.estimate_program`). The chamber is followed through the campaign: a stage's
``temperature`` waits for the ramp from where the chamber was (the stage before's temperature or its protocol's last
temperature step, else the cell record's temperature, else :data:`~protocols.estimate.DEFAULT_CHAMBER_C`) at the
nominal :data:`~protocols.estimate.CHAMBER_RAMP_K_PER_MIN`, plus its ``stable_for``, exactly as a temperature step
in a protocol; the stage's protocol then starts from the stage's temperature.

A stage in chunks runs an unknown number of chunks when it stops on retention or CE; with ``until: {cycles: N}``
it runs at most ``ceil(N / chunk)`` chunks (each followed by its RPT), which is what is counted, as an upper bound.
Operator confirmations between instruments and the waits for them are not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from protocols.campaign import CampaignPlan, StagePlan
from protocols.cells import Cell
from protocols.estimate import DEFAULT_CHAMBER_C, PlanEstimate, TemperatureWait, estimate_program, temperature_wait


@dataclass(frozen=True)
class StageEstimate:
    """One stage: the chamber wait before it, one run of its protocol (one chunk, for a stage in chunks), its RPT,
    and how many runs are counted."""

    name: str
    temperature: TemperatureWait | None
    run: PlanEstimate
    runs: int | None
    """Runs of the protocol counted: 1, or the most chunks ``until: {cycles}`` allows (``None``: not bounded)."""
    rpt: PlanEstimate | None = None

    @property
    def total_s(self) -> float | None:
        """The chamber wait plus every counted run and RPT (``None`` when the number of chunks is not bounded)."""
        if self.runs is None:
            return None
        wait = self.temperature.estimated_s if self.temperature is not None else 0.0
        per_run = self.run.total_s + (self.rpt.total_s if self.rpt is not None else 0.0)
        return wait + self.runs * per_run


@dataclass(frozen=True)
class CampaignEstimate:
    stages: list[StageEstimate]

    @property
    def total_s(self) -> float | None:
        """The whole campaign (``None`` when a stage's number of chunks is not bounded)."""
        totals = [s.total_s for s in self.stages]
        return None if any(t is None for t in totals) else sum(t for t in totals if t is not None)


def _overrides(stage: StagePlan) -> dict[str, str]:
    values = dict(stage.set)
    if stage.chunks is not None:
        values[stage.chunks.parameter] = str(stage.chunks.cycles)
    return values


def estimate_campaign(plan: CampaignPlan, cell: Cell) -> CampaignEstimate:
    """Every stage's estimate, the chamber followed from stage to stage (``cell``: the sample's cell)."""
    chamber = cell.temperature if cell.temperature is not None else DEFAULT_CHAMBER_C
    out: list[StageEstimate] = []
    for stage in plan.stages:
        wait = None
        if stage.temperature is not None:
            wait = temperature_wait(stage.temperature, chamber)
            chamber = stage.temperature.setpoint
        at = stage.stage_cell(cell).model_copy(update={"temperature": chamber})
        program = stage.protocol.load(_overrides(stage)).bind(at)
        assert program is not None
        run = estimate_program(program, at)
        if run.temperature_waits:
            chamber = run.temperature_waits[-1].to_c
        rpt = None
        runs: int | None = 1
        if stage.chunks is not None:
            limit = stage.until.cycles if stage.until is not None else None
            runs = math.ceil(limit / stage.chunks.cycles) if limit is not None else None
            if stage.rpt is not None:
                rpt_program = stage.rpt.protocol.load(dict(stage.rpt.set)).bind(at)
                assert rpt_program is not None
                rpt = estimate_program(rpt_program, at)
        out.append(StageEstimate(stage.name, wait, run, runs, rpt))
    return CampaignEstimate(out)
