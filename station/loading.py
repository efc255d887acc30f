"""``station.load(run_id)``: a stored run's records as a pandas DataFrame, for notebooks.

Why pandas and not polars: a notebook's next step is a plot (matplotlib, seaborn), a fit (impedance.py, scipy) or
another lab tool (batterydf, cellpy), and all of them take pandas; pandas is what a lab's scripts already use.
polars arrives only with the optional Neware reader. pandas is a core dependency (impedance.py needs it too), and
this module imports it only when called, so that the CLI and the service never pay for it.

Columns carry Battery Data Format preferred labels (``Quantity / unit``, SI units, positive current charging):

==============================  ===================================================================================
``Record Index / 1``            the record's number in the run (1, 2, ...)
``Test Time / s``               time since the test started
``Unix Time / s``               wall-clock time (UTC) of the record; NaN when the run never recorded its start
``Step Time / s``               time since the step started
``Step Index / 1``              the step program's step number (``df.attrs["program"]`` holds the program)
``Step Count / 1``              how many steps have started, counting from 1: never resets
``Step Type``                   the program step's type (``CC_CHG``, ``CC_DCH``, ``CCCV_CHG``, ``CV``, ``REST``, ...)
``Cycle Count / 1``             the cycle, as the run numbered it (imported runs: the vendor file's own counter)
``Voltage / V``, ``Current / A``
``Step Net Capacity / Ah``      charge passed since the step started, signed (negative while discharging)
``Step Net Energy / Wh``        energy since the step started, signed
``Frequency / Hz``              impedance points only (NaN elsewhere), with ``Real Impedance / ohm`` and
                                ``Imaginary Impedance / ohm`` (Im Z as measured: negative for a capacitive cell)
``CV Cycle / 1``                the cycle of a cyclic voltammetry step (1, 2, ...; 0 outside CV steps); not BDF
==============================  ===================================================================================

``df.attrs`` holds the run's id, state, sample, protocol, cell and instrument records and the step program (JSON).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: (label, stored field) of the columns taken as they are stored
_STORED = (("Record Index / 1", "seq"), ("Test Time / s", "test_time"), ("Step Time / s", "step_time"),
           ("Step Index / 1", "step_index"), ("Cycle Count / 1", "cycle"), ("Voltage / V", "voltage"),
           ("Current / A", "current"), ("Step Net Capacity / Ah", "capacity"), ("Step Net Energy / Wh", "energy"),
           ("Frequency / Hz", "frequency"), ("Real Impedance / ohm", "z_real"),
           ("Imaginary Impedance / ohm", "z_imag"), ("CV Cycle / 1", "cv_cycle"))
#: the column order of the frame
COLUMNS = ("Record Index / 1", "Test Time / s", "Unix Time / s", "Step Time / s", "Step Index / 1",
           "Step Count / 1", "Step Type", "Cycle Count / 1", "Voltage / V", "Current / A", "Step Net Capacity / Ah",
           "Step Net Energy / Wh", "Frequency / Hz", "Real Impedance / ohm", "Imaginary Impedance / ohm",
           "CV Cycle / 1")


class LoadError(Exception):
    """The run cannot be loaded as a DataFrame (pandas missing); the message says how to fix it."""


def load(run_id: str, data_dir: str | Path | None = None) -> pd.DataFrame:
    """The records of run ``run_id`` (an id or a unique prefix of one) as a pandas DataFrame.

    ``data_dir``: the data directory; by default the one ``station`` commands use (``$STATION_DATA``, the
    station.yaml's ``data_dir``, or the per-user default).
    """
    try:
        import pandas as pd
    except ImportError:
        raise LoadError('station.load needs pandas, which is not installed; pip install "pandas>=2" (a dependency '
                        'of battery-test-station: reinstall it)') from None
    from protocols.program import StepProgram
    from station.store import Store

    if data_dir is None:
        from station.config import load_config

        data_dir = load_config(None)[0].data_dir
    store = Store(data_dir)
    try:
        row = store.run(run_id)
        records = store.records(row.id)
    finally:
        store.close()
    program = StepProgram.from_json(row.program)
    columns: dict[str, Any] = {label: records[name] for label, name in _STORED if name in (records.dtype.names or ())}
    columns["Unix Time / s"] = records["test_time"] + (np.nan if row.started_at is None else row.started_at)
    columns["Step Count / 1"] = np.cumsum(_step_starts(records), dtype=np.int64)
    # a categorical built from codes: one small lookup per record, no Python object per record
    types = [_step_type(s) for s in program.steps]
    categories = sorted(set(types))
    code_of_step = np.array([-1, *(categories.index(t) for t in types)], dtype=np.int64)
    index = records["step_index"]
    known = (index >= 1) & (index <= len(types))
    columns["Step Type"] = pd.Categorical.from_codes(code_of_step[np.where(known, index, 0)], categories=categories)
    frame = pd.DataFrame({label: columns[label] for label in COLUMNS if label in columns})
    frame.attrs.update({"run_id": row.id, "state": str(row.state), "sample_id": row.sample_id,
                        "protocol": row.protocol_name, "cell": row.cell, "instrument": row.instrument,
                        "started_at": row.started_at, "program": row.program})
    return frame


def _step_starts(records: np.ndarray) -> np.ndarray:
    """True where a record opens a new pass through a step: another step or cycle, or the step clock restarting."""
    if not len(records):
        return np.zeros(0, dtype=bool)
    idx, cyc, st = records["step_index"], records["cycle"], records["step_time"]
    return np.r_[True, (idx[1:] != idx[:-1]) | (cyc[1:] != cyc[:-1]) | (st[1:] < st[:-1])]


def _step_type(step: Any) -> str:
    """BDF-style step type of a program step."""
    kind = step.kind
    if kind in ("charge", "discharge"):
        return f"{'CCCV' if step.hold_voltage is not None else 'CC'}_{'CHG' if kind == 'charge' else 'DCH'}"
    if kind == "power":
        return "CP_CHG" if step.power > 0 else "CP_DCH"
    if kind == "hold":
        return {"charge": "CV_CHG", "discharge": "CV_DCH"}.get(step.direction or "", "CV")
    return {"rest": "REST", "eis": "EIS", "ca": "CA", "cv": "CYCLIC_VOLTAMMETRY", "lsv": "LSV"}.get(kind,
                                                                                                  kind.upper())
