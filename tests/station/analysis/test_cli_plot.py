"""``station plot``: runs read from a data directory, the figure written in the format its suffix names, and every
wrong input a one-line error with exit code 2 (and no file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from station.cli import app

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """A data directory with P2 (2 cycles) on a host sample and on a Cu sample: (data dir, {name: run id})."""
    data_dir = str(tmp_path_factory.mktemp("plot-store"))
    runs = {}
    for name, cell in (("host", "host-cu-li"), ("cu", "cu-li")):
        made = invoke("sample", "new", "--cell", cell, "--name", name, "--json", "--data-dir", data_dir)
        assert made.exit_code == 0, made.output
        sample = json.loads(made.stdout)["sample_id"]
        done = invoke("run", "p2-plating-stripping-ce", "--sample", sample, "--dry-run", "--json", "--data-dir",
                      data_dir, "--set", "cycles=2")
        assert done.exit_code == 0, done.output
        runs[name] = json.loads(done.stdout)["run_id"]
        runs[f"{name}-sample"] = sample
    return data_dir, runs


def test_several_runs_overlay_in_one_svg(store, tmp_path: Path) -> None:
    data_dir, runs = store
    target = tmp_path / "ce.svg"
    done = invoke("plot", runs["host"], runs["cu"], "--kind", "ce", "--out", str(target), "--data-dir", data_dir)
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == str(target)
    svg = target.read_text(encoding="utf-8")
    assert svg.startswith("<?xml") and "<svg" in svg
    # both runs' CE series are in the file (matplotlib writes each line's gid as its SVG id)
    assert f'id="{runs["host"]} ce"' in svg and f'id="{runs["cu"]} ce"' in svg


def test_png_with_cycles_and_json_answer(store, tmp_path: Path) -> None:
    data_dir, runs = store
    target = tmp_path / "profiles.PNG"  # the suffix chooses the format, in any case; a unique prefix names the run
    done = invoke("plot", runs["host"][:-2], "--kind", "voltage", "--cycles", "2-3", "--out",
                  str(target), "--data-dir", data_dir, "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"file": str(target), "kind": "voltage", "runs": [runs["host"]]}
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--kind", "nyquist"], "error: --kind nyquist does not apply to run {host_sample}: it has no EIS spectrum; "
                            "kinds that apply to it: voltage, capacity, ce, retention, dqdv"),
    (["--kind", "voltage", "--cycles", "2-x"], "error: --cycles '2-x': '2-x' is not a cycle number or a range like "
                                               "5-10; write e.g. --cycles 1,2,5-10"),
    (["--kind", "voltage", "--cycles", "9"], "error: run {host_sample} has no cycle 9 (its cycles: 1-3); choose "
                                             "from those with --cycles"),
    (["--kind", "volts"], "error: unknown --kind 'volts'; choose one of voltage, capacity, ce, retention, dqdv, "
                          "nyquist, bode, cv, conductivity"),
])
def test_wrong_input_is_one_line_and_exit_2(store, tmp_path: Path, args: list[str], message: str) -> None:
    data_dir, runs = store
    target = tmp_path / "figure.png"
    done = invoke("plot", runs["host"], *args, "--out", str(target), "--data-dir", data_dir)
    assert done.exit_code == 2
    assert done.stderr.splitlines()[-1] == message.format(host_sample=runs["host-sample"])
    assert "Traceback" not in done.output
    assert not target.exists()


def test_wrong_suffix_and_unknown_run_are_one_line_errors(store, tmp_path: Path) -> None:
    data_dir, runs = store
    done = invoke("plot", runs["host"], "--kind", "ce", "--out", str(tmp_path / "ce.pdf"), "--data-dir", data_dir)
    assert done.exit_code == 2
    assert done.stderr.splitlines()[-1] == (f"error: --out '{tmp_path / 'ce.pdf'}' must end in .png or .svg (the "
                                            f"suffix chooses the format)")
    done = invoke("plot", "no-such-run", "--kind", "ce", "--out", str(tmp_path / "ce.png"), "--data-dir", data_dir)
    assert done.exit_code == 2
    assert done.stderr.splitlines()[-1].startswith("error: no run 'no-such-run' in ")
    done = invoke("plot", runs["host"], "--kind", "ce", "--out", str(tmp_path / "missing" / "ce.png"),
                  "--data-dir", data_dir)
    assert done.exit_code == 2
    assert done.stderr.splitlines()[-1].startswith(f"error: cannot write --out '{tmp_path / 'missing' / 'ce.png'}'")


def test_the_cli_starts_without_matplotlib() -> None:
    """matplotlib is a core dependency but loads only when a figure is made: ``station`` starts without it."""
    probe = "import sys, station.cli, station.plots; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[3])
    assert done.stdout.strip() == "False"
