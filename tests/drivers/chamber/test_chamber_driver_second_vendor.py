"""A second vendor is one small class: the shared base gives it the lock, repeats, reconnects and errors.

``LineTherm`` is made up (no such chamber): it shows what a vendor class has to say, and that a timeout, an error
reply and a lost line behave for it exactly as for ESPEC without a line of its own about them.
"""

from __future__ import annotations

import pytest

from drivers.chamber import Chamber, ChamberIdentity, ChamberMode, ChamberReading, ChamberRefused, Command, Refusal
from protocols.clock import VirtualClock
from tests.drivers.chamber.ordered_link import CLOSE, DISCARD, LOST, OPEN, TIMEOUT, OrderedLink


def ack(reply: str, _sent: str) -> None:
    if reply != "ACK":
        raise ValueError("not ACK")


class LineTherm(Chamber):
    vendor = "LineTherm"
    termination = "\n"
    TEMPERATURE = Command("T?", lambda reply, _: float(reply))
    SET_POINT_READ = Command("SP?", lambda reply, _: float(reply))
    SET_POINT = Command("SP {:.1f}", ack)
    RUN = Command("RUN {}", ack)

    def refusal(self, reply: str) -> Refusal | None:
        return Refusal(reply[4:], "see the LineTherm manual") if reply.startswith("ERR ") else None

    def _read(self) -> ChamberReading:
        return ChamberReading(self.query(self.TEMPERATURE), self.query(self.SET_POINT_READ), ChamberMode.CONSTANT)

    def _set_point(self, celsius: float) -> None:
        self.query(self.SET_POINT, celsius)

    def _start(self) -> None:
        self.query(self.RUN, 1)

    def _standby(self) -> None:
        self.query(self.RUN, 0)

    def _identify(self) -> ChamberIdentity:
        return ChamberIdentity(self.vendor, "LT-1")


def test_the_made_up_vendor_gets_repeats_reconnects_and_refusals_from_the_base():
    script = [OPEN, ("T?", TIMEOUT), DISCARD, ("T?", "23.5"), ("SP?", LOST), CLOSE, OPEN, ("SP?", "25.0"),
              ("SP 30.0", "ERR 4")]
    with OrderedLink(script, resource="TCPIP::10.0.0.7::4000::SOCKET") as link:
        chamber = LineTherm(link, clock=VirtualClock())
        reading = chamber.read()
        with pytest.raises(ChamberRefused, match=r"^TCPIP::10.0.0.7::4000::SOCKET \(LineTherm chamber\): the "
                                                 r"chamber refused 'SP 30.0' with 'ERR 4' \(see the LineTherm"):
            chamber.set_point(30)
    assert (reading.temperature_c, reading.set_point_c) == (23.5, 25.0)
    assert chamber.reconnects == 1
