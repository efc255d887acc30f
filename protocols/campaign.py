"""Campaigns: a YAML file that chains protocols on one sample (one physical cell), possibly across instruments.

```yaml
campaign: formation-then-cycling
description: Formation, then cycling until 80 % retention with a reference test every 20 cycles.
stages:
  - name: formation
    protocol: p4-anode-free-cycling      # a library name, or a path relative to this file
    set: {rate: 0.1C, cycles: 2}         # like --set
    instrument: neware                   # or channel: bts/21-1-1; neither: wherever the cell is
    go_on_if: {outcome: finished, ce: ">= 95 % in cycle 2"}
  - name: cycling
    protocol: p4-anode-free-cycling
    set: {rate: 0.2C}
    instrument: neware
    chunks: {cycles: 20}                 # run the protocol 20 cycles at a time, via its 'cycles' parameter
    rpt: {protocol: p4-anode-free-cycling, set: {rate: 0.05C, cycles: 1}}
    until: {retention: "< 80 % of cycle 1", cycles: 500}
```

A stage runs its protocol once, bound to the sample's cell (or the stage's own ``cell:``, for a stage in another
assembly of the same sample) with its ``set:`` values, on a channel of its instrument kind or on the channel it
names. When the run has ended, the station checks ``go_on_if`` (all must hold): the run's outcome (``finished``,
the default, or ``ended``: finished or stopped), the CE of a cycle or of the last one, the capacity retention of
the last cycle against a reference cycle, the number of cycles. Then it starts the next stage, or ends the
campaign (finished after the last stage; failed when a condition to go on does not hold). A run that ended
otherwise (stopped, failed, tripped) holds the campaign for an operator instead of going on blindly.

**Reference performance tests (RPTs) every N cycles, and why cycling runs in chunks.** The obvious reading of
"pause cycling, run the RPT, continue cycling" cannot be done on real cyclers: a channel runs one program at a
time, and a paused program holds the channel (a Neware BTS channel cannot start a second step file while one is
paused; a Biologic channel likewise runs one technique sequence). So the campaign does it at its own level: a
stage with ``chunks: {cycles: N}`` runs its protocol again and again with its cycle-count parameter (``cycles``
unless ``parameter:`` names another) set to N, one run per chunk, and runs the ``rpt`` protocol on the same
channel after each chunk. Each chunk is a complete, ordinary run (stored, supervised, exported like any other),
and the cell never leaves its channel. The station numbers the stage's cycles on across chunks (chunk 2 of 20
cycles holds cycles 21-40 of the stage), counting every cycle that both charged and discharged, and evaluates
``until`` (any may hold: retention against a reference cycle of the stage, the last cycle's CE, a maximum number
of cycles) over all chunks after each one. The price is that a condition is met at a chunk boundary: cycling can
go on up to N - 1 cycles past the point where retention crossed its limit, so N is the resolution of the stop.
The last chunk is shortened to end exactly at the maximum number of cycles.

**Temperatures.** A stage may give ``temperature: 45 degC`` (or the mapping a protocol's temperature step takes:
``{set: 45 degC, band: 0.5 degC, stable_for: 1 h, max_wait: 4 h}``): before the stage's first run the station sets
the climate chamber its channel sits in and waits until it is stable, as for a temperature step. The set point is
held to the stage protocol's ``safety: temperature:`` and the cell's temperature limit. To run one protocol at
several temperatures, write one stage per temperature (``p3-at-27-and-45`` in the library): each temperature then
has its own name in the campaign's record, its own ``go_on_if`` (whether to go on to the next temperature) and its
own chunks and RPTs, and the stored plan is the file as written. An expansion (``temperatures: [27 degC, 45 degC]``
on one stage) was not chosen: it would invent stage names, and leave open whether ``go_on_if`` and ``until`` apply
per temperature or to the whole; a YAML anchor shares the repeated keys of explicit stages instead.

Validation (:func:`load_campaign`) checks everything before the campaign is stored: the document's structure,
every stage's protocol and RPT protocol is found, loads, takes its ``set:`` values and binds to the cell; a stage
in chunks names a parameter its protocol declares and uses as a ``repeat`` count. Every problem is positioned in
the campaign file (a problem inside a protocol is reported at the stage that uses it, naming the protocol's own
file and line), in the same ``FILE:LINE:COL: path: message; expected x, found y`` form as protocols.

The result is a :class:`CampaignPlan`: every stage with the text of its protocols as they were when the campaign
was started, so that editing a protocol file later never changes a running campaign.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from protocols.binding.context import Binding
from protocols.binding.steps import StepCommon, temperature_step
from protocols.cells import Cell, load_cell
from protocols.errors import Path as DocPath
from protocols.errors import Problem, ProtocolError, did_you_mean, format_path, name_list
from protocols.fields import Parsed
from protocols.loader import LoadedProtocol, load_protocol_text
from protocols.model import TemperatureBody
from protocols.program import RecordRule, SafetyLimits, SourceLocation, TemperatureStep
from protocols.validation import pydantic_problems
from protocols.yamlsource import SourceDoc, load_yaml, load_yaml_file

#: a campaign longer than this is a generated file gone wrong, not a lab's plan
MAX_STAGES = 100

# -- conditions ------------------------------------------------------------------------------------------------------

Op = Literal["<", "<=", ">", ">="]
_CONDITION = re.compile(r"^\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)\s*"
                        r"(?:(of|in)\s+cycle\s+([0-9]+))?\s*$")


class Condition(BaseModel):
    """A comparison of a cycle figure: ``op value``, with the cycle it is about (the reference cycle of a
    retention, the cycle whose CE counts) where one was given. ``value`` is a fraction (``80 %`` is 0.8)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    op: Op
    value: float
    cycle: int | None = None
    text: str

    def holds(self, measured: float) -> bool:
        return {"<": measured < self.value, "<=": measured <= self.value, ">": measured > self.value,
                ">=": measured >= self.value}[self.op]


def _ratio(what: str, cycle: Literal["required", "optional"]):
    example = "'< 80 % of cycle 3'" if cycle == "required" else "'>= 99 %' or '>= 85 % in cycle 1'"
    expected = f"a comparison such as {example}"

    def parse(value: Any) -> Condition:
        if isinstance(value, Condition):
            return value
        text = value if isinstance(value, str) else repr(value)
        match = _CONDITION.match(text) if isinstance(value, str) else None
        if match is None:
            raise PydanticCustomError("condition", "{message}", {
                "message": f"cannot read this {what} condition", "expected": expected, "found": repr(value)[:60]})
        op, number, percent, _, cycle_text = match.groups()
        amount = float(number) / (100.0 if percent else 1.0)
        if not 0.0 <= amount <= 2.0:
            raise PydanticCustomError("condition", "{message}", {
                "message": f"a {what} of {number}{' %' if percent else ''} is out of range",
                "expected": "a percentage such as '80 %' or a fraction such as 0.8", "found": repr(text)})
        if cycle == "required" and cycle_text is None:
            raise PydanticCustomError("condition", "{message}", {
                "message": f"a {what} condition names its reference cycle", "expected": expected,
                "found": repr(text)})
        number_of_cycle = int(cycle_text) if cycle_text is not None else None
        if number_of_cycle is not None and number_of_cycle < 1:
            raise PydanticCustomError("condition", "{message}", {
                "message": "cycles are numbered from 1", "expected": "cycle 1 or later", "found": repr(text)})
        return Condition(op=op, value=amount, cycle=number_of_cycle, text=text.strip())

    return parse


def _count(value: Any) -> Condition:
    """``12`` (at least 12) or ``'>= 12'``: a number of the stage's cycles."""
    if isinstance(value, Condition):
        return value
    if isinstance(value, str) and value.strip().isdigit():  # the text a stored plan gives back
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise PydanticCustomError("condition", "{message}", {
                "message": "a number of cycles is at least 1", "expected": "a whole number >= 1",
                "found": repr(value)})
        return Condition(op=">=", value=float(value), text=str(value))
    match = _CONDITION.match(value) if isinstance(value, str) else None
    if match is None or match[3] or match[4] or not float(match[2]).is_integer():
        raise PydanticCustomError("condition", "{message}", {
            "message": "cannot read this cycle count", "expected": "a whole number such as 100, or '>= 100'",
            "found": repr(value)[:60]})
    return Condition(op=match[1], value=float(match[2]), text=value.strip())


RetentionField = Annotated[Condition, Parsed(_ratio("retention", "required"))]
CeField = Annotated[Condition, Parsed(_ratio("CE", "optional"))]
CountField = Annotated[Condition, Parsed(_count)]
def _set_value(value: Any) -> str | int | float:
    """A ``set:`` value is what ``--set`` takes: text or a number (a YAML true/false, list or mapping is not)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PydanticCustomError("condition", "{message}", {
            "message": "a parameter value is text or a number, as --set takes it",
            "expected": "a value such as 0.2C, 20 or '2 mAh/cm^2'", "found": repr(value)[:60]})
    return value


SetValues = dict[str, Annotated[str | int | float, PlainValidator(_set_value),
                                WithJsonSchema({"type": ["string", "number"]})]]


# -- the document ---------------------------------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class GoOnIf(_Strict):
    """What must hold when a stage has ended for the campaign to go on (all of them)."""

    outcome: Literal["finished", "ended"] = Field(
        "finished", description="'finished' (the run completed its program) or 'ended' (finished, or stopped by "
        "an operator or a limit)")
    ce: CeField | None = Field(None, description="CE of the last cycle, or 'in cycle N': '>= 99 %'")
    retention: RetentionField | None = Field(None, description="discharge capacity of the last cycle against a "
                                             "reference cycle: '>= 90 % of cycle 1'")
    cycles: CountField | None = Field(None, description="cycles the stage ran (charged and discharged): 2 or '>= 2'")


class Until(_Strict):
    """When a stage in chunks stops cycling (any of them), checked after every chunk over all of them."""

    retention: RetentionField | None = Field(None, description="'< 80 % of cycle 1': discharge capacity of the "
                                             "last cycle against cycle 1 of the stage")
    ce: CeField | None = Field(None, description="CE of the last cycle, e.g. '< 99 %'")
    cycles: int | None = Field(None, ge=1, description="the most cycles the stage runs (the last chunk is "
                               "shortened to end there)")


class Chunks(_Strict):
    cycles: int = Field(ge=1, description="cycles per run: the value the protocol's cycle-count parameter gets")
    parameter: str = Field("cycles", min_length=1, description="the protocol parameter that sets its repeat count")


class RptDoc(_Strict):
    protocol: str = Field(min_length=1, description="the reference performance test: a library name or a path "
                          "relative to the campaign file; it runs on the stage's channel after every chunk")
    set_: SetValues = Field(default_factory=dict, alias="set")


class StageDoc(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="short name: letters, digits, - _ .")
    protocol: str = Field(min_length=1, description="a library name or a path relative to the campaign file")
    set_: SetValues = Field(default_factory=dict, alias="set", description="parameter values, like --set")
    cell: str | None = Field(None, description="the cell record for this stage when the sample is in another "
                             "assembly (a library cell or a path relative to the campaign file); default: the "
                             "sample's")
    instrument: Literal["neware", "biologic"] | None = Field(None, description="run on a channel of this kind")
    channel: str | None = Field(None, min_length=1, description="run on this channel (NAME/ID of station.yaml)")
    temperature: TemperatureBody | None = Field(None, description="the chamber temperature the station sets, and "
                                                "waits to be stable at, before the stage: '45 degC' or {set: 45 degC, "
                                                "band: 0.5 degC, stable_for: 1 h, max_wait: 4 h}")
    go_on_if: GoOnIf = Field(default_factory=GoOnIf)
    chunks: Chunks | None = None
    rpt: RptDoc | None = None
    until: Until | None = None


class CampaignDoc(_Strict):
    campaign: str = Field(min_length=1, description="the campaign's name")
    description: str | None = None
    stages: list[StageDoc] = Field(min_length=1, max_length=MAX_STAGES)


# -- the plan: what the station stores and carries out -------------------------------------------------------------

class ProtocolRef(BaseModel):
    """A protocol as the campaign was validated with it: its name, file and text."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    file: str
    text: str

    def load(self, overrides: dict[str, str] | None = None) -> LoadedProtocol:
        return load_protocol_text(self.text, self.file, overrides)


class RptPlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    protocol: ProtocolRef
    set: dict[str, str] = Field(default_factory=dict)


class StagePlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    protocol: ProtocolRef
    set: dict[str, str] = Field(default_factory=dict)
    cell: dict[str, Any] | None = None
    """The stage's own cell record (SI, as :class:`~protocols.cells.Cell` dumps it); ``None``: the sample's."""
    instrument: Literal["neware", "biologic"] | None = None
    channel: str | None = None
    temperature: TemperatureStep | None = None
    """What the station does with the chamber before the stage's first run, as a temperature step (index 1, the
    stage's own); ``None``: the chamber is left as it is."""
    go_on_if: GoOnIf = GoOnIf()
    chunks: Chunks | None = None
    rpt: RptPlan | None = None
    until: Until | None = None

    def stage_cell(self, sample_cell: Cell) -> Cell:
        return Cell.model_validate(self.cell) if self.cell is not None else sample_cell

    def where(self) -> str:
        """The stage's instrument as written: 'channel bts/21-1-1', 'a neware channel' or 'any channel'."""
        if self.channel:
            return f"channel {self.channel}"
        return f"a {self.instrument} channel" if self.instrument else "any channel"


class CampaignPlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    description: str | None = None
    stages: tuple[StagePlan, ...]

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> CampaignPlan:
        return cls.model_validate_json(text)


@dataclass(frozen=True)
class LoadedCampaign:
    doc: CampaignDoc
    source: SourceDoc
    plan: CampaignPlan

    @property
    def name(self) -> str:
        return self.doc.campaign


# -- loading and checking -------------------------------------------------------------------------------------------

def load_campaign(path: str, cell: Cell | None) -> LoadedCampaign:
    """A campaign from a file path or a library campaign name, checked against ``cell`` (the sample's cell; with
    ``None`` only what needs no cell is checked). Raises :class:`ProtocolError` listing every problem."""
    from protocols.library import resolve_campaign_path

    resolved = resolve_campaign_path(path)
    return parse_campaign(load_yaml_file(resolved), cell, base_dir=Path(resolved).resolve().parent)


def load_campaign_text(text: str, file: str = "<campaign>", cell: Cell | None = None, *,
                       base_dir: str | Path | None = None) -> LoadedCampaign:
    """A campaign from text; relative protocol paths are read from ``base_dir`` (default: the current folder)."""
    return parse_campaign(load_yaml(text, file), cell, base_dir=Path(base_dir) if base_dir else Path.cwd())


def parse_campaign(source: SourceDoc, cell: Cell | None, *, base_dir: Path) -> LoadedCampaign:
    if not isinstance(source.data, dict):
        raise ProtocolError([source.problem((), "a campaign file is a mapping with 'campaign:' and 'stages:'",
                                            expected="'campaign: name' and a list of 'stages'",
                                            found=type(source.data).__name__)])
    checker = _Checker(source, cell, base_dir)
    try:
        doc = CampaignDoc.model_validate(source.data)
    except ValidationError as exc:
        problems = pydantic_problems(exc, source, CampaignDoc)
        stages = source.data.get("stages")
        if isinstance(stages, list):  # the stages that are valid on their own are checked all the same
            adapter = TypeAdapter(StageDoc)
            for i, raw in enumerate(stages[:MAX_STAGES]):
                try:
                    checker.stage(i, adapter.validate_python(raw))
                except ValidationError:
                    continue
        raise ProtocolError(problems + checker.problems) from None
    plans = [checker.stage(i, stage) for i, stage in enumerate(doc.stages)]
    checker.names(doc.stages)
    if checker.problems:
        raise ProtocolError(checker.problems)
    plan = CampaignPlan(name=doc.campaign, description=doc.description,
                        stages=tuple(p for p in plans if p is not None))
    return LoadedCampaign(doc=doc, source=source, plan=plan)


@dataclass
class _Checker:
    source: SourceDoc
    cell: Cell | None
    base_dir: Path
    problems: list[Problem] = field(default_factory=list)
    _protocols: dict[str, LoadedProtocol | ProtocolError] = field(default_factory=dict)

    def problem(self, path: DocPath, message: str, *, expected: str | None = None, found: str | None = None,
                key: bool = False) -> None:
        self.problems.append(self.source.problem(path, message, expected=expected, found=found, key=key))

    def names(self, stages: list[StageDoc]) -> None:
        first: dict[str, int] = {}
        for i, stage in enumerate(stages):
            if stage.name in first:
                self.problem(("stages", i, "name"), f"stage name '{stage.name}' is used twice",
                             expected="a name no other stage has", found=f"also stages[{first[stage.name]}].name")
            first.setdefault(stage.name, i)

    def stage(self, i: int, stage: StageDoc) -> StagePlan | None:
        at: DocPath = ("stages", i)
        before = len(self.problems)
        if stage.instrument and stage.channel:
            self.problem((*at, "channel"), "give the instrument kind or a channel, not both",
                         expected="instrument: neware|biologic, or channel: NAME/ID", found="both")
        if stage.chunks and not stage.until:
            self.problem((*at, "chunks"), "a stage in chunks needs 'until:' (when cycling stops), or it never ends",
                         expected="until: {retention: '< 80 % of cycle 1', cycles: 500}", found="no until")
        if stage.until and not stage.chunks:
            self.problem((*at, "until"), "'until:' is checked between chunks; this stage runs its protocol once",
                         expected="chunks: {cycles: N} with until, or go_on_if for a single run", found="no chunks")
        if stage.rpt and not stage.chunks:
            self.problem((*at, "rpt"), "an RPT runs between chunks of cycling; this stage runs its protocol once",
                         expected="chunks: {cycles: N} (the RPT runs every N cycles)", found="no chunks")
        if stage.until and stage.until.ce is not None and stage.until.ce.cycle is not None:
            self.problem((*at, "until", "ce"), "'until' checks the CE of the last cycle of each chunk",
                         expected="a comparison without 'in cycle N', such as '< 99 %'",
                         found=repr(stage.until.ce.text))
        if stage.until is not None and all(getattr(stage.until, k) is None for k in ("retention", "ce", "cycles")):
            self.problem((*at, "until"), "'until' names no condition", expected="retention, ce or cycles",
                         found="{}")
        cell = self.cell
        cell_record: dict[str, Any] | None = None
        if stage.cell is not None:
            cell = self._cell((*at, "cell"), stage.cell)
            cell_record = cell.model_dump(mode="json") if cell is not None else None
        overrides = dict(_texts(stage.set_))
        if stage.chunks is not None:
            overrides.update(self._chunk_parameter(at, stage))
        protocol = self._protocol((*at, "protocol"), (*at, "set"), stage.protocol, overrides, cell,
                                  skip_cell=stage.cell is not None and cell is None)
        temperature = None
        if stage.temperature is not None:
            temperature = self._temperature((*at, "temperature"), stage.temperature, stage.protocol, overrides, cell)
        rpt = None
        if stage.rpt is not None:
            rpt_protocol = self._protocol((*at, "rpt", "protocol"), (*at, "rpt", "set"), stage.rpt.protocol,
                                          dict(_texts(stage.rpt.set_)), cell,
                                          skip_cell=stage.cell is not None and cell is None)
            if rpt_protocol is not None:
                rpt = RptPlan(protocol=rpt_protocol, set=dict(_texts(stage.rpt.set_)))
        if len(self.problems) > before or protocol is None:
            return None
        return StagePlan(name=stage.name, protocol=protocol, set=dict(_texts(stage.set_)), cell=cell_record,
                         instrument=stage.instrument, channel=stage.channel, temperature=temperature,
                         go_on_if=stage.go_on_if, chunks=stage.chunks, rpt=rpt, until=stage.until)

    def _temperature(self, path: DocPath, body: TemperatureBody, name: str, overrides: dict[str, str],
                     cell: Cell | None) -> TemperatureStep | None:
        """The stage's chamber set point as a temperature step, held to the rules of one in a protocol: within the
        stage protocol's whole-run temperature limit and the cell's."""
        loaded = self._load(name, overrides)
        limit = None
        if isinstance(loaded, LoadedProtocol) and loaded.doc.safety.temperature is not None:
            limit = loaded.doc.safety.temperature.value
        if cell is not None and cell.temperature_max is not None:
            limit = cell.temperature_max if limit is None else min(limit, cell.temperature_max)
        b = Binding(source=self.source, cell=cell, safety=SafetyLimits(temperature_max=limit))
        line, column = self.source.locate(path)
        common = StepCommon(index=1, record=RecordRule(), tag=None, label=None, source=SourceLocation(
            file=self.source.file, line=line, column=column, path=format_path(path)))
        step = temperature_step(b, body, path, common)
        self.problems.extend(b.problems)
        return step

    def _chunk_parameter(self, at: DocPath, stage: StageDoc) -> dict[str, str]:
        """The chunk size as an override of the protocol's cycle-count parameter, if the protocol has one that
        sets a repeat count; a positioned problem otherwise."""
        assert stage.chunks is not None
        name = stage.chunks.parameter
        where = (*at, "chunks", "parameter") if "parameter" in stage.chunks.model_fields_set else (*at, "chunks")
        loaded = self._load(stage.protocol)
        if not isinstance(loaded, LoadedProtocol):
            return {}  # the protocol itself is reported where it is named
        declared = loaded.parameters
        if name not in declared:
            self.problem(where, f"protocol '{loaded.name}' has no parameter '{name}' to run it in chunks of "
                         f"{stage.chunks.cycles} cycles{did_you_mean(name, declared)}",
                         expected="a parameter that sets a repeat count (repeat: ${" + name + "}), named with "
                         "chunks.parameter", found="parameters: " + (name_list(sorted(declared)) or "none"))
            return {}
        if not isinstance(declared[name].value, int) or not _sets_a_repeat(loaded.source.data, name):
            self.problem(where, f"parameter '{name}' of protocol '{loaded.name}' is not a repeat count, so it cannot "
                         f"run the protocol {stage.chunks.cycles} cycles at a time",
                         expected="a whole-number parameter used as 'repeat: ${" + name + "}'",
                         found=f"{name}: {declared[name].value!r}")
            return {}
        if name in stage.set_:
            self.problem((*at, "set", name), f"'{name}' is the chunk size here (chunks.cycles: "
                         f"{stage.chunks.cycles}); it cannot also be set", expected=f"no '{name}' under set",
                         found=f"{name}: {stage.set_[name]!r}", key=True)
            return {}
        return {name: str(stage.chunks.cycles)}

    def _resolve(self, name: str, folder: str) -> Path | None:
        path = Path(name)
        if path.suffix in (".yaml", ".yml") or "/" in name or "\\" in name:
            candidate = path if path.is_absolute() else self.base_dir / path
            return candidate if candidate.is_file() else None
        from protocols.library import CELLS, LIBRARY

        for candidate in ((LIBRARY if folder == "protocol" else CELLS) / f"{name}.yaml",
                          self.base_dir / f"{name}.yaml"):
            if candidate.is_file():
                return candidate
        return None

    def _not_found(self, path: DocPath, name: str, kind: str) -> None:
        from protocols.library import cell_names, protocol_names

        names = protocol_names() if kind == "protocol" else cell_names()
        self.problem(path, f"{kind} '{name}' not found{did_you_mean(name, names)}",
                     expected=f"a library {kind} name (station library) or a YAML file relative to the campaign "
                     f"file ({self.base_dir})", found=repr(name))

    def _load(self, name: str, overrides: dict[str, str] | None = None) -> LoadedProtocol | ProtocolError | None:
        path = self._resolve(name, "protocol")
        if path is None:
            return None
        key = f"{path}\0{sorted((overrides or {}).items())}"
        if key not in self._protocols:
            try:
                text = load_yaml_file(path).text
                self._protocols[key] = load_protocol_text(text, str(path), overrides)
            except ProtocolError as exc:
                self._protocols[key] = exc
        return self._protocols[key]

    def _cell(self, path: DocPath, name: str) -> Cell | None:
        resolved = self._resolve(name, "cell")
        if resolved is None:
            self._not_found(path, name, "cell")
            return None
        try:
            return load_cell(str(resolved))
        except ProtocolError as exc:
            for inner in exc.problems:
                self._inner(path, f"cell '{name}'", inner)
            return None

    def _inner(self, path: DocPath, what: str, inner: Problem) -> None:
        """A problem inside a protocol or cell file, reported where the campaign names it."""
        self.problem(path, f"{what}: {inner.path}: {inner.message} ({inner.file}:{inner.line}:{inner.column})",
                     expected=inner.expected, found=inner.found)

    def _protocol(self, path: DocPath, set_path: DocPath, name: str, overrides: dict[str, str], cell: Cell | None,
                  *, skip_cell: bool) -> ProtocolRef | None:
        plain = self._load(name)
        if plain is None:
            self._not_found(path, name, "protocol")
            return None
        if isinstance(plain, ProtocolError):
            for inner in plain.problems:
                self._inner(path, f"protocol '{name}'", inner)
            return None
        declared = plain.parameters
        unknown = [k for k in overrides if k not in declared]
        for key in unknown:
            self.problem((*set_path, key), f"'{key}' is not a parameter of protocol '{plain.name}'"
                         f"{did_you_mean(key, declared)}", expected="one of " + (name_list(sorted(declared))
                                                                                  or "(none declared)"),
                         found=f"'{key}'", key=True)
        if unknown:
            return None
        loaded = self._load(name, overrides)
        assert loaded is not None
        if isinstance(loaded, ProtocolError):
            for inner in loaded.problems:
                parameter = inner.path.removeprefix("parameters.")
                if inner.path.startswith("parameters.") and parameter in overrides:
                    where = (*set_path, parameter) if parameter in _set_keys(self.source, set_path) else path
                    self.problem(where, inner.message.replace("--set ", "set: ", 1), expected=inner.expected,
                                 found=inner.found)
                else:
                    self._inner(path, f"protocol '{name}'", inner)
            return None
        if cell is not None and not skip_cell:
            try:
                loaded.bind(cell)
            except ProtocolError as exc:
                given = _set_keys(self.source, set_path)
                for inner in exc.problems:
                    cause = _FROM_PARAMETER.search(inner.found or "")
                    where = (*set_path, cause[1]) if cause and cause[1] in given else path  # the value to change
                    self._inner(where, f"protocol '{loaded.name}' on cell '{cell.name}'", inner)
                return None
        return ProtocolRef(name=loaded.name, file=loaded.source.file, text=loaded.source.text)


_FROM_PARAMETER = re.compile(r"\(from parameter '([^']+)'\)")


def _texts(values: dict[str, Any]) -> list[tuple[str, str]]:
    """``set:`` values as the text ``--set`` would give them."""
    return [(k, v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v)) for k, v in values.items()]


def _set_keys(source: SourceDoc, set_path: DocPath) -> set[str]:
    node: Any = source.data
    for part in set_path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return set()
    return set(node) if isinstance(node, dict) else set()


def _sets_a_repeat(data: Any, name: str) -> bool:
    """Whether a protocol's steps use ``${name}`` as a repeat count (anywhere, nested repeats included)."""
    reference = re.compile(r"^\s*\$\{\s*" + re.escape(name) + r"\s*\}\s*$")
    stack = [data.get("steps")] if isinstance(data, dict) else []
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if isinstance(node.get("repeat"), str) and reference.match(node["repeat"]):
                return True
            stack.extend(node.values())
    return False
