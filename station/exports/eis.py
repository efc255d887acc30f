"""The EIS file: one row per impedance point, with the run's time, step and cycle so each spectrum can be placed in
the records file, instead of impedance columns that would be empty on every cycling record."""

from __future__ import annotations

from typing import Any

import numpy as np

from station.exports.vocabulary import EIS_COLUMNS


def eis_rows(records: np.ndarray) -> np.ndarray:
    """Where the records hold an impedance point: a frequency above zero (outside EIS the store keeps NaN; a zero
    there, as in blocks written by hand or by older tools, is no impedance point either)."""
    frequency = records["frequency"]
    with np.errstate(invalid="ignore"):
        return np.isfinite(frequency) & (frequency > 0)


def eis_table(records: np.ndarray, series: dict[str, Any]) -> tuple[list[str], list[np.ndarray]] | None:
    """Headers and columns of the EIS file, or None for a run without impedance points. The imaginary part keeps
    the sign the instrument reports (negative for capacitive behaviour); the phase is atan2(Z'', Z') in degrees,
    as the ontology defines it; the magnitude is hypot(Z', Z''). ``series`` is the records'
    :func:`station.exports.records.time_series`, so that Record Index, Step Count and times agree with the
    records file."""
    rows = eis_rows(records)
    if not rows.any():
        return None
    cols = {name: series[name][rows] for _, name in EIS_COLUMNS if name in series}
    z_real, z_imag = records["z_real"][rows], records["z_imag"][rows]
    cols.update({"frequency_hertz": records["frequency"][rows], "real_impedance_ohm": z_real,
                 "imaginary_impedance_ohm": z_imag, "absolute_impedance_ohm": np.hypot(z_real, z_imag),
                 "phase_degree": np.degrees(np.arctan2(z_imag, z_real))})
    return [label for label, _ in EIS_COLUMNS], [cols[name] for _, name in EIS_COLUMNS]
