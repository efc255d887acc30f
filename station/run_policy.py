"""Run policy as data: the run's states, their transitions, and what the engine does about what a poll saw.

:func:`decide` is pure. It is given the run as the engine knows it (:class:`RunView`), what the poll saw of the
channel (a :class:`~drivers.base.ChannelStatus`, or :class:`NoAnswer` / :class:`BadPage` when the exchange failed)
and the first safety breach in the stored records, and returns the :data:`Action` list the engine carries out in
order (:class:`station.runs.RunManager`). No store, channel or clock is involved, so every rule below is tested as a
table (tests/station/test_run_policy.py), the way bluesky tests a plan's messages without hardware.

The rules (issue 9, "run truth"): the station believes the instrument, never itself.

- A channel that holds another test, no test, or fewer records than are stored has lost this run's test: the run
  fails with an alarm, every record is kept, nothing is sent (it may be someone else's test now).
- A safety breach (in a record, or a live reading that is not a number) raises one alarm, turns into a stop
  request with the breach as its reason, and the stop is sent every poll until the instrument confirms it.
- A requested stop is only a request until the channel reports that it ended; then the rest of the data is
  downloaded and the run ends (stopped, or failed when the stop cleans up after a failed start). An unconfirmed
  stop raises one alarm, not one per poll.
- The run is finished only when the instrument says so; a protection trip is an alarm, a safe stop and ``stopped``;
  an instrument error is a safe stop and ``failed``; pause and continue at the instrument follow it.
- An outage is marked once, warned once, raised to an alarm after :data:`MAX_FAILED_POLLS` polls, and its end is
  noted once. Pages whose record numbers cannot be true are never stored; :data:`MAX_BAD_PAGES` of them in a row
  stop the channel and fail the run, since its data can no longer be checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from drivers.base import ChannelState, ChannelStatus


class RunState(StrEnum):
    """A run's persisted state; the values are the strings the store and the JSON output have always used."""

    CREATED = "created"
    VALIDATED = "validated"
    STARTING = "starting"
    """The written intent to start: start may have reached the instrument, and only the instrument can say."""
    STARTED = "started"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"


S = RunState
TRANSITIONS: dict[RunState, tuple[RunState, ...]] = {
    S.CREATED: (S.VALIDATED, S.FAILED),
    S.VALIDATED: (S.STARTING, S.FAILED),
    S.STARTING: (S.STARTED, S.FAILED),
    S.STARTED: (S.RUNNING, S.FINISHED, S.STOPPED, S.FAILED),
    S.RUNNING: (S.PAUSED, S.FINISHED, S.STOPPED, S.FAILED),
    S.PAUSED: (S.RUNNING, S.FINISHED, S.STOPPED, S.FAILED),
}
TERMINAL_STATES: tuple[RunState, ...] = (S.FINISHED, S.STOPPED, S.FAILED)
#: States without a stored test handle: if no process looks after such a run, only the instrument can say whether
#: it started ("created" never got as far as sending anything, but still claims its channel until settled).
UNCONFIRMED_STATES: tuple[RunState, ...] = (S.CREATED, S.VALIDATED, S.STARTING)
#: States in which the instrument runs the test and the engine supervises it.
SUPERVISED_STATES: tuple[RunState, ...] = (S.STARTED, S.RUNNING, S.PAUSED)

#: Channel states in which no current flows and the test no longer runs.
ENDED = (ChannelState.STOPPED, ChannelState.FINISHED, ChannelState.IDLE, ChannelState.PROTECTED)
#: Consecutive failed polls of one channel before the outage is raised to an alarm.
MAX_FAILED_POLLS = 5
#: Consecutive pages of impossible records before the channel is stopped: data nobody can check is a cell nobody
#: watches.
MAX_BAD_PAGES = 5


def can_become(current: RunState | str, new: RunState | str) -> bool:
    return RunState(new) in TRANSITIONS.get(RunState(current), ())


# -- what the engine knows and what a poll saw ----------------------------------------------------------------------

@dataclass(frozen=True)
class RunView:
    """The run as the engine knows it when it decides; the engine builds one per decision."""

    run_id: str
    channel: str
    state: RunState
    test_id: str | None = None
    """The instrument's id of this run's test (from the stored handle); ``None`` before start is confirmed."""
    stored_seq: int = 0
    """The last record number stored when the status was read (records downloaded since are newer than the
    status's count, and must not make the instrument look as if it had lost some)."""
    stop_requested: str | None = None
    """A stop someone asked for and the instrument has not confirmed: the reason the run ends with."""
    ends_as: RunState = RunState.STOPPED
    """The state a confirmed stop ends the run in: failed when the stop cleans up after a failed start."""
    stop_sent: bool = False
    """The status being decided on was read right after sending stop (its confirmation, or not)."""
    breach_alarmed: bool = False
    """A safety breach was alarmed: the channel is stopped every poll until it confirms."""
    stop_alarmed: bool = False
    """An unconfirmed stop was alarmed (once per run)."""
    failed_polls: int = 0
    """Consecutive polls the instrument did not answer, counting the one being decided on if it failed."""
    outage_s: float | None = None
    """Seconds since the current outage began, ``None`` when the station has contact."""
    bad_pages: int = 0
    """Consecutive download pages that could not be trusted, counting the one being decided on."""


@dataclass(frozen=True)
class NoAnswer:
    """The instrument did not answer the status, the download, or the stop (``why``: the driver's error)."""

    why: str


@dataclass(frozen=True)
class BadPage:
    """The instrument answered with records that cannot be true (wrong numbers); nothing of the page was stored."""

    why: str


Seen = ChannelStatus | NoAnswer | BadPage


# -- actions: what the engine carries out, in order ----------------------------------------------------------------

@dataclass(frozen=True)
class Transition:
    """Write the run's new state (the engine refuses one :data:`TRANSITIONS` does not allow)."""

    state: RunState
    message: str = ""
    test_time: float | None = None


AlertKind = Literal["safety", "protection", "instrument", "finished"]
"""What an alert is about; station.yaml's ``alerts`` choose which kinds each destination receives."""


@dataclass(frozen=True)
class Event:
    """Record an event. ``latch`` names a once-per-run alarm the engine remembers (``RunView.breach_alarmed`` or
    ``RunView.stop_alarmed``), so the next decision does not raise it again."""

    kind: Literal["info", "warning", "alarm", "safe-state", "operator"]
    message: str
    test_time: float | None = None
    latch: Literal["breach", "stop"] | None = None
    alert: AlertKind | None = None
    """Who else must hear of it now (station.alerts): a safety stop, a protection trip, an instrument failure."""


@dataclass(frozen=True)
class RequestStop:
    """Persist a stop request. ``replace``: this reason is the one the run ends with, whoever asked first (a
    safety breach outranks an operator's stop); otherwise the first reason stays."""

    why: str
    replace: bool = False


@dataclass(frozen=True)
class Stop:
    """Send stop and read the channel back; the engine decides again on that status with ``stop_sent``, or on
    :class:`NoAnswer` if the instrument cannot be reached. The run ends only on a confirmation."""


@dataclass(frozen=True)
class SafeStop:
    """Send stop once, for a run that ends anyway (protection, instrument error): a safe-state event if it was
    sent, an alarm that the cell may still be running if not."""

    why: str


@dataclass(frozen=True)
class CatchUp:
    """Download what the instrument still holds before the run ends; an error here decides nothing."""


@dataclass(frozen=True)
class ContactLost:
    """Store the start of an outage, so that every reader shows "lost contact" instead of stale values."""


@dataclass(frozen=True)
class ContactRestored:
    """Clear the stored outage and the count of failed polls."""


Action = Transition | Event | RequestStop | Stop | SafeStop | CatchUp | ContactLost | ContactRestored


# -- the policy -----------------------------------------------------------------------------------------------------

def decide(run: RunView, status: Seen, breach: str | None = None) -> list[Action]:
    """What to do about one thing a poll saw. ``breach``: the first record that broke a safety limit, if any."""
    if run.state not in SUPERVISED_STATES:
        return []  # nothing runs under a run that has ended or whose start is not confirmed
    if isinstance(status, NoAnswer):
        if run.stop_sent:
            return stop_pending(run, f"could not reach channel {run.channel} to stop it ({status.why})")
        return _no_contact(run, status.why)
    restored = _contact_restored(run)
    if isinstance(status, BadPage):
        return restored + _bad_page(run, status.why)
    if run.stop_sent:
        return restored + _settle_stop(run, status)
    gone = lost_test(run, status)
    if gone:  # not ours to stop: it may be someone else's test now
        return [*restored,
                Event("alarm", f"{gone}; every record stored so far ({run.stored_seq}) is kept; check the "
                               "instrument (was it reset, or the channel reused?)", alert="instrument"),
                Transition(S.FAILED, gone)]
    if breach is None and status.state in (ChannelState.RUNNING, ChannelState.PAUSED):
        breach = live_breach(status)
    return restored + _after_status(run, status, breach)


def _after_status(run: RunView, status: ChannelStatus, breach: str | None) -> list[Action]:
    state, t, message = status.state, status.test_time, status.message
    if run.breach_alarmed:
        return [Stop()]
    if breach is not None:
        return [Event("alarm", f"safety limit broken, stopping the channel: {breach}", latch="breach",
                      alert="safety"),
                RequestStop(f"safety: {breach}", replace=True), Stop()]
    if run.stop_requested is not None:
        return _settle_stop(run, status) if state in ENDED else [Stop()]
    if state in (ChannelState.FINISHED, ChannelState.IDLE):
        return [Transition(S.FINISHED, message or "program completed", t)]
    if state is ChannelState.PROTECTED:
        return [Event("alarm", f"the instrument tripped its protection: {message}", t, alert="protection"),
                SafeStop("protection"),
                Transition(S.STOPPED, f"instrument protection: {message}", t)]
    if state is ChannelState.STOPPED:
        return [Transition(S.STOPPED, message or "stopped at the instrument", t)]
    if state is ChannelState.ERROR:
        return [SafeStop("instrument error"), Transition(S.FAILED, f"instrument error: {message}")]
    if state is ChannelState.PAUSED and run.state is S.RUNNING:
        return [Transition(S.PAUSED, "paused at the instrument")]
    if state is ChannelState.RUNNING and run.state is S.PAUSED:
        return [Transition(S.RUNNING, "continued at the instrument")]
    return []


def _settle_stop(run: RunView, status: ChannelStatus) -> list[Action]:
    """A stop counts once the channel reports that it ended, and not before."""
    if status.state not in ENDED:
        return stop_pending(run, f"channel {run.channel} still reports '{status.state}' after stop")
    why = run.stop_requested or "stopped"
    return [CatchUp(), Event("safe-state", f"channel stopped ({why}); no current flows"),
            Transition(run.ends_as, why, status.test_time)]


def stop_pending(run: RunView, what: str) -> list[Action]:
    """A stop the instrument did not confirm: one alarm per run; the request stays and is sent again."""
    if run.stop_alarmed:
        return []
    return [Event("alarm", f"{what}: the cell may still be running; the stop stays pending and is sent again "
                           "whenever the station reaches the instrument", latch="stop", alert="instrument")]


def _no_contact(run: RunView, why: str) -> list[Action]:
    """One warning when an outage starts and one alarm when it lasts, not one per poll."""
    actions: list[Action] = []
    if run.failed_polls == 1:
        actions += [ContactLost(), Event("warning", f"lost contact with the instrument: {why}; the program keeps "
                                                    "running on it; retrying every poll")]
    if run.failed_polls == MAX_FAILED_POLLS:
        actions.append(Event("alarm", f"no contact with the instrument for {run.failed_polls} polls: {why}; the "
                                      "program keeps running on it unwatched; check the instrument and its link",
                             alert="instrument"))
    return actions


def _contact_restored(run: RunView) -> list[Action]:
    if run.outage_s is None:
        return []
    return [ContactRestored(), Event("info", f"contact restored after {max(run.failed_polls, 1)} failed polls "
                                             f"({run.outage_s:.0f} s)")]


def _bad_page(run: RunView, why: str) -> list[Action]:
    actions: list[Action] = []
    if run.bad_pages == 1:
        actions.append(Event("warning", f"instrument error: {why}; nothing of that page was stored; retrying"))
    if run.bad_pages >= MAX_BAD_PAGES:
        message = f"instrument error: {run.bad_pages} pages in a row could not be trusted ({why})"
        actions += [Event("alarm", f"{message}; stopping the channel, since its data cannot be checked",
                          alert="instrument"),
                    SafeStop("untrustworthy data"), Transition(S.FAILED, message)]
    return actions


def lost_test(run: RunView, status: ChannelStatus) -> str | None:
    """Why the channel no longer holds this run's test, or ``None``: another test id, or fewer records than
    already stored. Either way the run did not finish, whatever the channel's state says. The engine asks this
    before downloading, so that another test's records are never stored under this run."""
    ours = run.test_id
    if ours and status.test_id is not None and status.test_id != ours:
        now = "no test" if status.test_id in ("", "0") else f"test {status.test_id}"
        return f"the instrument no longer holds test {ours}: channel {run.channel} now holds {now}"
    if status.last_seq is not None and status.last_seq < run.stored_seq:
        return (f"the instrument no longer holds test {ours or run.run_id}: it reports {status.last_seq} "
                f"records, {run.stored_seq} are already stored")
    return None


def live_breach(status: ChannelStatus) -> str | None:
    """A live reading that is not a number: a channel that cannot measure its cell cannot be kept safe."""
    for name, value in (("voltage", status.voltage), ("current", status.current)):
        if value is not None and not math.isfinite(value):
            return f"live {name} {value} is not a number: the channel cannot measure its cell"
    return None
