"""Budget (DESIGN section 8): a dry run of P3 with 1000 cycles, recording every 30 s, through the Neware driver,
the simulated BTS on loopback and the store, in under 10 s wall and 300 MB peak memory; memory must not grow
with the number of cycles.

Run: python benchmarks/bench_dry_run_p3.py [--cycles 1000] [--compare 10 100]

Each cycle count runs in a fresh interpreter so that its peak RSS (the whole process: interpreter, numpy,
simulator thread and store) is its own; flatness is read off by comparing the rows. Wall time is measured
without tracemalloc, whose bookkeeping would slow numpy-heavy code several-fold.

The library cell "predeposited-ncm622" loses 1 % of its Li per cycle (anode CE 99 %), so its capacity and its
record count fall once the Li reservoir is gone; the design's load (about 780 000 records) is a cell that
keeps its capacity. The benchmark therefore runs the same cell with an anode CE of 99.95 % (``--anode-ce``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def dry_run(cycles: int, anode_ce: float) -> dict[str, float | int | str]:
    from protocols.cells import load_cell
    from protocols.loader import load_protocol
    from station.config import load_config
    from station.session import Station

    config, _ = load_config(None)
    with tempfile.TemporaryDirectory() as data_dir:
        started = time.perf_counter()
        station = Station.open(config, dry_run=True, data_dir=data_dir)
        try:
            loaded = load_protocol("p3-full-cell-cycling", {"cycles": str(cycles)})
            library_cell = load_cell("predeposited-ncm622")
            cell = library_cell.model_copy(update={"model_params": {**library_cell.model_params, "anode_ce": anode_ce}})
            run_id = station.launch(loaded, cell, "sim-neware/21-1-1")
            station.manager.supervise([run_id], station.poll_seconds(run_id))
            wall = time.perf_counter() - started
            records = station.store.record_count(run_id)
            state = station.store.run(run_id).state
        finally:
            station.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"cycles": cycles, "records": records, "wall": wall, "rss": rss, "state": state}


def measure(cycles: int, anode_ce: float) -> dict[str, float | int | str]:
    out = subprocess.run([sys.executable, __file__, "--one", str(cycles), "--anode-ce", str(anode_ce)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--compare", type=int, nargs="*", default=[10, 100], help="smaller runs to compare with")
    parser.add_argument("--anode-ce", type=float, default=0.9995, help="the simulated cell's anode CE")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(dry_run(args.one, args.anode_ce)))
        return
    print(f"{'cycles':>7} {'records':>9} {'wall s':>8} {'records/s':>10} {'peak RSS MB':>12}  state")
    rows = [measure(n, args.anode_ce) for n in [*args.compare, args.cycles]]
    for r in rows:
        print(f"{r['cycles']:7d} {r['records']:9d} {r['wall']:8.2f} {r['records'] / r['wall']:10.0f} "
              f"{r['rss']:12.0f}  {r['state']}")
    big = rows[-1]
    ok = big["wall"] < 10 and big["rss"] < 300 and big["state"] == "finished"
    growth = big["rss"] - rows[0]["rss"]
    print(f"peak RSS grows by {growth:.0f} MB from {rows[0]['cycles']} to {big['cycles']} cycles")
    print(f"budget: < 10 s wall and < 300 MB peak for 1000 cycles, flat in cycles: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
