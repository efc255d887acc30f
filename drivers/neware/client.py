"""The BTS Client API as typed methods (neware-bts-api.md section 2), generated from the command table.

Each command is declared once in :mod:`drivers.neware.commands` (element, attributes, reply parser, whether it may
be repeated, reply size cap); :class:`BtsClient` binds those declarations as methods and owns the one exchange
loop they share. Reads are repeated after a garbled, oversized or implausible reply (the transport is
resynchronised first); writes (start, stop, continue, ...) are never repeated automatically, because acting twice
on a channel is worse than reporting one failure.

Every request carries a cap on its reply's size, computed from what the protocol can send for it (a download
page holds at most ``count`` records, a channel list one element per channel asked for), and enforced by the
transport while the reply arrives: a runaway or hostile reply costs a few MB at most and is never parsed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from drivers.neware import commands, replies
from drivers.neware.address import ChannelAddress
from drivers.neware.codec import element
from drivers.neware.commands import (
    MAX_DOWNLOAD_COUNT,
    BtsCommand,
    Item,
    Request,
    channel_list_reply_cap,
    download_reply_cap,
)
from drivers.neware.errors import NewareProtocolError
from drivers.transport import FrameTooLarge, Transport

__all__ = [
    "BACKUP_FILE_NAMES",
    "BACKUP_FILE_TYPES",
    "MAX_DOWNLOAD_COUNT",
    "BackupSettings",
    "BtsClient",
    "StartItem",
    "channel_list_reply_cap",
    "download_reply_cap",
]

log = logging.getLogger(__name__)

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
    """The commands of :mod:`drivers.neware.commands` over one :class:`~drivers.transport.Transport`."""

    def __init__(self, transport: Transport, *, garbled_retries: int = 2):
        self.transport = transport
        self.garbled_retries = garbled_retries

    def call(self, request: Request[T]) -> T:
        """Send one request and parse its reply; a read is repeated after a reply that is refused.

        A refused reply is garbled XML, one that fails the parser's checks (a download page that is not the one
        asked for, a number no store can hold, a channel missing), or one larger than the request's cap (refused
        by the transport before it is parsed). Such faults are usually transient on a real link, so a command
        the table marks idempotent is re-sent ``garbled_retries`` times.
        """
        command = request.command
        data = request.encode()
        attempts = 1 + (self.garbled_retries if command.idempotent else 0)
        for attempt in range(attempts):
            try:
                frame = self.transport.exchange_limited(data, max_reply=request.max_reply,
                                                        idempotent=command.idempotent)
                return request.parse(frame)
            except (NewareProtocolError, FrameTooLarge) as exc:
                self.transport.resync()
                if attempt + 1 >= attempts:
                    raise self._final(exc, attempts if command.idempotent else 0) from None
                log.warning("%s: refused reply to %s, retrying (%s)", self.transport.address, command.name, exc)
        raise AssertionError("unreachable")

    def _final(self, exc: NewareProtocolError | FrameTooLarge, attempts: int) -> NewareProtocolError | FrameTooLarge:
        """The error to raise once retries are spent: one line naming the address (the transport's errors do)."""
        after = f" (after {attempts} attempts)" if attempts else ""
        if isinstance(exc, FrameTooLarge):
            return FrameTooLarge(f"{exc}{after}")
        return NewareProtocolError(f"{self.transport.address}: {exc}{after}")

    def _send(self, command: BtsCommand[T], items: Sequence[Item], trailing: Sequence[str] = ()) -> T:
        return self.call(command.request(items, trailing=trailing))

    # -- session and inventory ------------------------------------------------------------------------------
    connect = commands.CONNECT.bind()
    getdevinfo = commands.GETDEVINFO.bind()

    # -- channel-list reads ---------------------------------------------------------------------------------
    getchlstatus = commands.GETCHLSTATUS.bind()
    inquire = commands.INQUIRE.bind()
    inquiredf = commands.INQUIREDF.bind()

    def inquiredf_tests(self, tests: Sequence[tuple[ChannelAddress, int]]) -> list[replies.InquireDf]:
        """Upload progress of (channel, testid) pairs in one request (testid 0: the current or latest test)."""
        return self._send(commands.INQUIREDF, [commands.INQUIREDF.item(c, testid=testid) for c, testid in tests])

    # -- single-channel data --------------------------------------------------------------------------------
    download = commands.DOWNLOAD.bind()
    download_step_layer = commands.DOWNLOAD_STEP_LAYER.bind()
    download_log = commands.DOWNLOAD_LOG.bind()

    def testid(self, channel: ChannelAddress) -> int:
        """The current or latest test id, by a zero-length download (as aurora's get-job-id does)."""
        return self.download(channel, testid=0, startpos=0, count=0).testid

    # -- writes ---------------------------------------------------------------------------------------------
    def start(self, items: Sequence[StartItem], backup: BackupSettings | None = None) -> list[replies.ChannelAck]:
        """Start every item in one batch (the channels then share one testid)."""
        start = commands.START
        elements = [start.item(i.address, barcode=i.barcode, remark=i.remark, path=i.step_file_path) for i in items]
        return self._send(start, elements, () if backup is None else (backup.xml(),))

    stop = commands.STOP.bind()
    continue_ = commands.CONTINUE.bind()
    clearflag = commands.CLEARFLAG.bind()
    light = commands.LIGHT.bind()
    setpause = commands.SETPAUSE.bind()
