"""The rule that ends a temperature step, as a table: stable after an unbroken series of readings in the band for
``stable_for``; any reading outside it, a missing reading or an alarm starts that time again; too long fails."""

from __future__ import annotations

import pytest

from station.temperature_wait import Verdict, WaitSpec, WaitState, assess

SPEC = WaitSpec(set_c=45.0, band_c=0.5, stable_for_s=600.0, max_wait_s=3600.0)


def run(readings: list[tuple[float, float | None]], *, applied: bool = True) -> list[tuple[float | None, Verdict]]:
    state = WaitState(since=0.0, applied=applied, applied_at=0.0 if applied else None)
    out = []
    for now, temperature in readings:
        state, verdict = assess(SPEC, state, now, temperature)
        out.append((state.stable_since, verdict))
    return out


def test_stable_once_every_reading_for_stable_for_was_in_the_band() -> None:
    seen = run([(60, 40.0), (120, 44.6), (180, 45.5), (720, 45.2), (780, 44.9)])
    assert seen == [(None, Verdict.WAITING), (120, Verdict.WAITING), (120, Verdict.WAITING),
                    (120, Verdict.STABLE), (120, Verdict.STABLE)]


def test_the_band_is_around_the_steps_set_point_and_its_edges_count_as_inside() -> None:
    assert run([(0, 44.5), (600, 45.5)])[-1] == (0, Verdict.STABLE)
    assert run([(0, 44.5), (600, 45.51)])[-1] == (None, Verdict.WAITING)


@pytest.mark.parametrize("broken", [46.0, None, float("nan")], ids=["outside", "no reading", "nan"])
def test_a_reading_outside_missing_or_not_a_number_starts_the_stable_time_again(broken: float | None) -> None:
    seen = run([(0, 45.0), (500, broken), (560, 45.0), (1100, 45.0), (1160, 45.0)])
    assert [v for _, v in seen] == [Verdict.WAITING] * 4 + [Verdict.STABLE]
    assert seen[-1][0] == 560


def test_nothing_counts_before_the_set_point_was_sent_neither_stability_nor_the_deadline() -> None:
    """A run waiting for others sharing the chamber is not stable because the chamber happens to be there, and
    cannot time out while it waits for them."""
    assert run([(0, 45.0), (700, 45.0), (99_000, 40.0)], applied=False) == [(None, Verdict.WAITING)] * 3


def test_max_wait_counts_from_the_set_point_being_sent() -> None:
    state = WaitState(since=0.0, applied=True, applied_at=5000.0)
    assert assess(SPEC, state, 8599.0, 40.0)[1] is Verdict.WAITING
    assert assess(SPEC, state, 8600.0, 40.0)[1] is Verdict.TIMED_OUT


def test_timed_out_when_max_wait_passes_without_stability() -> None:
    seen = run([(3000, 44.0), (3599, 44.3), (3600, 44.4)])
    assert [v for _, v in seen] == [Verdict.WAITING, Verdict.WAITING, Verdict.TIMED_OUT]


def test_stability_reached_at_the_deadline_wins() -> None:
    assert run([(3000, 45.0), (3600, 45.0)])[-1] == (3000, Verdict.STABLE)


def test_wait_state_round_trips_through_its_stored_form() -> None:
    state = WaitState(since=12.5, applied=True, applied_at=20.0, stable_since=99.0)
    assert WaitState.from_doc(state.to_doc()) == state
    assert SPEC.describe() == "45 °C ± 0.5 °C held for 10 min (at most 1 h)"
