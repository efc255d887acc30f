"""A line server on a pseudo-terminal pair: the simulated chamber's end of a real serial line.

``os.openpty`` gives a master and a slave; the slave has a path (``/dev/pts/N``) that pyserial, and pyvisa-py
through it (``ASRL/dev/pts/N::INSTR``), open like any serial port, with the same termios calls, timeouts and
buffering as a USB adapter. The server reads the master on its own thread, cuts the bytes into lines at ``end``
(CR LF for ESPEC: a client that ends its lines with LF alone gets no answer, as from a chamber set to CR LF) and
writes each reply back.

The slave stays open in the server as well, so a client that closes the port and opens it again (a driver
reconnecting) finds the same line, and the master never reads end-of-file in between.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from collections.abc import Callable
from typing import Self


class PtyLineServer:
    """Serves ``handle(line) -> reply or None`` on a pty pair until :meth:`stop` (or the ``with`` block) ends."""

    def __init__(self, handle: Callable[[bytes], bytes | None], *, end: bytes = b"\r\n", max_line: int = 4096):
        self.handle = handle
        self.end = end
        self.max_line = max_line
        self.port = ""
        self._fds: list[int] = []
        self._thread: threading.Thread | None = None

    @property
    def resource(self) -> str:
        """The pyvisa resource string of the slave end."""
        return f"ASRL{self.port}::INSTR"

    def start(self) -> Self:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation: bytes pass unchanged, as on a serial line
        wake_read, wake_write = os.pipe()
        self._master, self._slave, self._wake_read, self._wake_write = master, slave, wake_read, wake_write
        self._fds = [master, slave, wake_read, wake_write]
        self.port = os.ttyname(slave)
        self._thread = threading.Thread(target=self._serve, name=f"pty-chamber {self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        os.write(self._wake_write, b"x")
        self._thread.join(timeout=10)
        self._thread = None
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _serve(self) -> None:
        buffer = bytearray()
        while True:
            ready, _, _ = select.select([self._master, self._wake_read], [], [])
            if self._wake_read in ready:
                return
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # EIO: no slave open anywhere (cannot happen while we hold one); stop serving
                return
            buffer += chunk
            while (position := buffer.find(self.end)) >= 0:
                line = bytes(buffer[:position])
                del buffer[: position + len(self.end)]
                reply = self.handle(line)
                if reply:
                    os.write(self._master, reply)
            if len(buffer) > self.max_line:  # noise without a line end: drop it, as a controller's buffer would
                buffer.clear()
