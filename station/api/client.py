"""The CLI's side of the station service: find the service of a data directory and talk to its API.

A service announces itself in the data directory (``service.json``: pid, host, port) and proves it is alive by
holding the directory's service lock; a file left behind by a killed service is ignored because its lock is free.
The owner token is read from the data directory (``api-token``), or another user's from ``$STATION_TOKEN``.
Only the standard library is used here, so the commands that talk to a service load no web stack.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from station.api.tokens import read_token
from station.leases import Lease, LeaseError

SERVICE_FILE = "service.json"
SERVICE_LEASE = "_service"
TOKEN_ENV = "STATION_TOKEN"
API = "/api/v1"
#: a start or a stop waits for the instrument; the service itself gives up after 120 s
TIMEOUT_S = 150.0


class ServiceError(Exception):
    """The service refused or failed a request; ``status`` is the HTTP status (0: it could not be reached)."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.problems = problems or []


def service_running(data_dir: str | Path) -> bool:
    """True while a live process holds the data directory's service lock."""
    lease = Lease(data_dir, SERVICE_LEASE)
    try:
        if lease.acquire():
            lease.release()
            return False
    except LeaseError:
        return False
    return True


class ServiceClient:
    def __init__(self, base_url: str, token: str):
        self.base_url = base_url.rstrip("/")
        self.token = token

    @classmethod
    def find(cls, data_dir: str | Path) -> ServiceClient | None:
        """The client of the service serving ``data_dir``, or None when no live service does."""
        info_path = Path(data_dir) / SERVICE_FILE
        if not info_path.is_file() or not service_running(data_dir):
            return None
        try:
            info = json.loads(info_path.read_text())
            host, port = str(info["host"]), int(info["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a service still starting (no API yet): work in-process as without one
        token = os.environ.get(TOKEN_ENV) or read_token(data_dir)
        if not token:
            raise ServiceError(0, f"a station service serves {data_dir} but its token cannot be read here; ask its "
                                  f"owner for a token and set ${TOKEN_ENV}")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"  # bound to every address: this PC reaches it on loopback
        return cls(f"http://{host}:{port}", token)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                params: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.base_url}{API}{path}"
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {})})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read()).get("error", {})
            except (ValueError, AttributeError):
                error = {}
            raise ServiceError(exc.code, error.get("message") or f"HTTP {exc.code} {exc.reason}",
                               error.get("problems")) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceError(0, f"the station service at {self.base_url} did not answer ({reason}); is it "
                                  f"running? (`station serve`)") from None

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.request("POST", path, body if body is not None else {})
