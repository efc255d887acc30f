"""Budget (issue 16): the dashboard's run page asks for a run's series; for a 1-million-record run the answer (store
read and decimation) must come well under 2 s.

Run: python benchmarks/bench_run_page.py [--records 1000000] [--points 2000]

A store is filled with the same P3-shaped run as benchmarks/bench_export.py (its ``fill``), then timed: the store
read alone, the decimation alone (station.api.series), and the whole ``GET /api/v1/runs/ID/series`` through the
API (FastAPI's TestClient: routing, auth, the read, decimation, JSON), each the best of a few tries after one warm-up.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_export import fill  # the same run as the export budget
from fastapi.testclient import TestClient

from station.api.app import ApiState, create_app
from station.api.series import decimate
from station.api.tokens import Tokens
from station.store import Store

BUDGET_S = 2.0
TOKEN = "bench-token-0123456789abcdefghijklmnopqrstuvwxyz"


def best(label: str, action: Callable[[], object], tries: int = 3) -> float:
    action()  # warm-up: imports, a cold SQLite page cache
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    print(f"  {label:<44} {min(times):6.3f} s")
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--points", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        store = Store(data_dir)
        run_id = fill(store, args.records)
        print(f"run with {store.record_count(run_id):,} records, series of at most {args.points} points")
        records = store.records(run_id)
        kept, size = decimate(records, args.points)
        print(f"  (kept {len(kept)} records, buckets of {size} records)")
        best("store read (Store.records)", lambda: store.records(run_id))
        best("decimation (station.api.series.decimate)", lambda: decimate(records, args.points))
        station = SimpleNamespace(config=None, store=SimpleNamespace(data_dir=data_dir))  # reads need no config
        state = ApiState(station, None, None, Tokens("bench", TOKEN, {}))  # type: ignore[arg-type]
        client = TestClient(create_app(state))
        headers = {"Authorization": f"Bearer {TOKEN}"}

        def request() -> None:
            response = client.get(f"/api/v1/runs/{run_id}/series", params={"points": args.points}, headers=headers)
            assert response.status_code == 200, response.text

        whole = best("GET /api/v1/runs/ID/series (whole request)", request)
        state.close()
        store.close()
    print(f"budget: series of a {args.records:,}-record run in under {BUDGET_S:g} s: "
          f"{'PASS' if whole < BUDGET_S else 'FAIL'} ({whole:.3f} s)")


if __name__ == "__main__":
    main()
