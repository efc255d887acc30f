"""Number formats at the simulated library's C boundary: TI DSP floats on board types 1 and 2, IEEE on DIGICORE,
DIGICORE time words low word first, and the ``BL_Convert*`` exports every independent client decodes with.

Everything is checked against the reference's measured words and the tests' own reading of the format
(``reference_words``), never against a decoder of the simulator or the driver.
"""

from __future__ import annotations

import ctypes
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_words import DIGICORE, ESSENTIAL, MEASURED, PREMIUM, row_ticks, single, singles, ti

from protocols.clock import VirtualClock
from simulators.biologic import load_library
from simulators.biologic.dspfloat import float_words, ti_words
from simulators.cells.dummy import DummyCell, DummyCellParams

BOARD_TYPES = {"vmp3": ESSENTIAL, "sp300": PREMIUM, "digicore": DIGICORE}


@pytest.fixture(scope="module")
def lib():
    return load_library("vmp3", 1, None, VirtualClock())


def convert(lib, word: int, board: int | None = None) -> tuple[int, float]:
    value = ctypes.c_float()
    if board is None:
        code = lib.BL_ConvertNumericIntoSingle(ctypes.c_uint32(word), ctypes.byref(value))
    else:
        code = lib.BL_ConvertChannelNumericIntoSingle(ctypes.c_uint32(word), ctypes.byref(value), board)
    return code, value.value


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


@pytest.mark.parametrize(("word", "value"), sorted(MEASURED.items()))
def test_the_reference_reading_of_ti_words_matches_the_vendor_measurements(word, value):
    assert f32(ti(word)) == f32(value)


@pytest.mark.parametrize(("word", "value"), sorted(MEASURED.items()))
def test_the_firmware_writes_exactly_the_measured_words(word, value):
    for board in (ESSENTIAL, PREMIUM):
        assert int(float_words(value, board)[0]) == word


@pytest.mark.parametrize(("word", "value"), sorted(MEASURED.items()))
@pytest.mark.parametrize("board", [None, ESSENTIAL, PREMIUM])
def test_the_exported_converters_read_ti_words_as_the_vendor_dll(lib, word, value, board):
    assert convert(lib, word, board) == (0, f32(value))


def test_digicore_words_are_ieee_and_the_converter_reads_them_so(lib):
    assert int(float_words(4.2, DIGICORE)[0]) == 0x40866666
    assert convert(lib, 0x40866666, DIGICORE) == (0, f32(4.2))
    assert convert(lib, 0x40866666, None)[1] != pytest.approx(4.2)  # the pre-6.x converter assumes TI
    assert convert(lib, 0x02066666, 0)[0] == -4  # board type 0 is not a board


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=32).filter(lambda x: x == 0 or 1e-37 < abs(x) < 1e37))
def test_every_single_survives_the_ti_format_exactly(x):
    assert ti(int(ti_words(np.float32(x))[0])) == x


def test_time_words_convert_high_first_on_boards_1_and_2_and_low_first_on_digicore(lib):
    seconds = ctypes.c_double()
    words = (ctypes.c_uint32 * 2)(1, 5)
    timebase = ctypes.c_float(24e-6)
    for board, ticks in ((ESSENTIAL, (1 << 32) + 5), (PREMIUM, (1 << 32) + 5), (DIGICORE, (5 << 32) + 1)):
        assert lib.BL_ConvertTimeChannelNumericIntoSeconds(words, ctypes.byref(seconds), timebase, board) == 0
        assert seconds.value == pytest.approx(ticks * f32(24e-6), rel=1e-12)
    negative = (ctypes.c_uint32 * 2)(0xFFFFFFFF, 0xFFFFFFFF)  # DIGICORE counts are signed 64-bit
    lib.BL_ConvertTimeChannelNumericIntoSeconds(negative, ctypes.byref(seconds), timebase, DIGICORE)
    assert seconds.value == pytest.approx(-f32(24e-6))


@pytest.mark.parametrize("board", ["vmp3", "sp300", "digicore"])
def test_get_data_rows_carry_the_boards_own_formats(board):
    """A CP on a 100 ohm resistor: the row words decode, the board's way, to the cell's voltage and current."""
    clock = VirtualClock()
    cell = DummyCell(DummyCellParams(e0=1.0, r0=100.0, r1=1e-9, r2=0.0, c2=1e-9))
    lib = load_library(board, 1, cell, clock, firmware_loaded=True)
    board_type = BOARD_TYPES[board]
    host = CHost(lib)
    handle = host.connect()
    suffix = {"vmp3": "", "sp300": "4", "digicore": "5"}[board]
    params = host.params([("Current_step", 2, -2e-3, 0), ("vs_initial", 1, False, 0), ("Duration_step", 2, 3e5, 0),
                          ("Step_number", 0, 0, 0), ("Record_every_dT", 2, 6e4, 0), ("I_Range", 0, 8, 0)])  # fmt: skip
    assert lib.BL_LoadTechnique(handle, 0, f"cp{suffix}.ecc".encode(), params, True, True, False) == 0
    assert lib.BL_StartChannel(handle, 0) == 0
    assert host.data(handle, 0)[1].NbRows == 0  # nothing is measured at the instant of the start
    clock.advance(4e5)
    words, infos, values = host.data(handle, 0)
    assert (infos.NbRows, infos.NbCols, infos.TechniqueID) == (6, 5, 102)
    t = row_ticks(words, board_type) * f32(values.TimeBase)
    assert t[1:] == pytest.approx([6e4, 1.2e5, 1.8e5, 2.4e5, 3e5], abs=1e-3)  # > 2^32 ticks of 24 us by the end
    assert singles(words[:, 2], board_type) == pytest.approx(1.0 - 2e-3 * 100.0, abs=1e-6)
    assert np.all(singles(words[:, 3], board_type) == f32(-2e-3))
    if board_type != DIGICORE:
        assert np.all(words[:, 3] == 0xF7FCED91)  # -0.002: TI, never the IEEE bits 0xBB03126F
        assert words[-1, 0] == 2 and words[-1, 1] < 2**32  # high word first
    else:
        assert np.all(words[:, 3] == 0xBB03126F)
        assert words[-1, 1] == 2  # low word first: the high word is the second column
    info, fmt = ChannelInfos84(), ctypes.c_int32(-1)
    lib.simulator.channel_infos_size = 84
    assert lib.BL_GetChannelInfos(handle, 0, ctypes.byref(info)) == 0
    assert lib.BL_GetChannelFloatFormat(handle, 0, ctypes.byref(fmt)) == 0
    assert info.FloatFormat == fmt.value == (1 if board_type == DIGICORE else 0)
    assert single(int(words[0, 3]), board_type) == convert(lib, int(words[0, 3]), board_type)[1]


class ChannelInfos84(ctypes.Structure):
    """The 2013 header's TChannelInfos: 21 int32 (84 bytes), FloatFormat at offset 76."""

    _fields_ = [(f"f{k}", ctypes.c_int32) for k in range(19)] + [("FloatFormat", ctypes.c_int32),
                                                                ("CPUCIE", ctypes.c_int32)]  # fmt: skip


class EccParam(ctypes.Structure):
    _fields_ = [("label", ctypes.c_char * 64), ("kind", ctypes.c_int32), ("value", ctypes.c_int32),
                ("index", ctypes.c_int32)]  # fmt: skip


class EccParams(ctypes.Structure):
    _pack_ = 4
    _fields_ = [("len", ctypes.c_int32), ("pParams", ctypes.POINTER(EccParam))]


class DataInfos(ctypes.Structure):
    _pack_ = 4
    _fields_ = [(n, ctypes.c_int32) for n in ("IRQskipped", "NbRows", "NbCols", "TechniqueIndex", "TechniqueID",
                                               "ProcessIndex", "loop")] + [("StartTime", ctypes.c_double),
                                                                           ("MuxPad", ctypes.c_int32)]  # fmt: skip


class CurrentValues(ctypes.Structure):
    _fields_ = [("State", ctypes.c_int32), ("MemFilled", ctypes.c_int32), ("TimeBase", ctypes.c_float),
                ("rest", ctypes.c_int32 * 16)]  # fmt: skip


class CHost:
    """A C-style client without argtypes: ctypes objects and byref, as easy-biologic calls the DLL."""

    def __init__(self, lib):
        self.lib = lib
        self.keep = []

    def connect(self) -> int:
        handle, info = ctypes.c_int32(), (ctypes.c_int32 * 11)()
        assert self.lib.BL_Connect(b"USB0", ctypes.c_uint8(5), ctypes.byref(handle), ctypes.byref(info)) == 0
        return handle.value

    def params(self, entries):
        setters = {0: self.lib.BL_DefineIntParameter, 1: self.lib.BL_DefineBoolParameter,
                   2: self.lib.BL_DefineSglParameter}  # fmt: skip
        kinds = {0: ctypes.c_int32, 1: ctypes.c_bool, 2: ctypes.c_float}
        array = (EccParam * len(entries))()
        for slot, (label, kind, value, index) in zip(array, entries, strict=True):
            code = setters[kind](label.encode(), kinds[kind](value), ctypes.c_int32(index), ctypes.byref(slot))
            assert code == 0
        self.keep.append(array)
        return EccParams(len(entries), ctypes.cast(array, ctypes.POINTER(EccParam)))

    def data(self, handle, channel):
        buffer, infos, values = (ctypes.c_uint32 * 1000)(), DataInfos(), CurrentValues()
        code = self.lib.BL_GetData(handle, ctypes.c_uint8(channel), ctypes.byref(buffer), ctypes.byref(infos),
                                   ctypes.byref(values))  # fmt: skip
        assert code == 0
        words = np.frombuffer(buffer, dtype=np.uint32, count=infos.NbRows * infos.NbCols)
        return words.reshape(infos.NbRows, infos.NbCols), infos, values
