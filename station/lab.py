"""A station's link to the lab's database (DESIGN sections 8 and 10): its own store stays in its data directory,
and everything in it is forwarded to the lab's PostgreSQL every supervision round.

Why the station writes locally first, always, rather than to the lab's database with a buffer for outages: a
station must go on supervising, and a station restarted during an outage must find its own runs to adopt them
again, without the lab's database. So the data directory's SQLite is the station's truth, exactly as for a
station alone, and the lab's database is the lab's view of every station, fed by :func:`station.store.forward`
(in order, exactly once, resumable). While the lab's database is away the station is *buffering*: nothing changes
for its cells, and the backlog goes when it returns, a bounded amount per round.

What needs the lab's database at the moment it happens: claiming a channel (two stations must not both run on
it) and looking up a sample registered on another station. A channel this station already owns needs no
database to start a run on it.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from protocols.clock import Clock
from station.store import ChannelOwned, SampleRow, Store, StoreError, StoreUnreachable, UnknownSample
from station.store.forward import Forwarded, forward

log = logging.getLogger(__name__)

#: record bytes forwarded per supervision round at most: ~330k records, well under a second of COPY, so a long
#: backlog never holds up the rounds that watch the cells
ROUND_BUDGET_BYTES = 32 * 1024 * 1024
#: seconds between attempts to reach a lab database that did not answer
RETRY_S = 5.0


@dataclass(frozen=True)
class LabState:
    """What the station's dashboard and `station status` say about the lab's database."""

    database: str
    connected: bool
    buffering_since: float | None
    """When forwarding last started failing (Unix time); ``None`` while it works."""
    why: str | None
    forwarded_at: float | None
    """When everything the station had was last in the lab's database."""
    backlog: bool
    """Records or rows wait to be forwarded (a long outage is forwarded a round at a time)."""


class LabLink:
    """The lab's database as seen from one station: forwarding, channel claims, the lab's samples."""

    def __init__(self, url: str, station: str, local: Store, clock: Clock):
        self.url = url
        self.station = station
        self.local = local
        self.clock = clock
        self._central: Store | None = None
        self._checked = False
        self._next_try = 0.0
        self.buffering_since: float | None = None
        self.why: str | None = None
        self.forwarded_at: float | None = None
        self.backlog = False
        self.where = url

    # -- the connection -------------------------------------------------------------------------------------------

    def central(self) -> Store | None:
        """The lab's database, or ``None`` while it cannot be reached (tried again every :data:`RETRY_S`)."""
        if self._central is not None:
            return self._central
        now = self.clock.now()
        if now < self._next_try:
            return None
        try:
            self._central = Store(self.local.data_dir, self.url, station=self.station)
            self.where = self._central.where
        except StoreError as exc:
            self._lost(str(exc))
            return None
        return self._central

    def _lost(self, why: str) -> None:
        if self.buffering_since is None:
            self.buffering_since = self.clock.unix()
            log.info("lab database unreachable, buffering locally: %s", why)
        self.why = why
        self._next_try = self.clock.now() + RETRY_S
        if self._central is not None:
            with contextlib.suppress(Exception):
                self._central.close()
        self._central = None

    def state(self) -> LabState:
        return LabState(database=self.where, connected=self._central is not None,
                        buffering_since=self.buffering_since, why=self.why, forwarded_at=self.forwarded_at,
                        backlog=self.backlog)

    # -- forwarding -------------------------------------------------------------------------------------------------

    def forward(self, budget_bytes: int | None = ROUND_BUDGET_BYTES) -> Forwarded | None:
        """Forward what the lab's database lacks, up to ``budget_bytes`` of records; ``None`` when it cannot be
        reached (the station is buffering: its own store keeps everything)."""
        central = self.central()
        if central is None:
            return None
        try:
            done = forward(self.local, central, self.station, budget_bytes=budget_bytes, check=not self._checked)
        except StoreUnreachable as exc:  # anything else (a conflict, damage) is for the operator to see
            self._lost(str(exc))
            return None
        self._checked = True
        self.backlog = not done.complete
        if not self.backlog:
            self.forwarded_at = self.clock.unix()
            if self.buffering_since is not None:
                log.info("lab database back; everything buffered is forwarded")
            self.buffering_since, self.why = None, None
        return done

    # -- what needs the lab's database now ----------------------------------------------------------------------------

    def claim(self, channel: str, at: float) -> None:
        """Make ``channel`` this station's in the lab's database (refused when another station owns it), and
        remember it here. Without the lab's database only a channel this station already owns can be used."""
        central = self.central()
        if central is None:
            if self.local.channel_owners().get(channel) == self.station:
                return
            raise StoreError(f"cannot reach the lab's database {self.where} to claim channel {channel} for station "
                             f"{self.station} ({self.why}); start on a channel this station has used before, or "
                             f"once the database is back")
        try:
            owners = central.claim_channels([channel], at)
        except StoreUnreachable as exc:
            self._lost(str(exc))
            return self.claim(channel, at)
        if channel in owners:
            raise ChannelOwned(channel, owners[channel])
        self.local.claim_channels([channel], at)

    def claim_all(self, channels: list[str], at: float) -> dict[str, str]:
        """Claim every configured channel no station owns (a service starting); returns those another station
        owns. Without the lab's database nothing is claimed now: each channel is claimed when a run starts on it."""
        central = self.central()
        if central is None:
            return {}
        try:
            others = central.claim_channels(channels, at)
        except StoreUnreachable as exc:
            self._lost(str(exc))
            return {}
        self.local.claim_channels([c for c in channels if c not in others], at)
        return others

    def seen(self, at: float, **service: object) -> None:
        """Tell the lab this station's service runs (``service``: at its start, where it listens)."""
        central = self.central()
        if central is None:
            return
        try:
            central.station_seen(at, **service)  # type: ignore[arg-type]
        except StoreUnreachable as exc:
            self._lost(str(exc))

    def sample(self, sample_id: str) -> SampleRow:
        """A sample of the lab: this station's copy, else the lab's (copied here, for the runs that use it)."""
        try:
            return self.local.sample(sample_id)
        except UnknownSample:
            central = self.central()
            if central is None:
                raise UnknownSample(f"no sample '{sample_id}' on this station, and the lab's database {self.where} "
                                    f"cannot be reached to look it up ({self.why})") from None
            row = central.sample(sample_id)
            self.local.create_sample(row)
            return row

    def close(self) -> None:
        if self._central is not None:
            with contextlib.suppress(Exception):
                self._central.close()
            self._central = None
