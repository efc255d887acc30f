"""ESPEC climate chambers (P-300, SCP-220, GL and EHS controllers) through their RS-232C/RS-485 command set.

Facts, with their sources (none of this code is taken from them):

* ESPEC's communication manual as printed in the EHS-211M/EHS-411M user manuals (chapter 1.3 "Transmitted data",
  chapter 3.2 "Monitor commands"; https://www.easymanua.ls/espec/ehs-211m/manual?p=10 and
  https://www.easymanua.ls/espec/ehs-411m/manual?p=24): commands are ``[address,]main command[,parameter]``;
  a setting command is answered ``OK:address,setting command`` or ``NA:error message``; a monitor command is
  answered with its data or ``NA:error message``; ``MON?`` -> ``monitored temperature,monitored humidity,operating
  mode,number of alarms`` (``24.1,100,CONSTANT,0``); ``ROM?`` -> model code and controller ROM version.
* ESPEC North America's own library, EspecNorthAmerica/ChamberConnectLibrary (MIT), ``chamberconnectlibrary/
  p300.py`` and ``especinteract.py``: lines end in CR LF, serial 9600 baud 8N1 by default; ``TEMP?`` ->
  ``monitored,set point,upper limit,lower limit``; ``TEMP, S25.0`` sets the set point (one decimal);
  ``MODE, CONSTANT`` / ``MODE, STANDBY`` / ``MODE, OFF``; ``MODE?`` -> ``OFF``, ``STANDBY``, ``CONSTANT`` or
  ``RUN`` (``RUN PAUSE``... with ``,DETAIL``); ``ALARM?`` -> ``number of alarms[,code,...]``; ``TYPE?`` ->
  ``sensor[,wet-bulb sensor],controller,maximum temperature``; a humidity-less chamber leaves ``MON?``'s humidity
  field empty.
* The error messages of Table 1.1 of the SCP-220 communication manual (``NA:CMD ERR``, ``NA:PARA ERR``,
  ``NA:DATA OUT OF RANGE`` "when the user attempts to set the target temperature beyond either the temperature
  high or low alarm", ``NA:PROTECT ON``, ``NA:CONT NOT READY-1..5``, ...), as listed in ChamberConnectLibrary's
  ``especinteract.py``; another public ESPEC driver's tests also expect ``NA :INVALID REQ`` (a space before the
  colon), so both spellings are read.
* The ``OK`` echo drops the command's spaces and carries the address (1 when none was sent): a public parser of
  ESPEC chamber logs (a thermocompensation tool) reads ``OK:1,TEMP,S25.0``, ``OK:1,POWER,ON`` and
  ``OK:1,RUNPRGM,TEMP...`` for ``RUN PRGM, TEMP...``. The driver compares the echo's words and numbers, not its
  spelling, so a chamber that writes ``S25`` for ``S25.0`` is still confirmed.

**Not found in any public source**: the numbers of ESPEC's alarm codes. ``ALARM?`` gives them, and every code is
reported; which ones mean "door open" is for the station's configuration to say (``door_alarms``), so that no
guessed number is built in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from drivers.chamber.base import Chamber, Command, Refusal
from drivers.chamber.link import LineLink, SerialSettings
from drivers.chamber.readings import ChamberIdentity, ChamberMode, ChamberReading

#: Table 1.1 (SCP-220 communication manual): error text -> what it means and what to do
ERRORS = {
    "CMD ERR": "the chamber does not know the command; its controller may not support it",
    "ADDR ERR": "an address was sent with a command that takes none; check the driver's address setting",
    "CONT NOT READY-1": "the chamber has no humidity or product-temperature control for this command",
    "CONT NOT READY-2": "no program is running on the chamber",
    "CONT NOT READY-3": "the command is for another ESPEC controller",
    "CONT NOT READY-4": "keys cannot be locked while the chamber is off",
    "CONT NOT READY-5": "that time signal cannot be changed",
    "DATA NOT READY": "the requested program does not exist",
    "PARA ERR": "a parameter is missing or unreadable",
    "DATA OUT OF RANGE": (
        "the value is outside the chamber's temperature alarm limits (TEMP? shows them); "
        "widen them on the chamber's panel or choose a set point inside them"
    ),
    "PROTECT ON": "settings are protected on the chamber's panel; switch the protection off there",
    "INVALID REQ": "the chamber does not support this request",
    "CHB NOT READY": "the chamber cannot act on the command now",
}

_MODES = {"OFF": ChamberMode.OFF, "STANDBY": ChamberMode.STANDBY, "CONSTANT": ChamberMode.CONSTANT}
_NA = re.compile(r"NA\s*:\s*(.*)")
_OK = re.compile(r"OK\s*:\s*(.*)")
_TOKEN = re.compile(r"[A-Z]+|[-+]?\d+(?:\.\d*)?")


@dataclass(frozen=True, slots=True)
class Temperatures:
    """``TEMP?``: monitored value, set point, upper and lower alarm limits (degrees Celsius)."""

    monitored_c: float
    set_point_c: float
    upper_c: float
    lower_c: float


@dataclass(frozen=True, slots=True)
class Monitor:
    """``MON?``: operating mode and number of active alarms (the temperature comes from ``TEMP?``)."""

    mode: ChamberMode
    alarm_count: int


def _fields(reply: str, counts: Iterable[int]) -> list[str]:
    fields = [f.strip() for f in reply.split(",")]
    allowed = tuple(counts)
    if len(fields) not in allowed:
        wanted = " or ".join(str(n) for n in allowed)
        raise ValueError(f"{len(fields)} comma-separated fields where the reply has {wanted}")
    return fields


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None


def parse_temperatures(reply: str, _sent: str = "") -> Temperatures:
    monitored, set_point, upper, lower = _fields(reply, (4,))
    return Temperatures(
        _number(monitored, "the temperature"),
        _number(set_point, "the set point"),
        _number(upper, "the upper limit"),
        _number(lower, "the lower limit"),
    )


def parse_monitor(reply: str, _sent: str = "") -> Monitor:
    temperature, _humidity, mode, alarms = _fields(reply, (4,))
    _number(temperature, "the temperature")  # a MON? reply starts with one; anything else is out of step
    word = mode.upper()
    if word.startswith("RUN") or word.startswith("RMT RUN"):
        parsed = ChamberMode.PROGRAM
    elif word in _MODES:
        parsed = _MODES[word]
    else:
        raise ValueError(f"unknown operating mode {mode!r}")
    if not alarms.isdigit():
        raise ValueError(f"the number of alarms {alarms!r} is not a count")
    return Monitor(parsed, int(alarms))


def parse_alarms(reply: str, _sent: str = "") -> tuple[int, ...]:
    fields = [f.strip() for f in reply.split(",")]
    if not all(f.isdigit() for f in fields):
        raise ValueError("an alarm list holds a count and codes, all numbers")
    count, codes = int(fields[0]), tuple(int(f) for f in fields[1:])
    if count != len(codes):
        raise ValueError(f"{count} alarms announced, {len(codes)} codes listed")
    return codes


def parse_text(reply: str, _sent: str = "") -> str:
    if not reply.strip() or reply.startswith("OK"):
        raise ValueError("an empty or confirmation line where the chamber's text was expected")
    return reply.strip()


def parse_type(reply: str, _sent: str = "") -> tuple[str, float]:
    """``TYPE?``: the controller's name and the chamber's maximum temperature."""
    fields = _fields(reply, (3, 4))
    return fields[-2], _number(fields[-1], "the maximum temperature")


def _words(text: str) -> list[Any]:
    return [float(t) if t[0] in "+-0123456789" else t for t in _TOKEN.findall(text.upper())]


def confirm(reply: str, sent: str) -> None:
    """An ``OK:address,command`` reply that confirms ``sent`` (its words and numbers; spelling aside)."""
    match = _OK.fullmatch(reply)
    if match is None:
        raise ValueError("not an OK confirmation")
    echo = match.group(1)
    if re.match(r"\d+\s*,", echo):  # the address the chamber answers from
        echo = echo.split(",", 1)[1]
    command = sent.split(",", 1)[1] if re.match(r"\d+\s*,", sent) else sent
    if _words(echo) != _words(command):
        raise ValueError(f"the chamber confirmed {echo!r}, not {command!r}")


class Espec(Chamber):
    """An ESPEC chamber (see the module docstring for the command set and its sources).

    ``address``: the chamber's RS-485 address (1..16) when several share a bus, else ``None`` (RS-232C, TCP).
    ``door_alarms``: the alarm codes that mean the door is open on this chamber (station configuration).
    """

    vendor = "ESPEC"
    termination = "\r\n"
    serial = SerialSettings(baud_rate=9600, data_bits=8, parity="none", stop_bits=1)
    resolution_c = 0.1

    TEMPERATURES: ClassVar[Command[Temperatures]] = Command("TEMP?", parse_temperatures)
    MONITOR: ClassVar[Command[Monitor]] = Command("MON?", parse_monitor)
    ALARMS: ClassVar[Command[tuple[int, ...]]] = Command("ALARM?", parse_alarms)
    ROM: ClassVar[Command[str]] = Command("ROM?", parse_text)
    TYPE: ClassVar[Command[tuple[str, float]]] = Command("TYPE?", parse_type)
    # settings are absolute, so repeating one after a lost reply does no harm
    SET_POINT: ClassVar[Command[None]] = Command("TEMP, S{:.1f}", confirm)
    CONSTANT: ClassVar[Command[None]] = Command("MODE, CONSTANT", confirm)
    STANDBY: ClassVar[Command[None]] = Command("MODE, STANDBY", confirm)

    def __init__(self, link: LineLink, *, address: int | None = None, door_alarms: Iterable[int] = (), **base: Any):
        if address is not None and not 1 <= address <= 16:
            raise ValueError(f"{link.resource}: an ESPEC address is 1..16, found {address}")
        super().__init__(link, **base)
        self.address = address
        self.door_alarms = frozenset(door_alarms)

    def encode(self, text: str) -> str:
        return text if self.address is None else f"{self.address},{text}"

    def refusal(self, reply: str) -> Refusal | None:
        match = _NA.fullmatch(reply)
        if match is None:
            return None
        code = match.group(1).strip()
        return Refusal(code, ERRORS.get(code, "an error reply this driver does not know; see the chamber's manual"))

    def _read(self) -> ChamberReading:
        temperatures = self.query(self.TEMPERATURES)
        monitor = self.query(self.MONITOR)
        alarms = self.query(self.ALARMS) if monitor.alarm_count else ()
        return ChamberReading(
            temperature_c=temperatures.monitored_c,
            set_point_c=temperatures.set_point_c,
            mode=monitor.mode,
            upper_limit_c=temperatures.upper_c,
            lower_limit_c=temperatures.lower_c,
            alarms=alarms,
            door_open=any(code in self.door_alarms for code in alarms),
        )

    def _set_point(self, celsius: float) -> None:
        self.query(self.SET_POINT, celsius)

    def _start(self) -> None:
        self.query(self.CONSTANT)

    def _standby(self) -> None:
        self.query(self.STANDBY)

    def _identify(self) -> ChamberIdentity:
        rom = self.query(self.ROM)
        controller, maximum = self.query(self.TYPE)
        return ChamberIdentity(vendor=self.vendor, model=rom, firmware=controller, max_temperature_c=maximum)
