"""The state every part of one binding pass shares: the document's source, the cell, the problems found so far and
the safety limits set-points and ends are checked against.

Binding reports problems instead of raising them, so that one pass finds every problem of a file; each part gets
this context and adds to :attr:`Binding.problems` through :meth:`Binding.problem`, which positions the problem in the
YAML and says which parameter a bad value came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocols.cells import Cell
from protocols.errors import Path, Problem
from protocols.program import SafetyLimits
from protocols.yamlsource import SourceDoc


@dataclass
class Binding:
    """One binding pass over one document.

    ``cell`` is ``None`` when the protocol is checked without a cell (``station validate`` with no ``--cell``):
    every check that needs no cell still runs. ``safety`` is the protocol's whole-run limits tightened by the
    cell's, set once the header is bound (:func:`protocols.binding.header.bind_header`).
    """

    source: SourceDoc
    cell: Cell | None
    origins: dict[Path, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    safety: SafetyLimits = field(default_factory=SafetyLimits)

    def problem(self, path: Path, message: str, expected: str | None = None, found: str | None = None,
                key: bool = False) -> None:
        """Report a problem at ``path``; a value that came from a parameter says so in what was found."""
        origin = next((self.origins[path[:i]] for i in range(len(path), 0, -1) if path[:i] in self.origins), None)
        if origin and found is not None:
            found = f"{found} (from parameter '{origin}')"
        self.problems.append(self.source.problem(path, message, expected=expected, found=found, key=key))
