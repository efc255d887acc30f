"""Binding: a validated protocol plus a cell become a step program, or a list of every problem found.

This is where the checks that need more than one line of the file live: C-rates and per-area values need the
cell; a limit's direction needs the step's kind; "can this step ever end?" needs the safety window, the cell's
window and the step before it. Without a cell (``station validate`` with no ``--cell``) the same pass runs and
reports everything that does not depend on the cell.

The parts, one job each, all reporting into one :class:`~protocols.binding.context.Binding`:

=====================  ===========================================================================================
``context``            the pass's shared state: source, cell, problems, safety limits
``quantities``         relative currents and capacities against the cell; magnitudes, set-points and recording
``header``             ``requires``, the safety limits (the protocol's and the cell's, the tighter of each)
``terminations``       ``until`` as terminations: one table row (SI value, comparison, message) per quantity
``steps``              one method per step kind returning its :mod:`protocols.program` step; repeats; jumps
=====================  ===========================================================================================

How a C-rate gets from the YAML to the Neware step file, read once
------------------------------------------------------------------

1. ``- charge: {current: 0.1C, until: {voltage: 4.3 V}}``: :mod:`protocols.yamlsource` loads the text ``'0.1C'``
   and remembers its line and column; a ``${rate}`` parameter is substituted into the tree before the models see it
   (:mod:`protocols.parameters`).
2. ``CurrentBody.current`` (:mod:`protocols.model`) is a :data:`protocols.fields.CurrentField`: when the model
   validates the file, it calls :func:`protocols.units.parse_current`, which recognises the C-rate before pint
   could read ``C`` as coulombs and returns ``Current(value=0.1, basis='c_rate', text='0.1C')`` (a rate in 1/h).
   This is the only time the text is read. A shorthand step (``Charge at 0.1C until 4.3 V``) is read by
   :mod:`protocols.shorthand`, which hands the model the same ``Current``.
3. :meth:`steps.StepBinder.current` calls :func:`quantities.resolve`, which asks
   :meth:`protocols.units.Current.resolve` for ``0.1 /h x cell.capacity`` (Ah) = A, or reports that the cell gives
   no capacity. The magnitude is checked against the safety/cell current limit
   (:func:`quantities.check_current_setpoint`, whose message shows ``'0.1C' = 175 uA``), signed by the step's
   direction (positive charges) and returned as ``CurrentStep(current=1.75e-4)``.
4. A driver compiles the step program: the Neware compiler (``drivers.neware.stepfile``) writes absolute-current
   step files (``RateType 103``), so the CC step's ``<Curr Value=...>`` is ``abs(step.current)`` in mA
   (``0.175``) and its step type (CC charge or CC discharge) comes from the sign.
"""

from __future__ import annotations

from pydantic import BaseModel

from protocols import model as m
from protocols.binding.context import Binding
from protocols.binding.header import bind_header
from protocols.binding.steps import EIS_MAX_HZ, EIS_MIN_HZ, MAX_PROGRAM_STEPS, StepBinder
from protocols.cells import Cell
from protocols.errors import Path, Problem
from protocols.program import StepProgram
from protocols.yamlsource import SourceDoc

__all__ = ["EIS_MAX_HZ", "EIS_MIN_HZ", "MAX_PROGRAM_STEPS", "bind"]


def bind(doc: m.ProtocolDoc, source: SourceDoc, cell: Cell | None, *, origins: dict[Path, str] | None = None,
         parameters: dict[str, str] | None = None,
         steps: list[tuple[int, BaseModel]] | None = None) -> tuple[StepProgram | None, list[Problem]]:
    """Resolve ``doc`` against ``cell``. Returns the program (``None`` without a cell or with problems) and the
    problems found; all problems are collected in one pass. ``steps`` replaces ``doc.steps`` with (index, step)
    pairs when only some steps of a broken file are checkable."""
    b = Binding(source=source, cell=cell, origins=origins or {})
    binder = StepBinder(b, default_record=bind_header(b, doc))
    if steps is None:
        binder.bind_steps(doc.steps, ("steps",), None)
    else:
        binder.bind_steps([s for _, s in steps], ("steps",), None, [i for i, _ in steps])
    binder.resolve_jumps()
    if b.problems or cell is None:
        return None, b.problems
    built = [step for step in binder.steps if step is not None]
    assert len(built) == len(binder.steps), "a step was left unbuilt without a problem"
    program = StepProgram(protocol=doc.protocol, cell=cell.name, parameters=parameters or {}, safety=b.safety,
                          record=binder.default_record, steps=tuple(built),
                          nominal_capacity=cell.capacity if cell.capacity and cell.capacity > 0 else None,
                          start_voltage=cell.ocv)
    return program, []
