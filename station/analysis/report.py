"""One run's whole analysis as a JSON-ready dict: the analyses its step program calls for, each in its own key.

Which analyses run is read from the program's step kinds, never from the protocol's name, so a user's own protocol
gets the same treatment as the library's:

* ``cycling``: the program both charges and discharges (P2-P4);
* ``plating``: it has a lithiation step (a discharge to 0 V) or a discharge that runs below 0 V (P1, P2);
* ``eis``: an EIS step (P5, P7); ``dc_polarisation``: a CA step (P7); ``conductivity``: EIS and CA (P7);
* ``cv``: a CV step (P6).

Each key holds the analysis's ``to_dict()`` (SI floats, unit-suffixed keys; NaN made None so the JSON is
standard), or ``{"error": "..."}`` when that analysis could not be done on this run's data (the other analyses
still report). The EIS, DC, conductivity and CV modules are imported when a run needs them (the EIS fits bring
impedance.py, pandas and matplotlib, which a cycling run never needs).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from station.analysis.cycling import OptionError, analyze_cycling
from station.analysis.plating import analyze_plating
from station.analysis.run_data import RunData

#: (key, module, function, the step kinds that call for it (all needed), whether it takes ``circuit``)
_MEASUREMENTS: tuple[tuple[str, str, str, frozenset[str], bool], ...] = (
    ("eis", "station.analysis.eis", "analyze_eis", frozenset({"eis"}), True),
    ("dc_polarisation", "station.analysis.dcpol", "analyze_dc", frozenset({"ca"}), False),
    ("conductivity", "station.analysis.conductivity", "analyze_conductivity", frozenset({"eis", "ca"}), True),
    ("cv", "station.analysis.cv", "analyze_cv", frozenset({"cv"}), False),
)


def analyze_run(data: RunData, *, reference_cycle: int | None = None, ce_range: tuple[int, int] | None = None,
                circuit: str | None = None) -> dict[str, Any]:
    """Every analysis the run's program calls for. ``reference_cycle`` and ``ce_range`` (first, last; stored
    cycle numbers) go to the cycling analysis, ``circuit`` (impedance.py syntax) to EIS and conductivity."""
    doc: dict[str, Any] = {
        "run_id": data.run_id, "label": data.label, "sample_id": data.sample_id, "protocol": data.protocol_name,
        "cell": data.cell.name, "campaign_stage": data.campaign_stage, "lithiation": data.lithiation,
        "records": len(data.records),
    }
    _add(doc, "cycling", lambda: analyze_cycling(data, reference_cycle, ce_range), clean=False)  # clean already
    _add(doc, "plating", lambda: analyze_plating(data), clean=False)
    kinds = {step.kind for step in data.program.steps}
    for key, module, function, needs, takes_circuit in _MEASUREMENTS:
        if not needs <= kinds:
            continue
        analysis = getattr(importlib.import_module(module), function)  # on first need: EIS loads impedance.py
        _add(doc, key, lambda a=analysis, c=takes_circuit: a(data, circuit=circuit) if c else a(data))
    return doc


def _add(doc: dict[str, Any], key: str, analysis: Callable[[], Any], clean: bool = True) -> None:
    """Run one analysis into ``doc[key]``: its ``to_dict()``, nothing when it does not apply (None), or the one-line
    reason it could not be done (analyses raise ValueError with a message naming the place and the fix). A choice of
    the caller's that does not fit the run (:class:`OptionError`) is raised on, for the caller to report."""
    try:
        result = analysis()
    except OptionError:
        raise
    except ValueError as exc:
        doc[key] = {"error": str(exc)}
        return
    if result is not None:
        doc[key] = _json_ready(result.to_dict()) if clean else result.to_dict()


def _json_ready(value: Any) -> Any:
    """NaN and infinities become None (standard JSON has neither), numpy scalars plain Python numbers."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
