"""A stored run as :class:`station.analysis.run_data.RunData`: the one place that reads the store for analysis,
plots and exports, so that analysis itself stays free of any store backend (DESIGN section 2)."""

from __future__ import annotations

import re

from protocols.campaign import CampaignPlan
from protocols.cells import Cell
from protocols.program import StepProgram
from station.analysis.run_data import RunData
from station.store import RunRow, Store

#: a campaign stage whose name has one of these words lithiates the sample (``lithiation``, ``lithiate-host``); a
#: stage named for the lithiated state (``conductivity-lithiated``) is a measurement, not the lithiation
_LITHIATING = frozenset({"lithiation", "lithiate", "lithiating"})


def _lithiates(stage: str) -> bool:
    return not _LITHIATING.isdisjoint(re.split(r"[-_\s]+", stage.lower()))


def load_run(store: Store, run_id: str) -> RunData:
    """The run (an id or its unique prefix, as every command takes it) with all its records."""
    row = store.run(run_id)
    return run_data(row, store.records(row.id), lithiation=lithiation_label(store, row))


def run_data(row: RunRow, records, *, lithiation: str | None = None) -> RunData:  # type: ignore[no-untyped-def]
    return RunData(run_id=row.id, records=records, program=StepProgram.from_json(row.program),
                   cell=Cell.model_validate(row.cell), sample_id=row.sample_id, protocol_name=row.protocol_name,
                   campaign_stage=row.campaign_stage, lithiation=lithiation, parameters=dict(row.parameters))


def lithiation_label(store: Store, row: RunRow) -> str | None:
    """``"before"``/``"after"`` for a run of a campaign that lithiates its sample in another stage: the campaign
    says where the run stands, so conductivities are labelled by the plan and not guessed from the data."""
    if row.campaign_id is None or row.campaign_stage is None or _lithiates(row.campaign_stage):
        return None
    try:
        plan = CampaignPlan.model_validate_json(store.campaign(row.campaign_id).plan)
    except Exception:  # an unreadable plan leaves the run unlabelled rather than mislabelled
        return None
    names = [stage.name for stage in plan.stages]
    if row.campaign_stage not in names:
        return None
    here = names.index(row.campaign_stage)
    lithiating = [k for k, name in enumerate(names) if _lithiates(name)]
    if any(k < here for k in lithiating):
        return "after"
    if any(k > here for k in lithiating):
        return "before"
    return None
