"""`station plan` warns when a DC polarisation between blocking electrodes is held too short (P7).

The ionic current decays by chemical diffusion across the film, tau = L^2/(pi^2 D~); the electronic conductivity
read at the end of a hold t is (1 + eps(t)) times the true one. Reference numbers for the library cell (45 um,
D~ = 3e-13 m^2/s, sigma_e/sigma_i = 0.2 at 27 degC): tau = 11.4 min, eps(5 min) = 46.8 %, 1 % reached after
20.3 min (the roots of tan y = -0.2 y give the series; see tests/simulators/cells/test_p7_blocking_diffusion.py).
"""

from __future__ import annotations

import json
import math
import re

import pytest
from typer.testing import CliRunner

from protocols.cells import load_cell, load_cell_text
from protocols.loader import load_protocol
from simulators.cells.blocking import dc_polarisation_error
from station.cli import app
from station.plan import dc_polarisation_warnings, has_blocking_electrodes, plan_document

runner = CliRunner()
TAU = 45e-6**2 / (math.pi**2 * 3e-13)


def warnings_for(dc_time: str, cell=None) -> list[str]:
    cell = cell or load_cell("host-blocking")
    program = load_protocol("p7-conductivity", {"dc_time": dc_time}).bind(cell)
    return dc_polarisation_warnings(program, cell)


def test_a_5_min_dc_hold_is_flagged_with_the_predicted_error_and_the_hold_needed() -> None:
    (warning,) = warnings_for("5 min")
    eps = float(dc_polarisation_error(300.0, TAU, 0.2)[0])
    assert eps == pytest.approx(0.468, abs=1e-3)
    assert warning.startswith("step 3 (ca, 5 min): DC polarisation between blocking electrodes")
    assert "tau = L^2/(pi^2 D~) = 11.4 min" in warning
    assert f"will read {100 * eps:.3g} % too high" in warning
    needed = float(re.search(r"hold at least ([\d.]+) min for 1 %", warning).group(1))
    assert needed == pytest.approx(20.3, abs=0.05)
    assert float(dc_polarisation_error(needed * 60, TAU, 0.2)[0]) == pytest.approx(0.01, rel=0.02)


def test_the_protocols_1_h_hold_is_long_enough() -> None:
    assert warnings_for("1 h") == []
    assert warnings_for("30 min") == []  # eps = 0.08 %: a P7 result within its tolerance
    assert len(warnings_for("15 min")) == 1


def test_the_cell_records_diffusivity_and_temperature_are_used() -> None:
    fast = load_cell_text(
        "name: fast\ndiameter: 12 mm\nthickness: 45 um\nmodel: {type: blocking, chemical_diffusivity: 3.0e-12}\n"
        "metadata: {electrodes: stainless steel (Li-ion blocking)}\n"
    )
    assert warnings_for("5 min", fast) == []  # tau = 68 s: 5 min is 4.4 tau
    hot = load_cell_text("name: hot\ndiameter: 12 mm\nthickness: 45 um\nmodel: blocking\ntemperature: 60 degC\n")
    assert warnings_for("5 min", hot) == []  # D~ is 5x faster at 60 degC (0.41 eV)
    thick = load_cell_text("name: thick\ndiameter: 12 mm\nthickness: 200 um\nmodel: blocking\n")
    (warning,) = warnings_for("1 h", thick)  # tau grows with L^2: 684 s x (200/45)^2 = 3.753 h
    assert "tau = L^2/(pi^2 D~) = 3.753 h" in warning


def test_which_cells_count_as_blocking() -> None:
    assert has_blocking_electrodes(load_cell("host-blocking"))
    by_metadata = load_cell_text("name: b\ndiameter: 12 mm\nthickness: 45 um\n"
                                 "metadata: {electrodes: Au (ion-blocking)}\n")  # fmt: skip
    assert has_blocking_electrodes(by_metadata)
    assert len(warnings_for("5 min", by_metadata)) == 1  # the blocking model's defaults at the cell's thickness
    reversible = load_cell_text("name: r\ndiameter: 12 mm\nthickness: 45 um\nmodel: li-host\n"
                                "metadata: {electrodes: non-blocking Li}\n")  # fmt: skip
    assert not has_blocking_electrodes(reversible)
    assert warnings_for("5 min", reversible) == []


def test_plan_json_carries_the_warning() -> None:
    result = runner.invoke(app, ["plan", "p7-conductivity", "--cell", "host-blocking", "--set", "dc_time=5 min",
                                 "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(doc["warnings"]) == 1 and "46.8 % too high" in doc["warnings"][0]
    cell = load_cell("host-blocking")
    program = load_protocol("p7-conductivity").bind(cell)
    assert plan_document(program, cell)["warnings"] == []


def test_the_printed_plan_shows_the_warning() -> None:
    result = runner.invoke(app, ["plan", "p7-conductivity", "--cell", "host-blocking", "--set", "dc_time=5 min"])
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("warning: ")]
    assert line.startswith("warning: step 3 (ca, 5 min): DC polarisation between blocking electrodes")
    assert "46.8 % too high" in result.stdout.replace("\n", " ")
    quiet = runner.invoke(app, ["plan", "p7-conductivity", "--cell", "host-blocking"])
    assert "warning:" not in quiet.stdout
