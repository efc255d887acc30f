"""The front door: a protocol file (plus ``--set`` overrides and a cell) in, a step program or all problems out."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from protocols.binding import bind
from protocols.cells import Cell
from protocols.errors import Path, ProtocolError
from protocols.model import ProtocolDoc, Step
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
    sub = substitute(source, params)
    problems += sub.problems
    try:
        doc = ProtocolDoc.model_validate(sub.data)
    except ValidationError as exc:
        problems += pydantic_problems(exc, source, ProtocolDoc, sub.origins, reported=sub.failed)
        problems += _check_valid_parts(sub.data, source, sub.origins, params)
        raise ProtocolError(problems) from None
    if problems:
        raise ProtocolError(problems)
    return LoadedProtocol(doc=doc, source=source, parameters=params, origins=sub.origins)


def _check_valid_parts(data: dict, source: SourceDoc, origins: dict[Path, str],
                       params: dict[str, Parameter]) -> list:
    """Bind the steps that are valid on their own, so one pass reports every problem, not only structural ones."""
    steps = data.get("steps")
    if not isinstance(steps, list):
        return []
    adapter = TypeAdapter(Step)
    valid: list[tuple[int, object]] = []
    for i, raw in enumerate(steps):
        try:
            valid.append((i, adapter.validate_python(raw)))
        except ValidationError:
            continue
    header = {k: data[k] for k in ("safety", "record", "requires") if k in data}
    try:
        partial = ProtocolDoc.model_validate({"protocol": "partial", "steps": ["Rest for 1 s"], **header})
    except ValidationError:
        partial = ProtocolDoc.model_validate({"protocol": "partial", "steps": ["Rest for 1 s"]})
    _, problems = bind(partial, source, None, origins=origins, steps=valid)
    return problems


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
