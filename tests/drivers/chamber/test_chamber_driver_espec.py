"""The ESPEC chamber driver against an ordered fake link: every line it sends, in order, and what it makes of every
reply: readings, confirmations, ``NA:`` refusals, alarms, a garbled line, a timeout and a reconnect.

Replies are written as ESPEC's manual and ESPEC North America's library give them (see drivers/chamber/espec.py).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import InstrumentTimeout, Refused
from drivers.chamber import (
    ChamberAlarm,
    ChamberDoorOpen,
    ChamberGarbled,
    ChamberLinkLost,
    ChamberMode,
    ChamberNoAnswer,
    ChamberRefused,
    Espec,
)
from drivers.transport import ConnectionLost
from protocols.clock import VirtualClock
from tests.drivers.chamber.ordered_link import (
    CLOSE,
    DISCARD,
    GARBLED,
    LOST,
    OPEN,
    OPEN_FAILS,
    TIMEOUT,
    OrderedLink,
)

RESOURCE = "ASRL/dev/ttyUSB0::INSTR"
TEMP = ("TEMP?", "23.0,25.0,120.0,-40.0")
MON = ("MON?", "23.0,,CONSTANT,0")


def chamber(link: OrderedLink, **kwargs) -> Espec:
    kwargs.setdefault("clock", VirtualClock())
    made = Espec(link, **kwargs)
    link.lock = made._lock  # every link call must happen under the chamber's lock
    return made


def test_read_is_temp_then_mon_and_decodes_every_field():
    with OrderedLink([OPEN, TEMP, MON]) as link:
        reading = chamber(link).read()
    assert reading.temperature_c == 23.0
    assert reading.set_point_c == 25.0
    assert reading.upper_limit_c == 120.0
    assert reading.lower_limit_c == -40.0
    assert reading.mode is ChamberMode.CONSTANT
    assert reading.alarms == ()
    assert not reading.within(1.9) and reading.within(2.0)


@pytest.mark.parametrize(
    ("word", "mode"),
    [("OFF", ChamberMode.OFF), ("STANDBY", ChamberMode.STANDBY), ("RUN", ChamberMode.PROGRAM),
     ("RUN PAUSE", ChamberMode.PROGRAM)],
)
def test_modes(word, mode):
    with OrderedLink([OPEN, TEMP, ("MON?", f"23.0,,{word},0")]) as link:
        assert chamber(link).read().mode is mode


def test_an_alarm_is_read_out_and_raised_with_the_reading():
    script = [OPEN, ("TEMP?", "31.4,45.0,120.0,-40.0"), ("MON?", "31.4,,CONSTANT,2"), ("ALARM?", "2,7,12")]
    with OrderedLink(script) as link, pytest.raises(ChamberAlarm) as raised:
        chamber(link).read()
    assert type(raised.value) is ChamberAlarm
    assert raised.value.reading.alarms == (7, 12)
    assert raised.value.reading.temperature_c == 31.4
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{RESOURCE} (ESPEC chamber): the chamber reports alarm 7, 12 at 31.4 °C")


def test_the_door_alarm_is_named_when_configured_and_allow_alarm_returns_the_reading():
    script = [("TEMP?", "31.4,45.0,120.0,-40.0"), ("MON?", "31.4,,CONSTANT,1"), ("ALARM?", "1,7")]
    with OrderedLink([OPEN, *script, *script]) as link:
        espec = chamber(link, door_alarms={7})
        with pytest.raises(ChamberDoorOpen, match=r"the door is open \(alarm 7\) at 31.4 °C.*close it"):
            espec.read()
        reading = espec.read(allow_alarm=True)
    assert reading.door_open and reading.alarms == (7,)


@pytest.mark.parametrize(
    ("asked", "sent"), [(45, "45.0"), (44.96, "45.0"), (-10.04, "-10.0"), (0.05, "0.1"), (-0.04, "0.0")]
)
def test_set_point_is_sent_with_one_decimal_and_confirmed(asked, sent):
    with OrderedLink([OPEN, (f"TEMP, S{sent}", f"OK:1,TEMP,S{sent}")]) as link:
        assert chamber(link).set_point(asked) == float(sent)


def test_start_and_standby_switch_the_mode():
    script = [OPEN, ("MODE, CONSTANT", "OK:1,MODE,CONSTANT"), ("MODE, STANDBY", "OK:1,MODE,STANDBY"),
              ("MODE, STANDBY", "OK:1,MODE,STANDBY")]
    with OrderedLink(script) as link:
        espec = chamber(link)
        espec.start()
        espec.standby()
        espec.safe_state()


def test_identify_reads_rom_and_type():
    with OrderedLink([OPEN, ("ROM?", "P-300 Ver.1.07"), ("TYPE?", "T,S2,150.0")]) as link:
        identity = chamber(link).identify()
    assert (identity.vendor, identity.model, identity.firmware, identity.max_temperature_c) == (
        "ESPEC", "P-300 Ver.1.07", "S2", 150.0)


def test_an_address_prefixes_every_line():
    with OrderedLink([OPEN, ("2,TEMP?", "23.0,25.0,120.0,-40.0"), ("2,MON?", "23.0,,STANDBY,0"),
                      ("2,TEMP, S30.0", "OK:2,TEMP,S30.0")]) as link:
        espec = chamber(link, address=2)
        espec.read()
        espec.set_point(30)


@pytest.mark.parametrize("bad", [math.nan, math.inf, "25"])
def test_a_set_point_that_is_not_a_temperature_is_refused_before_anything_is_sent(bad):
    with OrderedLink([]) as link, pytest.raises(Refused, match=r"^ASRL/dev/ttyUSB0::INSTR .*give a finite number"):
        chamber(link).set_point(bad)


def test_an_na_reply_is_refused_once_never_repeated():
    with OrderedLink([OPEN, ("TEMP, S130.0", "NA:DATA OUT OF RANGE")]) as link, \
            pytest.raises(ChamberRefused) as raised:
        chamber(link).set_point(130)
    assert raised.value.code == "DATA OUT OF RANGE"
    assert isinstance(raised.value, Refused)
    assert str(raised.value) == (
        f"{RESOURCE} (ESPEC chamber): the chamber refused 'TEMP, S130.0' with 'NA:DATA OUT OF RANGE' (the value is "
        "outside the chamber's temperature alarm limits (TEMP? shows them); widen them on the chamber's panel or "
        "choose a set point inside them)"
    )


@pytest.mark.parametrize(("reply", "code"), [("NA:PROTECT ON", "PROTECT ON"), ("NA :INVALID REQ", "INVALID REQ"),
                                             ("NA:CMD ERR", "CMD ERR"), ("NA:SOMETHING NEW", "SOMETHING NEW")])
def test_error_replies_to_queries_are_refusals_too(reply, code):
    with OrderedLink([OPEN, ("TEMP?", reply)]) as link, pytest.raises(ChamberRefused) as raised:
        chamber(link).read()
    assert raised.value.code == code


def test_a_timeout_discards_input_and_repeats_the_query():
    with OrderedLink([OPEN, ("TEMP?", TIMEOUT), DISCARD, TEMP, MON]) as link:
        assert chamber(link).read().temperature_c == 23.0


def test_no_answer_at_all_gives_up_after_the_retries_with_one_line():
    script = [OPEN, *[step for _ in range(3) for step in (("TEMP?", TIMEOUT), DISCARD)]]
    with OrderedLink(script) as link, pytest.raises(ChamberNoAnswer) as raised:
        chamber(link).read()
    assert isinstance(raised.value, InstrumentTimeout)
    assert str(raised.value) == (
        f"{RESOURCE} (ESPEC chamber): no answer to 'TEMP?' (3 attempts); check that the chamber is on and in remote "
        "mode, that this is its port and cable, and that its serial settings are 9600 baud 8N1 with lines ending "
        "'\\r\\n'"
    )


def test_a_garbled_line_is_discarded_and_the_query_repeated():
    with OrderedLink([OPEN, TEMP, ("MON?", GARBLED), DISCARD, MON]) as link:
        assert chamber(link).read().mode is ChamberMode.CONSTANT


@pytest.mark.parametrize("reply", ["23.0,25.0,120.0", "OK:1,MODE,CONSTANT", "23.0,25.0,1x0.0,-40.0", ""])
def test_a_reply_that_is_not_the_commands_counts_as_garbled(reply):
    with OrderedLink([OPEN, ("TEMP?", reply), DISCARD, TEMP, MON]) as link:
        assert chamber(link).read().set_point_c == 25.0


def test_a_confirmation_of_another_command_is_out_of_step():
    script = [OPEN, ("MODE, CONSTANT", "OK:1,TEMP,S45.0"), DISCARD, ("MODE, CONSTANT", "OK:1,MODE,CONSTANT")]
    with OrderedLink(script) as link:
        chamber(link).start()


def test_garbled_every_time_gives_up_with_one_line():
    script = [OPEN, TEMP, ("MON?", GARBLED), DISCARD, ("MON?", GARBLED), DISCARD]
    with OrderedLink(script) as link, pytest.raises(ChamberGarbled) as raised:
        chamber(link, retries=1).read()
    message = str(raised.value)
    assert message.startswith(f"{RESOURCE} (ESPEC chamber): garbled reply to 'MON?' (a line with bytes")
    assert "; 2 attempts); check that the chamber is on" in message


def test_a_lost_line_is_closed_reopened_on_the_backoff_schedule_and_the_query_repeated():
    clock = VirtualClock()
    script = [OPEN, ("TEMP?", LOST), CLOSE, OPEN_FAILS, OPEN_FAILS, OPEN, TEMP, MON]
    with OrderedLink(script) as link:
        espec = chamber(link, clock=clock)
        assert espec.read().temperature_c == 23.0
    assert espec.reconnects == 1
    assert clock.now() == 0.5 + 1.0  # the first two delays of DEFAULT_BACKOFF, on the injected clock


def test_a_line_that_cannot_be_reopened_gives_up_after_the_backoff_schedule():
    clock = VirtualClock()
    script = [OPEN, ("TEMP?", LOST), CLOSE, OPEN_FAILS, OPEN_FAILS, OPEN_FAILS, OPEN_FAILS]
    with OrderedLink(script) as link, pytest.raises(ChamberLinkLost) as raised:
        chamber(link, clock=clock).read()
    assert isinstance(raised.value, ConnectionLost)
    assert clock.now() == 0.5 + 1.0 + 2.0
    assert str(raised.value).startswith(
        f"{RESOURCE} (ESPEC chamber): cannot open the line after 4 attempts (SerialException: could not open port")


def test_a_tcp_chamber_gets_a_network_hint():
    with OrderedLink([OPEN_FAILS] * 4, resource="TCPIP::10.0.0.5::10001::SOCKET") as link, \
            pytest.raises(ChamberLinkLost, match=r"its serial-to-network adapter\) is on and listens on that port$"):
        chamber(link).read()


def test_close_closes_the_link():
    with OrderedLink([OPEN, TEMP, MON, CLOSE]) as link, chamber(link) as espec:
        espec.read()


@given(st.floats(min_value=-100, max_value=200, allow_nan=False))
def test_any_set_point_is_sent_to_the_nearest_tenth_and_its_echo_confirms_it(celsius):
    tenth = math.floor(abs(celsius) * 10 + 0.5 + 1e-9) / 10 * (1 if celsius >= 0 else -1) + 0.0  # never S-0.0
    if abs(abs(celsius) * 10 - math.floor(abs(celsius) * 10) - 0.5) < 1e-6:
        return  # a float that prints as an exact half: the decimal rounding of its repr decides, tested above
    sent = f"TEMP, S{tenth:.1f}"
    with OrderedLink([OPEN, (sent, "OK:1," + sent.replace(" ", ""))]) as link:
        assert chamber(link).set_point(celsius) == pytest.approx(tenth, abs=1e-9)
