"""The simulated firmware's limit tests: where a step meets them, at the acquisition grid, for each technique."""

from __future__ import annotations

import numpy as np
import pytest
from reference_words import row_ticks, singles

from simulators.biologic import firmware as fw
from simulators.biologic.encode import columns
from simulators.biologic.limits import LimitTest, cuts_for, holds
from simulators.biologic.runner import RunConfig, TechniqueRun
from simulators.cells.dummy import DummyCell, DummyCellParams

TB = 24e-6
SAMPLE = RunConfig(fw.PREMIUM, TB).sample_period


def tech(stem, **values):
    return fw.LoadedTechnique(stem, fw.TECHNIQUES[stem], values)


def resistor(e0=1.0, r=100.0):
    return DummyCell(DummyCellParams(e0=e0, r0=r, r1=1e-9, r2=0.0, c2=1e-9))


def sweep(tests, start=1.0, end=2.0, rate=0.01, exit_cond=2):
    values = {"Voltage_step": [start, end], "vs_initial": [False, False], "Scan_Rate": [rate, rate],
              "Scan_number": 1, "Record_every_dE": 0.1}  # fmt: skip
    for n, (config, value) in enumerate(tests, start=1):
        values[f"Test{n}_Config"], values[f"Test{n}_Value"] = [config] * 2, [value] * 2
    values["Exit_Cond"] = [exit_cond] * 2
    return tech("vscanlimit", **values)


def run(techniques, model, until=1e7, stop=None):
    rows = []

    def emit(seg, a, b):
        names = columns(seg.technique_id, seg.process, fw.PREMIUM)
        words = seg.words[a:b]
        t = row_ticks(words, fw.PREMIUM) * float(np.float32(TB))
        ewe = singles(words[:, names.index("Ewe")], fw.PREMIUM)
        current = singles(words[:, names.index("I")], fw.PREMIUM) if "I" in names else np.zeros(len(words))  # OCV
        rows.extend(zip(t, ewe, current, strict=True))

    technique_run = TechniqueRun(techniques, model, RunConfig(fw.PREMIUM, TB), start=0.0)
    if stop is None:
        technique_run.advance(until, emit)
    else:
        technique_run.stop(stop, emit)
    return technique_run, rows


def test_a_sweep_stops_at_the_first_acquisition_past_a_current_limit():
    # 1 V -> 2 V at 10 mV/s through 100 ohm on a 1 V source: I = 0.1 mA/s * t, past 5 mA at 50 s
    run_, rows = run([sweep([(101, 5e-3), (97, -5e-3)])], resistor())
    _, _, i = rows[-1]
    assert 50.0 < run_.finished_at <= 50.0 + SAMPLE * (1 + 1e-9)
    assert i > np.float32(5e-3) and i - 5e-3 <= 1e-4 * SAMPLE + float(np.spacing(np.float32(5e-3)))
    assert all(abs(x) <= np.float32(5e-3) for _, _, x in rows[:-1])


def test_an_and_of_voltage_and_current_is_met_where_both_hold():
    # ((I > 7 mA) AND Ewe > 1.5 V): Ewe passes 1.5 V at 50 s with only 5 mA; both hold from 7 mA, at 70 s
    run_, rows = run([sweep([(101, 7e-3), (7, 1.5)])], resistor())
    assert 70.0 < run_.finished_at <= 70.0 + SAMPLE * (1 + 1e-9)  # 7 mA itself is not "> 7 mA"
    _, v, i = rows[-1]
    assert v > 1.7 - 1e-6 and i > np.float32(7e-3)


def test_a_stop_in_a_step_with_tests_leaves_the_cell_where_its_data_end():
    cell = DummyCell(DummyCellParams(e0=0.0, r0=0.0, r1=1000.0, r2=0.0, c2=0.01))  # tau 10 s, V -> 1 V at 1 mA
    cp = tech("cplimit", Current_step=[1e-3], vs_initial=[False], Duration_step=[100.0], Step_number=0,
              Record_every_dT=1.0, I_Range=8, Test1_Config=[5], Test1_Value=[2.0], Exit_Cond=[2])  # fmt: skip
    _, rows = run([cp], cell, stop=15.0)
    t, v, _ = rows[-1]
    assert t == pytest.approx(15.0, abs=TB)
    assert v == pytest.approx(1 - np.exp(-1.5), rel=1e-6)
    assert cell.open_circuit_voltage() == pytest.approx(v, rel=1e-6)


def test_a_limit_met_at_once_ends_the_step_at_its_first_acquisition():
    cp = tech("cplimit", Current_step=[1e-3], vs_initial=[False], Duration_step=[100.0], Step_number=0,
              Record_every_dT=1.0, I_Range=8, Test1_Config=[5], Test1_Value=[1.05], Exit_Cond=[1])  # fmt: skip
    run_, rows = run([cp, tech("ocv", Rest_time_T=5.0)], resistor())
    assert rows[0][0] == pytest.approx(SAMPLE, abs=TB) and rows[0][1] == pytest.approx(1.1)
    assert run_.finished_at == pytest.approx(SAMPLE + 5.0)


def test_current_tests_follow_the_sign_when_they_are_not_symmetric():
    only_positive = [LimitTest(fw.LimitWord(3, True, False), float(np.float32(1e-3)))]  # I > 1 mA
    assert holds(only_positive, 0.0, 2e-3) and not holds(only_positive, 0.0, -2e-3)
    # a CA with a negative current: the magnitude cut would fire at -1 mA, so there is none
    assert cuts_for(only_positive, "voltage", 0.5, -5e-4) == []
    (cut,) = cuts_for(only_positive, "voltage", 0.5, 5e-4)
    assert (cut.quantity.value, cut.op.value) == ("current", ">=") and cut.value == pytest.approx(1e-3)
