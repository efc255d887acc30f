"""The records file's columns, derived with numpy from the stored records (no Python work per record).

Stored records carry capacity and energy signed and counted from each step's start. BDF's test-scope columns
never reset, so they are running sums of the per-record increments: an increment is the change since the record
before in the same step execution (since zero for its first record). Increments with the current positive
(capacity growing) count as charging, with it negative as discharging, for energy as well as capacity: the
ontology gates energy by current direction (``E_chg = 1/3600 * int P [I > 0] dt``), so plating below 0 V
delivers negative discharging energy, as it physically does. Summing increments rather than step-end values keeps
the columns right for a step whose current changes sign (a CV scan, a voltage hold that overshoots).

The step and cycle running variants follow from the test-scope ones, as their latexFormula define them
(an integral from the start of the current step or cycle): the test-scope value minus its value just before the
execution's (cycle's) first record. Net is charging minus discharging and cumulative is charging plus
discharging, exactly as the ontology defines both.
"""

from __future__ import annotations

import numpy as np

from protocols.program import StepProgram
from station.analysis.steps import step_starts
from station.exports.step_types import program_table
from station.exports.vocabulary import RECORD_COLUMNS, TEMPERATURE_COLUMNS
from station.exports.writer import Categorical

_QUANTITIES = (("capacity_ah", "capacity"), ("energy_wh", "energy"))


def cycle_starts(records: np.ndarray) -> np.ndarray:
    """True where a record opens a new cycle (the cycle count changes)."""
    cyc = records["cycle"]
    return np.r_[True, cyc[1:] != cyc[:-1]]


def increments(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per-record change of a step-relative running value (capacity or energy); a step's first record counts from
    zero."""
    before = np.empty_like(values)
    before[0] = 0.0
    before[1:] = values[:-1]
    before[starts] = 0.0
    return values - before


def since(total: np.ndarray, starts: np.ndarray, group: np.ndarray) -> np.ndarray:
    """A never-reset running value restarted at each ``starts`` (``group``: each record's number of starts so far,
    less one): minus its value just before that record."""
    first = np.flatnonzero(starts)
    before = np.where(first > 0, total[first - 1], 0.0)
    return total - before[group]


def from_test_start(records: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    """Charging and discharging capacity (Ah) and energy (Wh) since the test's start."""
    out: dict[str, np.ndarray] = {}
    dq = increments(records["capacity"], starts)
    charging, discharging = dq > 0, dq < 0
    for suffix, field in _QUANTITIES:
        step = dq if field == "capacity" else increments(records[field], starts)
        out[f"charging_{suffix}"] = np.cumsum(np.where(charging, step, 0.0))
        out[f"discharging_{suffix}"] = np.cumsum(np.where(discharging, -step, 0.0))
    return out


def scoped(test: dict[str, np.ndarray], scope: str, starts: np.ndarray) -> dict[str, np.ndarray]:
    """The ``step_`` or ``cycle_`` running variants (charging, discharging, net, cumulative) of the test-scope
    values, restarted at ``starts``."""
    out: dict[str, np.ndarray] = {}
    group = np.cumsum(starts) - 1
    for suffix, _ in _QUANTITIES:
        chg = since(test[f"charging_{suffix}"], starts, group)
        dch = since(test[f"discharging_{suffix}"], starts, group)
        out.update({f"{scope}_charging_{suffix}": chg, f"{scope}_discharging_{suffix}": dch,
                    f"{scope}_net_{suffix}": chg - dch, f"{scope}_cumulative_{suffix}": chg + dch})
    return out


def step_types(records: np.ndarray, program: StepProgram | None, starts: np.ndarray,
               step_net_capacity: np.ndarray) -> Categorical:
    """Each record's Step Type from its program step; an undirected voltage hold is CV_CHG when its execution
    passed net charge into the cell (or none), CV_DCH when out."""
    categories, by_index, undirected = program_table(program)
    idx = records["step_index"]
    known = (idx >= 0) & (idx < len(by_index))
    safe = np.where(known, idx, 0)
    codes = np.where(known, np.asarray(by_index, dtype=np.int8)[safe], np.int8(0)).astype(np.int8)
    holds = known & np.asarray(undirected, dtype=bool)[safe]
    if holds.any():
        execution = np.cumsum(starts) - 1
        ends = np.r_[np.flatnonzero(starts)[1:] - 1, len(idx) - 1]
        net_at_end = step_net_capacity[ends][execution]
        codes[holds] = np.where(net_at_end[holds] >= 0, 1, 2)  # categories[1], [2]: CV_CHG, CV_DCH
    return Categorical(codes, categories)


def time_series(records: np.ndarray, started_unix: float, program: StepProgram | None = None
                ) -> dict[str, np.ndarray | Categorical]:
    """Every column a BDF time series of these records can carry, by machine-readable name: the stored ones
    renamed, the record and within-step positions, Unix time from the run's start, and the test-, step- and
    cycle-scope running values. ``program`` gives the Step Type (without it every type is unknown, "")."""
    n = len(records)
    if n == 0:
        empty: dict[str, np.ndarray | Categorical] = {name: np.zeros(0) for _, name in RECORD_COLUMNS}
        empty["step_type"] = Categorical(np.zeros(0, dtype=np.int8), [""])
        return empty
    starts = step_starts(records)
    execution = np.cumsum(starts) - 1
    cols: dict[str, np.ndarray | Categorical] = {
        "record_index": np.arange(1, n + 1, dtype=np.int64),
        "test_time_second": records["test_time"], "unix_time_second": started_unix + records["test_time"],
        "voltage_volt": records["voltage"], "current_ampere": records["current"],
        "cycle_count": records["cycle"], "step_count": execution + 1, "step_id": records["step_index"],
        "step_index": np.arange(n, dtype=np.int64) - np.flatnonzero(starts)[execution] + 1,
        "step_time_second": records["step_time"],
    }
    test = from_test_start(records, starts)
    step = scoped(test, "step", starts)
    cols.update({**test, **step, **scoped(test, "cycle", cycle_starts(records))})
    cols["step_type"] = step_types(records, program, starts, step["step_net_capacity_ah"])
    if has_temperature(records):
        cols["ambient_temperature_celsius"] = records["temperature"]
    if has_temperature(records, "aux_temperature"):
        cols["temperature_t1_celsius"] = records["aux_temperature"]
    return cols


def has_temperature(records: np.ndarray, field: str = "temperature") -> bool:
    """Whether some record has a reading of ``field`` (a store block of an older layout reads back with none)."""
    names = records.dtype.names or ()
    return field in names and bool(np.isfinite(records[field]).any())


def record_columns(series: dict[str, np.ndarray | Categorical]) -> tuple[tuple[str, str], ...]:
    """The records file's columns for ``series``: :data:`RECORD_COLUMNS`, then ``Ambient Temperature`` and
    ``Temperature T1`` when a record has each (a run without a chamber or a sensor gets no empty column)."""
    extra = tuple(column for column in TEMPERATURE_COLUMNS if column[1] in series)
    return RECORD_COLUMNS + extra


def record_table(series: dict[str, np.ndarray | Categorical]) -> tuple[list[str], list[np.ndarray | Categorical]]:
    """The records file from :func:`time_series`: headers and columns in :func:`record_columns` order. EIS points
    stay in as records of the run (their time, DC voltage and current are measured like any other record's, and
    the running relations hold through them); their spectra go to the EIS file."""
    columns = record_columns(series)
    return [label for label, _ in columns], [series[name] for _, name in columns]
