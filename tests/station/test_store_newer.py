"""``records.newer``: the records of a round's pages after the last stored one, in order, each once."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from station.store.records import RECORD_DTYPE, RECORD_DTYPE_V3, newer


def _page(seqs: list[int], tag: float) -> np.ndarray:
    block = np.zeros(len(seqs), dtype=RECORD_DTYPE)
    block["seq"] = seqs
    block["voltage"] = np.asarray(seqs, dtype=float) * 0.001 + tag  # which page a record came from
    block["temperature"] = np.nan
    return block


def _expected(parts: list[np.ndarray], last: int) -> list[tuple[int, float]]:
    """One record per seq after ``last``: the first downloaded, in seq order."""
    first: dict[int, float] = {}
    for part in parts:
        for seq, volt in zip(part["seq"].tolist(), part["voltage"].tolist(), strict=True):
            first.setdefault(seq, volt)
    return sorted((seq, volt) for seq, volt in first.items() if seq > last)


def test_pages_in_order_come_back_joined_byte_for_byte() -> None:
    parts = [_page(list(range(k * 1000 + 1, (k + 1) * 1000 + 1)), 0.0) for k in range(5)]
    block = newer(parts, 0)
    assert block.dtype == RECORD_DTYPE
    assert block.tobytes() == b"".join(p.tobytes() for p in parts)


def test_a_page_downloaded_twice_and_one_already_stored_are_dropped() -> None:
    a, b = _page([1, 2, 3], 0.0), _page([4, 5, 6], 10.0)
    again = _page([4, 5, 6], 20.0)  # a reconnect re-read the page: the first reading is kept
    block = newer([a, b, again], 3)
    assert block["seq"].tolist() == [4, 5, 6]
    assert block["voltage"].tolist() == [10.004, 10.005, 10.006]


def test_an_older_layout_is_widened() -> None:
    old = np.zeros(2, dtype=RECORD_DTYPE_V3)
    old["seq"] = [7, 8]
    block = newer([old, _page([9], 0.0)], 6)
    assert block.dtype == RECORD_DTYPE
    assert block["seq"].tolist() == [7, 8, 9]
    assert np.isnan(block["aux_temperature"][:2]).all()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.integers(1, 40), min_size=0, max_size=12), min_size=1, max_size=5), st.integers(0, 30))
def test_any_pages_give_each_newer_seq_once_in_order(pages: list[list[int]], last: int) -> None:
    parts = [_page(seqs, 100.0 * k) for k, seqs in enumerate(pages)]
    block = newer(parts, last)
    assert block.dtype == RECORD_DTYPE
    assert list(zip(block["seq"].tolist(), block["voltage"].tolist(), strict=True)) == _expected(parts, last)
