"""The firmware-side reading of techniques: limits, loops, exits, CV cycles, EIS processes; and the dummy cell."""

from __future__ import annotations

import math

import numpy as np
import pytest
from reference_words import row_ticks, singles

from protocols.program import CaStep, CurrentStep, RecordRule, Termination
from simulators.biologic import firmware as fw
from simulators.biologic.encode import columns
from simulators.biologic.limits import holds, read_tests
from simulators.biologic.runner import EIS_POINT_OVERHEAD_S, RunConfig, TechniqueRun
from simulators.cells.dummy import DummyCell, DummyCellParams

TB = 24e-6


def tech(stem, **values):
    return fw.LoadedTechnique(stem, fw.TECHNIQUES[stem], values)


def cp(current, duration, tests=(), exit_cond=1):
    values = {"Current_step": [current], "vs_initial": [False], "Duration_step": [duration], "Step_number": 0,
              "Record_every_dT": 1.0, "I_Range": 8}  # fmt: skip
    for n, (config, value) in enumerate(tests, start=1):
        values[f"Test{n}_Config"], values[f"Test{n}_Value"] = [config], [value]
    if tests:
        values["Exit_Cond"] = [exit_cond]
    return tech("cplimit" if tests else "cp", **values)


def execute(techniques, model, until=1e7, board=fw.PREMIUM):
    run = TechniqueRun(techniques, model, RunConfig(board, TB), start=0.0)
    out = []

    def emit(seg, a, b):
        names = columns(seg.technique_id, seg.process, board)
        rows = seg.words[a:b]
        decoded = {n: singles(rows[:, k], board) for k, n in enumerate(names) if n != "blank"}
        for k, n in enumerate(names):
            if n in ("t_high", "t_low", "cycle"):
                decoded[n] = rows[:, k].astype(np.int64)
        if "t_high" in names:
            decoded["ticks"] = row_ticks(rows, board)
        out.append((seg.technique_index, seg.process, seg.technique_start, decoded))

    run.advance(until, emit)
    return run, out


def resistor(e0=1.0, r=100.0):
    return DummyCell(DummyCellParams(e0=e0, r0=r, r1=1e-9, r2=0.0, c2=1e-9))


def V(quantity, op, value):
    return Termination(quantity=quantity, op=op, value=value)


def test_limit_tests_combine_left_to_right_and_stop_at_the_first_inactive_one():
    # I < 0.1 mA AND I > -0.1 mA, OR Ewe > 4.2 V
    t = tech("calimit", Test1_Config=[97], Test1_Value=[1e-4], Test2_Config=[103], Test2_Value=[-1e-4],
             Test3_Config=[5], Test3_Value=[4.2])  # fmt: skip
    tests = read_tests(t, 0)
    assert [(x.word.variable, x.word.greater, x.word.and_previous) for x in tests] == [
        (3, False, False), (3, True, True), (0, True, False)]  # fmt: skip
    assert holds(tests, 4.0, 5e-5) and holds(tests, 4.0, -5e-5) and not holds(tests, 4.0, 2e-4)
    assert holds(tests, 4.3, 2e-4) and not holds(tests, 4.2, 2e-4)  # strict, and 4.2 is compared as a single
    inactive_first = tech("calimit", Test1_Config=[0], Test1_Value=[0.0], Test2_Config=[5], Test2_Value=[1.0])
    assert read_tests(inactive_first, 0) == []  # Test2 is ignored when Test1 is inactive


def test_a_signed_current_test_is_not_a_magnitude_test():
    # "I > 1 mA" on a CA whose current is negative (discharging) never holds, however large |I| gets
    techniques = [tech("calimit", Voltage_step=[0.5], vs_initial=[False], Duration_step=[10.0], Step_number=0,
                       Record_every_dT=1.0, Test1_Config=[101], Test1_Value=[1e-3], Exit_Cond=[2])]  # fmt: skip
    run, _ = execute(techniques, resistor(e0=1.0, r=100.0))  # -5 mA through 100 ohm
    assert run.finished_at == pytest.approx(10.0)
    flipped = [tech("calimit", Voltage_step=[0.5], vs_initial=[False], Duration_step=[10.0], Step_number=0,
                    Record_every_dT=1.0, Test1_Config=[97], Test1_Value=[-1e-3], Exit_Cond=[2])]  # fmt: skip
    run, _ = execute(flipped, resistor(e0=1.0, r=100.0))  # "I < -1 mA" holds at once
    assert run.finished_at == pytest.approx(200e-6)  # at the first acquisition


def test_words_the_reference_does_not_define_are_refused_at_load():
    params = {"Current_step": [1e-3], "vs_initial": [False], "Duration_step": [1.0], "Step_number": 0,
              "I_Range": 8}  # fmt: skip
    with pytest.raises(fw.Refused):
        fw._check_limits("cplimit", {**params, "Test1_Config": [1 | (2 << 2)], "Test1_Value": [1.0]})
    with pytest.raises(fw.Refused):
        fw._check_limits("cplimit", {**params, "Test1_Config": [1 | (4 << 5)], "Test1_Value": [1.0]})
    with pytest.raises(fw.Refused):
        fw._check_limits("cplimit", {**params, "Exit_Cond": [3]})


def test_loop_repeats_the_jump_count_then_falls_through():
    techniques = [cp(1e-3, 10.0), tech("loop", loop_N_times=2, protocol_number=0), tech("ocv", Rest_time_T=5.0)]
    run, out = execute(techniques, resistor())
    assert [(i, start) for i, _, start, _ in out] == [(0, 0.0), (0, 10.0), (0, 20.0), (2, 30.0)]
    assert run.finished_at == pytest.approx(35.0) and run.loop_jumps == 2


def test_a_limit_with_exit_stop_ends_the_experiment():
    # 1 mA into 100 ohm on 1 V: 1.1 V at once, so "Ewe > 1.05 V" ends the step, and Exit_Cond 2 stops
    techniques = [cp(1e-3, 100.0, tests=[(5, 1.05)], exit_cond=2), tech("ocv", Rest_time_T=5.0)]
    run, out = execute(techniques, resistor())
    assert [i for i, *_ in out] == [0]
    assert run.finished_at < 0.1


def test_a_limit_with_next_technique_goes_on():
    techniques = [cp(1e-3, 100.0, tests=[(5, 1.05)], exit_cond=1), tech("ocv", Rest_time_T=5.0)]
    run, out = execute(techniques, resistor())
    assert [i for i, *_ in out] == [0, 1]
    assert run.finished_at == pytest.approx(5.0, abs=0.01)


def test_cv_cycle_column_counts_arrivals_at_the_second_vertex():
    cv = tech("cv", vs_initial=[False] * 5, Voltage_step=[0.5, 0.0, 1.0, 0.5, 0.5], Scan_Rate=[0.01] * 5,
              Scan_number=2, Record_every_dE=0.01, N_Cycles=1)  # fmt: skip
    _, out = execute([cv], DummyCell(DummyCellParams(r0=10.0, r1=1000.0, c2=1e-6)))
    ((_, _, _, rows),) = out
    t = rows["ticks"] * float(np.float32(TB))
    # 0.5 -> 0 -> 1 (150 s, cycle 0), 1 -> 0 -> 1 (200 s, cycle 1), 1 -> 0.5 (50 s, still cycle 1)
    assert t[-1] == pytest.approx(400.0, abs=1e-3)
    assert np.all(rows["cycle"][t < 149.9] == 0) and np.all(rows["cycle"][t > 150.1] == 1)
    assert rows["Ewe"][-1] == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("unit", ["V/s", "mV/s"])
def test_scan_rate_unit_is_the_channels_setting(unit):
    rate = 0.01 if unit == "V/s" else 10.0
    lsv = tech("vscanlimit", Voltage_step=[0.0, 1.0], vs_initial=[False, False], Scan_Rate=[rate, rate],
               Scan_number=1, Record_every_dE=0.1)  # fmt: skip
    run = TechniqueRun([lsv], resistor(0.0), RunConfig(fw.PREMIUM, TB, scan_rate_unit=unit), start=0.0)
    run.advance(1e6, lambda *a: None)
    assert run.finished_at == pytest.approx(100.0)


def test_peis_with_a_dc_hold_gives_process_0_then_one_row_per_frequency():
    model = DummyCell(DummyCellParams(e0=0.5, r0=10.0, r1=100.0, r2=0.0, c2=1e-5))
    peis = tech("peis", vs_initial=True, vs_final=True, Initial_Voltage_step=0.0, Final_Voltage_step=0.0,
                Duration_step=30.0, Step_number=0, Record_every_dT=10.0, Initial_frequency=1e4,
                Final_frequency=1.0, sweep=False, Amplitude_Voltage=0.01, Frequency_number=9, Average_N_times=2,
                Wait_for_steady=1.0)  # fmt: skip
    run, out = execute([peis], model)
    assert [p for _, p, _, _ in out] == [0, 1]
    eis = out[1][3]
    f = np.geomspace(1e4, 1.0, 9)
    assert np.allclose(eis["freq"], f, rtol=1e-6)
    z = model.impedance(f)
    assert np.allclose(eis["abs_Ewe"] / eis["abs_I"], np.abs(z), rtol=1e-6)
    assert np.allclose(eis["phase_Zwe"], np.angle(z), atol=1e-6)
    points = np.cumsum(3 / f + EIS_POINT_OVERHEAD_S)  # (Na + wait) periods + overhead each
    assert np.allclose(eis["t"], 30.0 + points, rtol=1e-6)
    assert run.finished_at == pytest.approx(30.0 + points[-1], rel=1e-9)


def test_galvano_eis_applies_the_current_amplitude():
    model = DummyCell(DummyCellParams(r0=10.0, r1=100.0, c2=1e-5))
    geis = tech("geis", Initial_Current_step=0.0, Final_Current_step=0.0, Initial_frequency=100.0,
                Final_frequency=10.0, Frequency_number=2, Amplitude_Current=1e-4, I_Range=7)  # fmt: skip
    _, ((_, process, _, rows),) = execute([geis], model)
    assert process == 1
    assert np.allclose(rows["abs_I"], 1e-4)
    assert np.allclose(rows["abs_Ewe"], 1e-4 * np.abs(model.impedance(np.array([100.0, 10.0]))), rtol=1e-6)


def test_dummy_cell_impedance_is_its_circuit():
    cell = DummyCell(DummyCellParams(r0=5.0, r1=400.0, r2=800.0, c2=1e-5))
    f = np.array([1e5, 1.0, 1e-3])
    z = cell.impedance(f)
    branch = 800.0 + 1 / (1j * 2 * math.pi * f * 1e-5)
    assert np.allclose(z, 5.0 + 400.0 * branch / (400.0 + branch))
    assert z[0].real == pytest.approx(5 + 400 * 800 / 1200, rel=1e-3)  # high frequency: r1 || r2
    assert z[-1].real == pytest.approx(405.0, rel=1e-3)  # DC: the blocking branch carries nothing


def test_dummy_cell_potentiostatic_step_settles_on_the_dc_path():
    cell = DummyCell(DummyCellParams(e0=0.2, r0=0.0, r1=400.0, r2=800.0, c2=1e-5))
    result = cell.run_step(CaStep(index=1, voltage=0.05, vs_ocv=True, until=(V("time", ">=", 10.0),),
                                  record=RecordRule(every_s=1.0)))  # fmt: skip
    assert result.current[0] == pytest.approx(0.05 / (400 * 800 / 1200), rel=1e-3)  # both paths at first
    assert result.current[-1] == pytest.approx(0.05 / 400, rel=1e-6)  # only the electronic path at the end
    assert list(result.t) == pytest.approx(list(range(11)))
    assert cell.open_circuit_voltage() == pytest.approx(0.2 + 0.05 * 400 / 1200, rel=1e-6)  # charged interface


def test_dummy_cell_current_step_ends_on_voltage():
    cell = DummyCell(DummyCellParams(e0=0.0, r0=0.0, r1=1000.0, r2=0.0, c2=0.01))  # tau 10 s, V -> 1 V at 1 mA
    step = CurrentStep(index=1, kind="charge", current=1e-3, until=(V("time", ">=", 100.0),
                       V("voltage", ">=", 0.5)))  # fmt: skip
    result = cell.run_step(step)
    assert result.end_reason == "termination" and result.ended_by == 1
    assert result.duration == pytest.approx(10 * math.log(2), abs=0.06)
    assert result.capacity[-1] == pytest.approx(1e-3 * result.duration / 3600)
