"""Typed BTS replies, parsed from the ``<bts>`` element (neware-bts-api.md section 2).

Values keep the API's units (V, A, Ah, Wh, s, and ms where the API uses ms) and names close to the wire so that
a reader can hold this module next to the reference. Conversion into the station's ``Record`` happens in
:mod:`drivers.neware.channel`, the only place that knows the step program.

Data pages are parsed into ``NamedTuple`` rows rather than pydantic models: a 1000-record page is parsed
hundreds of times in a long dry run, and validation per record would dominate the budget.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar
from xml.etree.ElementTree import Element

import numpy as np

from drivers.neware.address import ChannelAddress
from drivers.neware.codec import INT64_MAX, INT64_MIN, as_float, as_int, optional, parse_int
from drivers.neware.errors import NewareProtocolError

#: workstatus words of getchlstatus / inquire (neware-bts-api.md 2.15)
WORKSTATUS = ("working", "stop", "finish", "protect", "pause")


@dataclass(frozen=True, slots=True)
class DeviceChannel:
    address: ChannelAddress
    available: bool  # the element text true/false; its exact meaning is undocumented


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    server_ip: str | None
    server_port: int | None
    channels: tuple[DeviceChannel, ...]


@dataclass(frozen=True, slots=True)
class ChannelAck:
    address: ChannelAddress
    ok: bool


@dataclass(frozen=True, slots=True)
class ChannelWorkStatus:
    address: ChannelAddress
    workstatus: str
    reserve_pause: bool


@dataclass(frozen=True, slots=True)
class InquireReply:
    address: ChannelAddress
    workstatus: str
    cycle_id: int | None
    step_id: int | None
    step_type: str | None
    barcode: str | None
    voltage: float
    current: float
    capacity: float
    energy: float
    total_time: float
    relative_time: float
    log_code: int | None


@dataclass(frozen=True, slots=True)
class InquireDf:
    address: ChannelAddress
    testid: int
    count: int
    complete: bool


class DataRecord(NamedTuple):
    """One ``download`` row: ``testtime_ms`` is the time since the *step* started; ``cap``/``eng`` unsigned."""

    seqid: int
    stepid: int
    cycleid: int
    steptype: str
    testtime_ms: float
    atime: str
    volt: float
    curr: float
    cap: float
    eng: float


@dataclass(frozen=True, slots=True)
class DownloadPage:
    """A ``download`` page as columns, one entry per record in seqid order, in the API's units (the fields of
    :class:`DataRecord`, then ``aux_temperature``). The station's hot path reads the columns; :attr:`records`
    builds the typed rows for callers that want them one by one.

    ``aux_temperature`` is the row's optional ``T1`` attribute, the channel's auxiliary thermocouple in degC
    (neware-bts-api.md 2.7): a BTS sends it only for a channel with a thermocouple mapped to it, so it is NaN for
    rows without it. It is a column only, not a :class:`DataRecord` field: the rows keep the ten attributes every
    BTS sends.
    """

    testid: int
    startpos: int
    seqid: np.ndarray  # int64, like stepid and cycleid
    stepid: np.ndarray
    cycleid: np.ndarray
    steptype: np.ndarray  # text: str (U) or ASCII bytes (S)
    testtime_ms: np.ndarray  # float64, like volt, curr, cap and eng
    atime: np.ndarray  # text, as steptype
    volt: np.ndarray
    curr: np.ndarray
    cap: np.ndarray
    eng: np.ndarray
    aux_temperature: np.ndarray  # float64 degC, NaN where the row has no T1

    @classmethod
    def empty(cls, testid: int, startpos: int) -> DownloadPage:
        ints, floats, texts = np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, "U1")
        return cls(testid, startpos, ints, ints, ints, texts, floats, texts, floats, floats, floats, floats, floats)

    def __len__(self) -> int:
        return len(self.seqid)

    @property
    def records(self) -> list[DataRecord]:
        if not len(self.seqid):
            return []
        return [DataRecord(*row) for row in zip(
            self.seqid.tolist(), self.stepid.tolist(), self.cycleid.tolist(), _text(self.steptype),
            self.testtime_ms.tolist(), _text(self.atime), self.volt.tolist(), self.curr.tolist(),
            self.cap.tolist(), self.eng.tolist(), strict=True)]


def _text(column: np.ndarray) -> list[str]:
    return column.astype(str).tolist() if column.dtype.kind == "S" else column.tolist()


class StepLayerRow(NamedTuple):
    startseqid: int
    endseqid: int
    stepindex: int
    stepid: int
    cycleid: int
    steptype: str
    steptime_ms: float
    endatime: str
    startvolt: float
    endvolt: float
    startcurr: float
    endcurr: float
    cap: float
    eng: float
    dcir: float


@dataclass(frozen=True, slots=True)
class StepLayer:
    testid: int
    rows: list[StepLayerRow]


class LogEntry(NamedTuple):
    seqid: int
    log_code: int
    atime: str


@dataclass(frozen=True, slots=True)
class TestLog:
    testid: int
    entries: list[LogEntry]


# ----------------------------------------------------------------------------------------------------------------


#: channel address numbers are small (devid up to a few hundred, chlid up to 8 or so); anything beyond 32 bits is
#: a garbled reply
_ADDRESS_MAX = 2**31 - 1


def _address_number(text: str) -> int:
    return parse_int(text, "a channel address number", 0, _ADDRESS_MAX)


def _address(attrs: Mapping[str, str], channel_key: str = "chlid") -> ChannelAddress:
    try:  # the same five short values every poll: read once (an address is immutable), checked as below
        values = (attrs["devid"], attrs["subdevid"], attrs[channel_key], attrs.get("devtype", "27"),
                  attrs.get("ip", "127.0.0.1"))
        if sum(map(len, values)) <= _CACHED_TEXT:
            return _address_of(*values)
    except (KeyError, NewareProtocolError):
        pass  # read again one value after the other below, so that the error names the first fault
    try:
        return ChannelAddress(
            devid=_address_number(attrs["devid"]),
            subdevid=_address_number(attrs["subdevid"]),
            chlid=_address_number(attrs[channel_key]),
            devtype=_address_number(attrs.get("devtype", "27")),
            ip=attrs.get("ip", "127.0.0.1"),
        )
    except (KeyError, NewareProtocolError) as exc:
        raise NewareProtocolError(f"a reply element lacks a valid channel address ({exc}): {attrs}") from None


#: the longest address text (all five values together) whose parse is kept: a poll brings the same few thousand short
#: texts every second, and the caches (at most 8192 entries each) must not hold on to a hostile peer's long ones
_CACHED_TEXT = 128


@functools.lru_cache(maxsize=8192)
def _address_of(devid: str, subdevid: str, chlid: str, devtype: str, ip: str) -> ChannelAddress:
    return ChannelAddress(devid=_address_number(devid), subdevid=_address_number(subdevid),
                          chlid=_address_number(chlid), devtype=_address_number(devtype), ip=ip)


def _dev_address(dev: str | None) -> ChannelAddress | None:
    """``dev="27-21-1-2-0"`` (devtype-devid-subdevid-chlid-auxid) of inquire replies."""
    if dev is not None and len(dev) <= _CACHED_TEXT:
        return _cached_dev_address(dev)
    return _parse_dev_address(dev)


def _parse_dev_address(dev: str | None) -> ChannelAddress | None:
    try:
        devtype, devid, subdevid, chlid = (_address_number(x) for x in (dev or "").split("-")[:4])
    except (ValueError, NewareProtocolError):  # ValueError: fewer than four parts
        return None
    return ChannelAddress(devid=devid, subdevid=subdevid, chlid=chlid, devtype=devtype)


#: a pure function of a short text, and every poll brings the same texts
_cached_dev_address = functools.lru_cache(maxsize=8192)(_parse_dev_address)


def _key(address: ChannelAddress) -> tuple[int, int, int]:
    return (address.devid, address.subdevid, address.chlid)


T = TypeVar("T")


def match_to_requests(
    requested: Sequence[ChannelAddress], replies: Sequence[T], address_of: Callable[[T], ChannelAddress | None]
) -> list[T]:
    """Pair reply elements with the request's channels.

    1. by full address; 2. by devid and chlid alone, in order (getchlstatus reports subdevid 1 for other units);
    3. by position when the reply has exactly the requested length (aurora-neware's rule). Unrequested extra
    channels (seen in the field) are left over and dropped. A channel with no reply is a protocol error.
    """
    addresses = [address_of(reply) for reply in replies]
    if len(addresses) == len(requested) and all(
        found is not None and found.devid == address.devid and found.subdevid == address.subdevid
        and found.chlid == address.chlid for found, address in zip(addresses, requested, strict=True)
    ):  # every element in its request's place, the usual reply: what rule 1 pairs, at no cost per channel
        return list(replies)
    taken = [False] * len(replies)
    chosen: list[int | None] = [None] * len(requested)
    rules: tuple[Callable[[ChannelAddress], tuple[int, ...]], ...] = (_key, lambda a: (a.devid, a.chlid))
    for rule in rules:  # linear in the list length: a 512-channel poll must stay cheap
        index: dict[tuple[int, ...], deque[int]] = defaultdict(deque)
        for j, found in enumerate(addresses):
            if found is not None and not taken[j]:
                index[rule(found)].append(j)
        for i, address in enumerate(requested):
            if chosen[i] is not None:
                continue
            queue = index.get(rule(address))
            while queue:
                j = queue.popleft()
                if not taken[j]:
                    chosen[i], taken[j] = j, True
                    break
    if len(replies) == len(requested):
        for i in range(len(requested)):
            if chosen[i] is None and not taken[i]:
                chosen[i], taken[i] = i, True
    out: list[T] = []
    for i, address in enumerate(requested):
        j = chosen[i]
        if j is None:
            raise NewareProtocolError(f"the reply has no element for channel {address}")
        out.append(replies[j])
    return out


def _list_elements(root: Element, tag: str | None = None) -> list[Element]:
    container = root.find("list")
    if container is None:
        return []
    return [e for e in container if tag is None or e.tag == tag]


def parse_connect(root: Element) -> bool:
    return (root.findtext("result") or "").strip().lower() == "ok"


def parse_devinfo(root: Element) -> DeviceInfo:
    server = root.find("serverip/server")
    middle = root.find("middle")
    channels = []
    for item in middle if middle is not None else []:
        if item.tag != "channel":
            continue
        attrs = dict(item.attrib)
        key = "Channelid" if "Channelid" in attrs else "chlid"  # getdevinfo really spells it Channelid
        channels.append(DeviceChannel(_address(attrs, key), (item.text or "").strip().lower() == "true"))
    return DeviceInfo(
        server_ip=None if server is None else server.get("ip"),
        server_port=None if server is None else as_int(server.get("port")),
        channels=tuple(channels),
    )


def parse_acks(root: Element, requested: Sequence[ChannelAddress], tag: str) -> list[ChannelAck]:
    elements = _list_elements(root, tag) or _list_elements(root) or root.findall(tag)
    acks = [ChannelAck(_address(dict(e.attrib)), (e.text or "").strip().lower() == "ok") for e in elements]
    return match_to_requests(requested, acks, lambda a: a.address)


def parse_chlstatus(root: Element, requested: Sequence[ChannelAddress]) -> list[ChannelWorkStatus]:
    rows = [
        ChannelWorkStatus(_address(dict(e.attrib)), (e.text or "").strip(), e.get("reservepause", "0") == "1")
        for e in _list_elements(root, "status")
    ]
    return [
        ChannelWorkStatus(address, row.workstatus, row.reserve_pause)
        for address, row in zip(requested, match_to_requests(requested, rows, lambda r: r.address), strict=True)
    ]


def parse_inquire(root: Element, requested: Sequence[ChannelAddress]) -> list[InquireReply]:
    return inquire_rows([e.attrib for e in _list_elements(root, "inquire")], requested)


def inquire_rows(rows: Sequence[Mapping[str, str]], requested: Sequence[ChannelAddress]) -> list[InquireReply]:
    """The ``<inquire>`` elements of a reply (their attributes, from the tree or from :mod:`.lists`), matched to
    the request and typed."""
    matched = match_to_requests(requested, rows, lambda a: _dev_address(a.get("dev")))
    out = []
    for address, a in zip(requested, matched, strict=True):
        out.append(
            InquireReply(
                address=address,
                workstatus=a.get("workstatus", ""),
                cycle_id=_optional_int(a.get("cycle_id")),
                step_id=_optional_int(a.get("step_id")),
                step_type=optional(a.get("step_type")),
                barcode=optional(a.get("barcode")),
                voltage=_number_or_zero(a.get("voltage")),
                current=_number_or_zero(a.get("current")),
                capacity=_number_or_zero(a.get("capacity")),
                energy=_number_or_zero(a.get("energy")),
                total_time=_number_or_zero(a.get("totaltime")),
                relative_time=_number_or_zero(a.get("relativetime")),
                log_code=_optional_int(a.get("log_code")),
            )
        )
    return out


def _number_or_zero(value: str | None) -> float:
    """``as_float(value, 0.0) or 0.0``, with one ``float()`` for a plain number (a poll reads six per channel):
    ``float`` refuses every text ``optional`` turns into None (absent, ``--``, empty), so those and anything else
    that is not a number go the long way, to the same value or the same error."""
    try:
        return float(value) or 0.0  # type: ignore[arg-type]  # None: TypeError, the long way
    except (TypeError, ValueError):
        return as_float(value, 0.0) or 0.0


def _optional_int(value: str | None) -> int | None:
    """``as_int(value)``, with one ``int()`` for a plain integer in range; anything else goes the long way."""
    try:
        number = int(value)  # type: ignore[arg-type]  # None: TypeError, the long way
    except (TypeError, ValueError):
        return as_int(value)
    return number if INT64_MIN <= number <= INT64_MAX else as_int(value)


def parse_inquiredf(root: Element, requested: Sequence[ChannelAddress]) -> list[InquireDf]:
    elements = _list_elements(root, "chl")
    return inquiredf_rows([e.attrib for e in elements], [e.text for e in elements], requested)


def inquiredf_rows(rows: Sequence[Mapping[str, str]], texts: Sequence[str | None],
                   requested: Sequence[ChannelAddress]) -> list[InquireDf]:
    """The ``<chl>`` elements of a reply (attributes and text, from the tree or from :mod:`.lists`), typed, then
    matched to the request."""
    typed = [
        InquireDf(
            _address(a),
            as_int(a.get("testid"), 0) or 0,
            as_int(a.get("count"), 0) or 0,
            (text or "").strip().lower() == "true",
        )
        for a, text in zip(rows, texts, strict=True)
    ]
    return match_to_requests(requested, typed, lambda r: r.address)


def _echo_testid(root: Element, tag: str) -> int:
    echo = root.find(tag)
    return 0 if echo is None else as_int(echo.get("testid"), 0) or 0


def _count(attrs: dict[str, str], name: str, what: str) -> int:
    """A record number or counter of a data row: a non-negative 64-bit integer, else NewareProtocolError."""
    return parse_int(attrs[name], f"{what} {name}", 0, INT64_MAX)


def _finite(attrs: dict[str, str], name: str, what: str) -> float:
    """A time of a data row: a finite float (a NaN time would corrupt every test time rebuilt from it)."""
    value = float(attrs[name])
    if not math.isfinite(value):
        raise NewareProtocolError(f"expected a finite {what} {name}, found {attrs[name]!r}")
    return value


def parse_step_layer(root: Element) -> StepLayer:
    rows = []
    try:
        for e in _list_elements(root, "data"):
            a = e.attrib
            rows.append(
                StepLayerRow(
                    _count(a, "startseqid", "step-layer"),
                    _count(a, "endseqid", "step-layer"),
                    _count(a, "stepindex", "step-layer"),
                    _count(a, "stepid", "step-layer"),
                    _count(a, "cycleid", "step-layer"),
                    a.get("steptype", ""),
                    _finite(a, "steptime", "step-layer"),
                    a.get("endatime", ""),
                    float(a.get("startvolt", 0)),
                    float(a.get("endvolt", 0)),
                    float(a.get("startcurr", 0)),
                    float(a.get("endcurr", 0)),
                    float(a.get("cap", 0)),
                    float(a.get("eng", 0)),
                    float(a.get("dcir", 0)),
                )
            )
    except (KeyError, ValueError) as exc:
        raise NewareProtocolError(f"a step-layer row is incomplete or not numeric ({exc})") from None
    return StepLayer(testid=_echo_testid(root, "downloadStepLayer"), rows=rows)


def parse_log(root: Element) -> TestLog:
    entries = []
    try:
        for e in _list_elements(root, "data"):
            a = e.attrib
            entries.append(LogEntry(_count(a, "seqid", "log"), _count(a, "log_code", "log"), a.get("atime", "")))
    except (KeyError, ValueError) as exc:
        raise NewareProtocolError(f"a log row is incomplete or not numeric ({exc})") from None
    return TestLog(testid=_echo_testid(root, "download"), entries=entries)
