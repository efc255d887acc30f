"""Turn pydantic's validation errors into problems a lab user can act on.

pydantic finds every structural error in one pass; we translate each into the project's
``FILE:LINE:COL: path: message; expected x, found y`` form, drop the discriminator tags pydantic puts into
locations, and add "did you mean" for misspelt keys by looking up the keys the model at that place allows.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

import annotated_types
from pydantic import BaseModel, ValidationError

from protocols.errors import Path, Problem, did_you_mean, format_path, name_list
from protocols.model import STEP_TAGS, UNTIL_TAGS
from protocols.yamlsource import SourceDoc


def clean_location(loc: tuple[Any, ...]) -> Path:
    """Drop the union tags pydantic inserts: ('steps', 3, 'discharge', 'discharge', 'until', 'map') -> real path.

    A step's tag follows its list index (and for mapping steps is followed by the same name as the field, which
    we keep); an ``until`` is followed by its 'map'/'list' tag.
    """
    out: list[str | int] = []
    for i, part in enumerate(loc):
        prev = loc[i - 1] if i else None
        if isinstance(part, str) and isinstance(prev, int) and part in STEP_TAGS:
            continue
        if prev == "until" and part in UNTIL_TAGS:
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out.append(part)
    return tuple(out)


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation can hold (through Optional, list, dict, Annotated, unions)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, dict):
        found: list[Any] = []
        for arg in typing.get_args(annotation):
            found.extend(_unwrap(arg))
        return found
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _model_at(root: type[BaseModel], path: Path) -> list[type[BaseModel]]:
    candidates: list[type[BaseModel]] = [root]
    for part in path:
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for model in candidates:
            field = model.model_fields.get(part)
            if field is None:
                field = next((f for f in model.model_fields.values() if f.alias == part), None)
            if field is not None:
                nxt.extend(_unwrap(field.annotation))
        candidates = nxt
    return candidates


def _allowed_keys(root: type[BaseModel], parent: Path) -> tuple[str, ...]:
    return _allowed_keys_at(root, tuple(part for part in parent if not isinstance(part, int)))


@functools.lru_cache(maxsize=256)
def _allowed_keys_at(root: type[BaseModel], parent: tuple[str, ...]) -> tuple[str, ...]:
    """Cached by the path without list indices: a file with thousands of unknown keys asks the same few times."""
    keys: list[str] = []
    for model in _model_at(root, parent):
        for name, field in model.model_fields.items():
            keys.append(field.alias or name)
    return tuple(sorted(set(keys)))


def _field_at(root: type[BaseModel], path: Path) -> Any:
    """The pydantic field a location names (``None`` when it is not a model field, e.g. a list item)."""
    if not path or isinstance(path[-1], int):
        return None
    for model in _model_at(root, tuple(p for p in path[:-1] if not isinstance(p, int))):
        field = model.model_fields.get(path[-1]) or next(
            (f for f in model.model_fields.values() if f.alias == path[-1]), None)
        if field is not None:
            return field
    return None


def _length_expected(root: type[BaseModel], path: Path, ctx: dict[str, Any]) -> str:
    """What a list of the wrong length should have been: the bounds of the field (pydantic's error names only the
    one that was broken) and, where the field says, what its items are (``exactly 2 items: [min, max]``)."""
    low, high = ctx.get("min_length"), ctx.get("max_length")
    field = _field_at(root, path)
    if field is not None:
        for constraint in field.metadata:
            if isinstance(constraint, annotated_types.MinLen):
                low = constraint.min_length
            elif isinstance(constraint, annotated_types.MaxLen):
                high = constraint.max_length
    if low is not None and low == high:
        expected = f"exactly {low} item{'s' if low != 1 else ''}"
    elif low is not None and high is not None:
        expected = f"from {low} to {high} items"
    elif low is not None:
        expected = f"at least {low} item{'s' if low != 1 else ''}"
    else:
        expected = f"at most {high} item{'s' if high != 1 else ''}"
    description = field.description if field is not None else None
    if description and description.startswith("[") and "]" in description:
        expected += f": {description[:description.index(']') + 1]}"  # what the items are: '[min, max]'
    return expected


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def pydantic_problems(exc: ValidationError, source: SourceDoc, root: type[BaseModel],
                      origins: dict[Path, str] | None = None, *, prefix: Path = (),
                      reported: set[Path] | None = None) -> list[Problem]:
    """One :class:`Problem` per pydantic error, positioned in ``source``.

    ``prefix`` places errors of a sub-document (one step validated on its own); errors at or under a path in
    ``reported`` are dropped because an earlier stage already explained that value.
    """
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        path = prefix + clean_location(tuple(error["loc"]))
        if reported and any(path[:i] in reported for i in range(len(path) + 1)):  # O(depth), not O(reported)
            continue
        kind = error["type"]
        ctx = error.get("ctx") or {}
        expected = ctx.get("expected")
        found = ctx.get("found")
        message = error["msg"]
        key = False
        if kind == "extra_forbidden":
            allowed = _allowed_keys(root, path[len(prefix):-1])
            name = str(path[-1])
            message = f"unknown key '{name}'{did_you_mean(name, allowed)}"
            expected = "one of " + name_list(allowed, limit=30) if allowed else "no such key"
            found = f"'{name}'"
            key = True
        elif kind == "missing":
            message = f"missing required key '{path[-1]}'"
            expected, found = f"'{path[-1]}: ...'", "nothing"
        elif kind in ("quantity", "shorthand", "step_kind", "repeat_count", "cell"):
            pass
        elif kind == "literal_error":
            message = "not an allowed value"
            expected = ctx.get("expected", "").replace("'", "'")
            found = _describe(error.get("input"))
        elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            bound = next(iter(ctx.values()), None)
            sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
                    "less_than": "<"}[kind]
            message = f"must be {sign} {bound}"
            expected, found = f"a number {sign} {bound}", _describe(error.get("input"))
        elif kind in ("too_short", "too_long"):
            message = "too few items" if kind == "too_short" else "too many items"
            expected = _length_expected(root, path[len(prefix):], ctx)
            count = ctx.get("actual_length")
            found = f"{count} item{'s' if count != 1 else ''}" if count is not None else _describe(error.get("input"))
            if kind == "too_short" and ctx.get("min_length") == 1:
                message, expected = "must not be empty", "at least one item"
        elif kind in ("int_type", "int_parsing", "int_from_float"):
            message, expected, found = "not a whole number", "an integer", _describe(error.get("input"))
        elif kind in ("string_type",):
            message, expected, found = "not text", "a string", _describe(error.get("input"))
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            message, expected, found = "not a mapping", "a mapping of keys to values", _describe(error.get("input"))
        elif kind == "list_type":
            message, expected, found = "not a list", "a list", _describe(error.get("input"))
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        if origins:
            origin = next((origins[p] for p in _prefixes(path) if p in origins), None)
            if origin:
                found = f"{found or '-'} (from parameter '{origin}')"
        line, column = source.locate(path, key=key)
        problems.append(Problem(source.file, line, column, format_path(path), message,
                                str(expected) if expected is not None else None,
                                str(found) if found is not None else None))
    return problems


def _prefixes(path: Path) -> list[Path]:
    return [path[:i] for i in range(len(path), 0, -1)]
