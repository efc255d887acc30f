"""Validation problems as lab users need them: every one at once, each pointing at a file, line and column.

A problem reads ``FILE:LINE:COL: steps[3].discharge.until: <what is wrong>; expected <x>, found <y>`` so that an
editor can jump to it and the user knows the fix without reading our code.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """``('steps', 3, 'discharge', 'until')`` -> ``steps[3].discharge.until``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(document)"


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str
    expected: str | None = None
    found: str | None = None

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.path}: {self.message}"
        if self.expected is not None or self.found is not None:
            text += f"; expected {self.expected or '-'}, found {self.found or '-'}"
        return one_line(text)


# every character str.splitlines() breaks at, plus the other C0 controls: a value quoted in a message must not
# split one problem over several lines (editors and scripts read one problem per line)
_BREAKS = {c: repr(chr(c))[1:-1] for c in (*range(0x20), 0x7F, 0x85, 0x2028, 0x2029)}


def one_line(text: str) -> str:
    """``text`` with line breaks and control characters shown as escapes (``\\n``, ``\\x00``)."""
    return text.translate(_BREAKS)


class ProtocolError(Exception):
    """One or more problems in a protocol or cell file; ``str()`` lists them one per line."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = sorted(set(problems), key=lambda p: (p.file, p.line, p.column, p.path, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


#: did-you-mean looks among at most this many names: hand-written files have a handful of keys, ids or parameters;
#: a generated one with thousands would make every misspelling cost a fuzzy match against all of them
MAX_SUGGESTION_CHOICES = 30


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """A " (did you mean 'x'?)" suffix for a misspelt key, or an empty string when nothing is close."""
    if len(choices) > MAX_SUGGESTION_CHOICES:
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def name_list(names: Iterable[str], limit: int = 12) -> str:
    """``a, b, c`` for a message; a long list is cut (``a, b, ... (40 in all)``) so a message stays one line."""
    items = list(names)
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f", ... ({len(items)} in all)"
