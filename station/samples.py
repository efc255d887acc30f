"""Sample ids: short enough to write on a coin cell's bag or print as a barcode, unique in the data directory,
and telling when the cell was made (S + yymmdd + four characters that cannot be misread: no 0/O, 1/I/L)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from protocols.clock import Clock
from station.store import Store, UnknownSample

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_sample_id(clock: Clock, store: Store) -> str:
    day = datetime.fromtimestamp(clock.unix(), UTC).strftime("%y%m%d")
    while True:
        candidate = f"S{day}-{''.join(secrets.choice(ALPHABET) for _ in range(4))}"
        try:
            store.sample(candidate)
        except UnknownSample:
            return candidate
