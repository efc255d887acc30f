"""The ESPEC driver over pyvisa-py's raw socket (``TCPIP::host::port::SOCKET``) to the simulated chamber behind a
simulated serial-to-Ethernet adapter: the socket path's own resynchronising (``clear``) and, when the adapter cuts
the connection, a real reconnect.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivers.chamber import Espec
from protocols.clock import VirtualClock
from simulators.chamber import SimulatedEspec, TcpLineServer


@pytest.fixture
def rig() -> Iterator[tuple[SimulatedEspec, TcpLineServer, Espec]]:
    clock = VirtualClock()
    chamber = SimulatedEspec(clock)
    with TcpLineServer(chamber.handle) as server:
        driver = Espec.connect(server.resource, timeout_s=0.2, clock=clock)
        yield chamber, server, driver
        driver.close()


def test_set_point_and_a_garbled_reply_over_a_socket(rig):
    chamber, _, driver = rig
    driver.set_point(30)
    chamber.garble(1)
    assert driver.read().set_point_c == 30.0
    assert chamber.lines == ["TEMP, S30.0", "TEMP?", "TEMP?", "MON?"]


def test_a_dropped_connection_is_reopened_and_the_read_repeated(rig):
    chamber, server, driver = rig
    assert driver.read().temperature_c == 23.0
    server.drop_connections()  # the adapter reboots
    assert driver.read().temperature_c == 23.0
    assert driver.reconnects == 1
    assert chamber.lines[:2] == ["TEMP?", "MON?"] and chamber.lines[-2:] == ["TEMP?", "MON?"]
