"""Whatever a third-party tool writes, the simulator's step-file parser answers with a plan or a StepFileError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.neware.stepfile import NativePlan, StepFileError, parse_step_file

VALID = (
    '<?xml version="1.0" encoding="GB2312"?>\r\n<root><config type="Step File" version="17">'
    '<Head_Info><Start_Step Value="1" /><RateType Value="105" /><MultCap Value="7200" /></Head_Info>'
    '<Whole_Prt><Protect><Main><Volt><Upper Value="45000" /><Lower Value="25000" /></Volt></Main></Protect>'
    '<Record><Main><Time Value="10000" /></Main></Record></Whole_Prt>'
    '<Step_Info Num="4">'
    '<Step1 Step_ID="1" Step_Type="1"><Limit><Main><Rate Value="0.5" /><Stop_Volt Value="42000" /></Main></Limit>'
    "</Step1>"
    '<Step2 Step_ID="2" Step_Type="2"><Limit><Main><Curr Value="1" /><Stop_Volt Value="30000" /></Main></Limit></Step2>'
    '<Step3 Step_ID="3" Step_Type="5"><Limit><Other><Start_Step Value="1" /><Cycle_Count Value="3" /></Other></Limit>'
    '</Step3><Step4 Step_ID="4" Step_Type="6" /></Step_Info></config></root>'
).encode("gb18030")


def test_the_reference_file_parses() -> None:
    plan = parse_step_file(VALID)
    assert [s.step_type for s in plan.steps] == [1, 2, 5, 6]
    assert plan.steps[0].current == 0.001  # 0.5 C of MultCap 7200 mA*s = 2 mAh
    assert (plan.steps[2].loop_start, plan.steps[2].loop_count) == (1, 3)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(VALID) - 1), st.integers(1, 40), st.binary(max_size=12))
def test_any_corruption_gives_a_plan_or_a_clear_error(position: int, length: int, insert: bytes) -> None:
    mutated = VALID[:position] + insert + VALID[position + length :]
    try:
        plan = parse_step_file(mutated)
    except StepFileError as exc:
        assert str(exc)  # one readable line, never a bare traceback
        assert "\n" not in str(exc).strip()
    else:
        assert isinstance(plan, NativePlan) and plan.steps[-1].step_type == 6


def test_non_finite_numbers_are_refused() -> None:
    for bad in (b'Value="nan"', b'Value="inf"', b'Value="-1e999"'):
        mutated = VALID.replace(b'<Cycle_Count Value="3" />', b"<Cycle_Count " + bad + b" />")
        try:
            parse_step_file(mutated)
        except StepFileError as exc:
            assert "Cycle_Count" in str(exc) and "finite" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")
