"""Cycling figures per cycle: capacities, efficiencies, mean voltages, retention and the paper's CE statistic.

Conventions (fixed for every consumer: the cycle-summary export, plots, ``station analyze``):

* One row per stored cycle in which a cycling step (charge, discharge, hold, power; see
  :data:`station.analysis.steps.CYCLING_KINDS`) moved charge. Cycles are never renumbered: a rest before a loop is
  cycle 1 under the program's cycle rule, so P3's formation starts at cycle 2; a rest-only cycle has no row.
* ``charge_ah`` / ``discharge_ah``: the charge passed by the cycle's charging / discharging steps (magnitudes, Ah).
* ``charge_wh``: the energy the charging steps put in, the integral of I V dt over them. ``discharge_wh``: the
  energy the discharging steps delivered, minus the integral of I V dt over them. Both are signed so that the
  physics survives below 0 V: plating on a half cell delivers negative energy (V < 0), so the mean plating
  voltage ``discharge_wh / discharge_ah`` comes out negative, as it is.
* ``ce`` and ``energy_efficiency``: what the cycle gave back over what it took, in the cycle's own order. A cycle
  that starts by charging (a full cell) gives discharge / charge; one that starts by discharging (plating on a
  host or on Cu) gives charge / discharge. NaN when either side is not above zero (a lithiation-only cycle, or
  energy on a half cell where both directions take energy in).
* ``hysteresis_v``: mean charge voltage minus mean discharge voltage.
* Per area (Ah/m^2, shown as mAh/cm^2: divide by 10) and per active mass (Ah/kg = mAh/g) with :meth:`areal` and
  :meth:`specific`, when the cell has an area / active mass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from station.analysis.run_data import RunData
from station.analysis.steps import step_runs

#: a tag containing this word marks formation cycles; the default retention reference skips them
FORMATION_WORD = "formation"


class AnalysisError(ValueError):
    """An analysis cannot be done as asked; the message names what and how to fix it."""


class OptionError(AnalysisError):
    """A choice the caller made (a reference cycle, a cycle range) does not fit the run: the caller's mistake, which
    a command reports as a usage error rather than as a note on one analysis."""


@dataclass(frozen=True)
class CycleTable:
    """Per-cycle figures of one run (numpy arrays of equal length, SI units: Ah, Wh, V)."""

    cycle: np.ndarray
    tag: list[str | None]
    charge_ah: np.ndarray
    discharge_ah: np.ndarray
    charge_wh: np.ndarray
    discharge_wh: np.ndarray
    first_direction: np.ndarray
    """+1 where the cycle starts by charging, -1 where it starts by discharging"""
    ce: np.ndarray
    energy_efficiency: np.ndarray
    mean_charge_v: np.ndarray
    mean_discharge_v: np.ndarray
    hysteresis_v: np.ndarray
    area_m2: float | None = None
    active_mass_kg: float | None = None

    def __len__(self) -> int:
        return len(self.cycle)

    @property
    def returned_ah(self) -> np.ndarray:
        """The capacity each cycle gave back: discharge for a cycle that starts charging, charge otherwise."""
        return np.where(self.first_direction > 0, self.discharge_ah, self.charge_ah)

    @property
    def inserted_ah(self) -> np.ndarray:
        """The capacity each cycle put in first: charge for a cycle that starts charging, discharge otherwise."""
        return np.where(self.first_direction > 0, self.charge_ah, self.discharge_ah)

    def areal(self, name: str) -> np.ndarray | None:
        """``name`` (e.g. ``"discharge_ah"``) per electrode area in Ah/m^2 (x 0.1 for mAh/cm^2); None without an
        area."""
        return None if self.area_m2 is None else np.asarray(getattr(self, name)) / self.area_m2

    def specific(self, name: str) -> np.ndarray | None:
        """``name`` per active mass in Ah/kg (= mAh/g); None without an active mass."""
        return None if self.active_mass_kg is None else np.asarray(getattr(self, name)) / self.active_mass_kg

    def row(self, cycle: int) -> int:
        """The row of a stored cycle number; a clear error when the run has no such cycle."""
        hits = np.flatnonzero(self.cycle == cycle)
        if len(hits) == 0:
            have = f"{int(self.cycle[0])}-{int(self.cycle[-1])}" if len(self.cycle) else "none"
            raise AnalysisError(f"cycle {cycle} has no charge or discharge in this run (its cycles: {have}); "
                                f"choose one of those")
        return int(hits[0])


def cycle_table(data: RunData) -> CycleTable:
    """The per-cycle table of a run, from its step-end values (vectorised; no Python work per record)."""
    runs = step_runs(data.records, data.program)
    keep = runs.counted()
    q, e, cyc = runs.capacity[keep], runs.energy[keep], runs.cycle[keep]
    tags_of_runs = runs.tag[keep]
    cycles = np.unique(cyc)
    position = np.searchsorted(cycles, cyc)
    n = len(cycles)
    first_run = _first_main_run(q, position, n)
    charging = q > 0
    charge_ah = np.bincount(position, np.where(charging, q, 0.0), n)
    discharge_ah = np.bincount(position, np.where(charging, 0.0, -q), n)
    charge_wh = np.bincount(position, np.where(charging, e, 0.0), n)
    discharge_wh = np.bincount(position, np.where(charging, 0.0, -e), n)
    first_direction = np.sign(q[first_run]).astype(int) if n else np.zeros(0, dtype=int)
    starts_charging = first_direction > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ce = _ratio(np.where(starts_charging, discharge_ah, charge_ah), np.where(starts_charging, charge_ah,
                                                                                 discharge_ah))
        ee = _ratio(np.where(starts_charging, discharge_wh, charge_wh), np.where(starts_charging, charge_wh,
                                                                                 discharge_wh))
        mean_c = np.where(charge_ah > 0, charge_wh / charge_ah, np.nan)
        mean_d = np.where(discharge_ah > 0, discharge_wh / discharge_ah, np.nan)
    cell = data.cell
    return CycleTable(cycle=cycles.astype(np.int64), tag=[tags_of_runs[k] for k in first_run], charge_ah=charge_ah,
                      discharge_ah=discharge_ah, charge_wh=charge_wh, discharge_wh=discharge_wh,
                      first_direction=first_direction, ce=ce, energy_efficiency=ee, mean_charge_v=mean_c,
                      mean_discharge_v=mean_d, hysteresis_v=mean_c - mean_d,
                      area_m2=cell.area if cell.area else None,
                      active_mass_kg=cell.active_mass if cell.active_mass else None)


#: a step run sets the direction a cycle starts with only if it moved at least this share of the cycle's largest
#: step charge: a hold or a short correction that nudges a few nAh the other way first must not flip the CE
MAIN_STEP_SHARE = 0.01


def _first_main_run(q: np.ndarray, position: np.ndarray, n: int) -> np.ndarray:
    """Per cycle, the index of its earliest run (runs are in record order) among those that moved at least
    :data:`MAIN_STEP_SHARE` of the cycle's largest |charge|."""
    largest = np.zeros(n)
    np.maximum.at(largest, position, np.abs(q))
    main = np.flatnonzero(np.abs(q) >= MAIN_STEP_SHARE * largest[position])
    _, first = np.unique(position[main], return_index=True)
    return main[first]


def _ratio(returned: np.ndarray, inserted: np.ndarray) -> np.ndarray:
    """returned / inserted where both are above zero, NaN elsewhere."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((returned > 0) & (inserted > 0), returned / inserted, np.nan)


def default_reference(table: CycleTable, tag: str | None = None) -> int | None:
    """The default reference for retention: the first complete cycle (both directions passed charge) of the
    cycling group. With ``tag``, of that tag group; otherwise of the tag group the run's last complete cycle
    belongs to, which is the main cycling loop (formation comes first, and a lithiation has no complete cycle).
    None when the run has no complete cycle."""
    complete = np.isfinite(table.ce)
    if tag is None:
        done = np.flatnonzero(complete)
        if len(done) == 0:
            return None
        tag = table.tag[done[-1]]
    rows = [k for k in np.flatnonzero(complete) if table.tag[k] == tag]
    return int(table.cycle[rows[0]]) if rows else None


def retention(table: CycleTable, reference_cycle: int | None = None, tag: str | None = None) -> np.ndarray:
    """Each cycle's returned capacity (discharge for a full cell, strip for plating) over the reference cycle's.

    ``reference_cycle`` is a stored cycle number; by default :func:`default_reference` of ``tag``. NaN for cycles
    that returned nothing; all NaN when there is no reference.
    """
    ref = reference_cycle if reference_cycle is not None else default_reference(table, tag)
    if ref is None:
        return np.full(len(table), np.nan)
    base = table.returned_ah[table.row(ref)]
    if not base > 0:
        raise OptionError(f"cycle {ref} gave no capacity back, so it cannot be the retention reference; "
                            f"choose a complete cycle with --reference-cycle")
    returned = table.returned_ah
    return np.where(returned > 0, returned / base, np.nan)


def cycles_to(table: CycleTable, fraction: float = 0.8, reference_cycle: int | None = None,
              tag: str | None = None) -> int | None:
    """The stored number of the first cycle after the reference (of ``tag``'s group when given) whose retention
    falls below ``fraction``; None if none does (or there is no reference)."""
    ref = reference_cycle if reference_cycle is not None else default_reference(table, tag)
    if ref is None:
        return None
    kept = retention(table, ref)
    for k in range(table.row(ref), len(table)):
        if (tag is None or table.tag[k] == tag) and np.isfinite(kept[k]) and kept[k] < fraction:
            return int(table.cycle[k])
    return None


def cycles_counted(table: CycleTable, reference: int, cycle: int) -> int:
    """How many complete cycles run from ``reference`` to ``cycle``, both included: the "cycle life" count, which
    differs from the stored number when the cycling does not start at cycle 1 (P3's starts at 4)."""
    rows = slice(table.row(reference), table.row(cycle) + 1)
    return int(np.count_nonzero(np.isfinite(table.ce[rows])))


def first_cycle_efficiency(table: CycleTable, tag: str | None = None) -> float | None:
    """CE of the run's first complete cycle (of ``tag``, when given): a full cell's first formation cycle, a
    plating run's first plate/strip cycle. None when no cycle is complete."""
    rows = [k for k in np.flatnonzero(np.isfinite(table.ce)) if tag is None or table.tag[k] == tag]
    return float(table.ce[rows[0]]) if rows else None


@dataclass(frozen=True)
class AverageCe:
    """Mean CE over a range of cycles and its sample standard deviation (ddof = 1; NaN for one cycle)."""

    mean: float
    std: float
    first: int
    last: int
    count: int


def average_ce(table: CycleTable, first: int | None = None, last: int | None = None,
               tag: str | None = None) -> AverageCe | None:
    """The paper's statistic: the mean CE over the complete cycles numbered ``first``..``last`` (stored numbers,
    both included), with their sample standard deviation.

    Without bounds it spans the default reference cycle's tag group (the cycling after formation, or the plating
    cycles after lithiation); a given ``tag`` narrows the rows to that group. None when no complete cycle lies
    in the range.
    """
    complete = np.isfinite(table.ce)
    if first is None and last is None and tag is None:
        ref = default_reference(table)
        tag = table.tag[table.row(ref)] if ref is not None else None
    lo = first if first is not None else -np.inf
    hi = last if last is not None else np.inf
    if lo > hi:
        raise OptionError(f"the CE range {first}-{last} is empty; give the first cycle before the last")
    rows = complete & (table.cycle >= lo) & (table.cycle <= hi)
    if tag is not None:
        rows &= np.array([t == tag for t in table.tag], dtype=bool)
    values = table.ce[rows]
    if len(values) == 0:
        return None
    std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    cycles = table.cycle[rows]
    return AverageCe(mean=float(np.mean(values)), std=std, first=int(cycles[0]), last=int(cycles[-1]),
                     count=len(values))


@dataclass(frozen=True)
class CyclingResult:
    """What ``station analyze`` reports for a cycling run: the table and its headline statistics."""

    table: CycleTable
    reference_cycle: int | None
    retention: np.ndarray
    first_cycle_efficiency: float | None
    average_ce: AverageCe | None
    cycle_to_80pct: int | None
    """the stored number of the first cycle below 80 % retention (None: none fell below)"""
    cycles_to_80pct: int | None
    """the same as a count of cycles from the reference (the reference is the first)"""
    last_cycle: int | None
    """the run's last complete cycle"""

    @property
    def capacity_at_reference_ah(self) -> float | None:
        if self.reference_cycle is None:
            return None
        return float(self.table.returned_ah[self.table.row(self.reference_cycle)])

    @property
    def retention_last(self) -> float | None:
        if self.last_cycle is None or self.reference_cycle is None:
            return None
        return _num(self.retention[self.table.row(self.last_cycle)])

    def to_dict(self) -> dict:
        """JSON-ready, SI floats (Ah, Wh, V; per area Ah/m^2, per mass Ah/kg), keys carrying their unit; NaN
        becomes None."""
        t = self.table
        cap = self.capacity_at_reference_ah
        rows = []
        columns = {"charge_ah": t.charge_ah, "discharge_ah": t.discharge_ah, "charge_wh": t.charge_wh,
                   "discharge_wh": t.discharge_wh, "ce": t.ce, "energy_efficiency": t.energy_efficiency,
                   "mean_charge_v": t.mean_charge_v, "mean_discharge_v": t.mean_discharge_v,
                   "hysteresis_v": t.hysteresis_v, "retention": self.retention}
        for name in ("charge_ah", "discharge_ah"):
            if t.area_m2 is not None:
                columns[f"{name}_per_m2"] = t.areal(name)
            if t.active_mass_kg is not None:
                columns[f"{name}_per_kg"] = t.specific(name)
        for k in range(len(t)):
            row: dict = {"cycle": int(t.cycle[k]), "tag": t.tag[k],
                         "starts_with": "charge" if t.first_direction[k] > 0 else "discharge"}
            row.update({name: _num(values[k]) for name, values in columns.items()})
            rows.append(row)
        avg = self.average_ce
        return {
            "reference_cycle": self.reference_cycle,
            "capacity_at_reference_ah": cap,
            "capacity_at_reference_ah_per_m2": cap / t.area_m2 if cap is not None and t.area_m2 else None,
            "capacity_at_reference_ah_per_kg": cap / t.active_mass_kg if cap is not None and t.active_mass_kg
            else None,
            "first_cycle_efficiency": self.first_cycle_efficiency,
            "average_ce": None if avg is None else {"mean": avg.mean, "std": _num(avg.std), "first_cycle": avg.first,
                                                    "last_cycle": avg.last, "count": avg.count},
            "last_cycle": self.last_cycle,
            "retention_last": self.retention_last,
            "cycle_to_80pct": self.cycle_to_80pct,
            "cycles_to_80pct": self.cycles_to_80pct,
            "area_m2": t.area_m2,
            "active_mass_kg": t.active_mass_kg,
            "cycles": rows,
        }


def _num(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def analyze_cycling(data: RunData, reference_cycle: int | None = None,
                    ce_range: tuple[int, int] | None = None) -> CyclingResult | None:
    """The cycling analysis of a run whose program both charges and discharges (P2-P4); None otherwise.

    ``reference_cycle``: the retention reference (stored number; default :func:`default_reference`);
    ``ce_range``: the cycles (first, last) the average CE spans (default: the reference's tag group).
    """
    kinds = {step.kind for step in data.program.steps}
    if not {"charge", "discharge"} <= kinds:
        return None
    table = cycle_table(data)
    if len(table) == 0:
        return None
    if reference_cycle is not None:
        try:
            table.row(reference_cycle)
        except AnalysisError as exc:
            raise OptionError(f"reference cycle: {exc}") from None
    ref = reference_cycle if reference_cycle is not None else default_reference(table)
    kept = retention(table, ref)
    crossing = cycles_to(table, 0.8, ref) if ref is not None else None
    complete = np.flatnonzero(np.isfinite(table.ce))
    last = int(table.cycle[complete[-1]]) if ref is not None and len(complete) else None
    average = average_ce(table, *ce_range) if ce_range is not None else average_ce(table)
    return CyclingResult(table=table, reference_cycle=ref, retention=kept,
                         first_cycle_efficiency=first_cycle_efficiency(table), average_ce=average,
                         cycle_to_80pct=crossing,
                         cycles_to_80pct=cycles_counted(table, ref, crossing) if crossing is not None else None,
                         last_cycle=last)
