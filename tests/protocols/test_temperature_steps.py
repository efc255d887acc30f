"""The ``temperature`` step: what it binds to, the defaults a lab expects, every refusal with its place and fix, and
how it counts in the cycle rule (a step that passes no charge, like a rest)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from protocols.program import Control, RecordRule, StepProgram, TemperatureStep, walk

from .conftest import problems, program

CELL_40C = """
name: warm-limited
diameter: 12 mm
capacity: 1 mAh
limits: {voltage: [2.5 V, 4.4 V], temperature: 40 degC}
"""

TWO_TEMPERATURES = """
protocol: two-temperatures
safety: {temperature: 50 degC}
steps:
  - rest: 1 h
  - repeat: 2
    steps:
      - charge: {current: 1 mA, until: {voltage: 3.2 V}}
      - discharge: {current: 1 mA, until: {voltage: 0.1 V}}
  - temperature: {set: 45 degC, band: 0.5 degC, stable_for: 30 min, max_wait: 4 h}
  - repeat: 3
    steps:
      - charge: {current: 1 mA, until: {voltage: 3.2 V}}
      - discharge: {current: 1 mA, until: {voltage: 0.1 V}}
"""


def messages(text: str, cell_text: str | None = None) -> list[str]:
    found = problems(text, cell_text) if cell_text else problems(text)
    return [str(p) for p in found]


def test_a_temperature_step_binds_its_set_point_band_and_waits_in_degc_k_and_seconds():
    prog = program(TWO_TEMPERATURES)
    step = prog.step(5)
    assert isinstance(step, TemperatureStep) and step.kind == "temperature"
    assert (step.setpoint, step.band, step.stable_for, step.max_wait) == (45.0, 0.5, 1800.0, 14400.0)
    assert step.until == () and step.control == Control(quantity="temperature", value=45.0)
    assert step.source is not None and (step.source.line, step.source.path) == (10, "steps[2]")


def test_the_short_form_takes_the_defaults_a_lab_expects():
    step = program("""
        protocol: t
        steps:
          - temperature: 25 degC
          - rest: 1 h
        """).step(1)
    assert (step.setpoint, step.band, step.stable_for, step.max_wait) == (25.0, 1.0, 1800.0, 14400.0)


@pytest.mark.parametrize(("band", "kelvin"), [("0.5 K", 0.5), ("0.5 degC", 0.5), ("500 mK", 0.5), ("0.9 degF", 0.5),
                                              ("2 °C", 2.0)])
def test_a_band_is_a_temperature_difference_whatever_its_unit(band, kelvin):
    step = program(f"""
        protocol: t
        steps:
          - temperature: {{set: 30 degC, band: {band}}}
        """).step(1)
    assert step.band == pytest.approx(kelvin, rel=1e-12)


def test_a_set_point_in_kelvin_is_converted_to_degc():
    step = program("""
        protocol: t
        steps:
          - temperature: {set: 318.15 K}
        """).step(1)
    assert step.setpoint == pytest.approx(45.0, abs=1e-9)


def test_the_program_round_trips_through_json_with_its_temperature_step():
    prog = program(TWO_TEMPERATURES)
    again = StepProgram.from_json(prog.to_json())
    assert again == prog and isinstance(again.step(5), TemperatureStep)


def test_the_program_model_itself_refuses_a_wait_shorter_than_the_stable_time_and_an_empty_band():
    with pytest.raises(ValidationError, match="max_wait 600 s is shorter than stable_for 1800 s"):
        TemperatureStep(index=1, setpoint=45.0, band=0.5, stable_for=1800.0, max_wait=600.0)
    with pytest.raises(ValidationError, match="greater than 0"):
        TemperatureStep(index=1, setpoint=45.0, band=0.0, stable_for=1800.0, max_wait=3600.0)


def test_band_zero_a_wait_shorter_than_stable_for_and_a_negative_stable_time_are_each_told_at_their_key():
    found = messages("""
        protocol: t
        steps:
          - temperature: {set: 45 degC, band: 0 K, stable_for: 2 h, max_wait: 1 h}
          - temperature: {set: 45 degC, stable_for: -1 min}
        """)
    assert found == [
        "p.yaml:4:39: steps[0].temperature.band: the stability band must be above zero; expected a difference such "
        "as '0.5 degC', found '0 K'",
        "p.yaml:4:71: steps[0].temperature.max_wait: max_wait 1 h is shorter than stable_for 2 h, so the wait would "
        "always fail; expected at least 2 h plus the chamber's ramp time, found '1 h'",
        "p.yaml:5:45: steps[1].temperature.stable_for: the time to stay stable cannot be negative; expected a "
        "duration such as '30 min' (0 s: go on once within the band), found '-1 min'",
    ]


def test_a_wait_of_nothing_and_a_band_past_any_number_are_told_at_their_key():
    found = messages("""
        protocol: t
        steps:
          - temperature: {set: 45 degC, stable_for: 0 s, max_wait: 0 s}
          - temperature: {set: 45 degC, band: 1e999 K}
        """)
    assert found == [
        "p.yaml:4:60: steps[0].temperature.max_wait: max_wait 0 s leaves no time to wait for the chamber; expected a "
        "duration above zero, such as '4 h', found '0 s'",
        "p.yaml:5:39: steps[1].temperature.band: '1e999 K' is not a finite temperature difference; expected a "
        "temperature difference with its unit, such as '0.5 degC' or '1 K', found '1e999 K'",
    ]


def test_a_band_without_a_unit_is_refused_as_a_quantity():
    found = messages("""
        protocol: t
        steps:
          - temperature: {set: 45 degC, band: 0.5}
        """)
    assert found == ["p.yaml:4:39: steps[0].temperature.band: cannot read '0.5' as a temperature difference; "
                     "expected a temperature difference with its unit, such as '0.5 degC' or '1 K', found 0.5"]


def test_a_set_point_above_the_protocols_whole_run_limit_is_refused_before_start():
    found = messages("""
        protocol: t
        safety: {temperature: 40 degC}
        steps:
          - temperature: 45 degC
        """)
    assert found == ["p.yaml:5:18: steps[0].temperature.set: the set point 45 degC is above the safety/cell "
                     "temperature limit 40 degC, so the run would stop once the chamber got there; expected a set "
                     "point of at most 40 degC, or a higher safety.temperature, found '45 degC'"]


def test_the_cells_temperature_limit_counts_too_and_so_does_the_top_of_the_band():
    over_cell = messages("""
        protocol: t
        safety: {temperature: 60 degC}
        steps:
          - temperature: {set: 45 degC}
        """, CELL_40C)
    assert over_cell == ["p.yaml:5:24: steps[0].temperature.set: the set point 45 degC is above the safety/cell "
                         "temperature limit 40 degC, so the run would stop once the chamber got there; expected a "
                         "set point of at most 40 degC, or a higher safety.temperature, found '45 degC'"]
    band_over = messages("""
        protocol: t
        steps:
          - temperature: {set: 39.5 degC, band: 1 K}
        """, CELL_40C)
    assert band_over == ["p.yaml:4:41: steps[0].temperature.band: the band reaches 40.5 degC, above the safety/cell "
                         "temperature limit 40 degC: an ordinary reading within the band would stop the run; "
                         "expected a band of at most 0.5 K, or a lower set point, found '1 K'"]
    at_the_limit = program("""
        protocol: t
        steps:
          - temperature: {set: 39.5 degC, band: 0.5 K}
        """, CELL_40C)
    assert at_the_limit.step(1).setpoint == 39.5


def test_a_temperature_step_inside_a_repeat_is_refused_with_what_to_do_instead():
    found = messages("""
        protocol: t
        steps:
          - repeat: 2
            steps:
              - temperature: 45 degC
              - rest: 1 h
        """)
    assert found == ["p.yaml:6:9: steps[0].steps[0]: a temperature step is carried out by the station between "
                     "instrument programs, so in this version it stands at the top level of 'steps', not inside "
                     "'repeat'; expected the temperature step before or after the repeat (repeat the protocol at "
                     "several temperatures with a campaign), found a temperature step inside a repeat"]


@pytest.mark.parametrize("target", ["before", "warm"])
def test_a_jump_across_or_onto_a_temperature_step_is_refused_at_its_then(target):
    found = messages(f"""
        protocol: t
        steps:
          - rest: {{until: {{time: 1 h}}, id: before}}
          - temperature: {{set: 45 degC, id: warm}}
          - discharge: {{current: 1 mA, until: [{{voltage: 0.1 V}}, {{time: 1 h, then: {target}}}]}}
        """)
    assert len(found) == 1
    assert found[0].startswith("p.yaml:6:76: steps[2].discharge.until[1].then: "
                               f"'then: {target}' jumps across the temperature step 2: the station runs the steps "
                               "between temperature steps as separate instrument programs")


def test_a_jump_within_one_side_of_a_temperature_step_is_allowed():
    prog = program("""
        protocol: t
        steps:
          - temperature: 45 degC
          - discharge: {current: 1 mA, until: [{voltage: 0.1 V}, {time: 1 h, then: after}]}
          - rest: 1 h
          - rest: {until: {time: 1 h}, id: after}
        """)
    assert prog.step(2).until[1].target == 4


def test_a_temperature_step_passes_no_charge_so_it_belongs_with_the_cycle_that_follows():
    prog = program(TWO_TEMPERATURES)
    cycles = [(e.step.index, e.cycle) for e in walk(prog)]
    # rest and 2 passes at the first temperature, then the temperature step opens cycle 3 with the 3 passes after it
    assert cycles == [(1, 1), (2, 1), (3, 1), (2, 2), (3, 2), (5, 3), (6, 3), (7, 3), (6, 4), (7, 4), (6, 5),
                      (7, 5)]


def test_the_cycle_rule_is_unchanged_a_lone_charge_before_the_temperature_step_makes_its_own_cycle():
    prog = program("""
        protocol: t
        steps:
          - charge: {current: 1 mA, until: {voltage: 3.2 V}}
          - temperature: 45 degC
          - repeat: 2
            steps:
              - discharge: {current: 1 mA, until: {voltage: 0.1 V}}
              - charge: {current: 1 mA, until: {voltage: 3.2 V}}
        """)
    assert [(e.step.index, e.cycle) for e in walk(prog)] == [(1, 1), (2, 1), (3, 2), (4, 2), (3, 3), (4, 3)]


def test_a_temperature_step_is_recorded_with_the_default_rule_like_any_step():
    prog = program("""
        protocol: t
        record: {every: 30 s}
        steps:
          - temperature: 45 degC
        """)
    assert prog.step(1).record == RecordRule(every_s=30.0)
