"""An operator's action on a run of another station of the lab: sent to that station's service through its API,
or refused with what to do.

Each station supervises its own runs alone (station.lab), so a stop typed on another PC must reach the PC that
watches the cell. The lab's database says which station a run belongs to and where that station's service last
said it listens; the operator's own token (``$STATION_TOKEN``, a user that every station's station.yaml knows)
authenticates the request there, so the action is recorded with their name on that station.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from station.api.client import TOKEN_ENV, ServiceClient
from station.config import StationConfig
from station.store import Store, StoreError, UnknownCampaign, UnknownRun

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
    return _owner_service(config, data_dir, now, lambda lab: _run_owner(lab, run_id))


def campaign_station(config: StationConfig, data_dir: str, campaign_id: str, now: float) -> ServiceClient | None:
    """The service of the station that runs ``campaign_id`` (the station of its runs), when it is another station
    of the lab; ``None`` when it is this station's, or nowhere."""
    if not config.database:
        return None
    local = Store(data_dir, local=True)
    try:
        if any(c.id.startswith(campaign_id) for c in local.campaigns()):
            return None
    finally:
        local.close()
    return _owner_service(config, data_dir, now, lambda lab: _campaign_owner(lab, campaign_id))


def _run_owner(lab: Store, run_id: str) -> tuple[str, str | None] | None:
    try:
        row = lab.run(run_id)
    except UnknownRun:
        return None
    return f"run {row.id}", row.station


def _campaign_owner(lab: Store, campaign_id: str) -> tuple[str, str | None] | None:
    try:
        row = lab.campaign(campaign_id)
    except UnknownCampaign:
        return None
    return f"campaign {row.id}", row.station


def _owner_service(config: StationConfig, data_dir: str, now: float,
                   owner: Callable[[Store], tuple[str, str | None] | None]) -> ServiceClient | None:
    """The service of the station ``owner`` names in the lab's database (what, and which station), if another."""
    try:
        lab = Store(data_dir, config.database)
    except StoreError:
        return None  # unreachable: the local command tells that it is not here
    try:
        found = owner(lab)
        if found is None or found[1] in (None, config.station):
            return None
        what, name = found
        station = next((s for s in lab.stations() if s.name == name), None)
    finally:
        lab.close()
    if station is None or not station.api_url:
        raise ElsewhereRefused(f"{what} belongs to station {name}, whose service has never told the lab where it "
                               f"listens; act on it at {name}")
    if now - station.seen_at > SEEN_WITHIN_S:
        raise ElsewhereRefused(f"{what} belongs to station {name}, whose service was last seen "
                               f"{now - station.seen_at:.0f} s ago: it is not running, so nothing can reach the "
                               f"cell from here; act on it at {name} (`station serve` there)")
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise ElsewhereRefused(f"{what} belongs to station {name} ({station.api_url}); set ${TOKEN_ENV} to your "
                               f"user token (a user in that station's api: users:) to act on it from here")
    return ServiceClient(station.api_url, token)
