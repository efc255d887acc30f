"""A plan counts the wait of each temperature step: the chamber's ramp at the nominal rate from the temperature
before, plus the stable time, with max_wait as the bound."""

from __future__ import annotations

import pytest

from protocols.estimate import CHAMBER_RAMP_K_PER_MIN, DEFAULT_CHAMBER_C, TemperatureWait, estimate_program

from .conftest import cell, program

WARM_THEN_COOL = """
protocol: t
steps:
  - rest: 1 h
  - temperature: {set: 45 degC, stable_for: 1 h}
  - rest: 2 h
  - temperature: {set: 25 degC, stable_for: 30 min, max_wait: 1 h}
"""
CELL_AT_20 = """
name: at-20
diameter: 12 mm
capacity: 1 mAh
temperature: 20 degC
limits: {voltage: [2.5 V, 4.4 V]}
"""


def test_the_assumed_ramp_and_the_default_start_are_the_documented_ones():
    assert (CHAMBER_RAMP_K_PER_MIN, DEFAULT_CHAMBER_C) == (1.0, 27.0)


def test_each_wait_is_the_ramp_from_the_temperature_before_plus_the_stable_time():
    prog = program(WARM_THEN_COOL)
    estimate = estimate_program(prog, cell())  # the conftest cell gives no temperature: 27 degC
    assert estimate.temperature_waits == [
        TemperatureWait(index=2, from_c=27.0, to_c=45.0, ramp_s=18 * 60.0, stable_s=3600.0, max_wait_s=14400.0),
        TemperatureWait(index=4, from_c=45.0, to_c=25.0, ramp_s=20 * 60.0, stable_s=1800.0, max_wait_s=3600.0),
    ]
    assert [w.estimated_s for w in estimate.temperature_waits] == [4680.0, 3000.0]
    assert estimate.total_s == 3600 + 4680 + 7200 + 3000
    assert (estimate.steps[2].first_s, estimate.steps[4].first_s) == (4680.0, 3000.0)
    assert not estimate.exact and estimate.complete  # a nominal ramp is an assumption, never exact
    # the bound: every temperature step waits its max_wait
    assert estimate.max_total_s == 3600 + 14400 + 7200 + 3600
    assert estimate.temperature_assumption == (
        "temperature steps: the chamber is assumed to ramp at 1 K/min from the set point before (the first from "
        "27 degC), then hold for stable_for; max_wait is each step's upper bound")


def test_the_first_wait_starts_from_the_cell_records_temperature():
    prog = program(WARM_THEN_COOL, CELL_AT_20)
    first = estimate_program(prog, cell(CELL_AT_20)).temperature_waits[0]
    assert (first.from_c, first.ramp_s, first.estimated_s) == (20.0, 25 * 60.0, 25 * 60.0 + 3600.0)


def test_the_instrument_records_nothing_while_the_station_waits():
    prog = program(WARM_THEN_COOL)
    estimate = estimate_program(prog, cell())
    assert (estimate.steps[2].records, estimate.steps[4].records) == (0, 0)


def test_a_wait_that_cannot_fit_its_max_wait_is_counted_up_to_it_and_said_not_to_fit():
    prog = program("""
        protocol: t
        steps:
          - temperature: {set: -20 degC, stable_for: 30 min, max_wait: 1 h}
        """)
    (wait,) = estimate_program(prog, cell()).temperature_waits
    assert (wait.ramp_s, wait.fits, wait.estimated_s) == (47 * 60.0, False, 3600.0)


def test_a_program_without_temperature_steps_plans_as_before():
    prog = program("""
        protocol: t
        steps:
          - rest: 1 h
        """)
    estimate = estimate_program(prog, cell())
    assert (estimate.temperature_waits, estimate.temperature_assumption) == ([], None)
    assert estimate.max_total_s == estimate.total_s == pytest.approx(3600.0)
