"""What ``station plan`` shows: the step program with estimated durations, as a stable JSON document or a table.

The JSON shape is an interface scripts rely on; keys may be added, the documented ones never change:
``{"protocol", "cell", "estimated_duration_s", "steps": [{"index", "kind", "tag", "control": {"quantity",
"value"}, "until": [{"quantity", "op", "value"}], "estimated_s"}]}`` in A, V, W, Ah, s; positive current charges.

Added keys (scripts may rely on them too): per step ``"start_voltage"`` (the voltage the cell is at when the step
starts along every way into it, ``null`` when not known) and, for holds, ``"direction"`` (``"charge"``,
``"discharge"`` or ``null``) with ``"direction_reason"``; at the top ``"branches"`` (every condition that jumps or
ends the run: ``{"step", "quantity", "op", "value", "then", "target", "nominal", "text"}``, ``nominal`` telling
whether the estimate's path takes it), ``"estimate_assumes"`` (the path the estimate follows when branches exist,
else ``null``) and ``"notes"`` (what an instrument's native program writes differently, e.g. a 0 V limit written
to a Neware step file as 0.1 mV).

``"warnings"`` lists what will make the run's numbers wrong although it runs: a DC polarisation between blocking
electrodes held too short for the chemical diffusion to settle (:func:`dc_polarisation_warnings`), and a temperature
step whose nominal ramp and stable time do not fit in its ``max_wait`` (the run would fail there).

Temperature steps (carried out by the station, which sets the climate chamber and waits) carry ``"setpoint_c"``,
``"band_k"``, ``"stable_for_s"``, ``"max_wait_s"`` and ``"wait"`` (``{"from_c", "ramp_s", "stable_s",
"estimated_s", "max_wait_s"}``); at the top, ``"temperature_steps"`` lists those waits, ``"temperature_assumption"``
says what the chamber is assumed to do (``null`` without temperature steps) and ``"estimated_duration_max_s"`` is
the total with every temperature step waiting its ``max_wait``. The notes say the same in words for the table.

CV and LSV steps also carry ``"biologic_scan_rate"``: the ``Scan_Rate`` number a Biologic channel will receive,
in the unit its firmware is set to read (``scan_rate_unit`` in station.yaml; the driver's default when the plan
names no channel), because that unit is disputed and a lab checks it once on hardware by comparing a sweep with
the plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from protocols.cells import Cell
from protocols.estimate import PlanEstimate, TemperatureWait, estimate_program
from protocols.paths import arrivals, hold_direction, start_voltage
from protocols.program import (
    CaStep,
    Comparison,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    LoopStep,
    LsvStep,
    ProgramStep,
    Quantity,
    StepProgram,
    TemperatureStep,
)
from protocols.units import format_si

if TYPE_CHECKING:  # the driver package is imported only when a plan shows a scan rate
    from drivers.biologic.scan_rate import ScanRateUnit


@dataclass(frozen=True, slots=True)
class ScanRateSetting:
    """The ``Scan_Rate`` unit a Biologic channel is set to read, and where that came from."""

    unit: ScanRateUnit
    source: str
    channel: str | None = None

    @classmethod
    def default(cls) -> ScanRateSetting:
        from drivers.biologic.scan_rate import DEFAULT_SCAN_RATE_UNIT

        return cls(DEFAULT_SCAN_RATE_UNIT, "the default setting: no channel given")

    def as_sent(self, rate_v_per_s: float) -> float:
        from drivers.biologic.scan_rate import scan_rate_as_sent

        return scan_rate_as_sent(rate_v_per_s, self.unit)

    def text(self, rate_v_per_s: float) -> str:
        """The number as the instrument receives it (the shortest text of the single) and its unit."""
        import numpy as np

        return f"{np.format_float_positional(np.float32(self.as_sent(rate_v_per_s)), trim='-')} {self.unit}"

    def describe(self) -> str:
        return f"channel {self.channel}: {self.source}" if self.channel else self.source


def scan_rate_lines(program: StepProgram, scan_rate: ScanRateSetting | None) -> list[str]:
    """One line per CV/LSV step: the ``Scan_Rate`` a Biologic channel receives, with where its unit is set."""
    if scan_rate is None:
        return []
    lines = [f"step {step.index} ({step.kind}, {format_si(step.scan_rate, 'V/s')}): Biologic Scan_Rate = "
             f"{scan_rate.text(step.scan_rate)}" for step in program.steps if isinstance(step, CvStep | LsvStep)]
    if not lines:
        return []
    note = "; give --channel to use a configured channel's scan_rate_unit" if scan_rate.channel is None else ""
    return [*lines, f"  Scan_Rate unit: {scan_rate.unit} ({scan_rate.describe()}){note}"]


def scan_rate_setting_for(config: Any, channel: str | None) -> ScanRateSetting | None:
    """The setting of ``channel`` in a station config; the default without a channel; ``None`` for a channel
    that is not a Biologic one (it runs no CV or LSV). Raises ``ConfigError`` for an unknown channel."""
    if channel is None:
        return ScanRateSetting.default()
    instrument, chan = config.find(channel)
    if instrument.kind != "biologic":
        return None
    unit, source = instrument.scan_rate_setting(chan)
    return ScanRateSetting(unit, source, f"{instrument.name}/{chan.id}")


def instrument_notes(program: StepProgram, instrument_kind: str | None) -> list[str]:
    """What the native program of the channel's instrument writes differently from the step program (every
    instrument's notes when no channel is given)."""
    if instrument_kind not in (None, "neware"):
        return []
    from drivers.neware.stepfile import notes

    return notes(program)


def plan_document(
    program: StepProgram, cell: Cell, estimate: PlanEstimate | None = None, *,
    scan_rate: ScanRateSetting | None = None, channel_given: bool = False, instrument_kind: str | None = None,
) -> dict[str, Any]:
    """The plan as JSON-ready data. ``scan_rate`` is the channel's setting; without one (and no channel given)
    CV/LSV steps show what the default setting would send, and say so. ``instrument_kind`` (``neware`` or
    ``biologic``) is the kind of the channel the plan is for; ``None`` shows the notes of every kind."""
    estimate = estimate or estimate_program(program, cell)
    if scan_rate is None and not channel_given:
        scan_rate = ScanRateSetting.default()
    ways_in = arrivals(program)
    waits = {w.index: w for w in estimate.temperature_waits}
    steps = []
    for step in program.steps:
        est = estimate.steps[step.index]
        entry: dict[str, Any] = {
            "index": step.index,
            "kind": step.kind,
            "tag": step.tag,
            "control": step.control.model_dump(),
            "until": [{"quantity": t.quantity.value, "op": t.op.value, "value": t.value, "then": t.then.value,
                       **({"target": t.target} if t.target is not None else {})} for t in step.until],
            "estimated_s": est.first_s,
            "estimate_exact": est.exact if est.first_s is not None else False,
            "passes": est.passes,
            "estimated_total_s": est.total_s,
            "cumulative_s": est.end_s,
            "records": est.records,
            "label": step.label,
            "source": step.source.model_dump() if step.source else None,
        }
        entry.update(_details(step))
        if not isinstance(step, LoopStep):
            entry["start_voltage"] = start_voltage(ways_in.get(step.index, []))
        if isinstance(step, HoldStep):
            found = hold_direction(step, ways_in.get(step.index, []))
            entry.update(direction=found.direction, direction_reason=found.reason)
        if step.index in waits:
            entry["wait"] = _wait_doc(waits[step.index])
        if isinstance(step, CvStep | LsvStep) and scan_rate is not None:
            entry["biologic_scan_rate"] = {
                "label": "Scan_Rate", "value": scan_rate.as_sent(step.scan_rate), "unit": scan_rate.unit,
                "text": scan_rate.text(step.scan_rate), "setting": scan_rate.source, "channel": scan_rate.channel,
            }  # fmt: skip
        steps.append(entry)
    return {
        "protocol": program.protocol,
        "cell": program.cell,
        "estimated_duration_s": estimate.total_s,
        "estimate_exact": estimate.exact,
        "estimate_complete": estimate.complete,
        "estimated_records": estimate.records,
        "executed_steps": estimate.executions,
        "parameters": program.parameters,
        "safety": program.safety.model_dump(),
        "cycle_rule": program.cycle_rule,
        "steps": steps,
        "branches": [{"step": b.step, "quantity": b.termination.quantity.value, "op": b.termination.op.value,
                      "value": b.termination.value, "then": b.termination.then.value,
                      "target": b.termination.target, "nominal": b.nominal, "text": b.describe()}
                     for b in estimate.branches],
        "estimate_assumes": estimate.assumption,
        "temperature_steps": [_wait_doc(w) for w in estimate.temperature_waits],
        "temperature_assumption": estimate.temperature_assumption,
        "estimated_duration_max_s": estimate.max_total_s,
        "notes": [*instrument_notes(program, instrument_kind), *temperature_notes(estimate)],
        "warnings": [*dc_polarisation_warnings(program, cell), *temperature_warnings(estimate)],
    }


def _wait_doc(wait: TemperatureWait) -> dict[str, float]:
    return {"step": wait.index, "from_c": wait.from_c, "to_c": wait.to_c, "ramp_s": wait.ramp_s,
            "stable_s": wait.stable_s, "estimated_s": wait.estimated_s, "max_wait_s": wait.max_wait_s}


def temperature_notes(estimate: PlanEstimate) -> list[str]:
    """One line per temperature step (what the station does and how long it is expected to wait), the chamber
    assumption, and the total with every wait at its bound."""
    if not estimate.temperature_waits:
        return []
    lines = [f"step {w.index} (temperature): the station sets the chamber to {w.to_c:g} degC and waits "
             f"~{format_duration(w.estimated_s)} (ramp from {w.from_c:g} degC {format_duration(w.ramp_s)} + stable "
             f"{format_duration(w.stable_s)}), at most {format_duration(w.max_wait_s)} (max_wait)"
             for w in estimate.temperature_waits]
    lines.append(str(estimate.temperature_assumption))
    lines.append(f"with every temperature step waiting its max_wait: total at most "
                 f"{format_duration(estimate.max_total_s)}")
    return lines


def temperature_warnings(estimate: PlanEstimate) -> list[str]:
    """A warning for each temperature step whose nominal ramp and stable time exceed its ``max_wait``."""
    return [f"step {w.index} (temperature): ramping {abs(w.to_c - w.from_c):g} K at the assumed rate takes "
            f"{format_duration(w.ramp_s)}, and with stable_for {format_duration(w.stable_s)} that is more than "
            f"max_wait {format_duration(w.max_wait_s)}: the run would fail there; raise max_wait"
            for w in estimate.temperature_waits if not w.fits]


def has_blocking_electrodes(cell: Cell) -> bool:
    """Whether the cell is a film between ion-blocking electrodes (a P7-style conductivity cell).

    The rule: its simulation model is ``blocking``, or its ``metadata.electrodes`` text calls them blocking
    ("stainless steel (Li-ion blocking)"; "non-blocking" does not count). Nothing else in a cell record says it.
    """
    if cell.model_type == "blocking":
        return True
    text = str(cell.metadata.get("electrodes", "")).lower()
    return re.search(r"(?<!non-)(?<!non )\bblocking\b", text) is not None


def dc_polarisation_warnings(program: StepProgram, cell: Cell) -> list[str]:
    """A warning for each DC polarisation (``ca`` or ``hold``) on a blocking-electrode cell held too short.

    Between ion-blocking electrodes the ionic part of the current decays by chemical diffusion across the film,
    the slowest mode with tau = L^2/(pi^2 D~) (L the cell's thickness, D~ the chemical diffusivity of the cell
    record's ``blocking`` model parameters, or the model's default); the electronic conductivity read from the
    current at the end of a hold t is (1 + eps(t)) times the true one, eps from the exact series of
    ``simulators.cells.blocking.dc_polarisation_error``. A hold whose eps exceeds 1 % is flagged with eps and the
    hold needed. Only holds ended by time are judged (another ending says nothing about how long they last).
    """
    if not has_blocking_electrodes(cell) or cell.thickness is None:
        return []
    relaxation = _blocking_relaxation(cell)
    if relaxation is None:
        return []
    from simulators.cells.blocking import DC_TOLERANCE

    warnings = []
    for step in program.steps:
        if not isinstance(step, CaStep | HoldStep) or (isinstance(step, CaStep) and step.vs_ocv and step.voltage == 0):
            continue
        held = [t.value for t in step.until if t.quantity is Quantity.TIME and t.op is Comparison.GE]
        if not held:
            continue
        hold = min(held)
        error = float(relaxation.error(hold)[0])
        if error <= DC_TOLERANCE:
            continue
        needed = relaxation.hold_needed()
        warnings.append(
            f"step {step.index} ({step.kind}, {format_duration(hold)}): DC polarisation between blocking electrodes "
            f"relaxes by chemical diffusion, tau = L^2/(pi^2 D~) = {format_duration(relaxation.tau)}; after "
            f"{format_duration(hold)} part of the current is still ionic, so the electronic conductivity will read "
            f"{100 * error:.3g} % too high; hold at least {format_duration(needed)} for {100 * DC_TOLERANCE:g} % "
            f"(5 tau = {format_duration(5 * relaxation.tau)})"
        )
    return warnings


def _blocking_relaxation(cell: Cell) -> Any:
    """tau and shape of the cell's film from the ``blocking`` model at the cell's geometry and temperature (the
    record's model parameters when its model is ``blocking``); ``None`` when those parameters are refused."""
    from simulators.cells import ParameterError, build_model

    params = dict(cell.model_params) if cell.model_type == "blocking" else {}
    kelvin = None if cell.temperature is None else cell.temperature + 273.15  # cell records are in degC
    try:
        model = build_model("blocking", params, area=cell.area, thickness=cell.thickness, temperature=kelvin)
    except ParameterError:
        return None  # the run's own check reports a bad model parameter; a plan has nothing to add
    return model.dc_relaxation()  # type: ignore[attr-defined]


def _details(step: ProgramStep) -> dict[str, Any]:
    if isinstance(step, CurrentStep) and step.hold_voltage is not None:
        return {"hold_voltage": step.hold_voltage}
    if isinstance(step, HoldStep):
        return {"current_limit": step.current_limit}
    if isinstance(step, LoopStep):
        return {"target": step.target, "count": step.count}
    if isinstance(step, EisStep):
        return {"mode": step.mode, "f_start": step.f_start, "f_end": step.f_end, "amplitude": step.amplitude,
                "points_per_decade": step.points_per_decade, "points": len(step.frequencies())}
    if isinstance(step, CvStep):
        return {"start": step.start, "vertex_1": step.vertex_1, "vertex_2": step.vertex_2, "end": step.end,
                "cycles": step.cycles}
    if isinstance(step, LsvStep):
        return {"start": step.start, "end": step.end}
    if isinstance(step, CaStep):
        return {"vs_ocv": step.vs_ocv}
    if isinstance(step, TemperatureStep):
        return {"setpoint_c": step.setpoint, "band_k": step.band, "stable_for_s": step.stable_for,
                "max_wait_s": step.max_wait}
    return {}


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.4g} h"
    return f"{seconds / 86400:.4g} d"


def describe_setpoint(step: ProgramStep) -> str:
    if isinstance(step, LoopStep):
        return f"back to {step.target}, {step.count} passes"
    if isinstance(step, CurrentStep):
        text = format_si(step.current, "A")
        if step.hold_voltage is not None:
            text += f" then hold {step.hold_voltage:g} V"
        return text
    if isinstance(step, EisStep):
        unit = "V" if step.mode == "potentio" else "A"
        return f"{step.mode} {format_si(step.f_start, 'Hz')} -> {format_si(step.f_end, 'Hz')}, " \
               f"{format_si(step.amplitude, unit)}"
    if isinstance(step, CvStep):
        return f"{format_si(step.scan_rate, 'V/s')} {step.vertex_1:g}<->{step.vertex_2:g} V x{step.cycles}"
    if isinstance(step, LsvStep):
        return f"{format_si(step.scan_rate, 'V/s')} to {step.end:g} V"
    if isinstance(step, TemperatureStep):
        return f"{step.setpoint:g} degC +-{step.band:g} K"
    control = step.control
    if control.value is None:
        return "-"
    unit = {"current": "A", "voltage": "V", "power": "W"}.get(control.quantity, "")
    text = format_si(control.value, unit)
    if isinstance(step, CaStep) and step.vs_ocv:
        text += " vs OCV"
    if isinstance(step, HoldStep) and step.current_limit is not None:
        text += f" (|I| <= {format_si(step.current_limit, 'A')})"
    return text


def describe_hold(entry: dict[str, Any]) -> str | None:
    """One line on a hold's direction for the table, from its plan entry (``None`` for other steps)."""
    if entry["kind"] != "hold":
        return None
    if entry["direction"] is None:
        return (f"step {entry['index']} (hold): direction unknown ({entry['direction_reason']}); a Neware channel "
                "needs 'direction: charge|discharge'")
    return f"step {entry['index']} (hold): {entry['direction']}s ({entry['direction_reason']})"
