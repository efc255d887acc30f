"""What every analysis reads: one run's records, the step program it ran and the cell it ran on, in SI units.

Analysis never opens a store or talks to a driver (DESIGN section 2): a caller builds a :class:`RunData` (from the
store with :func:`station.run_data.load_run`, from an import, or by hand in a test or a notebook) and hands it in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protocols.cells import Cell
from protocols.program import StepProgram


@dataclass(frozen=True)
class RunData:
    """One run, ready for analysis.

    ``records`` is a structured array with the store's record fields (``seq``, ``test_time``, ``step_time``,
    ``step_index``, ``cycle``, ``voltage``, ``current``, ``capacity``, ``energy``, ``frequency``, ``z_real``,
    ``z_imag``, ``cv_cycle``): SI units, positive current charging, capacity and energy signed and counted from
    each step's start, NaN in the impedance fields outside EIS, ``cv_cycle`` 1.. inside a CV step and 0 elsewhere.
    """

    run_id: str
    records: np.ndarray
    program: StepProgram
    cell: Cell
    sample_id: str | None = None
    protocol_name: str = ""
    campaign_stage: str | None = None
    lithiation: str | None = None
    """``"before"`` or ``"after"`` when the run's campaign has a lithiation stage after or before it; else None."""
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How figures and tables name the run: its sample, with the campaign stage when there is one."""
        name = self.sample_id or self.run_id
        return f"{name} ({self.campaign_stage})" if self.campaign_stage else name
