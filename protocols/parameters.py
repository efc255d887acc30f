"""Protocol parameters: typed defaults, ``--set`` overrides, and ``${name}`` substitution.

A parameter's type is that of its default: a count, a plain number, or a quantity whose dimension an override must
keep (``--set current_density=2 mAh/cm^2`` is refused for a current density). Substitution happens on the YAML
tree before the models see it, so every error still points at the line that used the parameter, and says which
parameter the bad value came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from protocols.errors import Path, Problem, did_you_mean, name_list
from protocols.units import describe_dimension, parse_c_rate, to_quantity
from protocols.yamlsource import SourceDoc

_REFERENCE = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    value: Any
    description: str | None = None
    overridden: bool = False


def _dimension_signature(value: Any) -> str:
    """A comparable 'type' of a parameter value: int, number, c-rate, a pint dimensionality, or text."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    text = str(value)
    if parse_c_rate(text) is not None:
        return "C-rate"
    try:
        q = to_quantity(text)
    except ValueError:  # anything pint cannot (or must not) read is plain text
        return "text"
    if q.dimensionality:  # not ``q.dimensionless``: that converts to root units, which can overflow
        return describe_dimension(q)
    return "number"


def coerce_override(text: str) -> Any:
    """``--set`` values arrive as text: '500' -> 500, '0.5' -> 0.5, '2 mA/cm^2' stays text."""
    stripped = text.strip()
    if re.fullmatch(r"[-+]?\d{1,4000}", stripped):  # longer digit strings are past int()'s limit: kept as text
        return int(stripped)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", stripped):
        return float(stripped)
    return stripped


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["a=1", "b=2 mA"]`` -> dict; raises ValueError naming the bad item."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _NAME.match(name.strip()) or not value.strip():
            raise ValueError(f"--set '{item}' is not NAME=VALUE (for example --set plate_capacity=0.5mAh/cm^2)")
        out[name.strip()] = value.strip()
    return out


def collect_parameters(source: SourceDoc, overrides: dict[str, str]) -> tuple[dict[str, Parameter], list[Problem]]:
    declared = source.data.get("parameters") if isinstance(source.data, dict) else None
    problems: list[Problem] = []
    params: dict[str, Parameter] = {}
    if declared is None:
        declared = {}
    if not isinstance(declared, dict):
        return {}, [source.problem(("parameters",), "parameters is a mapping of names to defaults",
                                   expected="'name: 0.5 mA/cm^2'", found=type(declared).__name__)]
    for name, spec in declared.items():
        if not _NAME.match(name):
            problems.append(source.problem(("parameters", name), f"'{name}' is not a usable parameter name",
                                           expected="letters, digits and _", found=repr(name), key=True))
            continue
        description = None
        value = spec
        if isinstance(spec, dict):
            value = spec.get("default")
            description = spec.get("description")
        if value is None or isinstance(value, dict | list):
            continue  # the model reports the malformed declaration
        params[name] = Parameter(name, value, description)
    for name, text in overrides.items():
        if name not in params:
            known = sorted(params)
            raise_at = ("parameters",)
            problems.append(source.problem(raise_at, f"--set names unknown parameter '{name}'"
                                           f"{did_you_mean(name, known)}",
                                           expected="one of " + (name_list(known) or "(none declared)"),
                                           found=f"'{name}'", key=True))
            continue
        default = params[name].value
        value = coerce_override(text)
        if isinstance(default, int) and isinstance(value, float) and value.is_integer():
            value = int(value)
        want, got = _dimension_signature(default), _dimension_signature(value)
        shown = text if len(text) <= 40 else text[:37] + "..."
        if want != got and not (want == "number" and got == "integer"):
            problems.append(source.problem(("parameters", name),
                                           f"--set {name}={shown} has the wrong type for this parameter",
                                           expected=f"{want} like the default {default!r}", found=f"{got} {shown!r}"))
            continue
        params[name] = Parameter(name, value, params[name].description, overridden=True)
    return params, problems


@dataclass
class Substitution:
    data: Any
    origins: dict[Path, str]
    problems: list[Problem]
    failed: set[Path]


def substitute(source: SourceDoc, params: dict[str, Parameter]) -> Substitution:
    """The document with every ``${name}`` outside ``parameters`` replaced, the origin of each replaced value,
    and the paths whose references could not be replaced (so later stages do not report them twice)."""
    origins: dict[Path, str] = {}
    problems: list[Problem] = []
    failed: set[Path] = set()
    declared = "a name declared under parameters: " + (name_list(sorted(params)) or "(none declared)")

    def visit(node: Any, path: Path) -> Any:
        if isinstance(node, dict):
            return {k: (v if path == () and k == "parameters" else visit(v, (*path, k))) for k, v in node.items()}
        if isinstance(node, list):
            return [visit(v, (*path, i)) for i, v in enumerate(node)]
        if not isinstance(node, str) or "${" not in node:
            return node
        names = _REFERENCE.findall(node)
        if not names:
            problems.append(source.problem(path, "malformed parameter reference", expected="'${name}'",
                                           found=repr(node)))
            failed.add(path)
            return node
        missing = [n for n in names if n not in params]
        for name in missing:
            problems.append(source.problem(path, f"unknown parameter '{name}'{did_you_mean(name, params)}",
                                           expected=declared, found=f"'${{{name}}}'"))
        if missing:
            failed.add(path)
            return node
        origins[path] = names[0]
        whole = _REFERENCE.fullmatch(node.strip())
        if whole:
            return params[whole[1]].value
        return _REFERENCE.sub(lambda m: str(params[m[1]].value), node)

    data = visit(source.data, ())
    return Substitution(data, origins, problems, failed)
