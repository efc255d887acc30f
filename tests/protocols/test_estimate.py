import pytest

from protocols.estimate import estimate_program

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
