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

from pydantic import BaseModel, ValidationError

from protocols.errors import Path, Problem, did_you_mean, name_list
from protocols.yamlsource import SourceDoc

_TAGS = {"rest", "charge", "discharge", "hold", "power", "ca", "eis", "cv", "lsv", "repeat", "shorthand", "invalid",
         "map", "list"}


def clean_location(loc: tuple[Any, ...]) -> Path:
    """Drop the union tags pydantic inserts: ('steps', 3, 'discharge', 'discharge', 'until', 'map') -> real path.

    A step's tag follows its list index (and for mapping steps is followed by the same name as the field, which
    we keep); an ``until`` is followed by its 'map'/'list' tag.
    """
    out: list[str | int] = []
    for i, part in enumerate(loc):
        prev = loc[i - 1] if i else None
        if isinstance(part, str) and isinstance(prev, int) and part in _TAGS and part not in ("map", "list"):
            continue
        if prev == "until" and part in ("map", "list"):
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
            message = "wrong number of items"
            expected = f"{ctx.get('min_length', ctx.get('max_length'))} or so items"
            if "field_type" in ctx and ctx.get("min_length") == ctx.get("max_length"):
                expected = f"exactly {ctx.get('min_length')} items"
            found = f"{ctx.get('actual_length')} items"
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
        from protocols.errors import format_path

        problems.append(Problem(source.file, line, column, format_path(path), message,
                                str(expected) if expected is not None else None,
                                str(found) if found is not None else None))
    return problems


def _prefixes(path: Path) -> list[Path]:
    return [path[:i] for i in range(len(path), 0, -1)]
