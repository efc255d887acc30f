"""Records carry the chamber temperature (degC, NaN without a reading): blocks of both older layouts read back
with it NaN and are widened when appended, and the BDF records file gets ``Ambient Temperature / degC`` only
when some record has a reading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drivers.base import Record
from protocols.cells import load_cell
from protocols.loader import load_protocol
from protocols.program import RestStep, StepProgram
from station.exports import writer
from station.exports.records import record_table, time_series
from station.exports.vocabulary import RECORD_COLUMNS, TERMS
from station.store import RECORD_DTYPE, RECORD_DTYPE_V1, Store, to_block
from station.store.records import RECORD_DTYPE_V2, RECORD_DTYPE_V3, conformed, read_block

RUN = "20261130-120000-abc19a"


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path)
    loaded, cell = load_protocol("p3-full-cell-cycling"), load_cell("predeposited-ncm622")
    store.create_run(run_id=RUN, at=0.0, channel="sim-neware/21-1-1", instrument={"kind": "neware"},
                     protocol_name=loaded.name, protocol_file=None, protocol_source=loaded.source.text,
                     parameters=loaded.resolved_parameters(), program=loaded.bind(cell).to_json(),
                     cell=cell.model_dump(mode="json"), dry_run=False)
    return store


def _raw(store: Store, block: np.ndarray) -> None:
    """Store a block as a writer of its (older) layout did, bytes as they were."""
    first, last = int(block["seq"][0]), int(block["seq"][-1])
    with store.transaction() as db:
        db.execute("INSERT INTO record_blocks(run_id, first_seq, last_seq, count, data) VALUES (?,?,?,?,?)",
                   (RUN, first, last, len(block), block.tobytes()))
        db.execute("UPDATE runs SET last_seq=? WHERE id=?", (last, RUN))


def test_the_layout_ends_with_two_temperatures_in_degc_and_the_older_ones_are_its_prefixes():
    assert RECORD_DTYPE.names[-2:] == ("temperature", "aux_temperature")
    assert RECORD_DTYPE["temperature"] == RECORD_DTYPE["aux_temperature"] == np.dtype("<f8")
    assert RECORD_DTYPE_V3.names == RECORD_DTYPE.names[:-1] and RECORD_DTYPE_V3.names[-1] == "temperature"
    assert RECORD_DTYPE_V2.names == RECORD_DTYPE.names[:-2] and RECORD_DTYPE_V2.names[-1] == "cv_cycle"
    assert RECORD_DTYPE_V1.names == RECORD_DTYPE.names[:-3]
    assert (RECORD_DTYPE_V1.itemsize, RECORD_DTYPE_V2.itemsize, RECORD_DTYPE_V3.itemsize,
            RECORD_DTYPE.itemsize) == (96, 104, 112, 120)


def test_a_block_of_the_layout_before_the_sensor_temperature_reads_back_with_none(store):
    v3 = np.zeros(2, dtype=RECORD_DTYPE_V3)
    v3["seq"], v3["voltage"], v3["temperature"], v3["frequency"] = [1, 2], [3.0, 3.1], [27.0, 27.1], np.nan
    _raw(store, v3)
    back = store.records(RUN)
    assert back.dtype == RECORD_DTYPE
    assert back["temperature"].tolist() == [27.0, 27.1] and np.isnan(back["aux_temperature"]).all()


def test_blocks_of_both_older_layouts_read_back_with_no_temperature(store):
    v1 = np.zeros(2, dtype=RECORD_DTYPE_V1)
    v1["seq"], v1["voltage"], v1["frequency"] = [1, 2], [3.0, 3.1], np.nan
    v2 = np.zeros(2, dtype=RECORD_DTYPE_V2)
    v2["seq"], v2["voltage"], v2["cv_cycle"], v2["z_real"] = [3, 4], [3.2, 3.3], [0, 2], np.nan
    _raw(store, v1)
    _raw(store, v2)
    back = store.records(RUN)
    assert back.dtype == RECORD_DTYPE
    assert back["seq"].tolist() == [1, 2, 3, 4] and back["voltage"].tolist() == [3.0, 3.1, 3.2, 3.3]
    assert back["cv_cycle"].tolist() == [0, 0, 0, 2]
    assert np.isnan(back["temperature"]).all()


def test_an_old_layout_block_appended_is_stored_widened_and_a_new_one_keeps_its_readings(store):
    old = np.zeros(2, dtype=RECORD_DTYPE_V2)
    old["seq"], old["frequency"] = [1, 2], np.nan
    assert store.append_records(RUN, old) == 2
    new = np.zeros(2, dtype=RECORD_DTYPE)
    new["seq"], new["temperature"] = [3, 4], [44.9, np.nan]
    assert store.append_records(RUN, new) == 4
    with store.transaction() as db:
        sizes = [len(bytes(row[0])) for row in db.execute("SELECT data FROM record_blocks WHERE run_id=? "
                                                            "ORDER BY first_seq", (RUN,))]
    assert sizes == [2 * RECORD_DTYPE.itemsize] * 2  # every stored blob in the current layout
    back = store.records(RUN)["temperature"]
    assert np.isnan(back[[0, 1, 3]]).all() and back[2] == 44.9


def test_read_block_refuses_a_size_no_layout_has():
    assert read_block(b"\0" * 100, 1) is None
    assert np.isnan(read_block(b"\0" * 104, 1)["temperature"]).all()  # no reading, not one of 0 degC


def test_a_channels_records_have_no_temperature_of_their_own():
    block = to_block([Record(seq=1, test_time=0.0, step_time=0.0, step_index=1, cycle=1, voltage=3.0, current=0.0,
                             capacity=0.0, energy=0.0)])
    assert np.isnan(block["temperature"]).all()
    assert np.isnan(conformed(block[["seq", "voltage"]])["temperature"]).all()


def _records(temperature: list[float]) -> np.ndarray:
    n = len(temperature)
    records = np.zeros(n, dtype=RECORD_DTYPE)
    records["seq"] = np.arange(1, n + 1)
    records["step_index"], records["cycle"] = 1, 1
    records["test_time"] = records["step_time"] = np.arange(n) * 60.0
    records["voltage"] = 3.0
    records["frequency"] = records["z_real"] = records["z_imag"] = np.nan
    records["temperature"] = temperature
    records["aux_temperature"] = np.nan  # no sensor on the cell
    return records


PROGRAM = StepProgram(protocol="rest", cell="x", steps=[RestStep(index=1)])


def test_the_records_file_gets_ambient_temperature_when_a_record_has_a_reading(tmp_path):
    assert TERMS["ambient_temperature_celsius"].label == "Ambient Temperature / degC"
    assert TERMS["ambient_temperature_celsius"].unit == "Cel"
    series = time_series(_records([27.0, np.nan, 44.95]), 0.0, PROGRAM)
    labels, _ = record_table(series)
    assert labels == [label for label, _ in RECORD_COLUMNS] + ["Ambient Temperature / degC"]
    writer.write_table(tmp_path / "t.csv", *record_table(series), "csv")
    column = pd.read_csv(tmp_path / "t.csv")["Ambient Temperature / degC"]
    assert column.iloc[0] == 27.0 and pd.isna(column.iloc[1]) and column.iloc[2] == 44.95  # no reading: empty


def test_the_records_file_has_no_temperature_column_without_a_reading():
    labels, _ = record_table(time_series(_records([np.nan] * 3), 0.0, PROGRAM))
    assert labels == [label for label, _ in RECORD_COLUMNS]


def test_the_records_file_gets_temperature_t1_when_the_instrument_has_a_sensor_on_the_cell(tmp_path):
    assert TERMS["temperature_t1_celsius"].label == "Temperature T1 / degC"
    records = _records([np.nan] * 3)
    records["aux_temperature"] = [27.3, 27.4, np.nan]
    series = time_series(records, 0.0, PROGRAM)
    labels, _ = record_table(series)
    assert labels == [label for label, _ in RECORD_COLUMNS] + ["Temperature T1 / degC"]
    writer.write_table(tmp_path / "t.csv", *record_table(series), "csv")
    column = pd.read_csv(tmp_path / "t.csv")["Temperature T1 / degC"]
    assert column.iloc[0] == 27.3 and column.iloc[1] == 27.4 and pd.isna(column.iloc[2])
