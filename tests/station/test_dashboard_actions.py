"""An operator's action reaches the dashboard's event stream as soon as the service has carried it out, not a round
later (issue 16, DESIGN 11: the grid of 2048 channels shows a change within 2 s, and a round of 2048 channels takes
about a second): and what is published is the state the run really has, as the store holds it after the
instrument's word.

The service here runs no loop of its own: the test hands it requests through its command queue and lets it carry
them out (``carry_out``, what its loop does between rounds and at the start of each), so "no round in between" is
a fact of the test, not a matter of timing. The instrument is a simulated BTS in its own process."""

from __future__ import annotations

import pytest

from station.board import Board
from station.config import load_config
from station.service import StationService
from station.service_actions import StartRequest, continue_run, pause_run, start_run, stop_run
from station.session import Station
from tests.station.sim_bts import LONG, start_sim, write_config

CELL = "predeposited-ncm622"


@pytest.fixture
def service(tmp_path, processes):
    path = write_config(tmp_path / "station.yaml", start_sim(processes, channels=2), channels=2)
    cfg, _ = load_config(str(path))
    service = StationService(Station.open(cfg))
    service.claim()
    yield service
    service.close()


def act(service: StationService, action) -> object:
    """Queue ``action`` as the API does and let the service carry it out; its result."""
    future = service.commands.submit(action)
    assert service.carry_out() == 1
    return future.result(timeout=0)


def runs_told(board: Board, after: int, run_id: str) -> list[str]:
    """The states the stream told for ``run_id`` after entry ``after``, in order."""
    changes, missed = board.since(after)
    assert not missed
    return [c.data["state"] for c in changes if c.kind == "run" and c.data["run_id"] == run_id]


def test_start_pause_continue_and_stop_are_on_the_stream_before_the_next_round(service):
    station, board = service.station, service.board
    run_id = act(service, lambda: start_run(station, StartRequest(protocol_source=LONG, cell=CELL,
                                                                    channel="bts/21-1-1"), "alice"))
    started = str(station.store.run(run_id).state)
    assert started in ("started", "running")
    assert runs_told(board, 0, run_id) == [started]
    live = board.live()[run_id]
    assert live["channel"] == "bts/21-1-1" and live["state"] == started

    service.round()  # one round of supervision, as the service's loop makes them
    mark = board.last_id
    assert act(service, lambda: pause_run(station, run_id, "alice")) == "paused"
    assert str(station.store.run(run_id).state) == "paused"
    assert runs_told(board, mark, run_id) == ["paused"] and board.live()[run_id]["state"] == "paused"

    mark = board.last_id
    assert act(service, lambda: continue_run(station, run_id, "alice")) == "running"
    assert runs_told(board, mark, run_id) == ["running"] and board.live()[run_id]["state"] == "running"

    mark = board.last_id
    confirmed, message = act(service, lambda: stop_run(station, run_id, "alice"))
    assert confirmed, message
    row = station.store.run(run_id)
    assert str(row.state) == "stopped"  # the instrument confirmed: only then is the run stopped
    assert runs_told(board, mark, run_id) == ["stopped"]
    assert run_id not in board.live()  # no live values of a stopped channel are left on show
    events = [c.data["message"] for c in board.since(mark)[0] if c.kind == "event" and c.data["run_id"] == run_id]
    assert "stop (by alice)" in events  # the run's events, with who asked, on the stream as well


def test_nothing_is_published_when_no_request_came(service):
    mark = service.board.last_id
    assert service.carry_out() == 0
    assert service.board.last_id == mark
