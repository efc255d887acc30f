"""Browser sessions for the dashboard: a token typed once into the login form becomes an HttpOnly cookie.

The cookie holds a random session id (32 bytes, URL-safe) that only this service's memory maps to a user name; it is
not a signed value. Why: nothing has to be kept secret on disk for it (no signing key to make, protect or rotate),
logout really ends the session (a signed cookie stays valid until it expires), and a restart of the service logging
every browser out is harmless (the operator logs in again). The cookie is ``HttpOnly`` (page scripts never see it)
and ``SameSite=Strict`` (no other site's page can make the browser send it); on top of that every state-changing
request made with it must carry the session's CSRF value in ``X-Station-CSRF``, which the page reads from the login
answer or from ``GET /api/v1/session`` and another site cannot read at all. A session lasts :data:`SESSION_TTL_S`
from login; the table is bounded (:data:`MAX_SESSIONS`, oldest dropped first) so logins cannot fill memory.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "station_session"
CSRF_HEADER = "X-Station-CSRF"
#: a working day and a night: a browser left open over a long run stays logged in; after that, the token again
SESSION_TTL_S = 24 * 3600.0
#: sessions kept at most; the oldest goes first (a lab has a few browsers, not thousands)
MAX_SESSIONS = 1000
#: bytes of randomness in a session id and in a CSRF value
SECRET_BYTES = 32


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str
    expires: float  # monotonic seconds


class Sessions:
    """Session id -> :class:`Session`, in memory, shared by the API's request threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl_s: float = SESSION_TTL_S,
                 limit: int = MAX_SESSIONS):
        self._clock = clock
        self._ttl = ttl_s
        self._limit = limit
        self._lock = threading.Lock()
        self._table: OrderedDict[str, Session] = OrderedDict()

    def create(self, user: str) -> tuple[str, Session]:
        """A new session for ``user``: its id (the cookie's value) and the session (with its CSRF value)."""
        sid = secrets.token_urlsafe(SECRET_BYTES)
        session = Session(user, secrets.token_urlsafe(SECRET_BYTES), self._clock() + self._ttl)
        with self._lock:
            self._table[sid] = session
            while len(self._table) > self._limit:
                self._table.popitem(last=False)
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        """The live session behind a cookie value, or None (unknown, ended or expired)."""
        if not sid:
            return None
        with self._lock:
            session = self._table.get(sid)
            if session is not None and session.expires <= self._clock():
                del self._table[sid]
                return None
            return session

    def end(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self._table.pop(sid, None)

    def __len__(self) -> int:
        return len(self._table)

    @property
    def ttl_s(self) -> float:
        return self._ttl


def csrf_ok(session: Session, presented: str | None) -> bool:
    """Whether the request carries this session's CSRF value (compared in constant time)."""
    return presented is not None and hmac.compare_digest(presented.encode(), session.csrf.encode())
