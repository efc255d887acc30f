"""The simulated ESPEC chamber over a real pty with pyserial alone (no station driver): its replies against the
manual's formats, its thermal response against formulas worked out here, and each fault.

Expected temperatures are computed in the test from the physics the simulator's docstring states (a first-order
lag; the textbook second-order step response with the stated overshoot and envelope time constant; a ramp through
a first-order lag), never by calling the simulator's model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import pytest
import serial

from protocols.clock import VirtualClock
from simulators.chamber import PtyLineServer, SimulatedEspec, ThermalParams

AMBIENT = 23.0
PLANT_TAU = 1800.0
DOOR_TAU = 120.0
RESPONSE_TAU = 300.0
OVERSHOOT = 0.05


class Line:
    """pyserial on the pty's slave end, the way a terminal program talks to a chamber."""

    def __init__(self, port: str, timeout_s: float = 2.0):
        self.port = serial.Serial(port, 9600, bytesize=8, parity="N", stopbits=1, timeout=timeout_s)

    def ask(self, command: str) -> bytes:
        self.port.write(command.encode("ascii") + b"\r\n")
        return self.port.read_until(b"\r\n")

    def text(self, command: str) -> str:
        reply = self.ask(command)
        assert reply.endswith(b"\r\n"), reply
        return reply[:-2].decode("ascii")


@pytest.fixture
def rig(request) -> Iterator[tuple[SimulatedEspec, Line, VirtualClock]]:
    params = ThermalParams(ambient_c=AMBIENT, plant_tau_s=PLANT_TAU, door_tau_s=DOOR_TAU,
                           response_tau_s=RESPONSE_TAU, overshoot=OVERSHOOT,
                           ambient_drift_c_per_h=getattr(request, "param", 0.0))
    clock = VirtualClock()
    chamber = SimulatedEspec(clock, params, door_alarm_code=9)
    with PtyLineServer(chamber.handle) as server:
        line = Line(server.port)
        yield chamber, line, clock
        line.port.close()


def step_response(t: float, start: float, target: float) -> float:
    """The textbook underdamped second-order step response with zero initial slope."""
    log_os = math.log(OVERSHOOT)
    zeta = -log_os / math.sqrt(math.pi**2 + log_os**2)
    wn = 1.0 / (zeta * RESPONSE_TAU)
    wd = wn * math.sqrt(1.0 - zeta**2)
    envelope = math.exp(-zeta * wn * t)
    return target - (target - start) * envelope * (math.cos(wd * t) + zeta / math.sqrt(1 - zeta**2) * math.sin(wd * t))


def monitored(line: Line) -> float:
    return float(line.text("TEMP?").split(",")[0])


# -- the manual's formats ---------------------------------------------------------------------------------------


def test_monitor_replies_have_the_manuals_formats(rig):
    _, line, _ = rig
    assert line.ask("TEMP?") == b"23.0,23.0,120.0,-40.0\r\n"  # monitored, set point, upper, lower limit
    assert line.ask("MON?") == b"23.0,,STANDBY,0\r\n"  # temperature, (no) humidity, mode, alarm count
    assert line.ask("MODE?") == b"STANDBY\r\n"
    assert line.ask("ALARM?") == b"0\r\n"
    assert re.fullmatch(rb"\S+ Ver\.\d+\.\d+\r\n", line.ask("ROM?"))
    assert re.fullmatch(rb"T,\w+,\d+\.\d\r\n", line.ask("TYPE?"))


def test_settings_are_confirmed_with_the_address_and_the_command_without_spaces(rig):
    _, line, _ = rig
    assert line.ask("TEMP, S45.0") == b"OK:1,TEMP,S45.0\r\n"
    assert line.ask("TEMP, S45.0 H80.0 L0.0") == b"OK:1,TEMP,S45.0H80.0L0.0\r\n"
    assert line.ask("MODE, CONSTANT") == b"OK:1,MODE,CONSTANT\r\n"
    assert line.ask("1,MODE?") == b"CONSTANT\r\n"
    assert line.ask("TEMP?") == b"23.0,45.0,80.0,0.0\r\n"


@pytest.mark.parametrize(
    ("command", "reply"),
    [("TENMP?", "NA:CMD ERR"), ("TEMP, X45.0", "NA:PARA ERR"), ("TEMP,", "NA:PARA ERR"),
     ("TEMP, S45.01", "NA:PARA ERR"), ("TEMP, S130.0", "NA:DATA OUT OF RANGE"),
     ("TEMP, S-45.0", "NA:DATA OUT OF RANGE"),
     ("HUMI?", "NA:CONT NOT READY-1"), ("MODE, RUN3", "NA:DATA NOT READY"), ("MODE, FAST", "NA:PARA ERR")],
)
def test_error_replies(rig, command, reply):
    _, line, _ = rig
    assert line.text(command) == reply
    assert line.text("TEMP?") == "23.0,23.0,120.0,-40.0"  # nothing changed


def test_lines_for_another_address_or_without_cr_get_no_reply():
    chamber = SimulatedEspec(VirtualClock())
    with PtyLineServer(chamber.handle) as server:
        line = Line(server.port, timeout_s=0.2)
        assert line.ask("2,TEMP?") == b""
        line.port.write(b"TEMP?\n")  # LF alone does not end a line for a chamber set to CR LF
        assert line.port.read_until(b"\r\n") == b""
        line.port.write(b"\r\n")  # the CR LF completes "TEMP?\n": not a command
        assert line.port.read_until(b"\r\n") == b"NA:CMD ERR\r\n"
        assert line.ask("1,TEMP?") == b"23.0,23.0,120.0,-40.0\r\n"
        line.port.close()
    assert chamber.lines == ["2,TEMP?", "TEMP?\n", "1,TEMP?"]


# -- thermal response -------------------------------------------------------------------------------------------


def test_a_step_follows_the_second_order_response_with_its_overshoot(rig):
    _, line, clock = rig
    line.text("TEMP, S45.0")
    line.text("MODE, CONSTANT")
    zeta = -math.log(OVERSHOOT) / math.sqrt(math.pi**2 + math.log(OVERSHOOT) ** 2)
    peak_time = math.pi / (math.sqrt(1 - zeta**2) / (zeta * RESPONSE_TAU))
    for t in (60.0, RESPONSE_TAU, peak_time, 2000.0, 10 * RESPONSE_TAU):
        clock.advance(t - clock.now())
        assert monitored(line) == pytest.approx(step_response(t, AMBIENT, 45.0), abs=0.05), t
    # the numbers behind the figures: 51 % of the step covered after one envelope time constant (a first-order lag
    # would have covered 63 %), 45 + 5 % of 22 K at the peak, settled after ten
    assert step_response(RESPONSE_TAU, AMBIENT, 45.0) == pytest.approx(34.27, abs=0.01)
    assert step_response(peak_time, AMBIENT, 45.0) == pytest.approx(46.1, abs=1e-9)


def test_standby_relaxes_to_the_room_as_a_first_order_lag(rig):
    chamber, line, clock = rig
    line.text("TEMP, S45.0")
    line.text("MODE, CONSTANT")
    clock.advance(20 * RESPONSE_TAU)
    assert monitored(line) == 45.0
    start = chamber.temperature_c()  # 45 to within the e^-20 left of the overshoot
    line.text("MODE, STANDBY")
    clock.advance(PLANT_TAU)  # one time constant: 63.2 % of the way back to the room
    expected = AMBIENT + (start - AMBIENT) * math.exp(-1)
    assert expected == pytest.approx(31.09, abs=0.005)
    assert monitored(line) == pytest.approx(expected, abs=0.05)
    assert chamber.temperature_c() == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("rig", [1.0], indirect=True)  # the room warms by 1 K an hour
def test_the_room_drifts_and_an_idle_chamber_lags_it_by_rate_times_tau(rig):
    chamber, line, clock = rig
    hours = 10.0
    clock.advance(hours * 3600)
    rate = 1.0 / 3600
    t = hours * 3600
    expected = AMBIENT + rate * t - rate * PLANT_TAU * (1 - math.exp(-t / PLANT_TAU))  # 33 - 0.5
    assert chamber.temperature_c() == pytest.approx(expected, abs=1e-9)
    assert monitored(line) == pytest.approx(expected, abs=0.05)


# -- faults -----------------------------------------------------------------------------------------------------


def test_silence_swallows_one_line_and_the_next_is_answered():
    chamber = SimulatedEspec(VirtualClock())
    with PtyLineServer(chamber.handle) as server:
        line = Line(server.port, timeout_s=0.2)
        chamber.silence(1)
        assert line.ask("TEMP?") == b""
        assert line.ask("TEMP?") == b"23.0,23.0,120.0,-40.0\r\n"
        line.port.close()


def test_a_garbled_reply_has_high_bits_set_but_its_line_end(rig):
    chamber, line, _ = rig
    chamber.garble(1)
    garbled = line.ask("TEMP?")
    assert garbled.endswith(b"\r\n")
    assert any(b >= 0x80 for b in garbled)
    assert bytes(b & 0x7F for b in garbled) == b"23.0,23.0,120.0,-40.0\r\n"
    assert line.ask("TEMP?") == b"23.0,23.0,120.0,-40.0\r\n"


def test_an_open_door_raises_the_alarm_and_lets_the_room_in(rig):
    chamber, line, clock = rig
    line.text("TEMP, S45.0")
    line.text("MODE, CONSTANT")
    clock.advance(20 * RESPONSE_TAU)
    chamber.open_door()
    assert line.text("ALARM?") == "1,9"
    assert line.text("MON?") == "45.0,,CONSTANT,1"
    clock.advance(DOOR_TAU)  # one door time constant: 63.2 % of the way to the room, controller cut off
    assert monitored(line) == pytest.approx(AMBIENT + (45.0 - AMBIENT) * math.exp(-1), abs=0.05)
    chamber.close_door()
    assert line.text("ALARM?") == "0"
    start = chamber.temperature_c()
    clock.advance(RESPONSE_TAU)  # control resumes bumplessly: the second-order step from where the door left it
    assert monitored(line) == pytest.approx(step_response(RESPONSE_TAU, start, 45.0), abs=0.05)
