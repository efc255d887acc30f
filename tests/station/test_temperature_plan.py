"""``station plan`` of a protocol with temperature steps counts the chamber waits (and shows max_wait as the bound);
a channel's capabilities refuse the whole program in one line (the station carries temperature steps out); a
campaign stage can set the chamber, and the library's campaign runs P3 at 27 and at 45 degC."""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from drivers.base import station_step_problem
from protocols.campaign import load_campaign, load_campaign_text
from protocols.campaign_plan import estimate_campaign
from protocols.cells import load_cell
from protocols.errors import ProtocolError
from protocols.estimate import estimate_program
from protocols.library import CAMPAIGNS
from protocols.loader import load_protocol
from protocols.segments import segments
from station.cli import app
from station.instruments import kind_capabilities
from station.plan import plan_document

CELL = "predeposited-ncm622"


@pytest.fixture(scope="module")
def p8():
    cell = load_cell(CELL)
    program = load_protocol("p8-temperature-cycling", {"cycles_27": "3", "cycles_45": "2"}).bind(cell)
    return program, cell


def test_the_plan_lists_each_temperature_step_with_its_wait_and_bound(p8):
    program, cell = p8
    doc = plan_document(program, cell)
    json.dumps(doc, allow_nan=False)
    # step 1 at the cell's own 27 degC: no ramp, 30 min stable; step 9: 18 K at 1 K/min, then 1 h stable
    assert doc["temperature_steps"] == [
        {"step": 1, "from_c": 27.0, "to_c": 27.0, "ramp_s": 0.0, "stable_s": 1800.0, "estimated_s": 1800.0,
         "max_wait_s": 14400.0},
        {"step": 9, "from_c": 27.0, "to_c": 45.0, "ramp_s": 1080.0, "stable_s": 3600.0, "estimated_s": 4680.0,
         "max_wait_s": 14400.0}]
    step9 = doc["steps"][8]
    assert (step9["kind"], step9["setpoint_c"], step9["band_k"], step9["stable_for_s"], step9["max_wait_s"]) == (
        "temperature", 45.0, 0.5, 3600.0, 14400.0)
    assert (step9["estimated_s"], step9["records"], step9["control"]) == (
        4680.0, 0, {"quantity": "temperature", "value": 45.0})
    instrument = sum(estimate_program(part.program, cell).total_s for part in segments(program))
    assert doc["estimated_duration_s"] == pytest.approx(instrument + 1800 + 4680, rel=1e-12)
    assert doc["estimated_duration_max_s"] == pytest.approx(doc["estimated_duration_s"] + (14400 - 1800)
                                                            + (14400 - 4680), rel=1e-12)
    assert doc["temperature_assumption"].startswith("temperature steps: the chamber is assumed to ramp at 1 K/min")
    assert doc["warnings"] == []


def test_station_plan_prints_the_temperature_steps_and_the_bound():
    result = CliRunner().invoke(app, ["plan", "p8-temperature-cycling", "--cell", CELL])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert ("note: step 9 (temperature): the station sets the chamber to 45 degC and waits ~1.3 h (ramp from 27 degC "
            "18 min + stable 1 h), at most 4 h (max_wait)") in lines
    assert ("note: step 1 (temperature): the station sets the chamber to 27 degC and waits ~30 min (ramp from 27 "
            "degC 0 s + stable 30 min), at most 4 h (max_wait)") in lines
    assert any(line.startswith("note: with every temperature step waiting its max_wait: total at most ")
               for line in lines)


def test_a_wait_longer_than_max_wait_is_a_plan_warning(tmp_path):
    protocol = tmp_path / "cold.yaml"
    protocol.write_text(textwrap.dedent("""
        protocol: cold
        steps:
          - temperature: {set: -20 degC, stable_for: 30 min, max_wait: 1 h}
          - rest: 1 h
        """))
    doc = json.loads(CliRunner().invoke(app, ["plan", str(protocol), "--cell", CELL, "--json"]).stdout)
    assert doc["warnings"] == ["step 1 (temperature): ramping 47 K at the assumed rate takes 47 min, and with "
                               "stable_for 30 min that is more than max_wait 1 h: the run would fail there; raise "
                               "max_wait"]


@pytest.mark.parametrize("kind", ["neware", "biologic"])
def test_a_channel_refuses_a_program_with_temperature_steps_in_one_first_line(p8, kind):
    program, _ = p8
    problems = kind_capabilities(kind).problems(program)
    assert problems[0] == ("step 1, 9 (temperature): temperature steps are carried out by the station, which sets "
                           "the climate chamber between the instrument programs of a run, not by this channel")
    assert problems[0] == station_step_problem(program)
    assert not any("temperature" in p for p in problems[1:])  # neither the steps nor the chamber's limit again


def test_the_library_campaign_runs_p3_at_27_then_45_degc_and_plans_both_waits():
    cell = load_cell(CELL)
    loaded = load_campaign("p3-at-27-and-45", cell)
    stages = loaded.plan.stages
    assert [(s.name, s.protocol.name, s.set, s.temperature.setpoint, s.temperature.stable_for) for s in stages] == [
        ("at-27", "full-cell-formation-cycling", {"cycles": "100"}, 27.0, 1800.0),
        ("at-45", "full-cell-formation-cycling", {"cycles": "100"}, 45.0, 3600.0)]
    estimate = estimate_campaign(loaded.plan, cell)
    p3 = estimate_program(load_protocol("p3-full-cell-cycling", {"cycles": "100"}).bind(cell), cell).total_s
    assert [(s.temperature.from_c, s.temperature.ramp_s, s.runs) for s in estimate.stages] == [
        (27.0, 0.0, 1), (27.0, 1080.0, 1)]
    assert [s.total_s for s in estimate.stages] == [pytest.approx(1800 + p3, rel=1e-12),
                                                    pytest.approx(4680 + p3, rel=1e-12)]
    assert estimate.total_s == pytest.approx(1800 + 4680 + 2 * p3, rel=1e-12)


def _campaign(*stage_extra: str) -> str:
    lines = ["", "campaign: c", "stages:", "  - name: warm", "    protocol: p8-temperature-cycling",
             *(f"    {line}" for line in stage_extra)]
    return "\n".join(lines) + "\n"


def test_a_stage_temperature_above_its_protocols_limit_is_refused_at_the_stage():
    with pytest.raises(ProtocolError) as info:
        load_campaign_text(_campaign("temperature: {set: 55 degC, band: 0 K}"), "c.yaml", load_cell(CELL),
                           base_dir=CAMPAIGNS)
    assert [str(p) for p in info.value.problems] == [
        "c.yaml:6:24: stages[0].temperature.set: the set point 55 degC is above the safety/cell temperature limit 50 "
        "degC, so the run would stop once the chamber got there; expected a set point of at most 50 degC, or a "
        "higher safety.temperature, found '55 degC'",
        "c.yaml:6:39: stages[0].temperature.band: the stability band must be above zero; expected a difference such "
        "as '0.5 degC', found '0 K'"]


def test_a_stage_temperature_in_short_form_takes_the_defaults_and_the_stage_plans_from_it():
    cell = load_cell(CELL)
    loaded = load_campaign_text(_campaign("temperature: 35 degC", "set: {cycles_27: 1, cycles_45: 1}"), "c.yaml",
                                cell, base_dir=CAMPAIGNS)
    (stage,) = loaded.plan.stages
    assert (stage.temperature.setpoint, stage.temperature.band, stage.temperature.max_wait) == (35.0, 1.0, 14400.0)
    (estimate,) = estimate_campaign(loaded.plan, cell).stages
    # the stage sets 35 degC (8 K from the cell's 27 degC); P8's own first step then starts from 35 degC
    assert (estimate.temperature.ramp_s, estimate.run.temperature_waits[0].from_c) == (480.0, 35.0)
