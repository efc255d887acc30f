"""A simulated climate chamber on a pseudo-terminal, so that the serial path (pyserial, pyvisa-py) is real.

:class:`SimulatedEspec` answers ESPEC's command set over a :class:`ThermalModel` (first-order lag, PI control with
overshoot, drifting room) on an injected clock; :class:`PtyLineServer` serves it on a pty pair (and
:class:`TcpLineServer` behind a simulated serial-to-Ethernet adapter)::

    chamber = SimulatedEspec(VirtualClock())
    with PtyLineServer(chamber.handle) as server:
        ...  # open server.resource ("ASRL/dev/pts/N::INSTR") with pyvisa, or server.port with pyserial
"""

from simulators.chamber.espec import Nameplate, SimulatedEspec
from simulators.chamber.faults import Faults
from simulators.chamber.network import TcpLineServer
from simulators.chamber.serial_port import PtyLineServer
from simulators.chamber.thermal import ThermalModel, ThermalParams

__all__ = [
    "Faults", "Nameplate", "PtyLineServer", "SimulatedEspec", "TcpLineServer", "ThermalModel", "ThermalParams",
]
