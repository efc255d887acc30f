"""Energy is the integral of I x V with its sign, on both instruments, for steps below and above 0 V.

Li plated on Cu sits below 0 V while the current is negative, so I x V > 0: the plating step's energy is
positive. A BTS counts energy as V x |I| dt (negative below 0 V) and the Neware driver signs it by the step type;
EClib reports no energy and the Biologic driver integrates I x V itself. Both must give the same physics.
"""

from __future__ import annotations

import numpy as np
import pytest

from drivers.base import ChannelRanges, ChannelState, Record
from drivers.biologic.channel import BiologicChannel, BiologicConfig
from drivers.neware.address import ChannelAddress
from drivers.neware.channel import NewareChannel, open_client
from drivers.transport import Backoff
from protocols.cells import load_cell
from protocols.clock import VirtualClock
from protocols.library import resolve_cell_path
from protocols.loader import build_program
from protocols.program import StepProgram
from simulators.biologic import firmware as fw
from simulators.biologic.eclib import SimChannel, SimDevice, SimulatedEClib
from simulators.cells import build_model
from simulators.neware import BtsSimulator

#: bring the Cu down to plating (3 V -> below 0 V: I x V changes sign within the step), plate wholly below 0 V,
#: then strip and go on up to 1 V wholly above it
PLATE_AND_STRIP = """
protocol: energy-sign
safety: {voltage: [-0.5 V, 3.5 V], current: 5 mA}
record: {every: 1 s}
steps:
  - discharge: {current: 1 mA/cm^2, until: {time: 10 min}}
  - discharge: {current: 1 mA/cm^2, until: {time: 30 min}}
  - charge: {current: 1 mA/cm^2, until: {voltage: 1 V}}
"""
DONE = (ChannelState.FINISHED, ChannelState.STOPPED, ChannelState.PROTECTED)


@pytest.fixture
def program(tmp_path) -> StepProgram:
    path = tmp_path / "energy-sign.yaml"
    path.write_text(PLATE_AND_STRIP)
    return build_program(str(path), load_cell(resolve_cell_path("cu-li")))


def model():
    cell = load_cell(resolve_cell_path("cu-li"))
    return build_model("li-cu", area=cell.area, capacity=cell.capacity, thickness=cell.thickness, seed=1)


def poll(driver, clock: VirtualClock, every_s: float) -> list[Record]:
    records: list[Record] = []
    for _ in range(10_000):
        clock.advance(every_s)
        while page := driver.read_records(records[-1].seq if records else 0, 1000):
            records += page
        if driver.status().state in DONE:
            while page := driver.read_records(records[-1].seq if records else 0, 1000):
                records += page
            assert driver.status().state is ChannelState.FINISHED
            return records
    raise AssertionError("the program never finished")


def steps_of(records: list[Record]) -> list[list[Record]]:
    out: list[list[Record]] = []
    for r in records:
        if out and out[-1][-1].step_index == r.step_index and r.step_time >= out[-1][-1].step_time:
            out[-1].append(r)
        else:
            out.append([r])
    return out


def integral_iv_wh(step: list[Record]) -> float:
    t = np.array([r.step_time for r in step])
    p = np.array([r.current * r.voltage for r in step])
    return float(np.sum((p[1:] + p[:-1]) * np.diff(t)) / 2 / 3600)


def assert_signed_energy(records: list[Record], rtol: float) -> None:
    first, plate, strip = steps_of(records)
    assert first[0].voltage > 2.5 and first[-1].voltage < 0
    assert max(r.voltage for r in plate) < 0 and all(r.current < 0 for r in plate)
    assert min(r.voltage for r in strip) > 0 and strip[-1].voltage == pytest.approx(1.0, abs=1e-3)
    assert first[-1].energy < 0  # mostly spent above 0 V: I < 0, V > 0
    assert plate[-1].energy > 0 and strip[-1].energy > 0
    for step in (first, plate, strip):
        assert step[-1].energy == pytest.approx(integral_iv_wh(step), rel=rtol)
    # the energies follow the records through the step, not only at its end
    mid = plate[len(plate) // 2]
    assert mid.energy == pytest.approx(integral_iv_wh(plate[: len(plate) // 2 + 1]), rel=rtol)


def test_neware_energy_below_and_above_0_v_is_the_integral_of_i_v(program, tmp_path):
    clock = VirtualClock()
    with BtsSimulator(devices=1, channels=1, clock=clock, model_factory=lambda key: model()) as sim:
        client = open_client("127.0.0.1", sim.port, clock=clock, timeout_s=10.0,
                             backoff=Backoff(attempts=4, first_s=0.5))
        channel = NewareChannel(client, ChannelAddress.parse("21-1-1"),
                                ChannelRanges(voltage_min=-1.0, voltage_max=5.0, current_max=0.02), step_dir=tmp_path)
        channel.start(program, "energy-sign")
        records = poll(channel, clock, 600.0)
    # the BTS's own step energy against the trapezoid over 1 s records of a smooth trace
    assert_signed_energy(records, rtol=2e-3)


def test_biologic_energy_below_and_above_0_v_is_the_integral_of_i_v(program):
    clock = VirtualClock()
    sim = SimulatedEClib(clock, {"USB0": SimDevice(5, {0: SimChannel(model(), board=fw.ESSENTIAL,
                                                                      max_bandwidth=7)})})
    driver = BiologicChannel(sim, BiologicConfig("USB0", 0), clock)
    driver.start(program, "energy-sign")
    # the driver integrates I x V itself, from the step start (the first point comes one sample period after it)
    assert_signed_energy(poll(driver, clock, 600.0), rtol=1e-5)
