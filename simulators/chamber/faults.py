"""Faults a test or a demo injects into a simulated chamber, each the symptom of a real failure.

* ``silent``: the next N command lines get no reply (a chamber busy with its panel, a cable broken one way);
* ``garbled``: the next N replies arrive corrupted, every other character with its high bit set, as a wrong
  parity or baud rate setting corrupts them; the line end is intact, so the stream stays in step;
* the door (``SimulatedEspec.open_door``) is state, not a count: it stays open until closed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    silent: int = 0
    garbled: int = 0

    def take_silent(self) -> bool:
        if self.silent > 0:
            self.silent -= 1
            return True
        return False

    def take_garbled(self) -> bool:
        if self.garbled > 0:
            self.garbled -= 1
            return True
        return False


def garble(reply: bytes, end: bytes) -> bytes:
    """``reply`` (ending in ``end``) with the high bit of every other character of its body set."""
    body = reply[: -len(end)] if reply.endswith(end) else reply
    return bytes(b | 0x80 if i % 2 else b for i, b in enumerate(body)) + end
