"""``python -m simulators.chamber``: serve a simulated ESPEC chamber on a pty (or TCP) until Ctrl-C.

It prints the pyvisa resource string to give the station (``ASRL/dev/pts/N::INSTR``, or
``TCPIP::127.0.0.1::PORT::SOCKET`` with ``--tcp``).
"""

from __future__ import annotations

import argparse
import contextlib
import threading

from protocols.clock import Clock, RealClock, ScaledClock
from simulators.chamber.espec import SimulatedEspec
from simulators.chamber.network import TcpLineServer
from simulators.chamber.serial_port import PtyLineServer
from simulators.chamber.thermal import ThermalParams


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators.chamber", description=__doc__)
    parser.add_argument("--tcp", action="store_true", help="serve on a TCP port (a serial-to-Ethernet adapter)")
    parser.add_argument("--speed", type=float, default=None, help="clock speed factor (default: real time)")
    parser.add_argument("--ambient", type=float, default=23.0, help="room temperature, °C")
    parser.add_argument("--tau", type=float, default=300.0, help="closed-loop response time constant, s")
    parser.add_argument("--overshoot", type=float, default=0.05, help="overshoot as a fraction of a step")
    args = parser.parse_args(argv)
    clock: Clock = RealClock() if args.speed is None else ScaledClock(args.speed)
    params = ThermalParams(ambient_c=args.ambient, response_tau_s=args.tau, overshoot=args.overshoot)
    chamber = SimulatedEspec(clock, params)
    server = TcpLineServer(chamber.handle) if args.tcp else PtyLineServer(chamber.handle)
    with server:
        print(f"simulated ESPEC chamber on {server.resource}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()  # until Ctrl-C; the server threads do the work


if __name__ == "__main__":
    main()
