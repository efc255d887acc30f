"""The ``Scan_Rate`` unit setting: from station.yaml (instrument or channel) to the compiler and to ``station plan``.

The station pieces are tested here because the setting belongs to the Biologic driver: the config only carries
it, ``_biologic`` passes it on, and the plan shows what the driver will send.
"""

from __future__ import annotations

import json
from typing import get_args

import numpy as np
import pytest
from typer.testing import CliRunner

from drivers.biologic.channel import BiologicChannel
from drivers.biologic.compiler import ChannelCapabilities, compile_program
from drivers.biologic.scan_rate import DEFAULT_SCAN_RATE_UNIT, SCAN_RATE_UNITS, scan_rate_as_sent, scan_rate_parameter
from protocols.cells import load_cell
from protocols.loader import build_program
from protocols.program import CvStep, LsvStep, StepProgram
from station import config as station_config
from station.cli import app
from station.config import ConfigError, StationConfig, load_config
from station.plan import ScanRateSetting, plan_document, scan_rate_setting_for

YAML = """
data_dir: {data}
instruments:
  - name: vmp3
    kind: biologic
    address: 192.168.0.10
    dll: C:/EC-Lab Development Package/lib/EClib64.dll
    {instrument_setting}
    channels:
      - {{id: "1"}}
      - {{id: "2", scan_rate_unit: V/s}}
  - name: bts
    kind: neware
    channels:
      - {{id: 27-1-1}}
"""


def write_config(tmp_path, instrument_setting="scan_rate_unit: mV/s"):
    path = tmp_path / "station.yaml"
    path.write_text(YAML.format(data=tmp_path / "data", instrument_setting=instrument_setting))
    return str(path)


def test_the_default_is_v_per_s_and_mv_per_s_scales_by_1000():
    assert DEFAULT_SCAN_RATE_UNIT == "V/s" and SCAN_RATE_UNITS == ("V/s", "mV/s")
    assert scan_rate_parameter(1e-4, "V/s") == 1e-4
    assert scan_rate_parameter(1e-4, "mV/s") == pytest.approx(0.1)
    assert scan_rate_as_sent(1e-4, "V/s") == float(np.float32(1e-4))
    with pytest.raises(ValueError, match="'uV/s' is not one of V/s, mV/s"):
        scan_rate_parameter(1e-4, "uV/s")  # type: ignore[arg-type]


def test_the_config_accepts_exactly_the_drivers_units():
    assert get_args(station_config.ScanRateUnit) == SCAN_RATE_UNITS


@pytest.mark.parametrize("unit", SCAN_RATE_UNITS)
def test_the_compiler_sends_scan_rates_in_the_channels_unit(unit):
    scale = 1000.0 if unit == "mV/s" else 1.0
    steps = (CvStep(index=1, scan_rate=1e-4, vertex_1=0.01, vertex_2=2.5), LsvStep(index=2, scan_rate=5e-4, end=1.0))
    compiled = compile_program(StepProgram(protocol="p", cell="c", steps=steps), ChannelCapabilities(
        scan_rate_unit=unit))  # fmt: skip
    cv, lsv = compiled.techniques
    assert cv.values["Scan_Rate"] == [1e-4 * scale] * 5
    assert lsv.values["Scan_Rate"] == [5e-4 * scale] * 2


def test_the_channel_setting_wins_over_the_instruments_and_the_default_applies_without_either(tmp_path):
    cfg, _ = load_config(write_config(tmp_path))
    vmp3, (one, two) = cfg.instruments[0], cfg.instruments[0].channels
    assert vmp3.scan_rate_setting(one) == ("mV/s", "instrument vmp3's scan_rate_unit in station.yaml")
    assert vmp3.scan_rate_setting(two) == ("V/s", "the channel's scan_rate_unit in station.yaml")
    cfg, _ = load_config(write_config(tmp_path, instrument_setting=""))
    unit, source = cfg.instruments[0].scan_rate_setting(cfg.instruments[0].channels[0])
    assert unit == DEFAULT_SCAN_RATE_UNIT and "default" in source


@pytest.mark.parametrize(
    ("setting", "message"),
    [("scan_rate_unit: mv/s", "expected 'V/s' or 'mV/s', found 'mv/s'"),
     ("scan_rate_unit: 0.001", "expected 'V/s' or 'mV/s'")],
)  # fmt: skip
def test_a_bad_unit_names_the_line_and_the_choices(tmp_path, setting, message):
    with pytest.raises(ConfigError, match=rf"station.yaml:\d+:\d+: instruments\[0\].scan_rate_unit: .*{message}"):
        load_config(write_config(tmp_path, instrument_setting=setting))


def test_a_neware_instrument_refuses_the_setting():
    with pytest.raises(ValueError, match="scan_rate_unit is a Biologic setting"):
        StationConfig.model_validate({"instruments": [
            {"name": "bts", "kind": "neware", "channels": [{"id": "27-1-1", "scan_rate_unit": "mV/s"}]}]})


@pytest.mark.parametrize(("channel", "unit"), [("vmp3/1", "mV/s"), ("vmp3/2", "V/s")])
def test_instruments_pass_the_setting_to_the_driver(tmp_path, monkeypatch, channel, unit):
    from protocols.clock import VirtualClock
    from station.instruments import Instruments

    monkeypatch.setattr(BiologicChannel, "from_dll", classmethod(lambda cls, dll, config, clock=None: cls(
        object(), config, clock)))  # fmt: skip
    monkeypatch.setattr(BiologicChannel, "connect", lambda self: None)
    cfg, _ = load_config(write_config(tmp_path))
    driver = Instruments(cfg, VirtualClock(), tmp_path).driver(channel)
    assert isinstance(driver, BiologicChannel) and driver.config.scan_rate_unit == unit


# -- station plan ------------------------------------------------------------------------------------------------
def p6():
    return build_program("protocols/library/p6-cyclic-voltammetry.yaml",
                         load_cell("protocols/library/cells/host-cu-li.yaml"))  # fmt: skip


def test_the_plan_document_shows_the_number_sent_and_says_when_it_is_the_default(tmp_path):
    program = p6()
    cell = load_cell("protocols/library/cells/host-cu-li.yaml")
    cv = next(s for s in plan_document(program, cell)["steps"] if s["kind"] == "cv")
    assert cv["biologic_scan_rate"] == {"label": "Scan_Rate", "value": float(np.float32(1e-4)), "unit": "V/s",
                                        "text": "0.0001 V/s", "setting": "the default setting: no channel given",
                                        "channel": None}  # fmt: skip
    cfg, _ = load_config(write_config(tmp_path))
    setting = scan_rate_setting_for(cfg, "vmp3/1")
    assert setting == ScanRateSetting("mV/s", "instrument vmp3's scan_rate_unit in station.yaml", "vmp3/1")
    cv = next(s for s in plan_document(program, cell, scan_rate=setting, channel_given=True)["steps"]
              if s["kind"] == "cv")  # fmt: skip
    assert cv["biologic_scan_rate"]["value"] == float(np.float32(0.1)) and cv["biologic_scan_rate"]["unit"] == "mV/s"
    assert scan_rate_setting_for(cfg, "bts/27-1-1") is None  # a Neware channel receives no Scan_Rate
    rest = plan_document(program, cell, scan_rate=None, channel_given=True)["steps"]
    assert all("biologic_scan_rate" not in s for s in rest)


runner = CliRunner()


def test_station_plan_prints_the_scan_rate_per_channel(tmp_path):
    config = write_config(tmp_path)
    default = runner.invoke(app, ["plan", "p6-cyclic-voltammetry", "--cell", "host-cu-li"])
    assert default.exit_code == 0, default.output
    assert "step 2 (cv, 100 uV/s): Biologic Scan_Rate = 0.0001 V/s" in default.output
    assert "the default setting: no channel given" in default.output
    chosen = runner.invoke(app, ["plan", "p6-cyclic-voltammetry", "--cell", "host-cu-li", "--channel", "vmp3/1",
                                 "--config", config])  # fmt: skip
    assert chosen.exit_code == 0, chosen.output
    assert "Biologic Scan_Rate = 0.1 mV/s" in chosen.output and "channel vmp3/1" in chosen.output
    document = json.loads(runner.invoke(app, ["plan", "p6-cyclic-voltammetry", "--cell", "host-cu-li", "--channel",
                                              "vmp3/2", "--config", config, "--json"]).stdout)  # fmt: skip
    cv = next(s for s in document["steps"] if s["kind"] == "cv")
    assert cv["biologic_scan_rate"]["unit"] == "V/s" and cv["biologic_scan_rate"]["channel"] == "vmp3/2"
    neware = runner.invoke(app, ["plan", "p6-cyclic-voltammetry", "--cell", "host-cu-li", "--channel",
                                 "bts/27-1-1", "--config", config])  # fmt: skip
    # a Neware channel cannot run a CV at all: the plan refuses it as `station run` would, and shows no Scan_Rate
    assert neware.exit_code == 2 and "cannot run this program" in neware.stderr and "Scan_Rate" not in neware.output
    unknown = runner.invoke(app, ["plan", "p6-cyclic-voltammetry", "--cell", "host-cu-li", "--channel", "nope",
                                  "--config", config])  # fmt: skip
    assert unknown.exit_code == 2 and "channel 'nope' is not configured" in unknown.stderr
