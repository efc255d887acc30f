import math

import pytest

from protocols.units import QuantityError, parse_c_rate, parse_capacity, parse_current, parse_plain


@pytest.mark.parametrize(("text", "rate"), [("0.1C", 0.1), ("C/10", 0.1), ("2C", 2.0), ("C/2.5", 0.4),
                                            ("2C/3", 2 / 3), ("0.5 C", 0.5), ("C", 1.0)])
def test_c_rates_are_recognised_before_pint_reads_coulombs(text, rate):
    assert parse_c_rate(text) == pytest.approx(rate)
    spec = parse_current(text)
    assert spec.basis == "c_rate"
    assert spec.resolve(capacity=1.75e-3, area=None, mass=None) == pytest.approx(rate * 1.75e-3)


def test_per_area_current_resolves_against_a_12mm_disk():
    area = math.pi * 0.006**2
    spec = parse_current("0.5 mA/cm^2")
    assert spec.basis == "per_area"
    assert spec.resolve(capacity=None, area=area, mass=None) == pytest.approx(5.6549e-4, rel=1e-4)
    assert parse_current("0.5 mA/cm2").value == pytest.approx(5.0)  # cm2 shorthand == cm^2


def test_per_mass_current_and_specific_capacity():
    assert parse_current("20 mA/g").resolve(capacity=None, area=None, mass=10e-6) == pytest.approx(2e-4)
    assert parse_capacity("4 mAh/cm^2").resolve(area=1.131e-4, mass=None) == pytest.approx(4.524e-3)
    assert parse_plain("175 mAh/g", "specific_capacity") == pytest.approx(175.0)  # Ah/kg


def test_plain_quantities_convert_to_si():
    assert parse_plain("0 V", "voltage") == 0.0
    assert parse_plain("100 mHz", "frequency") == pytest.approx(0.1)
    assert parse_plain("0.1 mV/s", "scan_rate") == pytest.approx(1e-4)
    assert parse_plain("1.5 h", "time") == pytest.approx(5400)
    assert parse_plain("45 um", "length") == pytest.approx(45e-6)


@pytest.mark.parametrize(("value", "kind", "found"), [("4 mAh", "current", "a capacity"),
                                                      ("3", "voltage", "no unit"), (3.0, "voltage", "no unit"),
                                                      ("2 mA", "time", "a current")])
def test_wrong_dimension_names_what_was_found(value, kind, found):
    with pytest.raises(QuantityError) as info:
        parse_current(value) if kind == "current" else parse_plain(value, kind)
    assert found in str(info.value) or found in info.value.found
    assert info.value.expected.startswith("a ")
