"""A dry run's cell models need no scipy: importing it costs ~0.36 s and ~54 MB per process (issue 18).

Checked in a fresh interpreter, since this test process has long imported scipy for other tests. Only an EIS at a
finite amplitude (scipy.special) and a climate chamber's thermal model (scipy.linalg) import scipy, on first use.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

#: scipy's modules that are loaded, as a sorted list (empty when scipy was never imported)
_SCIPY_LOADED = "sorted(m for m in sys.modules if m == 'scipy' or m.startswith('scipy.'))"


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_model_builds_and_runs_without_importing_scipy() -> None:
    out = _run(f"""
        import sys
        import simulators.cells
        from simulators.cells import MODEL_TYPES, build_model
        from protocols.program import CurrentStep, RecordRule, RestStep, Termination

        assert not {_SCIPY_LOADED}, {_SCIPY_LOADED}
        every = RecordRule(every_s=30.0)
        rest = RestStep(index=1, until=(Termination(quantity="time", op=">=", value=600.0),), record=every)
        for name in sorted(MODEL_TYPES):
            cell = build_model(name, seed=1)
            discharge = CurrentStep(
                index=2, kind="discharge", current=-1e-5, record=every,
                until=(Termination(quantity="time", op=">=", value=600.0),
                       Termination(quantity="voltage", op="<=", value=cell.open_circuit_voltage() - 0.01)),
            )
            for step in (rest, discharge, rest):
                assert len(cell.run_step(step)) > 1
        print("scipy:", {_SCIPY_LOADED})
    """)
    assert out.strip() == "scipy: []"


def test_p3_dry_run_cell_loads_no_scipy_module_of_its_own() -> None:
    """The library P3 program on its library cell, 3 cycles. Reading the cell record's units imports pint, and pint
    itself runs ``import scipy`` (the bare package, to know whether it is installed): that package is allowed here,
    none of its subpackages (optimize, interpolate, special, linalg) is."""
    out = _run(f"""
        import sys
        from protocols.cells import load_cell
        from protocols.library import PAIRS, resolve_cell_path, resolve_protocol_path
        from protocols.loader import build_program
        from protocols.program import walk
        from simulators.biologic.placement import build_cell

        cell_name = PAIRS["p3-full-cell-cycling"]
        program = build_program(resolve_protocol_path("p3-full-cell-cycling"), load_cell(resolve_cell_path(cell_name)),
                                {{"cycles": "3"}})
        before = {_SCIPY_LOADED}
        model = build_cell(cell_name)
        results = [model.run_step(executed.step) for executed in walk(program)]
        after = {_SCIPY_LOADED}
        assert after == before, sorted(set(after) - set(before))
        print("steps:", len(results), "terminations:", sum(r.end_reason == "termination" for r in results))
        print("end voltages:", " ".join(f"{{r.voltage[-1]:.6f}}" for r in results[1:]))
        print("heavy:", [m for m in after if m.split(".")[1:2] in (["optimize"], ["interpolate"], ["special"],
                                                                   ["linalg"])])
    """)
    lines = out.strip().splitlines()
    # the 6 h rest, 2 formation cycles and 3 cycles, each a charge and a discharge ended by its voltage limit, the
    # instant of which the root finder locates: every step ends on its limit (4.3 V, 3.0 V) to within a microvolt
    assert lines[0] == "steps: 11 terminations: 11"
    assert lines[1] == "end voltages: " + " ".join(["4.300000 3.000000"] * 5)
    assert lines[2] == "heavy: []"
