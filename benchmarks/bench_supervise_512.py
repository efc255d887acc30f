"""Budget (DESIGN section 8): one station process watching 512 simulated channels in real time at a 1 s poll
uses under a quarter of one core and loses no record.

Run: python benchmarks/bench_supervise_512.py [--channels 512] [--seconds 60] [--record-every 1] [--poll 1]

The simulated BTS runs in its own process at real speed (``station sim neware``), as a real BTS Client runs on
its own PC, so the CPU figure is the station's alone: its process CPU time (user + system) over the supervised
window divided by the window's wall time. Every channel runs a real-time cycling program recording every
``--record-every`` seconds (1 s by default, 30x denser than P3, so 512 records arrive each second). After the
window the station catches up once and every run's stored records are compared with the instrument's count:
complete (1..N, no gap) and unique, or the benchmark says how many are missing. All channels are stopped
before the simulator is shut down.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.base import ChannelState  # noqa: E402
from protocols.cells import load_cell  # noqa: E402
from protocols.loader import load_protocol_text  # noqa: E402
from station.config import load_config  # noqa: E402
from station.session import Station  # noqa: E402

CHANNELS_PER_DEVICE = 64

PROTOCOL = """
protocol: supervision-load
record: {{every: {every} s}}
steps:
  - rest: 10 s
  - repeat: 100
    steps:
      - Charge at 0.2C until 4.3 V
      - Discharge at 0.5C until 3.0 V
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _channel_ids(n: int) -> list[str]:
    return [f"{21 + k // CHANNELS_PER_DEVICE}-1-{1 + k % CHANNELS_PER_DEVICE}" for k in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the supervised window")
    parser.add_argument("--record-every", type=float, default=1.0, help="record interval of every channel, s")
    parser.add_argument("--poll", type=float, default=1.0, help="poll interval, s")
    args = parser.parse_args()

    port = _free_port()
    devices = math.ceil(args.channels / CHANNELS_PER_DEVICE)
    sim = subprocess.Popen(
        [sys.executable, "-m", "station", "sim", "neware", "--port", str(port), "--devices", str(devices),
         "--channels", str(CHANNELS_PER_DEVICE), "--cell", "predeposited-ncm622", "--speed", "1"],
        stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    assert sim.stderr is not None
    sim.stderr.readline()  # the banner: it is about to serve
    with tempfile.TemporaryDirectory() as tmp:
        ids = _channel_ids(args.channels)
        config_file = Path(tmp) / "station.yaml"
        channel_lines = "\n".join(f"      - {{id: {c}, voltage: [0 V, 5 V], current: 10 mA}}" for c in ids)
        config_file.write_text(
            f"data_dir: {tmp}/data\npoll_interval: {args.poll} s\ninstruments:\n  - name: bts\n    kind: neware\n"
            f"    address: 127.0.0.1:{port}\n    timeout: 10 s\n    channels:\n{channel_lines}\n"
        )
        config, _ = load_config(str(config_file))
        station = Station.open(config)
        try:
            cell = load_cell("predeposited-ncm622")
            loaded = load_protocol_text(PROTOCOL.format(every=args.record_every), "supervision-load.yaml")
            started = time.perf_counter()
            run_ids = [station.launch(loaded, cell, f"bts/{c}") for c in ids]
            launch_s = time.perf_counter() - started

            rounds: list[float] = []
            manager = station.manager

            def window_over() -> bool:
                rounds.append(time.perf_counter())
                return time.perf_counter() - t0 >= args.seconds

            cpu0, t0 = _cpu(), time.perf_counter()
            manager.supervise(run_ids, args.poll, should_stop=window_over)
            cpu1, t1 = _cpu(), time.perf_counter()

            manager.poll_round(run_ids)  # catch up once, then compare with the instrument's own count
            statuses = {rid: manager.active[rid].last_status for rid in run_ids}
            store = station.store
            stored = lost = duplicated = not_running = 0
            for rid in run_ids:
                records = store.records(rid)
                seq = records["seq"]
                stored += len(seq)
                duplicated += len(seq) - len(set(seq.tolist()))
                status = statuses[rid]
                instrument = status.last_seq if status and status.last_seq is not None else 0
                lost += max(0, instrument - int(seq[-1] if len(seq) else 0))
                lost += int(seq[-1] - len(seq)) if len(seq) else 0  # gaps inside 1..N
                not_running += status is None or status.state is not ChannelState.RUNNING
            for rid in run_ids:
                manager.stop(rid, "benchmark over")
        finally:
            station.close()
            sim.send_signal(signal.SIGINT)
            try:
                sim.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sim.kill()

    window = t1 - t0
    cpu_share = (cpu1 - cpu0) / window
    gaps = [b - a for a, b in itertools.pairwise(rounds)]
    print(f"channels            {args.channels} on {devices} simulated BTS device(s), own process, real time")
    print(f"record interval     {args.record_every:g} s per channel; poll every {args.poll:g} s")
    print(f"launch              {launch_s:.1f} s for {args.channels} runs (check, compile, upload, start)")
    print(f"window              {window:.1f} s, {len(rounds)} rounds, round-to-round {min(gaps):.2f}-{max(gaps):.2f} s")
    print(f"records stored      {stored} ({stored / window:.0f}/s), channels not running at the end: {not_running}")
    print(f"lost records        {lost}, duplicated {duplicated}")
    print(f"station CPU         {100 * cpu_share:.1f} % of one core (pid {os.getpid()}, simulator excluded)")
    ok = cpu_share < 0.25 and lost == 0 and duplicated == 0 and not_running == 0
    print(f"budget: < 25 % of one core, no lost record: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
