"""Any step program a Neware channel can run compiles to a file the simulator's own parser reads back unchanged."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import ChannelRanges
from drivers.neware.stepfile import CompileOptions, compile_program
from protocols.program import (
    Comparison,
    CurrentStep,
    HoldStep,
    LoopStep,
    LsvStep,
    Quantity,
    RecordRule,
    RestStep,
    SafetyLimits,
    StepProgram,
    Termination,
)
from simulators.neware.stepfile import NativeRecord, parse_step_file, to_program_step

RANGES = ChannelRanges(voltage_min=-5.0, voltage_max=5.0, current_max=0.01)

volts = st.floats(min_value=-4.9, max_value=4.9, allow_nan=False).map(lambda v: round(v, 4))
amps = st.floats(min_value=1e-6, max_value=0.01, allow_nan=False).map(lambda a: round(a, 9))
seconds = st.floats(min_value=0.001, max_value=1e7, allow_nan=False).map(lambda s: round(s, 3))
amp_hours = st.floats(min_value=1e-7, max_value=10, allow_nan=False)


def _t(quantity: Quantity, op: Comparison, value: float) -> Termination:
    return Termination(quantity=quantity, op=op, value=value)


@st.composite
def leaf_steps(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["rest", "cc", "cccv", "hold", "lsv"]))
    record = draw(
        st.one_of(
            st.just(RecordRule()),
            st.builds(RecordRule, every_s=seconds, voltage_change=st.none() | st.just(0.005)),
        )
    )
    extras = []
    if draw(st.booleans()):
        extras.append(_t(Quantity.TIME, Comparison.GE, draw(seconds)))
    if draw(st.booleans()):
        extras.append(_t(Quantity.CAPACITY, Comparison.GE, draw(amp_hours)))
    if draw(st.booleans()):
        extras.append(_t(Quantity.ENERGY, Comparison.GE, draw(amp_hours)))
    if kind == "rest":
        return {"cls": RestStep, "until": (_t(Quantity.TIME, Comparison.GE, draw(seconds)),), "record": record}
    if kind == "lsv":
        rate = draw(st.floats(min_value=1e-6, max_value=1.0).map(lambda r: round(r, 9)))
        until = (_t(Quantity.TIME, Comparison.GE, draw(seconds)),)
        return {
            "cls": LsvStep,
            "start": draw(volts),
            "end": draw(volts),
            "scan_rate": rate,
            "until": until,
            "record": record,
        }
    current = draw(amps) * draw(st.sampled_from([1, -1]))
    step_kind = "charge" if current > 0 else "discharge"
    if kind == "cc":
        op = Comparison.GE if current > 0 else Comparison.LE
        until = (_t(Quantity.VOLTAGE, op, draw(volts)), *extras)
        return {"cls": CurrentStep, "kind": step_kind, "current": current, "until": until, "record": record}
    if kind == "cccv":
        until = (_t(Quantity.CURRENT, Comparison.LE, draw(amps)), *extras)
        return {
            "cls": CurrentStep,
            "kind": step_kind,
            "current": current,
            "hold_voltage": draw(volts),
            "until": until,
            "record": record,
        }
    until = (_t(Quantity.CURRENT, Comparison.LE, draw(amps)), *extras)
    direction = draw(st.sampled_from(["charge", "discharge"]))  # the cell's voltage before it is not known here
    return {"cls": HoldStep, "voltage": draw(volts), "current_limit": draw(amps), "direction": direction,
            "until": until, "record": record}


blocks = st.recursive(
    leaf_steps().map(lambda leaf: [leaf]),
    lambda inner: st.tuples(st.lists(inner, min_size=1, max_size=3), st.integers(1, 1000)).map(
        lambda pair: [
            *[item for block in pair[0] for item in block],
            {"loop": True, "body": sum(len(b) for b in pair[0]), "count": pair[1]},
        ]
    ),
    max_leaves=12,
)


def build_program(items: list[dict], safety: SafetyLimits, record: RecordRule) -> StepProgram:
    steps = []
    for index, item in enumerate(items, start=1):
        if item.get("loop"):
            # the body is the `body` items just before; its first step is the loop's target
            steps.append(LoopStep(index=index, target=index - item["body"], count=item["count"]))
            continue
        data = {k: v for k, v in item.items() if k != "cls"}
        steps.append(item["cls"](index=index, **data))
    return StepProgram(protocol="roundtrip", cell="any", safety=safety, record=record, steps=tuple(steps))


safeties = st.builds(
    SafetyLimits,
    voltage_min=st.none() | st.just(-1.0),
    voltage_max=st.none() | st.just(4.5),
    current_max=st.none() | st.just(0.005),
    capacity_max=st.none() | amp_hours,
)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=150, deadline=None)
@given(blocks, safeties, st.builds(RecordRule, every_s=seconds))
def test_compiled_programs_read_back_identically(items: list[dict], safety: SafetyLimits, record: RecordRule) -> None:
    program = build_program(items, safety, record)
    compiled = compile_program(program, RANGES, CompileOptions(reference_capacity_ah=0.002))
    plan = parse_step_file(compiled.xml)

    assert len(plan.steps) == len(program.steps) + 1 == compiled.end_step_id
    assert plan.steps[-1].step_type == 6
    assert _close(plan.mult_cap_ah, 0.002)
    assert _close(plan.record.every_s, record.every_s)
    assert _close(plan.protection.voltage_max, safety.voltage_max)
    assert _close(plan.protection.voltage_min, safety.voltage_min)
    assert _close(plan.protection.current_upper, safety.current_max)
    assert _close(plan.protection.current_lower, None if safety.current_max is None else -safety.current_max)
    assert _close(plan.protection.capacity_max, safety.capacity_max)
    for original, native in zip(program.steps, plan.steps, strict=False):
        assert compiled.program_index(native.step_id) == original.index
        if isinstance(original, LoopStep):
            assert (native.step_type, native.loop_start, native.loop_count) == (5, original.target, original.count)
            continue
        rule = native.record.to_rule() if native.record is not None else program.record
        expected_rule = original.record if original.record != RecordRule() else program.record
        assert _close(rule.every_s, expected_rule.every_s)
        assert _close(rule.voltage_change, expected_rule.voltage_change)
        back = to_program_step(native, rule)
        assert back is not None
        assert back.kind == original.kind
        assert {t.quantity: (t.op, t.value) for t in back.until}.keys() == {t.quantity for t in original.until}
        for term in original.until:
            op, value = {t.quantity: (t.op, t.value) for t in back.until}[term.quantity]
            assert op is term.op
            # a voltage limit at 0 V is written as one count (0.1 mV): a zero limit may mean "none" on a BTS
            expected = 1e-4 if term.quantity is Quantity.VOLTAGE and term.value == 0 else term.value
            assert _close(value, expected), (term, value)
        if isinstance(original, CurrentStep):
            assert isinstance(back, CurrentStep)
            assert _close(back.current, original.current)
            assert _close(back.hold_voltage, original.hold_voltage)
        if isinstance(original, LsvStep):
            assert isinstance(back, LsvStep)
            assert (_close(back.start, original.start), _close(back.end, original.end)) == (True, True)
            assert _close(back.scan_rate, original.scan_rate)
        if isinstance(original, HoldStep):
            assert isinstance(back, HoldStep)
            assert native.step_type == (3 if original.direction == "charge" else 19)
            assert _close(back.voltage, original.voltage)
            assert _close(back.current_limit, original.current_limit)


def test_loop_counts_are_total_passes_and_targets_native_ids() -> None:
    program = build_program(
        [
            {"cls": RestStep, "until": (_t(Quantity.TIME, Comparison.GE, 3600.0),)},
            {
                "cls": CurrentStep,
                "kind": "charge",
                "current": 0.0002,
                "until": (_t(Quantity.VOLTAGE, Comparison.GE, 4.3),),
            },
            {
                "cls": CurrentStep,
                "kind": "discharge",
                "current": -0.0005,
                "until": (_t(Quantity.VOLTAGE, Comparison.LE, 3.0),),
            },
            {"loop": True, "body": 2, "count": 1000},
        ],
        SafetyLimits(voltage_min=2.5, voltage_max=4.4),
        RecordRule(every_s=30.0),
    )
    plan = parse_step_file(compiled_xml := compile_program(program, RANGES).xml)
    assert b'<Step4 Step_ID="4" Step_Type="5">' in compiled_xml
    assert (plan.step(4).loop_start, plan.step(4).loop_count) == (2, 1000)
    assert (plan.step(2).step_type, plan.step(2).current, plan.step(2).stop_voltage) == (1, 0.0002, 4.3)
    assert (plan.step(3).step_type, plan.step(3).current, plan.step(3).stop_voltage) == (2, 0.0005, 3.0)
    assert b'<Curr Value="0.5" />' in compiled_xml  # 0.5 mA, written positive for a discharge
    assert b'<Stop_Volt Value="30000" />' in compiled_xml
    assert b'<Time Value="30000" />' in compiled_xml  # 30 s record interval in ms
    assert b'<Step_Info Num="5">' in compiled_xml
    assert plan.record == NativeRecord(every_s=30.0)
