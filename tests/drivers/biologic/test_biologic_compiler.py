"""The technique compiler: technique choice, parameter values, ranges, bandwidth and capability errors."""

from __future__ import annotations

import pytest

from drivers.base import CapabilityError, ChannelRanges
from drivers.biologic.codes import ERange, IRange
from drivers.biologic.compiler import ChannelCapabilities, compile_program, pick_current_range
from protocols.program import (
    CaStep,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    LoopStep,
    LsvStep,
    PowerStep,
    RecordRule,
    RestStep,
    SafetyLimits,
    StepProgram,
    Termination,
)

CAPS = ChannelCapabilities()


def T(quantity, op, value, then="next", target=None):
    return Termination(quantity=quantity, op=op, value=value, then=then, target=target)


NO_SAFETY, NO_RECORD = SafetyLimits(), RecordRule()


def program(*steps, safety=NO_SAFETY, record=NO_RECORD):
    numbered = [s.model_copy(update={"index": n}) for n, s in enumerate(steps, start=1)]
    return StepProgram(protocol="t", cell="c", steps=tuple(numbered), safety=safety, record=record)


def values(step, caps=CAPS, **kw):
    compiled = compile_program(program(step, **kw), caps)
    (technique,) = compiled.techniques
    return technique.spec.name, technique.values


def test_rest_is_ocv_with_its_duration_and_recording():
    name, v = values(RestStep(index=1, until=(T("time", ">=", 3600),), record=RecordRule(every_s=30)))
    assert name == "OCV"
    assert v == {"Rest_time_T": 3600, "Record_every_dE": 0.0, "Record_every_dT": 30, "E_Range": ERange.AUTO}


def test_rest_ending_on_voltage_is_a_zero_current_cplimit():
    step = RestStep(index=1, until=(T("voltage", "<=", 2.9), T("time", ">=", 7200)))
    name, v = values(step)
    assert name == "CPLIMIT"
    assert v["Current_step"] == [0.0] and v["Duration_step"] == [7200]
    assert v["I_Range"] == IRange.I_10UA
    assert (v["Test1_Config"], v["Test1_Value"]) == ([1], [2.9])


def test_current_step_with_only_a_time_end_is_cp_with_explicit_range():
    name, v = values(CurrentStep(index=1, kind="discharge", current=-0.5e-3, until=(T("time", ">=", 60),)))
    assert name == "CP"
    assert v["Current_step"] == [-0.5e-3]
    assert v["Duration_step"] == [60]
    assert v["I_Range"] == IRange.I_1MA  # smallest decade covering 0.5 mA
    assert v["Bandwidth"] == 5


def test_capacity_end_of_a_current_step_becomes_its_exact_duration():
    # P1: plate 4 mAh/cm2 on 1.131 cm2 at 0.5 mA/cm2: 4.524 mAh at 0.5655 mA -> 8 h
    step = CurrentStep(index=1, kind="discharge", current=-0.5655e-3, until=(T("capacity", ">=", 4.524e-3),))
    name, v = values(step)
    assert name == "CP"
    assert v["Duration_step"][0] == pytest.approx(8 * 3600)
    assert v["I_Range"] == IRange.I_1MA


def test_voltage_end_makes_cplimit_with_the_limit_test():
    step = CurrentStep(index=1, kind="discharge", current=-1.5e-3, until=(T("voltage", "<=", 0.0),))
    name, v = values(step, safety=SafetyLimits(step_duration_max=86400))
    assert name == "CPLIMIT"
    assert v["Test1_Config"] == [1] and v["Test1_Value"] == [0.0]  # Ewe < 0 V: 0 V is a real limit
    assert v["Test2_Config"] == [0] and v["Test3_Config"] == [0]
    assert v["Exit_Cond"] == [1]
    assert v["Duration_step"] == [86400]
    assert v["I_Range"] == IRange.I_10MA


def test_end_action_maps_to_stop():
    step = CurrentStep(index=1, kind="charge", current=1e-3, until=(T("voltage", ">=", 4.2, then="end"),))
    assert values(step)[1]["Exit_Cond"] == [2]
    assert values(step)[1]["Test1_Config"] == [5]


def test_hold_with_current_end_is_calimit_with_an_and_pair():
    step = HoldStep(index=1, voltage=4.2, current_limit=5e-3, until=(T("current", "<=", 1e-4), T("time", ">=", 7200)))
    name, v = values(step)
    assert name == "CALIMIT"
    assert v["Voltage_step"] == [4.2] and v["vs_initial"] == [False]
    assert (v["Test1_Config"], v["Test1_Value"]) == ([97], [1e-4])  # I < 0.1 mA
    assert (v["Test2_Config"], v["Test2_Value"]) == ([103], [-1e-4])  # AND I > -0.1 mA
    assert v["Duration_step"] == [7200]
    assert v["I_Range"] == IRange.I_10MA  # from the hold's current limit
    assert v["E_Range"] == ERange.E_5V


def test_dc_polarisation_is_ca_relative_to_ocv():
    step = CaStep(index=1, voltage=0.05, vs_ocv=True, until=(T("time", ">=", 3600),), record=RecordRule(every_s=1))
    name, v = values(step)
    assert name == "CA"
    assert v["Voltage_step"] == [0.05] and v["vs_initial"] == [True]
    assert v["Record_every_dT"] == 1
    assert v["I_Range"] == IRange.AUTO and v["E_Range"] == ERange.AUTO


def test_potentiostatic_range_follows_the_safety_current():
    step = CaStep(index=1, voltage=0.05, vs_ocv=True, until=(T("time", ">=", 60),))
    assert values(step, safety=SafetyLimits(current_max=2e-3))[1]["I_Range"] == IRange.I_10MA


def test_p5_peis_at_ocv():
    step = EisStep(index=1, f_start=20e3, f_end=0.1, points_per_decade=10, amplitude=0.01)
    name, v = values(step)
    assert name == "PEIS"
    assert v["vs_initial"] is True and v["vs_final"] is True
    assert v["Initial_Voltage_step"] == 0.0 and v["Final_Voltage_step"] == 0.0
    assert (v["Initial_frequency"], v["Final_frequency"]) == (20e3, 0.1)
    assert v["Frequency_number"] == len(step.frequencies()) == 54
    assert v["sweep"] is False  # logarithmic
    assert v["Amplitude_Voltage"] == 0.01
    assert v["Bandwidth"] == 7


def test_galvano_eis_gets_a_fixed_range_covering_bias_and_amplitude():
    step = EisStep(index=1, mode="galvano", f_start=1e4, f_end=1, points_per_decade=5, amplitude=2e-3, bias=-5e-3,
                   bias_vs_ocv=False)  # fmt: skip
    name, v = values(step)
    assert name == "GEIS"
    assert v["Initial_Current_step"] == -5e-3 and v["Amplitude_Current"] == 2e-3
    assert v["I_Range"] == IRange.I_10MA


def test_p6_cv_vertices_and_rates():
    step = CvStep(index=1, scan_rate=1e-4, vertex_1=0.01, vertex_2=2.5, cycles=3)
    name, v = values(step)
    assert name == "CV"
    assert v["Voltage_step"] == [0.0, 0.01, 2.5, 0.0, 0.0]
    assert v["vs_initial"] == [True, False, False, True, True]  # start and end at OCV
    assert v["Scan_Rate"] == [1e-4] * 5
    assert v["Scan_number"] == 2 and v["N_Cycles"] == 2
    assert v["E_Range"] == ERange.E_5V  # a 2.5 V vertex would sit on the rail of the 2.5 V range
    caps = ChannelCapabilities(scan_rate_unit="mV/s")
    assert values(step, caps)[1]["Scan_Rate"] == [pytest.approx(0.1)] * 5


def test_lsv_is_one_segment_vscanlimit():
    step = LsvStep(index=1, scan_rate=1e-3, end=4.5, until=(T("current", ">=", 1e-3),))
    name, v = values(step)
    assert name == "VSCANLIMIT"
    assert v["Voltage_step"] == [0.0, 4.5] and v["vs_initial"] == [True, False]
    assert v["Scan_number"] == 1
    assert v["Test1_Config"] == [101, 101] and v["Test2_Config"] == [97, 97]
    assert v["Test2_Value"] == [-1e-3, -1e-3]


def test_loops_jump_to_the_first_technique_of_their_target():
    rest = RestStep(index=1, until=(T("time", ">=", 10),))
    cc = CurrentStep(index=1, kind="charge", current=1e-3, until=(T("time", ">=", 10),))
    compiled = compile_program(program(rest, cc, rest, LoopStep(index=1, target=2, count=5)), CAPS)
    loop = compiled.techniques[-1]
    assert loop.spec.name == "LOOP"
    assert loop.values == {"loop_N_times": 4, "protocol_number": 1}
    assert [t.step_index for t in compiled.techniques] == [1, 2, 3, 4]
    assert compiled.is_loop(3) and not compiled.is_loop(0)


def test_current_range_respects_the_channel():
    caps = ChannelCapabilities(min_i_range=IRange.I_10UA, max_i_range=IRange.I_100MA)
    assert pick_current_range(1e-9, caps) == IRange.I_10UA
    assert pick_current_range(0.1, caps) == IRange.I_100MA
    assert pick_current_range(0.2, caps) is None


def test_every_problem_is_reported_at_once_before_anything_is_loaded():
    caps = ChannelCapabilities(max_i_range=IRange.I_100MA, has_eis=False, ranges=ChannelRanges(-1, 5, 0.1))
    bad = program(
        RestStep(index=1, until=(T("dvdt", "<=", 1e-6),)),
        CurrentStep(index=1, kind="charge", current=0.5, until=(T("time", ">=", 10),)),
        EisStep(index=1, f_start=5e6, f_end=1, points_per_decade=5, amplitude=0.01),
        PowerStep(index=1, power=0.01, until=(T("time", ">=", 10),)),
        CurrentStep(index=1, kind="charge", current=1e-3, hold_voltage=4.2, until=(T("time", ">=", 10),)),
        CurrentStep(index=1, kind="charge", current=1e-3, until=(T("voltage", ">=", 4.2, "jump", 1),)),
        HoldStep(index=1, voltage=12.0, until=(T("time", ">=", 10),)),
    )
    with pytest.raises(CapabilityError) as info:
        compile_program(bad, caps)
    text = "\n".join(info.value.problems)
    for expected in [
        "step 1 (rest): '|dV/dt| <= 1e-06 V/s' cannot end a rest (OCV) step",
        "step 1 (rest): a rest on Biologic (OCV) needs a time end",
        "step 2 (charge): needs 0.5 A, above the channel's 0.1 A maximum",
        "step 2 (charge): needs a 0.5 A current range; the channel's largest is 0.1 A",
        "step 3 (eis): impedance needs a channel with an EIS (Z) board",
        "step 3 (eis): needs bandwidth 9; the channel supports at most 7",
        "step 4 (power): power steps have no Biologic technique",
        "step 5 (charge): a CCCV step has no Biologic technique",
        "step 6 (charge): 'voltage >= 4.2 V -> step 1' jumps to step 1",
        "step 7 (hold): 12 V is outside the channel's -1..5 V window",
        "step 7 (hold): needs 12 V, beyond the largest voltage range",
    ]:
        assert expected in text, expected


def test_conditional_ends_and_jumps_compile_to_exact_limit_tests_and_exits():
    # a rest that goes on after 1 h but stops the experiment if the cell falls below 3.6 V (its voltage test's
    # Exit_Cond is 2); a charge that jumps to the step whose technique comes next (Exit_Cond 1, next technique)
    prog = program(
        RestStep(index=1, until=(T("time", ">=", 3600), T("voltage", "<=", 3.6, then="end"))),
        CurrentStep(index=1, kind="charge", current=1e-3, until=(T("voltage", ">=", 4.2, "jump", 3),)),
        CurrentStep(index=1, kind="discharge", current=-1e-3, until=(T("voltage", "<=", 3.0),)),
    )
    rest, charge, discharge = compile_program(prog, CAPS).techniques
    assert rest.spec.name == "CPLIMIT" and rest.values["Current_step"] == [0.0]
    assert rest.values["Duration_step"] == [3600]
    assert [rest.values[k] for k in ("Test1_Config", "Test1_Value", "Test2_Config", "Exit_Cond")] == [
        [1], [3.6], [0], [2]]  # Ewe < 3.6 V -> stop the experiment
    assert [charge.values[k] for k in ("Test1_Config", "Test1_Value", "Exit_Cond")] == [[5], [4.2], [1]]
    assert discharge.values["Exit_Cond"] == [1]


def test_jumps_that_skip_techniques_are_refused_naming_the_step_and_the_exits():
    prog = program(
        CurrentStep(index=1, kind="charge", current=1e-3, until=(T("voltage", ">=", 4.2),)),
        CurrentStep(index=1, kind="discharge", current=-1e-3,
                    until=(T("voltage", "<=", 3.0), T("voltage", "<=", 2.5, "jump", 5))),
        LoopStep(index=3, target=1, count=10),
        RestStep(index=4, until=(T("time", ">=", 60),)),
        RestStep(index=5, until=(T("time", ">=", 60),)),
    )
    with pytest.raises(CapabilityError) as info:
        compile_program(prog, CAPS)
    assert info.value.problems == [
        "step 2 (discharge): 'voltage <= 2.5 V -> step 5' jumps to step 5; a Biologic limit test can only go on to "
        "the next technique (Exit_Cond 1: step 3) or stop the experiment (Exit_Cond 2): EClib has no goto "
        "(reference 3.4)",  # step 3 is the LOOP technique: Exit_Cond 1 would loop, not leave the loop
    ]
