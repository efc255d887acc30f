"""Each quantity is read once, by the model's field types, and binding uses the objects the models hold."""

import textwrap

import pytest

import protocols.binding
from protocols.fields import Threshold
from protocols.loader import load_protocol_text
from protocols.program import Quantity
from protocols.units import Current, Duration, Voltage

from .conftest import MASS_CELL, cell, problems, program


def test_the_models_hold_parsed_quantities_with_the_text_as_written():
    doc = load_protocol_text(textwrap.dedent("""
        protocol: x
        steps:
          - charge: {current: 0.1C, until: {voltage: "< 4.2 V", time: 2 h}}
          - Discharge at C/10 until 3.0 V
        """)).doc
    charge = doc.steps[0].charge
    assert charge.current == Current(0.1, "c_rate", "0.1C")
    assert charge.until.voltage == Threshold("<=", Voltage(4.2, "4.2 V"), "< 4.2 V")
    assert charge.until.time == Duration(7200.0, "2 h")
    discharge = doc.steps[1].discharge  # the shorthand hands the model what it read
    assert discharge.current == Current(0.1, "c_rate", "C/10")
    assert discharge.until.voltage == Threshold(None, Voltage(3.0, "3.0 V"), "3.0 V")
    assert doc.model_dump()["steps"][0]["charge"]["current"] == "0.1C"  # serialised as written


def test_binding_reads_no_text():
    """No module of the binder holds a parser: what the models read is all it uses."""
    modules = [protocols.binding, *(getattr(protocols.binding, name) for name in
                                    ("context", "quantities", "header", "terminations", "steps"))]
    for module in modules:
        parsers = [name for name in vars(module) if name.startswith("parse") or name == "to_quantity"]
        assert not parsers, f"{module.__name__} imports {parsers}"


def test_a_c_rate_resolves_against_the_cell_capacity():
    prog = program("protocol: c\nsteps: ['Charge at 0.1C until 4.3 V']\n", MASS_CELL)  # 10 mg x 175 mAh/g
    assert prog.step(1).current == pytest.approx(1.75e-4, rel=1e-12)


def test_a_dvdt_end_is_a_falling_one():
    found = problems("""
        protocol: x
        steps:
          - rest: {until: {dvdt: "> 1 mV/h"}}
        """)
    assert len(found) == 1
    assert (found[0].line, found[0].path) == (4, "steps[0].rest.until.dvdt")
    assert "wrong way round" in found[0].message and found[0].expected == "'1 mV/h' or '< 1 mV/h'"
    step = program("protocol: x\nsteps: [{rest: {until: {dvdt: '< 1 mV/h'}}}]\n").step(1)
    assert step.limit(Quantity.DVDT).value == pytest.approx(1e-3 / 3600)


def test_a_list_of_the_wrong_length_says_how_many_items_and_what_they_are():
    found = problems("""
        protocol: x
        safety: {voltage: [3.0 V]}
        steps:
          - cv: {scan_rate: 1 mV/s, vertices: [0.1 V, 1 V, 2 V]}
        """)
    window, vertices = sorted(found, key=lambda p: p.line)
    assert (window.path, window.message) == ("safety.voltage", "too few items")
    assert (window.expected, window.found) == ("exactly 2 items: [min, max]", "1 item")
    assert (vertices.path, vertices.message) == ("steps[0].cv.vertices", "too many items")
    assert vertices.expected == "exactly 2 items: [first vertex, second vertex]" and vertices.found == "3 items"


def test_an_eis_amplitude_of_the_wrong_kind_is_reported_at_the_amplitude():
    found = problems("""
        protocol: x
        steps:
          - eis: {from: 10 kHz, to: 1 Hz, points_per_decade: 0, amplitude: 10 mA}
        """)
    amplitude = next(p for p in found if "EIS controls" in p.message)
    assert (amplitude.path, amplitude.line, amplitude.column) == ("steps[0].eis.amplitude", 4, 68)
    assert amplitude.message == "'10 mA' is a current, not a voltage (potentio EIS controls the voltage)"
    assert any(p.path == "steps[0].eis.points_per_decade" for p in found)  # both, in one pass


def test_a_step_with_a_problem_keeps_its_id():
    """A jump to a step that has a problem of its own names that step: only the step's problem is reported."""
    found = problems("""
        protocol: x
        steps:
          - discharge: {current: 1 mA, until: {voltage: "> 3 V"}, id: low}
          - charge: {current: 1 mA, until: [{voltage: 3.4 V}, {time: 1 h, then: low}]}
        """)
    assert [p.path for p in found] == ["steps[0].discharge.until.voltage"]


def test_the_cell_holds_si_values_resolved_once():
    host = cell()  # diameter 12 mm, capacity 0.5 mAh/cm^2
    assert host.area == pytest.approx(1.1310e-4, rel=1e-4)
    assert host.capacity == pytest.approx(0.5e-3 * 1.1310, rel=1e-4)
    assert (host.voltage_min, host.voltage_max) == (-0.5, 3.5)


def test_station_config_fields_hold_parsed_quantities():
    from station.config import StationConfig

    config = StationConfig.model_validate({"instruments": [
        {"name": "bts", "kind": "neware", "simulated": True, "channels": [{"id": "1-1-1", "current": "10 mA"}]}]})
    channel = config.instruments[0].channels[0]
    assert channel.voltage == [Voltage(-10.0, "-10 V"), Voltage(10.0, "10 V")]  # the default, read like a value
    assert channel.current == Current(0.01, "absolute", "10 mA")
    assert config.poll_seconds == 10.0 and config.instruments[0].timeout == Duration(30.0, "30 s")
