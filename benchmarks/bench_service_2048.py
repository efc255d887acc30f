"""Budgets (DESIGN section 11, issue 14): one `station serve` process supervising 2048 simulated channels, each
recording every second, at a 1 s poll, uses under one core and loses or duplicates no record; killed with SIGKILL
and started again, it re-attaches every run and catches up within 30 s.

Run: python benchmarks/bench_service_2048.py [--channels 2048] [--sims 4] [--seconds 60] [--down 10]

What runs where, as in a lab: the simulated BTS Clients run in ``--sims`` processes of their own (``station sim
neware``, one port each, so the simulators are not what limits the station), each its own instrument in
station.yaml. This process starts one run per channel in-process (``Station.launch``, exactly what `station run`
does before it starts watching) and lets go of them, as a detached terminal would; then it starts `station serve`
as a user does, a subprocess, which adopts every active run in the store. The service's CPU is read from the
kernel for that process alone (user + system time over the window, divided by the window's wall time).

Records lost or duplicated are counted against the instruments themselves: this process asks every simulated BTS
for its record count of each channel (``inquiredf``, its own connection), gives the service three polls to store
them, and then every run's stored records must be 1..N without a gap or a repeat with N at least that count.
The same check runs again after the service was SIGKILLed, left dead for ``--down`` seconds (the BTS keeps
recording) and started again; "re-attached and caught up" is the moment every run has a new ``attached`` event
and has stored at least the records its instrument held when the new service started.

At the end every run is stopped through the store (a stop request, which the service carries out and the
instrument confirms), then the service gets SIGTERM and the simulators Ctrl-C. Exit status 1 if a budget fails.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.neware.address import ChannelAddress  # noqa: E402
from drivers.neware.channel import open_client  # noqa: E402
from drivers.neware.client import BtsClient  # noqa: E402
from protocols.cells import load_cell  # noqa: E402
from protocols.loader import load_protocol_text  # noqa: E402
from station.config import load_config  # noqa: E402
from station.session import Station  # noqa: E402
from station.store import RECORD_DTYPE, Store  # noqa: E402

CHANNELS_PER_DEVICE = 64
CPU_BUDGET = 1.0  # of one core
CATCH_UP_BUDGET_S = 30.0
#: polls the service is given to store what the instruments counted, before records count as lost
SETTLE_POLLS = 3

PROTOCOL = """
protocol: service-load
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


def _cpu(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of process ``pid`` (its own, not its children's), from /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid``; None where there is no /proc."""
    cpu = _cpu(pid)
    return None if cpu is None else sum(cpu)


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


class Sim:
    """One simulated BTS Client process and this benchmark's own connection to it (for record counts)."""

    def __init__(self, name: str, channels: list[str]):
        self.name = name
        self.channels = channels
        self.port = _free_port()
        devices = math.ceil(len(channels) / CHANNELS_PER_DEVICE)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "station", "sim", "neware", "--port", str(self.port), "--devices", str(devices),
             "--channels", str(CHANNELS_PER_DEVICE), "--cell", "predeposited-ncm622", "--speed", "1"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT)  # fmt: skip
        assert self.proc.stderr is not None
        self.proc.stderr.readline()  # the banner: it is about to serve
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # never let its pipe fill
        self.client: BtsClient | None = None

    def counts(self) -> dict[str, int]:
        """The record count of every channel's current test, as the instrument reports it (one request)."""
        if self.client is None:
            self.client = open_client("127.0.0.1", self.port, timeout_s=30.0)
        rows = self.client.inquiredf_tests([(ChannelAddress.parse(c), 0) for c in self.channels])
        return {f"{self.name}/{c}": row.count for c, row in zip(self.channels, rows, strict=True)}

    def close(self) -> None:
        if self.client is not None:
            self.client.transport.close()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Service:
    """`station serve` as a user starts it; its stderr is read all along so that its pipe never blocks it."""

    def __init__(self, config: Path):
        help_text = subprocess.run([sys.executable, "-m", "station", "serve", "--help"], capture_output=True,
                                   text=True, cwd=ROOT).stdout
        api = ["--port", "0"] if "--port" in help_text else []  # the HTTP API, where this version serves one
        self.proc = subprocess.Popen([sys.executable, "-m", "station", "serve", "--config", str(config), *api],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT)
        self.lines: list[str] = []
        self.serving = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.serving.wait(120) or self.proc.poll() is not None:
            raise SystemExit("the service did not start:\n" + "".join(self.lines[-20:]))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("serving "):
                self.serving.set()

    def cpu_s(self) -> float | None:
        return _cpu_s(self.proc.pid)


def counts(sims: list[Sim]) -> dict[str, int]:
    out: dict[str, int] = {}
    for sim in sims:
        out.update(sim.counts())
    return out


def caught_up(db: Path, channel_of: dict[str, str], wanted: dict[str, int], since: float) -> tuple[int, int]:
    """(runs attached since ``since``, runs whose stored last record is at least the instrument's count)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        last = dict(con.execute("SELECT id, last_seq FROM runs").fetchall())
        attached = {r for (r,) in con.execute(
            "SELECT DISTINCT run_id FROM events WHERE kind='operator' AND message LIKE 'attached;%' AND at >= ?",
            (since,))}
    finally:
        con.close()
    stored = sum(last.get(rid, 0) >= wanted[channel] for rid, channel in channel_of.items())
    return len(attached & set(channel_of)), stored


def wait_caught_up(db: Path, channel_of: dict[str, str], wanted: dict[str, int], since: float,
                   limit_s: float) -> float | None:
    """Seconds from ``since`` until every run is attached and caught up; None if not within ``limit_s``."""
    n = len(channel_of)
    while time.time() - since < limit_s:
        attached, stored = caught_up(db, channel_of, wanted, since)
        if attached == n and stored == n:
            return time.time() - since
        time.sleep(0.2)
    return None


def audit(db: Path, channel_of: dict[str, str], instrument: dict[str, int]) -> tuple[int, int, int]:
    """(records stored, lost, duplicated): every run's records must be 1..N, each once, N >= the instrument's."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    seqs: dict[str, list[np.ndarray]] = defaultdict(list)
    try:
        for run_id, data in con.execute("SELECT run_id, data FROM record_blocks ORDER BY run_id, first_seq"):
            seqs[run_id].append(np.frombuffer(data, dtype=RECORD_DTYPE)["seq"])
    finally:
        con.close()
    return lost_and_duplicated(seqs, channel_of, instrument)


def lost_and_duplicated(seqs: dict[str, list[np.ndarray]], channel_of: dict[str, str],
                        instrument: dict[str, int]) -> tuple[int, int, int]:
    """(records stored, lost, duplicated) of every run's stored sequence numbers: each run's must be 1..N, each
    once, with N at least its instrument's count."""
    stored = lost = duplicated = 0
    for run_id, channel in channel_of.items():
        seq = np.concatenate(seqs[run_id]) if seqs.get(run_id) else np.empty(0, dtype=np.int64)
        unique = np.unique(seq)
        stored += len(seq)
        duplicated += len(seq) - len(unique)
        top = int(unique[-1]) if len(unique) else 0
        lost += max(0, instrument[channel] - top) + (top - len(unique))  # missing at the end, and gaps in 1..top
    return stored, lost, duplicated


def report(results: list[tuple[str, bool, str]]) -> int:
    """Print each budget's verdict; the exit status: 1 if any failed."""
    ok = True
    for name, passed, figure in results:
        print(f"budget: {name}: {figure}: {'PASS' if passed else 'FAIL'}")
        ok &= passed
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=2048)
    parser.add_argument("--sims", type=int, default=4, help="simulator processes (one BTS Client port each)")
    parser.add_argument("--seconds", type=float, default=60.0, help="steady-state window for the CPU figure")
    parser.add_argument("--down", type=float, default=10.0, help="seconds the killed service stays dead")
    parser.add_argument("--record-every", type=float, default=1.0, help="record interval of every channel, s")
    parser.add_argument("--poll", type=float, default=1.0, help="the service's poll interval, s")
    args = parser.parse_args()

    per_sim = math.ceil(args.channels / args.sims)
    print(f"load average at start: {_load()} (2 cores shared; figures are noisy)", flush=True)
    sims: list[Sim] = []
    service: Service | None = None
    results: list[tuple[str, bool, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            remaining = args.channels
            for k in range(args.sims):
                n = min(per_sim, remaining)
                remaining -= n
                ids = [f"{21 + i // CHANNELS_PER_DEVICE}-1-{1 + i % CHANNELS_PER_DEVICE}" for i in range(n)]
                sims.append(Sim(f"bts{k + 1}", ids))
            lines = [f"data_dir: {tmp}/data", f"poll_interval: {args.poll} s", "instruments:"]
            for sim in sims:
                lines += [f"  - name: {sim.name}", "    kind: neware", f"    address: 127.0.0.1:{sim.port}",
                          "    timeout: 10 s", "    channels:"]
                lines += [f"      - {{id: {c}, voltage: [0 V, 5 V], current: 10 mA}}" for c in sim.channels]
            config_file = Path(tmp) / "station.yaml"
            config_file.write_text("\n".join(lines) + "\n")
            db = Path(tmp) / "data" / "station.sqlite"

            # -- runs started before any service, then let go of (a detached `station run`)
            config, _ = load_config(str(config_file))
            station = Station.open(config)
            channel_of: dict[str, str] = {}
            started = time.perf_counter()
            try:
                cell = load_cell("predeposited-ncm622")
                loaded = load_protocol_text(PROTOCOL.format(every=args.record_every), "service-load.yaml")
                for sim in sims:
                    for c in sim.channels:
                        channel_of[station.launch(loaded, cell, f"{sim.name}/{c}")] = f"{sim.name}/{c}"
            finally:
                station.close()
            launch_s = time.perf_counter() - started
            print(f"launched {len(channel_of)} runs on {args.sims} simulator process(es) in {launch_s:.1f} s",
                  flush=True)

            # -- first start: adopts every run
            wanted = counts(sims)
            since = time.time()
            service = Service(config_file)
            first_s = wait_caught_up(db, channel_of, wanted, since, 300.0)
            print(f"first start: every run adopted and caught up in "
                  f"{'>300' if first_s is None else f'{first_s:.1f}'} s", flush=True)

            # -- steady state: CPU of the service over the window
            time.sleep(2 * args.poll)
            split0 = _cpu(service.proc.pid)
            cpu0, t0, blocks0 = service.cpu_s(), time.perf_counter(), block_rows(db)
            sim_cpu0 = [_cpu_s(s.proc.pid) for s in sims]
            time.sleep(args.seconds)
            cpu1, t1, blocks1 = service.cpu_s(), time.perf_counter(), block_rows(db)
            split1 = _cpu(service.proc.pid)
            sim_cpu1 = [_cpu_s(s.proc.pid) for s in sims]
            load_window = _load()
            window = t1 - t0
            share = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / window
            sims_share = None if None in sim_cpu0 + sim_cpu1 else \
                sum(b - a for a, b in zip(sim_cpu0, sim_cpu1, strict=True)) / window  # type: ignore[operator]
            instrument = counts(sims)
            trail = [instrument[c] - n for c, n in caught_up_counts(db, channel_of).items()]
            time.sleep(SETTLE_POLLS * args.poll)
            stored, lost, duplicated = audit(db, channel_of, instrument)
            cpu_text = "n/a (no /proc)" if share is None else f"{100 * share:.1f} % of one core"
            if split0 is not None and split1 is not None:
                cpu_text += (f" (user {100 * (split1[0] - split0[0]) / window:.1f} %, system "
                             f"{100 * (split1[1] - split0[1]) / window:.1f} %)")
            rounds = (blocks1 - blocks0) / len(channel_of)  # each round stores one block per run (1 s records)
            print(f"steady window {window:.1f} s: service CPU {cpu_text} (pid {service.proc.pid}); simulators "
                  f"{'n/a' if sims_share is None else f'{100 * sims_share:.0f} %'} together; load {load_window}")
            print(f"rounds: {rounds:.1f} in the window, {window / rounds if rounds else math.inf:.2f} s apart on "
                  f"average (counted as stored record blocks / runs; the poll asks for {args.poll:g} s)")
            print(f"records stored {stored}; lost {lost}, duplicated {duplicated} (against the instruments' counts); "
                  f"at one instant the store trailed the instruments by {max(trail)} records at most, "
                  f"{sum(trail) / len(trail):.1f} on average (a 1 s poll of 1 s records keeps it near 1-2)", flush=True)
            results.append(("service CPU under one core", share is not None and share < CPU_BUDGET, cpu_text))
            results.append(("no record lost or duplicated (steady)", lost == 0 and duplicated == 0,
                            f"{lost} lost, {duplicated} duplicated of {stored}"))

            # -- SIGKILL mid-run, dead for a while, started again
            service.proc.send_signal(signal.SIGKILL)
            service.proc.wait(timeout=30)
            time.sleep(args.down)
            wanted = counts(sims)
            behind = sum(wanted.values()) - sum(caught_up_counts(db, channel_of).values())
            since = time.time()
            service = Service(config_file)
            restart_s = wait_caught_up(db, channel_of, wanted, since, 120.0)
            load_restart = _load()
            restart_text = ">120" if restart_s is None else f"{restart_s:.1f}"
            print(f"killed (SIGKILL), dead {args.down:g} s ({behind} records behind), restarted: every run "
                  f"re-attached and caught up in {restart_text} s; load {load_restart}", flush=True)
            results.append(("restart: every run re-attached and caught up within 30 s",
                            restart_s is not None and restart_s <= CATCH_UP_BUDGET_S, f"{restart_text} s"))
            time.sleep(2 * args.poll)
            instrument = counts(sims)
            time.sleep(SETTLE_POLLS * args.poll)
            stored, lost, duplicated = audit(db, channel_of, instrument)
            print(f"after the restart: records stored {stored}; lost {lost}, duplicated {duplicated}", flush=True)
            results.append(("no record lost or duplicated (after SIGKILL and restart)", lost == 0 and duplicated == 0,
                            f"{lost} lost, {duplicated} duplicated of {stored}"))

            # -- every channel stopped through the store: the service carries the requests out
            store = Store(Path(tmp) / "data")
            try:
                for run_id in channel_of:
                    store.request_stop(run_id, "benchmark over", time.time())
                deadline = time.time() + 180
                while time.time() < deadline and store.runs(active_only=True):
                    time.sleep(1)
                left = len(store.runs(active_only=True))
            finally:
                store.close()
            print(f"stopped: {len(channel_of) - left} runs confirmed stopped by their instruments, {left} still "
                  "active", flush=True)
        finally:
            if service is not None and service.proc.poll() is None:
                service.proc.send_signal(signal.SIGTERM)
                try:
                    service.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    service.proc.kill()
            for sim in sims:
                sim.close()
    print(f"channels {args.channels} on {args.sims} simulator process(es), record every {args.record_every:g} s, "
          f"poll {args.poll:g} s")
    return report(results)


def block_rows(db: Path) -> int:
    """Record blocks stored so far: a round stores one per run that had new records."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM record_blocks").fetchone()[0]
    finally:
        con.close()


def caught_up_counts(db: Path, channel_of: dict[str, str]) -> dict[str, int]:
    """Every run's stored last record, by channel."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        last = dict(con.execute("SELECT id, last_seq FROM runs").fetchall())
    finally:
        con.close()
    return {channel: last.get(run_id, 0) for run_id, channel in channel_of.items()}


if __name__ == "__main__":
    sys.exit(main())
