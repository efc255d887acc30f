"""The sign of each record's capacity and energy in a Neware block (drivers/neware/channel.py ``_signs``) is the
one the record-by-record rule ``_sign`` gives: the step type's (discharge negative, charge positive), else the
current's, whether a page holds a few long runs of one step type (looked up run by run) or many short ones (by
kind)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.neware.channel import _RUNS_LOOKED_UP, _sign, _signs

KINDS = ["cc", "dc", "cccv", "dccv", "rest", "pause", "--", ""]


@given(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(1, 40),
                          st.sampled_from([-0.002, -1e-9, 0.0, -0.0, 1e-9, 0.0045])), min_size=1, max_size=150),
       st.booleans())
@settings(max_examples=300, deadline=None)
def test_signs_are_the_record_by_record_rule(runs: list[tuple[str, int, float]], as_bytes: bool) -> None:
    kinds = [kind for kind, length, _ in runs for _ in range(length)]
    current = np.array([value for _, length, value in runs for _ in range(length)])
    steptypes = np.array([k.encode() for k in kinds]) if as_bytes else np.array(kinds)
    got = _signs(steptypes, current)
    assert got.tolist() == [_sign(kind, value) for kind, value in zip(kinds, current.tolist(), strict=True)]


def test_a_page_of_many_short_runs_is_signed_by_kind() -> None:
    kinds = np.array([b"cc", b"dc", b"rest"] * (2 * _RUNS_LOOKED_UP))
    current = np.tile([0.001, 0.001, -0.001], 2 * _RUNS_LOOKED_UP)
    assert _signs(kinds, current).tolist() == [1.0, -1.0, -1.0] * (2 * _RUNS_LOOKED_UP)
