"""What the store hands out and what it refuses with: the rows of runs, events, samples and campaigns as frozen
dataclasses (JSON columns decoded), and the exceptions every backend raises alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from station.run_policy import TERMINAL_STATES, UNCONFIRMED_STATES, RunState


class UnknownSample(Exception):
    """No sample has this id (or the id is taken, for a new one): the caller named it wrong."""


@dataclass(frozen=True)
class SampleRow:
    """One physical cell: the id a lab prints as a barcode, its cell record (SI, as bound), and its story."""

    id: str
    name: str
    created_at: float
    cell: dict[str, Any]
    cell_file: str | None = None
    operator: str | None = None
    notes: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class UnknownCampaign(Exception):
    """No campaign has this id (or more than one starts with it), or it cannot take the request (it has ended)."""


#: the campaign states that are final (station.campaign_policy.CampaignState names them all)
CAMPAIGN_ENDED = ("finished", "failed", "stopped")


@dataclass(frozen=True)
class CampaignRow:
    """A campaign as stored: its source and plan, where it is, and the operator requests not yet carried out."""

    id: str
    name: str
    sample_id: str
    created_at: float
    updated_at: float
    state: str
    source_file: str | None
    source_text: str
    plan: str
    """The validated plan (protocols.campaign.CampaignPlan as JSON), protocols' text included."""
    stage: int = 0
    """Index of the current stage."""
    location: str | None = None
    """The channel the sample is on, as far as the station knows (``None``: not known yet)."""
    waiting: str | None = None
    """Why the campaign waits (for an operator, or for a free channel); ``None`` when it does not."""
    pending: dict[str, Any] | None = None
    """The start that waits for a confirmation (or a free channel), or that a confirmation would retry."""
    confirm_requested: dict[str, Any] | None = None
    stop_requested: dict[str, Any] | None = None
    started_by: str | None = None
    confirmed_by: str | None = None
    message: str = ""
    station: str | None = None
    """The station whose service runs it; ``None`` for a campaign from before stations had names."""

    @property
    def active(self) -> bool:
        return self.state not in CAMPAIGN_ENDED


@dataclass(frozen=True)
class CampaignStepRow:
    """One run a campaign started: its stage, its role (run, chunk or rpt), the run, and how it ended."""

    id: int
    campaign_id: str
    stage: int
    stage_name: str
    role: str
    chunk: int | None
    first_cycle: int | None
    parameters: dict[str, str]
    channel: str | None
    run_id: str | None
    created_at: float
    ended_at: float | None = None
    outcome: str | None = None
    message: str = ""
    cycles: list[list[float | None]] | None = None
    """The cycles the run counted (charged and discharged): [run's cycle number, charge Ah, discharge Ah, CE]."""


@dataclass(frozen=True)
class CampaignEventRow:
    id: int
    campaign_id: str
    at: float
    kind: str
    message: str
    who: str | None
    data: dict[str, Any] | None


class UnknownRun(Exception):
    """No run has this id (or more than one starts with it): the caller named it wrong, the store is fine."""


class StoreError(Exception):
    """The data directory or database cannot be used; the message says where and what to do."""


class StoreUnreachable(StoreError):
    """The database could not be reached (a server that stopped, a network that went): nothing of the call was
    written. A station with a lab database buffers in its own store meanwhile (station.lab)."""


@dataclass(frozen=True)
class RunRow:
    id: str
    created_at: float
    updated_at: float
    state: RunState
    channel: str
    instrument: dict[str, Any]
    protocol_name: str
    protocol_file: str | None
    protocol_source: str
    parameters: dict[str, str]
    program: str
    cell: dict[str, Any]
    handle: dict[str, Any] | None
    dry_run: bool
    last_seq: int
    message: str
    stop_requested: str | None = None
    contact_lost_at: float | None = None
    started_at: float | None = None
    """When the station sent start to the instrument; ``None`` for a run that never got that far."""
    sample_id: str | None = None
    """The sample (physical cell) it ran on; ``None`` for a run given only a cell record."""
    campaign_id: str | None = None
    """The campaign that started it (station.campaigns), ``None`` for a run started on its own."""
    campaign_stage: str | None = None
    """The name of the campaign stage it ran for."""
    station: str | None = None
    """The station that created it and supervises it; ``None`` for a run from before stations had names."""

    @property
    def active(self) -> bool:
        return self.state not in TERMINAL_STATES

    @property
    def unconfirmed(self) -> bool:
        """Start may have reached the instrument, but no handle says so: reconcile with the instrument first."""
        return self.state in UNCONFIRMED_STATES and self.handle is None


@dataclass(frozen=True)
class EventRow:
    id: int
    run_id: str
    at: float
    test_time: float | None
    kind: str
    message: str
    data: dict[str, Any] | None


@dataclass(frozen=True)
class StationRow:
    """A station of the lab as it last said: when its service started and was last seen, where its API listens."""

    name: str
    started_at: float
    seen_at: float
    api_url: str | None
    pid: int | None
    version: str | None


class ChannelBusy(StoreError):
    def __init__(self, channel: str, run_id: str, state: str):
        self.channel, self.run_id, self.state = channel, run_id, state
        super().__init__(f"channel {channel} already has run {run_id} ({state}); stop it or wait for it to finish "
                         f"before starting another")


class ChannelOwned(ChannelBusy):
    """Another station owns the channel (it used it first): a run on it must start there. A kind of busy
    channel, so that whoever picks a free channel goes on to the next."""

    def __init__(self, channel: str, owner: str):
        self.channel, self.owner, self.run_id, self.state = channel, owner, None, None
        StoreError.__init__(self, f"channel {channel} belongs to station {owner}; start the run there, or, once "
                                  f"{owner} no longer has it, free it with `station db release-channel {channel}`")
