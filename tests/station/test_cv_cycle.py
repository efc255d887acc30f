"""Records of a CV step carry the instrument's CV cycle count, and blocks stored before that field existed still
read (with ``cv_cycle`` 0)."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from protocols.cells import load_cell
from protocols.loader import load_protocol
from station.cli import app
from station.store import RECORD_DTYPE, RECORD_DTYPE_V1, Store


def test_cv_records_count_cycles_at_each_arrival_at_the_second_vertex(tmp_path):
    done = CliRunner().invoke(app, ["run", "p6-cyclic-voltammetry", "--cell", "llto-li", "--dry-run", "--json",
                                    "--data-dir", str(tmp_path), "--set", "cycles=3", "--set", "scan_rate=2 mV/s"])
    assert done.exit_code == 0, done.output
    store = Store(tmp_path)
    records = store.records(json.loads(done.stdout)["run_id"])
    rest, cv = records[records["step_index"] == 1], records[records["step_index"] == 2]
    assert set(rest["cv_cycle"]) == {0}  # the rest before the scan is no CV
    assert list(np.unique(cv["cv_cycle"])) == [1, 2, 3]
    assert np.all(np.diff(cv["cv_cycle"]) >= 0)  # counted up, never back
    assert set(records["cycle"]) == {1}  # the program's cycle rule is untouched by the scan's own cycles
    # P6: OCV -> v_low (0.01 V) -> v_high (2.50 V), repeated; each cycle ends on arriving at v_high
    for k in (1, 2):
        this, following = cv[cv["cv_cycle"] == k], cv[cv["cv_cycle"] == k + 1]
        assert this["voltage"][-1] >= 2.50 - 0.002 * 30  # within one record step (every 1 mV, 2 mV/s) of v_high
        assert this["voltage"].min() <= 0.01 + 0.002
        assert following["voltage"][0] > following["voltage"][len(following) // 4]  # the next one sweeps down first


def test_blocks_stored_before_cv_cycle_existed_read_back_with_it_zero(tmp_path):
    store = Store(tmp_path)
    loaded, cell = load_protocol("p3-full-cell-cycling"), load_cell("predeposited-ncm622")
    run_id = "20261130-120000-abcdef"
    store.create_run(run_id=run_id, at=0.0, channel="sim-neware/21-1-1", instrument={"kind": "neware"},
                     protocol_name=loaded.name, protocol_file=None, protocol_source=loaded.source.text,
                     parameters=loaded.resolved_parameters(), program=loaded.bind(cell).to_json(),
                     cell=cell.model_dump(mode="json"), dry_run=False)
    old = np.zeros(3, dtype=RECORD_DTYPE_V1)
    old["seq"] = [1, 2, 3]
    old["voltage"] = [3.0, 3.1, 3.2]
    old["frequency"] = np.nan
    with store.transaction() as db:
        db.execute("INSERT INTO record_blocks(run_id, first_seq, last_seq, count, data) VALUES (?,?,?,?,?)",
                   (run_id, 1, 3, 3, old.tobytes()))
        db.execute("UPDATE runs SET last_seq=3 WHERE id=?", (run_id,))
    back = store.records(run_id)
    assert back.dtype == RECORD_DTYPE
    assert back["seq"].tolist() == [1, 2, 3] and back["voltage"].tolist() == [3.0, 3.1, 3.2]
    assert back["cv_cycle"].tolist() == [0, 0, 0] and np.isnan(back["frequency"]).all()
    newer = np.zeros(1, dtype=RECORD_DTYPE_V1)  # a writer of the old layout appends: stored in the new one
    newer["seq"], newer["frequency"] = 4, np.nan
    assert store.append_records(run_id, newer) == 4
    assert store.records(run_id)["seq"].tolist() == [1, 2, 3, 4]
