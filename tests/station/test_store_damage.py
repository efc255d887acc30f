"""A damaged station.sqlite gives every command one clear line naming the file and the way to recover; nothing
crashes, and nothing quietly starts an empty store over it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from protocols.cells import load_cell
from protocols.loader import load_protocol
from station.cli import app
from station.store import DB_NAME, RECORD_DTYPE, Store, StoreError

runner = CliRunner()
RUN = "20261129-120000-abcdef"


def filled(data_dir: Path) -> Path:
    """A store with one running (non-dry) run of 5000 records in 5 blocks, checkpointed into the main file."""
    store = Store(data_dir)
    loaded = load_protocol("p3-full-cell-cycling")
    cell = load_cell("predeposited-ncm622")
    store.create_run(run_id=RUN, at=0.0, channel="sim-neware/21-1-1", instrument={"kind": "neware"},
                     protocol_name=loaded.name, protocol_file=None, protocol_source=loaded.source.text,
                     parameters=loaded.resolved_parameters(), program=loaded.bind(cell).to_json(),
                     cell=cell.model_dump(mode="json"), dry_run=False)
    for state in ("validated", "starting"):
        store.set_state(RUN, state, 0.0)
    store.set_state(RUN, "started", 0.0, handle={"channel": "21-1-1", "test_id": "1", "barcode": RUN, "extra": {}})
    store.set_state(RUN, "running", 0.0)
    for first in range(1, 5001, 1000):
        block = np.zeros(1000, dtype=RECORD_DTYPE)
        block["seq"] = np.arange(first, first + 1000)
        block["test_time"] = block["seq"] * 10.0
        block["voltage"] = 3.7
        store.append_records(RUN, block)
    store.close()
    return data_dir / DB_NAME


def zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def garbage_header(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(b"this is not a database at all!!!" * 4)


def overwritten_pages(path: Path) -> None:
    size = path.stat().st_size
    with path.open("r+b") as f:  # keep the header page, overwrite everything after it with a pattern
        f.seek(4096)
        f.write(bytes(range(256)) * ((size - 4096) // 256))


def truncated(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 3)


def foreign(path: Path) -> None:
    path.unlink()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, data BLOB)")
    db.commit()
    db.close()


DAMAGE = {"zero-bytes": zero_bytes, "garbage-header": garbage_header, "overwritten-pages": overwritten_pages,
          "truncated": truncated, "foreign": foreign}

COMMANDS = [
    ["runs"], ["runs", "--json"], ["status"], ["status", RUN], ["status", RUN, "--json"], ["export", RUN],
    ["export", RUN, "--summary"], ["attach", RUN], ["stop", RUN], ["stop", RUN, "--force"], ["pause", RUN],
    ["continue", RUN], ["run", "p1-li-deposition", "--cell", "host-cu-li", "--dry-run"],
]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_every_command_on_a_damaged_store_fails_with_one_clear_line(tmp_path, damage):
    path = filled(tmp_path / "data")
    DAMAGE[damage](path)
    before = path.read_bytes()
    for command in COMMANDS:
        result = runner.invoke(app, [*command, "--data-dir", str(tmp_path / "data")])
        what = f"{damage}: station {' '.join(command)}"
        assert result.exception is None or isinstance(result.exception, SystemExit), (what, result.exception)
        assert result.exit_code == 4, (what, result.exit_code, result.output)
        assert "Traceback" not in result.output, what
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and "storage error:" in lines[0], (what, result.stderr)
    assert path.read_bytes() == before  # nothing was written over it


def test_a_zero_byte_store_names_the_fix_and_is_not_replaced(tmp_path):
    path = filled(tmp_path)
    zero_bytes(path)
    with pytest.raises(StoreError, match=r"is empty \(0 bytes\), so its runs are gone: .*restore it from a backup, "
                                         r"or delete it to start an empty store"):
        Store(tmp_path)
    assert path.stat().st_size == 0


def test_a_damaged_store_names_the_recovery(tmp_path):
    path = filled(tmp_path)
    garbage_header(path)
    with pytest.raises(StoreError) as info:
        Store(tmp_path)
    assert str(info.value) == (
        f"{path} is damaged (it does not start with the SQLite header); stop every station using it and keep a "
        f"copy, then recover it with `sqlite3 station.sqlite .recover | sqlite3 recovered.sqlite` and put "
        f"recovered.sqlite in its place, or restore a backup; move the file away to start an empty store")


def test_a_new_store_and_one_whose_data_is_still_in_its_wal_open(tmp_path):
    assert Store(tmp_path / "new").runs() == []
    store = Store(tmp_path / "wal")
    store.db.execute("PRAGMA wal_autocheckpoint=0")
    store.create_run(run_id="r1", at=0.0, channel="c/1", instrument={}, protocol_name="p", protocol_file=None,
                     protocol_source="", parameters={}, program="{}", cell={}, dry_run=True)
    assert (tmp_path / "wal" / (DB_NAME + "-wal")).stat().st_size > 0
    assert [r.id for r in Store(tmp_path / "wal").runs()] == ["r1"]  # read while the writer still holds the WAL
