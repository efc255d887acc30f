"""A simulated BTS in its own process, fast, and a station.yaml for it: what the service tests run against."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.processes import popen

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
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
