"""The simulated BTS's record store: pages read back the same whether their rows sit in memory or on disk."""

from __future__ import annotations

import numpy as np

from simulators.neware.records import CHUNK, COLUMNS, RecordStore


def _rows(start: int, n: int) -> dict[str, np.ndarray]:
    k = np.arange(start, start + n)
    return {name: (k * 3 + j).astype(dtype) for j, (name, dtype) in enumerate(COLUMNS.items())}


def test_full_chunks_go_to_disk_and_every_page_reads_back_unchanged():
    store = RecordStore()
    total = 2 * CHUNK + 1234
    for start in range(0, total, 7001):  # appends that straddle chunk boundaries
        store.append(_rows(start, min(7001, total - start)), min(7001, total - start))
    assert store.count == total
    assert store._chunks[0] is None and store._chunks[1] is None and store._chunks[2] is not None  # spilled
    expected = _rows(0, total)
    for start in (0, CHUNK - 500, 2 * CHUNK - 1, 2 * CHUNK + 200):  # pages within and across chunks
        page = store.slice(start, start + 1000)
        stop = min(start + 1000, total)
        for name in COLUMNS:
            assert np.array_equal(page[name], expected[name][start:stop]), (name, start)
    assert store.last("volt") == float(expected["volt"][-1])
    store.close()
