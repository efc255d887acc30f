"""``station analyze RUN...``: the numbers of DESIGN section 1 from stored runs, as tables or one JSON document.

One run prints its analyses (cycling per cycle, plating per step, and EIS, DC polarisation, conductivity or CV
when its program has those steps). Several runs print one comparison table, a row per run (e.g. the CE of Li on
the host against Cu), with the per-run details under ``--json``. Values are SI in JSON; tables show lab units
(mAh, mAh/cm^2, mAh/g, %, V, mV), always named in the column headers.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from station.analysis.cycling import OptionError
from station.analysis.report import analyze_run
from station.cli_common import EXIT_USAGE, ConfigOpt, DataDirOpt, JsonOpt, app, err, fail, json_mode, out
from station.cli_runs import _errors, _store
from station.run_data import load_run

RunsArg = Annotated[list[str], typer.Argument(metavar="RUN...", help="run ids (a unique prefix is enough); several "
                                                                    "runs compare in one table")]
#: rows of a per-cycle table shown in full; longer tables show their first and last rows (``--json`` has all)
MAX_ROWS = 30
_DASH = "-"


@app.command()
def analyze(runs: RunsArg, json_: JsonOpt = False,
            reference_cycle: Annotated[int | None, typer.Option(
                "--reference-cycle", help="retention reference (stored cycle number; default: the first cycle "
                "of the cycling after formation)")] = None,
            ce_cycles: Annotated[str | None, typer.Option(
                "--ce-cycles", help="cycles the average CE spans, e.g. 5-100 (default: the cycling group)")] = None,
            circuit: Annotated[str | None, typer.Option(
                "--circuit", help="EIS equivalent circuit in impedance.py syntax, e.g. 'R0-p(R1,CPE1)' "
                "(default: the cell kind's)")] = None,
            config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Analyse runs: cycling (capacity, CE, retention), plating, EIS, DC polarisation, conductivity, CV."""
    json_mode(json_)
    ce_range = _ce_range(ce_cycles)
    if circuit is not None:
        _check_circuit(circuit)
    docs = []
    with _errors():
        store = _store(config, data_dir)
        for run_id in runs:
            data = load_run(store, run_id)
            try:
                docs.append(analyze_run(data, reference_cycle=reference_cycle, ce_range=ce_range, circuit=circuit))
            except OptionError as exc:
                raise fail(EXIT_USAGE, f"error: run {data.run_id}: {exc}") from None
    if json_:
        sys.stdout.write(json.dumps(docs, indent=2) + "\n")
        return
    for doc in docs:
        for key, value in doc.items():
            if isinstance(value, dict) and "error" in value:
                err.print(f"run {doc['run_id']}: {key} not analysed: {value['error']}", markup=False)
    if len(docs) == 1:
        _print_run(docs[0])
    else:
        _print_comparison(docs)


def _ce_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    found = re.fullmatch(r"\s*(\d+)\s*(?:(?:-|\.\.)\s*(\d+)\s*)?", text)
    if not found:
        raise fail(EXIT_USAGE, f"error: --ce-cycles must be a cycle range such as 5-100, found '{text}'")
    first = int(found.group(1))
    last = int(found.group(2)) if found.group(2) else first
    if first > last:
        raise fail(EXIT_USAGE, f"error: --ce-cycles {text}: the first cycle comes after the last; write {last}-{first}")
    return first, last


def _check_circuit(circuit: str) -> None:
    """A malformed --circuit is the user's typing, reported before any run is read."""
    try:
        from station.analysis import circuits
    except ImportError:  # EIS analysis not installed: the run's own report says so
        return
    try:
        circuits.elements(circuit)
    except ValueError as exc:
        raise fail(EXIT_USAGE, f"error: --circuit: {exc}") from None


# ---- numbers as text ----------------------------------------------------------------------------------------------


def _f(value: float | None, scale: float = 1.0, digits: int = 4) -> str:
    """``value x scale`` to ``digits`` significant figures, or a dash when there is none."""
    if value is None:
        return _DASH
    return f"{value * scale:.{digits}g}"


def _pct(value: float | None, decimals: int = 2) -> str:
    return _DASH if value is None else f"{value * 100:.{decimals}f}"


# Ah -> mAh: x1e3; Ah/m^2 -> mAh/cm^2: x0.1; Ah/kg -> mAh/g: x1; V -> mV: x1e3
MAH, MAH_CM2, MAH_G, MV = 1e3, 0.1, 1.0, 1e3


def _print_run(doc: dict[str, Any]) -> None:
    out.print(f"{doc['label']}: run {doc['run_id']}, {doc['protocol']} on {doc['cell']}, {doc['records']} records"
              + (f", {doc['lithiation']} lithiation" if doc.get("lithiation") else ""), markup=False)
    shown = False
    if "cycling" in doc and "error" not in doc["cycling"]:
        _print_cycling(doc["cycling"])
        shown = True
    if "plating" in doc and "error" not in doc["plating"]:
        _print_plating(doc["plating"])
        shown = True
    for key in ("eis", "dc_polarisation", "conductivity", "cv"):
        if key in doc and "error" not in doc[key]:
            # conductivity carries the EIS fit and DC step it used: shown above already, so its numbers only
            _print_generic(key, doc[key], nested=key != "conductivity" or not {"eis", "dc_polarisation"} <= set(doc))
            shown = True
    if not shown:
        out.print("no analysis applies to this run's steps (or its records are empty)", markup=False)


def _print_cycling(c: dict[str, Any]) -> None:
    if c["reference_cycle"] is None:
        out.print("no complete cycle yet (both a charge and a discharge): no CE or retention", markup=False)
        _cycle_rows(c)
        return
    avg = c["average_ce"]
    lines = [f"reference cycle {c['reference_cycle']}: {_f(c['capacity_at_reference_ah'], MAH)} mAh"
             + (f", {_f(c['capacity_at_reference_ah_per_m2'], MAH_CM2)} mAh/cm^2"
                if c["capacity_at_reference_ah_per_m2"] is not None else "")
             + (f", {_f(c['capacity_at_reference_ah_per_kg'], MAH_G)} mAh/g"
                if c["capacity_at_reference_ah_per_kg"] is not None else ""),
             f"first-cycle efficiency: {_pct(c['first_cycle_efficiency'])} %"]
    if avg is not None:
        lines.append(f"average CE, cycles {avg['first_cycle']}-{avg['last_cycle']} ({avg['count']}): "
                     f"{_pct(avg['mean'], 3)} % +/- {_pct(avg['std'], 3)} % (sample std)")
    lines.append(f"retention at cycle {c['last_cycle']}: {_pct(c['retention_last'])} %; first below 80 %: "
                 + (f"cycle {c['cycle_to_80pct']} ({c['cycles_to_80pct']} cycles)" if c["cycle_to_80pct"]
                    else "none"))
    for line in lines:
        out.print(line, markup=False)
    _cycle_rows(c)


def _cycle_rows(c: dict[str, Any]) -> None:
    """The per-cycle table, in lab units; long runs show their first and last rows."""
    table = Table(title="cycles", title_justify="left")
    columns = [("cycle", "cycle", None), ("tag", "tag", None), ("charge (mAh)", "charge_ah", MAH),
               ("discharge (mAh)", "discharge_ah", MAH)]
    if c["area_m2"] is not None:
        columns += [("charge (mAh/cm^2)", "charge_ah_per_m2", MAH_CM2),
                    ("discharge (mAh/cm^2)", "discharge_ah_per_m2", MAH_CM2)]
    if c["active_mass_kg"] is not None:
        columns += [("charge (mAh/g)", "charge_ah_per_kg", MAH_G), ("discharge (mAh/g)", "discharge_ah_per_kg",
                                                                     MAH_G)]
    columns += [("CE (%)", "ce", "%"), ("EE (%)", "energy_efficiency", "%"), ("mean chg (V)", "mean_charge_v", 1.0),
                ("mean dch (V)", "mean_discharge_v", 1.0), ("hysteresis (mV)", "hysteresis_v", MV),
                ("retention (%)", "retention", "%")]
    for header, _, _ in columns:
        table.add_column(header, justify="left" if header == "tag" else "right")
    rows = c["cycles"]
    for k, row in enumerate(rows):
        if len(rows) > MAX_ROWS and MAX_ROWS // 2 <= k < len(rows) - MAX_ROWS // 2:
            if k == MAX_ROWS // 2:
                table.add_row(f"({len(rows) - MAX_ROWS} more)", *[""] * (len(columns) - 1))
            continue
        cells = []
        for _, key, scale in columns:
            value = row[key]
            if key == "cycle":
                cells.append(str(value))
            elif key == "tag":
                cells.append(value or _DASH)
            elif scale == "%":
                cells.append(_pct(value))
            else:
                cells.append(_f(value, scale))
        table.add_row(*cells)
    out.print(table)


def _print_plating(p: dict[str, Any]) -> None:
    if p["lithiation_ah"] is not None:
        areal = p["lithiation_ah_per_m2"]
        out.print(f"host lithiation (step {p['lithiation_step']}, to {_f(p['lithiation_end_voltage_v'], 1, 3)} V): "
                  f"{_f(p['lithiation_ah'], MAH)} mAh" + (f", {_f(areal, MAH_CM2)} mAh/cm^2" if areal else ""),
                  markup=False)
    if p["plating"]:
        table = Table(title="plating", title_justify="left")
        for header in ("cycle", "step", "plated (mAh)", "plated (mAh/cm^2)", "dip (mV)", "plateau (mV)",
                       "nucleation overpotential (mV)", "plateau overpotential (mV)"):
            table.add_column(header, justify="right")
        for s in p["plating"]:
            table.add_row(str(s["cycle"]), str(s["step"]), _f(s["plated_ah"], MAH),
                          _f(s["plated_ah_per_m2"], MAH_CM2), _f(s["dip_voltage_v"], MV),
                          _f(s["plateau_voltage_v"], MV), _f(s["nucleation_overpotential_v"], MV, 3),
                          _f(s["plateau_overpotential_v"], MV))
        out.print(table)
    if p["stripping"]:
        table = Table(title="stripping", title_justify="left")
        for header in ("cycle", "step", "stripped (mAh)", "stripped (mAh/cm^2)", "plateau (mV)", "end (V)",
                       "end time (s)"):
            table.add_column(header, justify="right")
        for s in p["stripping"]:
            table.add_row(str(s["cycle"]), str(s["step"]), _f(s["stripped_ah"], MAH),
                          _f(s["stripped_ah_per_m2"], MAH_CM2), _f(s["plateau_voltage_v"], MV),
                          _f(s["end_voltage_v"]), _f(s["end_time_s"], 1, 6))
        out.print(table)


#: unit suffixes of SI keys, longest first: how the generic tables name their units
_UNITS = (("_s_per_m", "S/m"), ("_ohm_m", "ohm m"), ("_v_per_s", "V/s"), ("_ah_per_m2", "Ah/m^2"),
          ("_ohm", "ohm"), ("_hz", "Hz"), ("_ah", "Ah"), ("_wh", "Wh"), ("_m2", "m^2"), ("_v", "V"), ("_a", "A"),
          ("_s", "s"), ("_f", "F"), ("_m", "m"))


def _header(key: str) -> str:
    for suffix, unit in _UNITS:
        if key.endswith(suffix):
            return f"{key[: -len(suffix)].replace('_', ' ')} ({unit})"
    return key.replace("_", " ")


def _text(value: Any) -> str:
    if value is None:
        return _DASH
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:.4g}"


def _print_generic(name: str, doc: dict[str, Any], nested: bool = True) -> None:
    """An analysis this command has no special layout for: its scalars as lines, its lists of records as tables,
    fitted parameters as tables of value, unit and 95 % interval; units from the keys' SI suffixes."""
    out.print(f"{name.replace('_', ' ')}:", markup=False)
    for key, value in doc.items():
        if not isinstance(value, dict | list):
            text = _text(value)
            if key.endswith("_s_per_m") and isinstance(value, float):
                text += f" ({value * 10:.4g} mS/cm)"  # 1 S/m = 10 mS/cm, the unit papers quote
            out.print(f"  {_header(key)}: {text}", markup=False)
    for key, value in doc.items():
        if not nested:
            break
        title = f"{name} {key}".replace("_", " ")
        if _is_parameter_set(value):
            _parameter_table(title, value)
        elif isinstance(value, dict):
            _print_generic(f"{name} {key}", value)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            _generic_table(title, value)


def _is_parameter_set(value: Any) -> bool:
    return (isinstance(value, dict) and bool(value)
            and all(isinstance(v, dict) and "value" in v for v in value.values()))


def _parameter_table(title: str, parameters: dict[str, dict[str, Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for header in ("parameter", "value", "unit", "95 % interval"):
        table.add_column(header, justify="right" if header == "value" else "left")
    for name, p in parameters.items():
        low, high = p.get("ci95_low"), p.get("ci95_high")
        interval = f"{_text(low)} .. {_text(high)}" if low is not None and high is not None else _DASH
        table.add_row(name, _text(p.get("value")), str(p.get("unit") or ""), interval)
    out.print(table)


def _generic_table(title: str, rows: list[dict[str, Any]]) -> None:
    """The scalar fields as columns, a row per entry; an entry's fitted parameters follow as their own table."""
    keys = [k for k in rows[0] if not isinstance(rows[0][k], dict | list)]
    table = Table(title=title, title_justify="left")
    for key in keys:
        table.add_column(_header(key), justify="right" if isinstance(rows[0][key], int | float) else "left")
    for row in rows:
        table.add_row(*[_text(row.get(k)) for k in keys])
    out.print(table)
    for number, row in enumerate(rows, start=1):
        for key, value in row.items():
            if _is_parameter_set(value):
                where = f"step {row['step_index']}, cycle {row['cycle']}" if "step_index" in row and "cycle" in row \
                    else f"entry {number}"
                _parameter_table(f"{title} ({where}): {key.replace('_', ' ')}", value)


# ---- several runs ---------------------------------------------------------------------------------------------------


def _headlines(doc: dict[str, Any]) -> dict[str, str]:
    """The comparison row of one run: column header -> text."""
    row: dict[str, str] = {"run": doc["label"], "protocol": doc["protocol"]}
    if doc.get("lithiation"):  # P7 before / after lithiation, as the run's campaign places it
        row["lithiation"] = doc["lithiation"]
    c = doc.get("cycling")
    if c and "error" not in c:
        avg = c["average_ce"]
        row["first-cycle eff. (%)"] = _pct(c["first_cycle_efficiency"])
        row["average CE (%)"] = _pct(avg["mean"], 3) if avg else _DASH
        row["CE std (%)"] = _pct(avg["std"], 3) if avg else _DASH
        row["CE cycles"] = f"{avg['first_cycle']}-{avg['last_cycle']}" if avg else _DASH
        row["ref. cycle"] = str(c["reference_cycle"]) if c["reference_cycle"] is not None else _DASH
        row["capacity at ref. (mAh)"] = _f(c["capacity_at_reference_ah"], MAH)
        if c["capacity_at_reference_ah_per_m2"] is not None:
            row["capacity at ref. (mAh/cm^2)"] = _f(c["capacity_at_reference_ah_per_m2"], MAH_CM2)
        if c["capacity_at_reference_ah_per_kg"] is not None:
            row["capacity at ref. (mAh/g)"] = _f(c["capacity_at_reference_ah_per_kg"], MAH_G)
        row["retention, last (%)"] = _pct(c["retention_last"])
        row["cycles to 80 %"] = str(c["cycles_to_80pct"]) if c["cycles_to_80pct"] is not None else _DASH
    p = doc.get("plating")
    if p and "error" not in p:
        if p["lithiation_ah_per_m2"] is not None:
            row["host lithiation (mAh/cm^2)"] = _f(p["lithiation_ah_per_m2"], MAH_CM2)
        if p["plating"]:
            first = p["plating"][0]
            plateaus = [s["plateau_overpotential_v"] for s in p["plating"]]
            row["nucleation overpot., 1st (mV)"] = _f(first["nucleation_overpotential_v"], MV, 3)
            row["plateau overpot., mean (mV)"] = _f(sum(plateaus) / len(plateaus), MV)
    for key in ("eis", "dc_polarisation", "conductivity", "cv"):
        section = doc.get(key)
        if section and "error" not in section:
            row.update(_measurement_headlines(key, section))
    return row


def _headlines_template() -> dict[str, str]:
    """Every column the cycling and plating parts of a comparison row can have, in the order shown."""
    cell = {"area_m2": 1.0, "active_mass_kg": 1.0}
    full = {"first_cycle_efficiency": None, "reference_cycle": None, "capacity_at_reference_ah": None,
            "capacity_at_reference_ah_per_m2": 0.0, "capacity_at_reference_ah_per_kg": 0.0, "retention_last": None,
            "cycles_to_80pct": None, "average_ce": None, **cell}
    plating = {"lithiation_ah_per_m2": 0.0, "plating": [{"nucleation_overpotential_v": 0.0,
                                                         "plateau_overpotential_v": 0.0}]}
    return _headlines({"label": "", "protocol": "", "cycling": full, "plating": plating})


def _measurement_headlines(name: str, doc: dict[str, Any]) -> dict[str, str]:
    """The top-level numbers with a unit (or, when there are none, those of the first entry of its first list)."""
    picked = {k: v for k, v in doc.items() if _is_unit_number(k, v)}
    if not picked:
        first_list = next((v for v in doc.values() if isinstance(v, list) and v and isinstance(v[0], dict)), None)
        if first_list:
            picked = {k: v for k, v in first_list[0].items() if _is_unit_number(k, v)}
    row = {}
    for key, value in picked.items():
        if key.endswith("_s_per_m"):  # conductivities as papers quote them: 1 S/m = 10 mS/cm
            row[f"{name.replace('_', ' ')}: {key.removesuffix('_s_per_m').replace('_', ' ')} (mS/cm)"] = \
                _text(value * 10)
        else:
            row[f"{name.replace('_', ' ')}: {_header(key)}"] = _text(value)
    return row


#: numbers with a unit that describe the set-up or the measurement window rather than a result
_NOT_HEADLINES = ("frequency_", "thickness_", "area_", "window_", "duration_")


def _is_unit_number(key: str, value: Any) -> bool:
    return (isinstance(value, float) and not key.startswith(_NOT_HEADLINES)
            and any(key.endswith(suffix) for suffix, _ in _UNITS))


def _print_comparison(docs: list[dict[str, Any]]) -> None:
    rows = [_headlines(d) for d in docs]
    headers: list[str] = []
    for row in rows:
        headers += [h for h in row if h not in headers]
    if len({row["protocol"] for row in rows}) == 1:  # one protocol: the title says it, the column would repeat it
        for row in rows:
            del row["protocol"]
        headers.remove("protocol")
    fixed = list(_headlines_template())
    headers.sort(key=lambda h: (fixed.index(h) if h in fixed else len(fixed)))  # stable: the rest keep their order
    protocols = {d["protocol"] for d in docs}
    title = f"{len(docs)} runs" + (f" of {next(iter(protocols))}" if len(protocols) == 1 else "")
    table = Table(title=title, title_justify="left")
    for h in headers:
        if h == "run":  # labels are run ids or sample names, typed back in: never cut them
            table.add_column(h, no_wrap=True, min_width=min(max(len(r["run"]) for r in rows), 40))
        else:
            table.add_column(h, justify="left" if h == "protocol" else "right", overflow="fold")
    for row in rows:
        table.add_row(*[row.get(h, _DASH) for h in headers])
    out.print(table)
