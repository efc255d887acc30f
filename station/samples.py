"""Sample ids: short enough to write on a coin cell's bag or print as a barcode, unique in the data directory,
and telling when the cell was made (S + yymmdd + four characters that cannot be misread: no 0/O, 1/I/L)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from protocols.cells import Cell
from protocols.clock import Clock
from station.store import SampleRow, Store, UnknownSample

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_sample_id(clock: Clock, store: Store) -> str:
    day = datetime.fromtimestamp(clock.unix(), UTC).strftime("%y%m%d")
    while True:
        candidate = f"S{day}-{''.join(secrets.choice(ALPHABET) for _ in range(4))}"
        try:
            store.sample(candidate)
        except UnknownSample:
            return candidate


def register_sample(store: Store, clock: Clock, cell: Cell, *, name: str | None = None, operator: str | None = None,
                    notes: str | None = None, metadata: dict[str, str] | None = None) -> SampleRow:
    """A new sample on ``cell`` with a fresh id, stored; the CLI and the API both register samples this way."""
    sample_id = new_sample_id(clock, store)
    row = SampleRow(id=sample_id, name=name or sample_id, created_at=clock.unix(),
                    cell=cell.model_dump(mode="json"), cell_file=cell.source, operator=operator, notes=notes,
                    metadata=dict(metadata or {}))
    store.create_sample(row)
    return row
