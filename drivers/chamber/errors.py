"""What can go wrong with a climate chamber, one class per thing the user does something different about.

Every message is one line that names the chamber's resource string and what to check. The classes also derive
from the project's generic driver errors (:class:`~drivers.base.InstrumentTimeout`,
:class:`~drivers.transport.ConnectionLost`, :class:`~drivers.base.Refused`), so the station can treat a chamber
that does not answer like any other instrument that does not answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivers.base import DriverError, InstrumentTimeout, Refused
from drivers.transport import ConnectionLost

if TYPE_CHECKING:
    from drivers.chamber.readings import ChamberReading


class ChamberError(DriverError):
    """Base of the climate-chamber driver's errors."""


class ChamberNoAnswer(ChamberError, InstrumentTimeout):
    """The chamber sent no complete line in time, however often the command was repeated."""


class ChamberGarbled(ChamberError):
    """The chamber answered with a line that is not what the command gets (line noise, wrong baud rate or
    termination, or a reply out of step), however often the command was repeated."""


class ChamberLinkLost(ChamberError, ConnectionLost):
    """The serial port or socket went away and could not be opened again on the back-off schedule."""


class ChamberRefused(ChamberError, Refused):
    """The chamber understood the line and refused it with its own error reply (ESPEC ``NA:...``).

    ``code`` is the chamber's error text (``DATA OUT OF RANGE``). A refusal is never repeated: the chamber
    would refuse again, and the state it refused to change is unchanged.
    """

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


class ChamberAlarm(ChamberError):
    """The chamber reports an alarm: its temperature can no longer be trusted to follow the set point.

    ``reading`` is the reading that showed the alarm, so a caller that stops on the alarm still records the
    temperature the chamber measured.
    """

    def __init__(self, message: str, reading: ChamberReading):
        super().__init__(message)
        self.reading = reading


class ChamberDoorOpen(ChamberAlarm):
    """The alarm is the door switch: the chamber drifts towards room temperature until the door is closed."""
