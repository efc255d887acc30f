"""The campaign policy as a table: for each situation a campaign can be in, exactly what the engine is told to do.

Nothing here touches a store, an instrument or a clock (station.campaign_policy is pure)."""

from __future__ import annotations

import pytest

from protocols.campaign import CampaignPlan, Chunks, GoOnIf, ProtocolRef, RptPlan, StagePlan, Until
from station.campaign_policy import (
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
    go_on_problem,
    place,
    until_reached,
)

C = CampaignState
REF = ProtocolRef(name="cycling", file="cycling.yaml", text="")
RPT = RptPlan(protocol=ProtocolRef(name="rpt", file="rpt.yaml", text=""), set={"cycles": "1", "rate": "0.05C"})


def stage(name: str, *, instrument: str | None = "neware", channel: str | None = None, chunks: int | None = None,
          until: dict | None = None, rpt: bool = False, go_on_if: dict | None = None) -> StagePlan:
    return StagePlan(name=name, protocol=REF, set={"rate": "0.2C"}, instrument=None if channel else instrument,
                     channel=channel, chunks=Chunks(cycles=chunks) if chunks else None, rpt=RPT if rpt else None,
                     until=Until.model_validate(until) if until else None,
                     go_on_if=GoOnIf.model_validate(go_on_if or {}))


FORMATION = stage("formation", go_on_if={"cycles": 2, "ce": ">= 95 % in cycle 2"})
CYCLING = stage("cycling", chunks=20, rpt=True, until={"retention": "< 80 % of cycle 1", "cycles": 50})
EIS = stage("eis", instrument="biologic")
PLAN = CampaignPlan(name="test", stages=(FORMATION, CYCLING, EIS))


def cycles(*discharge_mah: float, ce: float = 0.998, first: int = 2) -> tuple[Cycle, ...]:
    """Cycles as a run counts them (its own numbers from ``first``; a lithiation before its loop would be 1)."""
    return tuple(Cycle(first + i, q / 1000 / ce, q / 1000, ce) for i, q in enumerate(discharge_mah))


def fading(n: int, start: float = 2.0, step: float = 0.01) -> list[float]:
    return [start - step * k for k in range(n)]


def view(stage_index: int = 0, steps: tuple[StepView, ...] = (), state: C = C.RUNNING, **kw) -> CampaignView:
    return CampaignView(campaign_id="C1", sample_id="S1", plan=PLAN, state=state, stage=stage_index, steps=steps,
                        **kw)


def chunk(k: int, discharges: list[float], outcome: str | None = "finished", **kw) -> StepView:
    return StepView(role="chunk", chunk=k, run_id=f"chunk{k}", outcome=outcome, cycles=cycles(*discharges), **kw)


def rpt(k: int, outcome: str | None = "finished") -> StepView:
    return StepView(role="rpt", chunk=k, run_id=f"rpt{k}", outcome=outcome, cycles=cycles(2.05))


# -- starting, and going from stage to stage ------------------------------------------------------------------------

def test_a_pending_campaign_starts_its_first_stage():
    assert decide(view(state=C.PENDING)) == [Launch(Start(0, "run"))]


def test_a_stage_in_chunks_starts_with_its_first_chunk_of_n_cycles_numbered_from_1():
    assert decide(view(1, state=C.RUNNING)) == [Launch(Start(1, "chunk", chunk=1, first_cycle=1, cycles=20))]
    assert Start(1, "chunk", chunk=1, first_cycle=1, cycles=20).overrides(PLAN) == {"rate": "0.2C", "cycles": "20"}


def test_nothing_is_done_while_the_stage_runs():
    assert decide(view(0, (StepView("run", run_id="r1"),))) == []


def test_a_finished_stage_whose_conditions_hold_starts_the_next():
    done = StepView("run", run_id="r1", outcome="finished", cycles=cycles(2.0, 1.99, ce=0.998))
    assert decide(view(0, (done,))) == [Note("stage formation done (2 cycles)"),
                                        Launch(Start(1, "chunk", chunk=1, first_cycle=1, cycles=20))]


def test_the_last_stage_finished_finishes_the_campaign():
    assert decide(view(2, (StepView("run", run_id="e1", outcome="finished"),))) == [
        Note("stage eis done"), End(C.FINISHED, "all 3 stages done")]


def test_a_condition_to_go_on_that_does_not_hold_ends_the_campaign_as_failed():
    low_ce = StepView("run", run_id="r1", outcome="finished", cycles=(*cycles(2.0, ce=0.87),
                                                                      *cycles(1.98, ce=0.93, first=3)))
    assert decide(view(0, (low_ce,))) == [End(C.FAILED, "stage formation: the condition to go on does not hold: the "
                                                        "CE of cycle 2 is 93.00 %, not >= 95 % in cycle 2")]
    one_cycle = StepView("run", run_id="r1", outcome="finished", cycles=cycles(2.0))
    assert decide(view(0, (one_cycle,))) == [End(C.FAILED, "stage formation: the condition to go on does not hold: "
                                                           "the stage ran 1 cycle, not 2")]


@pytest.mark.parametrize(("go_on_if", "problem"), [
    ({"retention": ">= 99 % of cycle 1"}, "the discharge capacity of cycle 3 is 98.0 % of cycle 1, not >= 99 % of "
                                          "cycle 1"),
    ({"retention": ">= 90 % of cycle 4"}, "no retention against cycle 4: the stage ran 3 cycles"),
    ({"ce": ">= 99.9 %"}, "the CE of cycle 3 is 99.80 %, not >= 99.9 %"),
    ({"ce": ">= 90 % in cycle 5"}, "there is no cycle 5 to take the CE of (the stage ran 3)"),
    ({"cycles": ">= 4"}, "the stage ran 3 cycles, not >= 4"),
    ({"cycles": 3, "ce": ">= 99 %", "retention": ">= 97 % of cycle 1"}, None),
])
def test_each_condition_to_go_on(go_on_if, problem):
    assert go_on_problem(GoOnIf.model_validate(go_on_if), cycles(2.0, 1.99, 1.96)) == problem


# -- chunks and RPTs -------------------------------------------------------------------------------------------

def test_after_a_chunk_the_rpt_runs_on_the_same_channel():
    steps = (chunk(1, fading(20)),)
    actions = decide(view(1, steps))
    assert actions == [Note("stage cycling, chunk 1 finished: cycles 1-20 (retention 90.5 % of cycle 1, CE 99.80 %); "
                            "the RPT runs next"), Launch(Start(1, "rpt", chunk=1))]
    start = actions[1].start  # type: ignore[union-attr]
    assert start.stays and start.overrides(PLAN) == {"cycles": "1", "rate": "0.05C"}


def test_after_the_rpt_cycling_goes_on_with_the_cycle_numbers_continued():
    steps = (chunk(1, fading(20)), rpt(1))
    assert decide(view(1, steps)) == [Note("stage cycling, RPT after chunk 1 finished; cycling goes on from cycle 21"),
                                      Launch(Start(1, "chunk", chunk=2, first_cycle=21, cycles=20))]
    assert Start(1, "chunk", chunk=2, first_cycle=21, cycles=20).describe(PLAN) == \
        "stage cycling, chunk 2 (cycles 21-40 of the stage)"


def test_retention_crossing_80_percent_across_chunks_ends_cycling_after_the_rpt():
    # cycle 1 gave 2.0 mAh; chunk 2 ends at cycle 40 with 1.59 mAh: 79.5 % of cycle 1 (cycle 39 was 80.0 %)
    first, second = fading(20), fading(20, start=1.78)
    steps = (chunk(1, first), rpt(1), chunk(2, second))
    assert decide(view(1, steps)) == [
        Note("stage cycling, chunk 2 finished: cycles 21-40 (retention 79.5 % of cycle 1, CE 99.80 %); the discharge "
             "capacity of cycle 40 is 79.5 % of cycle 1 (until retention < 80 % of cycle 1): cycling ends after the "
             "RPT"), Launch(Start(1, "rpt", chunk=2))]
    assert decide(view(1, (*steps, rpt(2)))) == [
        Note("stage cycling, RPT after chunk 2 finished; the discharge capacity of cycle 40 is 79.5 % of cycle 1 "
             "(until retention < 80 % of cycle 1)"),
        Note("stage cycling done (40 cycles)"), Launch(Start(2, "run"))]


def test_the_retention_is_against_the_reference_cycle_of_the_stage_not_of_the_run():
    until = Until.model_validate({"retention": "< 80 % of cycle 21"})
    steps = (chunk(1, [1.0] * 20), rpt(1), chunk(2, [2.0, *[1.7] * 19]))  # cycle 21 is 2.0, cycle 40 is 1.7
    assert until_reached(until, [c for s in steps if s.role == "chunk" for c in s.cycles]) is None
    steps = (*steps[:2], chunk(2, [2.0, *[1.59] * 19]))
    assert until_reached(until, [c for s in steps if s.role == "chunk" for c in s.cycles]) == (
        "the discharge capacity of cycle 40 is 79.5 % of cycle 21 (until retention < 80 % of cycle 21)")


def test_the_last_chunk_is_shortened_to_the_maximum_number_of_cycles():
    steps = (chunk(1, fading(20)), rpt(1), chunk(2, fading(20, 1.9, 0.001)), rpt(2))
    assert decide(view(1, steps))[-1] == Launch(Start(1, "chunk", chunk=3, first_cycle=41, cycles=10))
    steps = (*steps, chunk(3, fading(10, 1.88, 0.001)))
    assert decide(view(1, steps)) == [
        Note("stage cycling, chunk 3 finished: cycles 41-50 (retention 93.5 % of cycle 1, CE 99.80 %); 50 cycles run "
             "(until cycles: 50): cycling ends after the RPT"), Launch(Start(1, "rpt", chunk=3))]


def test_without_an_rpt_the_next_chunk_follows_at_once_and_the_stop_ends_the_stage():
    plan = CampaignPlan(name="t", stages=(stage("cycling", chunks=5, until={"ce": "< 99 %"}),))
    steps = (chunk(1, fading(5)),)
    assert decide(CampaignView("C1", "S1", plan, C.RUNNING, 0, steps)) == [
        Note("stage cycling, chunk 1 finished: cycles 1-5 (CE 99.80 %)"),
        Launch(Start(0, "chunk", chunk=2, first_cycle=6, cycles=5))]
    bad = StepView("chunk", chunk=2, run_id="c2", outcome="finished", cycles=cycles(1.9, 1.8, ce=0.985))
    assert decide(CampaignView("C1", "S1", plan, C.RUNNING, 0, (*steps, bad))) == [
        Note("stage cycling, chunk 2 finished: cycles 6-7 (CE 98.50 %); the CE of cycle 7 is 98.50 % (until ce < "
             "99 %): cycling ends"), Note("stage cycling done (7 cycles)"), End(C.FINISHED, "all 1 stage done")]


def test_a_chunk_that_counted_no_cycle_holds_the_campaign_instead_of_chunking_forever():
    assert decide(view(1, (chunk(1, []),))) == [Hold(
        "stage cycling, chunk 1: its run chunk1 ended without a full cycle (no charge and discharge), so cycling "
        "would never end; check the protocol and the cell, then confirm to run the next chunk or stop the campaign",
        Start(1, "chunk", chunk=2, first_cycle=1, cycles=20))]


# -- runs that did not finish ----------------------------------------------------------------------------------

def test_a_failed_run_holds_the_campaign_with_its_reason():
    failed = StepView("run", run_id="r1", outcome="failed", message="instrument error: channel fault")
    assert decide(view(0, (failed,))) == [Hold(
        "stage formation: run r1 ended failed (instrument error: channel fault); `station campaign confirm C1` runs "
        "it again, `station campaign stop C1` ends the campaign", Start(0, "run"))]


def test_a_stopped_chunk_holds_and_its_retry_is_the_next_chunk_counting_the_cycles_it_ran():
    stopped = chunk(2, fading(7, 1.8), outcome="stopped", message="safety: record 90: voltage 4.41 V above 4.4 V")
    [hold] = decide(view(1, (chunk(1, fading(20)), rpt(1), stopped)))
    assert hold == Hold("stage cycling, chunk 2: run chunk2 ended stopped (safety: record 90: voltage 4.41 V above "
                        "4.4 V); `station campaign confirm C1` runs it again, `station campaign stop C1` ends the "
                        "campaign", Start(1, "chunk", chunk=3, first_cycle=28, cycles=20))


def test_a_failed_rpt_holds_and_its_retry_is_the_rpt():
    [hold] = decide(view(1, (chunk(1, fading(20)), rpt(1, outcome="failed"))))
    assert isinstance(hold, Hold) and hold.retry == Start(1, "rpt", chunk=1)


def test_a_stage_that_accepts_any_end_goes_on_after_a_stopped_run():
    plan = CampaignPlan(name="t", stages=(stage("eis", go_on_if={"outcome": "ended"}), EIS))
    stopped = StepView("run", run_id="r1", outcome="stopped", message="stopped by the operator")
    assert decide(CampaignView("C1", "S1", plan, C.RUNNING, 0, (stopped,))) == [Note("stage eis done"),
                                                                               Launch(Start(1, "run"))]
    failed = StepView("run", run_id="r1", outcome="failed", message="x")
    assert isinstance(decide(CampaignView("C1", "S1", plan, C.RUNNING, 0, (failed,)))[0], Hold)


def test_a_held_campaign_waits_and_a_confirmation_runs_the_step_again():
    held = view(0, (StepView("run", run_id="r1", outcome="failed"),), state=C.HELD, pending=Start(0, "run"))
    assert decide(held) == []
    confirmed = view(0, held.steps, state=C.HELD, pending=Start(0, "run"), confirm=Request("ana", 5.0))
    assert decide(confirmed) == [Note("ana confirmed: stage formation runs again"),
                                 Launch(Start(0, "run"), channel=None, confirmed_by="ana")]


# -- moving the sample, and stopping ---------------------------------------------------------------------------

def test_a_waiting_campaign_starts_only_on_a_confirmation_where_the_operator_says():
    pending = Start(2, "run")
    waiting = view(2, state=C.WAITING, pending=pending, target="bio/1")
    assert decide(waiting) == []
    assert decide(view(2, state=C.WAITING, pending=pending, target="bio/1", confirm=Request("ana"))) == [
        Launch(pending, channel="bio/1", confirmed_by="ana")]
    assert decide(view(2, state=C.WAITING, pending=pending, target="bio/1", confirm=Request("ana", 0, "bio/2"))) == [
        Launch(pending, channel="bio/2", confirmed_by="ana")]


def test_waiting_for_a_free_channel_looks_again_every_round():
    pending = Start(2, "run")
    assert decide(view(2, state=C.WAITING, pending=pending, target=None)) == [Launch(pending)]
    assert decide(view(2, state=C.WAITING, pending=pending, target=None, confirm=Request("ana"))) == [
        Dismiss("no channel was free for the stage: confirm with --channel, naming where the sample is")]


def test_a_confirmation_nothing_waits_for_is_set_aside():
    assert decide(view(0, (StepView("run", run_id="r1"),), confirm=Request("ana"))) == [
        Dismiss("nothing waited for a confirmation (the campaign is running)")]


def test_a_stop_stops_the_active_run_once_then_ends_the_campaign_when_it_has_ended():
    active = StepView("chunk", chunk=1, run_id="c1")
    assert decide(view(1, (active,), stop=Request("ana"))) == [StopRun("c1", "campaign C1 stopped by ana")]
    sent = StepView("chunk", chunk=1, run_id="c1", stop_sent=True)
    assert decide(view(1, (sent,), stop=Request("ana"))) == []
    ended = chunk(1, fading(3), outcome="stopped")
    assert decide(view(1, (ended,), stop=Request("ana"))) == [End(C.STOPPED, "stopped by ana at stage cycling")]
    assert decide(view(2, state=C.WAITING, pending=Start(2, "run"), target="bio/1", stop=Request("bo"))) == [
        End(C.STOPPED, "stopped by bo at stage eis")]


def test_an_ended_campaign_does_nothing():
    for state in (C.FINISHED, C.FAILED, C.STOPPED):
        assert decide(view(0, state=state, stop=Request("ana"), confirm=Request("ana"))) == []


CHANNELS = [ChannelView("bts/21-1-1", "bts", "neware"), ChannelView("bts/21-1-2", "bts", "neware"),
            ChannelView("bio/1", "bio", "biologic", busy=True), ChannelView("bio/2", "bio", "biologic"),
            ChannelView("bio2/1", "bio2", "biologic")]


def test_a_stage_on_the_same_kind_stays_where_the_sample_is():
    assert place(CYCLING, "bts/21-1-2", CHANNELS, campaign_id="C1", sample_id="S1") == Stay("bts/21-1-2")


def test_a_stage_on_another_instrument_needs_the_sample_moved_to_a_free_channel_that_fits():
    assert place(EIS, "bts/21-1-1", CHANNELS, campaign_id="C1", sample_id="S1") == Move(
        "bio/2", "stage eis runs on a biologic channel: move sample S1 from bts/21-1-1 to bio/2, then confirm with "
                 "`station campaign confirm C1`")
    unfit = [c if c.id != "bio/2" else ChannelView("bio/2", "bio", "biologic", fits=False) for c in CHANNELS]
    assert place(EIS, "bts/21-1-1", unfit, campaign_id="C1", sample_id="S1").channel == "bio2/1"  # type: ignore


def test_a_move_prefers_the_instrument_the_sample_is_on():
    on_bio = place(EIS.model_copy(update={"instrument": None}), "bio/1",
                   [c if c.id != "bio/1" else ChannelView("bio/1", "bio", "biologic", fits=False) for c in CHANNELS],
                   campaign_id="C1", sample_id="S1")
    assert on_bio == Move("bio/2", "stage eis runs on any channel: move sample S1 from bio/1 to bio/2, then confirm "
                                   "with `station campaign confirm C1`")


def test_a_named_channel_an_unknown_place_and_no_free_channel():
    named = stage("eis", channel="bio/2")
    assert place(named, "bio/2", CHANNELS, campaign_id="C1", sample_id="S1") == Stay("bio/2")
    assert place(named, None, CHANNELS, campaign_id="C1", sample_id="S1") == Move(
        "bio/2", "stage eis runs on channel bio/2: place sample S1 on channel bio/2, then confirm with `station "
                 "campaign confirm C1`")
    assert place(stage("eis", channel="bio/1"), "bts/21-1-1", CHANNELS, campaign_id="C1", sample_id="S1") == NoChannel(
        "stage eis runs on channel bio/1, which is busy; waiting for it")
    busy = [ChannelView(c.id, c.instrument, c.kind, busy=c.kind == "biologic") for c in CHANNELS]
    assert place(EIS, "bts/21-1-1", busy, campaign_id="C1", sample_id="S1") == NoChannel(
        "stage eis needs a free biologic channel that can run it; none is free now, waiting")
