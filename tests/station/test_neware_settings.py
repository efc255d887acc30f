"""station.yaml's Neware settings (step files on a share the BTS Client's PC reads, its <backup> export) and what
``station plan`` shows about branches, hold directions and 0 V limits."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivers.neware.client import BackupSettings
from protocols.cells import load_cell
from protocols.clock import VirtualClock
from protocols.library import resolve_cell_path
from protocols.loader import load_protocol_text
from simulators.neware import BtsSimulator
from station.cli import app
from station.config import ConfigError, load_config
from station.instruments import Instruments

runner = CliRunner()


def _config(tmp_path: Path, extra: str, *, port: int = 502, kind: str = "neware") -> Path:
    path = tmp_path / "station.yaml"
    path.write_text(textwrap.dedent(f"""
        data_dir: {tmp_path / "data"}
        instruments:
          - name: bts
            kind: {kind}
            address: 127.0.0.1:{port}
            channels: [{{id: 21-1-1, voltage: [0 V, 5 V], current: 10 mA}}]
        """) + textwrap.indent(textwrap.dedent(extra), "    "))
    return path


def test_step_dirs_and_backup_reach_the_neware_driver(tmp_path):
    cfg = _config(tmp_path, r"""
        step_dir: //labserver/bts-steps
        bts_step_dir: 'D:\bts-steps'
        backup: {dir: 'D:\Neware data', file_name: barcode, dir_by_date: true, on_time_interval: 60}
        """)
    config, _ = load_config(str(cfg))
    driver = Instruments(config, VirtualClock(), tmp_path / "data").driver("bts/21-1-1")
    assert (driver.step_dir, driver.remote_step_dir) == (Path("//labserver/bts-steps"), "D:\\bts-steps")
    assert driver.backup == BackupSettings(backupdir="D:\\Neware data", filenametype=1, createdirbydate=1,
                                           backupontimeinterval=60)
    plain = Instruments(load_config(str(_config(tmp_path, "")))[0], VirtualClock(), tmp_path / "data")
    driver = plain.driver("bts/21-1-1")  # no settings: the BTS Client reads this PC's data directory, no backup
    assert (driver.step_dir, driver.remote_step_dir, driver.backup) == (tmp_path / "data" / "stepfiles", None, None)


@pytest.mark.parametrize(("extra", "message"), [
    ("bts_step_dir: 'D:\\bts-steps'\n", "bts_step_dir needs step_dir"),
    ("backup: {dir: 'D:\\x', file_name: custom}\n", "file_name: custom needs custom_name"),
    ("backup: {dir: 'D:\\x', every: 1 h}\n", "backup.every"),
])
def test_bad_neware_settings_are_positioned_errors(tmp_path, extra, message):
    with pytest.raises(ConfigError) as info:
        load_config(str(_config(tmp_path, extra)))
    assert message in str(info.value) and "station.yaml:" in str(info.value)


def test_neware_settings_on_a_biologic_instrument_are_refused(tmp_path):
    cfg = _config(tmp_path, "step_dir: /mnt/x\ndll: C:/EClib64.dll\n", kind="biologic")
    with pytest.raises(ConfigError, match="step_dir: Neware settings"):
        load_config(str(cfg))


def test_start_sends_the_path_the_bts_pc_sees(tmp_path):
    """A BTS Client that sees the share under another name: the simulated BTS opens only the path start sends."""
    share = tmp_path / "share"
    seen_by_bts = tmp_path / "bts-view"
    share.mkdir()
    seen_by_bts.symlink_to(share, target_is_directory=True)
    clock = VirtualClock()
    cell = load_cell(resolve_cell_path("predeposited-ncm622"))
    with BtsSimulator(devices=1, channels=1, clock=clock) as sim:
        cfg = _config(tmp_path, f"step_dir: {share}\nbts_step_dir: {seen_by_bts}\n", port=sim.port)
        instruments = Instruments(load_config(str(cfg))[0], clock, tmp_path / "data")
        try:
            loaded = load_protocol_text("protocol: p\nsteps:\n  - rest: 10 min\n", "p.yaml")
            handle = instruments.driver("bts/21-1-1").start(loaded.bind(cell), "run-1")
            assert handle.extra["step_file"].startswith(f"{seen_by_bts}/21-1-1_run-1_")
            assert [p.name for p in share.iterdir()] == [Path(handle.extra["step_file"]).name]
            assert sim.channel("21-1-1").workstatus == "working"
        finally:
            instruments.close()


BRANCHY = """
protocol: branchy
safety: {voltage: [-0.5 V, 3.5 V], current: 5 mA}
steps:
  - discharge: {current: 1 mA, until: {voltage: 0 V}}
  - rest: 10 min
  - hold: {voltage: 0.5 V, until: {current: 0.05 mA}}
  - repeat: 3
    steps:
      - charge: {current: 1 mA, until: [{voltage: 1 V}, {time: 5 h, then: end}]}
      - discharge: {current: 1 mA, until: [{capacity: 1 mAh}, {voltage: -0.3 V, then: last}]}
  - rest: {id: last, until: {time: 1 h}}
"""


def test_plan_shows_branches_hold_directions_and_the_0_v_note(tmp_path):
    protocol = tmp_path / "branchy.yaml"
    protocol.write_text(BRANCHY)
    table = runner.invoke(app, ["plan", str(protocol), "--cell", "host-cu-li"])
    assert table.exit_code == 0, table.output
    text = table.stdout.replace("\n", " ")
    assert "step 3 (hold): charges (the cell is at 0 V after step 2)" in text
    assert "step 4: if time >= 18000 s, end the run" in text
    assert "step 5: if voltage <= -0.3 V, jump to step 7" in text
    assert "the estimate cannot know which of 2 branches the cell takes and follows the nominal path" in text
    assert "note: step 1: 'voltage <= 0 V' is written to a Neware step file as 0.1 mV" in text
    doc = json.loads(runner.invoke(app, ["plan", str(protocol), "--cell", "host-cu-li", "--json"]).stdout)
    # the documented keys keep their meaning; the added ones say what the estimate assumed
    assert {"protocol", "cell", "estimated_duration_s", "steps"} <= set(doc)
    assert all({"index", "kind", "tag", "control", "until", "estimated_s"} <= set(s) for s in doc["steps"])
    assert doc["steps"][4]["until"][1] == {"quantity": "voltage", "op": "<=", "value": -0.3, "then": "jump",
                                           "target": 7}
    assert doc["branches"] == [
        {"step": 4, "quantity": "time", "op": ">=", "value": 18000.0, "then": "end", "target": None,
         "nominal": False, "text": "step 4: if time >= 18000 s, end the run"},
        {"step": 5, "quantity": "voltage", "op": "<=", "value": -0.3, "then": "jump", "target": 7,
         "nominal": False, "text": "step 5: if voltage <= -0.3 V, jump to step 7"},
    ]
    assert doc["estimate_assumes"].startswith("the estimate cannot know which of 2 branches")
    assert doc["estimate_exact"] is False
    hold = doc["steps"][2]
    assert (hold["direction"], hold["start_voltage"], hold["current_limit"]) == ("charge", 0.0, None)
    assert doc["notes"] == [
        "step 1: 'voltage <= 0 V' is written to a Neware step file as 0.1 mV: whether the BTS reads a zero voltage "
        "limit as a limit is unconfirmed (reference section 9), so it is written as the smallest positive count, "
        "1 = 0.1 mV"
    ]


def test_plan_for_a_biologic_channel_has_no_neware_notes(tmp_path):
    protocol = tmp_path / "branchy.yaml"
    protocol.write_text(BRANCHY)
    # the jump to 'last' is Neware-only: a plan for a Biologic channel refuses it, as `station run` would
    refused = runner.invoke(app, ["plan", str(protocol), "--cell", "host-cu-li", "--channel", "sim-biologic/1"])
    assert refused.exit_code == 2 and "can only go on or end the run, not jump" in refused.stderr
    # P1 ends a step at 0 V: a Neware plan notes how its step file writes that, a Biologic plan has nothing to note
    neware = json.loads(runner.invoke(app, ["plan", "p1-li-deposition", "--cell", "host-cu-li", "--json",
                                            "--channel", "sim-neware/21-1-1"]).stdout)
    assert any("0.1 mV" in note for note in neware["notes"])
    doc = json.loads(runner.invoke(app, ["plan", "p1-li-deposition", "--cell", "host-cu-li", "--json", "--channel",
                                         "sim-biologic/1"]).stdout)
    assert doc["notes"] == []


def test_a_missing_eclib_is_a_config_error_naming_the_instruments_dll_key(tmp_path):
    path = tmp_path / "station.yaml"
    path.write_text(textwrap.dedent(f"""
        data_dir: {tmp_path / "data"}
        instruments:
          - name: vmp3
            kind: biologic
            address: 192.0.2.1
            dll: {tmp_path / "nowhere" / "EClib64.dll"}
            channels: [{{id: "1", voltage: [-1 V, 5 V], current: 10 mA}}]
        """))
    config, _ = load_config(str(path))
    with pytest.raises(ConfigError, match=r"instrument vmp3: dll: EClib not found at .*nowhere.*correct 'dll:' of "
                                          r"instrument vmp3 in station.yaml"):
        Instruments(config, VirtualClock(), tmp_path / "data").driver("vmp3/1")
