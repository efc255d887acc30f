"""Campaign policy as data: what a campaign does next, decided by pure functions (station.campaigns carries it out).

:func:`decide` is given the campaign as the engine observed it (:class:`CampaignView`: its plan, state, current
stage, the runs of that stage with their outcomes and the cycles each counted, the operator requests the service
has not carried out) and returns the :data:`Action` list the engine carries out in order. :func:`place` decides
where a stage runs: on the channel the sample is on, or on another one, which means waiting for an operator to move
the cell there and confirm. No store, instrument or clock is involved, so every rule is tested as a table
(tests/station/test_campaign_policy.py), like :mod:`station.run_policy`.

The rules:

- A stage's run that ended otherwise than its ``go_on_if.outcome`` allows (stopped, failed, tripped) holds the
  campaign with the run's reason; an operator's confirmation runs that step again, a stop ends the campaign.
- A stage in chunks runs its protocol N cycles at a time; after each chunk ``until`` is evaluated over the cycles of
  every chunk of the stage (numbered on across chunks), then the RPT runs on the same channel, then the next chunk,
  until ``until`` holds. A chunk that counted no cycle holds the campaign (it would otherwise chunk forever).
- When a stage is done its ``go_on_if`` conditions are checked: if one does not hold the campaign fails with it;
  otherwise the next stage starts, or after the last one the campaign is finished.
- A stage that must run elsewhere than where the sample is waits for an operator's confirmation that the cell has
  moved (an alert goes out); with no free channel of its kind it waits for one, and is looked at again every round.
- An operator's stop stops the campaign's active run (the run's own stop request, carried out by its supervisor)
  and ends the campaign as stopped once the run has ended; with no active run it ends at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Literal

from protocols.campaign import CampaignPlan, Condition, GoOnIf, StagePlan, Until


class CampaignState(StrEnum):
    PENDING = "pending"
    """Stored; the service starts it on its next round."""
    RUNNING = "running"
    """A run of the campaign is active (or its stage is being started)."""
    WAITING = "waiting"
    """Waits for an operator to move the sample and confirm, or for a free channel of the stage's kind."""
    HELD = "held"
    """A run ended otherwise than planned: an operator confirms to run that step again, or stops the campaign."""
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"


C = CampaignState
ENDED: tuple[CampaignState, ...] = (C.FINISHED, C.FAILED, C.STOPPED)
#: the states in which an operator's confirmation means something
CONFIRMABLE: tuple[CampaignState, ...] = (C.WAITING, C.HELD)
Role = Literal["run", "chunk", "rpt"]


# -- what the engine observed ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cycle:
    """One cycle a run counted: it both charged and discharged. ``number`` is the run's own cycle number."""

    number: int
    charge_ah: float
    discharge_ah: float
    ce: float | None


@dataclass(frozen=True)
class StepView:
    """One run the campaign started in the current stage."""

    role: Role
    chunk: int | None = None
    run_id: str | None = None
    outcome: str | None = None
    """The run's end state (finished, stopped, failed); ``None`` while it is active."""
    message: str = ""
    cycles: tuple[Cycle, ...] = ()
    stop_sent: bool = False
    """A stop of the active run was already requested (the campaign's, or anyone's)."""


@dataclass(frozen=True)
class Request:
    """An operator's confirmation or stop, stored for the service: who, when, and the channel a confirmation names."""

    by: str
    at: float = 0.0
    channel: str | None = None


@dataclass(frozen=True)
class Start:
    """A run the campaign is to start: a stage's single run, one chunk of it, or the RPT after a chunk."""

    stage: int
    role: Role
    chunk: int | None = None
    first_cycle: int | None = None
    """For a chunk: the stage's number of its first cycle (cycles are numbered on across chunks)."""
    cycles: int | None = None
    """For a chunk: how many cycles it runs (the value of the protocol's cycle-count parameter)."""

    @property
    def stays(self) -> bool:
        """Runs where the stage already runs: the RPT after a chunk, and every chunk after the first."""
        return self.role == "rpt" or (self.role == "chunk" and (self.chunk or 1) > 1)

    def overrides(self, plan: CampaignPlan) -> dict[str, str]:
        """The ``--set`` values of the run: the stage's (or its RPT's) with the chunk size in the cycle parameter."""
        stage = plan.stages[self.stage]
        if self.role == "rpt":
            assert stage.rpt is not None
            return dict(stage.rpt.set)
        values = dict(stage.set)
        if self.role == "chunk":
            assert stage.chunks is not None and self.cycles is not None
            values[stage.chunks.parameter] = str(self.cycles)
        return values

    def describe(self, plan: CampaignPlan) -> str:
        name = plan.stages[self.stage].name
        if self.role == "chunk":
            assert self.first_cycle is not None and self.cycles is not None
            return f"stage {name}, chunk {self.chunk} ({_span(self.first_cycle, self.first_cycle + self.cycles - 1)} " \
                   "of the stage)"
        if self.role == "rpt":
            return f"stage {name}, RPT after chunk {self.chunk}"
        return f"stage {name}"

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Start:
        return cls(**{k: doc.get(k) for k in ("stage", "role", "chunk", "first_cycle", "cycles")})


@dataclass(frozen=True)
class CampaignView:
    campaign_id: str
    sample_id: str
    plan: CampaignPlan
    state: CampaignState
    stage: int
    steps: tuple[StepView, ...] = ()
    """The runs of the current stage, oldest first."""
    pending: Start | None = None
    """What waits (for a confirmation or a free channel), or what a confirmation retries when held."""
    target: str | None = None
    """Where the waiting start is to run once confirmed (``None``: no channel was free)."""
    confirm: Request | None = None
    stop: Request | None = None


# -- actions ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Note:
    """Record a decision (and tell the service's log)."""

    message: str


@dataclass(frozen=True)
class Launch:
    """Start a run. ``channel``: where an operator confirmed the sample is (no placement then); ``confirmed_by``:
    whose confirmation it carries out."""

    start: Start
    channel: str | None = None
    confirmed_by: str | None = None


@dataclass(frozen=True)
class Hold:
    """Wait for an operator: a run ended otherwise than planned. ``retry`` is what a confirmation starts."""

    reason: str
    retry: Start


@dataclass(frozen=True)
class StopRun:
    """Request the stop of the campaign's active run; its supervisor carries it out and confirms it."""

    run_id: str
    why: str


@dataclass(frozen=True)
class End:
    state: CampaignState
    reason: str


@dataclass(frozen=True)
class Dismiss:
    """Clear an operator's confirmation that has nothing to confirm, saying why."""

    why: str


Action = Note | Launch | Hold | StopRun | End | Dismiss


# -- placement ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChannelView:
    """A configured channel as placement needs it: which instrument and kind, whether a run (or another campaign's
    waiting stage) holds it, and whether its capabilities cover the program to run."""

    id: str
    instrument: str
    kind: str
    busy: bool = False
    fits: bool = True


@dataclass(frozen=True)
class Stay:
    channel: str


@dataclass(frozen=True)
class Move:
    channel: str
    reason: str


@dataclass(frozen=True)
class NoChannel:
    reason: str


Placement = Stay | Move | NoChannel


def place(stage: StagePlan, location: str | None, channels: Sequence[ChannelView], *, campaign_id: str,
          sample_id: str) -> Placement:
    """Where ``stage`` runs, given the channel the sample is on (``None``: not known).

    It stays where the sample is when that channel is of the stage's kind (or is the channel the stage names) and
    can run the program; otherwise it needs the sample on another channel: the one the stage names, or the first
    free one of its kind that can run the program. Moving a cell (to another instrument, or another channel) is
    an operator's job, so that is a :class:`Move` the operator must confirm."""
    by_id = {c.id: c for c in channels}
    here = by_id.get(location) if location else None
    confirm = f"then confirm with `station campaign confirm {campaign_id}`"
    if stage.channel is not None:
        if stage.channel == location:
            return Stay(location)
        target = by_id.get(stage.channel)
        if target is not None and target.busy:
            return NoChannel(f"stage {stage.name} runs on channel {stage.channel}, which is busy; waiting for it")
        return Move(stage.channel, _move(stage, sample_id, location, stage.channel, confirm))
    if here is not None and here.fits and (stage.instrument is None or here.kind == stage.instrument):
        return Stay(here.id)
    candidates = [c for c in channels if not c.busy and c.fits and (stage.instrument is None
                                                                       or c.kind == stage.instrument)]
    if here is not None:  # the same instrument first: the shortest move
        candidates.sort(key=lambda c: c.instrument != here.instrument)
    if not candidates:
        return NoChannel(f"stage {stage.name} needs a free {stage.instrument or 'channel'}"
                         f"{' channel' if stage.instrument else ''} that can run it; none is free now, waiting")
    return Move(candidates[0].id, _move(stage, sample_id, location, candidates[0].id, confirm))


def _move(stage: StagePlan, sample_id: str, location: str | None, target: str, confirm: str) -> str:
    if location is None:
        return f"stage {stage.name} runs on {stage.where()}: place sample {sample_id} on channel {target}, {confirm}"
    return (f"stage {stage.name} runs on {stage.where()}: move sample {sample_id} from {location} to {target}, "
            f"{confirm}")


# -- conditions ---------------------------------------------------------------------------------------------------

def stage_cycles(steps: Sequence[StepView]) -> list[Cycle]:
    """The stage's cycles in order across its chunks (the RPTs' cycles are their own, not the stage's)."""
    return [c for s in steps if s.role != "rpt" for c in s.cycles]


def _span(first: int, last: int) -> str:
    return f"cycle {first}" if first == last else f"cycles {first}-{last}"


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def _retention(cycles: Sequence[Cycle], condition: Condition) -> float | None:
    reference = condition.cycle or 1
    if len(cycles) < reference or cycles[reference - 1].discharge_ah <= 0:
        return None
    return cycles[-1].discharge_ah / cycles[reference - 1].discharge_ah


def until_reached(until: Until | None, cycles: Sequence[Cycle]) -> str | None:
    """Why a stage in chunks stops cycling now (any condition of ``until``), or ``None``."""
    if until is None or not cycles:
        return None
    n = len(cycles)
    if until.cycles is not None and n >= until.cycles:
        return f"{n} cycles run (until cycles: {until.cycles})"
    if until.retention is not None:
        kept = _retention(cycles, until.retention)
        if kept is not None and until.retention.holds(kept):
            return (f"the discharge capacity of cycle {n} is {_pct(kept)} of cycle {until.retention.cycle} "
                    f"(until retention {until.retention.text})")
    if until.ce is not None:
        ce = cycles[-1].ce
        if ce is not None and math.isfinite(ce) and until.ce.holds(ce):
            return f"the CE of cycle {n} is {ce * 100:.2f} % (until ce {until.ce.text})"
    return None


def go_on_problem(go_on_if: GoOnIf, cycles: Sequence[Cycle]) -> str | None:
    """Which condition to go on does not hold (the first), or ``None`` when all do (the outcome is checked apart)."""
    n = len(cycles)
    if go_on_if.cycles is not None and not go_on_if.cycles.holds(n):
        return f"the stage ran {n} cycle{'s' if n != 1 else ''}, not {go_on_if.cycles.text}"
    if go_on_if.ce is not None:
        which = go_on_if.ce.cycle or n
        if which < 1 or which > n:
            return f"there is no cycle {which} to take the CE of (the stage ran {n})" if which else \
                "the stage ran no cycle to take the CE of"
        ce = cycles[which - 1].ce
        if ce is None or not math.isfinite(ce):
            return f"the CE of cycle {which} cannot be computed"
        if not go_on_if.ce.holds(ce):
            return f"the CE of cycle {which} is {ce * 100:.2f} %, not {go_on_if.ce.text}"
    if go_on_if.retention is not None:
        kept = _retention(cycles, go_on_if.retention)
        if kept is None:
            return f"no retention against cycle {go_on_if.retention.cycle}: the stage ran {n} cycles"
        if not go_on_if.retention.holds(kept):
            return (f"the discharge capacity of cycle {n} is {_pct(kept)} of cycle {go_on_if.retention.cycle}, not "
                    f"{go_on_if.retention.text}")
    return None


def next_chunk(plan: CampaignPlan, stage: int, steps: Sequence[StepView]) -> Start:
    """The stage's next chunk: numbered on from the last, its cycles numbered on from the stage's last cycle, and
    shortened so that the stage ends exactly at ``until.cycles``."""
    spec = plan.stages[stage]
    assert spec.chunks is not None
    done = len(stage_cycles(steps))
    number = 1 + max((s.chunk or 0 for s in steps if s.role == "chunk"), default=0)
    size = spec.chunks.cycles
    if spec.until is not None and spec.until.cycles is not None:
        size = max(1, min(size, spec.until.cycles - done))
    return Start(stage, "chunk", chunk=number, first_cycle=done + 1, cycles=size)


def first_start(plan: CampaignPlan, stage: int) -> Start:
    return next_chunk(plan, stage, ()) if plan.stages[stage].chunks is not None else Start(stage, "run")


# -- the policy ------------------------------------------------------------------------------------------------

def decide(view: CampaignView) -> list[Action]:
    """What to do about a campaign now."""
    if view.state in ENDED:
        return []
    last = view.steps[-1] if view.steps else None
    active = last is not None and last.outcome is None
    if view.stop is not None:
        who = view.stop.by
        if active:
            assert last is not None
            if last.run_id is None or last.stop_sent:
                return []  # the run's stop is requested: the campaign ends once the run has
            return [StopRun(last.run_id, f"campaign {view.campaign_id} stopped by {who}")]
        return [End(C.STOPPED, f"stopped by {who} at stage {view.plan.stages[view.stage].name}")]
    if view.state is C.WAITING and view.pending is not None:
        channel = (view.confirm.channel if view.confirm else None) or view.target
        if view.confirm is not None and channel is not None:
            return [Launch(view.pending, channel=channel, confirmed_by=view.confirm.by)]
        if view.confirm is not None:
            return [Dismiss("no channel was free for the stage: confirm with --channel, naming where the sample is")]
        return [] if view.target is not None else [Launch(view.pending)]  # look for a free channel again
    if view.state is C.HELD and view.pending is not None:
        if view.confirm is None:
            return []
        return [Note(f"{view.confirm.by} confirmed: {view.pending.describe(view.plan)} runs again"),
                Launch(view.pending, channel=view.confirm.channel, confirmed_by=view.confirm.by)]
    actions: list[Action] = []
    if view.confirm is not None:
        actions.append(Dismiss(f"nothing waited for a confirmation (the campaign is {view.state})"))
    if active:
        return actions
    if last is None:
        return [*actions, Launch(first_start(view.plan, view.stage))]
    return actions + _after(view, last)


def _after(view: CampaignView, last: StepView) -> list[Action]:
    """The last run of the stage has ended: hold, go on with the stage, or finish it."""
    stage = view.plan.stages[view.stage]
    allowed = ("finished",) if stage.go_on_if.outcome == "finished" else ("finished", "stopped")
    cycles = stage_cycles(view.steps)
    retry = _again(view, last)
    what = _step_text(stage, last, view.steps)
    if last.outcome not in allowed:
        return [Hold(f"{what}: run {last.run_id or '-'} ended {last.outcome}"
                     + (f" ({last.message})" if last.message else "") + "; `station campaign confirm "
                     f"{view.campaign_id}` runs it again, `station campaign stop {view.campaign_id}` ends the campaign",
                     retry)]
    if last.role == "chunk":
        if not last.cycles:
            return [Hold(f"{what}: its run {last.run_id} ended without a full cycle (no charge and discharge), so "
                         f"cycling would never end; check the protocol and the cell, then confirm to run the next "
                         f"chunk or stop the campaign", retry)]
        reached = until_reached(stage.until, cycles)
        first = len(cycles) - len(last.cycles) + 1
        done = f"{what} finished: {_span(first, len(cycles))}" + _figures(stage.until, cycles)
        if stage.rpt is not None:
            then = f"; {reached}: cycling ends after the RPT" if reached else "; the RPT runs next"
            return [Note(done + then), Launch(Start(view.stage, "rpt", chunk=last.chunk))]
        if reached:
            return [Note(f"{done}; {reached}: cycling ends"), *_stage_done(view, cycles)]
        return [Note(done), Launch(next_chunk(view.plan, view.stage, view.steps))]
    if last.role == "rpt":
        reached = until_reached(stage.until, cycles)
        if reached:
            return [Note(f"{what} finished; {reached}"), *_stage_done(view, cycles)]
        following = next_chunk(view.plan, view.stage, view.steps)
        return [Note(f"{what} finished; cycling goes on from cycle {following.first_cycle}"), Launch(following)]
    return _stage_done(view, cycles)


def _again(view: CampaignView, last: StepView) -> Start:
    """What a confirmation of a held campaign starts: the same step (a chunk: the next chunk, counting the cycles
    the interrupted one ran)."""
    if last.role == "chunk":
        return next_chunk(view.plan, view.stage, view.steps)
    return Start(view.stage, last.role, chunk=last.chunk)


def _step_text(stage: StagePlan, step: StepView, steps: Sequence[StepView]) -> str:
    if step.role == "chunk":
        return f"stage {stage.name}, chunk {step.chunk}"
    if step.role == "rpt":
        return f"stage {stage.name}, RPT after chunk {step.chunk}"
    return f"stage {stage.name}"


def _figures(until: Until | None, cycles: Sequence[Cycle]) -> str:
    """The figures ``until`` watches, after a chunk: the retention and CE of the last cycle."""
    parts = []
    if until is not None and until.retention is not None:
        kept = _retention(cycles, until.retention)
        if kept is not None:
            parts.append(f"retention {_pct(kept)} of cycle {until.retention.cycle}")
    ce = cycles[-1].ce
    if ce is not None and math.isfinite(ce):
        parts.append(f"CE {ce * 100:.2f} %")
    return f" ({', '.join(parts)})" if parts else ""


def _stage_done(view: CampaignView, cycles: Sequence[Cycle]) -> list[Action]:
    stage = view.plan.stages[view.stage]
    problem = go_on_problem(stage.go_on_if, cycles)
    if problem is not None:
        return [End(C.FAILED, f"stage {stage.name}: the condition to go on does not hold: {problem}")]
    done = f"stage {stage.name} done" + (f" ({len(cycles)} cycle{'s' if len(cycles) != 1 else ''})" if cycles else "")
    if view.stage + 1 >= len(view.plan.stages):
        n = len(view.plan.stages)
        return [Note(done), End(C.FINISHED, f"all {n} stage{'s' if n != 1 else ''} done")]
    return [Note(done), Launch(first_start(view.plan, view.stage + 1))]
