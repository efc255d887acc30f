"""The manager takes a driver's pages as arrays (``read_block``) only where that cannot skip what ``read_records``
would do: a subclass or an instance that replaces ``read_records`` (a wrapper, a fault injector) is read through
it, record by record, so that whatever it does to the records reaches the checks."""

from __future__ import annotations

from station.runs import _block_reader


class Columns:
    def read_block(self, after_seq: int, limit: int = 1000) -> str:
        return "block"

    def read_records(self, after_seq: int, limit: int = 1000) -> str:
        return "records"


class Renumbering(Columns):
    def read_records(self, after_seq: int, limit: int = 1000) -> str:
        return "renumbered"


class Plain:
    def read_records(self, after_seq: int, limit: int = 1000) -> str:
        return "records"


def test_a_driver_with_block_reads_is_read_by_blocks() -> None:
    reader = _block_reader(Columns())  # type: ignore[arg-type]
    assert reader is not None and reader(0, 10) == "block"


def test_a_replaced_read_records_is_never_bypassed() -> None:
    assert _block_reader(Renumbering()) is None  # type: ignore[arg-type]
    patched = Columns()
    patched.read_records = lambda after_seq, limit=1000: "patched"  # type: ignore[method-assign]
    assert _block_reader(patched) is None  # type: ignore[arg-type]
    assert _block_reader(Plain()) is None  # type: ignore[arg-type]
