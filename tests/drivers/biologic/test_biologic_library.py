"""The driver through the simulated EClib loaded as a library of real C function pointers (end to end).

``simulators.biologic.load_library`` hands out what ``ctypes.WinDLL("EClib64.dll")`` would: exports that are C
function pointers. The driver declares its own signatures on them and drives one channel per board technology,
with ``BL_GetChannelInfos`` writing either 76 bytes (no ``FloatFormat``) or the 2013 header's 84.
"""

from __future__ import annotations

import pytest

from drivers.base import ChannelState
from drivers.biologic.channel import BiologicChannel, BiologicConfig
from protocols.clock import VirtualClock
from protocols.program import CurrentStep, RecordRule, RestStep, StepProgram, Termination
from simulators.biologic import load_library

HALF_MINUTE = (Termination(quantity="time", op=">=", value=30.0),)
PROGRAM = StepProgram(protocol="p", cell="c", steps=(
    RestStep(index=1, until=HALF_MINUTE, record=RecordRule(every_s=5)),
    CurrentStep(index=2, kind="charge", current=1e-3, until=HALF_MINUTE, record=RecordRule(every_s=5)),
))  # fmt: skip


@pytest.mark.parametrize("size", [76, 84])
@pytest.mark.parametrize("board", ["vmp3", "sp300", "digicore"])
def test_a_program_runs_through_c_function_pointers_on_every_board(board, size):
    clock = VirtualClock()
    library = load_library(board, 1, clock=clock, channel_infos_size=size)
    driver = BiologicChannel(library, BiologicConfig("USB0", 0), clock)
    driver.start(PROGRAM, "lib")
    records = []
    for _ in range(100):
        clock.advance(7.0)
        records += driver.read_records(records[-1].seq if records else 0)
        if driver.status().state is ChannelState.FINISHED:
            break
    assert driver.status().state is ChannelState.FINISHED
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    charge = [r for r in records if r.step_index == 2]
    assert charge[-1].test_time == pytest.approx(60.0, abs=1e-3)
    assert all(r.current == pytest.approx(1e-3, rel=1e-6) for r in charge)  # TI or IEEE, decoded right
    assert 0.0 < charge[-1].voltage < 5.0
