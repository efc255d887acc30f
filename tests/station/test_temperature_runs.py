"""Runs with temperature steps, end to end on the simulated instruments: the station runs the instrument segments
between the steps, sets the simulated chamber (an ESPEC on a pseudo-terminal, through pyvisa-py and pyserial),
waits until it is stable, and numbers the run's records on across segments. Virtual clock: days in seconds."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from drivers.base import ChannelState, DriverError, TestGone
from protocols.cells import load_cell
from protocols.loader import load_protocol, load_protocol_text
from station.config import load_config
from station.run_policy import RunState
from station.runs import RunError
from station.session import Station

CELL = load_cell("predeposited-ncm622")

TWO_TEMPERATURES = """
protocol: two-temperatures
parameters: {first: 27 degC, second: 45 degC, n1: 1, n2: 1}
requires: [capacity]
safety: {voltage: [2.5 V, 4.4 V], current: 2C, temperature: 50 degC}
record: {every: 60 s}
steps:
  - temperature: {set: "${first}", band: 0.5 degC, stable_for: 10 min, max_wait: 2 h}
  - rest: 10 min
  - repeat: ${n1}
    tag: low
    steps:
      - charge: {current: 0.5C, until: {voltage: 4.3 V}}
      - discharge: {current: 0.5C, until: {voltage: 3.0 V}}
  - temperature: {set: "${second}", band: 0.5 degC, stable_for: 10 min, max_wait: 2 h}
  - repeat: ${n2}
    tag: high
    steps:
      - charge: {current: 0.5C, until: {voltage: 4.3 V}}
      - discharge: {current: 0.5C, until: {voltage: 3.0 V}}
"""

STATION = """
data_dir: {data}
poll_interval: 10 s
instruments:
  - name: bts
    kind: neware
    simulated: true
    channels:
      - {{id: 21-1-1, voltage: [-1 V, 5 V], current: 10 mA}}
      - {{id: 21-1-2, voltage: [-1 V, 5 V], current: 10 mA}}
      - {{id: 21-1-3, voltage: [-1 V, 5 V], current: 10 mA, aux_temperature: true}}
chambers:
  - {{name: oven, simulated: true, channels: [bts/21-1-1, bts/21-1-2], door_alarms: [1]}}
"""


@pytest.fixture
def station(tmp_path: Path):
    (tmp_path / "station.yaml").write_text(STATION.format(data=tmp_path / "data"))
    cfg, _ = load_config(str(tmp_path / "station.yaml"))
    station = Station.open(cfg, dry_run=True)
    yield station
    station.close()


def protocol(**sets: str):
    return load_protocol_text(textwrap.dedent(TWO_TEMPERATURES), "two.yaml", overrides=sets or None)


def supervise(station: Station, run_ids: list[str], poll_s: float = 600.0) -> None:
    station.manager.supervise(run_ids, poll_s)


def events(station: Station, run_id: str) -> list[str]:
    return [e.message for e in station.store.events(run_id) if e.kind != "state"]


def _at_second_wait(station: Station) -> str:
    """A run of TWO_TEMPERATURES on 21-1-1, its first segment done, waiting for the chamber's second set point."""
    run_id = station.launch(protocol(), CELL, "bts/21-1-1")
    manager = station.manager
    while not (manager.active[run_id].place.index == 1 and manager.temperature.waiting(manager.active[run_id])):
        manager.poll_round([run_id])
        station.clock.sleep(600.0)
    return run_id


def test_p8_cycles_at_27_then_45_degc_with_the_temperature_in_every_record_and_the_resistance_following_it(
        station: Station) -> None:
    loaded = load_protocol("p8-temperature-cycling", {"cycles_27": "2", "cycles_45": "2"})
    run_id = station.launch(loaded, CELL, "bts/21-1-3")  # in no chamber of station.yaml: a dry run gives it one
    supervise(station, [run_id], poll_s=30_000.0)
    row = station.store.run(run_id)
    assert row.state is RunState.FINISHED
    said = events(station, run_id)
    chamber = "sim-chamber-bts-21-1-3"
    assert said[0] == f"chamber {chamber} set to 27 °C"
    assert said[1].startswith(f"chamber {chamber} stable at 27.0 °C (27 °C ± 0.5 °C held for 30 min")
    assert said[2:4] == ["starting segment 1 of 2 on 21-1-3", "segment 1 of 2 started: test 1 on 21-1-3"]
    assert said[4] == ("segment 1 of 2 finished (program completed); waiting for the chamber: 45 °C ± 0.5 °C held "
                       "for 60 min (at most 4 h)")
    assert said[5] == f"chamber {chamber} set to 45 °C"
    assert said[7:] == ["starting segment 2 of 2 on 21-1-3", "segment 2 of 2 started: test 2 on 21-1-3"]

    records = station.store.records(run_id)
    program = loaded.bind(CELL)
    assert np.array_equal(records["seq"], np.arange(1, len(records) + 1))
    assert np.all(np.diff(records["test_time"]) >= 0)
    tags = np.array([program.step(int(i)).tag for i in records["step_index"]])
    low = np.isin(tags, ["formation", "cycling-27"]) | (records["step_index"] == 2)
    high = tags == "cycling-45"
    assert low.sum() + high.sum() == len(records)
    assert np.all(np.abs(records["temperature"][low] - 27.0) <= 0.5)
    assert np.all(np.abs(records["temperature"][high] - 45.0) <= 0.5)
    # whole-program step indices and cycles: formation 1-2, cycling at 27 degC 3-4, at 45 degC 5-6
    assert sorted(set(records["step_index"][high].tolist())) == [10, 11]
    assert sorted(set(records["cycle"][low].tolist())) == [1, 2, 3, 4]
    assert sorted(set(records["cycle"][high].tolist())) == [5, 6]
    # the second segment's test time goes on from the run's start: after the first's end and the wait
    first_high = np.flatnonzero(high)[0]
    gap = records["test_time"][first_high] - records["test_time"][first_high - 1]
    assert 3600.0 <= gap <= 4 * 3600.0 + 600.0  # stable_for 60 min <= the wait <= max_wait (+ one round)

    # the simulated cell took the chamber's temperature, and its resistance followed: a smaller gap between the
    # mean charge and discharge voltages at 45 degC than at 27 degC
    model = station.instruments._models["bts/21-1-3"]
    assert model.p.temperature == pytest.approx(318.15)  # the model's own parameter, by which it computes
    # the channel's thermocouple on the cell (its T1, one decimal) read the cell's temperature: 27 degC through the
    # first segment, 45 degC in the second (the chamber's air and the cell agree once stable)
    assert set(records["aux_temperature"][low].tolist()) == {27.0}
    assert set(records["aux_temperature"][high].tolist()) == {45.0}

    def hysteresis(cycle: int) -> float:
        mine = records[records["cycle"] == cycle]
        return float(mine["voltage"][mine["current"] > 0].mean() - mine["voltage"][mine["current"] < 0].mean())

    assert hysteresis(6) < 0.75 * hysteresis(4)


def test_a_run_waits_for_the_other_run_in_its_chamber_before_the_chamber_changes(station: Station) -> None:
    quick = station.launch(protocol(n1="1"), CELL, "bts/21-1-1")
    slow = station.launch(protocol(n1="3"), CELL, "bts/21-1-2")
    supervise(station, [quick, slow])
    assert station.store.run(quick).state is RunState.FINISHED
    assert station.store.run(slow).state is RunState.FINISHED
    said = events(station, quick)
    assert f"waiting for run {slow} on channel bts/21-1-2, which shares chamber oven, to reach a temperature step" \
        in said
    # the chamber went to 45 degC only once the slow run had finished its cycles at 27 degC
    slow_records = station.store.records(slow)
    quick_records = station.store.records(quick)
    # (cycles: the rest and the cycles at 27 degC are 1..n1, the cycle at 45 degC is n1 + 1)
    assert sorted(set(quick_records["cycle"].tolist())) == [1, 2]
    assert sorted(set(slow_records["cycle"].tolist())) == [1, 2, 3, 4]
    slow_low_end = station.store.run(slow).started_at + slow_records["test_time"][slow_records["cycle"] <= 3][-1]
    quick_high_start = station.store.run(quick).started_at + quick_records["test_time"][quick_records["cycle"] == 2][0]
    assert quick_high_start > slow_low_end
    for records in (slow_records, quick_records):
        last_low = records["cycle"] < records["cycle"].max()
        assert np.all(np.abs(records["temperature"][last_low] - 27.0) <= 0.5)
        assert np.all(np.abs(records["temperature"][~last_low] - 45.0) <= 0.5)
    oven = station.chambers.units["oven"].simulator
    assert [line for line in oven.lines if line.startswith("TEMP, S")] == ["TEMP, S27.0", "TEMP, S27.0",
                                                                          "TEMP, S45.0", "TEMP, S45.0"]


def test_runs_that_disagree_on_the_chambers_temperature_the_later_is_refused(station: Station) -> None:
    first = station.launch(protocol(), CELL, "bts/21-1-1")
    station.clock.sleep(1.0)
    other = station.launch(protocol(first="35 degC"), CELL, "bts/21-1-2")
    supervise(station, [first, other])
    assert station.store.run(first).state is RunState.FINISHED
    row = station.store.run(other)
    assert row.state is RunState.FAILED
    assert row.message == (f"chamber oven is shared with run {first} on channel bts/21-1-1, which waits for 27 °C; "
                           "this run asks for 35 °C. Runs sharing a chamber must agree on its temperature")
    assert station.store.record_count(other) == 0  # nothing was ever sent to its channel


def test_a_chamber_never_stable_fails_the_run_after_max_wait_with_the_channel_at_rest(station: Station) -> None:
    run_id = station.launch(protocol(), CELL, "bts/21-1-1")
    station.manager.poll_round([run_id])  # the chamber is opened and set
    oven = station.chambers.units["oven"]
    oven.simulator.open_door()  # the controller is cut off: the air drifts to the room's 23 degC
    supervise(station, [run_id], poll_s=60.0)
    row = station.store.run(run_id)
    assert row.state is RunState.FAILED
    assert row.message.startswith("temperature step 1: chamber oven did not hold 27 °C ± 0.5 °C for 10 min within "
                                  "max_wait 2 h (last reading: 2")
    assert row.message.endswith(" °C, door open); the cell is at rest, nothing runs on the channel")
    assert float(row.message.split("last reading: ")[1].split(" °C")[0]) == 23.0  # the simulated room
    assert "chamber oven: its door is open; the stable time starts again when it is closed" in events(station, run_id)
    assert station.store.record_count(run_id) == 0
    assert (row.updated_at - row.started_at) == pytest.approx(2 * 3600.0, abs=61.0)


def test_stop_and_pause_while_waiting(station: Station) -> None:
    run_id = station.launch(protocol(), CELL, "bts/21-1-1")
    station.manager.poll_round([run_id])
    with pytest.raises(RunError, match="is waiting for its chamber and nothing runs on channel 21-1-1 to pause"):
        station.manager.pause(run_id)
    assert station.manager.stop(run_id, who="ana") is True
    row = station.store.run(run_id)
    assert row.state is RunState.STOPPED
    assert row.message == ("stopped by the operator; the run was waiting for its chamber, and nothing had "
                           "been sent to the channel yet")


def test_a_restarted_station_goes_on_waiting_and_runs_the_next_segment(station: Station) -> None:
    """The place in the program is stored with the run: a new engine adopts a run that waits between segments."""
    run_id = _at_second_wait(station)
    manager = station.manager
    stored = station.store.record_count(run_id)
    manager.close()  # the station process ends here; the instrument and chamber go on
    from station.runs import RunManager

    again = RunManager(station.store, station.clock)
    again.temperature.chamber_of = station.chambers.of
    again.temperature.cell_temperature = station.instruments.set_cell_temperature
    again.attach(run_id, station.instruments.driver("bts/21-1-1"))
    assert again.active[run_id].place.phase == "waiting" and int(again.active[run_id].last_record["cycle"]) == 1
    again.supervise([run_id], 600.0)
    assert station.store.run(run_id).state is RunState.FINISHED
    records = station.store.records(run_id)
    assert np.array_equal(records["seq"], np.arange(1, len(records) + 1)) and len(records) > stored
    assert sorted(set(records["cycle"][stored:].tolist())) == [2]
    again.close()


def test_a_chamber_leaving_its_band_while_the_run_cycles_raises_one_alarm_and_one_note_when_back(
        station: Station) -> None:
    alerts: list[tuple[str, str, str]] = []
    station.manager.on_alert = lambda kind, run_id, message: alerts.append((kind, run_id, message))
    run_id = station.launch(protocol(n2="2"), CELL, "bts/21-1-1")
    manager = station.manager
    run = manager.active[run_id]
    while not (run.place.index == 1 and run.place.phase == "running"):
        manager.poll_round([run_id])
        station.clock.sleep(600.0)
    oven = station.chambers.units["oven"]
    progress = manager.progress(run_id)
    assert progress.chamber_set_c == 45.0 and progress.chamber_c == pytest.approx(45.0, abs=0.5)
    oven.simulator.open_door()
    for _ in range(3):  # the air falls to the room's 23 degC within minutes: one alarm, not one per round
        station.clock.sleep(600.0)
        manager.poll_round([run_id])
    oven.simulator.close_door()
    for _ in range(6):
        station.clock.sleep(600.0)
        manager.poll_round([run_id])
    said = [e.message for e in station.store.events(run_id) if "chamber oven at" in e.message or "back within" in
            e.message]
    assert len(said) == 2
    assert said[0].startswith("chamber oven at 2") and said[0].endswith(
        " °C, more than 2 °C from the set point 45 °C while the run cycles; its door is open; its records carry the "
        "temperature")
    assert said[1].startswith("chamber oven back within 2 °C of 45 °C (")
    assert [(kind, rid) for kind, rid, _ in alerts] == [("temperature", run_id)]
    # the records of the excursion carry it
    records = station.store.records(run_id)
    assert records["temperature"][records["cycle"] == 2].min() < 30.0


def test_a_segment_start_whose_reply_is_lost_is_settled_by_the_instrument_and_never_sent_twice(
        station: Station) -> None:
    run_id = _at_second_wait(station)
    manager = station.manager
    run = manager.active[run_id]
    driver = run.driver
    real_start = driver.start
    starts: list[str] = []

    def start_then_lose_the_reply(program, barcode):
        starts.append(barcode)
        real_start(program, barcode)
        raise DriverError("the reply to start was lost")

    driver.start = start_then_lose_the_reply
    while run.place.phase != "starting":
        manager.poll_round([run_id])
        station.clock.sleep(60.0)
    assert starts == [run_id]
    stored = station.store.run(run_id).handle["segment"]
    assert stored["phase"] == "starting" and stored["marker"] == {"test_before": "1"}  # the intent survives a crash
    manager.poll_round([run_id])
    assert run.place.phase == "running" and run.handle.test_id == "2" and starts == [run_id]
    said = events(station, run_id)
    assert "start of segment 2 failed (the reply to start was lost); asking the instrument whether it started before " \
        "trying again" in said
    assert said[-1] == "segment 2 of 2 adopted (it had started): test 2 on 21-1-1"
    manager.supervise([run_id], 600.0)
    assert station.store.run(run_id).state is RunState.FINISHED and starts == [run_id]


AT_TWO_TEMPERATURES = """
campaign: p3-at-two-temperatures
stages:
  - name: at-27
    protocol: p3-full-cell-cycling
    set: {cycles: 1}
    instrument: neware
    temperature: {set: 27 degC, band: 0.5 degC, stable_for: 10 min, max_wait: 2 h}
  - name: at-45
    protocol: p3-full-cell-cycling
    set: {cycles: 1}
    instrument: neware
    temperature: 45 degC
"""


def test_a_campaign_runs_one_protocol_at_two_temperatures_each_run_opening_with_its_chamber_step(
        station: Station, tmp_path: Path) -> None:
    from protocols.campaign import load_campaign_text
    from station.campaigns import CampaignEngine, start_campaign
    from station.store import SampleRow

    station.store.create_sample(SampleRow(id="S1", name="S1", created_at=0.0, cell=CELL.model_dump(mode="json")))
    loaded = load_campaign_text(textwrap.dedent(AT_TWO_TEMPERATURES), str(tmp_path / "c.yaml"), CELL,
                                base_dir=tmp_path)
    row = start_campaign(station.store, station.clock, loaded, "S1", channel="bts/21-1-1", who="ana",
                         config=station.config)
    engine = CampaignEngine(station)
    for _ in range(5000):
        engine.tick()
        if station.store.campaign(row.id).state in ("finished", "stopped", "failed"):
            break
        runs = [run_id for run_id, run in station.manager.active.items() if not run.done]
        if runs:
            station.manager.poll_round(runs)
        station.clock.sleep(3600.0)
    assert station.store.campaign(row.id).state == "finished"
    first, second = sorted(station.store.runs_of_campaign(row.id), key=lambda r: r.created_at)
    for run, celsius in ((first, 27.0), (second, 45.0)):
        assert run.state is RunState.FINISHED
        program = run.program if isinstance(run.program, str) else None
        steps = __import__("json").loads(program)["steps"] if program else []
        assert steps[0]["kind"] == "temperature" and steps[0]["setpoint"] == celsius
        records = station.store.records(run.id)
        assert np.all(np.abs(records["temperature"] - celsius) <= 1.0)
        # the protocol's own cycle numbers: the chamber step counts like the rest before formation
        assert sorted(set(records["cycle"].tolist())) == [1, 2, 3]
        said = events(station, run.id)
        assert said[0] == f"chamber oven set to {celsius:g} °C"


ENDS_EARLY = """
protocol: ends-early
requires: [capacity]
safety: {voltage: [2.5 V, 4.4 V], current: 2C}
record: {every: 60 s}
steps:
  - temperature: {set: 27 degC, band: 0.5 degC, stable_for: 10 min, max_wait: 2 h}
  - charge: {current: 0.5C, until: [{voltage: 4.3 V}, {time: 10 min, then: end}]}
  - discharge: {current: 0.5C, until: {voltage: 3.0 V}}
  - temperature: {set: 45 degC, band: 0.5 degC, stable_for: 10 min, max_wait: 2 h}
  - rest: 10 min
"""


def test_a_then_end_met_inside_a_segment_ends_the_run_without_the_temperature_steps_after_it(
        station: Station) -> None:
    loaded = load_protocol_text(textwrap.dedent(ENDS_EARLY), "early.yaml")
    run_id = station.launch(loaded, CELL, "bts/21-1-1")
    supervise(station, [run_id])
    row = station.store.run(run_id)
    assert row.state is RunState.FINISHED
    records = station.store.records(run_id)
    assert set(records["step_index"].tolist()) == {2}  # the charge, ended after 10 min: no discharge
    said = events(station, run_id)
    assert ("the program ended at step 2 (a 'then: end' limit), before the end of segment 1 of 2: the temperature "
            "steps after it are not carried out") in said
    assert not any("set to 45" in line for line in said)


EIS_TWICE = """
protocol: eis-at-two-temperatures
record: {every: 10 s}
steps:
  - temperature: {set: 25 degC, band: 0.5 degC, stable_for: 10 min, max_wait: 2 h}
  - eis: {from: 100 kHz, to: 1 Hz, points_per_decade: 5, amplitude: 10 mV}
  - temperature: {set: 60 degC, band: 0.5 degC, stable_for: 10 min, max_wait: 2 h}
  - eis: {from: 100 kHz, to: 1 Hz, points_per_decade: 5, amplitude: 10 mV}
"""


def test_a_biologic_channel_measures_eis_at_two_chamber_temperatures_and_the_electrolyte_conducts_better_hot(
        tmp_path: Path) -> None:
    cfg, _ = load_config(None)
    station = Station.open(cfg.model_copy(update={"data_dir": str(tmp_path / "data")}), dry_run=True)
    try:
        run_id = station.launch(load_protocol_text(textwrap.dedent(EIS_TWICE), "eis.yaml"), load_cell("llto-li"),
                                "sim-biologic/1")
        supervise(station, [run_id])
        assert station.store.run(run_id).state is RunState.FINISHED
        records = station.store.records(run_id)
        cold, hot = records[records["step_index"] == 2], records[records["step_index"] == 4]
        assert len(cold) == len(hot) == 26  # 5 points a decade over 5 decades, both ends
        assert np.all(np.abs(cold["temperature"] - 25.0) <= 0.5) and np.all(np.abs(hot["temperature"] - 60.0) <= 0.5)
        # the second spectrum follows the first by the chamber's wait (not by the dry run's hours-long rounds)
        gap = hot["test_time"][0] - cold["test_time"][-1]
        assert 600.0 <= gap <= 2 * 3600.0 + 60.0
        r_cold = cold["z_real"][np.argmax(cold["frequency"])]
        r_hot = hot["z_real"][np.argmax(hot["frequency"])]
        assert r_hot < 0.7 * r_cold  # the ohmic resistance falls with temperature (Arrhenius)
    finally:
        station.close()


def test_a_set_point_the_chamber_refuses_fails_the_run_at_once(station: Station) -> None:
    run_id = station.launch(protocol(), CELL, "bts/21-1-1")
    station.manager.poll_round([run_id])  # opens the chamber and sets 27 degC
    station.chambers.units["oven"].simulator.upper_limit_c = 40.0  # its own high-temperature alarm limit
    supervise(station, [run_id])
    row = station.store.run(run_id)
    assert row.state is RunState.FAILED
    assert row.message.startswith("temperature step 6: chamber oven refused 45 °C: ASRL/dev/pts/")
    assert "out of range" in row.message.lower()
    assert row.message.endswith("; the cell is at rest, nothing runs on the channel")


def test_a_chamber_that_cannot_be_set_fails_the_run_after_max_wait(station: Station) -> None:
    from station.chambers import ChamberUnavailable

    oven = station.chambers.units["oven"]

    def silent_read():  # what a chamber that no longer answers gives (the serial path's own faults are tested
        oven.error = "chamber oven: no answer"  # in tests/drivers/chamber; here the wait's rule is)
        return None

    def silent_hold(celsius: float) -> float:
        raise ChamberUnavailable("chamber oven: no answer to 'TEMP, S27.0'")

    oven.read, oven.hold = silent_read, silent_hold
    run_id = station.launch(protocol(), CELL, "bts/21-1-1")
    supervise(station, [run_id], poll_s=600.0)
    row = station.store.run(run_id)
    assert row.state is RunState.FAILED
    assert row.message.startswith("temperature step 1: chamber oven could not be set to 27 °C within max_wait 2 h (")
    assert any(line.startswith("could not set the chamber: ") for line in events(station, run_id))
    assert station.store.record_count(run_id) == 0


def _to_starting(station: Station, *, reaches_the_channel: bool):
    """A run whose second segment's start was sent and its reply lost (it reached the channel or not)."""
    run_id = _at_second_wait(station)
    manager = station.manager
    run = manager.active[run_id]
    real_start = run.driver.start
    starts: list[str] = []

    def start(program, barcode):
        starts.append(barcode)
        if reaches_the_channel:
            real_start(program, barcode)
        raise DriverError("reply lost")

    run.driver.start = start
    while run.place.phase != "starting":
        manager.poll_round([run_id])
        station.clock.sleep(60.0)
    return run_id, run, starts


def test_a_stop_while_a_start_is_unsettled_adopts_the_started_segment_before_believing_a_stale_status(
        station: Station) -> None:
    run_id, run, starts = _to_starting(station, reaches_the_channel=True)
    real_status = run.driver.status
    run.driver.status = lambda: replace(real_status(), state=ChannelState.FINISHED)  # the first segment's status
    station.manager.stop(run_id, "stopped by the operator")
    assert station.store.run(run_id).state is RunState.RUNNING  # not STOPPED: the segment's test runs
    assert run.place.phase == "running" and run.handle.test_id == "2"
    assert starts == [run.barcode or run_id]  # adopted, never sent again
    run.driver.status = real_status
    supervise(station, [run_id])
    row = station.store.run(run_id)
    assert row.state is RunState.STOPPED  # once the channel confirmed the adopted test stopped
    assert run.driver.status().state in (ChannelState.STOPPED, ChannelState.FINISHED)


def test_a_stop_never_sends_a_start_and_waits_for_a_channel_that_still_runs(station: Station) -> None:
    run_id, run, starts = _to_starting(station, reaches_the_channel=False)
    real_status = run.driver.status
    run.driver.status = lambda: replace(real_status(), state=ChannelState.RUNNING)
    station.manager.stop(run_id, "stopped by the operator")
    assert starts == [run.barcode or run_id]  # the lost start only: none after the stop
    assert station.store.run(run_id).state is RunState.RUNNING and run.stop_requested is not None
    assert events(station, run_id)[-1] == ("channel 21-1-1 reports 'running' while the run waits; the stop is kept "
                                           "and asked again next round")
    run.driver.status = real_status  # the channel is idle after all (its first segment ended)
    station.manager.poll_round([run_id])
    assert starts == [run.barcode or run_id]
    assert station.store.run(run_id).state is RunState.STOPPED


def test_a_stop_before_anything_was_sent_ends_without_asking_a_channel_never_attached(station: Station) -> None:
    text = textwrap.dedent(TWO_TEMPERATURES).replace(
        "  - rest: 10 min\n", "  - temperature: {set: 30 degC, band: 0.5 degC, stable_for: 10 min, max_wait: 2 h}\n"
                              "  - rest: 10 min\n", 1)
    run_id = station.launch(load_protocol_text(text, "three.yaml"), CELL, "bts/21-1-1")
    run = station.manager.active[run_id]
    while run.place.index == 0:  # the first temperature step done: the second one, nothing sent yet
        station.manager.poll_round([run_id])
        station.clock.sleep(600.0)
    assert run.place.phase == "waiting" and not run.handle.test_id

    def never() -> None:
        raise AssertionError("asked a channel nothing was sent to")

    run.driver.status = never
    station.manager.stop(run_id, "stopped by the operator")
    row = station.store.run(run_id)
    assert row.state is RunState.STOPPED
    assert row.message.endswith("nothing had been sent to the channel yet")


def test_a_temperature_step_inside_a_cycle_keeps_its_records_in_that_cycle(station: Station) -> None:
    text = textwrap.dedent("""
        protocol: charge-warm-discharge
        requires: [capacity]
        safety: {voltage: [2.5 V, 4.4 V], current: 2C, temperature: 50 degC}
        record: {every: 60 s}
        steps:
          - charge: {current: 0.5C, until: {voltage: 4.3 V}}
          - temperature: {set: 40 degC, band: 0.5 degC, stable_for: 10 min, max_wait: 2 h}
          - discharge: {current: 0.5C, until: {voltage: 3.0 V}}
          - rest: 10 min
          - repeat: 2
            steps:
              - charge: {current: 0.5C, until: {voltage: 4.3 V}}
              - discharge: {current: 0.5C, until: {voltage: 3.0 V}}
        """)
    loaded = load_protocol_text(text, "warm.yaml")
    run_id = station.launch(loaded, CELL, "bts/21-1-1")
    supervise(station, [run_id])
    assert station.store.run(run_id).state is RunState.FINISHED
    records = station.store.records(run_id)
    steps = records["step_index"]
    # the charge, the discharge after the temperature step and the rest are one cycle (the program's own count,
    # as for the same steps without the temperature step); the loop's two passes are cycles 2 and 3
    assert sorted(set(records["cycle"][steps <= 4].tolist())) == [1]
    assert sorted(set(records["cycle"][steps == 3].tolist())) == [1]
    assert sorted(set(records["cycle"][steps >= 5].tolist())) == [2, 3]


def test_a_waiting_run_whose_finished_test_is_gone_says_so_when_attached_again(station: Station) -> None:
    run_id = _at_second_wait(station)
    manager = station.manager
    manager.close()
    from station.runs import RunManager

    driver = station.instruments.driver("bts/21-1-1")

    def gone(handle) -> None:
        raise TestGone(f"channel 21-1-1 no longer holds test {handle.test_id} (the BTS was reset)")

    driver.attach = gone
    again = RunManager(station.store, station.clock)
    again.attach(run_id, driver)
    assert station.store.run(run_id).state is RunState.RUNNING
    assert again.active[run_id].place.phase == "waiting"
    warning = [e for e in station.store.events(run_id) if e.kind == "warning"][-1]
    assert warning.message == ("channel 21-1-1 no longer holds test 1 (the BTS was reset); the run waits for its "
                               "chamber and none of its tests runs; the next segment starts only on a channel the "
                               "instrument reports free")
    again.close()
