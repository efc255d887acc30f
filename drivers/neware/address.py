"""How the station names a Neware channel: ``devid-subdevid-chlid`` (e.g. ``21-1-1``).

This is aurora-neware's "pipeline" id (neware-bts-api.md 1.9): short, what lab users see in the BTS Client, and
unique within one BTS server. The server ip and the device type, which every request also carries, belong to
the instrument's configuration rather than to the channel id, so they are given once per driver.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.neware.errors import AddressError

#: device type of a BTS85 unit, the value seen in every real capture (neware-bts-api.md 1.9)
DEFAULT_DEVTYPE = 27


@dataclass(frozen=True, slots=True, order=True)
class ChannelAddress:
    devid: int
    subdevid: int
    chlid: int
    devtype: int = DEFAULT_DEVTYPE
    ip: str = "127.0.0.1"

    @classmethod
    def parse(cls, text: str, *, devtype: int = DEFAULT_DEVTYPE, ip: str = "127.0.0.1") -> ChannelAddress:
        parts = text.strip().split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise AddressError(
                f"channel id {text!r} is not of the form devid-subdevid-chlid (e.g. '21-1-1'); "
                "use the numbers the BTS Client shows for the channel"
            )
        devid, subdevid, chlid = (int(p) for p in parts)
        return cls(devid=devid, subdevid=subdevid, chlid=chlid, devtype=devtype, ip=ip)

    @property
    def channel_id(self) -> str:
        return f"{self.devid}-{self.subdevid}-{self.chlid}"

    def attributes(self, *, with_ip: bool = True) -> dict[str, object]:
        """The five addressing attributes, in the order the BTS Client writes them."""
        attrs: dict[str, object] = {"ip": self.ip} if with_ip else {}
        attrs.update(devtype=self.devtype, devid=self.devid, subdevid=self.subdevid, chlid=self.chlid)
        return attrs

    def __str__(self) -> str:
        return self.channel_id
