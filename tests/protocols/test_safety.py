"""The one safety rule, as the station and the Biologic driver both apply it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.program import SafetyLimits
from protocols.safety import _COLUMNS, FEW_POINTS, Breach, _first_breach_few, _first_breach_vector, first_breach

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


# -- the point-by-point search of small blocks is the vectorised search, exactly -------------------------------------

#: values near every bound the limits below can set, on and just past them, and the ones no instrument should send
_EDGES = [0.0, -0.0, 1e-12, 2e-12, 0.002, -0.002, 0.002 * (1 + 1e-6) + 1e-12, 0.01, -0.01, 0.0100001, 4.3, 4.300001,
          4.3000011, 4.31, -1e-6, -1.1e-6, 3600.0, 3600.5, 86400.0, 86400.5, 1e300, -1e300, 5e-324, math.nan,
          math.inf, -math.inf]
_values = st.one_of(st.sampled_from(_EDGES), st.floats(allow_nan=True, allow_infinity=True, width=64))
_limit = st.one_of(st.none(), st.sampled_from([0.0, 0.002, 0.01, 4.3, 3600.0, 86400.0, -1.0, 1e-12]),
                   st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))


@st.composite
def _blocks(draw: st.DrawFn) -> tuple[dict[str, np.ndarray], SafetyLimits]:
    n = draw(st.integers(0, FEW_POINTS))
    names = draw(st.lists(st.sampled_from(["voltage", "current", "capacity", "step_time", "test_time"]),
                          unique=True, min_size=1, max_size=5))
    columns = {name: np.array(draw(st.lists(_values, min_size=n, max_size=n)), dtype=np.float64) for name in names}
    limits = SafetyLimits(voltage_min=draw(_limit), voltage_max=draw(_limit), current_max=draw(_limit),
                          capacity_max=draw(_limit), step_duration_max=draw(_limit), run_duration_max=draw(_limit))
    return columns, limits


@settings(max_examples=2000, derandomize=True, deadline=None)
@given(_blocks())
def test_small_blocks_get_exactly_the_vectorised_answer(block: tuple[dict[str, np.ndarray], SafetyLimits]) -> None:
    columns, limits = block
    n = len(next(iter(columns.values())))
    present = {name: columns[name] for name in _COLUMNS if name in columns}  # as first_breach orders them
    expected = _first_breach_vector(present, limits)
    assert _first_breach_few({name: col.tolist() for name, col in present.items()}, n, limits) == expected
    assert first_breach(columns, limits) == expected  # the public entry takes the point-by-point path here
    structured = np.zeros(n, dtype=[("seq", "i8"), *((name, "f8") for name in columns)])
    for name, col in columns.items():
        structured[name] = col
    assert first_breach(structured, limits) == expected  # as the station's record blocks come


def test_blocks_past_the_few_take_the_vectorised_path_and_both_agree_there_too() -> None:
    rng = np.random.default_rng(7)
    for n in (FEW_POINTS, FEW_POINTS + 1, 3 * FEW_POINTS):
        for _ in range(200):
            columns = {"voltage": rng.choice([4.0, 4.3, 4.300002, -0.001, math.nan], n, p=[.9, .03, .03, .02, .02]),
                       "current": rng.choice([0.005, -0.0100001, math.inf], n, p=[.96, .03, .01])}
            expected = _first_breach_vector(columns, LIMITS)
            assert first_breach(columns, LIMITS) == expected
            assert _first_breach_few({k: v.tolist() for k, v in columns.items()}, n, LIMITS) == expected


def test_a_round_s_one_record_block_is_searched_point_by_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from protocols import safety

    def vectorised(present, limits):  # type: ignore[no-untyped-def]
        raise AssertionError("the vectorised search ran on a one-point block")

    monkeypatch.setattr(safety, "_first_breach_vector", vectorised)
    block = np.zeros(1, dtype=[("seq", "i8"), *((name, "f8") for name in _COLUMNS)])
    block["voltage"] = 4.4
    assert first_breach(block, LIMITS) == Breach(0, "voltage 4.4000 V above the safety limit 4.3 V")
