"""``station plot``: the paper's figures of stored runs, written to a PNG or SVG file.

A thin layer over :mod:`station.plots`: it reads the runs from the store (:func:`station.run_data.load_run`),
checks the options before any figure is built (so a wrong suffix or ``--cycles`` fails at once), and turns every
problem into one line on stderr with the usual exit codes (2 for what the user asked wrongly, 4 for a store that
cannot be read). matplotlib is imported only when a figure is made.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from station.cli_common import EXIT_USAGE, ConfigOpt, DataDirOpt, JsonOpt, app, fail, json_mode, out
from station.cli_runs import _errors, _store
from station.plots import FORMATS, KINDS, PlotError
from station.plots.selection import parse_cycles
from station.run_data import load_run

RunsArg = Annotated[list[str], typer.Argument(
    metavar="RUN", help="run ids (unique prefixes are enough); several runs overlay")]
KindOpt = Annotated[str, typer.Option("--kind", "-k", help=f"the figure: {', '.join(KINDS)}")]
CyclesOpt = Annotated[str | None, typer.Option(
    "--cycles", help="stored cycle numbers and ranges, e.g. 1,2,5-10 (CV cycles for --kind cv; default: all, or a "
                     "readable choice for voltage and dqdv)")]
OutOpt = Annotated[str, typer.Option("--out", "-o", help="the file to write; .png or .svg chooses the format")]


@app.command()
def plot(runs: RunsArg, kind: KindOpt, out_path: OutOpt, cycles: CyclesOpt = None, config: ConfigOpt = None,
         data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """Draw a figure of one or more runs (voltage profiles, capacity, CE, retention, dQ/dV, Nyquist, Bode, CV,
    conductivity) and write it to --out. Capacity is per gram when every cell has an active mass, else per cm^2
    when every cell has an area, else in mAh."""
    json_mode(json_)
    target = Path(out_path)
    try:
        if target.suffix.lower() not in FORMATS:
            raise PlotError(f"--out '{out_path}' must end in .png or .svg (the suffix chooses the format)")
        if kind not in KINDS:
            raise PlotError(f"unknown --kind '{kind}'; choose one of {', '.join(KINDS)}")
        picked = parse_cycles(cycles) if cycles is not None else None
    except PlotError as exc:
        raise fail(EXIT_USAGE, f"error: {exc}") from None
    with _errors():
        store = _store(config, data_dir)
        data = [load_run(store, run_id) for run_id in runs]
    from station import plots

    try:
        fig = plots.figure(data, kind, picked)
    except ValueError as exc:  # PlotError and the analyses' own one-line errors (e.g. a fit that cannot start)
        raise fail(EXIT_USAGE, f"error: {exc}") from None
    try:
        written = plots.save(fig, target)
    except OSError as exc:
        raise fail(EXIT_USAGE, f"error: cannot write --out '{out_path}': {exc.strerror or exc}; choose a "
                               f"writable path") from None
    if json_:
        sys.stdout.write(json.dumps({"file": str(written), "kind": kind, "runs": [d.run_id for d in data]}) + "\n")
    else:
        out.print(str(written), markup=False)
