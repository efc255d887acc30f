"""station.yaml's chambers, and the station's reading of them: over a real pseudo-terminal to the simulated ESPEC,
through pyvisa-py and pyserial, on a virtual clock."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.clock import VirtualClock
from station.chambers import Chambers, ChamberUnavailable
from station.config import ConfigError, StationConfig, load_config

BASE = {"instruments": [{"name": "bts", "kind": "neware", "simulated": True,
                         "channels": [{"id": "21-1-1"}, {"id": "21-1-2"}, {"id": "21-1-3"}]}]}


def config(*chambers: dict) -> StationConfig:
    return StationConfig.model_validate({**BASE, "chambers": list(chambers)})


def test_channels_are_placed_in_their_chamber_and_only_one() -> None:
    cfg = config({"name": "oven", "simulated": True, "channels": ["bts/21-1-1", "bts/21-1-2"]})
    assert cfg.chamber_of("bts/21-1-2").name == "oven"
    assert cfg.chamber_of("bts/21-1-3") is None
    assert cfg.chambers[0].alarm_band_c == 2.0


@pytest.mark.parametrize(("chamber", "message"), [
    ({"name": "oven", "simulated": True, "channels": ["bts/9-9-9"]}, "channel 'bts/9-9-9' is not configured"),
    ({"name": "oven", "channels": ["bts/21-1-1"]}, "needs a resource"),
    ({"name": "oven", "simulated": True, "channels": ["bts/21-1-1"], "alarm_band": "two"},
     "'two' is not a temperature difference"),
])
def test_a_wrong_chamber_entry_is_refused_with_what_to_write(chamber: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(chamber)


def test_a_channel_in_two_chambers_is_refused() -> None:
    with pytest.raises(ValueError, match=r"channel 'bts/21-1-1' is in two chambers \('a' and 'b'\)"):
        config({"name": "a", "simulated": True, "channels": ["bts/21-1-1"]},
               {"name": "b", "simulated": True, "channels": ["bts/21-1-1"]})


def test_a_yaml_file_with_a_bad_chamber_names_its_line(tmp_path) -> None:
    path = tmp_path / "station.yaml"
    path.write_text("instruments:\n  - {name: bts, kind: neware, simulated: true, channels: [{id: 21-1-1}]}\n"
                    "chambers:\n  - {name: oven, simulated: true, channels: [bts/21-1-1], door_alarms: [x]}\n")
    with pytest.raises(ConfigError, match=r"station.yaml:4:73: chambers\[0\].door_alarms\[0\]: not a whole number"):
        load_config(str(path))


def test_a_dry_run_gives_an_unplaced_channel_a_private_simulated_chamber_and_a_real_run_none() -> None:
    cfg = config({"name": "oven", "resource": "ASRL/dev/ttyUSB9::INSTR", "channels": ["bts/21-1-1"]})
    real = Chambers(cfg, VirtualClock())
    assert real.of("bts/21-1-1").name == "oven" and not real.of("bts/21-1-1").simulated
    assert real.of("bts/21-1-2") is None
    dry = Chambers(cfg, VirtualClock(), simulate_all=True)
    assert dry.of("bts/21-1-1").simulated  # the configured chamber, simulated
    private = dry.of("bts/21-1-2")
    assert private.name == "sim-chamber-bts-21-1-2" and private.channels == ("bts/21-1-2",)
    assert dry.of("bts/21-1-2") is private


def test_a_simulated_chamber_is_read_and_set_over_a_real_serial_line_and_its_trace_stamps_records() -> None:
    clock = VirtualClock()
    chambers = Chambers(config({"name": "oven", "simulated": True, "channels": ["bts/21-1-1"]}), clock)
    unit = chambers.of("bts/21-1-1")
    try:
        first = unit.read()
        assert first.temperature_c == pytest.approx(23.0)  # the simulated lab's room
        t0 = clock.unix()
        assert unit.hold(45.04) == 45.0  # the chamber's 0.1 °C resolution
        assert unit.simulator.lines[-2:] == ["TEMP, S45.0", "MODE, CONSTANT"]
        clock.advance(3 * 3600)
        late = unit.read()
        assert late.set_point_c == 45.0 and late.temperature_c == pytest.approx(45.0, abs=0.05)
        # records between the two readings get the straight line between them; none before the first reading
        stamps = unit.temperatures(np.array([t0, t0 + 1.5 * 3600, t0 + 3 * 3600]))
        assert stamps[0] == pytest.approx(first.temperature_c)
        assert stamps[1] == pytest.approx((first.temperature_c + late.temperature_c) / 2)
        assert stamps[2] == pytest.approx(late.temperature_c)
    finally:
        chambers.close()


def test_a_chamber_that_does_not_answer_gives_no_reading_and_says_why_and_a_set_point_fails_in_one_line() -> None:
    clock = VirtualClock()
    chambers = Chambers(config({"name": "oven", "simulated": True, "channels": ["bts/21-1-1"],
                                "timeout": "0.2 s"}), clock)
    unit = chambers.of("bts/21-1-1")
    try:
        assert unit.read() is not None
        unit.simulator.silence(lines=100)
        assert unit.read() is None
        assert "did not answer" in unit.error or "no answer" in unit.error.lower()
        with pytest.raises(ChamberUnavailable) as caught:
            unit.hold(30.0)
        assert "\n" not in str(caught.value)
        assert len(unit.trace) == 1  # the silence added nothing to the trace
    finally:
        chambers.close()


def test_on_a_real_station_a_chamber_is_read_on_its_own_thread_and_a_silent_one_never_holds_up_a_round() -> None:
    from protocols.clock import RealClock
    from tests.processes import wait_for

    chambers = Chambers(config({"name": "oven", "simulated": True, "channels": ["bts/21-1-1"], "timeout": "0.3 s"}),
                        RealClock(), background=True)
    unit = chambers.of("bts/21-1-1")
    try:
        unit.read()  # starts the chamber's thread
        wait_for(lambda: unit.read() is not None, what="the first reading")
        assert unit.read().temperature_c == pytest.approx(23.0)
        unit.simulator.silence(lines=10_000)
        wait_for(lambda: unit.error is not None, what="the silent chamber's error")
        asked = len(unit.simulator.lines)
        assert unit.read() is None  # the latest reading failed: none, at once, and nothing was sent for it
        assert len(unit.simulator.lines) - asked <= 3  # (the thread's own repeats may land meanwhile)
    finally:
        chambers.close()


def test_a_thermocouple_on_a_channel_is_a_neware_setting() -> None:
    cfg = StationConfig.model_validate({"instruments": [{"name": "bts", "kind": "neware", "simulated": True,
                                                         "channels": [{"id": "21-1-1", "aux_temperature": True}]}]})
    assert cfg.instruments[0].channels[0].aux_temperature is True
    with pytest.raises(ValueError, match="aux_temperature is a Neware setting"):
        StationConfig.model_validate({"instruments": [{"name": "vmp", "kind": "biologic", "simulated": True,
                                                       "channels": [{"id": "1", "aux_temperature": True}]}]})
