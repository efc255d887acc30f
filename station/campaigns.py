"""Campaigns: the engine that carries a campaign (protocols.campaign) through its stages on one sample.

The station service calls :meth:`CampaignEngine.tick` once per supervision round. For every active campaign the
engine *observes*: the run the campaign last started has ended? then its outcome and the cycles it counted
(:func:`station.analysis.cycling.cycle_table` on the stored records, each cycle that both charged and discharged) are
written to the campaign's step. Then it asks the pure policy (:func:`station.campaign_policy.decide`) what to do,
and carries that out: start the next run (a stage, one chunk of it, the RPT after a chunk) on the channel
:func:`~station.campaign_policy.place` chooses, wait for an operator to move the sample (with an alert), hold the
campaign after a run that ended otherwise than planned, request the stop of its run, or end it. Every decision is
a campaign event; every operator action is an event with who did it.

Operators act on the store (``station campaign confirm|stop``, the API): their request is stored with who and when,
and the service carries it out on its next round, so a confirmation or a stop never needs the service's process.

Crash safety: before a run is started its step is written (the intent), then the run is started and linked to the
campaign and stage. A service killed in between leaves a step without a run: the next tick adopts the sample's run
created since the intent if there is one (the start did reach the store), or starts the step again if there is
none. A run is started only by this engine in the one service of the data directory.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from protocols.campaign import CampaignPlan, LoadedCampaign
from protocols.cells import Cell
from protocols.clock import Clock
from protocols.errors import Problem
from protocols.program import StepProgram
from station.analysis.cycling import cycle_table
from station.campaign_policy import (
    CONFIRMABLE,
    ENDED,
    Action,
    CampaignState,
    CampaignView,
    ChannelView,
    Cycle,
    Dismiss,
    End,
    Hold,
    Launch,
    Move,
    NoChannel,
    Note,
    Request,
    Start,
    Stay,
    StepView,
    StopRun,
    decide,
    first_start,
    place,
)
from station.config import StationConfig
from station.documents import iso_utc
from station.instruments import channel_ranges, kind_capabilities, program_problems
from station.run_data import run_data
from station.run_policy import TERMINAL_STATES
from station.samples import ALPHABET
from station.session import Station
from station.store import CampaignRow, CampaignStepRow, Store, StoreError, UnknownCampaign

C = CampaignState
#: the outcome of a step whose run was never stored (the service stopped between the intent and the start)
NOT_STARTED = "not-started"


class CampaignError(Exception):
    """A campaign request that cannot be carried out as asked (nothing to confirm, a wrong channel); the message
    says why and what to do."""


# -- what the CLI and the API call (store only) ------------------------------------------------------------------

def new_campaign_id(clock: Clock, store: Store) -> str:
    """``C`` + yymmdd + four characters that cannot be misread, like sample ids."""
    day = datetime.fromtimestamp(clock.unix(), UTC).strftime("%y%m%d")
    while True:
        candidate = f"C{day}-{''.join(secrets.choice(ALPHABET) for _ in range(4))}"
        try:
            store.campaign(candidate)
        except UnknownCampaign:
            return candidate


def instrument_problems(loaded: LoadedCampaign, cell: Cell, config: StationConfig) -> list[Problem]:
    """What the stages' channels cannot run, from their declared capabilities (nothing is connected), each at the
    stage's ``instrument:`` or ``channel:`` in the campaign file: refused before the campaign is stored."""
    problems: list[Problem] = []
    for i, stage in enumerate(loaded.plan.stages):
        key = "channel" if stage.channel else "instrument" if stage.instrument else None
        if key is None:
            continue
        if stage.channel:
            instrument, chan = config.find(stage.channel)  # UnknownChannel: the caller reports it
            kinds = [(instrument.kind, channel_ranges(chan))]
        else:
            kinds = [(inst.kind, channel_ranges(c)) for inst in config.instruments for c in inst.channels
                     if inst.kind == stage.instrument]
            if not kinds:
                problems.append(loaded.source.problem(("stages", i, key), f"no {stage.instrument} channel is "
                                                      "configured in station.yaml",
                                                      expected=f"a {stage.instrument} instrument in station.yaml",
                                                      found="none"))
                continue
        programs = [("protocol", stage.protocol.load(first_start(loaded.plan, i).overrides(loaded.plan)))]
        if stage.rpt is not None:
            programs.append(("RPT", stage.rpt.protocol.load(dict(stage.rpt.set))))
        for what, protocol in programs:
            program = protocol.bind(stage.stage_cell(cell))
            assert program is not None
            refusals = [program_problems(kind_capabilities(kind, ranges), program) for kind, ranges in kinds]
            if all(refusals):  # no channel of the kind (or the named one) can run it
                problems.append(loaded.source.problem(
                    ("stages", i, key), f"{stage.where()} cannot run the {what} of stage {stage.name}: "
                    + "; ".join(refusals[0]), expected=f"a program {stage.where()} can run", found=protocol.name))
    return problems


def start_campaign(store: Store, clock: Clock, loaded: LoadedCampaign, sample_id: str, *, channel: str | None = None,
                   who: str | None = None, config: StationConfig | None = None) -> CampaignRow:
    """Store a campaign (``pending``) on a sample; the service starts it on its next round. ``channel``: where the
    sample is now. With ``config``, the channels (``channel`` and the stages') are checked against station.yaml and
    stored as NAME/ID (:class:`~station.config.UnknownChannel` if one is not configured)."""
    store.sample(sample_id)  # UnknownSample
    plan = loaded.plan
    if config is not None:
        channel = _channel_id(config, channel) if channel else None
        plan = plan.model_copy(update={"stages": tuple(
            s.model_copy(update={"channel": _channel_id(config, s.channel)}) if s.channel else s
            for s in plan.stages)})
    now = clock.unix()
    row = CampaignRow(id=new_campaign_id(clock, store), name=loaded.name, sample_id=sample_id, created_at=now,
                      updated_at=now, state=C.PENDING.value, source_file=loaded.source.file,
                      source_text=loaded.source.text, plan=plan.to_json(), stage=0, location=channel,
                      started_by=who)
    stages = ", ".join(s.name for s in loaded.plan.stages)
    store.create_campaign(row, f"started by {who or 'an operator'} on sample {sample_id}: {len(loaded.plan.stages)} "
                               f"stages ({stages})" + (f"; the sample is on {channel}" if channel else ""))
    return store.campaign(row.id)


def _channel_id(config: StationConfig, channel: str) -> str:
    instrument, chan = config.find(channel)
    return f"{instrument.name}/{chan.id}"


def request_confirm(store: Store, clock: Clock, config: StationConfig, campaign_id: str, who: str,
                    channel: str | None = None) -> CampaignRow:
    """Store an operator's confirmation (the sample is where the campaign asked, or on ``channel``; or: run the
    held step again) for the service to carry out on its next round."""
    row = store.campaign(campaign_id)
    if row.state not in CONFIRMABLE:
        raise CampaignError(f"campaign {row.id} is {row.state}; there is nothing to confirm (only a waiting or held "
                            f"campaign takes a confirmation)")
    plan = CampaignPlan.from_json(row.plan)
    pending = Start.from_doc(row.pending) if row.pending else None
    if channel is not None:
        instrument, chan = config.find(channel)  # UnknownChannel
        channel = f"{instrument.name}/{chan.id}"
        stage = plan.stages[pending.stage if pending else row.stage]
        if stage.channel and stage.channel != channel:
            raise CampaignError(f"stage {stage.name} runs on channel {stage.channel}, not {channel}")
        if stage.instrument and instrument.kind != stage.instrument:
            raise CampaignError(f"stage {stage.name} runs on a {stage.instrument} channel; {channel} is "
                                f"{instrument.kind}")
    elif row.state == C.WAITING and not (row.pending or {}).get("target"):
        raise CampaignError(f"campaign {row.id} waits for a free channel, so there is no channel to confirm; give "
                            f"--channel with the channel the sample is on")
    target = channel or (row.pending or {}).get("target")
    now = clock.unix()
    what = (f"confirmed by {who}: the sample is on {target}" if row.state == C.WAITING else
            f"confirmed by {who}: run the held step again" + (f" on {channel}" if channel else ""))
    if not store.request_campaign(row.id, "confirm", {"by": who, "at": now, "channel": channel}, now, what,
                                  states=[s.value for s in CONFIRMABLE]):
        raise CampaignError(f"campaign {row.id} changed meanwhile and is {store.campaign(row.id).state}; look at it "
                            f"again (station campaign status {row.id})")
    return store.campaign(row.id)


def request_stop(store: Store, clock: Clock, campaign_id: str, who: str) -> CampaignRow:
    """Store an operator's stop: the service stops the campaign's active run and ends the campaign."""
    row = store.campaign(campaign_id)
    if not row.active:
        raise CampaignError(f"campaign {row.id} is {row.state}; there is nothing to stop")
    now = clock.unix()
    active = [s.value for s in C if s not in ENDED]
    if not store.request_campaign(row.id, "stop", {"by": who, "at": now}, now, f"stop requested by {who}",
                                  states=active):
        raise CampaignError(f"campaign {row.id} ended meanwhile ({store.campaign(row.id).state})")
    return store.campaign(row.id)


def campaign_doc(store: Store, row: CampaignRow, *, detail: bool = True) -> dict[str, Any]:
    """A campaign as `station campaign status --json` and the API show it (times ISO 8601 UTC, capacities in Ah)."""
    plan = CampaignPlan.from_json(row.plan)
    stage = plan.stages[row.stage] if row.stage < len(plan.stages) else None
    doc: dict[str, Any] = {
        "campaign_id": row.id, "name": row.name, "sample_id": row.sample_id, "state": row.state,
        "stage": {"index": row.stage, "name": stage.name if stage else None, "count": len(plan.stages)},
        "location": row.location, "waiting": row.waiting, "message": row.message,
        "target": (row.pending or {}).get("target"), "started_by": row.started_by, "confirmed_by": row.confirmed_by,
        "confirm_pending": row.confirm_requested, "stop_pending": row.stop_requested,
        "created_at": iso_utc(row.created_at), "updated_at": iso_utc(row.updated_at), "source_file": row.source_file}
    for key in ("confirm_pending", "stop_pending"):
        if doc[key]:
            doc[key] = {**doc[key], "at": iso_utc(doc[key].get("at"))}
    if not detail:
        return doc
    steps = store.campaign_steps(row.id)
    stages = []
    for i, spec in enumerate(plan.stages):
        numbered = 0
        mine = []
        for step in steps:
            if step.stage != i or step.outcome == NOT_STARTED:
                continue
            counted = step.cycles or []
            entry: dict[str, Any] = {"role": step.role, "chunk": step.chunk, "run_id": step.run_id,
                                     "channel": step.channel, "parameters": step.parameters,
                                     "outcome": step.outcome, "message": step.message,
                                     "started_at": iso_utc(step.created_at), "ended_at": iso_utc(step.ended_at)}
            if step.role != "rpt":
                entry["cycles"] = [{"cycle": numbered + k + 1, "run_cycle": c[0], "charge_ah": c[1],
                                    "discharge_ah": c[2], "ce": c[3]} for k, c in enumerate(counted)]
                if step.role == "chunk":
                    entry["first_cycle"] = step.first_cycle
                numbered += len(counted)
            else:
                entry["cycles"] = [{"run_cycle": c[0], "charge_ah": c[1], "discharge_ah": c[2], "ce": c[3]}
                                   for c in counted]
            mine.append(entry)
        stages.append({"name": spec.name, "protocol": spec.protocol.name, "where": spec.where(),
                       "chunks": spec.chunks.cycles if spec.chunks else None, "cycles": numbered, "runs": mine})
    doc["stages"] = stages
    doc["events"] = [{"at": iso_utc(e.at), "kind": e.kind, "message": e.message, "who": e.who}
                     for e in store.campaign_events(row.id)]
    return doc


# -- the engine --------------------------------------------------------------------------------------------------

@dataclass
class _Context:
    """One campaign while it is advanced: its row as last written, its plan and its sample's cell."""

    row: CampaignRow
    plan: CampaignPlan
    cell: Cell


class CampaignEngine:
    """Carries out campaigns in the station service: :meth:`tick` once per round."""

    def __init__(self, station: Station):
        self.station = station
        self._plans: dict[str, CampaignPlan] = {}
        self._cells: dict[str, Cell] = {}
        self._trouble: dict[str, str] = {}
        """The last error advancing each campaign: told once, not every round."""

    @property
    def store(self) -> Store:
        return self.station.store

    # -- operator actions (store requests: the next tick carries them out) ----------------------------------

    def start(self, loaded: LoadedCampaign, sample_id: str, *, channel: str | None = None,
              who: str | None = None) -> CampaignRow:
        return start_campaign(self.store, self.station.clock, loaded, sample_id, channel=channel, who=who,
                              config=self.station.config)

    def confirm(self, campaign_id: str, who: str, channel: str | None = None) -> CampaignRow:
        return request_confirm(self.store, self.station.clock, self.station.config, campaign_id, who, channel)

    def stop(self, campaign_id: str, who: str) -> CampaignRow:
        return request_stop(self.store, self.station.clock, campaign_id, who)

    def status(self, campaign_id: str | None = None) -> dict[str, Any] | list[dict[str, Any]]:
        if campaign_id is not None:
            return campaign_doc(self.store, self.store.campaign(campaign_id))
        return [campaign_doc(self.store, row, detail=False) for row in self.store.campaigns()]

    # -- the round --------------------------------------------------------------------------------------------

    def tick(self) -> list[str]:
        """Advance every active campaign; one note per decision, for the service's log. An error advancing one
        campaign (a damaged row, a store that cannot be written) is told once and tried again next round; it never
        stops the service or the other campaigns."""
        notes: list[str] = []
        try:
            active = self.store.campaigns(active_only=True)
        except StoreError as exc:  # the runs' supervision goes on; the campaigns wait for the store
            why = f"the store cannot be read ({exc})"
            if self._trouble.get("") != why:
                self._trouble[""] = why
                notes.append(f"campaigns: {why}; trying again every round")
            return notes
        self._trouble.pop("", None)
        for row in active:
            try:
                notes += self._advance(row)
                self._trouble.pop(row.id, None)
            except Exception as exc:  # the service must go on supervising every run
                why = f"{type(exc).__name__}: {exc}"
                if self._trouble.get(row.id) != why:
                    self._trouble[row.id] = why
                    notes.append(f"campaign {row.id}: could not advance it ({why}); trying again every round")
                    with contextlib.suppress(Exception):
                        self.store.add_campaign_event(row.id, "warning", f"could not advance the campaign: {why}",
                                                      self.station.clock.unix())
        return notes

    def _plan(self, row: CampaignRow) -> CampaignPlan:
        if row.id not in self._plans:
            self._plans[row.id] = CampaignPlan.from_json(row.plan)
        return self._plans[row.id]

    def _cell(self, row: CampaignRow) -> Cell:
        if row.id not in self._cells:
            self._cells[row.id] = Cell.model_validate(self.store.sample(row.sample_id).cell)
        return self._cells[row.id]

    def _advance(self, row: CampaignRow) -> list[str]:
        plan = self._plan(row)
        ctx = _Context(row, plan, self._cell(row))
        steps = self._observe(ctx)
        pending = Start.from_doc(row.pending) if row.pending else None
        view = CampaignView(
            campaign_id=row.id, sample_id=row.sample_id, plan=plan, state=C(row.state), stage=row.stage,
            steps=tuple(steps), pending=pending, target=(row.pending or {}).get("target"),
            confirm=Request(**row.confirm_requested) if row.confirm_requested else None,
            stop=Request(**{k: v for k, v in row.stop_requested.items() if k in ("by", "at")})
            if row.stop_requested else None)
        notes: list[str] = []
        for action in decide(view):
            notes += self._carry_out(ctx, action)
        return notes

    # -- observing ------------------------------------------------------------------------------------------

    def _observe(self, ctx: _Context) -> list[StepView]:
        """Settle the campaign's open step with the store (its run ended? a start that a dead process left), and
        return the current stage's steps as the policy sees them."""
        steps = self.store.campaign_steps(ctx.row.id)
        for step in steps:
            if step.outcome is None:
                self._settle(ctx, step)
        steps = self.store.campaign_steps(ctx.row.id)
        views = []
        for step in steps:
            if step.stage != ctx.row.stage or step.outcome == NOT_STARTED:
                continue
            stop_sent = False
            if step.outcome is None and step.run_id is not None:
                stop_sent = self.store.run(step.run_id).stop_requested is not None
            cycles = tuple(Cycle(int(c[0] or 0), float(c[1] or 0.0), float(c[2] or 0.0),
                                 None if c[3] is None else float(c[3])) for c in step.cycles or [])
            views.append(StepView(role=step.role, chunk=step.chunk, run_id=step.run_id,  # type: ignore[arg-type]
                                  outcome=step.outcome, message=step.message, cycles=cycles, stop_sent=stop_sent))
        return views

    def _settle(self, ctx: _Context, step: CampaignStepRow) -> None:
        run_id = step.run_id
        if run_id is None:
            run_id = self._launched(ctx.row.sample_id, step.created_at)
            if run_id is None:  # the process that meant to start it died before the run was stored
                self.store.update_campaign_step(step.id, outcome=NOT_STARTED, ended_at=self.station.clock.unix(),
                                                message="the service stopped before the run was stored; started "
                                                        "again")
                self.store.add_campaign_event(ctx.row.id, "decision", f"stage {step.stage_name}: a start that never "
                                              "reached the store (the service stopped); starting it again",
                                              self.station.clock.unix())
                return
            self.store.link_run(run_id, ctx.row.id, step.stage_name)
            self.store.update_campaign_step(step.id, run_id=run_id)
        run = self.store.run(run_id)
        if run.state not in TERMINAL_STATES:
            return
        cycles = self._cycles(run_id)
        self.store.update_campaign_step(step.id, outcome=str(run.state), message=run.message, ended_at=run.updated_at,
                                        cycles=cycles)

    def _cycles(self, run_id: str) -> list[list[float | None]]:
        """The cycles a run counted: every cycle that both charged and discharged, [cycle, Q charge, Q discharge,
        CE] in Ah, from the stored records."""
        run = self.store.run(run_id)
        records = self.store.records(run_id)
        if not len(records):
            return []
        summary = cycle_table(run_data(run, records))
        counted = (summary.charge_ah > 0) & (summary.discharge_ah > 0)
        return [[int(c), float(q_c), float(q_d), float(ce) if np.isfinite(ce) else None]
                for c, q_c, q_d, ce in zip(summary.cycle[counted], summary.charge_ah[counted],
                                           summary.discharge_ah[counted], summary.ce[counted], strict=True)]

    def _launched(self, sample_id: str, since: float) -> str | None:
        """The sample's run created since a start's intent and not yet linked to a campaign: the run that start
        stored before its process died (or before it raised)."""
        found = [r for r in self.store.runs_of_sample(sample_id) if r.created_at >= since and r.campaign_id is None]
        return found[-1].id if found else None

    # -- carrying out ---------------------------------------------------------------------------------------

    def _event(self, ctx: _Context, text: str, *, kind: str = "decision", who: str | None = None,
               **fields: Any) -> str:
        """Record a decision (``text``) and the campaign columns it changes, in one transaction."""
        self.store.update_campaign(ctx.row.id, self.station.clock.unix(), event=(kind, text), who=who, **fields)
        ctx.row = self.store.campaign(ctx.row.id)
        return f"campaign {ctx.row.id}: {text}"

    def _alert(self, ctx: _Context, message: str) -> None:
        if self.station.alerts is not None:
            self.station.alerts.notify("campaign", ctx.row.id, f"sample {ctx.row.sample_id}: {message}")

    def _carry_out(self, ctx: _Context, action: Action) -> list[str]:
        match action:
            case Note(message):
                return [self._event(ctx, message)]
            case Dismiss(why):
                who = (ctx.row.confirm_requested or {}).get("by")
                return [self._event(ctx, f"the confirmation by {who} is set aside: {why}", confirm_requested=None)]
            case StopRun(run_id, why):
                self.store.request_stop(run_id, why, self.station.clock.unix())
                return [self._event(ctx, f"stopping run {run_id} ({why}); the campaign ends once the instrument has "
                                         f"stopped it")]
            case End(state, reason):
                note = self._event(ctx, f"{state}: {reason}", state=state.value, message=reason, waiting=None,
                                   pending=None, confirm_requested=None, stop_requested=None)
                self._alert(ctx, f"campaign {state}: {reason}")
                self._plans.pop(ctx.row.id, None)
                self._cells.pop(ctx.row.id, None)
                return [note]
            case Hold(reason, retry):
                note = self._event(ctx, f"held: {reason}", state=C.HELD.value, waiting=reason, message=reason,
                                   pending=retry.to_doc(), confirm_requested=None)
                self._alert(ctx, f"held: {reason}")
                return [note]
            case Launch(start, channel, confirmed_by):
                return self._launch(ctx, start, channel, confirmed_by)
        raise AssertionError(f"unknown action {action!r}")

    def _channels(self, program: StepProgram, campaign_id: str) -> list[ChannelView]:
        busy = {r.channel for r in self.store.runs(active_only=True, light=True)}
        busy |= {c.pending["target"] for c in self.store.campaigns(active_only=True)
                 if c.id != campaign_id and c.state == C.WAITING and c.pending and c.pending.get("target")}
        return [ChannelView(id=f"{i.name}/{c.id}", instrument=i.name, kind=i.kind, busy=f"{i.name}/{c.id}" in busy,
                            fits=not program_problems(kind_capabilities(i.kind, channel_ranges(c)), program))
                for i in self.station.config.instruments for c in i.channels]

    def _launch(self, ctx: _Context, start: Start, channel: str | None, confirmed_by: str | None) -> list[str]:
        plan, row = ctx.plan, ctx.row
        stage = plan.stages[start.stage]
        protocol = stage.rpt.protocol if start.role == "rpt" and stage.rpt else stage.protocol
        overrides = start.overrides(plan)
        cell = stage.stage_cell(ctx.cell)
        loaded = protocol.load(overrides)
        program = loaded.bind(cell)
        assert program is not None
        what = start.describe(plan)
        notes: list[str] = []
        if channel is None and start.stays and row.location:
            channel = row.location
        elif channel is None:
            placement = place(stage, row.location, self._channels(program, row.id), campaign_id=row.id,
                              sample_id=row.sample_id)
            match placement:
                case Stay(here):
                    channel = here
                case Move(target, reason):
                    note = self._event(ctx, f"waiting for an operator: {reason}", state=C.WAITING.value,
                                       stage=start.stage, waiting=reason, message=reason,
                                       pending={**start.to_doc(), "target": target}, confirm_requested=None)
                    self._alert(ctx, f"waits for an operator: {reason}")
                    return [note]
                case NoChannel(reason):
                    if row.state == C.WAITING and row.waiting == reason:
                        return []  # still none free: looked at again next round
                    return [self._event(ctx, f"waiting: {reason}", state=C.WAITING.value, stage=start.stage,
                                        waiting=reason, message=reason, pending={**start.to_doc(), "target": None},
                                        confirm_requested=None)]
        assert channel is not None
        # the campaign's stage and place first, then the step (the intent), then the run: a service that dies
        # between any two leaves what the next tick settles (a stage without steps starts; an intent is adopted
        # or started again)
        fields: dict[str, Any] = {"state": C.RUNNING.value, "stage": start.stage, "waiting": None, "pending": None,
                                  "location": channel, "confirm_requested": None, "message": ""}
        if confirmed_by is not None:
            fields["confirmed_by"] = confirmed_by
            notes.append(self._event(ctx, f"carried out the confirmation of {confirmed_by}: sample {row.sample_id} is "
                                          f"on {channel}", kind="operator", who=confirmed_by, **fields))
        else:
            self.store.update_campaign(row.id, self.station.clock.unix(), **fields)
            ctx.row = self.store.campaign(row.id)
        at = self.station.clock.unix()
        step_id = self.store.add_campaign_step(row.id, stage=start.stage, stage_name=stage.name, role=start.role,
                                               chunk=start.chunk, first_cycle=start.first_cycle, parameters=overrides,
                                               channel=channel, at=at)
        error: BaseException | None = None
        run_id: str | None = None
        # the stage's chamber temperature comes first in its first run (not in each chunk or RPT after it)
        first = not any(s.stage == start.stage for s in self.store.campaign_steps(row.id) if s.id != step_id)
        temperature = stage.temperature if first and start.role != "rpt" else None
        try:
            run_id = self.station.launch(loaded, cell, channel, sample_id=row.sample_id, temperature=temperature)
        except Exception as exc:  # whatever it was, the campaign says so and holds; the service goes on
            error = exc
        run_id = run_id or self._launched(row.sample_id, at)
        values = ", ".join(f"{k}={v}" for k, v in overrides.items())
        why = "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
        if run_id is not None:
            self.store.link_run(run_id, row.id, stage.name)
            self.store.update_campaign_step(step_id, run_id=run_id)
            started = f"{what}: run {run_id} of {loaded.name}" + (f" ({values})" if values else "")
            notes.append(self._event(ctx, f"{started} started on {channel}" if error is None else
                                     f"{started} on {channel} did not start cleanly ({why}); its state decides"))
            return notes
        self.store.update_campaign_step(step_id, outcome="failed", ended_at=self.station.clock.unix(),
                                        message=f"could not start on {channel}: {why}")
        notes.append(self._event(ctx, f"{what}: could not start {loaded.name} on {channel}: {why}"))
        return notes
