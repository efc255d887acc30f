"""The client methods bind their arguments without ``inspect.Signature.bind`` on the common path
(drivers/neware/commands.py ``_binder``): for every command's signature and every way of calling it (positional,
by name, defaults left out, too many, unknown, repeated or missing arguments) the arguments are exactly what
``Signature.bind`` with ``apply_defaults`` gives, in the same order, or the call fails with its very error."""

from __future__ import annotations

import itertools
import string

import pytest

from drivers.neware.commands import COMMANDS, _binder

SELF = object()


def reference(signature, args: tuple, kwargs: dict):
    try:
        bound = signature.bind(SELF, *args, **kwargs)
    except TypeError as exc:
        return ("error", str(exc))
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    assert arguments.pop("self") is SELF
    return ("ok", list(arguments.items()))


def fast(bind, args: tuple, kwargs: dict):
    try:
        arguments = bind(SELF, args, dict(kwargs))
    except TypeError as exc:
        return ("error", str(exc))
    return ("ok", list(arguments.items()))


def calls(signature):
    """Every call shape over the signature's names, a name it lacks and ``self``: k positional values, then any
    subset of names given by keyword (values distinct, so that a misplaced one shows)."""
    names = [*list(signature.parameters)[1:], "unknown", "self"]
    values = iter(string.ascii_letters * 100)
    for positional in range(len(names)):
        args = tuple(next(values) for _ in range(positional))
        for size in range(len(names) + 1):
            for chosen in itertools.combinations(names, size):
                yield args, {name: next(values) for name in chosen}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_call_binds_as_signature_bind_does(name: str) -> None:
    signature = COMMANDS[name].signature()
    bind = _binder(signature)
    checked = 0
    for args, kwargs in calls(signature):
        assert fast(bind, args, kwargs) == reference(signature, args, kwargs), (name, args, kwargs)
        checked += 1
    assert checked >= 2 ** (len(signature.parameters) + 1)


def test_download_binds_defaults_in_signature_order() -> None:
    signature = COMMANDS["download"].signature()
    assert list(_binder(signature)(SELF, ("ch",), {"count": 5, "startpos": 9}).items()) == [
        ("channel", "ch"), ("testid", 0), ("startpos", 9), ("count", 5)]
