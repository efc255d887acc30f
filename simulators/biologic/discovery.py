"""``blfind64.dll``'s discovery exports over the simulated instruments (reference section 2.3).

The real discovery lives in a second DLL; the simulated library offers its four exports as well, so a client
that loads both DLLs through one stand-in (kbio's ``KBIO_api(eclib, blfind)``) binds them from the same object.
The list is UTF-16 text: instruments end with ``%``, fields are separated by ``$``.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Mapping
from typing import Any, Protocol

from simulators.biologic.firmware import INVALID_PARAMETERS, OK

DEVICE_NAMES = {5: "VMP3", 16: "SP-300", 20: "VSP-300", 33: "VMP-3e", 34: "VSP-3e", 12: "VMP-300", 14: "SP-150"}
_IP = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


class _Device(Protocol):
    device_code: int
    serial: str


def device_name(code: int) -> str:
    return DEVICE_NAMES.get(int(code), f"device {int(code)}")


def serialize(devices: Mapping[str, _Device], kind: str) -> tuple[str, int]:
    """The find text for ``kind`` 'usb', 'eth' or 'all', and the number of instruments in it."""
    entries = []
    for address, device in devices.items():
        name = device_name(device.device_code)
        if address.upper().startswith("USB") and kind in ("usb", "all"):
            entries.append(f"USB${address[3:] or '0'}$$$$${name}${device.serial}$")
        elif _IP.match(address) and kind in ("eth", "all"):
            gateway = address.rsplit(".", 1)[0] + ".1"
            entries.append(f"Ethernet${address}${gateway}$255.255.255.0$00-50-C2-00-00-01$1${name}${device.serial}$"
                           f"simulated {name}")  # fmt: skip
    return "".join(e + "%" for e in entries), len(entries)


def write_utf16(buffer: Any, size_ptr: Any, text: str) -> int:
    """Copy ``text`` as NUL-terminated UTF-16LE; ``*size`` is in characters, in and out."""
    if not buffer or not size_ptr:
        return INVALID_PARAMETERS
    capacity = int(size_ptr[0])
    if capacity <= 0:
        return INVALID_PARAMETERS
    chars = text[: capacity - 1]
    data = (chars + "\0").encode("utf-16-le")
    ctypes.memmove(buffer, data, len(data))
    size_ptr[0] = len(chars)
    return OK


class DiscoveryExports:
    """``BL_FindEChemDev`` and friends; needs ``self.devices`` (address -> simulated device)."""

    devices: Mapping[str, Any]

    def _find(self, kind: str, buffer: Any, size_ptr: Any, count_ptr: Any) -> int:
        visible = {a: d for a, d in self.devices.items() if a != "*"}
        if "*" in self.devices and "USB0" not in visible:  # the any-address instrument shows as the first USB one
            visible["USB0"] = self.devices["*"]
        text, count = serialize(visible, kind)
        code = write_utf16(buffer, size_ptr, text)
        if code == OK and count_ptr:
            count_ptr[0] = count
        return code

    def BL_FindEChemDev(self, buffer: Any, size_ptr: Any, count_ptr: Any) -> int:
        return self._find("all", buffer, size_ptr, count_ptr)

    def BL_FindEChemEthDev(self, buffer: Any, size_ptr: Any, count_ptr: Any) -> int:
        return self._find("eth", buffer, size_ptr, count_ptr)

    def BL_FindEChemUsbDev(self, buffer: Any, size_ptr: Any, count_ptr: Any) -> int:
        return self._find("usb", buffer, size_ptr, count_ptr)

    def BL_SetConfig(self, ip: bytes | None, config: bytes | None) -> int:
        """Accepts ``IP%x$NM%y$GW%z$`` for an instrument it knows; the simulated network does not change."""
        if not ip or not config or ip.decode("ascii", "replace") not in self.devices:
            return -38 if ip and config else -2  # blfind: IP not found / invalid parameter
        fields = dict(part.split("%", 1) for part in config.decode("ascii", "replace").split("$") if "%" in part)
        if not fields or not all(key in ("IP", "NM", "GW") for key in fields):
            return -32  # blfind: empty or unknown TCP/IP parameters
        if any(not _IP.match(value) for value in fields.values()):
            return -33  # blfind: address format
        return OK
