"""YAML that remembers where every value came from.

PyYAML's ``safe_load`` forgets positions, and a validation error without a line number sends the user hunting.
We compose the node graph ourselves and keep a map from document path to (line, column), so any later stage
(pydantic validation, binding to a cell, a driver's capability check) can point back at the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml
from yaml.composer import ComposerError

from protocols.errors import Path, Problem, ProtocolError, format_path

#: Larger than any real protocol or cell by orders of magnitude; a bigger file is a mistake (or an attack) and
#: parsing, validating and binding it would keep ``station validate`` busy for a long time.
MAX_DOCUMENT_BYTES = 1_000_000
#: Nesting depth after alias expansion. Nested repeats add two levels each; real protocols stay below 20.
MAX_DEPTH = 64
#: Values (scalars, lists, mappings) after alias expansion: a bound on the work of every later stage, so that a
#: few lines of nested aliases ("billion laughs") cannot expand into billions of values.
MAX_VALUES = 100_000

# libyaml's parser when PyYAML was built with it (every PyPI wheel is): several times faster on large files.
_BOOL, _STR = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:str"
_PARSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if yaml.__with_libyaml__ else yaml.SafeLoader


@dataclass
class SourceDoc:
    file: str
    data: Any
    text: str = ""
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """The 1-based (line, column) of ``path``, or of its nearest ancestor that exists in the file."""
        table = self.key_positions if key else self.positions
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.positions:
                return self.positions[probe]
            probe = probe[:-1]
        return self.positions.get((), (1, 1))

    def problem(self, path: Path, message: str, *, expected: str | None = None, found: str | None = None,
                key: bool = False) -> Problem:
        line, column = self.locate(path, key=key)
        return Problem(self.file, line, column, format_path(path), message, expected, found)


class LimitError(ComposerError):
    """A document beyond one of the limits above; reported as such, not as a syntax error."""

    def __init__(self, problem: str, mark: yaml.Mark, expected: str, found: str):
        super().__init__(None, None, problem, mark)
        self.expected = expected
        self.found = found


@dataclass
class _Open:
    """A collection being composed: its node, its anchor and, in a mapping, the key waiting for its value."""

    node: yaml.CollectionNode
    anchor: str | None
    key: yaml.Node | None = None


class _Composer:
    """Events to a node graph, like PyYAML's composer, but iterative and with limits.

    PyYAML's composer recurses once per nesting level (a deeply nested file ends in ``RecursionError``) and
    happily builds recursive or exponentially aliased graphs that the builder would then expand without end.
    Here every node records its expanded size and depth, so an alias is refused the moment it would make the
    document larger than :data:`MAX_VALUES` or deeper than :data:`MAX_DEPTH`, and an alias to a collection that
    is still open (a recursive alias) is refused at once; each error points at the alias.
    """

    def __init__(self) -> None:
        self.resolver = yaml.SafeLoader("")
        self.anchors: dict[str, yaml.Node] = {}
        self.shape: dict[int, tuple[int, int]] = {}  # id(node) -> (values after expansion, depth after expansion)
        self.stack: list[_Open] = []
        self.values = 0
        self.aliased = 0  # values added by aliases
        self.root: yaml.Node | None = None
        self.documents = 0

    def compose(self, events: Iterable[yaml.Event]) -> yaml.Node | None:
        for event in events:
            if isinstance(event, yaml.DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    raise ComposerError(None, None, "a file holds one YAML document, found a second ('---')",
                                        event.start_mark)
            elif isinstance(event, yaml.AliasEvent):
                self._alias(event)
            elif isinstance(event, yaml.ScalarEvent):
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
                    if tag == _BOOL and event.value.lower() not in ("true", "false"):
                        tag = _STR  # YAML 1.2: yes/no/on/off are words (an alert's 'on:' key, a name 'no')
                node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
                self._opened(node, event)
                self.shape[id(node)] = (1, 1)
                self._attach(node)
            elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                self._start(event)
            elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                self._end(event)
        return self.root

    def _opened(self, node: yaml.Node, event: yaml.NodeEvent) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise LimitError("the document is nested too deeply", event.start_mark,
                             f"at most {MAX_DEPTH} levels", f"more than {MAX_DEPTH}")
        if event.anchor is not None:
            if event.anchor in self.anchors:
                raise ComposerError(None, None, f"the anchor &{event.anchor} is defined twice", event.start_mark)
            self.anchors[event.anchor] = node
        self._count(1, event)

    def _count(self, values: int, event: yaml.Event) -> None:
        self.values += values
        if self.values > MAX_VALUES:
            what = ("the aliases expand the document to too many values (an alias bomb?)" if self.aliased
                    else "the document has too many values for a protocol or cell")
            raise LimitError(what, event.start_mark, f"at most {MAX_VALUES} values (lists, mappings and scalars, "
                             "aliases expanded)", f"more than {MAX_VALUES}")

    def _start(self, event: yaml.CollectionStartEvent) -> None:
        is_sequence = isinstance(event, yaml.SequenceStartEvent)
        kind = yaml.SequenceNode if is_sequence else yaml.MappingNode
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolver.resolve(kind, None, event.implicit)
        node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
        self._opened(node, event)
        self.stack.append(_Open(node, event.anchor))

    def _end(self, event: yaml.CollectionEndEvent) -> None:
        node = self.stack.pop().node
        node.end_mark = event.end_mark
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
        shapes = [self.shape[id(child)] for child in children]
        self.shape[id(node)] = (1 + sum(s for s, _ in shapes), 1 + max((d for _, d in shapes), default=0))
        self._attach(node)

    def _alias(self, event: yaml.AliasEvent) -> None:
        node = self.anchors.get(event.anchor)
        if node is None:
            raise ComposerError(None, None, f"the alias *{event.anchor} names no anchor defined before it",
                                event.start_mark)
        if any(open_.anchor == event.anchor for open_ in self.stack):
            raise LimitError(f"the alias *{event.anchor} is inside the value it names (a recursive alias)",
                             event.start_mark, "an alias to a value defined before it", f"*{event.anchor} inside "
                             f"&{event.anchor}")
        values, depth = self.shape[id(node)]
        if len(self.stack) + depth > MAX_DEPTH:
            raise LimitError(f"the alias *{event.anchor} nests the document too deeply", event.start_mark,
                             f"at most {MAX_DEPTH} levels", f"{len(self.stack) + depth} levels")
        self.aliased += values
        self._count(values, event)
        self._attach(node)

    def _attach(self, node: yaml.Node) -> None:
        if not self.stack:
            self.root = node
            return
        parent = self.stack[-1]
        if isinstance(parent.node, yaml.SequenceNode):
            parent.node.value.append(node)
        elif parent.key is None:
            parent.key = node
        else:
            parent.node.value.append((parent.key, node))
            parent.key = None


def _compose(text: str) -> yaml.Node | None:
    return _Composer().compose(yaml.parse(text, Loader=_PARSER))


class _Builder:
    """Nodes to plain data, recording the position of every value and key on the way."""

    def __init__(self, doc: SourceDoc):
        self.doc = doc
        self.constructor = yaml.SafeLoader("")
        self.problems: list[Problem] = []

    def _problem(self, node: yaml.Node, path: Path, message: str, expected: str | None = None,
                 found: str | None = None) -> None:
        self.problems.append(Problem(self.doc.file, node.start_mark.line + 1, node.start_mark.column + 1,
                                     format_path(path), message, expected, found))

    def scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        """The value of a scalar; an explicit tag the text does not fit (``!!int abc``) is a problem, not a crash."""
        try:
            value = self.constructor.construct_object(node)
            if isinstance(value, str):
                value.encode("utf-8")  # a lone surrogate from a "\ud800" escape (the pure-Python parser allows it)
            return value
        except UnicodeEncodeError:
            self._problem(node, path, "text that is not valid Unicode", "UTF-8 text", "a lone surrogate")
            return None
        except (yaml.YAMLError, ValueError, OverflowError, TypeError) as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            kind = node.tag.rsplit(":", 1)[-1]
            self._problem(node, path, f"cannot read this value as {kind} ({reason})", f"a valid {kind}",
                          repr(node.value)[:60])
            return None

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.doc.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self._problem(key_node, path, "a key must be a plain word", "a word such as 'steps'",
                                  "a list or a mapping")
                    continue
                if key_node.tag == "tag:yaml.org,2002:merge" or key_node.value == "<<":
                    self._problem(key_node, path, "YAML merge keys are not supported", "explicit keys", "<<")
                    continue
                key = str(self.scalar(key_node, path))
                child = (*path, key)
                if key in result:
                    self._problem(key_node, child, f"duplicate key '{key}' (YAML would silently keep only the last)")
                self.doc.key_positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalar(node, path)


def load_yaml(text: str, file: str) -> SourceDoc:
    """Parse one YAML document, raising :class:`ProtocolError` with the position of any syntax problem."""
    doc = SourceDoc(file=file, data=None, text=text)
    # a character is at least one byte: count bytes only when the characters alone do not settle it
    size = len(text) if len(text) > MAX_DOCUMENT_BYTES else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_DOCUMENT_BYTES:
        raise ProtocolError([Problem(file, 1, 1, "(document)", "the file is too large for a protocol or cell",
                                     f"at most {MAX_DOCUMENT_BYTES // 1_000_000} MB", f"{size / 1e6:.1f} MB")])
    try:
        node = _compose(text)
    except LimitError as exc:
        mark = exc.problem_mark
        raise ProtocolError([Problem(file, mark.line + 1, mark.column + 1, "(document)", str(exc.problem),
                                     exc.expected, exc.found)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ProtocolError([Problem(file, line, column, "(document)", f"YAML syntax error: {exc.problem}")]) from None
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        raise ProtocolError([Problem(file, line, column, "(document)", "a character YAML does not allow",
                                     "printable text", f"#x{exc.character:04x}" if isinstance(exc.character, int)
                                     else repr(exc.character))]) from None
    except UnicodeError as exc:
        line, column = _line_column(text, getattr(exc, "start", 0))
        raise ProtocolError([Problem(file, line, column, "(document)", "text that is not valid Unicode",
                                     "UTF-8 text", "a lone surrogate or a broken character")]) from None
    except yaml.YAMLError as exc:
        raise ProtocolError([Problem(file, 1, 1, "(document)", f"YAML error: {exc}")]) from None
    if node is None:
        raise ProtocolError([Problem(file, 1, 1, "(document)", "the file is empty", "a YAML mapping", "nothing")])
    builder = _Builder(doc)
    try:
        doc.data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ProtocolError([Problem(file, line, column, "(document)", f"YAML error: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ProtocolError([Problem(file, 1, 1, "(document)", f"YAML error: {exc}")]) from None
    if builder.problems:
        raise ProtocolError(builder.problems)
    return doc


def _line_column(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of a character index, for errors that carry an index instead of a mark."""
    index = max(0, min(index, len(text)))
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def load_yaml_file(path: str | FsPath) -> SourceDoc:
    """Read and parse a file; reads at most one byte over :data:`MAX_DOCUMENT_BYTES`, so a huge file costs nothing."""
    path = FsPath(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_DOCUMENT_BYTES + 1)
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise ProtocolError([Problem(str(path), 1, 1, "(document)", "the file is too large for a protocol or "
                                         "cell", f"at most {MAX_DOCUMENT_BYTES // 1_000_000} MB",
                                         f"more than {MAX_DOCUMENT_BYTES // 1_000_000} MB")])
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ProtocolError([Problem(str(path), 1, 1, "(document)", "file not found",
                                     "an existing YAML file", str(path))]) from None
    except UnicodeDecodeError as exc:
        before = raw[:exc.start].decode("utf-8", "replace")
        line, column = _line_column(before, len(before))
        raise ProtocolError([Problem(str(path), line, column, "(document)", f"not UTF-8 text ({exc.reason})",
                                     "a UTF-8 YAML file", "binary or another encoding")]) from None
    except OSError as exc:
        raise ProtocolError([Problem(str(path), 1, 1, "(document)", f"cannot read the file: {exc.strerror}")]) from None
    return load_yaml(text, str(path))
