"""The whole-run temperature limit against recorded temperatures: a reading above the limit breaks it, NaN (no
reading) never does and is no invalid reading either; the point-by-point and vectorised searches agree."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from protocols.program import SafetyLimits
from protocols.safety import FEW_POINTS, _first_breach_few, _first_breach_vector, first_breach

NAN = math.nan
LIMITS = SafetyLimits(voltage_min=2.5, voltage_max=4.4, temperature_max=50.0)


def block(temperature: list[float], voltage: float = 3.7) -> np.ndarray:
    n = len(temperature)
    out = np.zeros(n, dtype=[("voltage", "<f8"), ("current", "<f8"), ("test_time", "<f8"), ("temperature", "<f8")])
    out["voltage"], out["current"], out["test_time"] = voltage, 1e-3, np.arange(n, dtype=float)
    out["temperature"] = temperature
    return out


@pytest.mark.parametrize("n", [3, 40])  # a few points are searched one by one, more as whole columns
def test_the_first_reading_above_the_limit_breaks_it(n):
    temperature = [45.0] * n
    temperature[2] = 50.0  # on the limit: not above it
    temperature[n - 1] = 50.3
    breach = first_breach(block(temperature), LIMITS)
    assert breach is not None and breach.index == n - 1
    assert breach.message == "temperature 50.3 degC above the safety limit 50 degC"


@pytest.mark.parametrize("n", [3, 40])
def test_nan_is_no_reading_and_breaks_nothing(n):
    assert first_breach(block([NAN] * n), LIMITS) is None
    mixed = [NAN if k % 2 else 49.9 for k in range(n)]
    assert first_breach(block(mixed), LIMITS) is None


@pytest.mark.parametrize("n", [3, 40])
def test_an_invalid_voltage_is_still_a_breach_and_its_message_names_no_temperature(n):
    records = block([NAN] * n)
    records["voltage"][1] = NAN
    breach = first_breach(records, LIMITS)
    assert breach is not None and breach.index == 1
    assert breach.message == ("the instrument reported an invalid reading (V nan, I 0.001, t 1.0); treated as a "
                              "safety breach")


def test_without_a_temperature_limit_the_column_is_not_read():
    assert first_breach(block([80.0, NAN, 120.0]), SafetyLimits(voltage_max=4.4)) is None


def test_a_store_block_without_the_column_is_checked_as_before():
    records = block([60.0, 60.0])[["voltage", "current", "test_time"]]
    assert first_breach(records, LIMITS) is None


def test_both_searches_agree_on_random_temperature_blocks():
    rng = random.Random(19)
    for _ in range(300):
        n = rng.randint(1, FEW_POINTS)
        temperature = [rng.choice([NAN, 45.0, 49.99, 50.0, 50.01, math.inf, 70.0]) for _ in range(n)]
        voltage = [rng.choice([3.7, 3.7, 3.7, 4.5, NAN]) for _ in range(n)]
        columns = {"voltage": np.array(voltage), "temperature": np.array(temperature)}
        few = _first_breach_few({k: v.tolist() for k, v in columns.items()}, n, LIMITS)
        vector = _first_breach_vector(columns, LIMITS)
        assert few == vector, (temperature, voltage)


@pytest.mark.parametrize("n", [3, 40])
def test_the_cells_own_sensor_breaks_the_limit_too_and_whichever_reads_first_over_it_is_named(n):
    """A Neware T1 on the cell (``aux_temperature``) is held to the same limit as the chamber; NaN there is no
    sensor. The earlier of the two readings over the limit is the breach."""
    records = np.zeros(n, dtype=[("voltage", "<f8"), ("current", "<f8"), ("test_time", "<f8"),
                                 ("temperature", "<f8"), ("aux_temperature", "<f8")])
    records["voltage"], records["current"], records["test_time"] = 3.7, 1e-3, np.arange(n, dtype=float)
    records["temperature"] = 45.0
    records["aux_temperature"] = NAN
    assert first_breach(records, LIMITS) is None
    records["aux_temperature"][1] = 50.6  # the cell heats above the limit before the chamber's air does
    records["temperature"][n - 1] = 51.0
    breach = first_breach(records, LIMITS)
    assert breach is not None and breach.index == 1
    assert breach.message == "cell sensor temperature 50.6 degC above the safety limit 50 degC"
    vector = _first_breach_vector({name: records[name].astype(float) for name in records.dtype.names}, LIMITS)
    assert vector == breach
