"""A run's voltage, current and step capacity against test time, thinned for a chart without losing its peaks.

A browser cannot draw (or download) a million points per line, and a plain "every k-th point" drops exactly what an
operator looks for: a voltage spike, a current glitch, the top of a step's capacity. So the records are cut into
equal buckets of consecutive records and, for each of the three series, the record with the bucket's smallest and the
one with its largest value are kept; the first and the last record are always kept. The three series share one time
axis, so a bucket can give up to six records and the number of buckets is chosen so that the total stays within the
asked-for number of points. All of it is numpy on whole arrays: a million records take milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: the record fields sent, and the names they are sent under (SI units)
FIELDS = (("voltage", "voltage_v"), ("current", "current_a"), ("capacity", "capacity_ah"))
#: records one bucket can keep at most: the min and max of each field
PER_BUCKET = 2 * len(FIELDS)
DEFAULT_POINTS = 2000
MAX_POINTS = 20000
MIN_POINTS = PER_BUCKET + 2


def _extremes(values: np.ndarray, size: int, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Record numbers of each bucket's min and max of ``values`` (buckets of ``size`` consecutive records). NaN
    counts as neither extreme unless a bucket has nothing else; the padding after the last record never wins."""
    n = len(values)
    low = np.full(buckets * size, np.inf)
    high = np.full(buckets * size, -np.inf)
    finite = np.where(np.isnan(values), np.inf, values)
    low[:n] = finite
    high[:n] = np.where(np.isnan(values), -np.inf, values)
    starts = np.arange(buckets) * size
    lo = starts + np.argmin(low.reshape(buckets, size), axis=1)
    hi = starts + np.argmax(high.reshape(buckets, size), axis=1)
    return lo, hi


def _indices(columns: Sequence[np.ndarray], buckets: int) -> tuple[np.ndarray, int]:
    n = len(columns[0])
    size = math.ceil(n / buckets)
    buckets = math.ceil(n / size)  # no bucket made only of padding
    picked = [np.array([0, n - 1])]
    for values in columns:
        picked.extend(_extremes(np.asarray(values, dtype=float), size, buckets))
    return np.unique(np.concatenate(picked)), size


def keep_indices(columns: Sequence[np.ndarray], points: int) -> tuple[np.ndarray, int | None]:
    """The row numbers (sorted, unique) to keep of equally long ``columns`` so that at most ``points`` rows remain,
    and the bucket size used (None: every row kept, there were no more than ``points``). Kept: the first and the
    last row, and in every bucket of that many consecutive rows (from the first) the min and the max of each
    column. ``points`` must be at least ``2 * len(columns) + 2``."""
    n = len(columns[0]) if columns else 0
    if n <= points:
        return np.arange(n), None
    per_bucket = 2 * len(columns)
    buckets = max(1, (points - 2) // per_bucket)
    best = _indices(columns, buckets)
    # Often a bucket's extremes coincide (the current is flat within a step), leaving room: one more try with
    # buckets scaled up by the room left, kept only when it still fits.
    kept = len(best[0])
    if 2 < kept < points // 2:
        more = min(n, buckets * (points - 2) // (kept - 2))
        if more > buckets:
            again = _indices(columns, more)
            if len(again[0]) <= points:
                best = again
    return best


def decimate(records: np.ndarray, points: int) -> tuple[np.ndarray, int | None]:
    """:func:`keep_indices` of a run's records (RECORD_DTYPE) over the fields in :data:`FIELDS`."""
    return keep_indices([records[field] for field, _ in FIELDS], points)


def json_floats(values: np.ndarray) -> list[float | None]:
    """Floats for JSON: NaN (and infinities) as null."""
    out = np.asarray(values, dtype=float)
    return [v if math.isfinite(v) else None for v in out.tolist()]


def series_doc(run_id: str, records: np.ndarray, points: int) -> dict:
    """The series answer: ``records`` is every record of the run (RECORD_DTYPE), oldest first."""
    keep, size = decimate(records, points)
    picked = records[keep]
    doc: dict = {"run_id": run_id, "records": len(records), "points": len(keep), "bucket_records": size,
                 "test_time_s": json_floats(picked["test_time"])}
    for field, name in FIELDS:
        doc[name] = json_floats(picked[field])
    return doc
