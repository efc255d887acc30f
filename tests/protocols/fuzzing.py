"""The fuzz oracle and the mutation operators shared by tests/protocols/test_fuzz.py and benchmarks/fuzz_protocols.py.

The contract under test (issue 9, item 6): every protocol or cell file, however malformed, ends in a positioned
:class:`ProtocolError` (``FILE:LINE:COL: path: ...``) or in a valid plan; a valid plan binds, estimates, renders as
the plan document and goes through both compilers' checks, which may only refuse with a ``CapabilityError``. Any
other exception is a bug. Mutations take a ``random.Random`` so the same code serves hypothesis (which hands out
seeded ``Random`` objects) and the standalone campaign (one seeded ``Random`` per case, reproducible by seed).
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from drivers.base import CapabilityError, ChannelRanges
from drivers.biologic.compiler import ChannelCapabilities
from drivers.biologic.compiler import compile_program as compile_biologic
from drivers.neware.stepfile import check_program as check_neware
from drivers.neware.stepfile import compile_program as compile_neware
from protocols.cells import Cell, load_cell_text
from protocols.errors import ProtocolError
from protocols.estimate import estimate_program
from protocols.loader import load_protocol_text
from protocols.program import (
    Action,
    CaStep,
    Comparison,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    LoopStep,
    LsvStep,
    PowerStep,
    Quantity,
    RecordRule,
    RestStep,
    SafetyLimits,
    StepProgram,
    Termination,
)
from station.plan import plan_document

LIBRARY = Path(__file__).resolve().parents[2] / "protocols" / "library"
PROTOCOL_FILES = sorted(LIBRARY.glob("*.yaml"))
CELL_FILES = sorted((LIBRARY / "cells").glob("*.yaml"))

NEWARE_RANGES = ChannelRanges(voltage_min=-5.0, voltage_max=5.0, current_max=0.1, current_min_resolution=1e-7)
BIOLOGIC_CAPS = ChannelCapabilities(ranges=ChannelRanges(voltage_min=-10.0, voltage_max=10.0, current_max=0.4))

_POSITIONED = re.compile(r"^.+:\d+:\d+: \S.*: \S.*$")


class FuzzFailure(AssertionError):
    """The contract was broken: an unexpected exception or an error that does not say where."""


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str  # "error" (positioned ProtocolError) or "plan" (a program that estimated and went through checks)
    detail: str = ""


def _check_positioned(exc: ProtocolError, what: str) -> None:
    if not exc.problems:
        raise FuzzFailure(f"{what}: a ProtocolError without problems")
    for line in str(exc).splitlines():
        if not _POSITIONED.match(line):
            raise FuzzFailure(f"{what}: an error line without FILE:LINE:COL: path: {line!r}")


_NAMES_A_STEP = re.compile(r"\bstep\b|\bsafety\b")


def check_compilers(program: StepProgram) -> list[str]:
    """Both compilers' check and compile on ``program``: each succeeds or refuses with a ``CapabilityError`` whose
    every problem names the step (or the safety limit) it is about. Returns the refusals, for statistics."""
    refusals = []
    for name, run in (("neware check", lambda: check_neware(program, NEWARE_RANGES)),
                      ("neware compile", lambda: compile_neware(program, NEWARE_RANGES)),
                      ("biologic compile", lambda: compile_biologic(program, BIOLOGIC_CAPS))):
        try:
            run()
        except CapabilityError as exc:
            if not exc.problems:
                raise FuzzFailure(f"{name}: a CapabilityError without problems") from None
            for problem in exc.problems:
                if not isinstance(problem, str) or not _NAMES_A_STEP.search(problem):
                    raise FuzzFailure(f"{name}: a refusal that names no step: {problem!r}") from None
            refusals.append(name)
    return refusals


def check_case(protocol_text: str, cell_text: str) -> Outcome:
    """Run one case through the whole front end; raise :class:`FuzzFailure` (or let a bug's exception out)."""
    cell: Cell | None = None
    try:
        cell = load_cell_text(cell_text, "cell.yaml")
    except ProtocolError as exc:
        _check_positioned(exc, "cell")
    try:
        loaded = load_protocol_text(protocol_text, "protocol.yaml")
        program = loaded.bind(cell)
    except ProtocolError as exc:
        _check_positioned(exc, "protocol")
        return Outcome("error", str(exc).splitlines()[0])
    if program is None:
        return Outcome("error", "valid without a cell")
    assert cell is not None
    estimate = estimate_program(program, cell)
    document = plan_document(program, cell, estimate)
    json.dumps(document, allow_nan=False)
    if StepProgram.from_json(program.to_json()) != program:
        raise FuzzFailure("the step program does not round-trip through JSON")
    check_compilers(program)
    return Outcome("plan", f"{len(program.steps)} steps, {estimate.total_s:.6g} s")


# -- mutations -------------------------------------------------------------------------------------------------

BAD_NUMBERS = ("0", "-1", "-0.5", "1e308", "1e-320", "nan", ".nan", ".inf", "-.inf", "inf", "1e400",
               "99999999999999999999999999", "9" * 400, "1" + "0" * 5000, "2147483648", "4294967296", "65536",
               "1000000000", "0.0", "-0", "1_000", "0x10", "1e9", "3.5", "-2147483649")
UNITS = ("mA", "A", "uA", "V", "mV", "h", "s", "min", "mAh", "Ah", "Hz", "kHz", "mHz", "mV/s", "C", "mA/cm^2",
         "mAh/cm^2", "mA/g", "mAh/g", "degC", "K", "W", "mW", "Wh", "mWh", "um", "mm", "mg", "cm^2", "ohm", "",
         "parsec", "mA/cm2", "°C", "C/10")
EXPRESSIONS = ("9**9**9 mA", "(10**10)**10**10 V", "2^2^2^2^2^2 s", "10**400 mAh", "1e308*1e308 h",
               "((((9**9)**9)**9)**9)**9 Hz", "0/0 V", "-(1) mA", "1/0 s", "mA**99999999", "9" * 5000 + " V",
               "${cycles}${cycles}", "${", "${x", "$" + "{a}" * 50, "1 mA" * 200)
BOMB = ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
        "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n")

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")
_UNIT = re.compile(r"(?<=\d)\s?(?:mAh/cm\^2|mA/cm\^2|mAh/g|mA/g|mV/s|kHz|mHz|mAh|mWh|degC|mA|mV|uA|mW|Hz|Ah|Wh|"
                   r"min|mm|um|mg|h|s|V|A|C|W)\b")


def _lines(text: str) -> list[str]:
    return text.split("\n")


def delete_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    del lines[rng.randrange(len(lines))]
    return "\n".join(lines)


def duplicate_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines.insert(i, lines[i])
    return "\n".join(lines)


def swap_lines(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def change_number(rng: random.Random, text: str) -> str:
    spots = list(_NUMBER.finditer(text))
    if not spots:
        return text
    spot = rng.choice(spots)
    return text[:spot.start()] + rng.choice(BAD_NUMBERS) + text[spot.end():]


def swap_unit(rng: random.Random, text: str) -> str:
    spots = list(_UNIT.finditer(text))
    if not spots:
        return text
    spot = rng.choice(spots)
    return text[:spot.start()] + " " + rng.choice(UNITS) + text[spot.end():]


def insert_expression(rng: random.Random, text: str) -> str:
    """Replace a whole scalar after a colon with a slow or hostile expression."""
    spots = list(re.finditer(r"(?<=: )[^\s{}\[\],#][^,}\]\n#]*", text))
    if not spots:
        return text
    spot = rng.choice(spots)
    return text[:spot.start()] + repr(rng.choice(EXPRESSIONS)) + text[spot.end():]


def insert_alias(rng: random.Random, text: str) -> str:
    """An anchor on one value and aliases to it elsewhere, a recursive alias, or a billion-laughs header."""
    choice = rng.randrange(4)
    if choice == 0:
        return BOMB + text
    if choice == 1:
        return "loop: &loop [*loop]\n" + text
    if choice == 2:
        return text.replace("steps:", "steps: &s", 1).replace("    steps:", "    steps: *s", 1)
    spots = list(re.finditer(r"(?<=: )[^\s&*][^\n#]*", text))
    if len(spots) < 2:
        return text
    first, second = sorted(rng.sample(spots, 2), key=lambda m: m.start())
    return (text[:first.start()] + "&x " + text[first.start():second.start()] + "*x"
            + text[second.end():])


def deepen(rng: random.Random, text: str) -> str:
    depth = rng.choice((50, 200, 1000, 20000))
    spots = list(re.finditer(r"(?<=: )[^\n#]+", text))
    nested = "[" * depth + "1" + "]" * depth if rng.random() < 0.5 else "{a: " * depth + "1" + "}" * depth
    if not spots:
        return nested + "\n" + text
    spot = rng.choice(spots)
    return text[:spot.start()] + nested + text[spot.end():]


def lengthen(rng: random.Random, text: str) -> str:
    """Very long files: many copies of the steps, or a long scalar, or padding (never past ~3 MB in all)."""
    if len(text) > 1_000_000:
        return text
    choice = rng.randrange(3)
    if choice == 0 and "steps:" in text:
        head, _, steps = text.partition("steps:")
        return head + "steps:" + steps * min(rng.choice((10, 100, 2000)), 3_000_000 // max(len(steps), 1))
    if choice == 1:
        return text.replace("protocol: ", "protocol: " + "x" * rng.choice((10_000, 2_000_000)), 1)
    return text + "\n#" + " " * rng.choice((1000, 2_000_000))


def lengthen_lightly(rng: random.Random, text: str) -> str:
    """As :func:`lengthen`, without the files that take seconds to refuse (kept for the campaign)."""
    choice = rng.randrange(3)
    if choice == 0 and "steps:" in text:
        head, _, steps = text.partition("steps:")
        return head + "steps:" + steps * rng.choice((10, 40))
    if choice == 1:
        return text.replace("protocol: ", "protocol: " + "x" * rng.choice((10_000, 2_000_000)), 1)
    return text + "\n#" + " " * rng.choice((1000, 2_000_000))


def huge_repeat(rng: random.Random, text: str) -> str:
    count = rng.choice(("1000000000", "2147483647", "2147483648", "65535", "65536", "99999999999999999999",
                        "1e9", "1.0e9", "${cycles}"))
    if "repeat:" in text:
        return re.sub(r"repeat: \S+", f"repeat: {count}", text, count=1)
    return text.replace("steps:", f"steps:\n  - repeat: {count}\n    steps: [Rest for 1 s]", 1)


def noise(rng: random.Random, text: str) -> str:
    """Random bytes of YAML punctuation, tabs, truncation or a changed indentation."""
    choice = rng.randrange(4)
    if choice == 0:
        return text[:rng.randrange(len(text) + 1)]
    i = rng.randrange(len(text) + 1)
    if choice == 1:
        junk = "".join(rng.choice(":-[]{}&*!|>'\"%@`#,?\t \n") for _ in range(rng.randrange(1, 6)))
        return text[:i] + junk + text[i:]
    lines = _lines(text)
    j = rng.randrange(len(lines))
    lines[j] = (" " * rng.randrange(5)) + lines[j].lstrip() if choice == 2 else lines[j].replace(":", "", 1)
    return "\n".join(lines)


_COMMON = (delete_line, duplicate_line, swap_lines, change_number, change_number, swap_unit, insert_expression,
           insert_alias, deepen, huge_repeat, noise)
#: every mutation, as the standalone campaign uses them
MUTATIONS: tuple[Callable[[random.Random, str], str], ...] = (*_COMMON, lengthen)
#: the same without multi-second giant files, for the unit-test suite's time budget
LIGHT_MUTATIONS: tuple[Callable[[random.Random, str], str], ...] = (*_COMMON, lengthen_lightly)


def mutate(rng: random.Random, text: str, rounds: int | None = None, *, heavy: bool = True) -> str:
    operators = MUTATIONS if heavy else LIGHT_MUTATIONS
    for _ in range(rounds if rounds is not None else rng.randint(1, 3)):
        text = rng.choice(operators)(rng, text)
    return text


def library_case(rng: random.Random, *, heavy: bool = True) -> tuple[str, str]:
    """A (protocol, cell) text pair: a library protocol and cell, one or both mutated."""
    from protocols.library import PAIRS

    protocol_file = rng.choice(PROTOCOL_FILES)
    paired = PAIRS.get(protocol_file.stem)
    cell_file = LIBRARY / "cells" / f"{paired}.yaml" if paired and rng.random() < 0.7 else rng.choice(CELL_FILES)
    protocol, cell = protocol_file.read_text(encoding="utf-8"), cell_file.read_text(encoding="utf-8")
    target = rng.random()
    if target < 0.7:
        protocol = mutate(rng, protocol, heavy=heavy)
    elif target < 0.9:
        cell = mutate(rng, cell, heavy=heavy)
    else:
        protocol, cell = mutate(rng, protocol, heavy=heavy), mutate(rng, cell, heavy=heavy)
    return protocol, cell


# -- the grammar as hypothesis strategies --------------------------------------------------------------------------
# Values are drawn mostly well-formed (so that many documents get through validation and exercise binding,
# estimates and both compilers) with hostile ones mixed in at every place a value can stand.

_GOOD_NUMBERS = ("0.1", "0.5", "1", "2", "3.0", "4.2", "10", "100", "0.01", "2.5", "1e-3", "25")
_HOSTILE_NUMBERS = ("0", "-1", "-0.5", "1e308", "1e-320", "nan", "inf", "-inf", "1e15", "1e16",
                    "99999999999999999999", "2147483648", "1e-300")
_KIND_UNITS = {
    "voltage": ("V", "mV", "uV", "kV"),
    "current": ("mA", "uA", "A", "nA", "mA/cm^2", "mA/cm2", "uA/cm^2", "mA/g", "A/kg"),
    "capacity": ("mAh", "uAh", "Ah", "mAh/cm^2", "mAh/g", "C"),
    "time": ("s", "min", "h", "ms", "day"),
    "frequency": ("Hz", "kHz", "mHz", "MHz", "uHz"),
    "power": ("mW", "W", "uW"),
    "energy": ("mWh", "Wh", "J"),
    "scan_rate": ("mV/s", "V/s", "uV/s", "mV/h"),
    "temperature": ("degC", "K", "°C"),
    "length": ("mm", "um", "cm", "m"),
    "area": ("cm^2", "mm^2", "m^2", "cm2"),
    "mass": ("mg", "g", "ug", "kg"),
    "specific_capacity": ("mAh/g", "Ah/kg"),
}
_ALL_UNITS = tuple(sorted({u for units in _KIND_UNITS.values() for u in units}))


def _pick(values: tuple[str, ...]) -> st.SearchStrategy[str]:
    """``sampled_from`` by index: hypothesis would otherwise render the 5000-character values in reprs."""
    return st.integers(0, len(values) - 1).map(values.__getitem__)


def _number() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(_GOOD_NUMBERS), st.sampled_from(_GOOD_NUMBERS), st.sampled_from(_HOSTILE_NUMBERS),
                     st.floats(allow_nan=True, allow_infinity=True).map(repr),
                     st.integers(-(10**30), 10**30).map(str))


@functools.cache
def quantity(kind: str) -> st.SearchStrategy[Any]:
    """Text for a quantity of ``kind``: right unit mostly, a wrong unit, a bare number, a C-rate, an expression,
    a parameter reference, or something that is not text at all."""
    right = st.builds(lambda n, u: f"{n} {u}", _number(), st.sampled_from(_KIND_UNITS[kind]))
    return st.one_of(
        right, right, right,
        st.builds(lambda n, u: f"{n} {u}", _number(), st.sampled_from(_ALL_UNITS)),
        st.sampled_from(("0.1C", "C/10", "2C", "C/0", "0C", "-C/5", "1e9C")),
        _pick(EXPRESSIONS),
        st.sampled_from(("${i}", "${v}", "${n}", "${missing}", "${", "< ${v}")),
        st.one_of(st.integers(-5, 10**20), st.floats(), st.booleans(), st.none(), st.text(max_size=8)),
    )


def _voltage_limit() -> st.SearchStrategy[Any]:
    return st.one_of(quantity("voltage"),
                     st.builds(lambda op, v: f"{op} {v}", st.sampled_from(("<", ">", "<=", ">=")), quantity("voltage")))


def _limit_fields() -> dict[str, st.SearchStrategy[Any]]:
    return {"voltage": _voltage_limit(), "current": quantity("current"), "capacity": quantity("capacity"),
            "energy": quantity("energy"), "time": quantity("time"), "dvdt": quantity("scan_rate")}


@functools.cache
def _limits() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=_limit_fields())


@functools.cache
def _until() -> st.SearchStrategy[Any]:
    # conditional jumps: 'then' names a step id the grammar gives ('a', 'b'), one it does not, 'next' or 'end'
    entry = st.fixed_dictionaries({}, optional={**_limit_fields(),
                                                "then": st.sampled_from(("next", "end", "a", "b", "nowhere"))})
    return st.one_of(_limits(), _limits(), st.lists(entry, max_size=3), st.sampled_from(("4.2 V", 3, None)))


@functools.cache
def _record() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={"every": quantity("time"), "voltage_change": quantity("voltage"),
                                              "current_change": quantity("current")})


def _body(optional: dict[str, st.SearchStrategy[Any]] | None = None,
          **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(fields, optional={"until": _until(), "record": _record(),
                                                   "id": st.sampled_from(("a", "b")), **(optional or {})})


def _leaf_step() -> st.SearchStrategy[Any]:
    current_body = _body({"then_hold": st.fixed_dictionaries({"until": _limits()},
                                                             optional={"voltage": quantity("voltage")})},
                         current=quantity("current"))
    shorthand = st.builds(
        lambda verb, value, joint, condition: f"{verb}{value} {joint} {condition}",
        st.sampled_from(("Rest", "Charge", "Discharge", "Hold", "rest", "Dance")),
        st.one_of(st.just(""), st.builds(lambda q: f" at {q}", st.sampled_from(("C/10", "0.5 mA", "4.2 V", "5 mW",
                                                                                  "-1 mA", "2 mA/cm^2")))),
        st.sampled_from(("for", "until", "for 1 hour or until", "")),
        st.sampled_from(("1 hour", "4.2 V", "< 3 V", "> 3.5 V", "C/50", "2 mAh", "1 mV/h", "10 minutes",
                         "0 s", "-1 h", "1e308 h", "nan V")))
    return st.one_of(
        st.fixed_dictionaries({"rest": st.one_of(quantity("time"), _body())}),
        st.fixed_dictionaries({"charge": current_body}),
        st.fixed_dictionaries({"discharge": current_body}),
        st.fixed_dictionaries({"hold": _body({"direction": st.sampled_from(("charge", "discharge", "up", None)),
                                              "current_limit": quantity("current")}, voltage=quantity("voltage"))}),
        st.fixed_dictionaries({"power": _body(power=quantity("power"),
                                              direction=st.sampled_from(("charge", "discharge", "up")))}),
        st.fixed_dictionaries({"ca": _body(voltage=quantity("voltage"), vs=st.sampled_from(("reference", "ocv")))}),
        st.fixed_dictionaries({"eis": st.fixed_dictionaries(
            {"from": quantity("frequency"), "to": quantity("frequency"),
             "amplitude": st.one_of(quantity("voltage"), quantity("current"))},
            optional={"mode": st.sampled_from(("potentio", "galvano", "x")),
                      "points_per_decade": st.one_of(st.integers(-1, 120), st.just(10**12)),
                      "measures_per_point": st.integers(0, 120),
                      "bias": st.one_of(st.just("ocv"), quantity("voltage"), quantity("current"))})}),
        st.fixed_dictionaries({"cv": st.fixed_dictionaries(
            {"scan_rate": quantity("scan_rate"), "vertices": st.lists(quantity("voltage"), min_size=1, max_size=3)},
            optional={"cycles": st.one_of(st.integers(-1, 5), st.sampled_from((2**31 - 1, 2**31, 10**30))),
                      "start": st.one_of(st.just("ocv"), quantity("voltage")),
                      "end": st.one_of(st.just("ocv"), quantity("voltage"))})}),
        st.fixed_dictionaries({"lsv": st.fixed_dictionaries(
            {"scan_rate": quantity("scan_rate"), "to": quantity("voltage")},
            optional={"from": st.one_of(st.just("ocv"), quantity("voltage"))})}),
        shorthand, shorthand,
        st.one_of(st.integers(), st.none(), st.just({}), st.just({"rest": "1 h", "charge": {}})),
    )


_COUNTS = st.one_of(st.integers(-1, 5), st.integers(1, 3), st.sampled_from(
    (2**31 - 1, 2**31, 65535, 65536, 10**9, 10**30, "1e9", "2.5", 2.0, 1.0e9, True, "${n}")))


@functools.cache
def step_strategy() -> st.SearchStrategy[Any]:
    return st.recursive(_leaf_step(), lambda inner: st.fixed_dictionaries(
        {"repeat": _COUNTS, "steps": st.lists(inner, min_size=0, max_size=4)},
        optional={"tag": st.sampled_from(("formation", "cycling", ""))}), max_leaves=12)


@functools.cache
def protocol_documents() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"protocol": st.sampled_from(("fuzz", "", "p\x01", "ünïcode")),
         "steps": st.lists(step_strategy(), min_size=0, max_size=6)},
        optional={
            "description": st.text(max_size=20),
            "parameters": st.fixed_dictionaries({}, optional={
                "i": st.one_of(quantity("current"), st.fixed_dictionaries({"default": quantity("current")})),
                "v": quantity("voltage"), "n": _COUNTS}),
            "requires": st.lists(st.sampled_from(("area", "capacity", "active_mass", "thickness", "colour")),
                                 max_size=3),
            "safety": st.fixed_dictionaries({}, optional={
                "voltage": st.lists(quantity("voltage"), min_size=1, max_size=3), "current": quantity("current"),
                "temperature": quantity("temperature"), "capacity": quantity("capacity"),
                "step_duration": quantity("time"), "duration": quantity("time")}),
            "record": _record(),
        })


# -- branching protocols: mostly well-formed, so that conditional jumps and hold directions reach the compilers -------

_IDS = ("a", "b", "c")
_THEN = st.sampled_from(("next", "end", *_IDS, *_IDS))


def _branching_leaf() -> st.SearchStrategy[dict[str, Any]]:
    """One step of a plausible full-cell protocol whose ends may jump to an id, end the run, or go on."""
    ident = st.sampled_from((None, *_IDS, *_IDS))

    def step(kind: str, body: dict[str, Any], label: str | None) -> dict[str, Any]:
        return {kind: {**body, **({"id": label} if label else {})}}

    rest = st.builds(lambda t, v, then, label: step("rest", {"until": [{"time": f"{t} min"}, {
        "voltage": v, "then": then}]}, label), st.integers(1, 90), st.sampled_from(("< 3.5 V", "> 3.9 V")),
        _THEN, ident)
    current = st.builds(
        lambda kind, i, v, other, then, label: step(kind, {"current": i, "until": [
            {"voltage": v}, {**other, "then": then}]}, label),
        st.sampled_from(("charge", "discharge")), st.sampled_from(("0.5 mA", "0.2C", "1 mA")),
        st.sampled_from(("4.2 V", "3.0 V")), st.sampled_from(({"time": "2 h"}, {"capacity": "1 mAh"},
                                                             {"voltage": "3.5 V"})), _THEN, ident)
    hold = st.builds(
        lambda v, direction, limit, then, label: step("hold", {
            "voltage": v, **({"direction": direction} if direction else {}),
            **({"current_limit": limit} if limit else {}),
            "until": [{"current": "0.05 mA"}, {"time": "1 h", "then": then}]}, label),
        st.sampled_from(("3.6 V", "4.2 V", "3.0 V")), st.sampled_from((None, "charge", "discharge")),
        st.sampled_from((None, "1 mA", "0.1C")), _THEN, ident)
    return st.one_of(rest, current, current, hold)


@functools.cache
def branching_documents() -> st.SearchStrategy[dict[str, Any]]:
    steps = st.recursive(_branching_leaf(), lambda inner: st.fixed_dictionaries(
        {"repeat": st.integers(1, 3), "steps": st.lists(inner, min_size=1, max_size=3)}), max_leaves=6)
    return st.fixed_dictionaries({
        "protocol": st.just("branching"),
        "safety": st.sampled_from(({"voltage": ["2.5 V", "4.4 V"], "current": "5 mA"}, {"current": "5 mA"}, {})),
        "record": st.just({"every": "30 s"}),
        "steps": st.lists(steps, min_size=1, max_size=5),
    })


def cell_documents() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"name": st.sampled_from(("cell", "", "c\x00"))},
        optional={
            "diameter": quantity("length"), "area": quantity("area"), "capacity": quantity("capacity"),
            "active_mass": quantity("mass"), "specific_capacity": quantity("specific_capacity"),
            "thickness": quantity("length"), "ocv": quantity("voltage"), "temperature": quantity("temperature"),
            "limits": st.fixed_dictionaries({}, optional={
                "voltage": st.lists(quantity("voltage"), min_size=1, max_size=3), "current": quantity("current"),
                "temperature": quantity("temperature")}),
            "model": st.sampled_from(("li-host", {"type": "ncm622-li", "r": 1}, 5)),
            "metadata": st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5)),
                                        max_size=3),
        })


def as_yaml(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


#: cells the grammar's protocols are bound to: one of each kind of capacity, so C-rates and per-area values resolve
GOOD_CELLS = (
    "name: host\ndiameter: 12 mm\nthickness: 45 um\ncapacity: 0.5 mAh/cm^2\nocv: 2.8 V\n"
    "limits: {voltage: [-0.5 V, 3.5 V], current: 10 mA}\n",
    "name: ncm\ndiameter: 12 mm\nactive_mass: 12.9 mg\nspecific_capacity: 175 mAh/g\nocv: 3.0 V\n"
    "limits: {voltage: [2.5 V, 4.4 V], current: 10 mA}\n",
    "name: bare\ncapacity: 2 mAh\n",
)


# -- step programs built directly, for the compilers ---------------------------------------------------------------

_FINITE = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from((0.0, -0.0, 5e-324, 1e-300, 1e300, 1.7e308, -1.7e308, 1e15, 1e-9, 4.2, 3.0, 1e-3, -1e-3, 0.1)),
)
_POSITIVE = _FINITE.map(abs).filter(lambda x: x > 0)


def _terminations() -> st.SearchStrategy[list[Termination]]:
    return st.lists(st.builds(Termination, quantity=st.sampled_from(Quantity), op=st.sampled_from(Comparison),
                              value=_FINITE, then=st.sampled_from((Action.NEXT, Action.NEXT, Action.END))),
                    max_size=3)


def _program_step() -> st.SearchStrategy[Any]:
    record = st.builds(RecordRule, every_s=st.none() | _FINITE, voltage_change=st.none() | _FINITE,
                       current_change=st.none() | _FINITE)
    common = {"index": st.just(1), "until": _terminations(), "record": record}
    return st.one_of(
        st.builds(RestStep, **common),
        st.builds(lambda c, **kw: CurrentStep(kind="charge" if c > 0 else "discharge", current=c, **kw),
                  _FINITE.filter(lambda x: x != 0), hold_voltage=st.none() | _FINITE, **common),
        st.builds(HoldStep, voltage=_FINITE, current_limit=st.none() | _FINITE,
                  direction=st.sampled_from((None, "charge", "discharge")), **common),
        st.builds(PowerStep, power=_FINITE, **common),
        st.builds(CaStep, voltage=_FINITE, vs_ocv=st.booleans(), **common),
        st.builds(EisStep, index=st.just(1), mode=st.sampled_from(("potentio", "galvano")), f_start=_POSITIVE,
                  f_end=_POSITIVE, points_per_decade=st.integers(1, 100), amplitude=_POSITIVE, bias=_FINITE,
                  bias_vs_ocv=st.booleans(), measures_per_point=st.integers(1, 2**31 - 1), record=record),
        st.builds(CvStep, index=st.just(1), scan_rate=_POSITIVE, start=st.none() | _FINITE, vertex_1=_FINITE,
                  vertex_2=_FINITE, end=st.none() | _FINITE, cycles=st.integers(1, 2**31 - 1), record=record),
        st.builds(LsvStep, scan_rate=_POSITIVE, start=st.none() | _FINITE, end=_FINITE, **common),
    )


@st.composite
def step_programs(draw: st.DrawFn) -> StepProgram:
    """Any valid step program: extreme finite values, loops nested or overlapping, jumps and ends."""
    body = draw(st.lists(_program_step(), min_size=1, max_size=8))
    steps: list[Any] = []
    for step in body:
        steps.append(step.model_copy(update={"index": len(steps) + 1}))
        if len(steps) >= 1 and draw(st.integers(0, 3)) == 0:
            target = draw(st.integers(1, len(steps)))
            count = draw(st.one_of(st.integers(1, 4), st.sampled_from((65535, 65536, 10**9, 2**31 - 1))))
            steps.append(LoopStep(index=len(steps) + 1, target=target, count=count))
    if draw(st.booleans()):  # a jump to a real step from one termination
        position = draw(st.integers(0, len(steps) - 1))
        step = steps[position]
        if step.until:
            jump = step.until[0].model_copy(update={"then": Action.JUMP, "target": draw(st.integers(1, len(steps)))})
            steps[position] = step.model_copy(update={"until": (jump, *step.until[1:])})
    safety = draw(st.builds(SafetyLimits, voltage_min=st.none() | _FINITE, voltage_max=st.none() | _FINITE,
                            current_max=st.none() | _FINITE, capacity_max=st.none() | _FINITE,
                            temperature_max=st.none() | _FINITE, step_duration_max=st.none() | _FINITE,
                            run_duration_max=st.none() | _FINITE))
    record = draw(st.builds(RecordRule, every_s=st.none() | _FINITE))
    name = draw(st.sampled_from(("fuzz", "p\x01\x7f", "<&>\"'")))
    cell = {"nominal_capacity": draw(st.none() | _POSITIVE), "start_voltage": draw(st.none() | _FINITE)}
    # round trip through JSON so the program is exactly what the validators accept (model_copy skips them)
    return StepProgram.from_json(StepProgram(protocol=name, cell="c", safety=safety, record=record,
                                             steps=tuple(steps), **cell).to_json())
