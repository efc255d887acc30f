"""The BTS Client API commands as typed methods (neware-bts-api.md section 2).

One method per command, each building its request with escaped values, exchanging it over a
:class:`~drivers.transport.Transport` and returning typed replies. Reads are repeated once after a garbled reply
(the transport is resynchronised first); writes (start, stop, continue, ...) are never repeated automatically,
because acting twice on a channel is worse than reporting one failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from xml.etree.ElementTree import Element

from drivers.neware import replies
from drivers.neware.address import ChannelAddress
from drivers.neware.codec import build_request, channel_list, element, parse_reply
from drivers.neware.errors import NewareProtocolError
from drivers.neware.pages import parse_download_frame
from drivers.transport import Transport

log = logging.getLogger(__name__)

#: the protocol's page limit for ``download`` (neware-bts-api.md 2.7)
MAX_DOWNLOAD_COUNT = 1000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BackupSettings:
    """The optional ``<backup>`` element of ``start`` (automatic export on the BTS PC)."""

    backupdir: str
    remotedir: str = ""
    filenametype: int = 0
    customfilename: str = ""
    addtimewhenrepeat: int = 0
    createdirbydate: int = 0
    filetype: int = 0
    backupontime: int = 1
    backupontimeinterval: int = 720
    backupfree: int = 1

    def xml(self) -> str:
        return element("backup", {name: getattr(self, name) for name in self.__slots__})


@dataclass(frozen=True, slots=True)
class StartItem:
    address: ChannelAddress
    step_file_path: str  # as the BTS Client PC sees it
    barcode: str
    remark: str | None = None


class BtsClient:
    def __init__(self, transport: Transport, *, garbled_retries: int = 2):
        self.transport = transport
        self.garbled_retries = garbled_retries

    def _query(self, command: str, body: str = "", *, idempotent: bool = True) -> Element:
        return self._exchange(command, body, parse_reply, idempotent=idempotent)

    def _exchange(self, command: str, body: str, parse: Callable[[bytes, str], T], *, idempotent: bool = True) -> T:
        request = build_request(command, body)
        attempts = 1 + (self.garbled_retries if idempotent else 0)
        for attempt in range(attempts):
            frame = self.transport.exchange(request, idempotent=idempotent)
            try:
                return parse(frame, command)
            except NewareProtocolError as exc:
                self.transport.resync()
                if attempt + 1 >= attempts:
                    raise NewareProtocolError(
                        f"{self.transport.address}: {exc}" + (f" (after {attempts} attempts)" if idempotent else "")
                    ) from None
                log.warning("%s: garbled reply to %s, retrying (%s)", self.transport.address, command, exc)
        raise AssertionError("unreachable")

    # -- session and inventory ------------------------------------------------------------------------------

    def connect(self, username: str = "admin", password: str = "neware") -> bool:
        body = element("username", None, username) + element("password", None, password) + element("type", None, "bfgs")
        return replies.parse_connect(self._query("connect", body))

    def getdevinfo(self) -> replies.DeviceInfo:
        return replies.parse_devinfo(self._query("getdevinfo"))

    # -- channel-list reads ---------------------------------------------------------------------------------

    def getchlstatus(self, channels: Sequence[ChannelAddress]) -> list[replies.ChannelWorkStatus]:
        items = [element("status", c.attributes(), "true") for c in channels]
        return replies.parse_chlstatus(self._query("getchlstatus", channel_list(items)), channels)

    def inquire(self, channels: Sequence[ChannelAddress], *, barcode: bool = True) -> list[replies.InquireReply]:
        items = [element("inquire", {**c.attributes(), "aux": 0, "barcode": int(barcode)}, "true") for c in channels]
        return replies.parse_inquire(self._query("inquire", channel_list(items)), channels)

    def inquiredf(self, channels: Sequence[ChannelAddress], testid: int = 0) -> list[replies.InquireDf]:
        return self.inquiredf_tests([(c, testid) for c in channels])

    def inquiredf_tests(self, tests: Sequence[tuple[ChannelAddress, int]]) -> list[replies.InquireDf]:
        """Upload progress of (channel, testid) pairs in one request (testid 0: the current or latest test)."""
        items = [element("chl", {**c.attributes(with_ip=False), "testid": testid}) for c, testid in tests]
        return replies.parse_inquiredf(self._query("inquiredf", channel_list(items)), [c for c, _ in tests])

    # -- single-channel data --------------------------------------------------------------------------------

    def download(self, channel: ChannelAddress, *, testid: int = 0, startpos: int, count: int) -> replies.DownloadPage:
        """Records with seqid >= ``startpos`` (1-based), at most ``count`` (<= 1000)."""
        if not 0 <= count <= MAX_DOWNLOAD_COUNT:
            raise ValueError(f"download count must be 0..{MAX_DOWNLOAD_COUNT}, found {count}")
        attrs = {
            **channel.attributes(with_ip=False),
            "auxid": 0,
            "testid": testid,
            "startpos": startpos,
            "count": count,
        }
        return self._exchange("download", element("download", attrs), parse_download_frame)

    def testid(self, channel: ChannelAddress) -> int:
        """The current or latest test id, by a zero-length download (as aurora's get-job-id does)."""
        return self.download(channel, testid=0, startpos=0, count=0).testid

    def download_step_layer(self, channel: ChannelAddress, testid: int = 0) -> replies.StepLayer:
        attrs = {**channel.attributes(with_ip=False), "testid": testid}
        return replies.parse_step_layer(self._query("downloadStepLayer", element("downloadStepLayer", attrs)))

    def download_log(self, channel: ChannelAddress, testid: int = 0) -> replies.TestLog:
        attrs = {**channel.attributes(with_ip=False), "testid": testid, "log_lever": 0}  # sic: log_lever
        return replies.parse_log(self._query("downloadlog", element("download", attrs)))

    # -- writes ---------------------------------------------------------------------------------------------

    def _acks(self, command: str, channels: Sequence[ChannelAddress], text: str = "true") -> list[replies.ChannelAck]:
        items = [element(command, c.attributes(), text) for c in channels]
        root = self._query(command, channel_list(items), idempotent=False)
        return replies.parse_acks(root, channels, command)

    def start(self, items: Sequence[StartItem], backup: BackupSettings | None = None) -> list[replies.ChannelAck]:
        """Start every item in one batch (the channels then share one testid)."""
        elements = []
        for item in items:
            attrs = {**item.address.attributes(), "barcode": item.barcode}
            if item.remark is not None:
                attrs["remark"] = item.remark
            elements.append(element("start", attrs, item.step_file_path))
        if backup is not None:
            elements.append(backup.xml())
        body = channel_list(elements, count=len(items))  # count is the number of channels, not of elements
        root = self._query("start", body, idempotent=False)
        return replies.parse_acks(root, [i.address for i in items], "start")

    def stop(self, channels: Sequence[ChannelAddress]) -> list[replies.ChannelAck]:
        return self._acks("stop", channels)

    def continue_(self, channels: Sequence[ChannelAddress]) -> list[replies.ChannelAck]:
        return self._acks("continue", channels)

    def clearflag(self, channels: Sequence[ChannelAddress]) -> list[replies.ChannelAck]:
        return self._acks("clearflag", channels)

    def light(self, channels: Sequence[ChannelAddress], on: bool = True) -> list[replies.ChannelAck]:
        return self._acks("light", channels, "true" if on else "false")

    def setpause(self, channel: ChannelAddress, *, cycleid: int = -1, stepid: int = -1) -> replies.ChannelAck:
        """Schedule a pause; -1/-1 means "the current cycle and step", i.e. pause now **[unverified]**."""
        attrs = {**channel.attributes(), "cycleid": cycleid, "stepid": stepid, "timeout": ""}
        root = self._query("setpause", element("setpause", attrs), idempotent=False)
        return replies.parse_acks(root, [channel], "setpause")[0]
