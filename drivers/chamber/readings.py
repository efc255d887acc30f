"""What a climate chamber reports, in the station's terms (degrees Celsius, named modes), whatever the vendor."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ChamberMode(StrEnum):
    OFF = "off"  # the controller is switched off (ESPEC ``OFF``)
    STANDBY = "standby"  # powered, not controlling the temperature (ESPEC ``STANDBY``)
    CONSTANT = "constant"  # holding the set point (ESPEC ``CONSTANT``)
    PROGRAM = "program"  # running a program stored in the chamber (ESPEC ``RUN``); the station never starts one


@dataclass(frozen=True, slots=True)
class ChamberReading:
    """One poll of a chamber.

    ``upper_limit_c``/``lower_limit_c`` are the chamber's own temperature alarm limits, where it reports them
    (a set point outside them is refused). ``alarms`` are the chamber's active alarm codes, ``door_open`` whether
    one of them is the door switch.
    """

    temperature_c: float
    set_point_c: float
    mode: ChamberMode
    upper_limit_c: float | None = None
    lower_limit_c: float | None = None
    alarms: tuple[int, ...] = ()
    door_open: bool = False

    def within(self, band_c: float) -> bool:
        """Whether the temperature is within ``band_c`` of the set point (a temperature step's stability test)."""
        return abs(self.temperature_c - self.set_point_c) <= band_c


@dataclass(frozen=True, slots=True)
class ChamberIdentity:
    """Who answered: stored with a run so that its records say which chamber held the cells."""

    vendor: str
    model: str
    firmware: str = ""
    max_temperature_c: float | None = None
