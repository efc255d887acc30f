"""The simulated EClib against the driver's view of the same boundary: struct copies and export arities.

These tie the two sides together on purpose (they meet at the wire, as DESIGN section 2 asks), so they live apart
from the driver's own header checks in ``test_biologic_structs``.
"""

from __future__ import annotations

import ctypes
import inspect

import pytest

from drivers.biologic import structs as d
from drivers.biologic.eclib import SIGNATURES
from simulators.biologic import structs as s
from simulators.biologic.eclib import SimulatedEClib

PAIRS = [
    (d.TDeviceInfos, s.DeviceInfos), (d.TChannelInfos, s.ChannelInfos), (d.TCurrentValues, s.CurrentValues),
    (d.TDataInfos, s.DataInfos), (d.TDataBuffer, s.DataBuffer), (d.TEccParam, s.EccParam),
    (d.TEccParams, s.EccParams),
]  # fmt: skip


@pytest.mark.parametrize(("host", "instrument"), PAIRS, ids=lambda x: x.__name__)
def test_driver_and_simulator_structs_are_byte_identical(host, instrument):
    assert ctypes.sizeof(host) == ctypes.sizeof(instrument)
    assert [f[0] for f in host._fields_] == [f[0] for f in instrument._fields_]
    for name, *_ in host._fields_:
        assert getattr(host, name).offset == getattr(instrument, name).offset
        assert getattr(host, name).size == getattr(instrument, name).size


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_simulator_offers_every_export_with_the_same_arity(name):
    method = getattr(SimulatedEClib, name)
    params = list(inspect.signature(method).parameters)[1:]  # drop self
    assert len(params) == len(SIGNATURES[name][0]), name
