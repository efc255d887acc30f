"""The BTS API commands the driver sends, each described once, as data (neware-bts-api.md section 2).

A :class:`BtsCommand` says everything the client needs to know about one command, in the style of pymeasure's
declarative controls (``voltage = Instrument.control("VOLT?", "VOLT %g", ...)``): the ``<cmd>`` name, how the
request body carries its items (:class:`Layout`), the element and attributes of each item in wire order and which
method argument each comes from (:class:`Field`), the reply parser, whether the command may be repeated without
asking (reads are; writes that act on a channel are not, because acting twice is worse than one reported failure),
and how large its reply may be. :meth:`BtsCommand.bind` turns a declaration into a client method with a real
signature, so :class:`~drivers.neware.client.BtsClient` is a list of declarations plus one exchange loop.

This table is the driver's reading of the reference and shares nothing with the simulated server's
(``simulators/neware/commands.py``), which was written independently from the same reference: the two meet only
at the wire, and each side's tests hold its own table to the reference's captures.

Reply caps (bytes) are each a generous multiple of the largest reply the protocol allows for the request, so that
a real BTS never meets one, yet a runaway or hostile reply is cut off by the transport after a few MB instead of
hundreds, and never parsed.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar
from xml.etree.ElementTree import Element

from drivers.neware import replies
from drivers.neware.address import ChannelAddress
from drivers.neware.codec import (
    INT64_MAX,
    attribute_text,
    build_request,
    channel_list,
    element,
    parse_reply,
)
from drivers.neware.lists import read_list
from drivers.neware.pages import PageRequest, parse_download_frame

T = TypeVar("T")

#: the protocol's page limit for ``download`` (neware-bts-api.md 2.7)
MAX_DOWNLOAD_COUNT = 1000

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


class Layout(Enum):
    """How a request body carries its items."""

    NONE = "none"  # <cmd> alone
    FIELDS = "fields"  # child elements of <bts>, one per field (connect: username, password, type)
    LIST = "list"  # <list count="N"> holding one element per channel
    SINGLE = "single"  # one element straight in <bts>, for one channel


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: a :class:`Field` default meaning "the caller must give it"
REQUIRED: Any = _Required()


@dataclass(frozen=True, slots=True)
class Field:
    """One attribute of an item (``wire``), its text (``wire=None``), or one element of a FIELDS body.

    A field without ``arg`` has the fixed value ``default``. A field with ``arg`` takes the method argument of that
    name (``default`` when omitted; :data:`REQUIRED`: it must be given), through ``encode``; ``omit_none`` leaves
    the attribute out when the argument is ``None``.
    """

    wire: str | None
    default: Any = REQUIRED
    arg: str | None = None
    keyword_only: bool = False
    encode: Callable[[Any], object] | None = None
    omit_none: bool = False

    def value(self, arguments: Mapping[str, Any]) -> Any:
        value = self.default if self.arg is None else arguments.get(self.arg, self.default)
        if value is REQUIRED:
            raise TypeError(f"missing argument {self.arg!r}")
        if value is None and self.omit_none:
            return None
        return self.encode(value) if self.encode is not None else value


def fixed(wire: str | None, value: object) -> Field:
    """An attribute (or the text, ``wire=None``) that always has ``value``."""
    return Field(wire, value)


def arg(
    wire: str | None, default: Any = REQUIRED, *, name: str | None = None, keyword_only: bool = False,
    encode: Callable[[Any], object] | None = None, omit_none: bool = False,
) -> Field:  # fmt: skip
    """An attribute (or the text) from the method argument ``name`` (by default the attribute's own name)."""
    return Field(wire, default, name or wire, keyword_only, encode, omit_none)


@dataclass(frozen=True, slots=True)
class Item:
    """One element of a request: a channel's address (``None`` for FIELDS bodies), attributes in wire order, text."""

    address: ChannelAddress | None
    attributes: dict[str, object]
    text: str | None


@dataclass(frozen=True, slots=True)
class Request(Generic[T]):
    """One request of a command: its items, the call's arguments, and elements that follow the items."""

    command: BtsCommand[T]
    items: tuple[Item, ...]
    arguments: Mapping[str, Any] = field(default_factory=dict)
    trailing: tuple[str, ...] = ()

    @property
    def channels(self) -> list[ChannelAddress]:
        return [item.address for item in self.items if item.address is not None]

    def body(self) -> str:
        command = self.command
        if command.layout is Layout.NONE:
            return ""
        if command.layout is Layout.FIELDS:
            (item,) = self.items
            return "".join(element(name, None, str(value)) for name, value in item.attributes.items())
        assert command.element is not None
        tag, with_ip = command.element, command.with_ip
        elements = []
        for item in self.items:
            if item.address is None:
                continue
            if _ADDRESS_NAMES.isdisjoint(item.attributes):  # the address's attributes first, then the item's
                elements.append(element(tag, item.attributes, item.text,
                                        written=_address_attributes(item.address, with_ip)))
            else:  # an item that overrides part of its address: the merged dict, in its order
                elements.append(element(tag, {**item.address.attributes(with_ip=with_ip), **item.attributes},
                                        item.text))
        if command.layout is Layout.SINGLE:
            return "".join(elements)
        # count is the number of channels, not of elements: start's <backup> follows its items
        return channel_list([*elements, *self.trailing], count=len(elements))

    def encode(self) -> bytes:
        return build_request(self.command.name, self.body())

    @property
    def max_reply(self) -> int:
        return self.command.reply_cap(self)

    def parse(self, frame: bytes) -> T:
        return self.command.reply(frame, self)


#: the attributes :meth:`ChannelAddress.attributes` writes
_ADDRESS_NAMES = frozenset(ChannelAddress(0, 0, 0).attributes(with_ip=True))


@functools.lru_cache(maxsize=16384)
def _address_attributes(address: ChannelAddress, with_ip: bool) -> str:
    """A channel's addressing attributes as they go on the wire (`` ip="..." devtype="27" ...``), written once per
    channel: every poll sends them for every channel, and an address never changes (a frozen dataclass)."""
    return attribute_text(address.attributes(with_ip=with_ip))


def tree(read: Callable[[Element, Request[Any]], T]) -> Callable[[bytes, Request[Any]], T]:
    """A reply parser that reads the parsed ``<bts>`` element (defusedxml; ``<cmd>`` is never validated)."""

    def parse(frame: bytes, request: Request[Any]) -> T:
        return read(parse_reply(frame, request.command.name), request)

    return parse


@dataclass(frozen=True, slots=True)
class BtsCommand(Generic[T]):
    """One BTS API command (module notes). ``method`` is the client method's name, ``doc`` its docstring."""

    name: str
    method: str
    layout: Layout
    reply: Callable[[bytes, Request[T]], T]
    reply_cap: Callable[[Request[T]], int]
    idempotent: bool
    element: str | None = None
    with_ip: bool = True
    fields: tuple[Field, ...] = ()
    text: Field | None = None
    check: Callable[[Mapping[str, Any]], None] | None = None
    doc: str = ""
    returns: str = ""
    """The generated method's return annotation (documentation only)."""

    def item(self, address: ChannelAddress | None, **arguments: Any) -> Item:
        """The item for ``address`` from method arguments (attributes in the declared wire order)."""
        attributes: dict[str, object] = {}
        for f in self.fields:
            value = f.value(arguments)
            if value is not None:
                assert f.wire is not None
                attributes[f.wire] = value
        text = None if self.text is None else self.text.value(arguments)
        return Item(address, attributes, None if text is None else str(text))

    def request(self, items: Sequence[Item], arguments: Mapping[str, Any] | None = None,
                trailing: Sequence[str] = ()) -> Request[T]:  # fmt: skip
        return Request(self, tuple(items), dict(arguments or {}), tuple(trailing))

    def signature(self) -> inspect.Signature:
        """The generated method's signature: the channel(s), then the arguments in wire order."""
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        params = [inspect.Parameter("self", kind)]
        if self.layout is Layout.LIST:
            params.append(inspect.Parameter("channels", kind, annotation="Sequence[ChannelAddress]"))
        elif self.layout is Layout.SINGLE:
            params.append(inspect.Parameter("channel", kind, annotation="ChannelAddress"))
        for f in (*self.fields, *((self.text,) if self.text is not None else ())):
            if f.arg is not None:
                default = inspect.Parameter.empty if f.default is REQUIRED else f.default
                params.append(inspect.Parameter(f.arg, inspect.Parameter.KEYWORD_ONLY if f.keyword_only else kind,
                                                default=default))
        return inspect.Signature(params, return_annotation=self.returns or inspect.Signature.empty)

    def bind(self) -> Callable[..., T]:
        """The client method this declaration describes, named ``self.method`` (``client.call`` does the
        exchange)."""
        signature = self.signature()
        command = self

        def method(client: Any, *args: Any, **kwargs: Any) -> T:
            bound = signature.bind(client, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            del arguments["self"]
            if command.check is not None:
                command.check(arguments)
            if command.layout is Layout.LIST:
                items = [command.item(c, **arguments) for c in arguments.pop("channels")]
            elif command.layout is Layout.SINGLE:
                items = [command.item(arguments.pop("channel"), **arguments)]
            elif command.layout is Layout.FIELDS:
                items = [command.item(None, **arguments)]
            else:
                items = []
            return client.call(command.request(items, arguments))

        method.__name__ = method.__qualname__ = self.method
        method.__doc__ = self.doc or f"The ``{self.name}`` command (neware-bts-api.md section 2)."
        method.__signature__ = signature  # type: ignore[attr-defined]
        return method


# -- the reply parsers, as the table uses them ---------------------------------------------------------------------


def _acks(root: Element, request: Request[Any]) -> list[replies.ChannelAck]:
    assert request.command.element is not None
    return replies.parse_acks(root, request.channels, request.command.element)


def _download_page(frame: bytes, request: Request[Any]) -> replies.DownloadPage:
    """The page is checked against the request inside the parse, so that a wrong page is retried like a garbled
    one (:mod:`drivers.neware.pages`)."""
    (channel,) = request.channels
    page = PageRequest(channel.channel_id, request.arguments["startpos"], request.arguments["count"])
    return parse_download_frame(frame, request.command.name, page)


def _inquire(frame: bytes, request: Request[Any]) -> list[replies.InquireReply]:
    """Read without a tree (:mod:`drivers.neware.lists`: the poll's hot path), exactly as the tree would be."""
    rows, _ = read_list(frame, request.command.name, "inquire")
    return replies.inquire_rows(rows, request.channels)


def _inquiredf(frame: bytes, request: Request[Any]) -> list[replies.InquireDf]:
    """Read without a tree (:mod:`drivers.neware.lists`: the poll's hot path), exactly as the tree would be."""
    rows, texts = read_list(frame, request.command.name, "chl", with_text=True)
    return replies.inquiredf_rows(rows, texts, request.channels)


def _check_page(arguments: Mapping[str, Any]) -> None:
    count, startpos = arguments["count"], arguments["startpos"]
    if not 0 <= count <= MAX_DOWNLOAD_COUNT:
        raise ValueError(f"download count must be 0..{MAX_DOWNLOAD_COUNT}, found {count}")
    if not 0 <= startpos <= INT64_MAX - MAX_DOWNLOAD_COUNT:
        raise ValueError(f"download startpos must be 0..{INT64_MAX - MAX_DOWNLOAD_COUNT}, found {startpos}")


def _per_channel(request: Request[Any]) -> int:
    return channel_list_reply_cap(len(request.items))


def _envelope(request: Request[Any]) -> int:
    return ENVELOPE_BYTES


_TRUE = fixed(None, "true")


def _ack_command(name: str, method: str, doc: str, text: Field = _TRUE) -> BtsCommand[list[replies.ChannelAck]]:
    """A write that acts on each channel of a list and answers ``ok``/``false`` per channel (2.6, 2.11-2.13)."""
    return BtsCommand(name, method, Layout.LIST, tree(_acks), _per_channel, idempotent=False, element=name,
                      text=text, doc=doc, returns="list[replies.ChannelAck]")


# -- the table -----------------------------------------------------------------------------------------------------

CONNECT: BtsCommand[bool] = BtsCommand(
    "connect", "connect", Layout.FIELDS, tree(lambda root, r: replies.parse_connect(root)), _envelope,
    idempotent=True, fields=(arg("username", "admin"), arg("password", "neware"), fixed("type", "bfgs")),
    doc="Log in (1.7); any credentials are accepted by the BTS Client, and ``connect`` is not required first.",
    returns="bool",
)
GETDEVINFO: BtsCommand[replies.DeviceInfo] = BtsCommand(
    "getdevinfo", "getdevinfo", Layout.NONE, tree(lambda root, r: replies.parse_devinfo(root)),
    lambda r: DEVINFO_MAX_BYTES, idempotent=True, doc="The server's channel tree (2.2).",
    returns="replies.DeviceInfo",
)
GETCHLSTATUS: BtsCommand[list[replies.ChannelWorkStatus]] = BtsCommand(
    "getchlstatus", "getchlstatus", Layout.LIST, tree(lambda root, r: replies.parse_chlstatus(root, r.channels)),
    _per_channel, idempotent=True, element="status", text=_TRUE,
    doc="The workstatus of each channel (2.3), matched by order where the server mislabels subdevid.",
    returns="list[replies.ChannelWorkStatus]",
)
INQUIRE: BtsCommand[list[replies.InquireReply]] = BtsCommand(
    "inquire", "inquire", Layout.LIST, _inquire,
    _per_channel, idempotent=True, element="inquire", text=_TRUE,
    fields=(fixed("aux", 0), arg("barcode", True, keyword_only=True, encode=int)),
    doc="Live values of each channel (2.4); ``barcode=False`` leaves the barcodes out of the reply.",
    returns="list[replies.InquireReply]",
)
INQUIREDF: BtsCommand[list[replies.InquireDf]] = BtsCommand(
    "inquiredf", "inquiredf", Layout.LIST, _inquiredf,
    _per_channel, idempotent=True, element="chl", with_ip=False, fields=(arg("testid", 0),),
    doc="Upload progress of each channel's test ``testid`` (2.8; 0: the current or latest test).",
    returns="list[replies.InquireDf]",
)
DOWNLOAD: BtsCommand[replies.DownloadPage] = BtsCommand(
    "download", "download", Layout.SINGLE, _download_page,
    lambda r: download_reply_cap(r.arguments["count"]), idempotent=True, element="download", with_ip=False,
    fields=(fixed("auxid", 0), arg("testid", 0, keyword_only=True), arg("startpos", keyword_only=True),
            arg("count", keyword_only=True)),
    check=_check_page,
    doc="Records ``startpos``, ``startpos + 1``, ... (seqids are 1-based), at most ``count`` (<= 1000) (2.7).\n\n"
        "The page is checked against the request inside the parse, so that a wrong page is retried like a garbled "
        "one: it must start at ``startpos``, run on without gaps and hold at most ``count`` records, and its "
        "numbers must be representable (see :mod:`drivers.neware.pages`).",
    returns="replies.DownloadPage",
)
DOWNLOAD_STEP_LAYER: BtsCommand[replies.StepLayer] = BtsCommand(
    "downloadStepLayer", "download_step_layer", Layout.SINGLE, tree(lambda root, r: replies.parse_step_layer(root)),
    lambda r: STEP_LAYER_MAX_BYTES, idempotent=True, element="downloadStepLayer", with_ip=False,
    fields=(arg("testid", 0),), doc="One summary row per executed step of test ``testid`` (2.9).",
    returns="replies.StepLayer",
)
DOWNLOAD_LOG: BtsCommand[replies.TestLog] = BtsCommand(
    "downloadlog", "download_log", Layout.SINGLE, tree(lambda root, r: replies.parse_log(root)),
    lambda r: LOG_MAX_BYTES, idempotent=True, element="download", with_ip=False,
    fields=(arg("testid", 0), fixed("log_lever", 0)),  # sic: log_lever
    doc="The event log of test ``testid`` (2.10).",
    returns="replies.TestLog",
)
START: BtsCommand[list[replies.ChannelAck]] = BtsCommand(
    "start", "start", Layout.LIST, tree(_acks), _per_channel, idempotent=False, element="start",
    fields=(arg("barcode", keyword_only=True), arg("remark", None, keyword_only=True, omit_none=True)),
    text=arg(None, name="path", keyword_only=True),
    doc="Start the step file at ``path`` (as the BTS Client's PC sees it) on each channel (2.5).",
    returns="list[replies.ChannelAck]",
)
STOP = _ack_command("stop", "stop", "Stop each channel (2.6); a finished channel answers ``false``.")
CONTINUE = _ack_command("continue", "continue_", "Resume each paused channel (2.13).")
CLEARFLAG = _ack_command("clearflag", "clearflag", "Clear each channel's protection flag (2.12).")
LIGHT = _ack_command(
    "light", "light", "Switch each channel's indicator on or off (2.11).",
    text=arg(None, True, name="on", encode=lambda on: "true" if on else "false"),
)
SETPAUSE: BtsCommand[replies.ChannelAck] = BtsCommand(
    "setpause", "setpause", Layout.SINGLE, tree(lambda root, r: _acks(root, r)[0]), _per_channel,
    idempotent=False, element="setpause",
    fields=(arg("cycleid", -1, keyword_only=True), arg("stepid", -1, keyword_only=True), fixed("timeout", "")),
    doc='Schedule a pause; -1/-1 means "the current cycle and step", i.e. pause now **[unverified]** (2.13).',
    returns="replies.ChannelAck",
)

#: every command the driver sends, by ``<cmd>`` name
COMMANDS: dict[str, BtsCommand[Any]] = {
    c.name: c
    for c in (CONNECT, GETDEVINFO, GETCHLSTATUS, INQUIRE, INQUIREDF, DOWNLOAD, DOWNLOAD_STEP_LAYER, DOWNLOAD_LOG,
              START, STOP, CONTINUE, CLEARFLAG, LIGHT, SETPAUSE)
}
