"""What ``station plan`` shows: the step program with estimated durations, as a stable JSON document or a table.

The JSON shape is an interface scripts rely on; keys may be added, the documented ones never change:
``{"protocol", "cell", "estimated_duration_s", "steps": [{"index", "kind", "tag", "control": {"quantity",
"value"}, "until": [{"quantity", "op", "value"}], "estimated_s"}]}`` in A, V, W, Ah, s; positive current charges.
"""

from __future__ import annotations

from typing import Any

from protocols.cells import Cell
from protocols.estimate import PlanEstimate, estimate_program
from protocols.program import (
    CaStep,
    CurrentStep,
    CvStep,
    EisStep,
    LoopStep,
    LsvStep,
    ProgramStep,
    StepProgram,
)
from protocols.units import format_si


def plan_document(program: StepProgram, cell: Cell, estimate: PlanEstimate | None = None) -> dict[str, Any]:
    estimate = estimate or estimate_program(program, cell)
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
    }


def _details(step: ProgramStep) -> dict[str, Any]:
    if isinstance(step, CurrentStep) and step.hold_voltage is not None:
        return {"hold_voltage": step.hold_voltage}
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
    control = step.control
    if control.value is None:
        return "-"
    unit = {"current": "A", "voltage": "V", "power": "W"}.get(control.quantity, "")
    text = format_si(control.value, unit)
    if isinstance(step, CaStep) and step.vs_ocv:
        text += " vs OCV"
    return text
