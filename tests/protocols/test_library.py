"""The shipped protocols P1-P7 bind to their cells with the numbers of the reference workload."""

import math

import pytest

from protocols.cells import load_cell
from protocols.estimate import estimate_program
from protocols.library import PAIRS, cell_names, protocol_names
from protocols.loader import load_protocol
from protocols.program import Quantity


def test_every_library_protocol_has_a_cell_and_every_file_is_listed():
    assert sorted(PAIRS) == protocol_names()
    assert set(PAIRS.values()) <= set(cell_names())
    assert len(cell_names()) == 6


@pytest.mark.parametrize(("protocol", "cell_name"), sorted(PAIRS.items()))
def test_library_protocol_plans_on_its_cell(protocol, cell_name):
    cell = load_cell(cell_name)
    program = load_protocol(protocol).bind(cell)
    estimate = estimate_program(program, cell)
    assert estimate.complete and estimate.total_s > 0


def test_library_cells_hold_the_reference_facts():
    host = load_cell("host-cu-li")
    assert host.area == pytest.approx(1.131e-4, rel=1e-3)
    assert host.thickness == pytest.approx(45e-6)
    full = load_cell("predeposited-ncm622")
    assert full.capacity == pytest.approx(12.9e-6 * 175, rel=1e-12)


def test_p1_plates_4_mah_per_cm2_in_8_hours():
    program = load_protocol("p1-li-deposition").bind(load_cell("host-cu-li"))
    plate = program.step(3)
    assert plate.current == pytest.approx(-0.5e-3 * math.pi * 0.6**2, rel=1e-12)
    assert plate.limit(Quantity.CAPACITY).value / -plate.current == pytest.approx(8.0, rel=1e-12)


def test_p3_formation_and_cycling_rates():
    cell = load_cell("predeposited-ncm622")
    program = load_protocol("p3-full-cell-cycling", {"cycles": "1000"}).bind(cell)
    assert [s.kind for s in program.steps] == ["rest", "charge", "discharge", "loop", "charge", "discharge", "loop"]
    assert program.step(2).current == pytest.approx(0.1 * cell.capacity)
    assert program.step(6).current == pytest.approx(-0.5 * cell.capacity)
    assert program.step(7).count == 1000 and program.step(4).count == 2
    assert program.step(2).tag == "formation" and program.step(5).tag == "cycling"


def test_p7_uses_50_mv_eis_and_a_dc_step_relative_to_ocv():
    program = load_protocol("p7-conductivity").bind(load_cell("host-blocking"))
    eis, ca = program.step(2), program.step(3)
    assert (eis.amplitude, eis.f_start, eis.f_end) == (pytest.approx(0.05), pytest.approx(1e5), pytest.approx(0.1))
    assert ca.vs_ocv and ca.voltage == pytest.approx(0.05)
