"""Analysis of runs: the numbers and figures of DESIGN section 1, from records and step programs only.

Importable from notebooks: ``from station.analysis import RunData``; a stored run loads with
:func:`station.run_data.load_run` (or ``station.load(run_id)`` for its records as a DataFrame).
"""

from station.analysis.run_data import RunData

__all__ = ["RunData"]
