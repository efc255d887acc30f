"""The one table writer: pyarrow (a core dependency), for CSV and Parquet from the same Arrow table, so a file's
bytes depend on the data only, never on what else is installed.

pyarrow is imported when a file is written, not with the CLI: an installation that lost it still runs every other
command, and an export says in one line how to repair it.

A CSV of a million records and 31 columns is about 400 MB of decimal text; turning doubles into their shortest
round-trip decimals is nearly all of the work (about 0.1 s per float column of a million values), and pyarrow does
it on one core per call. So a long table is written as row slices formatted by pyarrow on a few threads (pyarrow
releases the GIL) and written to the file in order, the header with the first: the same bytes as one
``write_csv`` call (a test holds it to that), in about half the time on two cores, with at most a few slices of
text in memory at once.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

FORMATS = {"csv": ".csv", "parquet": ".parquet"}
REPAIR = "pyarrow, which every export is written with, is missing: pip install --force-reinstall battery-test-station"


class WriterMissing(ImportError):
    """pyarrow cannot be imported; the message says how to repair the installation."""


@dataclass(frozen=True)
class Categorical:
    """A text column of few distinct values (Step Type): small integer codes into ``categories``, so a million
    records cost a million bytes until the writer spells them out."""

    codes: np.ndarray
    categories: list[str]

    def __len__(self) -> int:
        return len(self.codes)

    def values(self) -> np.ndarray:
        """The column as text, one value per record."""
        return np.asarray(self.categories, dtype=object)[self.codes]


def _pyarrow() -> ModuleType | None:
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.csv
        import pyarrow.parquet  # the submodules are used as attributes of ``pyarrow``
    except ImportError:
        return None
    return pyarrow


def _array(pa: ModuleType, column: np.ndarray | Categorical) -> Any:
    if isinstance(column, Categorical):
        return pa.compute.take(pa.array(column.categories, type=pa.string()), pa.array(column.codes))
    return pa.array(column.astype(str) if column.dtype == object else column)


def arrow_table(labels: list[str], columns: list[np.ndarray | Categorical]) -> Any:
    """Columns as an Arrow table under their headers; text (object or categorical) columns as strings."""
    pa = _pyarrow()
    if pa is None:
        raise WriterMissing(REPAIR)
    return pa.table(dict(zip(labels, [_array(pa, c) for c in columns], strict=True)))


#: rows per slice of a long CSV: ~10 MB of text, small enough to keep a few in memory, large enough that the
#: per-call overhead is nothing
CSV_SLICE_ROWS = 1 << 15


def write_csv(path: Path, table: Any, *, slice_rows: int = CSV_SLICE_ROWS) -> None:
    """``table`` as CSV: header row of preferred labels, shortest round-trip decimals, ``nan`` for NaN."""
    pa = _pyarrow()
    assert pa is not None  # the table was made with it
    n = table.num_rows
    threads = min(os.cpu_count() or 1, 4)
    if n <= slice_rows or threads == 1:
        pa.csv.write_csv(table, str(path))
        return

    def text(start: int) -> Any:
        sink = pa.BufferOutputStream()
        options = pa.csv.WriteOptions(include_header=start == 0)
        pa.csv.write_csv(table.slice(start, slice_rows), sink, write_options=options)
        return sink.getvalue()

    starts = iter(range(0, n, slice_rows))
    with ThreadPoolExecutor(threads) as pool, path.open("wb") as out:
        pending = deque(pool.submit(text, start) for start in islice(starts, 2 * threads))
        while pending:
            out.write(pending.popleft().result())  # in row order; the next slice starts as one is written
            start = next(starts, None)
            if start is not None:
                pending.append(pool.submit(text, start))


def write_table(path: Path, labels: list[str], columns: list[np.ndarray | Categorical], fmt: str) -> None:
    """Write ``path`` as CSV or Parquet, from one Arrow table."""
    table = arrow_table(labels, columns)
    if fmt == "parquet":
        pa = _pyarrow()
        assert pa is not None  # arrow_table has checked
        # dictionary pages only for the few-valued columns (counters, ids, text): trying them on a million
        # distinct doubles and falling back costs a third of the write
        few = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
        pa.parquet.write_table(table, path, use_dictionary=few)
    else:
        write_csv(path, table)
