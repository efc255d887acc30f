"""``station export``: a run's records, EIS spectra or cycle summary in the Battery Data Format (CSV or Parquet),
each with a JSON metadata sidecar.

The vocabulary (which BDF release, which headers) is pinned in :mod:`station.exports.vocabulary`; the tables come
from :mod:`station.exports.records`, :mod:`station.exports.eis` and :mod:`station.exports.summary`; one pyarrow
writer (:mod:`station.exports.writer`) writes CSV and Parquet. Files of a run export:

* ``RUN.bdf.csv`` (or ``.parquet``): every record, test-scope capacities and energies, positive current charging;
* ``RUN.eis.bdf.csv``: the impedance points, when the run has any;
* ``RUN.summary.bdf.csv`` with ``--summary``: one row per cycle;
* ``*.metadata.json`` beside the records (or summary) file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from protocols.program import StepProgram
from station.analysis.cycling import cycle_table
from station.exports import vocabulary
from station.exports.eis import eis_table
from station.exports.metadata import sidecar
from station.exports.records import record_columns, record_table, time_series
from station.exports.summary import summary_table
from station.exports.writer import FORMATS, WriterMissing, write_table
from station.run_data import run_data
from station.store import RunRow, Store

__all__ = ["ExportError", "MissingDependency", "export_run", "started_at"]


class ExportError(Exception):
    """An export that cannot be written as asked; the message names the file and what to do."""


class MissingDependency(ExportError):
    """A package the asked-for format needs is not installed; the message says how to install it."""


def started_at(run: RunRow) -> float:
    """The unix time the instrument's test time counts from: when the station sent start (stored with the run);
    a run that never got that far has no records, and its creation time stands in."""
    return run.started_at if run.started_at is not None else run.created_at


def beside(path: Path, role: str, suffix: str) -> Path:
    """The file of another role next to ``path``: ``RUN.bdf.csv`` -> ``RUN.eis.bdf.csv``, ``out.csv`` ->
    ``out.eis.csv``; the sidecar (role ``metadata``) is always ``.json``."""
    stem = path.name.removesuffix(suffix)
    bdf_ext = stem.endswith(".bdf")
    stem = stem.removesuffix(".bdf")
    if role == "metadata":
        return path.with_name(f"{stem}{'.bdf' if bdf_ext else ''}.metadata.json")
    return path.with_name(f"{stem}.{role}{'.bdf' if bdf_ext else ''}{suffix}")


def export_run(store: Store, run_id: str, out: Path | None, fmt: str = "csv", summary: bool = False) -> list[Path]:
    """Write the run's records (and its EIS file when it has impedance points), or its cycle summary, and the
    metadata sidecar; returns the files written."""
    if fmt not in FORMATS:
        raise ExportError(f"format '{fmt}' is not one of {', '.join(FORMATS)}; choose --format csv or parquet")
    run = store.run(run_id)
    records = store.records(run.id)
    suffix = FORMATS[fmt]
    stem = f"{run.id}{'.summary' if summary else ''}.bdf"
    path = Path(out) if out else store.data_dir / "exports" / f"{stem}{suffix}"
    if path.is_dir():
        path = path / f"{stem}{suffix}"
    unix0 = started_at(run)
    written: list[Path] = []
    columns: dict[str, list[dict[str, str | None]]] = {}
    files: dict[str, str | None] = {}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if summary:
            labels, cols = summary_table(cycle_table(run_data(run, records)))
            write_table(path, labels, cols, fmt)
            files["summary"] = path.name
            columns["summary"] = vocabulary.describe_summary()
        else:
            series = time_series(records, unix0, StepProgram.from_json(run.program))
            write_table(path, *record_table(series), fmt)
            files["records"] = path.name
            columns["records"] = vocabulary.describe(record_columns(series))
            eis = eis_table(records, series)
            files["eis"] = None
            if eis is not None:
                eis_path = beside(path, "eis", suffix)
                write_table(eis_path, *eis, fmt)
                written.append(eis_path)
                files["eis"] = eis_path.name
                columns["eis"] = vocabulary.describe(vocabulary.EIS_COLUMNS)
        meta = beside(path, "metadata", suffix)
        doc = sidecar(run, store.events(run.id), unix0, files, columns)
        meta.write_text(json.dumps(doc, indent=2, default=_json_default))
    except WriterMissing as exc:
        raise MissingDependency(str(exc)) from None
    except OSError as exc:
        raise ExportError(f"cannot write {exc.filename or path}: {exc.strerror}; choose another --out") from None
    return [path, *written, meta]


def _json_default(value: object) -> object:
    """numpy scalars in the sidecar (from stored JSON they are plain already) as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")
