"""A simulated ESPEC temperature chamber: the controller's serial command set over a :class:`ThermalModel`.

Written from ESPEC's communication manual as it is printed and used publicly, never from the station's driver
(the two meet at the wire; the tests in tests/simulators/chamber hold this module to those facts):

* EHS-211M/EHS-411M user manuals, chapters 1.3 and 3.2 (https://www.easymanua.ls/espec/ehs-211m/manual?p=10,
  https://www.easymanua.ls/espec/ehs-411m/manual?p=24): ``[address,]command[,parameter]``; settings answered
  ``OK:address,command`` or ``NA:error message``; monitor data or ``NA:error message``; ``MON?`` answers
  ``temperature,humidity,mode,number of alarms``; ``ROM?`` the model and ROM version.
* ESPEC North America's ChamberConnectLibrary (``p300.py``, ``especinteract.py``): CR LF line ends, 9600 baud 8N1;
  ``TEMP?`` answers ``monitored,set point,upper limit,lower limit``; ``TEMP, S25.0 H120.0 L-40.0`` sets any of set
  point, upper and lower alarm limit; ``MODE, CONSTANT|STANDBY|OFF|RUN<n>``; ``MODE?``; ``ALARM?`` answers
  ``count[,code...]``; ``TYPE?`` ``sensor,controller,maximum temperature`` for a chamber without humidity, whose
  ``MON?`` humidity field is empty.
* SCP-220 manual Table 1.1: ``NA:CMD ERR`` for an unknown command, ``NA:PARA ERR`` for a missing or unreadable
  parameter, ``NA:DATA OUT OF RANGE`` for a set point beyond the high or low alarm limit, ``NA:CONT NOT READY-1``
  for a humidity command to a chamber without humidity, ``NA:DATA NOT READY`` for a program that does not exist.
* The ``OK`` echo is the command without its spaces, after the address (1 when none was sent): ``OK:1,TEMP,S25.0``,
  as a public parser of ESPEC chamber logs reads them.

Not from the manual: the alarm code the door switch raises (ESPEC's code numbers are not public); it is
``door_alarm_code``, 1 unless a test chooses another. Lines addressed to another chamber on the bus get no reply.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from protocols.clock import Clock
from simulators.chamber.faults import Faults, garble
from simulators.chamber.thermal import ThermalModel, ThermalParams

END = b"\r\n"
_ADDRESSED = re.compile(r"(\d+),(.*)")
_SETTING = re.compile(r"([SHL])(-?\d{1,3}(?:\.\d)?)")


@dataclass(frozen=True, slots=True)
class Nameplate:
    """What the chamber says about itself."""

    rom: str = "SIMULATED-ESPEC Ver.1.00"
    controller: str = "SIM"
    max_temperature_c: float = 150.0
    min_temperature_c: float = -70.0


class SimulatedEspec:
    """One ESPEC chamber (temperature only): :meth:`handle` answers one command line as the chamber would."""

    def __init__(
        self,
        clock: Clock,
        params: ThermalParams | None = None,
        *,
        address: int = 1,
        initial_c: float | None = None,
        upper_limit_c: float = 120.0,
        lower_limit_c: float = -40.0,
        door_alarm_code: int = 1,
        nameplate: Nameplate = Nameplate(),
    ):
        self.clock = clock
        self.address = address
        self.thermal = ThermalModel(params or ThermalParams(), clock.now(), initial_c)
        self.mode = "STANDBY"
        self.upper_limit_c = upper_limit_c
        self.lower_limit_c = lower_limit_c
        self.door_alarm_code = door_alarm_code
        self.nameplate = nameplate
        self.faults = Faults()
        self.lines: list[str] = []
        """Every command line received, in order (what a test checks the driver sent)."""
        self._lock = threading.Lock()

    # -- what a test sees and does --------------------------------------------------------------------------

    def temperature_c(self) -> float:
        with self._lock:
            self.thermal.advance(self.clock.now())
            return self.thermal.temperature_c

    def open_door(self) -> None:
        with self._lock:
            self.thermal.set_door(self.clock.now(), True)

    def close_door(self) -> None:
        with self._lock:
            self.thermal.set_door(self.clock.now(), False)

    def silence(self, lines: int = 1) -> None:
        with self._lock:
            self.faults.silent += lines

    def garble(self, replies: int = 1) -> None:
        with self._lock:
            self.faults.garbled += replies

    def alarms(self) -> list[int]:
        return [self.door_alarm_code] if self.thermal.door_open else []

    # -- the wire -------------------------------------------------------------------------------------------

    def handle(self, raw: bytes) -> bytes | None:
        """The reply to one received line (its CR LF removed), or ``None`` when the chamber stays silent."""
        with self._lock:
            try:
                line = raw.decode("ascii")
            except UnicodeDecodeError:
                line = None
            self.lines.append(raw.decode("ascii", "replace"))
            if self.faults.take_silent():
                return None
            if line is None:
                reply = "NA:CMD ERR"
            else:
                addressed = _ADDRESSED.fullmatch(line)
                if addressed is not None and int(addressed.group(1)) != self.address:
                    return None  # another chamber's line on a shared bus
                command = addressed.group(2) if addressed is not None else line
                reply = self._answer(command.strip(" "))
            data = reply.encode("ascii") + END
            return garble(data, END) if self.faults.take_garbled() else data

    def _answer(self, command: str) -> str:
        now = self.clock.now()
        self.thermal.advance(now)
        thermal = self.thermal
        if command == "TEMP?":
            return (f"{thermal.temperature_c:.1f},{thermal.set_point_c:.1f},"
                    f"{self.upper_limit_c:.1f},{self.lower_limit_c:.1f}")
        if command == "MON?":
            return f"{thermal.temperature_c:.1f},,{self.mode},{len(self.alarms())}"
        if command == "MODE?":
            return self.mode
        if command == "ALARM?":
            return ",".join(str(n) for n in [len(self.alarms()), *self.alarms()])
        if command == "ROM?":
            return self.nameplate.rom
        if command == "TYPE?":
            return f"T,{self.nameplate.controller},{self.nameplate.max_temperature_c:.1f}"
        if command in ("HUMI?",) or command.startswith("HUMI,"):
            return "NA:CONT NOT READY-1"
        head, comma, parameter = command.partition(",")
        if comma and head.strip() == "TEMP":
            return self._set_temperature(command, parameter.split())
        if comma and head.strip() == "MODE":
            return self._set_mode(command, parameter.strip())
        return "NA:CMD ERR"

    def _ok(self, command: str) -> str:
        return f"OK:{self.address},{command.replace(' ', '')}"

    def _set_temperature(self, command: str, parts: list[str]) -> str:
        values: dict[str, float] = {}
        for part in parts:
            match = _SETTING.fullmatch(part)
            if match is None or match.group(1) in values:
                return "NA:PARA ERR"
            values[match.group(1)] = float(match.group(2))
        if not values:
            return "NA:PARA ERR"
        upper = values.get("H", self.upper_limit_c)
        lower = values.get("L", self.lower_limit_c)
        set_point = values.get("S", self.thermal.set_point_c)
        plate = self.nameplate
        if not plate.min_temperature_c <= lower < upper <= plate.max_temperature_c + 5:
            return "NA:DATA OUT OF RANGE"
        if "S" in values and not lower <= set_point <= upper:
            return "NA:DATA OUT OF RANGE"
        self.upper_limit_c, self.lower_limit_c = upper, lower
        if "S" in values:
            self.thermal.set_set_point(self.clock.now(), set_point)
        return self._ok(command)

    def _set_mode(self, command: str, mode: str) -> str:
        if mode in ("CONSTANT", "STANDBY", "OFF"):
            self.mode = mode
            self.thermal.set_control(self.clock.now(), mode == "CONSTANT")
            return self._ok(command)
        if re.fullmatch(r"RUN\d+", mode):
            return "NA:DATA NOT READY"  # no programs are stored in the simulated chamber
        return "NA:PARA ERR"
