"""Budgets (issue 17): two station services of 1024 simulated channels each, one PostgreSQL: no record lost or
duplicated in the lab's database, each service under one core; a 30 s outage of the database under that load is
forwarded within 30 s of its return.

Run: python benchmarks/bench_lab_2x1024.py [--channels 1024] [--seconds 30] [--outage 30]
(needs the ``pgserver`` package, which the ``test`` extra installs: the PostgreSQL server runs from its wheel)

As in a lab: each station has its own simulated BTS Client processes, its own data directory and station.yaml
(``station:`` and ``database:``), and its own `station serve`; both forward to one PostgreSQL on this machine.
Runs are started in-process per station (``Station.launch``, what `station run` does) and let go of; the services
adopt them. The CPU of each service is read from the kernel over a steady window.

"Lost or duplicated" is counted in the lab's database against the instruments: every run's records there must
be 1..N, each once, with N at least the record count the instrument reported a few polls earlier. The outage:
the database server is stopped (fast: connections cut) for ``--outage`` seconds while every channel keeps
recording; "forwarded" is the moment every run's last record in the lab's database is at least what its
instrument had counted when the database came back.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_service_2048 import (  # noqa: E402  the same set-up and the same count
    CHANNELS_PER_DEVICE,
    PROTOCOL,
    Service,
    Sim,
    _load,
    counts,
    lost_and_duplicated,
    report,
)

from protocols.cells import load_cell  # noqa: E402
from protocols.loader import load_protocol_text  # noqa: E402
from station.config import load_config  # noqa: E402
from station.session import Station  # noqa: E402
from station.store import RECORD_DTYPE, Store, StoreError  # noqa: E402

CPU_BUDGET = 1.0
FORWARD_BUDGET_S = 30.0
SETTLE_S = 4.0


def lab_counts(url: str, files: Path) -> dict[str, int]:
    """Every run's last record in the lab's database."""
    store = Store(files, url)
    try:
        return {r.id: r.last_seq for r in store.runs(light=True)}
    finally:
        store.close()


def audit(url: str, files: Path, channel_of: dict[str, str], instrument: dict[str, int]) -> tuple[int, int, int]:
    """(records in the lab's database, lost, duplicated) against the instruments' counts."""
    store = Store(files, url)
    seqs: dict[str, list[np.ndarray]] = defaultdict(list)
    try:
        rows = store.db.execute("SELECT run_id, data FROM record_blocks ORDER BY run_id, first_seq").fetchall()
        for run_id, data in rows:
            seqs[run_id].append(np.frombuffer(bytes(data), dtype=RECORD_DTYPE)["seq"])
    finally:
        store.close()
    return lost_and_duplicated(seqs, channel_of, instrument)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=1024, help="channels per station")
    parser.add_argument("--sims", type=int, default=2, help="simulator processes per station")
    parser.add_argument("--seconds", type=float, default=30.0, help="steady window for the CPU figures")
    parser.add_argument("--outage", type=float, default=30.0, help="seconds the database is down")
    args = parser.parse_args()
    try:
        from tests.postgres import PostgresForTests
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None

    print(f"load average at start: {_load()} (2 cores shared by 2 services, {2 * args.sims} simulators and "
          f"PostgreSQL; figures are noisy)", flush=True)
    database = PostgresForTests()
    url = database.fresh()
    sims: list[Sim] = []
    services: list[Service] = []
    results: list[tuple[str, bool, str]] = []
    channel_of: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp) / "reader"
        try:
            configs = []
            for station in ("lab-a", "lab-b"):
                mine = []
                per_sim = math.ceil(args.channels / args.sims)
                for k in range(args.sims):
                    ids = [f"{21 + i // CHANNELS_PER_DEVICE}-1-{1 + i % CHANNELS_PER_DEVICE}" for i in range(per_sim)]
                    mine.append(Sim(f"{station}-bts{k + 1}", ids))
                sims += mine
                lines = [f"station: {station}", f"database: {url}", f"data_dir: {tmp}/{station}",
                         "poll_interval: 1 s", "instruments:"]
                for sim in mine:
                    lines += [f"  - name: {sim.name}", "    kind: neware", f"    address: 127.0.0.1:{sim.port}",
                              "    timeout: 10 s", "    channels:"]
                    lines += [f"      - {{id: {c}, voltage: [0 V, 5 V], current: 10 mA}}" for c in sim.channels]
                path = Path(tmp) / f"{station}.yaml"
                path.write_text("\n".join(lines) + "\n")
                configs.append((path, mine))

            started = time.perf_counter()
            cell = load_cell("predeposited-ncm622")
            loaded = load_protocol_text(PROTOCOL.format(every=1), "service-load.yaml")
            for path, mine in configs:
                station = Station.open(load_config(str(path))[0])
                try:
                    for sim in mine:
                        for c in sim.channels:
                            channel_of[station.launch(loaded, cell, f"{sim.name}/{c}")] = f"{sim.name}/{c}"
                finally:
                    station.close()
            print(f"launched {len(channel_of)} runs on 2 stations in {time.perf_counter() - started:.1f} s",
                  flush=True)
            services = [Service(path) for path, _ in configs]
            time.sleep(SETTLE_S + 2)

            cpu0 = [s.cpu_s() for s in services]
            t0 = time.perf_counter()
            time.sleep(args.seconds)
            cpu1 = [s.cpu_s() for s in services]
            window = time.perf_counter() - t0
            shares = [None if a is None or b is None else (b - a) / window for a, b in zip(cpu0, cpu1, strict=True)]
            load_window = _load()
            instrument = counts(sims)
            time.sleep(SETTLE_S)
            stored, lost, duplicated = audit(url, files, channel_of, instrument)
            text = ", ".join("n/a" if s is None else f"{100 * s:.1f} %" for s in shares)
            print(f"steady window {window:.1f} s: services {text} of one core each; load {load_window}")
            print(f"lab database: {stored} records; lost {lost}, duplicated {duplicated}", flush=True)
            results.append(("each service under one core", all(s is not None and s < CPU_BUDGET for s in shares),
                            text))
            results.append(("no record lost or duplicated in the lab's database (steady)",
                            lost == 0 and duplicated == 0, f"{lost} lost, {duplicated} duplicated of {stored}"))

            database.stop()
            down_at = time.perf_counter()
            time.sleep(args.outage)
            wanted = counts(sims)
            database.start()
            back = time.perf_counter()
            print(f"database down for {back - down_at:.1f} s; {sum(wanted.values())} records on the instruments "
                  f"when it came back", flush=True)
            forwarded_s = None
            while time.perf_counter() - back < 120:
                try:
                    there = lab_counts(url, files)
                except StoreError:  # the server is still starting
                    there = {}
                if all(there.get(rid, 0) >= wanted[ch] for rid, ch in channel_of.items()):
                    forwarded_s = time.perf_counter() - back
                    break
                time.sleep(0.2)
            text = ">120" if forwarded_s is None else f"{forwarded_s:.1f}"
            print(f"the outage's backlog was in the lab's database {text} s after it came back; load {_load()}",
                  flush=True)
            results.append(("a 30 s outage forwarded within 30 s of the return",
                            forwarded_s is not None and forwarded_s <= FORWARD_BUDGET_S, f"{text} s"))
            instrument = counts(sims)
            time.sleep(SETTLE_S)
            stored, lost, duplicated = audit(url, files, channel_of, instrument)
            print(f"after the outage: {stored} records; lost {lost}, duplicated {duplicated}", flush=True)
            results.append(("no record lost or duplicated (after the outage)", lost == 0 and duplicated == 0,
                            f"{lost} lost, {duplicated} duplicated of {stored}"))
            cpu_after = [s.cpu_s() for s in services]
            print("service CPU over the whole benchmark: " + ", ".join(
                "n/a" if c is None else f"{c:.0f} s" for c in cpu_after))

            for path, _ in configs:
                store = Store(load_config(str(path))[0].data_dir, local=True)
                try:
                    for row in store.runs(active_only=True):
                        store.request_stop(row.id, "benchmark over", time.time())
                finally:
                    store.close()
            time.sleep(10)
        finally:
            for service in services:
                if service.proc.poll() is None:
                    service.proc.terminate()
                    service.proc.wait(timeout=60)
            for sim in sims:
                sim.close()
            database.close()
    return report(results)


if __name__ == "__main__":
    sys.exit(main())

