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

Each row prints wall and CPU (user + system) seconds: on a machine shared with other work the wall time of both
programs swings by seconds from run to run, their CPU time much less; the budget is the wall-time ratio.

Where the time goes (py-spy --gil, 200 Hz, one 1000-cycle run each, 683 207 records; medians of three runs each,
alternated, on the shared 2-core machine of 2026-11-30 ~11:00 while other work ran; the station and the simulated BTS
share one process and its GIL, so a figure is the time a part holds the interpreter, and a part whose numpy calls
release it is undercounted). "Before" is this tree with the simulated BTS's per-record page formatting and one
1000-record page per dry-run poll; "after" is column-wise page text (simulators/neware/pagetext.py) and ~4950
records per poll (station/session.py). The tree already held another change in progress (the driver's page decode):

| part                                                                   | GIL s before | GIL s after  |
|------------------------------------------------------------------------|--------------|--------------|
| start-up and imports (scipy, pint, pydantic models, pyarrow + pandas)  | 1.41         | 1.61         |
| protocol load and bind (pint's unit registry ~0.15 s)                  | 0.18         | 0.24         |
| status polls (inquire + inquiredf each round: ~690 rounds -> ~140)     | 0.35         | 0.16         |
| driver request build + transport (framing)                             | 0.14         | 0.14         |
| XML decode of download pages                                           | 0.58         | 0.28         |
| record assembly (driver conversion, store block, record numbers)       | 0.16         | 0.17         |
| safety check                                                           | 0.04         | 0.03         |
| store append (a commit per round)                                      | 0.19         | 0.05         |
| end-of-run summary                                                     | 0.04         | 0.01         |
| simulated BTS: cell model and engine (the same work, see below)        | 0.31         | 0.65         |
| simulated BTS: XML encode of download pages (2.3 -> 1.2 ms a page)     | 1.26         | 0.43         |
| simulated BTS: API, asyncio, sockets                                   | 0.33         | 0.11         |
| other (run policy, clock, events)                                      | 0.42         | 0.24         |
| **sum of the samples**                                                 | **5.41**     | **4.12**     |

The cell model's row moved with the sampling only: timed in-process, ChannelEngine.advance takes 0.88 s in both
(2005 model steps either way).

Whole process, 1000 cycles (medians of three alternated runs; PyBaMM 26.10 SPM, Chen2020, 827 458 points, in the
same runs: 6.6-7.1 s wall, 6.8-7.2 s CPU, 840 MB):

| tree                                                  | before: wall, CPU, peak RSS | after: wall, CPU, peak RSS |
|-------------------------------------------------------|-----------------------------|----------------------------|
| the commit before (HEAD), ``python -m station`` from a copy | 8.97 s, 8.2 s, 142 MB | 6.83 s, 6.2 s, 137 MB      |
| the shared tree at 11:17, this benchmark              | 7.14 s, 7.1 s, 182 MB       | 5.35 s, 5.4 s, 185 MB      |
| station / PyBaMM wall time (this benchmark)           | 1.03                        | 0.80                       |

From 10 to 1000 cycles peak RSS grows by 8 MB after (17 MB before): five pages a round hold a little more, and the
simulated BTS's record chunks in memory are 1 MB instead of 4. The shared tree's ~45 MB more comes from the driver
change in progress there (its page decode imports pyarrow, whose memory pool keeps what it freed; with
``ARROW_DEFAULT_MEMORY_POOL=system`` the peak was 176 MB instead of 191).

What is left is mostly start-up: scipy (~0.4 s and ~50 MB: simulators/cells/physics.py's PchipInterpolator,
impedance.py's special functions, and brentq in terminations.py, engine.py, half_cell.py and host_diffusion.py, which
P3 calls at every step end; blocking.py's own import is now lazy but saves nothing while those remain), pint (0.1-0.2 s
import, ~0.15 s to build its registry, which ``UnitRegistry(cache_folder=...)`` brings to ~0.02 s from the second
run), pydantic models, and the driver's pyarrow import. Then the cell model (~0.6 s) and the page encoding (~0.4 s
holding the GIL, ~0.8 s of CPU with numpy's share), which are the simulated BTS's own work.
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
from typing import NamedTuple

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


class Measured(NamedTuple):
    wall: float  # s from spawn to exit: what the budget is about
    cpu: float  # s of user + system time: what a machine shared with other work disturbs least
    rss: float  # peak MB
    count: int  # records (station) or points (PyBaMM)


def timed(command: list[str], cwd: Path) -> tuple[float, float, float, str]:
    """Wall seconds from spawn to exit, CPU seconds, peak RSS in MB, and stdout of one child process."""
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
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def cell_file(directory: Path, anode_ce: float) -> Path:
    """The library cell with its model's anode CE set (what `station run --cell FILE` reads)."""
    source = (ROOT / "protocols" / "library" / "cells" / "predeposited-ncm622.yaml").read_text()
    text = re.sub(r"(?m)^model: (\S+)$", rf"model: {{type: \1, anode_ce: {anode_ce}}}", source)
    text = re.sub(r"(?m)^name: (\S+)$", rf"name: \1-ce{anode_ce}", text)
    path = directory / "cell.yaml"
    path.write_text(text)
    return path


def compile_bytecode() -> None:
    """The project's modules as an installed program has them: compiled.

    ``pip install .`` compiles a package's bytecode at install time (and PyBaMM's was, when it was installed); an
    editable install does not, and with PYTHONDONTWRITEBYTECODE=1 (set on some CI machines) Python then compiles
    every one of the ~200 modules a dry run imports in every run, ~0.25 s that no installed station pays."""
    packages = [str(ROOT / name) for name in ("station", "drivers", "protocols", "simulators")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True, stdout=subprocess.DEVNULL)


def station_run(cycles: int, cell: Path, directory: Path) -> Measured:
    """One `station run --dry-run` as a user types it."""
    data = tempfile.mkdtemp(dir=directory)
    station = str(Path(sys.executable).with_name("station"))
    command = [station, "run", "p3-full-cell-cycling", "--cell", str(cell), "--dry-run", "--set",
               f"cycles={cycles}", "--data-dir", data]
    wall, cpu, rss, text = timed(command, ROOT)
    found = re.search(r": (\d+) records over", text)
    if found is None or "finished" not in text:
        raise SystemExit(f"the dry run did not finish:\n{text[-2000:]}")
    return Measured(wall, cpu, rss, int(found.group(1)))


def pybamm_run(cycles: int) -> Measured:
    wall, cpu, rss, text = timed([sys.executable, "-c", PYBAMM, str(cycles)], ROOT)
    return Measured(wall, cpu, rss, int(text.split()[-1]))


def row(label: object, m: Measured, note: str = "") -> str:
    return f"{label!s:>7} {m.count:9d} {m.wall:8.2f} {m.cpu:7.2f} {m.count / m.wall:10.0f} {m.rss:12.0f}{note}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each (alternated)")
    parser.add_argument("--compare", type=int, nargs="*", default=[10, 100], help="smaller runs, for flatness")
    parser.add_argument("--anode-ce", type=float, default=0.9995, help="the simulated cell's anode CE")
    parser.add_argument("--no-pybamm", action="store_true", help="skip PyBaMM even if it is installed")
    args = parser.parse_args()
    with_pybamm = find_spec("pybamm") is not None and not args.no_pybamm
    compile_bytecode()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        cell = cell_file(directory, args.anode_ce)
        print(f"{'cycles':>7} {'records':>9} {'wall s':>8} {'cpu s':>7} {'records/s':>10} {'peak RSS MB':>12}")
        small = []
        for n in args.compare:
            measured = station_run(n, cell, directory)
            small.append(measured.rss)
            print(row(n, measured))
        ours: list[Measured] = []
        theirs: list[Measured] = []
        for _ in range(args.repeat):
            ours.append(station_run(args.cycles, cell, directory))
            print(row(args.cycles, ours[-1]))
            if with_pybamm:
                theirs.append(pybamm_run(args.cycles))
                print(row("PyBaMM", theirs[-1], "  (SPM, Chen2020, points)"))
    wall = statistics.median(r.wall for r in ours)
    cpu = statistics.median(r.cpu for r in ours)
    rss = max(r.rss for r in ours)
    print(f"station: median {wall:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss:.0f} MB"
          + (f"; grows by {rss - small[0]:.0f} MB from {args.compare[0]} to {args.cycles} cycles" if small else ""))
    memory_ok = rss < 150 and (not small or rss - small[0] < 0.2 * small[0])
    if not with_pybamm:
        print("PyBaMM is not installed (pip install pybamm into the venv to compare; it is no dependency)")
        print(f"budget: < 150 MB peak, flat in cycles: {'PASS' if memory_ok else 'FAIL'}; time ratio not measured")
        return
    ratios = [o.wall / t.wall for o, t in zip(ours, theirs, strict=True)]
    cpu_ratios = [o.cpu / t.cpu for o, t in zip(ours, theirs, strict=True)]
    print(f"PyBaMM SPM: median {statistics.median(t.wall for t in theirs):.2f} s wall, "
          f"{statistics.median(t.cpu for t in theirs):.2f} s CPU, peak RSS {max(t.rss for t in theirs):.0f} MB")
    ratio = statistics.median(ratios)
    print(f"station / PyBaMM wall time: median {ratio:.2f} (pairs: {', '.join(f'{r:.2f}' for r in ratios)}); "
          f"CPU time: median {statistics.median(cpu_ratios):.2f}")
    print(f"budget: <= 0.5 x PyBaMM and < 150 MB peak, flat in cycles: "
          f"{'PASS' if ratio <= 0.5 and memory_ok else 'FAIL'} (time {'ok' if ratio <= 0.5 else 'over'}, "
          f"memory {'ok' if memory_ok else 'over'})")


if __name__ == "__main__":
    main()
