"""The front door: a protocol file (plus ``--set`` overrides and a cell) in, a step program or all problems out."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from protocols.binding import bind
from protocols.cells import Cell
from protocols.errors import Path, ProtocolError
from protocols.model import ProtocolDoc
from protocols.parameters import Parameter, collect_parameters, substitute
from protocols.program import StepProgram
from protocols.validation import pydantic_problems
from protocols.yamlsource import SourceDoc, load_yaml, load_yaml_file


@dataclass(frozen=True)
class LoadedProtocol:
    """A structurally valid protocol with its parameters applied, not yet bound to a cell."""

    doc: ProtocolDoc
    source: SourceDoc
    parameters: dict[str, Parameter]
    origins: dict[Path, str]

    @property
    def name(self) -> str:
        return self.doc.protocol

    def resolved_parameters(self) -> dict[str, str]:
        return {name: str(p.value) for name, p in self.parameters.items()}

    def bind(self, cell: Cell | None) -> StepProgram | None:
        """The step program for ``cell``; with ``cell=None`` only checks what needs no cell (returns ``None``)."""
        program, problems = bind(self.doc, self.source, cell, origins=self.origins,
                                 parameters=self.resolved_parameters())
        if problems:
            raise ProtocolError(problems)
        return program


def parse_protocol(source: SourceDoc, overrides: dict[str, str] | None = None) -> LoadedProtocol:
    if not isinstance(source.data, dict):
        raise ProtocolError([source.problem((), "a protocol file is a mapping with 'protocol:' and 'steps:'",
                                            expected="'protocol: name' and a list of 'steps'",
                                            found=type(source.data).__name__)])
    params, problems = collect_parameters(source, overrides or {})
    data, origins, more = substitute(source, params)
    problems += more
    try:
        doc = ProtocolDoc.model_validate(data)
    except ValidationError as exc:
        problems += pydantic_problems(exc, source, ProtocolDoc, origins)
        raise ProtocolError(problems) from None
    if problems:
        raise ProtocolError(problems)
    return LoadedProtocol(doc=doc, source=source, parameters=params, origins=origins)


def load_protocol(path: str, overrides: dict[str, str] | None = None) -> LoadedProtocol:
    """A protocol from a file path or a library name (``li-deposition``)."""
    from protocols.library import resolve_protocol_path

    return parse_protocol(load_yaml_file(resolve_protocol_path(path)), overrides)


def load_protocol_text(text: str, file: str = "<protocol>", overrides: dict[str, str] | None = None) -> LoadedProtocol:
    return parse_protocol(load_yaml(text, file), overrides)


def build_program(protocol: str, cell: Cell, overrides: dict[str, str] | None = None) -> StepProgram:
    """Load, validate and bind in one call; raises :class:`ProtocolError` listing every problem."""
    program = load_protocol(protocol, overrides).bind(cell)
    assert program is not None
    return program
