"""Analysis of runs: the numbers and figures of DESIGN section 1, from records and step programs only.

For notebooks::

    import station
    from station.analysis import analyze_run, cycle_table
    from station.run_data import load_run          # a stored run as RunData
    table = cycle_table(load_run(store, "2026..."))
    frame = station.load("2026...")                # its records as a pandas DataFrame

The functions load on first use (``from station.analysis import X`` imports X's module only), because the EIS fits
pull in impedance.py, pandas and matplotlib, which the cycling figures never need.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from station.analysis.run_data import RunData

#: public name -> the module that defines it
_WHERE = {
    "analyze_run": "report",
    "cycle_table": "cycling", "CycleTable": "cycling", "retention": "cycling", "cycles_to": "cycling",
    "default_reference": "cycling", "first_cycle_efficiency": "cycling", "average_ce": "cycling",
    "analyze_cycling": "cycling",
    "dqdv": "dqdv",
    "analyze_plating": "plating",
    "spectra": "eis", "fit_spectrum": "eis", "analyze_eis": "eis",
    "analyze_dc": "dcpol",
    "analyze_conductivity": "conductivity",
    "analyze_cv": "cv",
}

__all__ = ["RunData", *_WHERE]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'station.analysis' has no attribute {name!r}")
    return getattr(import_module(f"station.analysis.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
