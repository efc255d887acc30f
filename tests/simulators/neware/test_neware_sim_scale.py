"""Scale: requests compute only what their budget allows, the catch-up worker the rest, and records stay exact.

Timing itself is the benchmark's (benchmarks/bench_sim_2048.py); these tests check the mechanism with clocks the
test drives: a wall clock that jumps a second each time it is read exhausts any request budget at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from bts_files import CH, ask, download, end, inquire, start, status, step, step_file, values, write

from protocols.clock import Clock, ScaledClock, VirtualClock
from simulators.neware import BtsSimulator
from simulators.neware.catchup import CatchUp
from tests.fakes.standin_cell import LinearCell

#: 8 channels, a rest and a charge that all of them change between at the same instants
STEPS = step(1, 4, values(Time=60000)) + step(2, 1, values(Curr=1, Time=120000)) + end(3)


class TickClock(Clock):
    """Each reading is a second later: a request's budget is spent the first time it is looked at."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        self.t += 1.0
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds

    def unix(self) -> float:
        return self.t


def simulator(**options: object) -> BtsSimulator:
    return BtsSimulator(
        devices=1,
        channels=8,
        clock=VirtualClock(),
        model_factory=lambda key: LinearCell(q0=0.001),
        **options,  # type: ignore[arg-type]
    )


def start_all(sim: BtsSimulator, tmp_path: Path) -> None:
    assert start(sim, write(tmp_path, step_file(STEPS)), chlids=tuple(range(1, 9))) == ["ok"] * 8


def test_a_request_past_its_budget_answers_with_what_is_computed_and_the_worker_catches_up(tmp_path: Path) -> None:
    sim = simulator(wire_clock=TickClock(), request_budget_s=0.5)
    start_all(sim, tmp_path)
    assert all(e.model is None for e in sim.channels.values())  # not even a cell was built in the request
    sim.clock.advance(90.0)  # type: ignore[attr-defined]
    live = inquire(sim, 3)
    # nothing computed yet: the channel is working, but shows no step, like a BTS whose live values have not come
    assert (live["workstatus"], live["step_type"], live["totaltime"]) == ("working", "--", "0")
    assert download(sim, 1, chlid=3) == []
    worker = CatchUp(sim.channels.values(), sim.clock)
    while worker._pass():  # the worker's passes, run here without its thread
        pass
    assert worker.advances >= 8 and worker.max_lag_s == 90.0
    live = inquire(sim, 3)
    assert (live["step_id"], live["step_type"], live["relativetime"], live["totaltime"]) == ("2", "cc", "30", "90")
    exact = simulator()
    start_all(exact, tmp_path)
    exact.clock.advance(90.0)  # type: ignore[attr-defined]
    for chlid in (1, 8):
        assert download(sim, 1, chlid=chlid) == download(exact, 1, chlid=chlid)  # the same records, only later


def test_a_stop_past_the_budget_shows_stopped_and_ends_the_records_at_its_time(tmp_path: Path) -> None:
    sim = simulator(wire_clock=TickClock(), request_budget_s=0.5)
    start_all(sim, tmp_path)
    sim.clock.advance(90.0)  # type: ignore[attr-defined]
    items = "".join(f"<stop {CH.format(c)}>true</stop>" for c in range(1, 9))
    reply = ask(sim, f'<cmd>stop</cmd><list count="8">{items}</list>')
    assert [e.text for e in reply.find("list")] == ["ok"] * 8
    assert status(sim, 5) == "stop"
    df = ask(sim, '<cmd>inquiredf</cmd><list count="1"><chl devtype="27" devid="21" subdevid="1" chlid="5" /></list>')
    assert df.find("list/chl").text == "false"  # not every record is "uploaded" yet
    sim.clock.advance(1000.0)  # type: ignore[attr-defined]  # the stop was at 90 s, whatever time it is now
    worker = CatchUp(sim.channels.values(), sim.clock)
    while worker._pass():
        pass
    rows = download(sim, 1, chlid=5)
    assert (rows[-1]["stepid"], rows[-1]["testtime"]) == ("2", "30000") and status(sim, 5) == "stop"
    assert ask(sim, df_body(5)).find("list/chl").text == "true"


def df_body(chlid: int) -> str:
    return f'<cmd>inquiredf</cmd><list count="1"><chl devtype="27" devid="21" subdevid="1" chlid="{chlid}" /></list>'


class GuardedCell(LinearCell):
    """A cell that checks, whenever it runs, that the server's lock is not held (the cells must not run under it)."""

    server: BtsSimulator | None = None
    runs = 0

    def run_step(self, step, **kwargs):  # type: ignore[no-untyped-def, override]
        assert self.server is not None and not self.server.api._lock._is_owned()  # type: ignore[attr-defined]
        GuardedCell.runs += 1
        return super().run_step(step, **kwargs)


def test_cell_models_never_run_under_the_servers_lock(tmp_path: Path) -> None:
    sim = BtsSimulator(devices=1, channels=8, clock=VirtualClock(), model_factory=lambda key: GuardedCell(q0=0.001))
    GuardedCell.server, GuardedCell.runs = sim, 0
    start_all(sim, tmp_path)
    sim.clock.advance(1000.0)  # type: ignore[attr-defined]
    assert status(sim, 1) == "finish"
    assert [status(sim, c) for c in range(2, 9)] == ["finish"] * 7 and GuardedCell.runs >= 16


def test_budgets_and_the_worker_are_on_for_real_time_clocks_and_off_for_virtual_ones() -> None:
    virtual = BtsSimulator(devices=1, channels=1, clock=VirtualClock())
    assert (virtual.request_budget_s, virtual._catch_up_enabled) == (None, False)
    scaled = BtsSimulator(devices=1, channels=4, clock=ScaledClock(3600.0), model_factory=lambda key: LinearCell())
    assert scaled.request_budget_s is not None and scaled._catch_up_enabled
    with scaled:
        worker = scaled._worker
        assert worker is not None and worker._thread is not None and worker._thread.is_alive()
    assert scaled._worker is None and not worker._thread  # stopped and joined with the server


def test_registry_cells_are_built_before_the_server_listens_and_custom_ones_when_needed() -> None:
    with BtsSimulator(devices=1, channels=4, clock=VirtualClock(), cell_options={"capacity": 0.002}) as registry:
        assert all(e.model is not None for e in registry.channels.values())
    with simulator() as custom:  # a factory may depend on what its owner sets later (the station's placements)
        assert all(e.model is None for e in custom.channels.values())
        assert np.isclose(float(inquire(custom, 4)["voltage"]), 3.6)
