"""The BTS Client API commands as typed methods (neware-bts-api.md section 2).

One method per command, each building its request with escaped values, exchanging it over a
:class:`~drivers.transport.Transport` and returning typed replies. Reads are repeated after a garbled, oversized
or implausible reply (the transport is resynchronised first); writes (start, stop, continue, ...) are never
repeated automatically, because acting twice on a channel is worse than reporting one failure.

Every request carries a cap on its reply's size, computed from what the protocol can send for it (a download
page holds at most ``count`` records, a channel list one element per channel asked for), and enforced by the
transport while the reply arrives: a runaway or hostile reply costs a few MB at most and is never parsed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from xml.etree.ElementTree import Element

from drivers.neware import replies
from drivers.neware.address import ChannelAddress
from drivers.neware.codec import INT64_MAX, build_request, channel_list, element, parse_reply
from drivers.neware.errors import NewareProtocolError
from drivers.neware.pages import PageRequest, parse_download_frame
from drivers.transport import FrameTooLarge, Transport

log = logging.getLogger(__name__)

#: the protocol's page limit for ``download`` (neware-bts-api.md 2.7)
MAX_DOWNLOAD_COUNT = 1000

# Reply-size caps (bytes). Each is a generous multiple of the largest reply the protocol allows for the request,
# so that a real BTS never meets one, yet a runaway reply is cut off after a few MB instead of hundreds.
#: prolog, <cmd>, the echo element, <list>, trailer, indentation: ~300 bytes in real captures
ENVELOPE_BYTES = 64 * 1024
#: one download record: ~215 bytes in real captures, ~300 with 19-digit numbers, ~400 with the optional aux
#: attributes (V1, T1, ...) of neware-bts-api.md 2.7
DOWNLOAD_ROW_BYTES = 1024
#: one channel's element in a channel-list reply: ~300 bytes for inquire (the largest), plus an escaped barcode
CHANNEL_ROW_BYTES = 2048
#: room for channels nobody asked for, which real replies may list (neware-bts-api.md 1.10 quirk 2)
UNASKED_CHANNELS_BYTES = 256 * 1024
#: getdevinfo lists every channel of the server, ~100 bytes each (the largest real capture lists 496)
DEVINFO_MAX_BYTES = 8 * 1024 * 1024
#: downloadlog: the protocol caps a reply at 5000 entries of ~70 bytes
LOG_MAX_BYTES = ENVELOPE_BYTES + 5000 * 512
#: downloadStepLayer has no protocol limit: one ~330-byte row per executed step, so this allows ~190 000 steps
STEP_LAYER_MAX_BYTES = 64 * 1024 * 1024


def download_reply_cap(count: int) -> int:
    """The largest reply a ``download`` of ``count`` records may get (~1 MB for a full page)."""
    return ENVELOPE_BYTES + count * DOWNLOAD_ROW_BYTES


def channel_list_reply_cap(channels: int) -> int:
    """The largest reply a channel-list command for ``channels`` channels may get (~4.3 MB for 2048)."""
    return ENVELOPE_BYTES + UNASKED_CHANNELS_BYTES + channels * CHANNEL_ROW_BYTES


T = TypeVar("T")


#: ``filenametype``: 0 ``{devid}_{subdevid}_{chlid}_{testid}``, 1 the barcode, 2 ``customfilename`` (reference 2.5)
BACKUP_FILE_NAMES = {"channel": 0, "barcode": 1, "custom": 2}
#: ``filetype``: 0 NDA/NDAX, 1 Excel (reference 2.5)
BACKUP_FILE_TYPES = {"nda": 0, "excel": 1}


@dataclass(frozen=True, slots=True)
class BackupSettings:
    """The optional ``<backup>`` element of ``start``: the BTS Client's automatic export of the test's data file on
    its own PC (reference neware-bts-api.md 2.5). Attributes are written in this order, aurora-neware's (in
    production against BTS 8.0), with the BTS's own values: ``filenametype`` one of :data:`BACKUP_FILE_NAMES`,
    ``filetype`` one of :data:`BACKUP_FILE_TYPES`, flags 0/1, ``backupontimeinterval`` in the BTS's unit (minutes by
    aurora-neware's 720, **[unverified]**). The station fills it from ``backup:`` in station.yaml."""

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

    def _query(
        self, command: str, body: str, read: Callable[[Element], T], *, max_reply: int, idempotent: bool = True
    ) -> T:
        """One request whose reply is parsed into XML and then typed by ``read``, both inside the retry."""

        def parse(frame: bytes, name: str) -> T:
            return read(parse_reply(frame, name))

        return self._exchange(command, body, parse, max_reply=max_reply, idempotent=idempotent)

    def _exchange(
        self, command: str, body: str, parse: Callable[[bytes, str], T], *, max_reply: int, idempotent: bool = True
    ) -> T:
        """Send one request and parse its reply; a read is repeated after a reply that is refused.

        A refused reply is garbled XML, one that fails ``parse``'s checks (a download page that is not the one
        asked for, a number no store can hold, a channel missing), or one larger than ``max_reply`` (refused by
        the transport before it is parsed). Such faults are usually transient on a real link, so a read is re-sent
        ``garbled_retries`` times.
        """
        request = build_request(command, body)
        attempts = 1 + (self.garbled_retries if idempotent else 0)
        for attempt in range(attempts):
            try:
                frame = self.transport.exchange_limited(request, max_reply=max_reply, idempotent=idempotent)
                return parse(frame, command)
            except (NewareProtocolError, FrameTooLarge) as exc:
                self.transport.resync()
                if attempt + 1 >= attempts:
                    raise self._final(exc, attempts if idempotent else 0) from None
                log.warning("%s: refused reply to %s, retrying (%s)", self.transport.address, command, exc)
        raise AssertionError("unreachable")

    def _final(self, exc: NewareProtocolError | FrameTooLarge, attempts: int) -> NewareProtocolError | FrameTooLarge:
        """The error to raise once retries are spent: one line naming the address (the transport's errors do)."""
        after = f" (after {attempts} attempts)" if attempts else ""
        if isinstance(exc, FrameTooLarge):
            return FrameTooLarge(f"{exc}{after}")
        return NewareProtocolError(f"{self.transport.address}: {exc}{after}")

    # -- session and inventory ------------------------------------------------------------------------------

    def connect(self, username: str = "admin", password: str = "neware") -> bool:
        body = element("username", None, username) + element("password", None, password) + element("type", None, "bfgs")
        return self._query("connect", body, replies.parse_connect, max_reply=ENVELOPE_BYTES)

    def getdevinfo(self) -> replies.DeviceInfo:
        return self._query("getdevinfo", "", replies.parse_devinfo, max_reply=DEVINFO_MAX_BYTES)

    # -- channel-list reads ---------------------------------------------------------------------------------

    def getchlstatus(self, channels: Sequence[ChannelAddress]) -> list[replies.ChannelWorkStatus]:
        items = [element("status", c.attributes(), "true") for c in channels]
        read = functools.partial(replies.parse_chlstatus, requested=channels)
        return self._query("getchlstatus", channel_list(items), read, max_reply=channel_list_reply_cap(len(items)))

    def inquire(self, channels: Sequence[ChannelAddress], *, barcode: bool = True) -> list[replies.InquireReply]:
        items = [element("inquire", {**c.attributes(), "aux": 0, "barcode": int(barcode)}, "true") for c in channels]
        read = functools.partial(replies.parse_inquire, requested=channels)
        return self._query("inquire", channel_list(items), read, max_reply=channel_list_reply_cap(len(items)))

    def inquiredf(self, channels: Sequence[ChannelAddress], testid: int = 0) -> list[replies.InquireDf]:
        return self.inquiredf_tests([(c, testid) for c in channels])

    def inquiredf_tests(self, tests: Sequence[tuple[ChannelAddress, int]]) -> list[replies.InquireDf]:
        """Upload progress of (channel, testid) pairs in one request (testid 0: the current or latest test)."""
        items = [element("chl", {**c.attributes(with_ip=False), "testid": testid}) for c, testid in tests]
        read = functools.partial(replies.parse_inquiredf, requested=[c for c, _ in tests])
        return self._query("inquiredf", channel_list(items), read, max_reply=channel_list_reply_cap(len(items)))

    # -- single-channel data --------------------------------------------------------------------------------

    def download(self, channel: ChannelAddress, *, testid: int = 0, startpos: int, count: int) -> replies.DownloadPage:
        """Records ``startpos``, ``startpos + 1``, ... (seqids are 1-based), at most ``count`` (<= 1000).

        The page is checked against the request inside the parse, so that a wrong page is retried like a garbled
        one: it must start at ``startpos``, run on without gaps and hold at most ``count`` records, and its
        numbers must be representable (see :mod:`drivers.neware.pages`).
        """
        if not 0 <= count <= MAX_DOWNLOAD_COUNT:
            raise ValueError(f"download count must be 0..{MAX_DOWNLOAD_COUNT}, found {count}")
        if not 0 <= startpos <= INT64_MAX - MAX_DOWNLOAD_COUNT:
            raise ValueError(f"download startpos must be 0..{INT64_MAX - MAX_DOWNLOAD_COUNT}, found {startpos}")
        attrs = {
            **channel.attributes(with_ip=False),
            "auxid": 0,
            "testid": testid,
            "startpos": startpos,
            "count": count,
        }
        parse = functools.partial(parse_download_frame, request=PageRequest(channel.channel_id, startpos, count))
        return self._exchange("download", element("download", attrs), parse, max_reply=download_reply_cap(count))

    def testid(self, channel: ChannelAddress) -> int:
        """The current or latest test id, by a zero-length download (as aurora's get-job-id does)."""
        return self.download(channel, testid=0, startpos=0, count=0).testid

    def download_step_layer(self, channel: ChannelAddress, testid: int = 0) -> replies.StepLayer:
        attrs = {**channel.attributes(with_ip=False), "testid": testid}
        body = element("downloadStepLayer", attrs)
        return self._query("downloadStepLayer", body, replies.parse_step_layer, max_reply=STEP_LAYER_MAX_BYTES)

    def download_log(self, channel: ChannelAddress, testid: int = 0) -> replies.TestLog:
        attrs = {**channel.attributes(with_ip=False), "testid": testid, "log_lever": 0}  # sic: log_lever
        return self._query("downloadlog", element("download", attrs), replies.parse_log, max_reply=LOG_MAX_BYTES)

    # -- writes ---------------------------------------------------------------------------------------------

    def _acks(self, command: str, channels: Sequence[ChannelAddress], text: str = "true") -> list[replies.ChannelAck]:
        items = [element(command, c.attributes(), text) for c in channels]
        read = functools.partial(replies.parse_acks, requested=channels, tag=command)
        cap = channel_list_reply_cap(len(items))
        return self._query(command, channel_list(items), read, max_reply=cap, idempotent=False)

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
        read = functools.partial(replies.parse_acks, requested=[i.address for i in items], tag="start")
        return self._query("start", body, read, max_reply=channel_list_reply_cap(len(items)), idempotent=False)

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
        body = element("setpause", attrs)
        read = functools.partial(replies.parse_acks, requested=[channel], tag="setpause")
        return self._query("setpause", body, read, max_reply=channel_list_reply_cap(1), idempotent=False)[0]
