"""The run policy as a table: what :func:`decide` returns for each run state, channel state, breach and stop request.

No store, no channel, no clock: the policy is data in, actions out (issue 13 item 4). The engine that carries the
actions out is tested with a scripted channel in test_runs.py and test_run_truth*.py.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest

from drivers.base import ChannelState, ChannelStatus
from station.run_policy import (
    ENDED,
    MAX_BAD_PAGES,
    MAX_FAILED_POLLS,
    SUPERVISED_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    UNCONFIRMED_STATES,
    BadPage,
    CatchUp,
    ContactLost,
    ContactRestored,
    Event,
    NoAnswer,
    RequestStop,
    RunState,
    RunView,
    SafeStop,
    Stop,
    Transition,
    can_become,
    decide,
    lost_test,
)

S, C = RunState, ChannelState
T = 3600.0  # the test time every status below reports
BREACH = "record 102: voltage 4.4010 V above the safety limit 4.4 V"
OPERATOR = "stopped by the operator"
UNCONFIRMED_ALARM = ("the cell may still be running; the stop stays pending and is sent again whenever the station "
                     "reaches the instrument")


def view(state: RunState = S.RUNNING, **kw) -> RunView:
    return RunView(**{"run_id": "r1", "channel": "bts/1-1", "state": state, "test_id": "7", "stored_seq": 100, **kw})


def status(state: ChannelState, message: str = "", **kw) -> ChannelStatus:
    return ChannelStatus(**{"state": state, "message": message, "test_id": "7", "last_seq": 100, "test_time": T,
                            "voltage": 3.9, "current": 1e-3, **kw})


def stopped(why: str, ends_as: RunState = S.STOPPED) -> list:
    """What a confirmed stop does: the rest of the data, the safe state, the end the run was stopped for."""
    return [CatchUp(), Event("safe-state", f"channel stopped ({why}); no current flows"), Transition(ends_as, why, T)]


# -- the states ---------------------------------------------------------------------------------------------------

def test_run_states_are_the_strings_the_store_and_json_always_used():
    assert [s.value for s in RunState] == ["created", "validated", "starting", "started", "running", "paused",
                                           "finished", "stopped", "failed"]
    assert RunState("running") == "running" and f"{S.PAUSED}" == "paused" and str(S.FAILED) == "failed"
    assert json.dumps({"state": S.FINISHED}) == '{"state": "finished"}'


def test_the_transition_table():
    assert set(TRANSITIONS) | set(TERMINAL_STATES) == set(RunState)
    assert not set(TRANSITIONS) & set(TERMINAL_STATES)  # nothing leaves an ended run
    assert UNCONFIRMED_STATES == (S.CREATED, S.VALIDATED, S.STARTING)
    assert SUPERVISED_STATES == (S.STARTED, S.RUNNING, S.PAUSED)
    for state, targets in TRANSITIONS.items():
        assert S.FAILED in targets, state  # any state can fail
    reachable, todo = {S.CREATED}, [S.CREATED]
    while todo:
        for target in TRANSITIONS.get(todo.pop(), ()):
            if target not in reachable:
                reachable.add(target)
                todo.append(target)
    assert reachable == set(RunState)
    assert can_become("running", "paused") and can_become(S.PAUSED, S.RUNNING)
    assert not can_become(S.STOPPED, S.RUNNING) and not can_become(S.VALIDATED, S.RUNNING)


# -- the channel's state, nothing asked for ---------------------------------------------------------------------------

STOPPED_HERE = [Transition(S.STOPPED, "stopped at the instrument", T)]
PROTECTION = [Event("alarm", "the instrument tripped its protection: over-voltage", T, alert="protection"),
              SafeStop("protection"),
              Transition(S.STOPPED, "instrument protection: over-voltage", T)]
ERROR = [SafeStop("instrument error"), Transition(S.FAILED, "instrument error: board fault")]
MESSAGES = {C.PROTECTED: "over-voltage", C.ERROR: "board fault"}

CHANNEL_TABLE = [
    # run state, channel state, actions
    (S.RUNNING, C.RUNNING, []),
    (S.RUNNING, C.PAUSED, [Transition(S.PAUSED, "paused at the instrument")]),
    (S.RUNNING, C.FINISHED, [Transition(S.FINISHED, "program completed", T)]),
    (S.RUNNING, C.IDLE, [Transition(S.FINISHED, "program completed", T)]),
    (S.RUNNING, C.STOPPED, STOPPED_HERE),
    (S.RUNNING, C.PROTECTED, PROTECTION),
    (S.RUNNING, C.ERROR, ERROR),
    (S.PAUSED, C.RUNNING, [Transition(S.RUNNING, "continued at the instrument")]),
    (S.PAUSED, C.PAUSED, []),
    (S.PAUSED, C.FINISHED, [Transition(S.FINISHED, "program completed", T)]),
    (S.PAUSED, C.IDLE, [Transition(S.FINISHED, "program completed", T)]),
    (S.PAUSED, C.STOPPED, STOPPED_HERE),
    (S.PAUSED, C.PROTECTED, PROTECTION),
    (S.PAUSED, C.ERROR, ERROR),
    (S.STARTED, C.RUNNING, []),  # "started" becomes "running" when the engine attaches, not on a status
    (S.STARTED, C.PAUSED, []),
    (S.STARTED, C.FINISHED, [Transition(S.FINISHED, "program completed", T)]),
    (S.STARTED, C.IDLE, [Transition(S.FINISHED, "program completed", T)]),
    (S.STARTED, C.STOPPED, STOPPED_HERE),
    (S.STARTED, C.PROTECTED, PROTECTION),
    (S.STARTED, C.ERROR, ERROR),
]


@pytest.mark.parametrize(("run_state", "channel", "actions"), CHANNEL_TABLE,
                         ids=[f"{r}-{c}" for r, c, _ in CHANNEL_TABLE])
def test_the_run_follows_the_instrument(run_state, channel, actions):
    assert decide(view(run_state), status(channel, MESSAGES.get(channel, ""))) == actions


def test_the_table_covers_every_supervised_state_and_channel_state():
    assert {(r, c) for r, c, _ in CHANNEL_TABLE} == set(itertools.product(SUPERVISED_STATES, ChannelState))


@pytest.mark.parametrize("channel", [C.FINISHED, C.IDLE, C.STOPPED])
def test_the_instruments_own_words_end_the_run(channel):
    (transition,) = decide(view(), status(channel, "step 5 reached its end"))
    assert transition.message == "step 5 reached its end"


@pytest.mark.parametrize("state", [s for s in RunState if s not in SUPERVISED_STATES])
@pytest.mark.parametrize("seen", [status(C.FINISHED), status(C.ERROR, "x"), status(C.RUNNING, voltage=math.nan),
                                  NoAnswer("timeout"), BadPage("record 5 where 3 belongs")],
                         ids=["finished", "error", "nan", "no-answer", "bad-page"])
def test_a_run_that_is_not_supervised_is_left_alone(state, seen):
    assert decide(view(state, stop_requested=OPERATOR, outage_s=60.0, failed_polls=1, bad_pages=5), seen,
                  BREACH) == []


# -- safety -----------------------------------------------------------------------------------------------------------

def breach_actions(why: str) -> list:
    return [Event("alarm", f"safety limit broken, stopping the channel: {why}", latch="breach", alert="safety"),
            RequestStop(f"safety: {why}", replace=True), Stop()]


NAN_V = "live voltage nan is not a number: the channel cannot measure its cell"


@pytest.mark.parametrize("channel", list(ChannelState))
@pytest.mark.parametrize("stop", [None, OPERATOR])
def test_a_breach_alarms_once_and_outranks_any_stop_request(channel, stop):
    run = view(stop_requested=stop)
    assert decide(run, status(channel, MESSAGES.get(channel, "")), BREACH) == breach_actions(BREACH)


@pytest.mark.parametrize("channel", list(ChannelState))
@pytest.mark.parametrize("breach", [BREACH, None])
def test_after_the_breach_alarm_the_stop_is_sent_every_poll_until_confirmed(channel, breach):
    run = view(breach_alarmed=True, stop_requested=f"safety: {BREACH}")
    assert decide(run, status(channel, MESSAGES.get(channel, "")), breach) == [Stop()]


@pytest.mark.parametrize(("reading", "why"), [
    ({"voltage": math.nan}, NAN_V),
    ({"voltage": math.inf}, "live voltage inf is not a number: the channel cannot measure its cell"),
    ({"current": -math.inf}, "live current -inf is not a number: the channel cannot measure its cell"),
    ({"voltage": math.nan, "current": math.nan}, NAN_V),
])
@pytest.mark.parametrize("channel", [C.RUNNING, C.PAUSED])
def test_a_live_reading_that_is_not_a_number_is_a_breach(reading, why, channel):
    assert decide(view(), status(channel, **reading)) == breach_actions(why)


def test_a_breach_in_the_records_comes_before_a_live_one():
    assert decide(view(), status(C.RUNNING, voltage=math.nan), BREACH) == breach_actions(BREACH)


@pytest.mark.parametrize("channel", [C.FINISHED, C.IDLE, C.STOPPED])
def test_an_ended_channel_reporting_no_number_is_not_a_live_breach(channel):
    assert decide(view(), status(channel, voltage=math.nan))[-1].state in TERMINAL_STATES


def test_an_absent_reading_is_not_a_breach():
    assert decide(view(), status(C.RUNNING, voltage=None, current=None)) == []


# -- stopping ---------------------------------------------------------------------------------------------------------

STOP_TABLE = [
    # channel state, stop_sent, actions
    (C.RUNNING, False, [Stop()]),
    (C.PAUSED, False, [Stop()]),
    (C.ERROR, False, [Stop()]),
    (C.STOPPED, False, stopped(OPERATOR)),
    (C.FINISHED, False, stopped(OPERATOR)),
    (C.IDLE, False, stopped(OPERATOR)),
    (C.PROTECTED, False, stopped(OPERATOR)),
    (C.RUNNING, True, [Event("alarm", f"channel bts/1-1 still reports 'running' after stop: {UNCONFIRMED_ALARM}",
                             latch="stop", alert="instrument")]),
    (C.PAUSED, True, [Event("alarm", f"channel bts/1-1 still reports 'paused' after stop: {UNCONFIRMED_ALARM}",
                            latch="stop", alert="instrument")]),
    (C.ERROR, True, [Event("alarm", f"channel bts/1-1 still reports 'error' after stop: {UNCONFIRMED_ALARM}",
                           latch="stop", alert="instrument")]),
    (C.STOPPED, True, stopped(OPERATOR)),
    (C.FINISHED, True, stopped(OPERATOR)),
    (C.IDLE, True, stopped(OPERATOR)),
    (C.PROTECTED, True, stopped(OPERATOR)),
]


@pytest.mark.parametrize(("channel", "sent", "actions"), STOP_TABLE,
                         ids=[f"{c}-{'sent' if s else 'pending'}" for c, s, _ in STOP_TABLE])
@pytest.mark.parametrize("run_state", SUPERVISED_STATES)
def test_a_stop_counts_only_once_the_instrument_reports_the_channel_ended(channel, sent, actions, run_state):
    run = view(run_state, stop_requested=OPERATOR, stop_sent=sent)
    assert decide(run, status(channel, MESSAGES.get(channel, ""))) == actions


def test_the_stop_table_covers_every_channel_state_sent_or_not():
    assert {(c, s) for c, s, _ in STOP_TABLE} == set(itertools.product(ChannelState, (False, True)))


@pytest.mark.parametrize("channel", [C.RUNNING, C.PAUSED, C.ERROR])
def test_an_unconfirmed_stop_is_alarmed_once_per_run(channel):
    assert decide(view(stop_requested=OPERATOR, stop_sent=True, stop_alarmed=True), status(channel)) == []


def test_a_stop_that_cleans_up_after_a_failed_start_ends_the_run_failed():
    why = "start failed: KeyError; the instrument had started the test, so it was stopped"
    run = view(S.STARTED, stop_requested=why, ends_as=S.FAILED, stop_sent=True)
    assert decide(run, status(C.STOPPED)) == stopped(why, S.FAILED)


def test_a_stop_confirmed_without_a_stored_reason_ends_as_stopped():
    assert decide(view(stop_sent=True), status(C.STOPPED)) == stopped("stopped")


def test_the_channel_unreachable_for_a_stop():
    alarm = Event("alarm", f"could not reach channel bts/1-1 to stop it (no reply within 30 s): {UNCONFIRMED_ALARM}",
                  latch="stop", alert="instrument")
    assert decide(view(stop_requested=OPERATOR, stop_sent=True), NoAnswer("no reply within 30 s")) == [alarm]
    assert decide(view(stop_requested=OPERATOR, stop_sent=True, stop_alarmed=True), NoAnswer("again")) == []
    # a stop that could not be sent is not a failed poll: it neither marks nor counts an outage
    assert decide(view(stop_requested=OPERATOR, stop_sent=True, failed_polls=1), NoAnswer("no reply within 30 s")) \
        == [alarm]


# -- a channel that lost the test --------------------------------------------------------------------------------------

def lost(why: str, stored: int = 100) -> list:
    return [Event("alarm", f"{why}; every record stored so far ({stored}) is kept; check the instrument (was it "
                           "reset, or the channel reused?)", alert="instrument"),
            Transition(S.FAILED, why)]


LOST_TABLE = [
    # view changes, status changes, why (None: still ours)
    ({}, {"test_id": "8"}, "the instrument no longer holds test 7: channel bts/1-1 now holds test 8"),
    ({}, {"test_id": "0"}, "the instrument no longer holds test 7: channel bts/1-1 now holds no test"),
    ({}, {"test_id": ""}, "the instrument no longer holds test 7: channel bts/1-1 now holds no test"),
    ({}, {"last_seq": 10}, "the instrument no longer holds test 7: it reports 10 records, 100 are already stored"),
    ({"test_id": None}, {"last_seq": 10}, "the instrument no longer holds test r1: it reports 10 records, 100 are "
                                          "already stored"),
    ({"test_id": None}, {"test_id": "8"}, None),  # no handle to compare with
    ({}, {"test_id": None}, None),  # the instrument does not say which test it holds
    ({}, {"last_seq": None}, None),  # nor how many records
    ({}, {"last_seq": 100}, None),
    ({}, {"last_seq": 101}, None),
]


@pytest.mark.parametrize(("run_changes", "status_changes", "why"), LOST_TABLE)
@pytest.mark.parametrize("channel", [C.FINISHED, C.IDLE, C.RUNNING, C.STOPPED])
def test_a_channel_that_lost_the_test_fails_the_run_and_is_not_stopped(run_changes, status_changes, why, channel):
    run, seen = view(**run_changes), status(channel, **status_changes)
    assert lost_test(run, seen) == why
    actions = decide(run, seen)
    if why is not None:
        assert actions == lost(why)
        # whatever else was pending: not ours to stop, and no breach check on another test's readings
        assert decide(view(**run_changes, stop_requested=OPERATOR), seen, BREACH) == lost(why)
    else:
        assert actions == decide(view(), status(channel))


def test_after_our_own_stop_an_ended_channel_confirms_it():
    assert decide(view(stop_requested=OPERATOR, stop_sent=True), status(C.FINISHED, test_id="0")) == stopped(OPERATOR)


# -- contact ----------------------------------------------------------------------------------------------------------

LOST_CONTACT = [ContactLost(), Event("warning", "lost contact with the instrument: timeout; the program keeps running "
                                                "on it; retrying every poll")]
NO_CONTACT_ALARM = Event("alarm", f"no contact with the instrument for {MAX_FAILED_POLLS} polls: timeout; the program "
                                  "keeps running on it unwatched; check the instrument and its link",
                         alert="instrument")


@pytest.mark.parametrize(("polls", "actions"), [
    (1, LOST_CONTACT), (2, []), (MAX_FAILED_POLLS - 1, []), (MAX_FAILED_POLLS, [NO_CONTACT_ALARM]),
    (MAX_FAILED_POLLS + 1, []), (50, []),
])
@pytest.mark.parametrize("stop", [None, OPERATOR])
def test_an_outage_is_marked_and_warned_once_and_alarmed_once(polls, actions, stop):
    outage = None if polls == 1 else 60.0 * (polls - 1)
    assert decide(view(failed_polls=polls, outage_s=outage, stop_requested=stop), NoAnswer("timeout"), BREACH) == \
        actions


RESTORED = [ContactRestored(), Event("info", "contact restored after 8 failed polls (480 s)")]


@pytest.mark.parametrize(("seen", "rest"), [
    (status(C.RUNNING), []),
    (status(C.FINISHED), [Transition(S.FINISHED, "program completed", T)]),
    (status(C.FINISHED, test_id="0"), lost("the instrument no longer holds test 7: channel bts/1-1 now holds no "
                                           "test")),
    (BadPage("record 9 where 3 belongs"), [Event("warning", "instrument error: record 9 where 3 belongs; nothing of "
                                                            "that page was stored; retrying")]),
], ids=["running", "finished", "lost", "bad-page"])
def test_the_end_of_an_outage_is_noted_once_before_anything_else(seen, rest):
    run = view(failed_polls=8, outage_s=480.0, bad_pages=1)
    assert decide(run, seen) == RESTORED + rest
    assert decide(view(bad_pages=1), seen) == rest  # no outage, nothing to restore


def test_an_outage_inherited_from_another_process_counts_at_least_one_failed_poll():
    assert decide(view(outage_s=3600.4), status(C.RUNNING)) == [
        ContactRestored(), Event("info", "contact restored after 1 failed polls (3600 s)")]


def test_a_stop_answered_after_an_outage_also_ends_the_outage():
    run = view(stop_requested=OPERATOR, stop_sent=True, failed_polls=3, outage_s=120.0)
    assert decide(run, status(C.STOPPED)) == [
        ContactRestored(), Event("info", "contact restored after 3 failed polls (120 s)"), *stopped(OPERATOR)]


# -- pages that cannot be true -----------------------------------------------------------------------------------------

BAD = "channel bts/1-1 sent record 100300 where record 300 belongs (page from record 201)"


@pytest.mark.parametrize(("pages", "actions"), [
    (1, [Event("warning", f"instrument error: {BAD}; nothing of that page was stored; retrying")]),
    (2, []),
    (MAX_BAD_PAGES - 1, []),
    (MAX_BAD_PAGES, [
        Event("alarm", f"instrument error: {MAX_BAD_PAGES} pages in a row could not be trusted ({BAD}); stopping "
                       "the channel, since its data cannot be checked", alert="instrument"),
        SafeStop("untrustworthy data"),
        Transition(S.FAILED, f"instrument error: {MAX_BAD_PAGES} pages in a row could not be trusted ({BAD})")]),
])
def test_pages_that_cannot_be_true_are_warned_once_and_stop_the_channel_when_they_persist(pages, actions):
    assert decide(view(bad_pages=pages), BadPage(BAD)) == actions


# -- rules that hold in every case ----------------------------------------------------------------------------------

CASES = list(itertools.product(
    RunState, ChannelState, (None, BREACH), (None, OPERATOR), (False, True), (False, True), ("7", "0"),
    (3.9, math.nan)))


def test_rules_that_hold_for_every_state_status_breach_and_stop_request():
    assert len(CASES) == 9 * 7 * 2 ** 6
    for run_state, channel, breach, stop, sent, alarmed, test_id, voltage in CASES:
        run = view(run_state, stop_requested=stop, stop_sent=sent, breach_alarmed=alarmed)
        seen = status(channel, MESSAGES.get(channel, ""), test_id=test_id, voltage=voltage)
        actions = decide(run, seen, breach)
        where = (run_state, channel, breach, stop, sent, alarmed, test_id, voltage, actions)
        if run_state not in SUPERVISED_STATES:
            assert actions == [], where
            continue
        transitions = [a for a in actions if isinstance(a, Transition)]
        gone = lost_test(run, seen) is not None and not sent
        live_breach = math.isnan(voltage) and channel in (C.RUNNING, C.PAUSED)
        assert len(transitions) <= 1, where
        for t in transitions:
            assert can_become(run_state, t.state), where  # only moves the state machine allows
            assert t.state is not S.FINISHED or channel in (C.FINISHED, C.IDLE), where  # the instrument says so
            if not gone and t.state in TERMINAL_STATES:  # a channel that still runs the test never ends the run
                assert channel in ENDED or channel is C.ERROR, where
        if gone:  # another test may run there now: never stopped by us
            assert actions == lost(lost_test(run, seen)), where
        elif sent:  # the answer to our stop: the run ends if and only if the channel ended
            assert bool(transitions) == (channel in ENDED), where
        elif breach or alarmed or live_breach:  # a breach ends the run only through a confirmed stop
            assert actions[-1] == Stop() and not transitions, where
        elif stop is not None:  # a requested stop ends the run only when the channel ended, and is resent until
            assert bool(transitions) == (channel in ENDED) and (channel in ENDED or actions == [Stop()]), where
