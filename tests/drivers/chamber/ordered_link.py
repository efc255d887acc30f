"""An ordered fake :class:`~drivers.chamber.link.LineLink` (pymeasure's ``expected_protocol`` idea, one level
below the chamber base's repeats and reconnects, so that those are checked too).

The script lists every call the chamber must make on its link, in order:

* ``(line, reply)``: ``write_line(line)``, then ``read_line()`` returns ``reply``, or raises it when it is one of
  the link's exceptions (``TIMEOUT``, ``GARBLED``, ``LOST``);
* ``OPEN`` / ``OPEN_FAILS``: ``open()``, which succeeds or raises ``LinkLost``;
* ``DISCARD``: ``discard_input()``; ``CLOSE``: ``close()``.

Used as a context manager it checks, when the block ends without an exception, that the whole script was used.
``lock`` (optional): a lock every link call must be made under (the chamber's), checked at each call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drivers.chamber.link import LineLink, LinkGarbled, LinkLost, LinkTimeout

OPEN = "<open>"
OPEN_FAILS = "<open fails>"
DISCARD = "<discard input>"
CLOSE = "<close>"
TIMEOUT = LinkTimeout("no complete line in time")
GARBLED = LinkGarbled("a line with bytes that are not printable ASCII: b'2\\xb3.0'")
LOST = LinkLost("SerialException: device reports readiness to read but returned no data")

Step = str | tuple[str, str | Exception]


class OrderedLink(LineLink):
    def __init__(self, script: Sequence[Step], resource: str = "ASRL/dev/ttyUSB0::INSTR", lock: Any = None):
        self.resource = resource
        self.script = list(script)
        self.position = 0
        self.lock = lock
        self._open = False
        self._pending: str | Exception | None = None

    def _next(self, call: str) -> Step:
        if self.lock is not None:
            assert self.lock._is_owned(), f"{call} outside the chamber's lock"
        assert self.position < len(self.script), f"unexpected extra call: {call}"
        step = self.script[self.position]
        self.position += 1
        return step

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        step = self._next(OPEN)
        assert step in (OPEN, OPEN_FAILS), f"call {self.position}: open(), expected {step!r}"
        if step == OPEN_FAILS:
            raise LinkLost("SerialException: could not open port /dev/ttyUSB0")
        self._open = True

    def close(self) -> None:
        step = self._next(CLOSE)
        assert step == CLOSE, f"call {self.position}: close(), expected {step!r}"
        self._open = False

    def discard_input(self) -> None:
        step = self._next(DISCARD)
        assert step == DISCARD, f"call {self.position}: discard_input(), expected {step!r}"

    def write_line(self, line: str) -> None:
        step = self._next(f"write_line({line!r})")
        assert isinstance(step, tuple), f"call {self.position}: write_line({line!r}), expected {step!r}"
        assert self._open, "write_line on a link that is not open"
        expected, reply = step
        assert line == expected, f"call {self.position}: sent {line!r}, expected {expected!r}"
        self._pending = reply

    def read_line(self) -> str:
        if self.lock is not None:
            assert self.lock._is_owned(), "read_line outside the chamber's lock"
        assert self._pending is not None, "read_line without a write_line before it"
        reply, self._pending = self._pending, None
        if isinstance(reply, Exception):
            raise reply
        return reply

    def __enter__(self) -> OrderedLink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            assert self.position == len(self.script), f"calls never made: {self.script[self.position :]}"
