"""Hardware tier: runs only on a lab PC with the Development Package and an instrument.

Set BIOLOGIC_DLL (path to EClib64.dll or its folder), BIOLOGIC_ADDRESS ("USB0" or an IP) and BIOLOGIC_CHANNEL
(0-based). A dummy cell or a resting cell must be connected: the test only rests the channel for 20 s.
"""

from __future__ import annotations

import os

import pytest

from drivers.base import ChannelState
from drivers.biologic.channel import BiologicChannel, BiologicConfig
from protocols.clock import RealClock
from protocols.program import RecordRule, RestStep, StepProgram, Termination

DLL = os.environ.get("BIOLOGIC_DLL")
ADDRESS = os.environ.get("BIOLOGIC_ADDRESS")
pytestmark = pytest.mark.skipif(not (DLL and ADDRESS), reason="no Biologic instrument given (BIOLOGIC_DLL/ADDRESS)")


def test_a_short_rest_on_the_instrument():
    assert DLL and ADDRESS
    clock = RealClock()
    config = BiologicConfig(ADDRESS, int(os.environ.get("BIOLOGIC_CHANNEL", "0")))
    driver = BiologicChannel.from_dll(DLL, config, clock)  # techniques and firmware next to the DLL
    rest = RestStep(index=1, until=(Termination(quantity="time", op=">=", value=20.0),), record=RecordRule(every_s=1))
    driver.start(StepProgram(protocol="hardware-check", cell="dummy", steps=(rest,)), "hardware-check")
    try:
        records = []
        for _ in range(120):
            clock.sleep(1.0)
            records += driver.read_records(records[-1].seq if records else 0)
            if driver.status().state is ChannelState.FINISHED:
                break
        assert driver.status().state is ChannelState.FINISHED
        assert 19 <= len(records) <= 22
        assert records[-1].step_time == pytest.approx(20.0, abs=1.0)
    finally:
        driver.stop()
