"""The per-cycle summary file, from the analysis library's cycle table so that the export, ``station analyze``
and the plots agree on every per-cycle number (cycle numbering, which steps count, CE direction)."""

from __future__ import annotations

import numpy as np

from station.analysis.cycling import CycleTable
from station.exports.vocabulary import SUMMARY_BDF_COLUMNS, SUMMARY_PROJECT_COLUMNS


def summary_table(table: CycleTable) -> tuple[list[str], list[np.ndarray]]:
    """Headers and columns: cycle, tag, the cycle's charging and discharging capacity (Ah) and energy (Wh) and
    their nets (the end-of-cycle values of the 1.2.0 cycle-scope terms), then CE, energy efficiency, mean voltages
    and hysteresis (V). NaN where a ratio or mean has no denominator."""
    labels = [SUMMARY_BDF_COLUMNS[0][0], SUMMARY_PROJECT_COLUMNS[0],
              *(label for label, _ in SUMMARY_BDF_COLUMNS[1:]), *SUMMARY_PROJECT_COLUMNS[1:]]
    tags = np.array([t or "" for t in table.tag], dtype=object)
    columns = [table.cycle, tags, table.charge_ah, table.discharge_ah, table.charge_wh, table.discharge_wh,
               table.charge_ah - table.discharge_ah, table.charge_wh - table.discharge_wh,
               table.ce, table.energy_efficiency, table.mean_charge_v, table.mean_discharge_v, table.hysteresis_v]
    return labels, columns
