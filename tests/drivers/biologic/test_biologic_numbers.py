"""Number formats of ``BL_GetData`` words: TI-DSP floats on boards 1 and 2, IEEE-754 on DIGICORE, and time words.

The vectors are the reference's table (section 4), measured with the vendor converter
``BL_ConvertChannelNumericIntoSingle`` of the EClib 5.35-6.08 DLLs; the round trips use the test-side encoder in
``biologic_words`` written from the reference's definition of the format.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from biologic_words import NotRepresentable, ti_value, ti_word, ti_words
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from drivers.base import DriverError
from drivers.biologic.codes import BoardType, FloatFormat
from drivers.biologic.numbers import (
    UNREPORTED,
    float_format_of,
    ieee_to_float,
    ti_to_float,
    ticks,
    time_order,
    words_to_floats,
)

# word -> value, for board types 1 and 2, from the vendor converter (reference section 4)
VENDOR_TI = {
    0x80000000: 0.0, 0x00000000: 1.0, 0xFF800000: -1.0, 0xFE800000: -0.5, 0x016CCCCD: 3.7, 0x02066666: 4.2,
    0x02F9999A: -4.2, 0xF603126F: 0.001, 0xF6FCED91: -0.001, 0xED27C5AC: 2.5e-06, 0x10435000: 100000.0,
    0xFC4CCCCD: 0.1,
}  # fmt: skip
TI_BOARDS = [BoardType.ESSENTIAL, BoardType.PREMIUM]
FLT_MAX = float(np.finfo(np.float32).max)


@pytest.mark.parametrize("board", [*TI_BOARDS, 1, 2])
def test_the_vendor_converters_table_decodes_exactly_on_ti_boards(board):
    words = np.array(list(VENDOR_TI), dtype=np.uint32)
    out = words_to_floats(words, board)
    expected = np.array(list(VENDOR_TI.values()), dtype=np.float32).astype(np.float64)  # the DLL returns singles
    assert out.dtype == np.float64
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("board", [BoardType.DIGICORE, 3])
def test_digicore_words_are_ieee_bits_of_the_same_values(board):
    values = np.array(list(VENDOR_TI.values()), dtype=np.float32)
    out = words_to_floats(values.view(np.uint32), board)
    assert np.array_equal(out, values.astype(np.float64))
    assert words_to_floats(np.array([0x40866666], dtype=np.uint32), board)[0] == np.float32(4.2)


def test_a_ti_word_read_as_ieee_is_garbage_and_the_other_way_round():
    assert words_to_floats(np.array([0x02066666]), BoardType.DIGICORE)[0] != pytest.approx(4.2)
    assert words_to_floats(np.array([0x40866666]), BoardType.ESSENTIAL)[0] != pytest.approx(4.2)


@given(st.integers(0, 1), st.integers(0, 2**23 - 1))
def test_every_word_with_exponent_minus_128_is_zero(sign, fraction):
    word = 0x80000000 | (sign << 23) | fraction
    for board in TI_BOARDS:
        value = words_to_floats(np.array([word], dtype=np.uint32), board)[0]
        assert value == 0.0 and not math.copysign(1.0, value) < 0  # +0, never -0 or a tiny number


EDGES = {
    0x7F000000: 2.0**127,  # largest exponent, s = 0
    0x7F7FFFFF: FLT_MAX,  # the largest value of either format
    0x7F800000: -(2.0**128),  # largest exponent, s = 1, f = 0: below -FLT_MAX, exact in float64
    0x7F800001: -FLT_MAX,
    0x7FFFFFFF: -(1 + 2**-23) * 2.0**127,
    0x81000000: 2.0**-127,  # smallest exponent
    0x81000001: (1 + 2**-23) * 2.0**-127,  # finer than a float32 subnormal: exact in float64
    0x81800000: -(2.0**-126),
    0x817FFFFF: (2 - 2**-23) * 2.0**-127,
    0x81FFFFFF: (-2 + (2**23 - 1) / 2**23) * 2.0**-127,
    0x82000000: 2.0**-126,  # float32's smallest normal
    0x00800000: -2.0,
    0x00400000: 1.5,
    0x00C00000: -1.5,
    0xFF000000: 0.5,
    0x01000000: 2.0,
    0x01800000: -4.0,
    0x00000001: 1 + 2**-23,
    0x00FFFFFF: -(1 + 2**-23),  # the negative value closest to -1 from below
    0x007FFFFF: 2 - 2**-23,
}  # fmt: skip


@pytest.mark.parametrize(("word", "value"), EDGES.items(), ids=lambda x: f"{x:#010x}" if isinstance(x, int) else "")
@pytest.mark.parametrize("board", TI_BOARDS)
def test_extreme_exponents_signs_and_fractions(word, value, board):
    assert words_to_floats(np.array([word], dtype=np.uint32), board)[0] == value
    assert ti_value(word) == value  # the test's own oracle agrees with the table


@settings(max_examples=500)
@given(st.integers(0, 2**32 - 1))
@example(0x80000000)
@example(0x7F800000)
@example(0x81000001)
@example(0xFF800000)
def test_any_ti_word_decodes_to_the_reference_formula(word):
    assert ti_to_float(np.array([word], dtype=np.uint32))[0] == ti_value(word)


@settings(max_examples=500)
@given(st.integers(0, 2**32 - 1))
def test_decoding_then_encoding_gives_the_same_word(word):
    assume((word >> 24) != 0x80)  # the zero words: many spellings of one value
    assert ti_word(ti_to_float(np.array([word], dtype=np.uint32))[0]) == word


def _ti_representable(x: float) -> bool:
    try:
        ti_word(x)
    except NotRepresentable:
        return False
    return True


@settings(max_examples=1000)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
@example(FLT_MAX)
@example(-FLT_MAX)
@example(2.0**-126)
@example(-(2.0**-126))
@example(2.0**-127)  # a subnormal TI holds (e = -127, f = 0)
@example(float(np.float32(2.0**-127 + 2.0**-149)))
@example(-0.0)
@example(1.0)
@example(-1.0)
def test_encode_then_decode_is_exact_for_every_float32_ti_can_represent(x):
    assume(_ti_representable(x))
    for board in TI_BOARDS:
        out = words_to_floats(np.array([ti_word(x)], dtype=np.uint32), board)[0]
        assert out == x
        assert np.float32(out) == np.float32(x)


@given(st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-(2.0**-127), max_value=2.0**-127))
def test_only_the_tiniest_float32s_fall_outside_the_ti_format(x):
    """Every normal float32 fits; what does not is below 2**-127 in magnitude, or exactly -2**-127."""
    if x != 0.0 and (abs(x) < 2.0**-127 or x == -(2.0**-127)):
        assert not _ti_representable(x)
    else:
        assert _ti_representable(x)


@settings(max_examples=50)
@given(arrays(np.float32, st.tuples(st.integers(0, 40), st.integers(1, 15)),
              elements=st.floats(-1e6, 1e6, width=32).filter(lambda v: v == 0 or abs(v) >= 2.0**-126)))  # fmt: skip
def test_whole_chunks_decode_at_once_and_keep_their_shape(values):
    for board in TI_BOARDS:
        out = words_to_floats(ti_words(values), board)
        assert out.shape == values.shape and np.array_equal(out, values.astype(np.float64))
    assert np.array_equal(words_to_floats(values.view(np.uint32), BoardType.DIGICORE), values.astype(np.float64))


def test_ieee_special_words_pass_through_on_digicore():
    out = ieee_to_float(np.array([0x7F800000, 0xFF800000, 0x7FC00000, 0x80000000], dtype=np.uint32))
    assert out[0] == math.inf and out[1] == -math.inf and math.isnan(out[2]) and out[3] == 0.0


# -- which format -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("board", "fmt"), [(BoardType.ESSENTIAL, FloatFormat.TI), (BoardType.PREMIUM, FloatFormat.TI),
                       (BoardType.DIGICORE, FloatFormat.IEEE)],
)  # fmt: skip
def test_the_board_type_decides_and_a_reported_float_format_must_agree(board, fmt):
    assert float_format_of(board) is fmt
    assert float_format_of(board, UNREPORTED) is fmt  # a DLL filling the 76-byte struct leaves the sentinel
    assert float_format_of(board, int(fmt)) is fmt
    other = 1 - int(fmt)
    with pytest.raises(DriverError, match=rf"reports FloatFormat {other} .* board type {board.name} writes {fmt.name}"):
        float_format_of(board, other)
    with pytest.raises(DriverError, match="FloatFormat 7"):
        float_format_of(board, 7)


def test_an_unknown_board_type_is_named():
    with pytest.raises(DriverError, match="board type 4 is unknown"):
        words_to_floats(np.zeros(1, dtype=np.uint32), 4)


# -- time words ------------------------------------------------------------------------------------------------------
def test_time_words_are_high_first_on_boards_1_and_2_and_low_first_on_digicore():
    assert time_order(BoardType.ESSENTIAL) == time_order(BoardType.PREMIUM) == ("t_high", "t_low")
    assert time_order(BoardType.DIGICORE) == ("t_low", "t_high")


@given(st.integers(0, 2**64 - 1))
def test_ticks_are_unsigned_on_ti_boards_and_signed_64_bit_on_digicore(count):
    high, low = np.array([count >> 32], dtype=np.uint32), np.array([count & 0xFFFFFFFF], dtype=np.uint32)
    for board in TI_BOARDS:
        assert ticks(high, low, board)[0] == float(count)
    signed = count - 2**64 if count >= 2**63 else count
    assert ticks(high, low, BoardType.DIGICORE)[0] == float(signed)
