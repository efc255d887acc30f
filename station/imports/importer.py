"""One vendor file into the store: check the path, read it with its vendor's reader, synthesise the step program,
store the run and its records in one transaction (:meth:`station.store.Store.import_run`).

Imported runs are ordinary finished runs marked by their instrument record (``{"kind": "import", "vendor", "file",
"file_version", "reader", "sha256"}``), so ``station runs``, analysis, plots and exports treat them like any other.
Every run belongs to a sample: the cell record (area, mass, thickness) that per-area and per-mass figures need comes
from it, and a sample's runs stay one history. The sample must already exist (``station sample new``): a mistyped
id must fail, not start a second history for the same cell.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from protocols.cells import Cell
from protocols.clock import Clock
from station.imports.common import ImportFailure, VendorTable, synthesise_program, to_records
from station.runs import new_run_id
from station.store import Store

#: file suffix -> vendor module (imported only when a file of that kind is read)
SUFFIXES = {".nda": "neware", ".ndax": "neware", ".mpr": "biologic"}
CHANNEL = "import"


@dataclass(frozen=True)
class ImportResult:
    run_id: str
    file: str
    vendor: str
    file_version: str
    reader: str
    records: int
    steps: list[str]
    sample_id: str
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "file": self.file, "vendor": self.vendor, "file_version": self.file_version,
                "reader": self.reader, "records": self.records, "steps": self.steps, "sample": self.sample_id,
                "warnings": self.warnings}


def check_path(path: Path) -> str:
    """The vendor module for ``path``, or a one-line :class:`ImportFailure` saying what is wrong with it."""
    if not path.exists():
        raise ImportFailure(f"{path}: no such file; give the path of a .nda, .ndax or .mpr file")
    if not path.is_file():
        raise ImportFailure(f"{path}: not a file; give the path of a .nda, .ndax or .mpr file")
    vendor = SUFFIXES.get(path.suffix.lower())
    if vendor is None:
        raise ImportFailure(f"{path}: '{path.suffix or 'no extension'}' is not a vendor file this station reads; "
                            f"give a Neware .nda/.ndax or a Biologic .mpr file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImportFailure(f"{path}: cannot be read ({exc.strerror}); fix its permissions") from None
    if size == 0:
        raise ImportFailure(f"{path}: the file is empty (0 bytes); copy it off the instrument PC again")
    return vendor


def read_table(path: Path) -> VendorTable:
    """The file's data points through its vendor's reader (imported here, lazily)."""
    vendor = check_path(path)
    if vendor == "neware":
        from station.imports import neware as module
    else:
        from station.imports import biologic as module  # type: ignore[no-redef]
    try:
        return module.read(path)
    except OSError as exc:
        raise ImportFailure(f"{path}: cannot be read ({exc.strerror or exc})") from None


def import_file(store: Store, path: str | Path, *, sample_id: str, clock: Clock) -> ImportResult:
    """Import one file as a finished run of sample ``sample_id``; nothing is stored unless all of it is."""
    store.sample(sample_id)  # UnknownSample before the file is read: the caller named it wrong
    path = Path(path)
    return store_table(store, path, read_table(path), sample_id=sample_id, clock=clock)


def store_table(store: Store, path: Path, table: VendorTable, *, sample_id: str, clock: Clock) -> ImportResult:
    """Store a file's table (from :func:`read_table`) as a finished run of the sample, in one transaction."""
    sample = store.sample(sample_id)
    cell = Cell.model_validate(sample.cell)
    digest = _sha256(path)
    for row in store.runs_of_sample(sample.id):
        if row.instrument.get("kind") == "import" and row.instrument.get("sha256") == digest:
            raise ImportFailure(f"{path}: already imported for sample {sample.id} as run {row.id}; "
                                f"'station runs' lists it")
    capacity = cell.capacity if cell.capacity and cell.capacity > 0 else None
    program, index_of = synthesise_program(table, name=f"import:{path.name}", cell=cell.name,
                                           nominal_capacity=capacity)
    records = to_records(table, index_of, program)
    instrument = {"kind": "import", "vendor": table.vendor, "file": path.name, "file_version": table.file_version,
                  "reader": table.reader, "sha256": digest}
    source = json.dumps({"imported_from": str(path.resolve()), "vendor": table.vendor,
                         "file_version": table.file_version, "reader": table.reader, "sha256": digest}, indent=2)
    run_id = new_run_id(clock)
    message = f"imported from {path.name} ({table.vendor} {table.file_version}, {table.reader})"
    store.import_run(run_id=run_id, at=clock.unix(), channel=CHANNEL, instrument=instrument,
                     protocol_name=f"import:{path.name}", protocol_file=str(path.resolve()), protocol_source=source,
                     program=program.to_json(), cell=sample.cell, sample_id=sample.id, started_at=table.start_unix,
                     ended_at=None if table.start_unix is None else table.start_unix + float(table.test_time[-1]),
                     records=records, message=message)
    steps = [f"{s.index} {s.kind}: {s.label}" for s in program.steps]
    return ImportResult(run_id=run_id, file=str(path), vendor=table.vendor, file_version=table.file_version,
                        reader=table.reader, records=len(records), steps=steps, sample_id=sample.id,
                        warnings=list(table.warnings))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
