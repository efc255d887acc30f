"""The one safety rule, as the station and the Biologic driver both apply it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from protocols.program import SafetyLimits
from protocols.safety import first_breach

LIMITS = SafetyLimits(voltage_min=0.0, voltage_max=4.3, current_max=0.01, capacity_max=0.002,
                      step_duration_max=3600.0, run_duration_max=86400.0)


def one(**values: float) -> dict[str, np.ndarray]:
    point = {"voltage": 4.0, "current": 0.001, "capacity": 0.001, "step_time": 10.0, "test_time": 10.0, **values}
    return {k: np.array([v]) for k, v in point.items()}


@pytest.mark.parametrize(("values", "message"), [
    ({"voltage": -0.01}, "voltage -0.0100 V below the safety limit 0 V"),
    ({"voltage": 4.4}, "voltage 4.4000 V above the safety limit 4.3 V"),
    ({"current": -0.02}, "current -0.02 A above the safety limit 0.01 A"),
    ({"capacity": -0.003}, "step capacity 0.003 Ah above the safety limit 0.002 Ah"),
    ({"step_time": 3601.0}, "step time 3601 s beyond the step limit 3600 s"),
    ({"test_time": 86401.0}, "test time 86401 s beyond the run limit 86400 s"),
])
def test_each_limit_names_the_value_and_the_limit(values, message):
    assert first_breach(one(**values), LIMITS).message == message


def test_points_on_or_within_the_limits_break_nothing():
    assert first_breach(one(voltage=4.3, current=-0.01, capacity=0.002, step_time=3600.0), LIMITS) is None
    assert first_breach(one(voltage=0.0), LIMITS) is None


def test_tolerances_are_the_number_formats_not_physics():
    # a single-precision reading of 4.3 V is 4.30000019 V: not a breach; 2 uV past the limit is
    assert first_breach(one(voltage=float(np.float32(4.3))), LIMITS) is None
    assert first_breach(one(voltage=4.300002), LIMITS) is not None
    assert first_breach(one(current=0.01 * (1 + 5e-7)), LIMITS) is None
    assert first_breach(one(current=0.01 * (1 + 2e-6)), LIMITS) is not None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_reading_that_is_not_a_number_breaks_every_limit(bad):
    breach = first_breach(one(current=bad), SafetyLimits())
    assert breach is not None and breach.index == 0
    assert breach.message == (f"the instrument reported an invalid reading (V 4.0, I {bad}, t 10.0, Q 0.001, step t "
                              "10.0); treated as a safety breach")


def test_the_earliest_point_wins_whatever_it_broke():
    records = {"voltage": np.array([4.0, 4.1, 4.4, 4.0]), "current": np.array([0.0, 0.0, 0.0, 0.5])}
    assert first_breach(records, LIMITS).index == 2
    records["current"][1] = math.nan
    breach = first_breach(records, LIMITS)
    assert breach.index == 1 and "invalid reading" in breach.message


def test_missing_columns_are_not_checked_and_a_structured_block_works():
    assert first_breach({"voltage": np.array([4.2])}, LIMITS) is None
    block = np.zeros(3, dtype=[("seq", "i8"), ("voltage", "f8"), ("current", "f8")])
    block["voltage"] = [3.9, 4.0, 4.35]
    assert first_breach(block, LIMITS).index == 2
    assert first_breach({}, LIMITS) is None


def _breaks(point: dict[str, float]) -> bool:
    """The rule, point by point, written out plainly: the reference the vectorised search must agree with."""
    if any(not math.isfinite(x) for x in point.values()):
        return True
    return (point["voltage"] > 4.3 + 1e-6 or point["voltage"] < 0.0 - 1e-6
            or abs(point["current"]) > 0.01 * (1 + 1e-6) + 1e-12
            or abs(point["capacity"]) > 0.002 * (1 + 1e-6) + 1e-12
            or point["step_time"] > 3600.0 or point["test_time"] > 86400.0)


@pytest.mark.parametrize("seed", range(40))
def test_the_first_breach_is_the_first_point_that_breaks_the_rule(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 50))
    columns = {
        "voltage": rng.choice([4.0, 4.3, 4.3000005, 4.31, -0.001, 0.0, math.nan], n,
                              p=[.9, .02, .02, .02, .02, .01, .01]),
        "current": rng.choice([0.005, -0.01, 0.0100001, -0.02, math.inf], n, p=[.93, .02, .02, .02, .01]),
        "capacity": rng.choice([0.001, -0.002, 0.003], n, p=[.96, .02, .02]),
        "step_time": rng.choice([10.0, 3600.0, 3600.5], n, p=[.96, .02, .02]),
        "test_time": rng.choice([10.0, 86400.5], n, p=[.98, .02]),
    }
    expected = next((k for k in range(n) if _breaks({c: float(v[k]) for c, v in columns.items()})), None)
    breach = first_breach(columns, LIMITS)
    assert (breach.index if breach else None) == expected
