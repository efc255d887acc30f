"""Every refusal the issue lists, each at the right line and column, all found in one pass."""

import pytest

from protocols.cells import load_cell_text
from protocols.errors import ProtocolError
from protocols.loader import load_protocol_text

from .conftest import MASS_CELL, problems


def only(found, fragment):
    hits = [p for p in found if fragment in str(p)]
    assert hits, f"no problem mentions {fragment!r}: {[str(p) for p in found]}"
    return hits[0]


def test_a_step_that_cannot_end():
    p = only(problems("""
        protocol: x
        steps:
          - charge: {current: 1 mA}
        """), "can never end")
    assert (p.line, p.path) == (4, "steps[0].charge")


def test_voltage_limit_on_the_wrong_side_of_the_step():
    p = only(problems("""
        protocol: x
        steps:
          - charge: {current: 1 mA, until: {voltage: "< 3.0 V"}}
        """), "wrong side")
    assert (p.line, p.column, p.path) == (4, 46, "steps[0].charge.until.voltage")
    assert p.found == "'< 3.0 V'" and ">= 3.0 V" in p.expected


def test_voltage_limit_whose_direction_cannot_be_inferred():
    found = problems("""
        protocol: x
        steps:
          - rest: {until: {voltage: 3.0 V}}
          - Rest until 3 V
        """)
    assert only(found, "cannot tell whether a rest step ends above or below").line == 4
    assert only(found, "which way").line == 5


def test_a_current_given_in_mah():
    p = only(problems("""
        protocol: x
        steps:
          - discharge: {current: 4 mAh, until: {voltage: 0 V}}
        """), "is a capacity, not a current")
    assert (p.line, p.column, p.path) == (4, 26, "steps[0].discharge.current")


def test_a_cell_property_that_is_missing():
    no_area = "name: bare\ncapacity: 2 mAh\n"
    found = problems("""
        protocol: x
        requires: [area]
        steps:
          - discharge: {current: 0.5 mA/cm^2, until: {voltage: 0 V}}
        """, no_area)
    assert only(found, "requires the cell's area").line == 3
    p = only(found, "needs the cell's area")
    assert (p.line, p.path) == (5, "steps[0].discharge.current")


def test_an_unknown_key_with_did_you_mean():
    found = problems("""
        protocol: x
        steps:
          - charge: {current: 1 mA, unitl: {voltage: 4.1 V}}
          - dischrage: {current: 1 mA, until: {time: 1 h}}
        """)
    p = only(found, "unknown key 'unitl'")
    assert "did you mean 'until'" in p.message and (p.line, p.column) == (4, 29)
    assert "did you mean 'discharge'" in only(found, "unknown step kind").message


def test_a_repeat_count_below_one():
    p = only(problems("""
        protocol: x
        steps:
          - repeat: 0
            steps: ["Rest for 1 hour"]
        """), "must be >= 1")
    assert (p.line, p.path) == (4, "steps[0].repeat")


def test_an_unknown_parameter_and_an_unknown_set_name():
    found = problems("""
        protocol: x
        parameters: {rate: 0.1C}
        steps:
          - charge: {current: "${rat}", until: {voltage: 4.2 V}}
        """)
    p = only(found, "unknown parameter 'rat'")
    assert "did you mean 'rate'" in p.message and p.line == 5
    assert len(found) == 1  # the unreplaced value is not reported a second time as a bad current
    with pytest.raises(ProtocolError, match="unknown parameter 'rte'"):
        load_protocol_text("protocol: x\nparameters: {rate: 0.1C}\nsteps: ['Rest for 1 h']\n", overrides={"rte": "1"})


def test_a_set_value_of_the_wrong_dimension():
    with pytest.raises(ProtocolError, match="wrong type for this parameter"):
        load_protocol_text("protocol: x\nparameters: {cd: 0.5 mA/cm^2}\nsteps: ['Rest for 1 h']\n",
                           overrides={"cd": "2 mAh/cm^2"})


def test_safety_limits_that_contradict_the_steps():
    found = problems("""
        protocol: x
        safety: {voltage: [3.0 V, 4.2 V], current: 1 mA}
        steps:
          - charge: {current: 2 mA, until: {voltage: 4.3 V}}
          - hold: {voltage: 4.5 V, until: {time: 1 h}}
          - discharge: {current: 0.5 mA, until: {voltage: 2.8 V}}
        """, MASS_CELL)
    assert only(found, "never reached: the safety/cell limit stops the run at 4.2 V").line == 5
    assert only(found, "above the safety/cell current limit").line == 5
    assert only(found, "outside the safety/cell voltage window").line == 6
    assert only(found, "stops the run at 3 V first").line == 7


def test_a_charge_that_ends_below_where_the_previous_step_left_the_cell():
    p = only(problems("""
        protocol: x
        steps:
          - Discharge at 1 mA until 3.0 V
          - Charge at 1 mA until 2.9 V
        """), "would end at once")
    assert p.line == 5


def test_every_error_is_found_in_one_pass():
    found = problems("""
        protocol: x
        safty: {}
        steps:
          - discharge: {current: 4 mAh, until: {voltage: 3.5 V}}
          - charge: {current: 1 mA, until: {voltage: "< 3.0 V"}}
          - repeat: 0
            steps: ["Rest for 1 hour"]
          - Charge at 4.2 V for 1 hour
        """)
    assert len(found) == 5
    assert [p.line for p in found] == [3, 5, 6, 7, 9]
    assert all(str(p).startswith(f"p.yaml:{p.line}:{p.column}: ") for p in found)


@pytest.mark.parametrize("text", [
    "Charge at 4.2 V for 1 hour",      # PyBaMM negates this into a voltage step
    "Hold at 1 A for 1 hour",          # PyBaMM reads this as a discharge current
    "Discharge at -1 A for 1 hour",    # PyBaMM flips the direction
    "Charge at 1 A until 4.2 V or 1 hour or 4.3 V",
    "Charge at C/20",                  # PyBaMM caps it at a hidden 40 h
    "Hold at 4.2 V until 4.0 V",       # PyBaMM silently drops the end
    "Discharge at 1 A until 0.05 A",   # a CC step cannot end on a current
])
def test_pybamm_silent_traps_are_errors(text):
    found = problems(f"protocol: x\nsteps: ['{text}']\n")
    assert found and found[0].line == 2


def test_yaml_syntax_errors_and_duplicate_keys_have_positions():
    with pytest.raises(ProtocolError) as info:
        load_protocol_text("protocol: x\nsteps:\n  - rest: [1 h\n", "bad.yaml")
    assert str(info.value).startswith("bad.yaml:")
    with pytest.raises(ProtocolError, match=r"bad\.yaml:2:1: protocol: duplicate key"):
        load_protocol_text("protocol: x\nprotocol: y\nsteps: ['Rest for 1 h']\n", "bad.yaml")


def test_cell_errors():
    with pytest.raises(ProtocolError, match="give area or diameter, not both"):
        load_cell_text("name: c\narea: 1 cm^2\ndiameter: 12 mm\n")
    with pytest.raises(ProtocolError, match=r"cell.yaml:2:11: diameter: '12 mAh' is a capacity, not a length"):
        load_cell_text("name: c\ndiameter: 12 mAh\n", "cell.yaml")
