"""The station picks a channel by what each instrument kind declares it can run, with the channel's configured
ranges, and connects to nothing to choose."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.base import ChannelRanges
from protocols.clock import VirtualClock
from protocols.program import (
    Comparison,
    CurrentStep,
    EisStep,
    PowerStep,
    Quantity,
    RestStep,
    StepProgram,
    Termination,
)
from station.config import ConfigError, StationConfig
from station.instruments import DRIVERS, Instruments, kind_capabilities

UNTIL = (Termination(quantity=Quantity.TIME, op=Comparison.GE, value=60.0),)
REST = RestStep(index=1, until=UNTIL)


def program(*steps) -> StepProgram:  # type: ignore[no-untyped-def]
    return StepProgram(protocol="p", cell="c",
                       steps=tuple(s.model_copy(update={"index": i}) for i, s in enumerate(steps, start=1)))


def instruments(tmp_path: Path, *, biologic_first: bool = False) -> Instruments:
    bts = {"name": "bts", "kind": "neware", "simulated": True,
           "channels": [{"id": "21-1-1", "voltage": ["0 V", "5 V"], "current": "10 mA"},
                        {"id": "21-1-2", "voltage": ["0 V", "5 V"], "current": "10 mA"}]}
    vmp = {"name": "vmp", "kind": "biologic", "simulated": True,
           "channels": [{"id": "1", "voltage": ["-10 V", "10 V"], "current": "400 mA"}]}
    config = StationConfig.model_validate({"instruments": [vmp, bts] if biologic_first else [bts, vmp]})
    return Instruments(config, VirtualClock(), tmp_path / "data")


CC = CurrentStep(index=1, kind="charge", current=1e-3, until=UNTIL)
CCCV = CurrentStep(index=1, kind="charge", current=1e-3, hold_voltage=4.2,
                   until=(Termination(quantity=Quantity.CURRENT, op=Comparison.LE, value=1e-4),))
EIS = EisStep(index=1, f_start=1e4, f_end=1, points_per_decade=5, amplitude=0.01)


def test_the_first_free_channel_whose_kind_covers_the_program(tmp_path: Path) -> None:
    chosen = instruments(tmp_path)
    assert chosen.choose_channel(program(REST, CC), set()) == "bts/21-1-1"
    assert chosen.choose_channel(program(REST, CC), {"bts/21-1-1"}) == "bts/21-1-2"
    assert chosen.choose_channel(program(REST, EIS), set()) == "vmp/1"  # impedance: a potentiostat
    # CCCV has no Biologic technique: the BTS, although the potentiostat is listed first
    assert instruments(tmp_path, biologic_first=True).choose_channel(program(CCCV), set()) == "bts/21-1-1"
    assert instruments(tmp_path, biologic_first=True).choose_channel(program(CC), set()) == "vmp/1"
    # 50 mA is beyond the BTS channels' configured 10 mA, within the potentiostat's 400 mA
    big = CC.model_copy(update={"current": 0.05})
    assert chosen.choose_channel(program(big), set()) == "vmp/1"
    assert chosen._drivers == {}  # nothing was built or connected to choose


def test_no_channel_that_can_run_it_is_a_clear_error(tmp_path: Path) -> None:
    chosen = instruments(tmp_path)
    power = PowerStep(index=1, power=1e-3, until=UNTIL)
    with pytest.raises(ConfigError, match=r"^no free channel can run this program \(bts/21-1-1: step 1 \(power\): "
                       r"a neware channel cannot run power steps; .*vmp/1: step 1 \(power\): a biologic channel cannot "
                       r"run power steps\); give --channel or add channels to station.yaml$"):
        chosen.choose_channel(program(power), set())
    with pytest.raises(ConfigError, match=r"^no free channel is configured; give --channel"):
        chosen.choose_channel(program(REST), {"bts/21-1-1", "bts/21-1-2", "vmp/1"})


def test_each_kind_names_its_driver_and_declares_without_an_instrument() -> None:
    ranges = ChannelRanges(0.0, 5.0, 0.01)
    assert set(DRIVERS) == {"neware", "biologic"}
    for kind, driver in DRIVERS.items():
        caps = kind_capabilities(kind, ranges)
        assert caps == driver.declared_capabilities(ranges) and caps.instrument == kind and caps.ranges == ranges
