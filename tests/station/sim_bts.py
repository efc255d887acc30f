"""A simulated BTS in its own process, fast, and a station.yaml for it: what the service tests run against."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

from tests.processes import CHILD_ENV, popen

ENV = CHILD_ENV
#: a rest long enough to pause, continue and stop at leisure (100 h: 100 s at 3600x)
LONG = """
protocol: long-rest
record: {every: 60 s}
steps:
  - rest: 100 h
"""
#: one short cycle that finishes in a few seconds at 3600x
SHORT = """
protocol: short-cycle
record: {every: 10 s}
steps:
  - rest: 10 min
  - Charge at 0.5C until 4.2 V
  - Discharge at 0.5C until 3.0 V
"""


def start_sim(processes: list, *, channels: int = 2, speed: float = 3600, cell: str = "predeposited-ncm622") -> int:
    """Start ``station sim neware`` on a free port; returns the port (the process is ended by ``processes``)."""
    sim = popen([sys.executable, "-m", "station", "sim", "neware", "--port", "0", "--channels", str(channels),
                 "--cell", cell, "--speed", f"{speed:g}", "--json"], stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, env=ENV)
    processes.append(sim)
    return json.loads(sim.stdout.readline())["port"]  # type: ignore[union-attr]


def write_config(path: Path, port: int, *, channels: int = 2, extra: str = "") -> Path:
    chans = ",\n                       ".join(f"{{id: 21-1-{i}, voltage: [0 V, 5 V], current: 10 mA}}"
                                             for i in range(1, channels + 1))
    path.write_text(textwrap.dedent(f"""
        data_dir: {path.parent / 'data'}
        poll_interval: 0.05 s
        instruments:
          - name: bts
            kind: neware
            address: 127.0.0.1:{port}
            channels: [{chans}]
        """) + textwrap.dedent(extra))
    return path


#: a named user's token for the API tests (station.yaml holds only its hash)
ALICE = "alice-token-for-tests-0123456789abcdefghijkl"


@contextlib.contextmanager
def served_api(tmp_path: Path, processes: list, *, channels: int) -> Iterator[SimpleNamespace]:
    """A station service supervising a simulated BTS on a thread, and a TestClient on its API: the owner's and
    alice's Bearer headers, the store, the tokens. The service is stopped and closed afterwards."""
    from fastapi.testclient import TestClient

    from station.api.app import ApiState, create_app
    from station.api.tokens import load_tokens, token_hash
    from station.config import load_config
    from station.service import StationService
    from station.session import Station

    port = start_sim(processes, channels=channels)
    path = write_config(tmp_path / "station.yaml", port, channels=channels,
                        extra=f"api:\n  users:\n    alice: {token_hash(ALICE)}\n")
    cfg, _ = load_config(str(path))
    station = Station.open(cfg)
    service = StationService(station, rescan_s=0.5)
    service.claim()
    tokens = load_tokens(station.store.data_dir, cfg.api.users)
    state = ApiState(station, service.board, service.commands, tokens)
    stop = threading.Event()
    thread = threading.Thread(target=service.serve, args=(stop.is_set,), daemon=True)
    thread.start()
    client = TestClient(create_app(state), raise_server_exceptions=False)
    try:
        yield SimpleNamespace(client=client, owner={"Authorization": f"Bearer {tokens.owner_token}"},
                              alice={"Authorization": f"Bearer {ALICE}"}, store=station.store, tokens=tokens,
                              data_dir=station.store.data_dir)
    finally:
        stop.set()
        thread.join(30)
        state.close()
        service.close()
