"""Budget (DESIGN section 11, issue 18): `station run p3-full-cell-cycling --dry-run` with 1000 cycles, recording
every 30 s, as a whole process as a user runs it, in at most half the wall time of PyBaMM's SPM (Chen2020) solving
the same experiment on the same machine in the same run, under 150 MB peak memory, flat from 10 to 1000 cycles.

Run: python benchmarks/bench_dry_run_p3.py [--cycles 1000] [--repeat 3] [--compare 10 100]

Each measurement is a fresh child process (``station run ... --dry-run --data-dir TMP``, then PyBaMM's script in
``python``), timed from outside (spawn to exit) with its own peak RSS (``os.wait4``), the two alternated so that both
see the same machine; the ratio is the median of the pairs. The station's record count is read from the summary it
prints. PyBaMM is not a dependency: without it the station's figures alone are printed.

The library cell "predeposited-ncm622" loses 1 % of its Li per cycle (anode CE 99 %); the benchmark runs it with an
anode CE of 99.95 % (a cell YAML with ``model: {type: ncm622-li, anode_ce: 0.9995}``), as issue 18 measured.

Where the time goes (py-spy --gil, 200 Hz, one 1000-cycle run each, 683 207 records, on the shared 2-core machine
of 2026-11-30; the station and the simulated BTS share one process and its GIL, so a figure is the time a part holds
the interpreter; parts not changed here move by up to ~0.6 s between runs, as the two threads compete differently):

| part                                                          | GIL s before | GIL s after |
|---------------------------------------------------------------|--------------|-------------|
| start-up and imports (scipy.optimize ~0.45 s, pint ~0.25 s)  | 1.48         | 1.39        |
| protocol load and bind                                        | 0.17         | 0.15        |
| status polls (inquire + inquiredf each round, ~690 rounds)    | 1.13         | 0.35        |
| driver request build + transport (framing)                    | 1.06         | 0.28        |
| XML decode of download pages (5.5 -> 2.5 ms a page)           | 4.90         | 1.50        |
| record assembly (driver conversion, store block, checks)      | 2.02         | 0.34        |
| safety check                                                  | 0.07         | 0.10        |
| store append (SQLite; its commit per round, ~1 s wall, holds no GIL) | 0.16  | 0.12        |
| end-of-run summary (it reloaded all 71 MB of records; now step bounds block by block) | 0.01 (0.34 CPU) | 0.03 |
| simulated BTS: cell model and engine                          | 0.27         | 0.29        |
| simulated BTS: XML encode of download pages (unchanged code)  | 0.64         | 1.32        |
| simulated BTS: API, asyncio, sockets                          | 0.13         | 0.31        |
| other (run policy, clock, events)                             | 0.43         | 0.36        |
| **whole process: wall / peak RSS** (`/usr/bin/time`)          | **15.5 s / 271 MB** | **9.6 s / 141 MB** |

PyBaMM 26.10 SPM (Chen2020) on the same experiment, same session: 7.2-8.1 s, 840-860 MB (827 458 points). What is
left of ours is mostly outside the driver: the simulator's per-record string formatting (``_DATA_LINE % row``,
~2 ms a page); scipy.optimize imported at start-up by simulators/cells/blocking.py, a cell model P3 never uses;
and the dry run's poll interval in station/session.py (one 1000-record page per round: ~690 rounds, each with two
status exchanges, a near-empty second download and a committed transaction; 10 000 records per round measured
8.2 s instead of 9.6 s).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: PyBaMM's SPM with Chen2020 parameters on P3's experiment (rest 6 h, 2 formation cycles at C/10 between 3.0 and
#: 4.3 V, then N cycles charging at C/5 and discharging at C/2), recorded every 30 s; prints the point count
PYBAMM = """
import sys
import pybamm
cycles = int(sys.argv[1])
steps = ["Rest for 6 hours"] + ["Charge at C/10 until 4.3 V", "Discharge at C/10 until 3.0 V"] * 2
steps += ["Charge at C/5 until 4.3 V", "Discharge at C/2 until 3.0 V"] * cycles
experiment = pybamm.Experiment(steps, period="30 seconds")
sim = pybamm.Simulation(pybamm.lithium_ion.SPM(), experiment=experiment,
                        parameter_values=pybamm.ParameterValues("Chen2020"))
solution = sim.solve()
print(len(solution["Time [s]"].entries))
"""


def timed(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds from spawn to exit, peak RSS in MB, and stdout of one child process."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if child.returncode not in (0,):
        raise SystemExit(f"{' '.join(command[:4])} ... exited with {child.returncode}:\n{text[-2000:]}")
    return wall, usage.ru_maxrss / 1024, text


def cell_file(directory: Path, anode_ce: float) -> Path:
    """The library cell with its model's anode CE set (what `station run --cell FILE` reads)."""
    source = (ROOT / "protocols" / "library" / "cells" / "predeposited-ncm622.yaml").read_text()
    text = re.sub(r"(?m)^model: (\S+)$", rf"model: {{type: \1, anode_ce: {anode_ce}}}", source)
    text = re.sub(r"(?m)^name: (\S+)$", rf"name: \1-ce{anode_ce}", text)
    path = directory / "cell.yaml"
    path.write_text(text)
    return path


def station_run(cycles: int, cell: Path, directory: Path) -> tuple[float, float, int]:
    """One `station run --dry-run` as a user types it; (wall s, peak RSS MB, records)."""
    data = tempfile.mkdtemp(dir=directory)
    station = str(Path(sys.executable).with_name("station"))
    command = [station, "run", "p3-full-cell-cycling", "--cell", str(cell), "--dry-run", "--set",
               f"cycles={cycles}", "--data-dir", data]
    wall, rss, text = timed(command, ROOT)
    found = re.search(r": (\d+) records over", text)
    if found is None or "finished" not in text:
        raise SystemExit(f"the dry run did not finish:\n{text[-2000:]}")
    return wall, rss, int(found.group(1))


def pybamm_run(cycles: int) -> tuple[float, float, int]:
    wall, rss, text = timed([sys.executable, "-c", PYBAMM, str(cycles)], ROOT)
    return wall, rss, int(text.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each (alternated)")
    parser.add_argument("--compare", type=int, nargs="*", default=[10, 100], help="smaller runs, for flatness")
    parser.add_argument("--anode-ce", type=float, default=0.9995, help="the simulated cell's anode CE")
    parser.add_argument("--no-pybamm", action="store_true", help="skip PyBaMM even if it is installed")
    args = parser.parse_args()
    with_pybamm = find_spec("pybamm") is not None and not args.no_pybamm
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        cell = cell_file(directory, args.anode_ce)
        print(f"{'cycles':>7} {'records':>9} {'wall s':>8} {'records/s':>10} {'peak RSS MB':>12}")
        small = []
        for n in args.compare:
            wall, rss, records = station_run(n, cell, directory)
            small.append(rss)
            print(f"{n:7d} {records:9d} {wall:8.2f} {records / wall:10.0f} {rss:12.0f}")
        ours, theirs = [], []
        for _ in range(args.repeat):
            ours.append(station_run(args.cycles, cell, directory))
            wall, rss, records = ours[-1]
            print(f"{args.cycles:7d} {records:9d} {wall:8.2f} {records / wall:10.0f} {rss:12.0f}")
            if with_pybamm:
                theirs.append(pybamm_run(args.cycles))
                print(f"{'PyBaMM':>7} {theirs[-1][2]:9d} {theirs[-1][0]:8.2f} {theirs[-1][2] / theirs[-1][0]:10.0f} "
                      f"{theirs[-1][1]:12.0f}  (SPM, Chen2020, points)")
    wall = statistics.median(r[0] for r in ours)
    rss = max(r[1] for r in ours)
    print(f"station: median {wall:.2f} s, peak RSS {rss:.0f} MB"
          + (f"; grows by {rss - small[0]:.0f} MB from {args.compare[0]} to {args.cycles} cycles" if small else ""))
    memory_ok = rss < 150 and (not small or rss - small[0] < 0.2 * small[0])
    if not with_pybamm:
        print("PyBaMM is not installed (pip install pybamm into the venv to compare; it is no dependency)")
        print(f"budget: < 150 MB peak, flat in cycles: {'PASS' if memory_ok else 'FAIL'}; time ratio not measured")
        return
    ratios = [o[0] / t[0] for o, t in zip(ours, theirs, strict=True)]
    pybamm_wall = statistics.median(t[0] for t in theirs)
    print(f"PyBaMM SPM: median {pybamm_wall:.2f} s, peak RSS {max(t[1] for t in theirs):.0f} MB")
    ratio = statistics.median(ratios)
    print(f"station / PyBaMM wall time: median {ratio:.2f} (pairs: {', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"budget: <= 0.5 x PyBaMM and < 150 MB peak, flat in cycles: "
          f"{'PASS' if ratio <= 0.5 and memory_ok else 'FAIL'} (time {'ok' if ratio <= 0.5 else 'over'}, "
          f"memory {'ok' if memory_ok else 'over'})")


if __name__ == "__main__":
    main()
