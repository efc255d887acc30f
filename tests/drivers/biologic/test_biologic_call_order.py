"""The driver's exact call sequence at the DLL boundary (an ordered-exchange test, as pymeasure's protocol tests)."""

from __future__ import annotations

from drivers.biologic.channel import BiologicChannel, BiologicConfig
from protocols.clock import VirtualClock
from protocols.program import CurrentStep, RestStep, StepProgram, Termination
from simulators.biologic.dummy_cell import DummyCell
from simulators.biologic.eclib import SimChannel, SimDevice, SimulatedEClib


class Recording:
    """Passes every call through to the simulated EClib and records (name, scalar args)."""

    def __init__(self, lib):
        self._lib = lib
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        function = getattr(self._lib, name)

        def call(*args):
            scalars = tuple(a for a in args if isinstance(a, int | bool | bytes | str | float))
            self.calls.append((name, *scalars))
            return function(*args)

        return call


def collapse(calls):
    """Runs of the same parameter setter count as one entry: the order of setters is the params' order."""
    out: list = []
    for call in calls:
        if call[0].startswith("BL_Define"):
            if out and out[-1] == call[0]:
                continue
            out.append(call[0])
        else:
            out.append(call)
    return out


def test_start_follows_the_documented_call_sequence():
    clock = VirtualClock()
    sim = SimulatedEClib(clock, {"USB0": SimDevice(5, {2: SimChannel(DummyCell())})})
    lib = Recording(sim)
    driver = BiologicChannel(lib, BiologicConfig("USB0", 2, technique_dir="/opt/eclib"), clock)
    t = (Termination(quantity="time", op=">=", value=5.0),)
    program = StepProgram(protocol="p", cell="c", steps=(
        RestStep(index=1, until=t), CurrentStep(index=2, kind="charge", current=1e-3, until=t)))  # fmt: skip
    driver.start(program, "b")
    driver.read_records(0)
    driver.stop()
    assert collapse(lib.calls) == [
        ("BL_Connect", b"USB0", 5),
        ("BL_GetChannelsPlugged", 1, 16),
        ("BL_GetChannelBoardType", 1, 2),
        ("BL_LoadFirmware", 1, 1, False, False, b"/opt/eclib/kernel.bin", b"/opt/eclib/Vmp_ii_0437_a6.xlx"),
        ("BL_GetChannelInfos", 1, 2),
        ("BL_GetCurrentValues", 1, 2),  # refuse a busy channel before loading anything
        "BL_DefineSglParameter",  # OCV: Rest_time_T, Record_every_dE, Record_every_dT ...
        "BL_DefineIntParameter",  # ... E_Range
        ("BL_LoadTechnique", 1, 2, b"/opt/eclib/ocv.ecc", True, False, False),
        ("BL_GetMessage", 1, 2),  # drain: one message ...
        ("BL_GetMessage", 1, 2),  # ... then empty
        "BL_DefineSglParameter",
        "BL_DefineBoolParameter",
        "BL_DefineSglParameter",
        "BL_DefineIntParameter",
        "BL_DefineSglParameter",
        "BL_DefineIntParameter",
        ("BL_LoadTechnique", 1, 2, b"/opt/eclib/cp.ecc", False, True, False),
        ("BL_GetMessage", 1, 2),
        ("BL_GetMessage", 1, 2),
        ("BL_StartChannel", 1, 2),
        ("BL_GetData", 1, 2),  # the transient STOP with no rows ends this read
        ("BL_StopChannel", 1, 2),
    ]
