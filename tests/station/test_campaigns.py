"""The campaign engine carrying campaigns out on simulated instruments, in-process and on a virtual clock: chunks and
RPTs with the cycle numbers continued, a retention stop evaluated across chunks, the wait for an operator when the
next stage is on another instrument, holds after runs that did not finish, stops, and starts left half-done by a
service that died. The real `station serve` process runs a campaign in tests/station/test_campaign_service.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from protocols.campaign import load_campaign_text
from protocols.cells import load_cell
from station.campaigns import (
    NOT_STARTED,
    CampaignEngine,
    CampaignError,
    request_confirm,
    request_stop,
    start_campaign,
)
from station.config import load_config
from station.session import Station
from station.store import SampleRow

CELL = load_cell("anode-free-ncm622")
CYCLING = """
protocol: fast-cycling
parameters: {cycles: 3, rate: 1C}
record: {every: 60 s}
steps:
  - rest: 1 min
  - repeat: ${cycles}
    tag: cycling
    steps:
      - charge: {current: "${rate}", until: {voltage: 4.2 V}}
      - discharge: {current: "${rate}", until: {voltage: 2.75 V}}
"""
EIS = """
protocol: quick-eis
steps:
  - rest: 2 s
  - eis: {mode: potentio, from: 10 kHz, to: 100 Hz, amplitude: 10 mV, bias: ocv, points_per_decade: 2}
"""
CAMPAIGN = """
campaign: cycling-then-eis
stages:
  - name: cycling
    protocol: cycling.yaml
    instrument: neware
    chunks: {cycles: 3}
    rpt: {protocol: cycling.yaml, set: {cycles: 1, rate: 0.5C}}
    until: {retention: "< 99.75 % of cycle 1", cycles: 12}
  - name: eis
    protocol: eis.yaml
    instrument: biologic
"""
STATION = """
data_dir: {data}
poll_interval: 60 s
instruments:
  - name: bts
    kind: neware
    simulated: true
    channels:
      - {{id: 21-1-1, voltage: [-1 V, 5 V], current: 10 mA}}
      - {{id: 21-1-2, voltage: [-1 V, 5 V], current: 10 mA}}
  - name: bio
    kind: biologic
    simulated: true
    channels:
      - {{id: "1", voltage: [-10 V, 10 V], current: 400 mA}}
      - {{id: "2", voltage: [-10 V, 10 V], current: 400 mA}}
"""


class Alerts:
    def __init__(self):
        self.sent: list[tuple[str, str, str]] = []

    def notify(self, kind: str, subject: str, message: str) -> None:
        self.sent.append((kind, subject, message))

    def close(self) -> None:
        pass


@pytest.fixture
def station(tmp_path):
    (tmp_path / "cycling.yaml").write_text(CYCLING)
    (tmp_path / "eis.yaml").write_text(EIS)
    (tmp_path / "station.yaml").write_text(STATION.format(data=tmp_path / "data"))
    cfg, _ = load_config(str(tmp_path / "station.yaml"))
    station = Station.open(cfg, dry_run=True)  # in-process simulators on a virtual clock: hours in milliseconds
    station.alerts = Alerts()  # type: ignore[assignment]
    station.store.create_sample(SampleRow(id="S1", name="S1", created_at=0.0, cell=CELL.model_dump(mode="json")))
    yield station
    station.close()


def begin(station: Station, tmp_path: Path, text: str = CAMPAIGN, channel: str | None = "bts/21-1-1"):
    loaded = load_campaign_text(textwrap.dedent(text), str(tmp_path / "c.yaml"), CELL, base_dir=tmp_path)
    return start_campaign(station.store, station.clock, loaded, "S1", channel=channel, who="ana",
                          config=station.config)


def rounds(station: Station, engine: CampaignEngine, until, limit: int = 20_000, poll_s: float | None = None
           ) -> list[str]:
    """Service rounds (campaigns, then supervision) on the virtual clock until ``until()``; the notes said."""
    notes: list[str] = []
    for _ in range(limit):
        notes += engine.tick()
        if until():
            return notes
        runs = [run_id for run_id, run in station.manager.active.items() if not run.done]
        if runs:
            station.manager.poll_round(runs)
        station.clock.sleep(poll_s or station.config.poll_seconds)
    raise AssertionError(f"not reached; said: {notes[-5:]}")


def state(station: Station, campaign_id: str) -> str:
    return station.store.campaign(campaign_id).state


def test_chunks_rpts_a_retention_stop_a_move_to_the_biologic_and_the_end(station, tmp_path):
    row = begin(station, tmp_path)
    engine = CampaignEngine(station)
    store = station.store
    notes = rounds(station, engine, lambda: state(station, row.id) == "waiting")
    waiting = store.campaign(row.id)
    move = ("stage eis runs on a biologic channel: move sample S1 from bts/21-1-1 to bio/1, then confirm with "
            f"`station campaign confirm {row.id}`")
    assert (waiting.stage, waiting.location, waiting.waiting, waiting.pending) == (
        1, "bts/21-1-1", move, {"stage": 1, "role": "run", "chunk": None, "first_cycle": None, "cycles": None,
                                "target": "bio/1"})
    assert station.alerts.sent == [("campaign", row.id, f"sample S1: waits for an operator: {move}")]  # type: ignore
    # the retention of cycle 1 falls below 99.75 % at cycle 8, in chunk 3 (cycles 7-9): cycling ends after it
    steps = store.campaign_steps(row.id)
    assert [(s.role, s.chunk, s.first_cycle, s.channel, s.outcome, s.parameters) for s in steps] == [
        ("chunk", 1, 1, "bts/21-1-1", "finished", {"cycles": "3"}),
        ("rpt", 1, None, "bts/21-1-1", "finished", {"cycles": "1", "rate": "0.5C"}),
        ("chunk", 2, 4, "bts/21-1-1", "finished", {"cycles": "3"}),
        ("rpt", 2, None, "bts/21-1-1", "finished", {"cycles": "1", "rate": "0.5C"}),
        ("chunk", 3, 7, "bts/21-1-1", "finished", {"cycles": "3"}),
        ("rpt", 3, None, "bts/21-1-1", "finished", {"cycles": "1", "rate": "0.5C"})]
    # each run numbers its own cycles (its rest belongs to its first); the stage numbers them on: 1-3, 4-6, 7-9
    assert [[c[0] for c in s.cycles or []] for s in steps] == [[1, 2, 3], [1], [1, 2, 3], [1], [1, 2, 3], [1]]
    discharge = [c[2] for s in steps if s.role == "chunk" for c in s.cycles or []]
    retention = [q / discharge[0] for q in discharge]
    assert [round(r * 100, 2) for r in retention] == [100.0, 99.97, 99.94, 99.88, 99.85, 99.82, 99.76, 99.73, 99.7]
    said = [n.split(": ", 1)[1] for n in notes]
    assert said[1] == "stage cycling, chunk 1 finished: cycles 1-3 (retention 99.9 % of cycle 1, CE 99.80 %); the " \
                      "RPT runs next"
    assert said[7] == "stage cycling, RPT after chunk 2 finished; cycling goes on from cycle 7"
    assert said[9] == ("stage cycling, chunk 3 finished: cycles 7-9 (retention 99.7 % of cycle 1, CE 99.80 %); the "
                       "discharge capacity of cycle 9 is 99.7 % of cycle 1 (until retention < 99.75 % of cycle 1): "
                       "cycling ends after the RPT")
    assert said[-2:] == ["stage cycling done (9 cycles)", f"waiting for an operator: {move}"]

    with pytest.raises(CampaignError, match="stage eis runs on a biologic channel; bts/21-1-2 is neware"):
        request_confirm(store, station.clock, station.config, row.id, "bo", "bts/21-1-2")
    request_confirm(store, station.clock, station.config, row.id, "bo")
    rounds(station, engine, lambda: not store.campaign(row.id).active)
    done = store.campaign(row.id)
    assert (done.state, done.message, done.location, done.confirmed_by, done.waiting) == (
        "finished", "all 2 stages done", "bio/1", "bo", None)
    eis = store.campaign_steps(row.id)[-1]
    assert (eis.stage_name, eis.role, eis.channel, eis.outcome, eis.cycles) == ("eis", "run", "bio/1", "finished", [])
    runs = store.runs_of_campaign(row.id)
    assert [(r.campaign_stage, r.sample_id, r.state, r.channel) for r in runs] == \
        [("cycling", "S1", "finished", "bts/21-1-1")] * 6 + [("eis", "S1", "finished", "bio/1")]
    assert [r.id for r in runs] == [s.run_id for s in store.campaign_steps(row.id)]
    operator = [(e.message, e.who) for e in store.campaign_events(row.id) if e.kind == "operator"]
    assert operator == [
        ("started by ana on sample S1: 2 stages (cycling, eis); the sample is on bts/21-1-1", "ana"),
        ("confirmed by bo: the sample is on bio/1", "bo"),
        ("carried out the confirmation of bo: sample S1 is on bio/1", "bo")]
    assert station.alerts.sent[-1] == ("campaign", row.id, "sample S1: campaign finished: all 2 stages done")  # type: ignore


def test_a_stopped_chunk_holds_the_campaign_a_confirmation_goes_on_and_a_stop_ends_it(station, tmp_path):
    row = begin(station, tmp_path)
    engine = CampaignEngine(station)
    store = station.store
    rounds(station, engine, lambda: (steps := store.campaign_steps(row.id)) and steps[-1].role == "chunk"
           and steps[-1].chunk == 2 and store.record_count(steps[-1].run_id) > 200)
    chunk2 = store.campaign_steps(row.id)[-1].run_id
    store.request_stop(chunk2, "stopped by the operator", station.clock.unix())  # the run is stopped, not the campaign
    rounds(station, engine, lambda: state(station, row.id) == "held")
    held = store.campaign(row.id)
    ran = store.campaign_steps(row.id)[-1]
    assert (ran.outcome, ran.message) == ("stopped", "stopped by the operator")
    n = len(ran.cycles or [])
    reason = (f"stage cycling, chunk 2: run {chunk2} ended stopped (stopped by the operator); `station campaign "
              f"confirm {row.id}` runs it again, `station campaign stop {row.id}` ends the campaign")
    assert (held.waiting, held.pending) == (reason, {"stage": 0, "role": "chunk", "chunk": 3, "first_cycle": 4 + n,
                                                     "cycles": 3})
    assert rounds(station, engine, lambda: True) == []  # held: nothing happens without an operator
    request_confirm(store, station.clock, station.config, row.id, "ana")
    rounds(station, engine, lambda: store.campaign_steps(row.id)[-1].chunk == 3)
    chunk3 = store.campaign_steps(row.id)[-1]
    assert (chunk3.role, chunk3.first_cycle, chunk3.outcome, store.campaign(row.id).state) == (
        "chunk", 4 + n, None, "running")
    request_stop(store, station.clock, row.id, "bo")
    rounds(station, engine, lambda: not store.campaign(row.id).active)
    stopped = store.campaign(row.id)
    assert (stopped.state, stopped.message) == ("stopped", "stopped by bo at stage cycling")
    assert store.run(chunk3.run_id).state == "stopped"
    assert store.run(chunk3.run_id).message == f"campaign {row.id} stopped by bo"
    with pytest.raises(CampaignError, match=f"campaign {row.id} is stopped; there is nothing to stop"):
        request_stop(store, station.clock, row.id, "bo")
    decisions = [e.message for e in store.campaign_events(row.id) if e.kind == "decision"]
    assert decisions[-2:] == [f"stopping run {chunk3.run_id} (campaign {row.id} stopped by bo); the campaign ends once "
                              "the instrument has stopped it", "stopped: stopped by bo at stage cycling"]


def test_a_condition_to_go_on_that_fails_ends_the_campaign(station, tmp_path):
    row = begin(station, tmp_path, """
        campaign: formation-gate
        stages:
          - name: formation
            protocol: cycling.yaml
            set: {cycles: 2, rate: 0.5C}
            instrument: neware
            go_on_if: {ce: ">= 90 % in cycle 1"}
          - name: eis
            protocol: eis.yaml
            instrument: biologic
        """)
    engine = CampaignEngine(station)
    rounds(station, engine, lambda: not station.store.campaign(row.id).active)
    ended = station.store.campaign(row.id)
    assert (ended.state, ended.message) == ("failed", "stage formation: the condition to go on does not hold: the CE "
                                                      "of cycle 1 is 82.67 %, not >= 90 % in cycle 1")
    assert [s.stage_name for s in station.store.campaign_steps(row.id)] == ["formation"]


def test_a_run_that_fails_before_it_starts_holds_the_campaign_with_the_reason(station, tmp_path):
    cell = (Path(CELL.source or "").read_text()).replace("model: ncm622-anode-free\n", "")
    (tmp_path / "no-model.yaml").write_text(cell)  # a cell the simulated channel cannot hold
    row = begin(station, tmp_path, """
        campaign: no-model
        stages:
          - {name: cycling, protocol: cycling.yaml, cell: no-model.yaml, instrument: neware}
        """)
    engine = CampaignEngine(station)
    engine.tick()
    [step] = station.store.campaign_steps(row.id)
    run = station.store.run(step.run_id)  # the run was claimed, then failed before anything was sent
    why = ("failed before start: cell 'anode-free-ncm622' names no simulated model; add 'model: <type>' to the cell "
           "file to dry-run it")
    assert (run.state, run.message, run.campaign_id) == ("failed", why, row.id)
    engine.tick()
    held = station.store.campaign(row.id)
    assert (held.state, held.waiting) == ("held", f"stage cycling: run {run.id} ended failed ({why}); `station "
                                          f"campaign confirm {row.id}` runs it again, `station campaign stop {row.id}` "
                                          "ends the campaign")
    assert station.alerts.sent == [("campaign", row.id, f"sample S1: held: {held.waiting}")]  # type: ignore


def test_a_start_left_half_done_by_a_dead_service_is_adopted_or_started_again(station, tmp_path):
    from protocols.loader import load_protocol_text

    store = station.store
    row = begin(station, tmp_path)
    # the service died after writing the intent and before storing a run: the start is made again
    store.add_campaign_step(row.id, stage=0, stage_name="cycling", role="chunk", chunk=1, first_cycle=1,
                            parameters={"cycles": "3"}, channel="bts/21-1-1", at=station.clock.unix())
    store.update_campaign(row.id, station.clock.unix(), state="running")
    engine = CampaignEngine(station)
    engine.tick()
    lost, again = store.campaign_steps(row.id)
    assert (lost.outcome, lost.run_id, again.chunk, again.outcome) == (NOT_STARTED, None, 1, None)
    assert store.run(again.run_id).campaign_id == row.id
    # the service died after the run was stored and before it was linked: the run is adopted, not started twice
    store.request_stop(again.run_id, "test", station.clock.unix())
    rounds(station, engine, lambda: state(station, row.id) == "held")
    at = station.clock.unix()
    store.add_campaign_step(row.id, stage=0, stage_name="cycling", role="chunk", chunk=2, first_cycle=1,
                            parameters={"cycles": "3"}, channel="bts/21-1-1", at=at)
    store.update_campaign(row.id, at, state="running", pending=None, waiting=None)
    run_id = station.launch(load_protocol_text(CYCLING, "c.yaml", {"cycles": "3"}), CELL, "bts/21-1-1",
                            sample_id="S1")
    engine.tick()
    adopted = store.campaign_steps(row.id)[-1]
    assert (adopted.run_id, adopted.outcome) == (run_id, None)
    assert (store.run(run_id).campaign_id, store.run(run_id).campaign_stage) == (row.id, "cycling")
    assert len(store.campaign_steps(row.id)) == 3



def library_campaign(tmp_path: Path, name: str, cell: str, channel: str, poll_s: float) -> tuple[Station, str,
                                                                                                 list[str]]:
    """A library campaign on the embedded default station (simulated BTS and Biologic), every move confirmed."""
    from protocols.campaign import load_campaign

    cfg, _ = load_config(None)
    station = Station.open(cfg.model_copy(update={"data_dir": str(tmp_path / "data")}), dry_run=True)
    record = load_cell(cell)
    station.store.create_sample(SampleRow(id="S1", name="S1", created_at=0.0, cell=record.model_dump(mode="json")))
    row = start_campaign(station.store, station.clock, load_campaign(name, record), "S1", channel=channel, who="ana",
                         config=station.config)
    engine = CampaignEngine(station)

    def confirmed_or_ended() -> bool:
        now = station.store.campaign(row.id)
        if now.state == "waiting" and now.confirm_requested is None:
            request_confirm(station.store, station.clock, station.config, row.id, "tester")
        return not now.active

    notes = rounds(station, engine, confirmed_or_ended, poll_s=poll_s)
    return station, row.id, [n.split(": ", 1)[1] for n in notes]


def test_the_p7_campaign_measures_moves_lithiates_moves_and_measures_again(tmp_path):
    station, campaign, notes = library_campaign(tmp_path, "p7-before-after-lithiation", "host-blocking",
                                                "sim-biologic/1", 30.0)
    try:
        confirm = f"then confirm with `station campaign confirm {campaign}`"
        assert [n for n in notes if " run " not in n] == [
            "stage conductivity-pristine done",
            "waiting for an operator: stage lithiation runs on a neware channel: move sample S1 from sim-biologic/1 "
            f"to sim-neware/21-1-1, {confirm}",
            "carried out the confirmation of tester: sample S1 is on sim-neware/21-1-1",
            "stage lithiation done",
            "waiting for an operator: stage conductivity-lithiated runs on a biologic channel: move sample S1 from "
            f"sim-neware/21-1-1 to sim-biologic/1, {confirm}",
            "carried out the confirmation of tester: sample S1 is on sim-biologic/1",
            "stage conductivity-lithiated done",
            "finished: all 3 stages done"]
        runs = station.store.runs_of_campaign(campaign)
        assert [(r.campaign_stage, r.protocol_name, r.cell["name"], r.channel, r.state) for r in runs] == [
            ("conductivity-pristine", "conductivity", "host-blocking", "sim-biologic/1", "finished"),
            ("lithiation", "lithiation", "host-cu-li", "sim-neware/21-1-1", "finished"),
            ("conductivity-lithiated", "conductivity", "host-blocking", "sim-biologic/1", "finished")]
        lithiation = station.store.records(runs[1].id)
        # discharged to 0 V (written to the BTS as one count, 0.1 mV) and no further: lithiation, no plating
        assert lithiation["voltage"][-1] == pytest.approx(1e-4, abs=1e-9) and lithiation["current"].max() <= 0.0
    finally:
        station.close()


def test_the_formation_campaign_cycles_in_chunks_with_rpts_until_80_percent(tmp_path):
    station, campaign, notes = library_campaign(tmp_path, "formation-cycling-80", "anode-free-ncm622",
                                                "sim-neware/21-1-1", 600.0)
    try:
        assert [n.split(": run ")[0] for n in notes] == [
            "stage formation",
            "stage formation done (2 cycles)",
            "stage cycling, chunk 1 (cycles 1-20 of the stage)",
            "stage cycling, chunk 1 finished: cycles 1-20 (retention 96.3 % of cycle 1, CE 99.40 %); the RPT runs next",
            "stage cycling, RPT after chunk 1",
            "stage cycling, RPT after chunk 1 finished; cycling goes on from cycle 21",
            "stage cycling, chunk 2 (cycles 21-40 of the stage)",
            "stage cycling, chunk 2 finished: cycles 21-40 (retention 79.7 % of cycle 1, CE 98.88 %); the discharge "
            "capacity of cycle 40 is 79.7 % of cycle 1 (until retention < 80 % of cycle 1): cycling ends after the RPT",
            "stage cycling, RPT after chunk 2",
            "stage cycling, RPT after chunk 2 finished; the discharge capacity of cycle 40 is 79.7 % of cycle 1 (until "
            "retention < 80 % of cycle 1)",
            "stage cycling done (40 cycles)",
            "finished: all 2 stages done"]
        steps = station.store.campaign_steps(campaign)
        assert [(s.stage_name, s.role, s.chunk, s.first_cycle, s.parameters, len(s.cycles or [])) for s in steps] == [
            ("formation", "run", None, None, {"rate": "0.1C", "cycles": "2"}, 2),
            ("cycling", "chunk", 1, 1, {"rate": "0.2C", "cycles": "20"}, 20),
            ("cycling", "rpt", 1, None, {"rate": "0.05C", "cycles": "1"}, 1),
            ("cycling", "chunk", 2, 21, {"rate": "0.2C", "cycles": "20"}, 20),
            ("cycling", "rpt", 2, None, {"rate": "0.05C", "cycles": "1"}, 1)]
    finally:
        station.close()
