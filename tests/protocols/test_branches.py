"""Conditional jumps (``then: <step id>``), the nominal path the estimate follows, hold directions and the cell
facts a program carries for its instruments."""

import pytest

from protocols.estimate import estimate_program
from protocols.paths import arrivals, branches, hold_direction, start_voltage
from protocols.program import (
    Action,
    Comparison,
    CurrentStep,
    Execution,
    HoldStep,
    LoopStep,
    Quantity,
    RestStep,
    StepProgram,
    Termination,
    walk,
)

from .conftest import MASS_CELL, cell, problems, program

CYCLING_WITH_AN_EXIT = """
protocol: fade-exit
safety: {voltage: [2.5 V, 4.4 V], current: 5 mA}
steps:
  - rest: 1 h
  - repeat: 100
    steps:
      - charge: {current: 1 mA, until: {voltage: 4.2 V}}
      - discharge:
          current: 1 mA
          until:
            - {voltage: 3.0 V}
            - {time: 1 h, then: check}
  - rest: {id: check, until: {time: 10 min}}
"""


def _t(quantity: str, op: str, value: float, **kw) -> Termination:
    return Termination(quantity=Quantity(quantity), op=Comparison(op), value=value, **kw)


def test_a_conditional_jump_binds_to_its_target_and_is_listed_as_a_branch_off_the_nominal_path():
    prog = program(CYCLING_WITH_AN_EXIT, MASS_CELL)
    jump = prog.step(3).until[1]
    assert (jump.quantity, jump.then, jump.target) == (Quantity.TIME, Action.JUMP, 5)
    (branch,) = branches(prog)
    assert (branch.step, branch.nominal, branch.describe()) == (3, False, "step 3: if time >= 3600 s, jump to step 5")
    # the estimate cannot know whether the discharge ever lasts an hour: it follows the nominal path (all passes)
    est = estimate_program(prog, cell(MASS_CELL))
    assert [e.step.index for e in walk(prog)] == [1, *[2, 3] * 100, 5]
    assert est.steps[2].passes == 100 and est.executions == 202
    assert not est.exact and est.steps[3].exact is False
    assert est.branches == [branch]
    assert est.assumption == ("the estimate cannot know which of 1 branch the cell takes and follows the nominal "
                              "path: each step goes on to the next step where it can")


def test_a_step_that_can_only_jump_takes_its_first_condition_on_the_nominal_path():
    prog = program("""
        protocol: goto
        steps:
          - rest: {until: {time: 1 h}}
          - discharge: {current: 1 mA, until: [{voltage: 3.0 V, then: last}]}
          - charge: {current: 1 mA, until: {voltage: 4.2 V}}
          - rest: {id: last, until: {time: 10 min}}
        """, MASS_CELL)
    assert [e.step.index for e in walk(prog)] == [1, 2, 4]  # step 3 is reached by no way the estimate knows
    est = estimate_program(prog, cell(MASS_CELL))
    assert est.steps[3].passes == 0 and est.steps[4].passes == 1
    assert est.total_s == pytest.approx(3600 + est.steps[2].first_s + 600)
    assert "takes its first condition (step 2: if voltage <= 3 V, jump to step 4)" in est.assumption


def test_an_end_on_the_nominal_path_ends_the_walk():
    prog = program("""
        protocol: stop
        steps:
          - discharge: {current: 1 mA, until: [{voltage: 3.0 V, then: end}]}
          - rest: 1 h
        """, MASS_CELL)
    assert [e.step.index for e in walk(prog)] == [1]
    assert [b.describe() for b in branches(prog)] == ["step 1: if voltage <= 3 V, end the run"]


def test_a_jump_out_of_a_loop_ends_its_cycle_and_resets_its_counter():
    prog = program(CYCLING_WITH_AN_EXIT, MASS_CELL)
    run = Execution(prog)
    seen = [(run.start(), run.cycle)]
    for index in (2, 3, 2, 3, 5):  # two passes, then the time condition fires in the second
        assert run.observe(index)
        seen.append((index, run.cycle))
    assert seen == [(1, 1), (2, 1), (3, 1), (2, 2), (3, 2), (5, 3)]  # the rest joins the first pass
    assert run.passes == {}  # the loop left by the jump starts afresh if entered again
    assert not Execution(prog).observe(3)  # no way leads from the start to step 3: taken as a jump, and said so


def test_hold_direction_and_current_limit_bind_from_the_protocol():
    prog = program("""
        protocol: hold
        safety: {current: 5 mA}
        steps:
          - discharge: {current: 1 mA, until: {voltage: 3.2 V}}
          - rest: 10 min
          - hold: {voltage: 3.6 V, current_limit: 0.5C, direction: charge, until: {current: C/50}}
        """, MASS_CELL)
    hold = prog.step(3)
    assert isinstance(hold, HoldStep) and hold.direction == "charge"
    assert hold.current_limit == pytest.approx(0.875e-3)  # 0.5C of 1.75 mAh
    assert (prog.nominal_capacity, prog.start_voltage) == (pytest.approx(1.75e-3), 3.0)  # from the cell record
    assert StepProgram.from_json(prog.to_json()) == prog


@pytest.mark.parametrize(("text", "message"), [
    ("direction: up", "not an allowed value"),
    ("current_limit: 0 mA", "a hold's current limit must be above zero"),
    ("current_limit: 50 mA", "is above the safety/cell current limit"),
])
def test_bad_hold_fields_are_positioned_errors(text, message):
    found = problems(f"""
        protocol: hold
        safety: {{current: 5 mA}}
        steps:
          - hold: {{voltage: 3.6 V, {text}, until: {{time: 1 h}}}}
        """, MASS_CELL)
    assert len(found) == 1 and found[0].line == 5 and message in found[0].message
    assert found[0].path.startswith("steps[0].hold.")


def test_start_voltages_follow_every_way_into_a_step():
    steps = (
        CurrentStep(index=1, kind="discharge", current=-1e-3, until=(_t("voltage", "<=", 3.2),)),
        RestStep(index=2, until=(_t("time", ">=", 600.0),)),
        HoldStep(index=3, voltage=3.6, until=(_t("time", ">=", 60.0),)),
        CurrentStep(index=4, kind="discharge", current=-1e-3, until=(_t("voltage", "<=", 3.0), _t(
            "time", ">=", 60.0, then=Action.JUMP, target=2))),
        LoopStep(index=5, target=1, count=2),
    )
    prog = StepProgram(protocol="p", cell="c", steps=steps, start_voltage=3.8)
    ways = arrivals(prog)
    # step 1 from the start (3.8 V) and from the loop's jump back (after step 4 at 3.0 V)
    assert sorted(a.voltage for a in ways[1]) == [3.0, 3.8]
    # step 2 after step 1 (3.2 V) and after step 4's jump (its voltage unknown: it ended on time)
    assert {a.voltage for a in ways[2]} == {3.2, None} and start_voltage(ways[2]) is None
    found = hold_direction(prog.step(3), ways[3])
    assert found.direction is None and found.reason == "the cell's voltage after step 2 is not known"
    fixed = prog.model_copy(update={"steps": (*steps[:3], steps[3].model_copy(update={"until": steps[3].until[:1]}),
                                              steps[4])})
    found = hold_direction(fixed.step(3), arrivals(fixed)[3])
    assert (found.direction, found.reason) == ("charge", "the cell is at 3.2 V after step 2")


def test_a_jump_from_a_step_that_cannot_be_bound_is_still_checked_and_never_crashes():
    found = problems("""
        protocol: broken
        steps:
          - charge: {current: 1 mA, until: [{voltage: 5 V}, {time: 1 h, then: b}], id: a}
          - rest: {until: [{time: 1 h}, {voltage: '< 3 V', then: nowhere}]}
          - rest: {id: b, until: {time: 1 h}}
        """, MASS_CELL)
    assert [(p.path, p.message.split(":")[0]) for p in found] == [
        ("steps[0].charge.until[0].voltage", "the limit 5 V is never reached"),
        ("steps[1].rest.until[1].then", "'then' names no step"),
    ]


def test_the_voltage_limit_where_a_cccv_hold_starts_cannot_jump():
    found = problems("""
        protocol: cccv
        steps:
          - charge: {current: 1 mA, until: [{voltage: 4.2 V, then: end}], then_hold: {until: {current: 0.05 mA}}}
        """, MASS_CELL)
    assert len(found) == 1 and found[0].path == "steps[0].charge.until"
    assert found[0].message == ("the voltage limit of a CCCV step is where its hold starts, so it cannot jump or end "
                                "the run")


def test_the_json_schema_offers_the_hold_direction_and_current_limit():
    from protocols.model import ProtocolDoc

    hold = ProtocolDoc.model_json_schema()["$defs"]["HoldBody"]["properties"]
    assert hold["direction"]["anyOf"][0] == {"enum": ["charge", "discharge"], "type": "string"}
    assert "current_limit" in hold and "sources current" in hold["direction"]["description"]
