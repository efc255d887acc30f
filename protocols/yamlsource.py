"""YAML that remembers where every value came from.

PyYAML's ``safe_load`` forgets positions, and a validation error without a line number sends the user hunting.
We compose the node graph ourselves and keep a map from document path to (line, column), so any later stage
(pydantic validation, binding to a cell, a driver's capability check) can point back at the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml

from protocols.errors import Path, Problem, ProtocolError


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
        from protocols.errors import format_path

        line, column = self.locate(path, key=key)
        return Problem(self.file, line, column, format_path(path), message, expected, found)


class _Builder:
    def __init__(self, doc: SourceDoc):
        self.doc = doc
        self.constructor = yaml.SafeLoader("")
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.doc.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(Problem(self.doc.file, key_node.start_mark.line + 1,
                                                 key_node.start_mark.column + 1, "", "a key must be a plain word"))
                    continue
                key = self.constructor.construct_object(key_node)
                if key == "<<":
                    self.problems.append(Problem(self.doc.file, key_node.start_mark.line + 1,
                                                 key_node.start_mark.column + 1, "", "YAML merge keys are not "
                                                 "supported", "explicit keys", "<<"))
                    continue
                key = str(key)
                child = (*path, key)
                if key in result:
                    line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                    from protocols.errors import format_path

                    self.problems.append(Problem(self.doc.file, line, column, format_path(child),
                                                 f"duplicate key '{key}' (YAML would silently keep only the last)"))
                self.doc.key_positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.constructor.construct_object(node)


def load_yaml(text: str, file: str) -> SourceDoc:
    """Parse one YAML document, raising :class:`ProtocolError` with the position of any syntax problem."""
    doc = SourceDoc(file=file, data=None, text=text)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ProtocolError([Problem(file, line, column, "(document)", f"YAML syntax error: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ProtocolError([Problem(file, 1, 1, "(document)", f"YAML error: {exc}")]) from None
    if node is None:
        raise ProtocolError([Problem(file, 1, 1, "(document)", "the file is empty", "a YAML mapping", "nothing")])
    builder = _Builder(doc)
    try:
        doc.data = builder.build(node, ())
    except yaml.YAMLError as exc:
        raise ProtocolError([Problem(file, 1, 1, "(document)", f"YAML error: {exc}")]) from None
    if builder.problems:
        raise ProtocolError(builder.problems)
    return doc


def load_yaml_file(path: str | FsPath) -> SourceDoc:
    path = FsPath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProtocolError([Problem(str(path), 1, 1, "(document)", "file not found",
                                     "an existing YAML file", str(path))]) from None
    except UnicodeDecodeError as exc:
        raise ProtocolError([Problem(str(path), 1, 1, "(document)", f"not UTF-8 text ({exc.reason})",
                                     "a UTF-8 YAML file", "binary or another encoding")]) from None
    except OSError as exc:
        raise ProtocolError([Problem(str(path), 1, 1, "(document)", f"cannot read the file: {exc.strerror}")]) from None
    return load_yaml(text, str(path))
