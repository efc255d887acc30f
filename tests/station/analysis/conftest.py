"""Dry runs of the reference protocols on the simulated instruments, made once per test session and shared by
the analysis, plot and export tests: the numbers those tests check come from the simulated cells' physics."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from station.analysis.run_data import RunData
from station.cli import app
from station.run_data import load_run
from station.store import Store

DryRun = Callable[..., RunData]


@pytest.fixture(scope="session")
def dry_run_stored(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple[Store, str]]:
    """``dry_run_stored("p5-eis", "llto-li", **params)``: the store and run id of a finished dry run of the protocol,
    each distinct call made once per session in its own data directory."""
    made: dict[tuple, tuple[Store, str]] = {}
    runner = CliRunner()

    def run(protocol: str, cell: str, **params: object) -> tuple[Store, str]:
        key = (protocol, cell, tuple(sorted(params.items())))
        if key not in made:
            data_dir = tmp_path_factory.mktemp("dry")
            args = ["run", protocol, "--cell", cell, "--dry-run", "--json", "--data-dir", str(data_dir)]
            for name, value in params.items():
                args += ["--set", f"{name}={value}"]
            done = runner.invoke(app, args)
            assert done.exit_code == 0, done.output
            made[key] = (Store(Path(data_dir)), json.loads(done.stdout)["run_id"])
        return made[key]

    return run


@pytest.fixture(scope="session")
def dry_run(dry_run_stored: Callable[..., tuple[Store, str]]) -> DryRun:
    """``dry_run("p2-plating-stripping-ce", "host-cu-li", cycles=3)``: the finished run, loaded for analysis."""
    loaded: dict[tuple, RunData] = {}

    def run(protocol: str, cell: str, **params: object) -> RunData:
        key = (protocol, cell, tuple(sorted(params.items())))
        if key not in loaded:
            loaded[key] = load_run(*dry_run_stored(protocol, cell, **params))
        return loaded[key]

    return run
