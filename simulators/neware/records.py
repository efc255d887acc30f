"""The DF records of one test, kept in fixed-size numpy chunks.

A 1000-cycle dry run holds close to a million records per channel: per-record Python objects would cost ~10x
the memory and time. Chunks (rather than one array that doubles) keep memory at the records themselves, with
no transient copy when the store grows, and a 1000-record page never spans more than two chunks.
"""

from __future__ import annotations

import numpy as np

CHUNK = 65_536

#: column name -> dtype; seqid is implicit (row + 1)
COLUMNS: dict[str, type] = {
    "stepid": np.int32,
    "cycleid": np.int32,
    "steptype": np.int16,
    "step_time": np.float64,  # s since the step started
    "test_time": np.float64,  # s since the test started (drives atime)
    "volt": np.float64,
    "curr": np.float64,
    "cap": np.float64,  # Ah in the step, unsigned
    "eng": np.float64,  # Wh in the step, unsigned
}


class RecordStore:
    def __init__(self) -> None:
        self._chunks: list[dict[str, np.ndarray]] = []
        self.count = 0

    def _new_chunk(self) -> dict[str, np.ndarray]:
        chunk = {name: np.empty(CHUNK, dtype=dtype) for name, dtype in COLUMNS.items()}
        self._chunks.append(chunk)
        return chunk

    def append(self, columns: dict[str, np.ndarray | float | int], n: int) -> None:
        """Append ``n`` rows; scalars are broadcast."""
        done = 0
        while done < n:
            offset = self.count % CHUNK
            chunk = self._chunks[-1] if offset else self._new_chunk()
            take = min(n - done, CHUNK - offset)
            for name in COLUMNS:
                value = columns[name]
                chunk[name][offset : offset + take] = (
                    value[done : done + take] if isinstance(value, np.ndarray) else value
                )
            self.count += take
            done += take

    def slice(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows ``start`` .. ``stop - 1`` (0-based) as column arrays."""
        start, stop = max(0, start), min(stop, self.count)
        if stop <= start:
            return {name: np.empty(0, dtype=dtype) for name, dtype in COLUMNS.items()}
        parts: dict[str, list[np.ndarray]] = {name: [] for name in COLUMNS}
        row = start
        while row < stop:
            index, offset = divmod(row, CHUNK)
            take = min(stop - row, CHUNK - offset)
            for name in COLUMNS:
                parts[name].append(self._chunks[index][name][offset : offset + take])
            row += take
        return {name: arrays[0] if len(arrays) == 1 else np.concatenate(arrays) for name, arrays in parts.items()}

    def last(self, name: str) -> float | None:
        if not self.count:
            return None
        index, offset = divmod(self.count - 1, CHUNK)
        return float(self._chunks[index][name][offset])
