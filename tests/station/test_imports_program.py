"""The step program an import synthesises from a vendor table, and the running-total helpers, on hand-made tables."""

from __future__ import annotations

import numpy as np

from station.imports.common import (
    VendorStep,
    VendorTable,
    decimal7,
    integrate_in_runs,
    since_run_start,
    synthesise_program,
    to_records,
)


def _table(rows: list[tuple[int, float, float]], steps: dict[int, VendorStep], cycle: list[int] | None = None,
           ) -> VendorTable:
    """Rows of (vendor step, V, A), one a second."""
    step = np.array([r[0] for r in rows])
    n = len(rows)
    return VendorTable(vendor="Test", file_version="1", reader="hand", test_time=np.arange(1.0, n + 1),
                       step_time=np.zeros(n), step=step, run_start=np.r_[True, step[1:] != step[:-1]],
                       cycle=np.array(cycle or [1] * n), voltage=np.array([r[1] for r in rows]),
                       current=np.array([r[2] for r in rows]), capacity=np.zeros(n), energy=np.zeros(n), steps=steps)


def test_every_vendor_kind_becomes_its_program_step() -> None:
    rows = [(10, 3.0, -0.002), (10, 2.8, -0.001),  # CCCV discharge: CC, then CV at its lowest voltage
            (11, 4.2, 0.001), (11, 4.2, 0.0005),  # CV hold, charging
            (12, 3.0, -0.001), (12, 3.0, -0.0004),  # CV hold, discharging
            (13, 3.7, 0.01), (13, 3.7, 0.01),  # constant power 37 mW
            (14, 3.5, 0.0), (14, 3.5, 0.0),  # unknown type, no current: a rest
            (15, 3.4, -0.003), (15, 3.3, -0.003),  # unknown type, negative current: a discharge
            (16, 3.3, 0.0), (16, 3.3, 0.0),  # called a charge, but no current flowed: a rest
            (17, 1.0, 0.0), (17, 1.5, 0.0), (17, 2.0, 0.0), (17, 1.5, 0.0), (17, 1.0, 0.0)]  # a CV sweep
    steps = {10: VendorStep("cccv_discharge", "CCCV_DChg"), 11: VendorStep("hold_charge", "CV_Chg"),
             12: VendorStep("hold_discharge", "CV_DChg"), 13: VendorStep("power", "CP_Chg"),
             14: VendorStep("auto", "step type 99"), 15: VendorStep("auto", "step type 98"),
             16: VendorStep("charge", "CC_Chg"), 17: VendorStep("cv", "CyclicVoltammetry")}
    cycles = [1] * 14 + [1, 1, 1, 2, 2]
    table = _table(rows, steps, cycles)
    program, index_of = synthesise_program(table, name="import:x", cell="c")
    assert index_of == {10: 1, 11: 2, 12: 3, 13: 4, 14: 5, 15: 6, 16: 7, 17: 8}
    s = program.steps
    assert [x.kind for x in s] == ["discharge", "hold", "hold", "power", "rest", "discharge", "rest", "cv"]
    assert (s[0].current, s[0].hold_voltage) == (-0.0015, 2.8)  # median current of the step
    assert (s[1].voltage, s[1].direction, s[2].direction) == (4.2, "charge", "discharge")
    assert s[3].power == 0.037
    assert s[5].current == -0.003
    assert (s[7].scan_rate, s[7].vertex_1, s[7].vertex_2, s[7].cycles) == (0.5, 2.0, 1.0, 2)
    assert s[4].label == "Test step 14: step type 99"
    records = to_records(table, index_of, program)
    assert records["step_index"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 8, 8, 8]
    assert records["cv_cycle"].tolist() == [0] * 14 + [1, 1, 1, 2, 2]
    assert np.isnan(records["frequency"]).all()


def test_running_totals_count_from_each_step_start() -> None:
    start = np.array([True, False, False, True, False])
    # a total since the test began (EC-Lab's Q-Qo): each pass counts from the last point before it
    assert since_run_start(np.array([1.0, 2.0, 4.0, 3.0, 1.0]), start).tolist() == [1.0, 2.0, 4.0, -1.0, -3.0]
    # each point's value over the interval since the point before, the first interval of a pass included
    t = np.array([0.0, 10.0, 30.0, 40.0, 45.0])
    y = np.array([5.0, 1.0, 2.0, 3.0, 4.0])
    assert integrate_in_runs(y, t, start).tolist() == [0.0, 10.0, 50.0, 30.0, 50.0]


def test_float32_values_keep_their_decimals() -> None:
    f32 = np.array([2.9, 3.0512, -0.0005, 12345.67, 0.0, 1e-9], dtype=np.float32)
    assert decimal7(f32).tolist() == [2.9, 3.0512, -0.0005, 12345.67, 0.0, 1e-9]
    assert np.isnan(decimal7(np.array([np.nan], dtype=np.float32))[0])
