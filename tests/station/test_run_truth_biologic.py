"""The start window on the Biologic path: the station dies between sending the technique list and storing the
handle, and a later process settles the run with the channel itself (EClib keeps no barcode)."""

from __future__ import annotations

import pytest

from drivers.biologic.channel import BiologicChannel, BiologicConfig
from protocols.cells import load_cell
from protocols.clock import VirtualClock
from protocols.loader import load_protocol
from simulators.biologic import firmware as fw
from simulators.biologic.eclib import SimChannel, SimDevice, SimulatedEClib
from simulators.cells.registry import build_model
from station.runs import RunEnded, RunManager
from station.store import Store

LIBRARY = "protocols/library/"


class Killed(BaseException):
    """SIGKILL inside one process: nothing after it runs."""


def _killed(*_args, **_kwargs):
    raise Killed


@pytest.fixture
def bench(tmp_path):
    """One simulated VMP3 channel with the host cell, and a station process (store + manager) on it."""
    clock = VirtualClock()
    cell = load_cell(LIBRARY + "cells/host-cu-li.yaml")
    model = build_model("li-host", area=cell.area, thickness=cell.thickness)
    lib = SimulatedEClib(clock, {"USB0": SimDevice(5, {0: SimChannel(model, board=fw.ESSENTIAL)})})
    return clock, cell, lib


def _process(tmp_path, clock, lib):
    """What a station process builds: its own store, run manager and driver (a new EClib connection)."""
    driver = BiologicChannel(lib, BiologicConfig("USB0", 0), clock)
    driver.connect()
    return RunManager(Store(tmp_path), clock), driver


def test_a_station_killed_after_the_channel_started_adopts_it(tmp_path, bench, monkeypatch):
    clock, cell, lib = bench
    manager, driver = _process(tmp_path, clock, lib)
    run_id = manager.create(load_protocol(LIBRARY + "p5-eis.yaml"), cell, "bio/1", driver, instrument={},
                            dry_run=False)
    monkeypatch.setattr(manager, "_record_started", _killed)
    with pytest.raises(Killed):
        manager.start(run_id)
    manager.close()
    assert manager.store.run(run_id).state == "starting"
    clock.advance(60)

    later, driver2 = _process(tmp_path, clock, lib)
    later.attach(run_id, driver2)
    later.supervise([run_id], poll_seconds=300)
    row = later.store.run(run_id)
    assert row.state == "finished" and row.handle["test_id"] == "USB0/0@recovered"
    records = later.store.records(run_id)
    eis = records[records["step_index"] == 2]
    assert len(eis) == 54  # the whole spectrum, 20 kHz to 0.1 Hz, although the first process died at start
    assert list(records["seq"]) == list(range(1, len(records) + 1))


def test_a_station_killed_before_the_channel_started_fails_the_run(tmp_path, bench, monkeypatch):
    clock, cell, lib = bench
    manager, driver = _process(tmp_path, clock, lib)
    run_id = manager.create(load_protocol(LIBRARY + "p5-eis.yaml"), cell, "bio/1", driver, instrument={},
                            dry_run=False)
    monkeypatch.setattr(driver.eclib, "start_channel", _killed)  # the techniques are loaded, never started
    with pytest.raises(Killed):
        manager.start(run_id)
    manager.close()

    later, driver2 = _process(tmp_path, clock, lib)
    with pytest.raises(RunEnded, match="never started on the instrument"):
        later.attach(run_id, driver2)
    assert later.store.run(run_id).state == "failed"


def test_limits_only_polling_guards_are_recorded_at_start(tmp_path, bench):
    clock, cell, lib = bench
    manager, driver = _process(tmp_path, clock, lib)
    run_id = manager.create(load_protocol(LIBRARY + "p5-eis.yaml"), cell, "bio/1", driver, instrument={},
                            dry_run=False)
    manager.start(run_id)
    (info,) = [e.message for e in manager.store.events(run_id) if e.kind == "info"]
    # P5 is a rest (OCV) and a PEIS: neither technique takes limit tests (biologic-eclib.md section 3)
    assert info == ("safety limits the instrument cannot enforce itself, checked on every downloaded record "
                    "instead: step 1: voltage_max, voltage_min; step 2: voltage_max, voltage_min, current_max")
