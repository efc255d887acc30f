"""Data decoding against the simulator's encoder: layouts per technique and board, time, EIS processes."""

from __future__ import annotations

import ctypes
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.biologic.codes import BoardType
from drivers.biologic.decode import DataLayoutError, decode, layout
from drivers.biologic.structs import TCurrentValues, TDataBuffer, TDataInfos
from simulators.biologic.encode import columns, encode_rows, ticks

TB = 24e-6
BOARDS = list(BoardType)
DC_IDS = [100, 101, 102, 155, 157, 103, 158]


def chunk(tid, process, board, data, n, start=0.0, tb=TB):
    names = columns(tid, process, int(board))
    words = encode_rows(names, data, n)
    buffer = TDataBuffer()
    ctypes.memmove(ctypes.addressof(buffer), words.ctypes.data, words.nbytes)
    infos = TDataInfos(NbRows=n, NbCols=len(names), TechniqueIndex=2, TechniqueID=tid, ProcessIndex=process,
                       loop=1, StartTime=start)  # fmt: skip
    return buffer, infos, TCurrentValues(TimeBase=tb)


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize(("tid", "process"), [(t, 0) for t in DC_IDS] + [(104, 0), (104, 1), (107, 0), (107, 1)])
def test_driver_and_simulator_agree_on_every_layout(tid, process, board):
    sim = columns(tid, process, int(board))
    host = layout(tid, process, board)
    assert len(sim) == len(host)
    assert [a if a != "blank" else "" for a in sim] == [b if not b.startswith("blank") else "" for b in host]


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
    n = len(t)
    data = {"t_ticks": ticks(t, TB), "Ewe": v, "I": i, "Ec": v, "cycle": np.arange(n) % 7}
    out = decode(*chunk(tid, 0, board, data, n, start), board)
    tb32 = float(np.float32(TB))
    error = out.t - (start + t)
    assert np.all(error <= 1e-9 * (start + t)) and np.all(error >= -tb32 - 1e-9 * (start + t))  # floor of ticks
    assert np.array_equal(out.voltage, v)
    assert np.array_equal(out.current, i if tid != 100 else np.zeros(n))
    if tid != 100:
        assert np.array_equal(out.cycle, np.arange(n) % 7)
    assert (out.technique_index, out.technique_id, out.process, out.loop) == (2, tid, 0, 1)


def test_time_uses_both_words_beyond_32_bits():
    t = np.array([0.0, 2**32 * TB * 1.5])  # needs t_high = 1
    data = {"t_ticks": ticks(t, TB), "Ewe": np.zeros(2), "I": np.zeros(2)}
    buffer, infos, values = chunk(101, 0, BoardType.PREMIUM, data, 2, start=float("nan"))
    assert buffer.data[5] == 1  # second row's t_high
    out = decode(buffer, infos, values, BoardType.PREMIUM)
    assert out.start_time == 0.0  # NaN StartTime reads as 0
    assert out.t[1] == pytest.approx(t[1], abs=TB)


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
    data = {"t_ticks": ticks(np.zeros(1), TB), "Ewe": np.zeros(1), "I": np.zeros(1)}
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
