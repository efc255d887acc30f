"""A start that fails before anything is sent ends its run as failed and frees the channel; claiming a channel is
atomic, so clients starting at once get different channels or one clear refusal; `validate` checks a cell's
simulated model (issue 14, item 7)."""

from __future__ import annotations

import json
import textwrap
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from protocols.cells import load_cell
from protocols.loader import load_protocol_text
from simulators.cells import MODEL_TYPES
from station.cli import app
from station.config import StationConfig, load_config
from station.instruments import Instruments
from station.session import Station
from station.store import ChannelBusy, Store

runner = CliRunner()
LIBRARY_CELLS = Path(__file__).resolve().parents[2] / "protocols" / "library" / "cells"

QUICK = """
protocol: quick
record: {every: 10 s}
steps:
  - rest: 1 min
"""


def write(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


def misspelt_cell(tmp_path: Path, *, mapping: bool = False) -> str:
    text = (LIBRARY_CELLS / "predeposited-ncm622.yaml").read_text()
    assert "\nmodel: ncm622-li\n" in text
    wrong = "model: {type: ncm622-lii}" if mapping else "model: ncm622-lii"
    return write(tmp_path / "misspelt.yaml", text.replace("model: ncm622-li", wrong))


def config(tmp_path: Path, *instruments: str) -> str:
    return write(tmp_path / "station.yaml", "instruments:\n" + "".join(instruments))


BTS = """\
  - name: bts
    kind: neware
    simulated: true
    channels: [{id: 21-1-1, voltage: [0 V, 5 V], current: 10 mA}]
"""
#: a simulated BTS whose channel id is not devid-subdevid-chlid with devid from 21: its driver cannot be built
BROKEN = """\
  - name: old
    kind: neware
    simulated: true
    channels: [{id: 1-1-1, voltage: [0 V, 5 V], current: 10 mA}]
"""


def run(tmp_path: Path, cfg: str, cell: str, channel: str):
    protocol = write(tmp_path / "quick.yaml", QUICK)
    return runner.invoke(app, ["run", protocol, "--cell", cell, "--channel", channel, "--dry-run", "--json",
                               "--config", cfg, "--data-dir", str(tmp_path / "data")])


def test_a_misspelt_model_fails_the_run_and_frees_the_channel(tmp_path):
    cfg = config(tmp_path, BTS)
    result = run(tmp_path, cfg, misspelt_cell(tmp_path), "bts/21-1-1")
    assert result.exit_code == 1, result.output  # README: the cell has problems
    assert "misspelt.yaml:" in result.stderr and "unknown cell model 'ncm622-lii'" in result.stderr
    assert "Traceback" not in result.output
    store = Store(tmp_path / "data")
    (failed,) = store.runs()
    assert failed.state == "failed" and failed.channel == "bts/21-1-1"
    assert "unknown cell model 'ncm622-lii'" in failed.message and failed.message.startswith("failed before start")
    assert f"run {failed.id} did not start; `station status {failed.id}` has its events" in result.stderr
    warnings = [e.message for e in store.events(failed.id) if e.kind == "warning"]
    assert warnings and "nothing was sent to the instrument" in warnings[0]
    assert store.runs(active_only=True) == []
    # the channel is free: the same channel takes the next run, which starts and finishes
    again = run(tmp_path, cfg, "predeposited-ncm622", "bts/21-1-1")
    assert again.exit_code == 0, again.output
    doc = json.loads(again.stdout)
    assert doc["state"] == "finished" and doc["run_id"] != failed.id


def test_a_driver_that_cannot_be_built_fails_the_run_and_frees_the_channel(tmp_path):
    cfg = config(tmp_path, BROKEN, BTS)
    result = run(tmp_path, cfg, "predeposited-ncm622", "old/1-1-1")
    assert result.exit_code == 1, result.output  # README: station.yaml has problems
    assert "station config: instrument old: simulated Neware channel ids are devid-subdevid-chlid" in result.stderr
    store = Store(tmp_path / "data")
    (failed,) = store.runs()
    assert failed.state == "failed" and failed.channel == "old/1-1-1"
    assert "devid-subdevid-chlid" in failed.message
    assert any(e.kind == "warning" for e in store.events(failed.id))
    # nothing holds the channel: a second run there is not refused as busy, it meets the same config problem
    second = run(tmp_path, cfg, "predeposited-ncm622", "old/1-1-1")
    assert second.exit_code == 1 and "already has run" not in second.stderr
    assert [r.state for r in Store(tmp_path / "data").runs()] == ["failed", "failed"]


def test_ctrl_c_before_start_fails_the_run(tmp_path, monkeypatch):
    station = Station.open(load_config(config(tmp_path, BTS))[0], dry_run=True, data_dir=str(tmp_path / "data"))

    def interrupted(self, channel):
        raise KeyboardInterrupt

    monkeypatch.setattr(Instruments, "driver", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            station.launch(load_protocol_text(QUICK, "q.yaml"), load_cell("predeposited-ncm622"))
        (row,) = station.store.runs()
        assert row.state == "failed" and "interrupted (Ctrl-C)" in row.message
        assert station.manager.leases == {}  # the run's lease went with it
    finally:
        station.close()


# -- the channel claim is atomic ----------------------------------------------------------------------------------

def race(tmp_path: Path, channels: int, monkeypatch) -> tuple[list[str | Exception], list[str]]:
    """Two clients (threads, each with its own store connection) start dry runs without --channel at once, on a
    new data directory: both look for a free channel before either claims one, so both choose the same first.
    Returns what each got (its channel, or the error) and every channel chosen."""
    chans = [{"id": f"21-1-{n}", "voltage": ["0 V", "5 V"], "current": "10 mA"} for n in range(1, channels + 1)]
    cfg = StationConfig.model_validate({"instruments": [{"name": "bts", "kind": "neware", "simulated": True,
                                                         "channels": chans}]})
    both_chose = threading.Barrier(2, timeout=30)
    choose = Instruments.choose_channel
    first = threading.local()
    chosen_all: list[str] = []

    def choose_together(self, program, busy):
        chosen = choose(self, program, busy)
        chosen_all.append(chosen)
        if not getattr(first, "done", False):
            first.done = True
            both_chose.wait()
        return chosen

    monkeypatch.setattr(Instruments, "choose_channel", choose_together)
    results: list[str | Exception] = [RuntimeError("did not finish")] * 2

    def client(n: int) -> None:
        station = Station.open(cfg, dry_run=True, data_dir=str(tmp_path / "data"))
        try:
            run_id = station.launch(load_protocol_text(QUICK, "q.yaml"), load_cell("predeposited-ncm622"))
            results[n] = station.store.run(run_id).channel
        except Exception as exc:
            results[n] = exc
        finally:
            station.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, chosen_all


def test_two_clients_starting_at_once_get_two_channels(tmp_path, monkeypatch):
    results, chosen = race(tmp_path, 2, monkeypatch)
    assert sorted(map(str, results)) == ["bts/21-1-1", "bts/21-1-2"], results
    assert chosen == ["bts/21-1-1", "bts/21-1-1", "bts/21-1-2"]  # the loser of the claim moved on to the next
    runs = Store(tmp_path / "data").runs()
    assert len(runs) == 2 and all(r.state == "running" for r in runs)


def test_two_clients_on_one_free_channel_get_one_clear_refusal(tmp_path, monkeypatch):
    results, chosen = race(tmp_path, 1, monkeypatch)
    assert chosen == ["bts/21-1-1", "bts/21-1-1"]
    assert results.count("bts/21-1-1") == 1, results
    (refusal,) = [r for r in results if isinstance(r, Exception)]
    assert isinstance(refusal, ChannelBusy)
    assert str(refusal).startswith("channel bts/21-1-1 already has run ")
    (row,) = Store(tmp_path / "data").runs()  # the loser stored nothing
    assert row.state == "running"


# -- validate checks the simulated model --------------------------------------------------------------------------

@pytest.mark.parametrize("mapping", [False, True])
def test_validate_names_a_misspelt_model_with_its_position(tmp_path, mapping):
    cell = misspelt_cell(tmp_path, mapping=mapping)
    line = next(n for n, text in enumerate(Path(cell).read_text().splitlines(), 1) if text.startswith("model:"))
    result = runner.invoke(app, ["validate", "p3-full-cell-cycling", "--cell", cell])
    assert result.exit_code == 1
    (message,) = result.stderr.splitlines()
    path = "model.type" if mapping else "model"
    assert message.startswith(f"{cell}:{line}:")
    assert f": {path}: unknown cell model 'ncm622-lii' (did you mean 'ncm622-li'?); expected one of " in message
    assert all(name in message for name in MODEL_TYPES)
    as_json = runner.invoke(app, ["validate", "p3-full-cell-cycling", "--cell", cell, "--json"])
    assert as_json.exit_code == 1
    problems = json.loads(as_json.stdout.splitlines()[0])["problems"]
    assert [(p["line"], p["path"]) for p in problems] == [(line, path)]


def test_validate_accepts_the_library_cells_models():
    result = runner.invoke(app, ["validate", "p3-full-cell-cycling", "--cell", "predeposited-ncm622"])
    assert result.exit_code == 0, result.output
