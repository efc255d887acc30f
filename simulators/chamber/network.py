"""A serial-to-Ethernet adapter in front of the simulated chamber: its lines over a TCP socket.

ESPEC's P-300 has no network port of its own; labs reach it through a serial-to-TCP adapter (ESPEC North
America's ChamberConnectLibrary talks raw TCP to one, on port 10001 by default). The station reaches such a
chamber as ``TCPIP::host::port::SOCKET``. This server is that adapter: one line in, the chamber's reply out, on
127.0.0.1 and a port the system picks. :meth:`TcpLineServer.drop_connections` cuts every open connection, as an
adapter that reboots does.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Self


class TcpLineServer:
    def __init__(self, handle: Callable[[bytes], bytes | None], *, end: bytes = b"\r\n", max_line: int = 4096):
        self.handle = handle
        self.end = end
        self.max_line = max_line
        self.port = 0
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def resource(self) -> str:
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    def start(self) -> Self:
        listener = socket.create_server(("127.0.0.1", 0))
        self._listener = listener
        self.port = listener.getsockname()[1]
        thread = threading.Thread(target=self._accept, name=f"tcp-chamber {self.port}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def drop_connections(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def stop(self) -> None:
        if self._listener is None:
            return
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._listener = None
        self.drop_connections()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # the listener was closed: stop accepting
                return
            with self._lock:
                self._connections.append(connection)
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, connection: socket.socket) -> None:
        buffer = bytearray()
        with contextlib.suppress(OSError):
            while chunk := connection.recv(4096):
                buffer += chunk
                while (position := buffer.find(self.end)) >= 0:
                    line = bytes(buffer[:position])
                    del buffer[: position + len(self.end)]
                    reply = self.handle(line)
                    if reply:
                        connection.sendall(reply)
                if len(buffer) > self.max_line:
                    buffer.clear()
        with contextlib.suppress(OSError):
            connection.close()
