"""Parameters cross the ctypes boundary intact: what the compiler meant is what the firmware side decodes."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.biologic.channel import BiologicChannel, BiologicConfig
from protocols.cells import load_cell
from protocols.clock import VirtualClock
from protocols.loader import build_program
from protocols.program import (
    CaStep,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    LoopStep,
    LsvStep,
    RestStep,
    SafetyLimits,
    StepProgram,
    Termination,
)
from simulators.biologic import firmware as fw
from simulators.biologic.eclib import SimChannel, SimDevice, SimulatedEClib
from simulators.cells.dummy import DummyCell


def T(quantity, op, value):
    return Termination(quantity=quantity, op=op, value=value)


MIXED = StepProgram(
    protocol="mixed", cell="c", safety=SafetyLimits(voltage_min=-0.5, voltage_max=4.4, current_max=0.02),
    steps=(
        RestStep(index=1, until=(T("time", ">=", 60),)),
        CurrentStep(index=2, kind="charge", current=2e-3, until=(T("voltage", ">=", 4.3), T("time", ">=", 3600))),
        HoldStep(index=3, voltage=4.3, until=(T("current", "<=", 1e-4),)),
        CaStep(index=4, voltage=-0.05, vs_ocv=True, until=(T("time", ">=", 600),)),
        EisStep(index=5, mode="galvano", f_start=1e5, f_end=0.01, points_per_decade=7, amplitude=1e-4),
        CvStep(index=6, scan_rate=5e-4, start=3.0, vertex_1=2.5, vertex_2=4.2, end=None, cycles=4),
        LsvStep(index=7, scan_rate=1e-3, end=0.5, until=(T("voltage", "<=", 0.6),)),
        LoopStep(index=8, target=2, count=3),
    ),
)  # fmt: skip


def _library(protocol, cell):
    return build_program(f"protocols/library/{protocol}", load_cell(f"protocols/library/cells/{cell}"))


@pytest.mark.parametrize("board", [fw.ESSENTIAL, fw.PREMIUM, fw.DIGICORE])
@pytest.mark.parametrize(
    "make",
    [lambda: MIXED, lambda: _library("p5-eis.yaml", "host-cu-li.yaml"),
     lambda: _library("p6-cyclic-voltammetry.yaml", "host-cu-li.yaml"),
     lambda: _library("p7-conductivity.yaml", "host-blocking.yaml"),
     lambda: _library("p1-li-deposition.yaml", "host-cu-li.yaml")],
    ids=["mixed", "p5", "p6", "p7", "p1"],
)  # fmt: skip
def test_firmware_decodes_exactly_what_the_compiler_encoded(make, board):
    program = make()
    clock = VirtualClock()
    channel = SimChannel(DummyCell(), board=board, max_bandwidth=9)
    sim = SimulatedEClib(clock, {"USB0": SimDevice(5, {0: channel})})
    driver = BiologicChannel(sim, BiologicConfig("USB0", 0), clock)
    compiled = driver.compile(program)
    driver.start(program, "b")  # the firmware refuses (-401) an .ecc whose suffix does not suit the board
    assert [t.stem for t in channel.techniques] == [t.spec.ecc_stem for t in compiled.techniques]
    assert channel.list_closed and channel.run is not None
    for sent, received in zip(compiled.techniques, channel.techniques, strict=True):
        assert received.table.technique_id == int(sent.spec.technique_id)
        assert set(received.values) == set(sent.values)
        for label, value in sent.values.items():
            got = received.values[label]
            if isinstance(value, list):
                assert len(got) == len(value), label
                pairs = list(zip(value, got, strict=True))
            else:
                pairs = [(value, got)]
            for want, have in pairs:
                if isinstance(want, float):
                    assert have == float(np.float32(want)), label  # singles cross as IEEE-754 bits
                else:
                    assert have == want and type(have) is type(want), label
