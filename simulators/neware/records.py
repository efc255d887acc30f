"""The DF records of one test, kept in fixed-size numpy chunks, the full ones on disk.

A 1000-cycle dry run holds close to a million records per channel: per-record Python objects would cost ~10x
the memory and time. Chunks (rather than one array that doubles) keep memory at the records themselves, with
no transient copy when the store grows, and a 1000-record page never spans more than two chunks.

Like the real BTS, which keeps a test's data in its database on disk, a chunk that is full is written to an
anonymous temporary file and dropped from memory, so a simulated channel's memory stays flat however long
its test runs (66 bytes a record would otherwise be ~63 MB per million records and channel). Downloads read
old pages back from the file; the chunk being filled stays in memory.
"""

from __future__ import annotations

import os
import tempfile
from typing import IO

import numpy as np

#: rows per chunk: ~1 MB in memory (the chunk being filled, written out as it is when full); 65 536 rows cost a
#: 1000-cycle dry run ~10 MB more peak memory for no speed (a page still spans at most two chunks)
CHUNK = 16_384

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
    "temperature_c": np.float64,  # the cell model's temperature when the record was computed, degC (T1 of aux)
}


#: one record's bytes (a spilled chunk holds CHUNK of them, column after column)
ROW = np.dtype([(name, dtype) for name, dtype in COLUMNS.items()])

_NAMES = tuple(COLUMNS)
#: one system call per column read back (a buffered seek and read cost three times as much per page)
_pread = getattr(os, "pread", None)
#: a spilled chunk on disk: each column's values in a row, at these byte offsets from the chunk's start
_SPILLED = tuple(
    (name, CHUNK * sum(np.dtype(d).itemsize for d in list(COLUMNS.values())[:k]), np.dtype(dtype))
    for k, (name, dtype) in enumerate(COLUMNS.items())
)


class RecordStore:
    def __init__(self) -> None:
        self._chunks: list[dict[str, np.ndarray] | None] = []  # None: spilled to the file
        self._file: IO[bytes] | None = None
        self.count = 0

    def _new_chunk(self) -> dict[str, np.ndarray]:
        if self._chunks:
            self._spill(len(self._chunks) - 1)
        chunk = {name: np.empty(CHUNK, dtype=dtype) for name, dtype in COLUMNS.items()}
        self._chunks.append(chunk)
        return chunk

    def _spill(self, index: int) -> None:
        chunk = self._chunks[index]
        if chunk is None:
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="bts-sim-records-")  # noqa: SIM115 - lives with the store
        self._file.seek(index * CHUNK * ROW.itemsize)
        # column after column, each as it is in memory: no record-by-record copy to write (a page read back is a read
        # per column)
        self._file.writelines(chunk[name].data for name in _NAMES)
        self._file.flush()  # read back by position from the file itself (_read)
        self._chunks[index] = None

    def _read(self, index: int, offset: int, take: int) -> dict[str, np.ndarray]:
        assert self._file is not None
        base = index * CHUNK * ROW.itemsize
        if _pread is None:  # no positioned read (Windows): seek and read
            columns = {}
            for name, start, dtype in _SPILLED:
                self._file.seek(base + start + offset * dtype.itemsize)
                columns[name] = np.frombuffer(self._file.read(take * dtype.itemsize), dtype=dtype)
            return columns
        fd = self._file.fileno()
        return {
            name: np.frombuffer(_pread(fd, take * dtype.itemsize, base + start + offset * dtype.itemsize), dtype=dtype)
            for name, start, dtype in _SPILLED
        }

    def close(self) -> None:
        """Free the spill file (it also goes when the store is garbage-collected)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _chunk_being_filled(self) -> dict[str, np.ndarray]:
        """The chunk that row ``count`` goes into, started when it is the first row of one."""
        index = self.count // CHUNK
        if index == len(self._chunks):
            return self._new_chunk()
        chunk = self._chunks[index]
        assert chunk is not None  # the chunk being filled is never spilled
        return chunk

    def room(self, n: int) -> dict[str, np.ndarray] | None:
        """The next ``n`` rows of the chunk being filled as column views to write into, then :meth:`commit` them; None
        when they do not fit in it (:meth:`append` them instead). A step's records are released so, computed
        straight into the store, without a temporary array per column."""
        offset = self.count % CHUNK
        if offset + n > CHUNK:
            return None
        chunk = self._chunk_being_filled()
        end = offset + n
        return {name: column[offset:end] for name, column in chunk.items()}

    def commit(self, n: int) -> None:
        """Count the ``n`` rows written into :meth:`room`'s views."""
        self.count += n

    def append(self, columns: dict[str, np.ndarray | float | int], n: int) -> None:
        """Append ``n`` rows; scalars are broadcast."""
        offset = self.count % CHUNK
        if offset and offset + n <= CHUNK:  # the usual case, a step's records within the chunk being filled: as is
            chunk = self._chunks[-1]
            assert chunk is not None
            end = offset + n
            for name in _NAMES:
                chunk[name][offset:end] = columns[name]
            self.count += n
            return
        done = 0
        while done < n:
            offset = self.count % CHUNK
            chunk = self._chunk_being_filled()
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
        index, offset = divmod(start, CHUNK)
        chunk = self._chunks[index]
        if chunk is not None and offset + stop - start <= CHUNK:  # within a chunk in memory: views of it
            end = offset + stop - start
            return {name: column[offset:end] for name, column in chunk.items()}
        parts: dict[str, list[np.ndarray]] = {name: [] for name in COLUMNS}
        row = start
        while row < stop:
            index, offset = divmod(row, CHUNK)
            take = min(stop - row, CHUNK - offset)
            chunk = self._chunks[index]
            if chunk is None:
                rows = self._read(index, offset, take)
                for name in COLUMNS:
                    parts[name].append(rows[name])
            else:
                for name in COLUMNS:
                    parts[name].append(chunk[name][offset : offset + take])
            row += take
        return {name: arrays[0] if len(arrays) == 1 else np.concatenate(arrays) for name, arrays in parts.items()}

    def last(self, name: str) -> float | None:
        if not self.count:
            return None
        index, offset = divmod(self.count - 1, CHUNK)
        chunk = self._chunks[index]
        if chunk is None:  # pragma: no cover - the last chunk is only spilled when a new one starts
            return float(self._read(index, offset, 1)[name][0])
        return float(chunk[name][offset])
