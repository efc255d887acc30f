"""The station application. ``station.load(run_id)`` gives a run's records as a DataFrame (station/loading.py);
it is imported on first use, so that ``import station`` (every CLI command) stays cheap."""

from __future__ import annotations

from typing import Any

__all__ = ["load"]


def __getattr__(name: str) -> Any:
    if name == "load":
        from station.loading import load

        return load
    raise AttributeError(f"module 'station' has no attribute {name!r}")
