"""Serving the API from inside `station serve`: uvicorn on its own thread, the supervision loop on the main one.

The socket is bound here, before uvicorn starts, so that a port that is taken is a clear error at start-up (not a
log line on a background thread) and ``--port 0`` reports the port it got. Binding beyond loopback is the
operator's explicit choice (``--host``); the token still guards every request, and TLS belongs in front (a
reverse proxy such as Caddy or nginx: docs/service.md).
"""

from __future__ import annotations

import ipaddress
import socket
import threading

import uvicorn
from fastapi import FastAPI

#: how long shutdown waits for open requests (an event stream ends at once) before the thread is left to die
SHUTDOWN_S = 5.0


class ApiBindError(Exception):
    """The API cannot listen where asked; the message names the address and the fix."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ApiBindError(f"cannot serve the API on {host}: {exc.strerror}; give an address of this PC with "
                           f"--host") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ApiBindError(f"cannot serve the API on {host}:{port}: {exc.strerror}; another program uses that "
                           f"port: give another with --port (or api: port: in station.yaml)") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class ApiServer:
    def __init__(self, app: FastAPI, host: str, port: int):
        self.app = app
        self.socket = bind(host, port)
        self.host, self.port = self.socket.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=SHUTDOWN_S)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="station-api", daemon=True)

    def _run(self) -> None:
        self.server.run(sockets=[self.socket])  # off the main thread uvicorn leaves the signals to the service

    def start(self) -> None:
        self.thread.start()

    @property
    def started(self) -> bool:
        return self.server.started

    def stop(self) -> None:
        stopping = getattr(self.app.state, "stopping", None)
        if stopping is not None:  # an open dashboard's event stream would otherwise hold the shutdown its whole grace
            stopping.set()
        self.server.should_exit = True
        self.thread.join(SHUTDOWN_S + 2.0)
        self.socket.close()
