"""The link's own checks, without a port: what counts as a line, and how pyvisa's failure types map to the link's."""

from __future__ import annotations

import pytest
import serial
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

from drivers.chamber.link import LinkGarbled, LinkLost, LinkTimeout, SerialSettings, VisaLineLink, decode_line


def test_a_line_is_printable_ascii_ending_in_the_whole_termination():
    assert decode_line(b"23.0,25.0,120.0,-40.0\r\n", "\r\n") == "23.0,25.0,120.0,-40.0"
    assert decode_line(b"\r\n", "\r\n") == ""
    with pytest.raises(LinkGarbled, match=r"without its '\\r\\n' termination: b'23.0,25\\n'"):
        decode_line(b"23.0,25\n", "\r\n")  # a CR lost on the line: pyvisa would only warn
    with pytest.raises(LinkGarbled, match="not printable ASCII"):
        decode_line(b"2\xb3.0\r\n", "\r\n")
    with pytest.raises(LinkGarbled, match="not printable ASCII"):
        decode_line(b"23.0\r,25.0\r\n", "\r\n")


@pytest.mark.parametrize(
    ("raised", "expected"),
    [(VisaIOError(StatusCode.error_timeout), LinkTimeout), (VisaIOError(StatusCode.error_connection_lost), LinkLost),
     (VisaIOError(StatusCode.error_io), LinkLost), (BrokenPipeError(32, "Broken pipe"), LinkLost),
     (serial.SerialException("device reports readiness to read but returned no data"), LinkLost)],
)
def test_pyvisa_and_pyserial_failures_map_to_the_links_three(raised, expected):
    def fail():
        raise raised

    with pytest.raises(expected):
        VisaLineLink._guard(fail)


def test_a_link_that_is_not_open_is_lost_and_settings_describe_themselves():
    link = VisaLineLink("ASRL/dev/ttyUSB0::INSTR")
    assert link.is_serial and not link.is_open
    with pytest.raises(LinkLost, match="not open"):
        link.read_line()
    assert SerialSettings(19200, 7, "even", 2).describe() == "19200 baud 7E2"
    assert not VisaLineLink("TCPIP::10.0.0.5::10001::SOCKET").is_serial
