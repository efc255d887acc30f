"""Fault injection for the simulated BTS server (design section 6; checklist item 5 of neware-bts-api.md).

Faults are armed from the test (or from another thread while the server runs) and consumed by matching requests:
``Fault("cut", command="download", skip=2)`` lets two downloads through and cuts the third reply in the middle,
then the server closes the connection. Delays are wall-clock on purpose: they exist to exercise the client's
socket timeout, which no simulated clock can reach.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["delay", "drop", "garble", "cut", "split"]


@dataclass(slots=True)
class Fault:
    """``delay``: reply after ``delay_s`` wall seconds; ``drop``: close without replying; ``garble``: corrupt the
    reply's XML but keep its frame; ``cut``: send the first half of the reply, then close; ``split``: send the
    reply in ``segment`` byte pieces."""

    kind: FaultKind
    command: str | None = None
    skip: int = 0
    times: int = 1
    delay_s: float = 0.0
    segment: int = 7

    def matches(self, command: str) -> bool:
        return self.times > 0 and (self.command is None or self.command == command)


class FaultPlan:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        #: answer getchlstatus with subdevid="1" whatever was asked (the real quirk; clients must match by order)
        self.mislabel_subdevid = False
        #: add one unrequested channel to list replies (seen in the field)
        self.extra_channel = False
        self.applied: list[tuple[str, FaultKind]] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.mislabel_subdevid = False
            self.extra_channel = False

    def take(self, command: str) -> Fault | None:
        """The fault to apply to this request, if one is armed for it (each matching fault counts the request)."""
        with self._lock:
            chosen = None
            for fault in self._faults:
                if not fault.matches(command):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                if chosen is None:
                    fault.times -= 1
                    chosen = fault
            self._faults = [f for f in self._faults if f.times > 0]
            if chosen is not None:
                self.applied.append((command, chosen.kind))
            return chosen
