"""``python -m simulators.neware --port 5020``: serve a simulated BTS until Ctrl-C (the station CLI wraps serve())."""

from __future__ import annotations

import argparse
import logging

from simulators.neware.server import serve
from simulators.neware.stepfile import DeviceRanges
from simulators.neware.stepping import Measurement


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators.neware", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback unless told otherwise)")
    parser.add_argument("--port", type=int, default=502, help="TCP port (the real BTS Client uses 502)")
    parser.add_argument("--devices", type=int, default=1, help="number of devices (devid 21, 22, ...)")
    parser.add_argument("--subdevices", type=int, default=1, help="units per device (subdevid 1..N)")
    parser.add_argument("--channels", type=int, default=8, help="channels per unit (chlid 1..N)")
    parser.add_argument("--cell", default="ncm622-li", help="cell model type name from simulators.cells")
    parser.add_argument("--capacity", type=float, default=None, help="cell capacity in Ah")
    parser.add_argument("--area", type=float, default=None, help="electrode area in m^2")
    parser.add_argument("--speed", type=float, default=None, help="clock speed factor (default: real time)")
    default = DeviceRanges()
    parser.add_argument(
        "--current-max", type=float, default=default.current_max, help="channel current range in A (start refuses more)"
    )
    parser.add_argument("--voltage-min", type=float, default=default.voltage_min, help="channel voltage range low, V")
    parser.add_argument("--voltage-max", type=float, default=default.voltage_max, help="channel voltage range high, V")
    parser.add_argument(
        "--noise-seed",
        type=int,
        default=None,
        help="measure with the real data's noise and start transient, seeded (default: exact records)",
    )
    parser.add_argument(
        "--download-cycle-base",
        type=int,
        choices=(0, 1),
        default=0,
        help="the cycle number download gives the first cycle (0: BTS Client 2025.11.24 field capture)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    options = {k: v for k, v in (("capacity", args.capacity), ("area", args.area)) if v is not None}
    serve(
        args.host,
        args.port,
        devices=args.devices,
        subdevices=args.subdevices,
        channels=args.channels,
        cell=args.cell,
        cell_options=options,
        speed=args.speed,
        ranges=DeviceRanges(args.current_max, args.voltage_min, args.voltage_max),
        measurement=None if args.noise_seed is None else Measurement.realistic(args.noise_seed),
        download_cycle_base=args.download_cycle_base,
        on_ready=lambda sim: print(
            f"simulated BTS on {sim.host}:{sim.port} ({len(sim.channels)} channels)", flush=True
        ),
    )


if __name__ == "__main__":
    main()
