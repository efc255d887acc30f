"""The cheaper paths of a dry run's simulated BTS write what the plain ones wrote.

Records released straight into the store (``RecordStore.room`` / ``commit``) and full chunks spilled column after
column read back as appended ones; a page's ``atime`` of one day (its date broadcast) and its time of day (two small
tables) are the epoch plus the floored seconds as ``strftime`` writes them; the largest numbers ``float_block``
writes (15 nines, where ``log10`` rounds up to 15) are ``%.15G``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from simulators.neware import pagetext, records, wire
from simulators.neware.records import CHUNK, COLUMNS, RecordStore


def texts(block: np.ndarray) -> list[str]:
    return [bytes(row).replace(b"\0", b"").decode("ascii") for row in block]


def reference_atimes(epoch: dt.datetime, seconds: np.ndarray) -> list[str]:
    whole = epoch.replace(microsecond=0)
    return [(whole + dt.timedelta(seconds=int(s // 1))).strftime("%Y-%m-%d %H:%M:%S") for s in seconds.tolist()]


def test_a_page_of_one_day_and_one_across_midnight_have_the_strftime_atimes():
    epoch = dt.datetime(2025, 1, 1, 0, 0, 0, 999_999)
    one_day = 12_345.6 + 30.0 * np.arange(1000)  # 03:25:45 .. 11:45:15 of 2025-01-01
    across = 80_000.0 + 30.0 * np.arange(1000) + 0.999  # from 22:13:20 into 2025-01-02
    assert texts(wire.atimes(epoch, one_day)) == reference_atimes(epoch, one_day)
    assert texts(wire.atimes(epoch, across)) == reference_atimes(epoch, across)
    assert texts(wire.atimes(epoch, one_day[:1])) == ["2025-01-01 03:25:45"]
    assert texts(wire.atimes(epoch, across))[213:215] == ["2025-01-01 23:59:50", "2025-01-02 00:00:20"]
    every_second = np.arange(86_400.0)  # each of the tables' entries once
    assert texts(wire.atimes(epoch, every_second)) == reference_atimes(epoch, every_second)
    assert wire.atimes(epoch, np.empty(0)).shape == (0, 19)


def test_the_largest_fifteen_digit_numbers_are_written_as_percent_15G():
    # log10(999999999999999.0) rounds to 15.0: the exponent must still be 14 (it indexed past the templates before)
    values = np.array([999_999_999_999_999.0, 999_999_999_999_999.4, -999_999_999_999_999.0, 999_999_999_999_999.9,
                       1e-8, -1e-8, 1.0000000000000001e-8, 99_999_999_999_999.99])
    assert texts(pagetext.float_block(values)) == [f"{v:.15G}" for v in values.tolist()]
    assert texts(pagetext.float_block(values[:1])) == ["999999999999999"]


def fill(store: RecordStore, sizes: list[int], *, in_place: bool) -> None:
    """Rows numbered from 0 in every column, in batches of ``sizes``: into ``room`` views, or appended."""
    row = 0
    for n in sizes:
        values = {name: (row + np.arange(n)).astype(dtype) for name, dtype in COLUMNS.items()}
        views = store.room(n) if in_place else None
        if views is None:
            store.append(values, n)
        else:
            for name, view in views.items():
                view[...] = values[name]
            store.commit(n)
        row += n


@pytest.mark.parametrize("positioned", [True, False], ids=["pread", "seek-and-read"])
def test_rows_written_in_place_read_back_as_appended_ones_across_chunks_and_the_disk(monkeypatch, positioned):
    if not positioned:  # as on a system without os.pread (Windows)
        monkeypatch.setattr(records, "_pread", None)
    rng = np.random.default_rng(5)
    sizes = [int(n) for n in rng.integers(1, 700, 200)] + [CHUNK, 1, CHUNK - 1, 5]  # a batch of a whole chunk, too
    appended, in_place = RecordStore(), RecordStore()
    fill(appended, sizes, in_place=False)
    fill(in_place, sizes, in_place=True)
    total = sum(sizes)
    assert appended.count == in_place.count == total > 5 * CHUNK
    assert in_place._chunks[0] is None and in_place._chunks[-1] is not None  # full chunks spilled to the file
    for start in (0, 1, CHUNK - 3, 2 * CHUNK - 500, 3 * CHUNK, total - 1000, total - 1):
        a, b = appended.slice(start, start + 1000), in_place.slice(start, start + 1000)
        for name, dtype in COLUMNS.items():
            expected = np.arange(start, min(start + 1000, total)).astype(dtype)
            assert b[name].dtype == dtype and np.array_equal(b[name], expected), (name, start)
            assert np.array_equal(a[name], expected), (name, start)
    assert in_place.last("volt") == total - 1
    assert in_place.room(CHUNK + 1) is None  # more than a chunk never fits: appended in pieces
    appended.close()
    in_place.close()
