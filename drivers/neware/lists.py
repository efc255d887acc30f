"""Fast, still defused, reading of channel-list replies (``inquire``, ``inquiredf``: the supervision poll's two).

A supervision round asks every BTS Client for ``inquire`` and ``inquiredf`` of all its channels, and through
:func:`drivers.neware.codec.parse_reply` each reply became a whole ElementTree built by defusedxml's pure-Python
parser (defusedxml cannot subclass the C accelerator): ~30 us per channel and round, about 60 ms of a 2048-channel
round. This reader is the very same parser, defusedxml's :class:`~defusedxml.ElementTree.DefusedXMLParser` with the
settings ``parse_reply`` gives it (entity declarations and external references refused, namespaces expanded, the
same handling of undefined entities), so it accepts and refuses exactly the same bytes with exactly the same
errors; only the three handlers that build the tree are replaced by closures that keep the attributes (and the
text, where asked) of the one list the reply parsers read, the direct ``<tag>`` children of ``<bts>``'s first
``<list>``, as :func:`drivers.neware.replies._list_elements` finds them in the tree. No tree, no Element objects:
~3 us per channel.

What the reply parsers do with those rows (matching to the request, typing, every check and message) is the code
the tree path uses (:func:`drivers.neware.replies.inquire_rows`, :func:`~drivers.neware.replies.inquiredf_rows`),
and the tests hold this reader to the tree on real captures, simulator replies and garbled or hostile input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import defusedxml.ElementTree as SafeET

from drivers.neware.codec import check_root, reply_errors, through_bts


class _Target:
    """A tree builder's callbacks, as no-ops: the parser installs a handler for each, exactly as for the tree
    builder ``parse_reply`` uses; :class:`_ListReader` then replaces the start, end and data handlers."""

    def start(self, tag: str, attrib: dict[str, str]) -> None: ...

    def end(self, tag: str) -> None: ...

    def data(self, text: str) -> None: ...

    def comment(self, text: str) -> None: ...

    def pi(self, target: str, text: str | None = None) -> None: ...

    def close(self) -> None: ...


def _fixed(name: str) -> str:
    """A name as ElementTree spells it (``{uri}local``): expat reports a namespaced name as ``uri}local``."""
    return "{" + name if "}" in name else name


class _ListReader(SafeET.DefusedXMLParser):
    """The root's tag, then the attributes (and with ``with_text`` the text) of each ``<tag>`` child of the first
    ``<list>`` child of the root, in document order."""

    def __init__(self, tag: str, with_text: bool) -> None:
        super().__init__(target=_Target(), forbid_dtd=False, forbid_entities=True, forbid_external=True)
        self.root: str | None = None
        self.rows: list[dict[str, str]] = []
        self.texts: list[str | None] = []
        parser: Any = self.parser
        parser.ordered_attributes = 0  # a dict per element, in document order: what ElementTree's attrib holds
        start, end, data = self._handlers(tag, with_text)
        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = data

    def _handlers(self, tag: str, with_text: bool) -> tuple[Callable[..., None], Callable[[str], None],
                                                            Callable[[str], None]]:
        """Closures (they run once per element, so they read no attribute of ``self``). ``depth`` is that of the
        element being read, 1 for the root; ``inside`` is True while in the root's first ``<list>``; ``chunks``
        gathers a row's text, which ends where its first child starts or where it ends (ElementTree's ``.text``:
        comments and processing instructions do not cut it)."""
        rows, texts = self.rows, self.texts
        depth = 0
        inside = seen_list = False
        chunks: list[str] | None = None

        def close_text() -> None:
            nonlocal chunks
            assert chunks is not None
            texts[-1] = "".join(chunks)
            chunks = None

        def start(name: str, attrs: dict[str, str]) -> None:
            nonlocal depth, inside, seen_list, chunks
            if chunks is not None:
                close_text()
            depth += 1
            if depth == 3:
                if inside and name == tag:  # tag has no "}", so a namespaced name (uri}local) never equals it
                    if "}" in "".join(attrs):  # a namespaced attribute: spelt as ElementTree does
                        attrs = {_fixed(key): value for key, value in attrs.items()}
                    rows.append(attrs)
                    if with_text:
                        texts.append(None)
                        chunks = []
            elif depth == 2:
                if not seen_list and name == "list":
                    inside = seen_list = True
            elif depth == 1:
                self.root = _fixed(name)

        def end(name: str) -> None:
            nonlocal depth, inside
            if chunks is not None:
                close_text()
            if depth == 2:
                inside = False
            depth -= 1

        def data(text: str) -> None:
            if chunks is not None:
                chunks.append(text)

        def ignore(text: str) -> None:
            pass

        return start, end, (data if with_text else ignore)


def read_list(frame: bytes, command: str, tag: str, *, with_text: bool = False) -> tuple[list[dict[str, str]],
                                                                                          list[str | None]]:
    """The rows of a channel-list reply frame, as :func:`drivers.neware.codec.parse_reply` followed by
    ``_list_elements(root, tag)`` would find them: (attribute dicts, texts; empty unless ``with_text``). Garbled,
    hostile or foreign input raises the same :class:`NewareProtocolError` as ``parse_reply``, word for word."""
    frame = through_bts(frame)
    reader = _ListReader(tag, with_text)
    with reply_errors(frame, command):
        reader.feed(frame)
        reader.close()
    check_root(reader.root, command)
    return reader.rows, reader.texts
