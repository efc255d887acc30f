"""An operator's action on a run of another station of the lab: sent to that station's service through its API,
or refused with what to do.

Each station supervises its own runs alone (station.lab), so a stop typed on another PC must reach the PC that
watches the cell. The lab's database says which station a run belongs to and where that station's service last
said it listens; the operator's own token (``$STATION_TOKEN``, a user that every station's station.yaml knows)
authenticates the request there, so the action is recorded with their name on that station.
"""

from __future__ import annotations

import os

from station.api.client import TOKEN_ENV, ServiceClient
from station.config import StationConfig
from station.store import Store, StoreError, UnknownRun

#: a station's service tells the lab it runs at every rescan (10 s by default); older than this, it is not running
SEEN_WITHIN_S = 60.0


class ElsewhereRefused(Exception):
    """The run is another station's and the action cannot be sent there; the message says what to do."""


def other_station(config: StationConfig, data_dir: str, run_id: str, now: float) -> ServiceClient | None:
    """The service of the station that owns ``run_id``, when it is another station of the lab; ``None`` when the
    run is this station's (or there is no lab database, or the run is nowhere: the local command says so)."""
    if not config.database:
        return None
    local = Store(data_dir, local=True)
    try:
        if any(r.id.startswith(run_id) for r in local.runs(light=True)):
            return None
    finally:
        local.close()
    try:
        lab = Store(data_dir, config.database)
    except StoreError:
        return None  # unreachable: the local command tells that the run is not here
    try:
        try:
            row = lab.run(run_id)
        except UnknownRun:
            return None
        if row.station in (None, config.station):
            return None
        station = next((s for s in lab.stations() if s.name == row.station), None)
    finally:
        lab.close()
    if station is None or not station.api_url:
        raise ElsewhereRefused(f"run {row.id} belongs to station {row.station}, whose service has never told the lab "
                               f"where it listens; act on it at {row.station}")
    if now - station.seen_at > SEEN_WITHIN_S:
        raise ElsewhereRefused(f"run {row.id} belongs to station {row.station}, whose service was last seen "
                               f"{now - station.seen_at:.0f} s ago: it is not running, so nothing can reach the "
                               f"cell from here; act on it at {row.station} (`station serve` there)")
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise ElsewhereRefused(f"run {row.id} belongs to station {row.station} ({station.api_url}); set "
                               f"${TOKEN_ENV} to your user token (a user in that station's api: users:) to act on it "
                               f"from here")
    return ServiceClient(station.api_url, token)
