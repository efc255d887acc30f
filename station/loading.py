"""``station.load(run_id)``: a stored run's records as a pandas DataFrame, for notebooks.

Why pandas and not polars: a notebook's next step is a plot (matplotlib, seaborn), a fit (impedance.py, scipy) or
another lab tool (batterydf, cellpy), and all of them take pandas; pandas is what a lab's scripts already use.
polars arrives only with the optional Neware reader. pandas is a core dependency (impedance.py needs it too), and
this module imports it only when called, so that the CLI and the service never pay for it.

Columns are the records export's (station/exports: BDF 1.2.0 preferred labels, SI units, positive current charging),
built by the same code, so a notebook and an exported file never disagree: ``Record Index / 1``, ``Test Time / s``,
``Unix Time / s`` (NaN when the run never recorded its start), ``Voltage / V``, ``Current / A``, ``Cycle Count / 1``,
``Step Count / 1``, ``Step ID`` (the program's step number; ``df.attrs["program"]`` holds the program), ``Step
Type``, ``Step Index / 1`` (the record's place within its step), ``Step Time / s`` and the test-, step- and
cycle-scope charging, discharging, net and cumulative capacities and energies. Then, beyond the records file:
``Frequency / Hz``, ``Real Impedance / ohm`` and ``Imaginary Impedance / ohm`` on impedance points (NaN elsewhere;
Im Z as measured, negative for a capacitive cell), and ``CV Cycle / 1`` (the cycle of a cyclic voltammetry step,
0 outside one; not a BDF term).

``df.attrs`` holds the run's id, state, sample, protocol, cell and instrument records and the step program (JSON).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from station.exports.records import time_series
from station.exports.vocabulary import RECORD_COLUMNS
from station.exports.writer import Categorical

if TYPE_CHECKING:
    import pandas as pd

#: (label, stored field) of the stored quantities the records file leaves to the EIS file or does not carry
_EXTRA = (("Frequency / Hz", "frequency"), ("Real Impedance / ohm", "z_real"),
          ("Imaginary Impedance / ohm", "z_imag"), ("CV Cycle / 1", "cv_cycle"),
          ("Ambient Temperature / degC", "temperature"), ("Temperature T1 / degC", "aux_temperature"))
#: the column order of the frame
COLUMNS = (*(label for label, _ in RECORD_COLUMNS), *(label for label, _ in _EXTRA))


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
    from station.config import load_config
    from station.store import Store

    cfg = load_config(None)[0]
    store = Store(data_dir or cfg.data_dir, cfg.database)
    try:
        row = store.run(run_id)
        records = store.records(row.id)
    finally:
        store.close()
    program = StepProgram.from_json(row.program)
    series = time_series(records, np.nan if row.started_at is None else row.started_at, program)
    columns: dict[str, Any] = {}
    for label, name in RECORD_COLUMNS:
        column = series[name]
        columns[label] = (pd.Categorical.from_codes(column.codes, categories=column.categories)
                          if isinstance(column, Categorical) else column)
    for label, name in _EXTRA:
        columns[label] = records[name]
    frame = pd.DataFrame(columns)
    frame.attrs.update({"run_id": row.id, "state": str(row.state), "sample_id": row.sample_id,
                        "protocol": row.protocol_name, "cell": row.cell, "instrument": row.instrument,
                        "started_at": row.started_at, "program": row.program})
    return frame
