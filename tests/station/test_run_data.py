"""load_run labels a run before or after lithiation from its campaign's plan, never from the data."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from protocols.campaign import load_campaign
from protocols.cells import load_cell
from station.run_data import lithiation_label
from station.store import RunRow

PLAN = load_campaign("p7-before-after-lithiation", load_cell("host-blocking")).plan.to_json()


class _Store:
    """Only what lithiation_label reads: a campaign's plan."""

    def campaign(self, campaign_id: str) -> SimpleNamespace:
        assert campaign_id == "C1"
        return SimpleNamespace(plan=PLAN)


ROW = RunRow(id="R", created_at=0.0, updated_at=0.0, state="finished", channel="sim-biologic/1", instrument={},
             protocol_name="conductivity", protocol_file=None, protocol_source="", parameters={}, program="{}",
             cell={}, handle=None, dry_run=True, last_seq=0, message="", campaign_id="C1")


@pytest.mark.parametrize(("stage", "label"), [("conductivity-pristine", "before"),
                                              ("conductivity-lithiated", "after"),
                                              ("lithiation", None),  # the lithiation itself is neither
                                              ("not-in-the-plan", None)])
def test_the_campaign_stage_decides_before_or_after_lithiation(stage, label):
    assert lithiation_label(_Store(), replace(ROW, campaign_stage=stage)) == label


def test_a_run_outside_a_campaign_has_no_label():
    assert lithiation_label(_Store(), replace(ROW, campaign_id=None, campaign_stage=None)) is None
