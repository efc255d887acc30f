"""The numbers behind a run page's analysis figures, as JSON: what ``station plot`` draws, for a browser to draw.

Everything comes from :mod:`station.analysis` (the cycle table and retention, the EIS spectra and their fits, the CV
cycles, the conductivity), so a figure in the dashboard and ``station analyze`` always agree; nothing here imports
matplotlib. Long curves are thinned with :func:`station.api.series.keep_indices` (each bucket's min and max kept)
so a page stays light whatever the run's length. Each figure is None when it does not apply to the run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols.program import CvStep, LoopStep
from station.analysis.cv import sweep_geometry
from station.analysis.cycling import AnalysisError, cycle_table, retention
from station.analysis.eis import fit_spectrum, spectra
from station.analysis.run_data import RunData
from station.analysis.steps import CYCLING_KINDS, step_runs
from station.api.series import json_floats, keep_indices

#: voltage profiles sent at most (first, last and evenly between)
MAX_PROFILE_CYCLES = 12
#: points per profile curve (one direction of one cycle) and per CV cycle, at most
CURVE_POINTS = 500
CV_POINTS = 1000
#: points of a fitted EIS curve, log-spaced across the measured band
FIT_POINTS = 200


def figures(data: RunData, analysis: dict[str, Any]) -> dict[str, Any]:
    """Every figure of the run page; ``analysis`` is :func:`station.analysis.report.analyze_run`'s answer for
    ``data`` (its conductivity is sent as it is, not computed again)."""
    conductivity = analysis.get("conductivity")
    return {"cycles": cycles_figure(data), "profiles": profiles_figure(data), "nyquist": nyquist_figure(data),
            "cv": cv_figure(data),
            "conductivity": conductivity if isinstance(conductivity, dict) and "error" not in conductivity else None}


def cycles_figure(data: RunData) -> dict[str, list] | None:
    """Charge and discharge capacity (Ah), CE and retention (fractions) per stored cycle: for a program that both
    charges and discharges (as the cycling analysis), None otherwise."""
    kinds = {step.kind for step in data.program.steps}
    if not {"charge", "discharge"} <= kinds or len(data.records) == 0:
        return None
    table = cycle_table(data)
    if len(table) == 0:
        return None
    try:
        kept = retention(table)
    except AnalysisError:  # the default reference gave nothing back: no retention to draw
        kept = np.full(len(table), np.nan)
    return {"cycle": [int(c) for c in table.cycle], "charge_ah": json_floats(table.charge_ah),
            "discharge_ah": json_floats(table.discharge_ah), "ce": json_floats(table.ce),
            "retention": json_floats(kept)}


def profile_cycles(available: list[int]) -> list[int]:
    """All cycles up to :data:`MAX_PROFILE_CYCLES`; else the first, the last and evenly spaced ones between."""
    if len(available) <= MAX_PROFILE_CYCLES:
        return available
    rows = np.unique(np.round(np.linspace(0, len(available) - 1, MAX_PROFILE_CYCLES)).astype(int))
    return [available[k] for k in rows]


def profiles_figure(data: RunData) -> list[dict[str, Any]] | None:
    """Voltage against capacity, one curve per direction of each chosen cycle of a looping program: every
    charging (or discharging) step of the cycle from zero, the capacity continued across the cycle's steps of
    that direction (a CC step and its CV hold make one curve). None for a program without a loop (its voltage
    against time is the series)."""
    if not any(isinstance(step, LoopStep) for step in data.program.steps) or len(data.records) == 0:
        return None
    records = data.records
    runs = step_runs(records, data.program)
    moving = runs.counted() & np.isin(runs.kind, list(CYCLING_KINDS))
    chosen = profile_cycles(sorted({int(c) for c in runs.cycle[moving]}))
    out = []
    for cycle in chosen:
        curves: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        passed = {"charge": 0.0, "discharge": 0.0}
        keep = moving & (runs.cycle == cycle)
        for start, end, q in zip(runs.start[keep], runs.end[keep], runs.capacity[keep], strict=True):
            direction = "charge" if q > 0 else "discharge"
            part = records[start:end + 1]
            x = passed[direction] + np.abs(np.asarray(part["capacity"], dtype=float))
            xs, vs = curves.setdefault(direction, ([], []))
            xs.append(x)
            vs.append(np.asarray(part["voltage"], dtype=float))
            passed[direction] = float(x[-1])
        for direction, (xs, vs) in curves.items():
            x, v = np.concatenate(xs), np.concatenate(vs)
            rows, _ = keep_indices([x, v], CURVE_POINTS)
            out.append({"cycle": cycle, "direction": direction, "capacity_ah": json_floats(x[rows]),
                        "voltage_v": json_floats(v[rows])})
    return out or None


def nyquist_figure(data: RunData) -> list[dict[str, Any]] | None:
    """Every EIS spectrum (Z' and -Z'' in ohm, as measured) with its fit of the cell kind's default circuit (the
    fit ``station analyze`` reports) on :data:`FIT_POINTS` frequencies; the fit lists are empty when it does not
    converge. None for a run without impedance points."""
    found = spectra(data)
    if not found:
        return None
    several = len(found) > 1
    out = []
    for spectrum in found:
        label = f"cycle {spectrum.cycle}, step {spectrum.step_index}" if several else data.label
        if data.lithiation:
            label += f" ({data.lithiation} lithiation)"
        doc: dict[str, Any] = {"label": label, "cycle": spectrum.cycle, "step_index": spectrum.step_index,
                               "frequency_hz": json_floats(spectrum.frequency_hz),
                               "z_real": json_floats(spectrum.z_real_ohm),
                               "minus_z_imag": json_floats(-spectrum.z_imag_ohm), "circuit": None,
                               "fit_z_real": [], "fit_minus_z_imag": []}
        try:
            fit = fit_spectrum(spectrum, None, data.cell.model_type)
        except ValueError:  # too few points, or no convergence: the measured points alone
            fit = None
        f = spectrum.frequency_hz[np.isfinite(spectrum.frequency_hz) & (spectrum.frequency_hz > 0)]
        if fit is not None and len(f):
            z = fit.predict(np.geomspace(float(f.max()), float(f.min()), FIT_POINTS))
            doc.update(circuit=fit.circuit, fit_z_real=json_floats(z.real), fit_minus_z_imag=json_floats(-z.imag))
        out.append(doc)
    return out


def cv_figure(data: RunData) -> list[dict[str, Any]] | None:
    """Current against potential per CV cycle (the records' ``cv_cycle``, numbered from the waveform where a
    record lacks it, as the CV analysis does), per execution of a CV step. None for a run without CV records."""
    records = data.records
    cv_steps = {s.index: s for s in data.program.steps if isinstance(s, CvStep)}
    rows = np.flatnonzero(np.isin(records["step_index"], list(cv_steps))) if cv_steps else np.zeros(0, int)
    if len(rows) == 0:
        return None
    out = []
    breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(records["step_index"][rows]) != 0)) + 1
    for block in np.split(rows, breaks):
        step = int(records["step_index"][block[0]])
        numbers, _ = sweep_geometry(data, cv_steps[step], block)
        for number in np.unique(numbers):
            part = block[numbers == number]
            v = np.asarray(records["voltage"][part], dtype=float)
            i = np.asarray(records["current"][part], dtype=float)
            keep, _ = keep_indices([v, i], CV_POINTS)
            out.append({"step_index": step, "cv_cycle": int(number), "voltage_v": json_floats(v[keep]),
                        "current_a": json_floats(i[keep])})
    return out
