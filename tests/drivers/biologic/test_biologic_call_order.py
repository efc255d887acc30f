"""The driver's exact call sequence at the DLL boundary, against an ordered fake EClib.

Every test runs twice: with the fake's Python callables, and with the fake behind real C function pointers
(``as_c_library``), so the arguments also cross a genuine ctypes foreign-function boundary the way they reach
``EClib64.dll``: the firmware selection mask as a 16-byte array, NULL for "no FPGA file", floats declared as C
floats, ``TEccParams`` by value.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from biologic_words import float_words

from drivers.base import DriverError
from drivers.biologic.channel import BiologicChannel, BiologicConfig
from drivers.biologic.codes import BoardType
from drivers.biologic.eclib import EClib, channel_mask
from drivers.biologic.errors import EClibError
from drivers.biologic.structs import TChannelInfos
from protocols.clock import VirtualClock
from protocols.program import CurrentStep, RestStep, StepProgram, Termination
from tests.fakes.ordered_eclib import OrderedEClib, as_c_library, contents, ecc_params, ok

CH = 2
FIRMWARE = {
    BoardType.ESSENTIAL: (b"/opt/eclib/kernel.bin", b"/opt/eclib/Vmp_ii_0437_a6.xlx", ""),
    BoardType.PREMIUM: (b"/opt/eclib/kernel4.bin", b"/opt/eclib/vmp_iv_0395_aa.xlx", "4"),
    BoardType.DIGICORE: (b"/opt/eclib/kernel5.bin", None, "5"),
}
DEVICE = {BoardType.ESSENTIAL: 5, BoardType.PREMIUM: 20, BoardType.DIGICORE: 34}  # VMP3, VSP-300, VSP-3e
TB = 24e-6


@pytest.fixture(params=["python", "c-pointers"])
def wrap(request):
    return (lambda fake: fake) if request.param == "python" else as_c_library


def connect_calls(board, *, kernel=None, fpga=..., float_format=None, results=None, short_infos=False):
    """The expected connect sequence; ``kernel``/``fpga`` default to the board's files (``None`` = NULL)."""
    default_kernel, default_fpga, _ = FIRMWARE[board]
    kernel = default_kernel if kernel is None else kernel
    fpga = default_fpga if fpga is ... else fpga

    def connect(address, timeout, handle, info):
        assert (address, timeout) == (b"USB0", 5)
        contents(handle).value = 1
        contents(info).DeviceCode = DEVICE[board]
        return 0

    def plugged(device, array, size):
        assert (device, size) == (1, 16)
        array[CH] = 1
        return 0

    def board_type(device, channel, value):
        assert (device, channel) == (1, CH)
        contents(value).value = int(board)
        return 0

    def load_firmware(device, mask, codes, count, gauge, force, bin_file, xlx_file):
        assert (device, count, gauge, force) == (1, 16, False, False)
        assert [mask[k] for k in range(16)] == [1 if k == CH else 0 for k in range(16)]  # a mask, not a list
        assert (bin_file, xlx_file) == (kernel, fpga)  # None arrives as NULL, never as b""
        for k, code in (results or {}).items():
            codes[k] = code
        return 0

    def channel_infos(device, channel, info):
        assert (device, channel) == (1, CH)
        full = TChannelInfos(Channel=channel, FirmwareCode=5, Zboard=1, MaxIRange=10, MinIRange=1, MaxBandwidth=7,
                             FloatFormat=1 if board is BoardType.DIGICORE else 0)  # fmt: skip
        if float_format is not None:
            full.FloatFormat = float_format
        size = 76 if short_infos else ctypes.sizeof(TChannelInfos)  # a pre-2013 DLL writes only 76 bytes
        ctypes.memmove(ctypes.addressof(contents(info)), ctypes.addressof(full), size)
        return 0

    return [("BL_Connect", connect), ("BL_GetChannelsPlugged", plugged), ("BL_GetChannelBoardType", board_type),
            ("BL_LoadFirmware", load_firmware), ("BL_GetChannelInfos", channel_infos)]


def driver_for(lib, **config):
    clock = VirtualClock()
    return BiologicChannel(lib, BiologicConfig("USB0", CH, technique_dir="/opt/eclib", **config), clock), clock


@pytest.mark.parametrize("board", list(BoardType))
def test_connect_loads_the_boards_kernel_through_a_16_entry_mask(board, wrap):
    with OrderedEClib(connect_calls(board)) as fake:
        driver, _ = driver_for(wrap(fake))
        caps = driver.connect()
    assert caps.has_eis and caps.max_bandwidth == 7


def test_a_negative_code_for_the_selected_channel_names_it(wrap):
    with OrderedEClib(connect_calls(BoardType.ESSENTIAL, results={CH: -300, 5: -3})[:4]) as fake:
        driver, _ = driver_for(wrap(fake))
        with pytest.raises(EClibError, match=r"BL_LoadFirmware on channel 2 failed with ERR_FIRM_FIRMFILENOTEXISTS"):
            driver.connect()


def test_codes_of_channels_that_were_not_selected_are_not_ours(wrap):
    with OrderedEClib(connect_calls(BoardType.ESSENTIAL, results={5: -3})) as fake:
        driver, _ = driver_for(wrap(fake))
        driver.connect()  # entry 5 says "not plugged": channel 5 was never asked for


def test_load_firmware_returns_the_selected_channels_codes(wrap):
    def load(device, mask, codes, count, gauge, force, bin_file, xlx_file):
        assert [k for k in range(16) if mask[k]] == [0, 7] and (bin_file, xlx_file, force) == (None, None, True)
        codes[0], codes[7], codes[8] = 0, 1, -3
        return 0

    with OrderedEClib([("BL_LoadFirmware", load)]) as fake:
        assert EClib(wrap(fake)).load_firmware(1, [7, 0], None, None, force=True) == {0: 0, 7: 1}


def test_file_overrides_and_an_empty_fpga_file_is_null(wrap):
    with OrderedEClib(connect_calls(BoardType.PREMIUM, kernel=b"/fw/my-kernel.bin", fpga=None)) as fake:
        driver, _ = driver_for(wrap(fake), firmware_dir="/fw", kernel_file="my-kernel.bin", fpga_file="")
        driver.connect()


def test_without_the_board_type_export_the_device_family_decides(wrap):
    """Packages 5.35, 6.01 and 6.04 have no BL_GetChannelBoardType: a VSP-300 is then a PREMIUM board."""
    calls = [c for c in connect_calls(BoardType.PREMIUM) if c[0] != "BL_GetChannelBoardType"]
    with OrderedEClib(calls, absent=["BL_GetChannelBoardType"]) as fake:
        driver, _ = driver_for(wrap(fake))
        driver.connect()


@pytest.mark.parametrize("board", list(BoardType))
def test_a_float_format_that_contradicts_the_board_type_is_refused_at_connect(board, wrap):
    wrong = 0 if board is BoardType.DIGICORE else 1
    with OrderedEClib(connect_calls(board, float_format=wrong)) as fake:
        driver, _ = driver_for(wrap(fake))
        with pytest.raises(DriverError, match=rf"channel 2: the channel reports FloatFormat {wrong}"):
            driver.connect()


@pytest.mark.parametrize("board", list(BoardType))
def test_a_dll_that_fills_only_76_bytes_leaves_the_format_to_the_board(board, wrap):
    with OrderedEClib(connect_calls(board, float_format=1 - (board is BoardType.DIGICORE), short_infos=True)) as fake:
        driver, _ = driver_for(wrap(fake))
        driver.connect()  # the contradicting FloatFormat was never written: no refusal


def test_the_mask_is_indexed_by_channel_number():
    mask = channel_mask([0, 15, 3])
    assert len(mask) == 16 and [k for k in range(16) if mask[k]] == [0, 3, 15]
    with pytest.raises(ValueError, match=r"channel 16 is outside 0\.\.15"):
        channel_mask([16])


# -- a whole run: connect, load, start, read, stop ---------------------------------------------------------------
def _rows(board, t_ticks, voltages, currents):
    """CP rows (technique ID 102): time words in the board's order, then Ewe, I, cycle."""
    high, low = (t_ticks >> 32).astype(np.uint32), (t_ticks & 0xFFFFFFFF).astype(np.uint32)
    first, second = (low, high) if board is BoardType.DIGICORE else (high, low)
    ewe, i = float_words(np.array(voltages), int(board)), float_words(np.array(currents), int(board))
    return np.column_stack([first, second, ewe, i, np.zeros(len(t_ticks), np.uint32)]).astype(np.uint32)


@pytest.mark.parametrize("board", list(BoardType))
def test_start_read_and_stop_follow_the_documented_call_sequence(board, wrap):
    _, _, suffix = FIRMWARE[board]
    ticks = np.array([0x1_0000_0005, 0x1_0000_0105], dtype=np.uint64)  # beyond 32 bits: both words count
    rows = _rows(board, ticks, [4.2, 3.7], [0.001, 0.001])
    loaded: list[list[str]] = []

    def values_stop(device, channel, values):
        contents(values).State = 0
        return 0

    def load_technique(ecc, first, last):
        def handler(device, channel, path, params, first_, last_, display):
            assert (device, channel, path, first_, last_, display) == (1, CH, ecc, first, last, False)
            loaded.append([p.ParamStr.decode() for p in ecc_params(params)])
            return 0

        return handler

    def no_message(device, channel, buffer, size):
        contents(size).value = 0
        return 0

    def data(device, channel, buffer, infos, values):
        contents(values).TimeBase, contents(values).State = TB, 1
        info = contents(infos)
        info.NbRows, info.NbCols, info.TechniqueIndex, info.TechniqueID, info.StartTime = 2, 5, 1, 102, 60.0
        for k, word in enumerate(rows.ravel()):
            contents(buffer).data[k] = int(word)
        return 0

    def empty(device, channel, buffer, infos, values):
        contents(values).TimeBase, contents(values).State = TB, 1
        return 0

    ocv, cp = f"/opt/eclib/ocv{suffix}.ecc".encode(), f"/opt/eclib/cp{suffix}.ecc".encode()
    with OrderedEClib([
        *connect_calls(board),
        ("BL_GetCurrentValues", values_stop),  # a busy channel is refused before anything is loaded
        ("BL_LoadTechnique", load_technique(ocv, True, False)),
        ("BL_GetMessage", no_message),
        ("BL_LoadTechnique", load_technique(cp, False, True)),
        ("BL_GetMessage", no_message),
        ("BL_StartChannel", ok),
        ("BL_GetData", data),
        ("BL_GetData", empty),
        ("BL_StopChannel", ok),
    ]) as fake:  # fmt: skip
        driver, _ = driver_for(wrap(fake))
        t = (Termination(quantity="time", op=">=", value=60.0),)
        program = StepProgram(protocol="p", cell="c", steps=(
            RestStep(index=1, until=t), CurrentStep(index=2, kind="charge", current=1e-3, until=t)))  # fmt: skip
        driver.start(program, "b")
        records = driver.read_records(0)
        driver.stop()
    assert loaded[0][:3] == ["Rest_time_T", "Record_every_dE", "Record_every_dT"]
    assert "Current_step" in loaded[1] and "I_Range" in loaded[1]
    defines = [name for name in fake.log if name.startswith("BL_Define")]
    assert len(defines) == sum(len(labels) for labels in loaded)
    assert [r.step_index for r in records] == [2, 2]
    assert [r.voltage for r in records] == [float(np.float32(4.2)), float(np.float32(3.7))]
    assert [r.current for r in records] == [float(np.float32(0.001))] * 2
    tb = float(np.float32(TB))
    assert [r.test_time for r in records] == pytest.approx([60.0 + tb * float(k) for k in ticks], rel=1e-12)
