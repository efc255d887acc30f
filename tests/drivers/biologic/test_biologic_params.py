"""Technique labels and types against the reference, encoding rules, the limit bit-field, the DLL setters."""

from __future__ import annotations

import ctypes
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.biologic.codes import ParamType
from drivers.biologic.eclib import EClib
from drivers.biologic.limits import LimitComparison, LimitTest, LimitVariable
from drivers.biologic.params import TECHNIQUES, ParameterError, encode
from protocols.clock import VirtualClock
from simulators.biologic.eclib import SimulatedEClib

B, INT, S = ParamType.BOOLEAN, ParamType.INT32, ParamType.SINGLE
HW = {"I_Range": INT, "E_Range": INT, "Bandwidth": INT}
LIMITS = {**{f"Test{n}_Config": INT for n in (1, 2, 3)}, **{f"Test{n}_Value": S for n in (1, 2, 3)}, "Exit_Cond": INT}

# reference section 3: label -> type, per technique
EXPECTED = {
    "OCV": ({"Rest_time_T": S, "Record_every_dE": S, "Record_every_dT": S, **HW}, set()),
    "CA": ({"Voltage_step": S, "vs_initial": B, "Duration_step": S, "Step_number": INT, "Record_every_dT": S,
            "Record_every_dI": S, "N_Cycles": INT, **HW}, {"Voltage_step", "vs_initial", "Duration_step"}),
    "CP": ({"Current_step": S, "vs_initial": B, "Duration_step": S, "Step_number": INT, "Record_every_dT": S,
            "Record_every_dE": S, "N_Cycles": INT, **HW}, {"Current_step", "vs_initial", "Duration_step"}),
    "PEIS": ({"vs_initial": B, "vs_final": B, "Initial_Voltage_step": S, "Final_Voltage_step": S,
              "Duration_step": S, "Step_number": INT, "Record_every_dT": S, "Record_every_dI": S,
              "Final_frequency": S, "Initial_frequency": S, "sweep": B, "Amplitude_Voltage": S,
              "Frequency_number": INT, "Average_N_times": INT, "Correction": B, "Wait_for_steady": S, **HW}, set()),
    "GEIS": ({"vs_initial": B, "vs_final": B, "Initial_Current_step": S, "Final_Current_step": S,
              "Duration_step": S, "Step_number": INT, "Record_every_dT": S, "Record_every_dE": S,
              "Final_frequency": S, "Initial_frequency": S, "sweep": B, "Amplitude_Current": S,
              "Frequency_number": INT, "Average_N_times": INT, "Correction": B, "Wait_for_steady": S, **HW}, set()),
    "CV": ({"vs_initial": B, "Voltage_step": S, "Scan_Rate": S, "Scan_number": INT, "Record_every_dE": S,
            "Average_over_dE": B, "N_Cycles": INT, "Begin_measuring_I": S, "End_measuring_I": S, **HW},
           {"vs_initial", "Voltage_step", "Scan_Rate"}),
    "LOOP": ({"loop_N_times": INT, "protocol_number": INT}, set()),
}  # fmt: skip
EXPECTED["CALIMIT"] = ({**EXPECTED["CA"][0], **LIMITS}, EXPECTED["CA"][1] | set(LIMITS))
EXPECTED["CPLIMIT"] = ({**EXPECTED["CP"][0], **LIMITS}, EXPECTED["CP"][1] | set(LIMITS))
EXPECTED["VSCANLIMIT"] = (
    {"Voltage_step": S, "vs_initial": B, "Scan_Rate": S, "Scan_number": INT, "Record_every_dE": S,
     "Begin_measuring_I": S, "End_measuring_I": S, "N_Cycles": INT, **HW, **LIMITS},
    {"Voltage_step", "vs_initial", "Scan_Rate"} | set(LIMITS),
)  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_technique_labels_and_types_follow_the_reference(name):
    spec = TECHNIQUES[name]
    labels, per_step = EXPECTED[name]
    assert {p.label: p.kind for p in spec.params} == labels
    assert {p.label for p in spec.params if p.per_step} == per_step


def test_technique_ids_files_and_array_limits():
    ids = {n: (t.ecc_stem, int(t.technique_id), t.max_steps) for n, t in TECHNIQUES.items()}
    assert ids == {
        "OCV": ("ocv", 100, 1), "CA": ("ca", 101, 99), "CP": ("cp", 102, 99), "CALIMIT": ("calimit", 157, 20),
        "CPLIMIT": ("cplimit", 155, 20), "PEIS": ("peis", 104, 1), "GEIS": ("geis", 107, 1), "CV": ("cv", 103, 5),
        "VSCANLIMIT": ("vscanlimit", 158, 20), "LOOP": ("loop", 150, 1),
    }  # fmt: skip


def test_encoding_flattens_arrays_with_zero_based_step_indices():
    out = encode(TECHNIQUES["CP"], {"Current_step": [1e-3, -2e-3], "Step_number": 1, "vs_initial": [False, True]})
    assert [(p.label, p.index, p.value) for p in out] == [
        ("Current_step", 0, 1e-3), ("Current_step", 1, -2e-3), ("Step_number", 0, 1),
        ("vs_initial", 0, False), ("vs_initial", 1, True),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"current_step": [1.0]}, "CP has no parameter 'current_step' \\(labels are case-sensitive\\)"),
        ({"Step_number": 1.5}, "CP parameter 'Step_number' is a 32-bit integer; found 1.5"),
        ({"Step_number": True}, "is int32, not a boolean"),
        ({"vs_initial": [1]}, "'vs_initial' is a boolean; found 1"),
        ({"Current_step": 1.0}, "'Current_step' is a per-step array"),
        ({"Current_step": [0.1] * 100}, "takes 1 to 99 entries; found 100"),
        ({"Record_every_dT": "1"}, "single-precision number"),
    ],
)
def test_encoding_refuses_what_the_instrument_would_refuse(values, message):
    with pytest.raises(ParameterError, match=message):
        encode(TECHNIQUES["CP"], values)


@pytest.mark.parametrize(
    ("variable", "comparison", "config"),
    [(LimitVariable.EWE, LimitComparison.GT, 5), (LimitVariable.EWE, LimitComparison.LT, 1),
     (LimitVariable.I, LimitComparison.GT, 101), (LimitVariable.I, LimitComparison.LT, 97),
     (LimitVariable.AUX2, LimitComparison.LT, 65)],
)  # fmt: skip
def test_limit_configs_match_the_worked_values(variable, comparison, config):
    assert LimitTest(variable, comparison, 0.0).config() == config
    assert LimitTest(variable, comparison, 0.0, and_previous=True).config() == config + 2


@given(st.sampled_from(LimitVariable), st.sampled_from(LimitComparison), st.booleans(), st.floats(-10, 10))
def test_limit_config_round_trips(variable, comparison, logic, value):
    test = LimitTest(variable, comparison, value, logic)
    assert LimitTest.from_config(test.config(), value) == test
    assert LimitTest.from_config(test.config() & ~1, value) is None


@pytest.fixture
def lib():
    return EClib(SimulatedEClib(VirtualClock(), {}))


def test_single_setter_stores_ieee_bits(lib):
    param = lib.define_param("Amplitude_Voltage", ParamType.SINGLE, 0.005, 0)
    assert param.ParamStr == b"Amplitude_Voltage"
    assert param.ParamType == 2
    assert param.ParamVal == struct.unpack("<i", struct.pack("<f", 0.005))[0]
    assert param.ParamIndex == 0


def test_bool_and_int_setters_use_the_declared_type_not_the_value(lib):
    flag = lib.define_param("vs_initial", ParamType.BOOLEAN, 1, 3)
    assert (flag.ParamType, flag.ParamVal, flag.ParamIndex) == (1, 1, 3)
    number = lib.define_param("I_Range", ParamType.INT32, 12, 0)
    assert (number.ParamType, number.ParamVal) == (0, 12)
    as_single = lib.define_param("Duration_step", ParamType.SINGLE, 10, 0)  # an int value, a single label
    assert ctypes.c_float.from_buffer_copy(struct.pack("<i", as_single.ParamVal)).value == 10.0
