"""The step-file semantics of reference section 9: CV direction and current limit, zero limits, jump conditions,
MultCap and RateType. Exact Step_Type codes and attribute values, read back with defusedxml."""

from __future__ import annotations

import defusedxml.ElementTree as SafeET
import pytest

from drivers.base import CapabilityError, ChannelRanges
from drivers.neware.stepfile import CompileOptions, compile_program, notes
from protocols.program import (
    Action,
    Comparison,
    CurrentStep,
    HoldStep,
    LoopStep,
    Quantity,
    RestStep,
    SafetyLimits,
    SourceLocation,
    StepProgram,
    Termination,
)

RANGES = ChannelRanges(voltage_min=-1.0, voltage_max=5.0, current_max=0.01, current_min_resolution=1e-6)


def _t(quantity: str, op: str, value: float, **kw) -> Termination:
    return Termination(quantity=Quantity(quantity), op=Comparison(op), value=value, **kw)


def program(*steps, **kw) -> StepProgram:
    return StepProgram(protocol="p", cell="c", steps=steps, **kw)


def steps_of(prog: StepProgram) -> list:
    return list(SafeET.fromstring(compile_program(prog, RANGES).xml).find("config/Step_Info"))


def main(step) -> dict[str, str]:
    return {e.tag: e.get("Value") for e in step.find("Limit/Main")}


DISCHARGE_TO_3V2 = CurrentStep(index=1, kind="discharge", current=-0.001, until=(_t("voltage", "<=", 3.2),))
REST_10_MIN = RestStep(index=2, until=(_t("time", ">=", 600.0),))
SAFETY = SafetyLimits(voltage_min=2.5, voltage_max=4.3, current_max=0.005)


@pytest.mark.parametrize(
    ("hold_v", "step_type", "curr"),
    [(3.6, "3", "5"), (3.0, "19", "5")],  # above the rest voltage: CV charge; below it: CV discharge
)
def test_a_hold_after_a_rest_takes_its_type_from_the_voltage_the_rest_leaves_the_cell_at(hold_v, step_type, curr):
    hold = HoldStep(index=3, voltage=hold_v, until=(_t("current", "<=", 1e-4),))
    found = steps_of(program(DISCHARGE_TO_3V2, REST_10_MIN, hold, safety=SAFETY))
    assert [(s.tag, s.get("Step_Type")) for s in found] == [("Step1", "2"), ("Step2", "4"), ("Step3", step_type),
                                                            ("Step4", "6")]
    # Curr is the hold's current limit: here the program's safety current (5 mA), not the channel's 10 mA
    assert main(found[2]) == {"Curr": curr, "Volt": str(round(hold_v * 10_000)), "Stop_Curr": "0.1"}


def test_a_hold_takes_its_own_current_limit_and_its_given_direction():
    hold = HoldStep(index=3, voltage=3.6, current_limit=0.002, direction="charge", until=(_t("time", ">=", 60.0),))
    found = steps_of(program(RestStep(index=1, until=(_t("time", ">=", 60.0),)), CurrentStep(
        index=2, kind="charge", current=0.001, until=(_t("time", ">=", 60.0),)), hold))
    assert found[2].get("Step_Type") == "3"
    assert main(found[2]) == {"Curr": "2", "Volt": "36000", "Time": "60000"}


def test_a_hold_that_continues_a_cc_step_inherits_its_current():
    charge = CurrentStep(index=1, kind="charge", current=0.0015, until=(_t("voltage", ">=", 4.2),))
    hold = HoldStep(index=2, voltage=4.2, until=(_t("current", "<=", 1e-4),))
    found = steps_of(program(charge, hold, safety=SAFETY))
    assert found[1].get("Step_Type") == "3"  # at the charge's end voltage: it goes on charging
    assert main(found[1])["Curr"] == "1.5"


def test_a_first_hold_uses_the_cells_start_voltage():
    hold = HoldStep(index=1, voltage=3.6, until=(_t("time", ">=", 60.0),))
    assert steps_of(program(hold, safety=SAFETY, start_voltage=3.9))[0].get("Step_Type") == "19"
    assert steps_of(program(hold, safety=SAFETY, start_voltage=3.1))[0].get("Step_Type") == "3"


def test_a_hold_whose_direction_cannot_be_known_is_refused_by_name_with_the_fix():
    where = SourceLocation(file="p.yaml", line=9, column=5, path="steps[1].hold")
    hold = HoldStep(index=2, voltage=3.6, until=(_t("time", ">=", 60.0),), source=where, label="cv")
    with pytest.raises(CapabilityError) as info:
        compile_program(program(RestStep(index=1, until=(_t("time", ">=", 60.0),)), hold, safety=SAFETY), RANGES)
    assert info.value.problems == [
        "step 2 (hold 'cv') at p.yaml:9:5: cannot tell which way the hold at 3.6 V drives current (the cell's "
        "voltage after step 1 is not known); a Neware CV step either only charges (CV_Chg, type 3) or only "
        "discharges (CV_DChg, type 19): add 'direction: charge' (the hold only sources current) or 'direction: "
        "discharge' (it only sinks it) to the hold"
    ]


def test_a_hold_reached_from_both_sides_is_refused():
    # each pass reaches the hold after the discharge to 3.0 V; the first pass after the charge to 4.2 V
    prog = program(
        CurrentStep(index=1, kind="charge", current=0.001, until=(_t("voltage", ">=", 4.2),)),
        HoldStep(index=2, voltage=3.6, until=(_t("time", ">=", 60.0),)),
        CurrentStep(index=3, kind="discharge", current=-0.001, until=(_t("voltage", "<=", 3.0),)),
        LoopStep(index=4, target=2, count=3),
        safety=SAFETY,
    )
    with pytest.raises(CapabilityError) as info:
        compile_program(prog, RANGES)
    (problem,) = info.value.problems
    assert problem.startswith("step 2 (hold): cannot tell which way the hold at 3.6 V drives current (the cell "
                              "arrives on both sides of it (")
    assert "after step 1 it is at 4.2 V" in problem and "after step 3 it is at 3 V" in problem
    fixed = prog.model_copy(update={"steps": (prog.steps[0], prog.steps[1].model_copy(update={"direction": "charge"}),
                                              *prog.steps[2:])})
    assert steps_of(fixed)[1].get("Step_Type") == "3"


def test_a_hold_with_no_current_limit_anywhere_is_refused():
    hold = HoldStep(index=1, voltage=3.6, direction="charge", until=(_t("time", ">=", 60.0),))
    with pytest.raises(CapabilityError, match=r"step 1 \(hold\): a Neware CV step needs a current limit \(Curr\)"):
        compile_program(program(hold), RANGES)


def test_until_0_v_is_written_as_one_count_and_noted():
    prog = program(
        CurrentStep(index=1, kind="discharge", current=-0.0005, until=(_t("voltage", "<=", 0.0),)),
        safety=SafetyLimits(voltage_min=-0.2, voltage_max=3.5),
    )
    (lithiation, _end) = steps_of(prog)
    assert main(lithiation) == {"Curr": "0.5", "Stop_Volt": "1"}
    assert notes(prog) == [
        "step 1: 'voltage <= 0 V' is written to a Neware step file as 0.1 mV: whether the BTS reads a zero voltage "
        "limit as a limit is unconfirmed (reference section 9), so it is written as the smallest positive count, "
        "1 = 0.1 mV"
    ]
    protected = prog.model_copy(update={"safety": SafetyLimits(voltage_min=0.0, voltage_max=3.5),
                                        "steps": (prog.steps[0].model_copy(
                                            update={"until": (_t("voltage", "<=", 0.5),)}),)})
    xml = compile_program(protected, RANGES).xml
    assert b'<Lower Value="1" />' in xml and notes(protected)[0].startswith("safety.voltage_min 0 V is written")


def test_conditional_jumps_and_ends_compile_to_exact_cnd_attributes():
    prog = program(
        RestStep(index=1, label="wait", until=(_t("time", ">=", 3600.0), _t("voltage", "<=", 3.6, then=Action.JUMP,
                                                                              target=3))),
        CurrentStep(index=2, kind="discharge", current=-0.001,
                    until=(_t("voltage", "<=", 3.0), _t("time", ">=", 7200.0, then=Action.END))),
        CurrentStep(index=3, kind="charge", current=0.001,
                    until=(_t("voltage", ">=", 4.2), _t("time", ">=", 36000.0, then=Action.JUMP, target=1))),
        RestStep(index=4, until=(_t("voltage", ">=", 0.0),)),
        safety=SafetyLimits(voltage_min=-0.5, voltage_max=4.3, current_max=0.005),
    )
    text = compile_program(prog, RANGES).xml.decode()
    assert (
        '      <Step1 Step_ID="1" Step_Type="4">\r\n'
        "        <Limit>\r\n"
        "          <Main>\r\n"
        '            <Time Value="3600000" />\r\n'
        "          </Main>\r\n"
        '          <Other CndCount="1">\r\n'
        '            <Cnd1 type="1" Function="0" CmpType="5" Jump_Line="3" Value="36000" TimeGoto="0" Aux="0" />\r\n'
        "          </Other>\r\n"
        "        </Limit>\r\n"
        "      </Step1>\r\n"
    ) in text
    found = steps_of(prog)
    assert main(found[1]) == {"Curr": "1", "Stop_Volt": "30000"}
    assert [c.attrib for c in found[1].find("Limit/Other")] == [
        {"type": "3", "Function": "0", "CmpType": "3", "Jump_Line": "5", "Value": "7200000", "TimeGoto": "0",
         "Aux": "0"}  # 'end' jumps to the End step (Step_ID 5): the test finishes
    ]
    assert found[1].find("Limit/Other").get("CndCount") == "1"
    assert [c.attrib["Jump_Line"] for c in found[2].find("Limit/Other")] == ["1"]
    # a rest that goes on at a voltage is a condition too (Limit/Main has no voltage end for a rest): next line,
    # and at 0 V one count (0.1 mV)
    assert found[3].find("Limit/Main") is None
    assert [c.attrib for c in found[3].find("Limit/Other")] == [
        {"type": "1", "Function": "0", "CmpType": "3", "Jump_Line": "65526", "Value": "1", "TimeGoto": "0", "Aux": "0"}
    ]


def test_multcap_is_the_cells_nominal_capacity_and_the_file_is_in_absolute_current_mode():
    prog = program(REST_10_MIN.model_copy(update={"index": 1}), nominal_capacity=0.0022575)
    head = SafeET.fromstring(compile_program(prog, RANGES).xml).find("config/Head_Info")
    assert (head.find("RateType").get("Value"), head.find("MultCap").get("Value")) == ("103", "8127")
    assert b"<Rate " not in compile_program(prog, RANGES).xml
    own = compile_program(prog, RANGES, CompileOptions(reference_capacity_ah=0.001)).xml
    assert b'<MultCap Value="3600" />' in own  # a caller's capacity wins
    bare = compile_program(prog.model_copy(update={"nominal_capacity": None}), RANGES).xml
    assert b'<MultCap Value="3600000" />' in bare  # no capacity anywhere: the 1 Ah default
