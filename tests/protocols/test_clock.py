"""The clocks: only the real one reads the wall; the scaled one runs its given wall clock faster."""

from __future__ import annotations

import pytest

from protocols.clock import ScaledClock, VirtualClock


def test_a_scaled_clock_runs_its_wall_clock_faster_and_sleeps_on_it():
    wall = VirtualClock(start=100.0, epoch=1.7e9)
    clock = ScaledClock(3600.0, start=5.0, wall=wall)
    assert clock.now() == 5.0
    wall.advance(2.0)  # two wall seconds are two hours of this clock
    assert clock.now() == pytest.approx(5.0 + 7200.0)
    clock.sleep(1800.0)  # half an hour of this clock is half a wall second
    assert wall.now() == pytest.approx(102.5)
    assert clock.unix() == wall.unix() == pytest.approx(1.7e9 + 102.5)


def test_a_virtual_clock_moves_only_when_someone_sleeps():
    clock = VirtualClock(epoch=0.0)
    assert clock.now() == 0.0
    clock.sleep(30.0)
    clock.sleep(-5.0)  # a negative sleep never turns time back
    assert clock.now() == 30.0 and clock.unix() == 30.0
    with pytest.raises(ValueError, match="speed must be positive"):
        ScaledClock(0.0)
