"""Data decoding: layouts per technique and board, time words per board, TI/IEEE floats, EIS processes.

Rows are built by the test-side encoder (``biologic_words``) from the reference's tables, never by the driver or
the simulator: each board writes its own float format (TI on boards 1 and 2, IEEE on DIGICORE) and its own time
word order (low word first on DIGICORE).
"""

from __future__ import annotations

import ctypes
import math

import numpy as np
import pytest
from biologic_words import encode_rows, ti_word, ticks_of
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import DriverError
from drivers.biologic.codes import BoardType, FloatFormat
from drivers.biologic.decode import DataLayoutError, decode, layout
from drivers.biologic.structs import TCurrentValues, TDataBuffer, TDataInfos

TB = 24e-6
BOARDS = list(BoardType)
DC_IDS = [100, 101, 102, 155, 157, 103, 158, 156]
EIS1 = ["freq", "abs_Ewe", "abs_I", "phase_Zwe", "Ewe", "I", "blank1", "abs_Ece", "abs_Ice", "phase_Zce", "Ece",
        "blank2", "blank3", "t"]  # fmt: skip


def reference_columns(tid: int, process: int, board: BoardType) -> tuple[str, ...]:
    """The reference's section 4 table, with DIGICORE's time words low first."""
    time = ["t_low", "t_high"] if board is BoardType.DIGICORE else ["t_high", "t_low"]
    vmp3 = board is BoardType.ESSENTIAL
    table = {
        100: [*time, "Ewe", "Ece"] if vmp3 else [*time, "Ewe"],
        101: [*time, "Ewe", "I", "cycle"], 102: [*time, "Ewe", "I", "cycle"], 155: [*time, "Ewe", "I", "cycle"],
        157: [*time, "Ewe", "I", "cycle"],
        103: [*time, "Ec", "I", "Ewe", "cycle"] if vmp3 else [*time, "I", "Ewe", "cycle"],
        158: [*time, "Ec", "I", "Ewe", "cycle"] if vmp3 else [*time, "I", "Ewe", "cycle"],
        156: [*time, "Ic", "I", "Ewe", "cycle"] if vmp3 else [*time, "I", "Ewe", "cycle"],
    }  # fmt: skip
    if tid in (104, 107):
        return tuple([*time, "Ewe", "I"] if process == 0 else [*EIS1, "Irange"] if vmp3 else EIS1)
    return tuple(table[tid])


def chunk(tid, process, board, data, n, start=0.0, tb=TB):
    names = reference_columns(tid, process, board)
    words = encode_rows(names, data, n, int(board))
    buffer = TDataBuffer()
    ctypes.memmove(ctypes.addressof(buffer), words.ctypes.data, words.nbytes)
    infos = TDataInfos(NbRows=n, NbCols=len(names), TechniqueIndex=2, TechniqueID=tid, ProcessIndex=process,
                       loop=1, StartTime=start)  # fmt: skip
    return buffer, infos, TCurrentValues(TimeBase=tb)


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize(("tid", "process"), [(t, 0) for t in DC_IDS] + [(104, 0), (104, 1), (107, 0), (107, 1)])
def test_layouts_follow_the_reference_table(tid, process, board):
    assert layout(tid, process, board) == reference_columns(tid, process, board)


@pytest.mark.parametrize(
    ("tid", "board", "cols"),
    [(100, BoardType.ESSENTIAL, 4), (100, BoardType.PREMIUM, 3), (101, BoardType.DIGICORE, 5),
     (103, BoardType.ESSENTIAL, 6), (103, BoardType.PREMIUM, 5), (158, BoardType.ESSENTIAL, 6)],
)  # fmt: skip
def test_column_counts_follow_the_reference(tid, board, cols):
    assert len(layout(tid, 0, board)) == cols
    assert len(layout(104, 1, BoardType.ESSENTIAL)) == 15 and len(layout(104, 1, BoardType.PREMIUM)) == 14


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(DC_IDS),
    st.sampled_from(BOARDS),
    st.lists(st.tuples(st.floats(0, 3e6), st.floats(-5, 5, width=32), st.floats(-1, 1, width=32)), min_size=1,
             max_size=150),
    st.floats(0, 1e5),
)  # fmt: skip
def test_time_domain_rows_round_trip(tid, board, rows, start):
    t, v, i = (np.array(c, dtype=np.float64) for c in zip(*sorted(rows), strict=True))
    v[np.abs(v) < 2.0**-126] = 0.0  # float32 subnormals: the TI format holds only the largest of them
    i[np.abs(i) < 2.0**-126] = 0.0
    n = len(t)
    data = {"t_ticks": ticks_of(t, TB), "Ewe": v, "I": i, "Ec": v, "Ic": i, "cycle": np.arange(n) % 7}
    out = decode(*chunk(tid, 0, board, data, n, start), board)
    tb32 = float(np.float32(TB))
    error = out.t - (start + t)
    assert np.all(error <= 1e-9 * (start + t)) and np.all(error >= -tb32 - 1e-9 * (start + t))  # floor of ticks
    assert np.array_equal(out.voltage, v)
    assert np.array_equal(out.current, i if tid != 100 else np.zeros(n))
    if tid != 100:
        assert np.array_equal(out.cycle, np.arange(n) % 7)
    assert (out.technique_index, out.technique_id, out.process, out.loop) == (2, tid, 0, 1)


@pytest.mark.parametrize("board", BOARDS)
def test_time_uses_both_words_beyond_32_bits_in_the_boards_order(board):
    t = np.array([0.0, 2**32 * TB * 1.5])  # needs a high word of 1
    data = {"t_ticks": ticks_of(t, TB), "Ewe": np.zeros(2), "I": np.zeros(2)}
    buffer, infos, values = chunk(101, 0, board, data, 2, start=float("nan"))
    high_first = board is not BoardType.DIGICORE
    assert buffer.data[5 if high_first else 6] == 1  # the second row's high word
    out = decode(buffer, infos, values, board)
    assert out.start_time == 0.0  # NaN StartTime reads as 0
    assert out.t[1] == pytest.approx(t[1], abs=TB)


def test_digicore_time_is_low_word_first_and_swapping_them_is_visible():
    words = np.array([[7, 0, 0x3F800000, 0, 0]], dtype=np.uint32)  # t_low = 7, t_high = 0, Ewe = 1.0 (IEEE)
    buffer = TDataBuffer()
    ctypes.memmove(ctypes.addressof(buffer), words.ctypes.data, words.nbytes)
    infos = TDataInfos(NbRows=1, NbCols=5, TechniqueID=101)
    out = decode(buffer, infos, TCurrentValues(TimeBase=1.0), BoardType.DIGICORE)
    assert out.t[0] == 7.0 and out.voltage[0] == 1.0
    ti = np.array([[0, 7, ti_word(1.0), 0x80000000, 0]], dtype=np.uint32)  # t_high = 0, t_low = 7 on a VMP3
    ctypes.memmove(ctypes.addressof(buffer), ti.ctypes.data, ti.nbytes)
    out = decode(buffer, infos, TCurrentValues(TimeBase=1.0), BoardType.ESSENTIAL)
    assert out.t[0] == 7.0 and out.voltage[0] == 1.0 and out.current[0] == 0.0


def test_vendor_words_decode_in_a_chunk():
    """The measured words of the reference table, as a VMP3 CP row: 4.2 V at -1 mA."""
    words = np.array([[0, 1000, 0x02066666, 0xF6FCED91, 3]], dtype=np.uint32)
    buffer = TDataBuffer()
    ctypes.memmove(ctypes.addressof(buffer), words.ctypes.data, words.nbytes)
    infos = TDataInfos(NbRows=1, NbCols=5, TechniqueID=102, StartTime=10.0)
    for board in (BoardType.ESSENTIAL, BoardType.PREMIUM):
        out = decode(buffer, infos, TCurrentValues(TimeBase=0.5), board)
        assert out.voltage[0] == np.float32(4.2) and out.current[0] == np.float32(-0.001)
        assert out.t[0] == 510.0 and out.cycle[0] == 3


def test_a_reported_float_format_that_disagrees_with_the_board_is_refused():
    buffer, infos, values = chunk(101, 0, BoardType.PREMIUM, {"t_ticks": np.zeros(1, np.uint64)}, 1)
    assert len(decode(buffer, infos, values, BoardType.PREMIUM, float_format=FloatFormat.TI)) == 1
    with pytest.raises(DriverError, match="FloatFormat 1"):
        decode(buffer, infos, values, BoardType.PREMIUM, float_format=FloatFormat.IEEE)


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("unit", ["rad", "deg"])
def test_impedance_rows_round_trip(board, unit):
    f = np.geomspace(1e5, 0.1, 61)
    z = 20 + 400 / (1 + 1j * 2 * np.pi * f * 400 * 1e-6)
    phase = np.angle(z) if unit == "rad" else np.rad2deg(np.angle(z))
    data = {"freq": f, "abs_Ewe": np.full(61, 0.05), "abs_I": 0.05 / np.abs(z), "phase_Zwe": phase,
            "Ewe": np.full(61, 3.1), "I": np.zeros(61), "t": np.cumsum(1 / f), "Irange": np.full(61, 12)}  # fmt: skip
    out = decode(*chunk(104, 1, board, data, 61, start=100.0), board, phase_unit=unit)
    assert out.process == 1
    assert np.allclose(out.frequency, f, rtol=1e-7)
    assert np.allclose(out.z_real, z.real, rtol=1e-5)
    assert np.allclose(out.z_imag, z.imag, rtol=1e-5, atol=1e-5)
    assert np.allclose(out.t, 100.0 + np.cumsum(1 / f), rtol=1e-7)
    assert np.all(out.voltage == np.float32(3.1))


def test_a_column_count_that_disagrees_is_an_error():
    data = {"t_ticks": ticks_of(np.zeros(1), TB), "Ewe": np.zeros(1), "I": np.zeros(1)}
    buffer, infos, values = chunk(101, 0, BoardType.ESSENTIAL, data, 1)
    infos.NbCols = 6  # as if an xctr column were appended
    with pytest.raises(DataLayoutError, match="has 5 columns; the instrument sent 6"):
        decode(buffer, infos, values, BoardType.ESSENTIAL)


def test_unknown_technique_and_oversized_chunk_are_errors():
    with pytest.raises(DataLayoutError, match="no data layout for technique ID 150"):
        layout(150, 0, BoardType.ESSENTIAL)
    infos = TDataInfos(NbRows=300, NbCols=5, TechniqueID=101)
    with pytest.raises(DataLayoutError, match="more than one buffer holds"):
        decode(TDataBuffer(), infos, TCurrentValues(TimeBase=TB), BoardType.ESSENTIAL)


def test_empty_chunk_decodes_to_nothing():
    out = decode(TDataBuffer(), TDataInfos(TechniqueID=101), TCurrentValues(TimeBase=TB), BoardType.ESSENTIAL)
    assert len(out) == 0 and not math.isnan(out.start_time)
