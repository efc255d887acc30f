"""What the step-file compiler refuses, and the exact layout of what it writes."""

from __future__ import annotations

import defusedxml.ElementTree as SafeET
import pytest

from drivers.base import CapabilityError, ChannelRanges
from drivers.neware.stepfile import CompileOptions, check_program, compile_program, parse_step_map
from protocols.program import (
    Action,
    CaStep,
    Comparison,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    LsvStep,
    PowerStep,
    Quantity,
    RestStep,
    SafetyLimits,
    SourceLocation,
    StepProgram,
    Termination,
)
from simulators.neware.stepfile import parse_step_file, to_program_step

RANGES = ChannelRanges(voltage_min=0.0, voltage_max=5.0, current_max=0.01, current_min_resolution=1e-6)


def _t(quantity: str, op: str, value: float, **kw) -> Termination:
    return Termination(quantity=Quantity(quantity), op=Comparison(op), value=value, **kw)


def program(*steps, **kw) -> StepProgram:
    return StepProgram(protocol="p", cell="c", steps=steps, **kw)


def problems(prog: StepProgram) -> list[str]:
    with pytest.raises(CapabilityError) as info:
        check_program(prog, RANGES)
    return info.value.problems


REST = RestStep(index=1, until=(_t("time", ">=", 60.0),))


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        (EisStep(index=2, f_start=1e5, f_end=0.1, points_per_decade=10, amplitude=0.01), "cannot measure impedance"),
        (CvStep(index=2, scan_rate=1e-4, vertex_1=0.01, vertex_2=2.5), "cyclic voltammetry is not supported"),
        (PowerStep(index=2, power=0.01, until=(_t("time", ">=", 1.0),)), "power set-point is not documented"),
        (CaStep(index=2, voltage=0.01, vs_ocv=True, until=(_t("time", ">=", 1.0),)), "relative to the OCV"),
        (LsvStep(index=2, scan_rate=1e-3, end=4.0, until=(_t("time", ">=", 1.0),)), "explicit start voltage"),
        (RestStep(index=2, until=(_t("capacity", ">=", 1e-3),)), "cannot end on capacity"),
        (RestStep(index=2, until=(_t("time", ">=", 60.0), _t("dvdt", "<=", 1e-6))), "cannot end on dvdt"),
        (CurrentStep(index=2, kind="charge", current=0.001, until=(_t("voltage", "<=", 3.0),)), "voltage >= only"),
        (CurrentStep(index=2, kind="charge", current=0.02, until=(_t("voltage", ">=", 4.2),)), "exceeds the channel"),
        (CurrentStep(index=2, kind="charge", current=1e-7, until=(_t("voltage", ">=", 4.2),)), "below the channel"),
        (CurrentStep(index=2, kind="charge", current=0.001, until=(_t("voltage", ">=", 6.0),)), "outside the channel"),
        (CurrentStep(index=2, kind="charge", current=0.001), "no termination"),
        (HoldStep(index=2, voltage=4.2, direction="charge", current_limit=1e-3, until=(_t("current", ">=", 1e-4),)),
         "current <= only"),
        (
            CurrentStep(index=2, kind="discharge", current=-0.001,
                        until=(_t("capacity", ">=", 1e-3, then=Action.JUMP, target=1),)),
            "a documented type only for voltage, current, time",
        ),
        (
            HoldStep(index=2, voltage=3.0, direction="discharge", current_limit=1e-3,
                     until=(_t("current", "<=", 1e-4, then=Action.END),)),
            "is on the current of a discharge step",
        ),
        (HoldStep(index=2, voltage=3.6, until=(_t("time", ">=", 60.0),)), "add 'direction: charge'"),
    ],
)
def test_steps_a_neware_channel_cannot_run_are_refused_by_name(step, reason: str) -> None:
    found = problems(program(REST, step))
    assert len(found) == 1
    assert found[0].startswith(f"step 2 ({step.kind})")
    assert reason in found[0]


def test_every_problem_is_listed_with_the_source_location() -> None:
    where = SourceLocation(file="p.yaml", line=7, column=5, path="steps[1]")
    eis = EisStep(index=2, f_start=1e5, f_end=0.1, points_per_decade=10, amplitude=0.01, source=where, label="spectrum")
    safety = SafetyLimits(voltage_max=6.0, current_max=0.5, run_duration_max=3600.0, temperature_max=60.0)
    found = problems(program(REST, eis, safety=safety))
    assert (
        found[0]
        == "step 2 (eis 'spectrum') at p.yaml:7:5: a Neware channel cannot measure impedance; run EIS on a potentiostat"
    )
    assert [p.split(" ")[0] for p in found[1:]] == [
        "safety.temperature_max:",
        "safety.run_duration_max:",
        "safety.voltage_max",
        "safety.current_max",
    ]


def test_too_many_steps_are_refused() -> None:
    steps = tuple(RestStep(index=i, until=(_t("time", ">=", 1.0),)) for i in range(1, 256))
    assert problems(program(*steps)) == [
        "the program has 255 steps; a BTS step file holds at most 254 plus End; use loops instead of unrolled steps"
    ]
    check_program(program(*steps[:254]), RANGES)


def test_layout_of_a_cccv_and_hold_file() -> None:
    prog = program(
        CurrentStep(index=1, kind="charge", current=0.0005, hold_voltage=4.2, until=(_t("current", "<=", 5e-5),)),
        CurrentStep(index=2, kind="discharge", current=-0.001, until=(_t("voltage", "<=", 3.0),)),
        HoldStep(index=3, voltage=3.0, until=(_t("current", "<=", 1e-5), _t("time", ">=", 3600.0))),
        LsvStep(index=4, scan_rate=1e-4, start=3.0, end=3.5, until=(_t("time", ">=", 5000.0),)),
        safety=SafetyLimits(voltage_min=2.5, voltage_max=4.4, capacity_max=0.003),
    )
    compiled = compile_program(prog, RANGES, CompileOptions(reference_capacity_ah=0.0025, protect_delay_s=5))
    text = compiled.xml.decode()
    assert text.startswith(
        '<?xml version="1.0" encoding="UTF-8"?>\r\n<root>\r\n  <config type="Step File" version="17"'
    )
    assert 'client_version="BTS Client' in text
    root = SafeET.fromstring(compiled.xml)
    config = root.find("config")
    assert [child.tag for child in config] == ["Head_Info", "Whole_Prt", "Step_Info", "SMBUS"]
    assert config.find("Head_Info/MultCap").get("Value") == "9000"  # 2.5 mAh in mA*s
    assert config.find("Whole_Prt/Protect/Main/Cap/Upper").get("Value") == "10800"
    assert config.find("Whole_Prt/Protect/Main/Delay_Time").get("Value") == "5000"
    steps = list(config.find("Step_Info"))
    assert [(s.tag, s.get("Step_Type")) for s in steps] == [
        ("Step1", "7"),
        ("Step2", "2"),
        ("Step3", "19"),  # a hold after a discharge is a CV discharge
        ("Step4", "25"),
        ("Step5", "6"),
    ]
    assert {e.tag: e.get("Value") for e in steps[0].find("Limit/Main")} == {
        "Curr": "0.5",
        "Volt": "42000",
        "Stop_Curr": "0.05",
    }
    assert {e.tag: e.get("Value") for e in steps[2].find("Limit/Main")} == {
        "Curr": "1",  # inherited from the CC step before it
        "Volt": "30000",
        "Stop_Curr": "0.01",
        "Time": "3600000",
    }
    assert steps[3].find("Slope/Slope1").attrib == {"StartValue": "30000", "EndValue": "35000", "Value": "0.1"}
    plan = parse_step_file(compiled.xml)
    ramp = to_program_step(plan.step(4), prog.record)
    assert isinstance(ramp, LsvStep) and (ramp.start, ramp.end, ramp.scan_rate) == (3.0, 3.5, 1e-4)
    assert parse_step_map(compiled.step_map_text()) == {1: 1, 2: 2, 3: 3, 4: 4}


def test_identical_programs_give_identical_bytes() -> None:
    prog = program(REST)
    assert compile_program(prog, RANGES).xml == compile_program(prog, RANGES).xml
