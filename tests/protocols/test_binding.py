"""Binding resolves every relative quantity to exact SI numbers, with the sign convention (+ charges)."""

import pytest

from protocols.program import Action, Comparison, CurrentStep, LoopStep, Quantity, StepProgram, walk

from .conftest import MASS_CELL, program

P1 = """
protocol: li-deposition
parameters:
  current_density: 0.5 mA/cm^2
  plate_capacity: 4 mAh/cm^2
requires: [area]
safety: {voltage: [-0.2 V, 3.5 V], current: 5 mA}
steps:
  - rest: 1 h
  - discharge: {current: "${current_density}", until: {voltage: 0 V}}
  - discharge: {current: "${current_density}", until: {capacity: "${plate_capacity}"}}
"""


def test_plating_4_mah_per_cm2_at_half_a_milliamp_per_cm2_on_a_12mm_disk():
    prog = program(P1)
    plate = prog.step(3)
    assert isinstance(plate, CurrentStep)
    assert plate.current == pytest.approx(-0.56549e-3, rel=1e-4)  # discharge: negative
    capacity = plate.limit(Quantity.CAPACITY)
    assert capacity.value == pytest.approx(4.5239e-3, rel=1e-4)
    assert capacity.value / abs(plate.current) * 3600 == pytest.approx(8 * 3600, rel=1e-12)


def test_zero_volts_is_a_real_limit():
    lithiate = program(P1).step(2)
    limit = lithiate.limit(Quantity.VOLTAGE)
    assert limit is not None and limit.value == 0.0 and limit.op is Comparison.LE


def test_set_overrides_a_parameter_and_is_recorded():
    prog = program(P1, plate_capacity="0.5 mAh/cm^2", current_density="1 mA/cm^2")
    plate = prog.step(3)
    assert plate.limit(Quantity.CAPACITY).value == pytest.approx(0.5e-3 * 1.130973, rel=1e-5)
    assert plate.current == pytest.approx(-1.130973e-3, rel=1e-5)
    assert prog.parameters["plate_capacity"] == "0.5 mAh/cm^2"


def test_c_rate_of_a_mass_defined_cell():
    prog = program("""
        protocol: c
        steps:
          - Charge at 0.1C until 4.3 V
          - Discharge at C/10 until 3.0 V
        """, MASS_CELL)
    assert prog.step(1).current == pytest.approx(1.75e-4, rel=1e-12)
    assert prog.step(2).current == pytest.approx(-1.75e-4, rel=1e-12)
    assert prog.step(1).limit(Quantity.VOLTAGE).op is Comparison.GE


def test_shorthand_and_mapping_forms_give_the_same_step():
    a = program("""
        protocol: a
        steps: ["Discharge at 0.5 mA/cm^2 for 4 mAh/cm^2"]
        """)
    b = program("""
        protocol: a
        steps: [{discharge: {current: 0.5 mA/cm^2, until: {capacity: 4 mAh/cm^2}}}]
        """)
    assert a.step(1).model_dump(exclude={"source"}) == b.step(1).model_dump(exclude={"source"})


def test_cccv_is_one_step_with_the_hold_at_the_cc_limit():
    prog = program("""
        protocol: cccv
        steps:
          - charge: {current: 0.5C, until: {voltage: 4.2 V, time: 3 h}, then_hold: {until: {current: C/20}}}
        """, MASS_CELL)
    step = prog.step(1)
    assert step.hold_voltage == 4.2
    assert step.limit(Quantity.VOLTAGE) is None  # the voltage is the CC->CV transition, not an end
    assert step.limit(Quantity.CURRENT).value == pytest.approx(1.75e-3 / 20)
    assert step.limit(Quantity.TIME).value == 3 * 3600


def test_nested_repeats_become_jump_backs_with_total_pass_counts_and_tags():
    prog = program("""
        protocol: nested
        steps:
          - rest: 1 h
          - repeat: 3
            tag: outer
            steps:
              - repeat: 2
                tag: inner
                steps:
                  - Discharge at 1 mA for 1 h
                  - Charge at 1 mA for 1 h
              - rest: 10 min
        """)
    kinds = [s.kind for s in prog.steps]
    assert kinds == ["rest", "discharge", "charge", "loop", "rest", "loop"]
    inner, outer = prog.step(4), prog.step(6)
    assert isinstance(inner, LoopStep) and (inner.target, inner.count, inner.tag) == (2, 2, "inner")
    assert isinstance(outer, LoopStep) and (outer.target, outer.count, outer.tag) == (2, 3, "outer")
    assert prog.step(5).tag == "outer" and prog.step(2).tag == "inner"
    executed = list(walk(prog))
    assert [e.step.index for e in executed] == [1] + [2, 3, 2, 3, 5] * 3
    # cycle rule: the rest before the loops passes no charge, so it belongs to the first pass (cycle 1); every
    # inner loop end starts a new cycle, so the rest after the inner passes is a cycle of its own; no empty cycles
    assert [e.cycle for e in executed] == [1, 1, 1, 2, 2, 3, 4, 4, 5, 5, 6, 7, 7, 8, 8, 9]


def test_jump_and_end_actions_resolve_to_step_indices():
    prog = program("""
        protocol: jumps
        steps:
          - rest: {until: {time: 1 h}, id: start}
          - discharge:
              current: 1 mA
              until: [{voltage: 0 V, then: end}, {time: 2 h, then: start}]
        """)
    ends = prog.step(2).until
    assert ends[0].then is Action.END
    assert ends[1].then is Action.JUMP and ends[1].target == 1


def test_safety_combines_protocol_and_cell_limits_taking_the_tighter():
    prog = program(P1)
    assert prog.safety.voltage_min == -0.2 and prog.safety.voltage_max == 3.5  # cell allows -0.5..3.5
    assert prog.safety.current_max == 5e-3


def test_program_json_round_trip_is_lossless():
    prog = program(P1)
    again = StepProgram.from_json(prog.to_json())
    assert again == prog
    assert again.format_version == 1
    assert again.step(2).source.line == 10


def test_source_locations_point_at_the_yaml():
    prog = program(P1)
    assert [(s.source.line, s.source.path) for s in prog.steps] == [
        (9, "steps[0]"), (10, "steps[1]"), (11, "steps[2]")]


def test_eis_cv_and_ca_steps_resolve():
    prog = program("""
        protocol: echem
        steps:
          - eis: {from: 20 kHz, to: 100 mHz, amplitude: 10 mV, points_per_decade: 10}
          - cv: {scan_rate: 0.1 mV/s, vertices: [0.01 V, 2.5 V], cycles: 2}
          - ca: {voltage: 50 mV, vs: ocv, until: {time: 1 h}}
          - lsv: {scan_rate: 1 mV/s, to: 3 V}
        """)
    eis, cv, ca, lsv = prog.steps
    freqs = eis.frequencies()
    assert freqs[0] == pytest.approx(2e4) and freqs[-1] == pytest.approx(0.1)
    assert len(freqs) == 54  # 5.3 decades x 10 + 1
    assert (eis.amplitude, eis.bias, eis.bias_vs_ocv) == (0.01, 0.0, True)
    assert (cv.scan_rate, cv.vertex_1, cv.vertex_2, cv.cycles, cv.start) == (pytest.approx(1e-4), 0.01, 2.5, 2, None)
    assert ca.vs_ocv and ca.voltage == pytest.approx(0.05)
    assert lsv.end == 3.0 and lsv.start is None
