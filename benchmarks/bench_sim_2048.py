"""Budget (DESIGN section 11, issue 11): the simulated BTS answers every command within 1 s while 2048 channels on
16 devices change steps, driven by aurora-neware's own client.

Run: python benchmarks/bench_sim_2048.py [--devices 16] [--channels-per-device 128] [--seconds 120] [--step-s 15]

The simulator runs in its own process (``python -m simulators.neware``) at real speed, as a real BTS Client runs on
its own PC; this process is the client: aurora-neware 0.2.3's ``NewareAPI``, unchanged, over one connection, as
aurora-cycler-manager uses it. Every channel runs the same program, started in one batch, so all 2048 change steps
at the same instants: a rest, a C/2 charge, a CV hold at the voltage reached and a C/2 discharge of ``--step-s``
each (time-limited, so the instants are shared), looped, recording every second. Meanwhile the client calls, in
rounds: ``inquire`` and ``getchlstatus`` of all channels, ``inquiredf`` of all, ``download`` of the last 100
points of the next 16 channels, ``downloadStepLayer`` and ``downloadlog`` of one, and the zero-length download of
the test id. At the end it stops all channels and reads the logs and, with a negative start position, the last
records of a few.

Printed: per command, the number of calls and the median, p99 and max reply time as aurora-neware sees it (the
request, the server's work and the client's own parsing), and how far the channels' live values trailed the
clock (the catch-up lag). Exit status 1 if any reply took 1 s or more.
"""

from __future__ import annotations

import argparse
import math
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

SIM_CMD = ["-m", "simulators.neware"]
BUDGET_S = 1.0
CHANNELS_PER_UNIT = 8
CAPACITY_AH = 0.0022575  # the reference cell: 2.2575 mAh


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step_file(step_s: float, loops: int) -> str:
    """Rest, C/2 charge, CV hold at 3.9 V, C/2 discharge, each ``step_s`` long, looped ``loops`` times."""
    ms = int(step_s * 1000)
    current_ma = 0.5 * CAPACITY_AH * 1000
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<root>
  <config type="Step File" version="17" client_version="BTS Client 8.0.0.478(2024.06.24)(R3)">
    <Head_Info><Start_Step Value="1" Hide_Ctrl_Step="0" /><RateType Value="103" />
      <MultCap Value="{CAPACITY_AH * 3.6e6:.1f}" /></Head_Info>
    <Whole_Prt><Protect><Main><Volt><Upper Value="44000" /><Lower Value="25000" /></Volt></Main></Protect>
      <Record><Main><Time Value="1000" /></Main></Record></Whole_Prt>
    <Step_Info Num="6">
      <Step1 Step_ID="1" Step_Type="4"><Limit><Main><Time Value="{ms}" /></Main></Limit></Step1>
      <Step2 Step_ID="2" Step_Type="1"><Limit><Main><Curr Value="{current_ma}" /><Time Value="{ms}" />
        <Stop_Volt Value="43000" /></Main></Limit></Step2>
      <Step3 Step_ID="3" Step_Type="3"><Limit><Main><Curr Value="{current_ma}" /><Volt Value="39000" />
        <Time Value="{ms}" /></Main></Limit></Step3>
      <Step4 Step_ID="4" Step_Type="2"><Limit><Main><Curr Value="{current_ma}" /><Time Value="{ms}" />
        <Stop_Volt Value="30000" /></Main></Limit></Step4>
      <Step5 Step_ID="5" Step_Type="5"><Limit><Other><Start_Step Value="1" /><Cycle_Count Value="{loops}" />
        </Other></Limit></Step5>
      <Step6 Step_ID="6" Step_Type="6" />
    </Step_Info>
  </config>
</root>
"""


class Timings:
    def __init__(self) -> None:
        self.by_command: dict[str, list[float]] = defaultdict(list)

    def call(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        result = fn(*args, **kwargs)
        self.by_command[name].append(time.perf_counter() - began)
        return result

    def report(self) -> bool:
        print(f"{'command':<22}{'calls':>7}{'median s':>11}{'p99 s':>9}{'max s':>9}")
        ok = True
        for name, samples in sorted(self.by_command.items()):
            ordered = sorted(samples)
            p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
            median = ordered[len(ordered) // 2]
            print(f"{name:<22}{len(ordered):>7}{median:>11.3f}{p99:>9.3f}{ordered[-1]:>9.3f}")
            ok &= ordered[-1] < BUDGET_S
        return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=16)
    parser.add_argument("--channels-per-device", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the driven window")
    parser.add_argument("--step-s", type=float, default=15.0, help="length of every step (all change together)")
    args = parser.parse_args()
    try:
        from aurora_neware import NewareAPI
    except ImportError:
        print("aurora-neware is not installed: pip install aurora-neware==0.2.3 (or pip install -e '.[test]')")
        return 2

    units = max(1, args.channels_per_device // CHANNELS_PER_UNIT)
    total = args.devices * units * CHANNELS_PER_UNIT
    port = _free_port()
    sim = subprocess.Popen(
        [sys.executable, *SIM_CMD, "--port", str(port), "--devices", str(args.devices),
         "--subdevices", str(units), "--channels", str(CHANNELS_PER_UNIT), "--speed", "1",
         "--capacity", str(CAPACITY_AH)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    timings = Timings()
    lags: list[float] = []
    try:
        line = sim.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("simulated BTS on"):
            print(f"the simulator did not start: {line!r}")
            return 2
        with tempfile.TemporaryDirectory() as tmp:
            plan = Path(tmp) / "shared-steps.xml"
            loops = max(1, math.ceil(args.seconds / (4 * args.step_s)) + 1)
            plan.write_text(step_file(args.step_s, loops), "utf-8")
            nw = NewareAPI("127.0.0.1", port)
            timings.call("connect+getdevinfo", nw.connect)
            ids = list(nw.channel_map)
            assert len(ids) == total, (len(ids), total)
            print(f"{total} channels on {args.devices} devices; steps of {args.step_s:g} s, all changing together")
            timings.call("inquire (all, idle)", nw.inquire)
            replies = timings.call("start (all)", nw.start, ids, [f"bench-{i}" for i in ids], [str(plan)] * total, tmp)
            assert all(r["start"] == "ok" for r in replies), "a start was refused"
            started = time.perf_counter()
            rounds, cursor = 0, 0
            while time.perf_counter() - started < args.seconds:
                rounds += 1
                live = timings.call("inquire (all)", nw.inquire)
                elapsed = time.perf_counter() - started
                lags.append(max(elapsed - float(v["totaltime"] or 0) for v in live.values()))
                timings.call("getchlstatus (all)", nw.getchlstatus)
                timings.call("inquiredf (all)", nw.inquiredf)
                for _ in range(16):
                    timings.call("download (last 100)", nw.download, ids[cursor % total], 100)
                    cursor += 1
                timings.call("downloadStepLayer", nw.get_steps, ids[rounds % total])
                timings.call("downloadlog", nw.downloadlog, ids[rounds % total])
                timings.call("download (test id)", nw.get_testid, ids[rounds % total])
            timings.call("stop (all)", nw.stop, ids)
            for pipeline in ids[:: max(1, total // 16)]:
                timings.call("downloadlog", nw.downloadlog, pipeline)
                timings.call("download (negative start)", nw.download, pipeline, 1000)
            nw.disconnect()
        print(f"{rounds} rounds of calls over {args.seconds:g} s")
        ok = timings.report()
        lags.sort()
        median_lag, max_lag = lags[len(lags) // 2], lags[-1]
        print(
            f"catch-up lag (clock - inquire totaltime, worst channel per inquire): median {median_lag:.1f} s, "
            f"max {max_lag:.1f} s (live values refresh every 5 s)"
        )
        print(f"budget: every reply under {BUDGET_S:g} s: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    finally:
        sim.send_signal(signal.SIGINT)
        try:
            sim.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sim.kill()


if __name__ == "__main__":
    sys.exit(main())
