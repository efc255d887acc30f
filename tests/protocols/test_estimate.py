import itertools
from unittest import mock

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocols.estimate import WALK_BUDGET, estimate_program
from protocols.program import walk

from .conftest import MASS_CELL, cell, program


def test_fixed_capacity_and_time_steps_are_exact():
    prog = program("""
        protocol: x
        record: {every: 10 s}
        steps:
          - rest: 1 h
          - Discharge at 0.5 mA/cm^2 for 4 mAh/cm^2
        """)
    est = estimate_program(prog, cell())
    assert est.steps[1].first_s == 3600 and est.steps[2].first_s == pytest.approx(8 * 3600)
    assert est.exact and est.complete
    assert est.total_s == pytest.approx(9 * 3600)
    assert est.records == (2 + 360) + (2 + 2880)


def test_voltage_limited_steps_are_estimated_from_capacity_and_c_rate_and_say_so():
    prog = program("""
        protocol: x
        steps:
          - repeat: 3
            steps:
              - Charge at 0.2C until 4.3 V
              - Discharge at 0.5C until 3.0 V
        """, MASS_CELL)
    est = estimate_program(prog, cell(MASS_CELL))
    assert est.steps[1].first_s == pytest.approx(5 * 3600)
    assert est.steps[2].first_s == pytest.approx(2 * 3600)
    assert est.total_s == pytest.approx(3 * 7 * 3600)
    assert not est.exact and est.steps[1].passes == 3


def test_a_time_limit_caps_a_voltage_estimate():
    prog = program("""
        protocol: x
        steps: ["Charge at 0.1C for 2 hours or until 4.3 V"]
        """, MASS_CELL)
    assert estimate_program(prog, cell(MASS_CELL)).total_s == pytest.approx(7200)


def test_plating_then_stripping_returns_the_plated_charge():
    prog = program("""
        protocol: x
        steps:
          - Discharge at 1 mA/cm^2 until 0 V
          - Discharge at 1 mA/cm^2 for 2 mAh/cm^2
          - Charge at 1 mA/cm^2 until 1 V
        """)
    est = estimate_program(prog, cell())  # host capacity 0.5 mAh/cm^2, starts at 0 without an ocv
    assert est.steps[1].first_s == 0.0
    assert est.steps[2].first_s == pytest.approx(2 * 3600)
    assert est.steps[3].first_s == pytest.approx(2.5 * 3600)  # plated 2 + host 0.5 mAh/cm^2


def test_sweeps_and_spectra():
    prog = program("""
        protocol: x
        steps:
          - cv: {scan_rate: 0.1 mV/s, start: 2.5 V, vertices: [0.01 V, 2.5 V], end: 2.5 V, cycles: 2}
          - eis: {from: 10 Hz, to: 1 Hz, amplitude: 10 mV, points_per_decade: 1}
        """)
    est = estimate_program(prog, cell())
    assert est.steps[1].first_s == pytest.approx(4 * 2.49 / 1e-4)
    assert est.steps[2].first_s == pytest.approx(max(0.5, 1.1 / 10) + 1.1 / 1)


# -- loops in closed form --------------------------------------------------------------------------------------------

_BODY_STEPS = ("Charge at 0.1C until 4.3 V", "Discharge at 0.5C until 3.0 V", "Rest for 10 min",
               "Discharge at 0.1C for 0.1 mAh", "Charge at 0.2C for 30 minutes",
               "Charge at 0.1C for 2 hours or until 4.3 V", "Discharge at 0.3 mA until 3.0 V or 1 hour",
               "Charge at 0.1 mA for 0.05 mAh or until 4.2 V")


def _steps(depth: int):
    leaf = st.sampled_from(_BODY_STEPS)
    if depth == 0:
        return st.lists(leaf, min_size=1, max_size=3)
    repeat = st.fixed_dictionaries({"repeat": st.sampled_from((1, 2, 3, 7, 31)), "steps": _steps(depth - 1)})
    return st.lists(st.one_of(leaf, leaf, repeat), min_size=1, max_size=3)


def _walked(prog, a_cell):
    """The estimate by walking every pass: the estimator's fallback for loops that do not nest, forced."""
    with mock.patch("protocols.estimate._structure", lambda _program: None):
        return estimate_program(prog, a_cell)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(_steps(3))
def test_loops_in_closed_form_agree_with_walking_every_pass(steps):
    """The closed form (settled passes multiplied, drifting passes probed ahead) must give what walking every
    pass gives; the walk is the estimator's own fallback for loops that do not nest, forced here."""
    import yaml

    mass_cell = cell(MASS_CELL)
    prog = program(yaml.safe_dump({"protocol": "x", "steps": steps}), MASS_CELL)
    assume(sum(1 for _ in itertools.islice(walk(prog), WALK_BUDGET)) < WALK_BUDGET)
    closed = estimate_program(prog, mass_cell)
    walked = _walked(prog, mass_cell)
    assert (closed.records, closed.executions, closed.exact, closed.complete) == \
        (walked.records, walked.executions, walked.exact, walked.complete)
    assert closed.total_s == pytest.approx(walked.total_s, rel=1e-9)
    for index, mine in closed.steps.items():
        theirs = walked.steps[index]
        assert (mine.passes, mine.records, mine.exact, mine.known) == \
            (theirs.passes, theirs.records, theirs.exact, theirs.known)
        assert mine.end_s == pytest.approx(theirs.end_s, rel=1e-9, abs=1e-6)
        assert mine.total_s == pytest.approx(theirs.total_s, rel=1e-9, abs=1e-6)
        assert (mine.first_s is None) == (theirs.first_s is None)


def test_a_billion_passes_estimate_at_once_and_a_drifting_body_is_extrapolated_exactly():
    prog = program("""
        protocol: x
        steps:
          - repeat: 1000000000
            steps: ["Discharge at 0.1 mA for 0.02 mAh", "Charge at 0.1 mA for 0.01 mAh"]
        """, MASS_CELL)
    est = estimate_program(prog, cell(MASS_CELL))  # the balance drifts by -0.01 mAh a pass, for ever
    assert est.exact and est.steps[1].passes == 10**9 and est.executions == 2 * 10**9
    assert est.total_s == pytest.approx(10**9 * 0.03 / 0.1 * 3600, rel=1e-12)


def test_a_drifting_body_that_settles_late_is_counted_pass_by_pass_where_it_changes():
    # each pass discharges 0.3 mAh (time-capped) and charges 0.226 mAh, drifting down until the discharge reaches
    # 3.0 V (after ~27 passes), from then on every pass is the same: the probe must find that change
    prog = program("""
        protocol: x
        steps:
          - repeat: 1000
            steps: ["Discharge at 0.3 mA until 3.0 V or 1 hour", "Charge at 0.2C for 30 minutes"]
        """, MASS_CELL)
    closed = estimate_program(prog, cell(MASS_CELL))
    walked = _walked(prog, cell(MASS_CELL))
    assert closed.total_s == pytest.approx(walked.total_s, rel=1e-9)
    assert closed.steps[1].total_s == pytest.approx(walked.steps[1].total_s, rel=1e-9)
