"""A dashboard left open does not hold `station serve`'s shutdown: its event stream ends as soon as the API server
stops, instead of keeping uvicorn waiting out its grace period and being cancelled at its end (which made every
Ctrl-C of a service with a browser on it take seconds and log an error)."""

from __future__ import annotations

import http.client
import logging
from types import SimpleNamespace

from station.api.app import ApiState, create_app
from station.api.server import ApiServer
from station.api.tokens import Tokens
from station.board import Board
from station.command_queue import CommandQueue
from station.config import load_config
from station.store import Store
from tests.processes import wait_for
from tests.station.sim_bts import write_config

TOKEN = "stream-token-for-tests-0123456789abcdefghijkl"


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_an_open_event_stream_ends_when_the_server_stops(tmp_path):
    cfg, _ = load_config(str(write_config(tmp_path / "station.yaml", 9)))  # an instrument never reached
    store = Store(cfg.data_dir)
    board = Board()
    state = ApiState(SimpleNamespace(config=cfg, store=store), board, CommandQueue(),  # type: ignore[arg-type]
                     Tokens("owner", TOKEN, {}))
    server = ApiServer(create_app(state), "127.0.0.1", 0)
    kept = Kept()
    logging.getLogger("uvicorn.error").addHandler(kept)
    server.start()
    try:
        wait_for(lambda: server.started, 30, "the API server to listen")
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/api/v1/stream", headers={"Authorization": f"Bearer {TOKEN}"})
        response = conn.getresponse()
        assert response.status == 200
        assert response.readline() == b"event: hello\n"  # the stream is open and waits for changes
        board.publish("station", {"note": "one change"})
        lines = [response.readline() for _ in range(6)]
        assert b"event: station\n" in lines

        server.stop()
        assert not server.thread.is_alive()
        rest = response.read()  # the stream ended: the server closed it, nothing was cut mid-event
        assert rest == b"" or rest.endswith(b"\n\n")
        assert not [m for m in kept.messages if "graceful shutdown" in m], kept.messages
        conn.close()
    finally:
        logging.getLogger("uvicorn.error").removeHandler(kept)
        if server.thread.is_alive():
            server.stop()
        state.close()
        store.close()
