"""Climate chambers over pyvisa resource strings (serial lines and raw sockets), pyserial underneath.

:class:`Chamber` holds what every vendor shares (lock, repeats, reconnects, errors); :class:`Espec` is ESPEC's
command set. Open one with ``Espec.connect("ASRL/dev/ttyUSB0::INSTR")`` or
``Espec.connect("TCPIP::10.0.0.5::10001::SOCKET")``.
"""

from drivers.chamber.base import DEFAULT_BACKOFF, Chamber, Command, Refusal
from drivers.chamber.errors import (
    ChamberAlarm,
    ChamberDoorOpen,
    ChamberError,
    ChamberGarbled,
    ChamberLinkLost,
    ChamberNoAnswer,
    ChamberRefused,
)
from drivers.chamber.espec import Espec
from drivers.chamber.link import LineLink, LinkGarbled, LinkLost, LinkTimeout, SerialSettings, VisaLineLink
from drivers.chamber.readings import ChamberIdentity, ChamberMode, ChamberReading

__all__ = [
    "DEFAULT_BACKOFF",
    "Chamber",
    "ChamberAlarm",
    "ChamberDoorOpen",
    "ChamberError",
    "ChamberGarbled",
    "ChamberIdentity",
    "ChamberLinkLost",
    "ChamberMode",
    "ChamberNoAnswer",
    "ChamberReading",
    "ChamberRefused",
    "Command",
    "Espec",
    "LineLink",
    "LinkGarbled",
    "LinkLost",
    "LinkTimeout",
    "Refusal",
    "SerialSettings",
    "VisaLineLink",
]
