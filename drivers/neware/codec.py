"""The BTS API envelope: building requests (every value escaped) and parsing replies (defusedxml only).

Pure functions, no I/O, so the wire format is tested without a socket. Facts from neware-bts-api.md 1.3-1.5:
requests are ``<?xml ...?><bts version="1.0">BODY</bts>`` followed by a terminator (aurora-neware's
``\\n\\n#\\r\\n``, used in production against BTS 8.0); replies end at ``</bts>`` and a trailer the transport skips.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET

from drivers.neware.errors import NewareProtocolError
from drivers.transport import Framing

REQUEST_HEAD = '<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">'
REQUEST_TAIL = "</bts>"
TERMINATOR = "\n\n#\r\n"

#: replies end at ``</bts>``; the trailer (``#\r\n``, ``\r\n#\r\n`` or ``\n\n#\r\n``) precedes the next frame
REPLY_FRAMING = Framing(end=b"</bts>", skip=b"\r\n#")

#: the BTS writes "no value" as ``--`` (neware-bts-api.md 1.10 quirk 5)
NO_VALUE = "--"

#: integers from replies must fit a signed 64-bit column (the store's, numpy's): a bigger one is a garbled reply,
#: refused here rather than crashing whoever stores it with OverflowError
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


_ATTRIBUTE_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


#: the characters an attribute value must have replaced (``escape``'s three and ``_ATTRIBUTE_ENTITIES``)
_NEEDS_ESCAPE = re.compile(r'[&<>"\n\r\t]')


def quote_attribute(value: object) -> str:
    """Always double-quoted (the BTS's own style; some lenient parsers do not expect single quotes).

    Most values (channel addresses, counts) need no escaping, and a supervision round quotes hundreds of
    thousands of them at 2048 channels: one regex scan decides, and ``escape`` runs only when it must."""
    if type(value) is int:  # digits and a sign: nothing to escape (the counts and addresses of every request)
        return f'"{value}"'
    text = value if type(value) is str else str(value)
    if _NEEDS_ESCAPE.search(text) is None:
        return f'"{text}"'
    return '"' + escape(text, _ATTRIBUTE_ENTITIES) + '"'


def attribute_text(attributes: Mapping[str, object] | None) -> str:
    """`` name="value"`` for each attribute, in order, each value escaped."""
    return "".join(f" {name}={quote_attribute(value)}" for name, value in (attributes or {}).items())


def element(tag: str, attributes: Mapping[str, object] | None = None, text: str | None = None, *,
            written: str = "") -> str:
    """One XML element with escaped attribute values and text (self-closing when there is no text).

    ``written``: attributes already written by :func:`attribute_text` (a channel's address, the same on every
    request), placed before ``attributes``."""
    attrs = written + attribute_text(attributes)
    if text is None:
        return f"<{tag}{attrs} />"
    return f"<{tag}{attrs}>{escape(text)}</{tag}>"


def channel_list(items: list[str], count: int | None = None, **list_attributes: object) -> str:
    """``<list count="N">items</list>``: the general shape of channel-list commands (items already escaped)."""
    attrs = attribute_text({"count": len(items) if count is None else count, **list_attributes})
    return f"<list{attrs}>{''.join(items)}</list>"


def build_request(command: str, body: str = "") -> bytes:
    """The exact request bytes for ``command`` with an already escaped body."""
    return (REQUEST_HEAD + element("cmd", None, command) + body + REQUEST_TAIL + TERMINATOR).encode("utf-8")


def parse_reply(frame: bytes, command: str) -> Element:
    """Parse one reply frame into its ``<bts>`` element; raise :class:`NewareProtocolError` if it is not one.

    The reply's ``<cmd>`` is deliberately not validated: the real server misspells some of them
    (``donwload_resp``), so a client that insists on the spelling breaks on real hardware.
    """
    frame = through_bts(frame)
    with reply_errors(frame, command):
        root = SafeET.fromstring(frame)
    check_root(root.tag, command)
    return root


def through_bts(frame: bytes) -> bytes:
    """The frame up to its closing ``</bts>``: anything after it (a terminator, padding) is not the reply's."""
    end = frame.rfind(b"</bts>")
    return frame[: end + len(b"</bts>")] if end >= 0 else frame


@contextmanager
def reply_errors(frame: bytes, command: str) -> Iterator[None]:
    """Parsing errors of a reply frame as one :class:`NewareProtocolError` in the same words, whichever parser
    (the tree, or :mod:`drivers.neware.lists`) read it."""
    try:
        yield
    except SafeET.ParseError as exc:
        excerpt = frame[:120].decode("utf-8", "replace")
        raise NewareProtocolError(f"the reply to '{command}' is not valid XML ({exc}); it began: {excerpt!r}") from None
    except Exception as exc:  # defusedxml refusals (entities, DTD) mean a hostile or broken peer
        raise NewareProtocolError(f"the reply to '{command}' was refused by the XML parser: {exc}") from None


def check_root(tag: str | None, command: str) -> None:
    if tag != "bts":
        raise NewareProtocolError(f"the reply to '{command}' has root <{tag}>, expected <bts>")


def optional(value: str | None) -> str | None:
    return None if value is None or value == NO_VALUE or value == "" else value


def as_float(value: str | None, default: float | None = None) -> float | None:
    value = optional(value)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise NewareProtocolError(f"expected a number in a reply, found {value!r}") from None


def as_int(value: str | None, default: int | None = None) -> int | None:
    """An optional integer attribute (``--`` or absent -> ``default``); ``"44.0"`` is read as 44 as before."""
    value = optional(value)
    return default if value is None else parse_int(value, "an integer")


def parse_int(text: str, what: str, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """``text`` as an integer in ``low..high``, or :class:`NewareProtocolError` naming ``what``.

    Never lets ``ValueError`` or ``OverflowError`` escape: ``int(float("1e30"))`` is a 31-digit integer no store
    column holds, ``int(float("inf"))`` raises OverflowError and ``int(float("nan"))`` ValueError. A number written
    as a float (``"44.0"``) is accepted when it is finite, as the BTS's .NET formatting may do that.
    """
    try:
        number = int(text)
    except (TypeError, ValueError):
        try:
            real = float(text)
        except (TypeError, ValueError):
            real = math.nan
        if not math.isfinite(real):
            raise NewareProtocolError(f"expected {what} in a reply, found {text!r}") from None
        number = int(real)
    if not low <= number <= high:
        raise NewareProtocolError(f"expected {what} in {low}..{high} in a reply, found {text!r}")
    return number
