"""Which BDF ``Step Type`` each program step is (the values of :data:`station.exports.vocabulary.STEP_TYPES`).

The type is the step's control mode from the step program, as the ontology asks ("preserved as reported"), never
guessed from the data. One case needs the data: a voltage hold whose protocol gave no direction is CV_CHG or
CV_DCH by the charge it passed, decided per execution in :func:`station.exports.records.time_series`.
"""

from __future__ import annotations

from typing import Any

from protocols.program import CurrentStep, HoldStep, PowerStep, StepProgram

#: the kinds whose type does not depend on a sign
_BY_KIND = {"rest": "REST", "eis": "EIS", "ca": "CA", "cv": "CYCLIC_VOLTAMMETRY", "lsv": "LINEAR_SWEEP",
            "temperature": "TEMPERATURE", "loop": "LOOP"}
UNKNOWN = ""  # a record whose step the program does not have (or an export given no program)


def step_type(step: Any) -> str | None:
    """The step's type; None for a voltage hold without a direction (the records decide)."""
    if isinstance(step, CurrentStep):
        return f"{'CCCV' if step.hold_voltage is not None else 'CC'}_{'CHG' if step.current > 0 else 'DCH'}"
    if isinstance(step, PowerStep):
        return "CP_CHG" if step.power > 0 else "CP_DCH"
    if isinstance(step, HoldStep):
        return None if step.direction is None else f"CV_{'CHG' if step.direction == 'charge' else 'DCH'}"
    return _BY_KIND[step.kind]


def program_table(program: StepProgram | None) -> tuple[list[str], list[int], list[bool]]:
    """``(categories, code_by_step_index, undirected_hold_by_step_index)``: the distinct values (``UNKNOWN``,
    CV_CHG and CV_DCH always among them), and per step index from 0 (index 0 and any index past the program's
    end are UNKNOWN) the code of its type and whether it is a hold the records must decide."""
    categories = [UNKNOWN, "CV_CHG", "CV_DCH"]
    steps = program.steps if program is not None else ()
    size = 1 + max((step.index for step in steps), default=0)
    codes, undirected = [0] * size, [False] * size
    for step in steps:
        kind = step_type(step)
        if kind is not None and kind not in categories:
            categories.append(kind)
        codes[step.index] = 0 if kind is None else categories.index(kind)
        undirected[step.index] = kind is None
    return categories, codes, undirected
