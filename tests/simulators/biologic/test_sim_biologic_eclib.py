"""The simulated EClib at its raw call surface: codes for misuse, channel states, data buffers."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from reference_words import row_ticks, singles

from protocols.clock import VirtualClock
from simulators.biologic import firmware as fw
from simulators.biologic.eclib import SimChannel, SimDevice, SimulatedEClib
from simulators.biologic.structs import (
    ChannelInfos,
    CurrentValues,
    DataBuffer,
    DataInfos,
    DeviceInfos,
    EccParam,
    EccParams,
)
from simulators.cells.dummy import DummyCell, DummyCellParams

P = ctypes.pointer


class Host:
    """Raw calls as a C program would make them, with the instrument side's own struct copies."""

    def __init__(self, sim: SimulatedEClib):
        self.sim = sim
        self.keep: list[object] = []

    def connect(self, address: str = "USB0") -> tuple[int, int]:
        handle, info = ctypes.c_int32(), DeviceInfos()
        code = self.sim.BL_Connect(address.encode(), 5, P(handle), P(info))
        self.info = info
        return code, handle.value

    def params(self, entries):
        array = (EccParam * len(entries))()
        for slot, (label, kind, value, index) in zip(array, entries, strict=True):
            setter = {fw.INT: self.sim.BL_DefineIntParameter, fw.BOOL: self.sim.BL_DefineBoolParameter,
                      fw.SINGLE: self.sim.BL_DefineSglParameter}[kind]  # fmt: skip
            assert setter(label.encode(), value, index, P(slot)) == 0
        self.keep.append(array)
        return EccParams(len(entries), ctypes.cast(array, ctypes.c_void_p))

    def load(self, h, ch, name, entries, first=True, last=True) -> int:
        return self.sim.BL_LoadTechnique(h, ch, name.encode(), self.params(entries), first, last, False)

    def values(self, h, ch) -> CurrentValues:
        values = CurrentValues()
        assert self.sim.BL_GetCurrentValues(h, ch, P(values)) == 0
        return values

    def data(self, h, ch):
        buffer, infos, values = DataBuffer(), DataInfos(), CurrentValues()
        code = self.sim.BL_GetData(h, ch, P(buffer), P(infos), P(values))
        words = np.frombuffer(buffer, dtype=np.uint32, count=infos.NbRows * infos.NbCols)
        return code, words.reshape(infos.NbRows, infos.NbCols), infos, values

    def message(self, h, ch) -> str:
        buffer, size = ctypes.create_string_buffer(512), ctypes.c_uint32(512)
        self.sim.BL_GetMessage(h, ch, buffer, P(size))
        return buffer.value.decode()

    def firmware(self, h, ch, kernel=None, xlx=None, force=False) -> tuple[int, int]:
        mask, results = (ctypes.c_uint8 * 16)(), (ctypes.c_int32 * 16)()
        mask[ch] = 1  # a selection mask indexed by channel number
        code = self.sim.BL_LoadFirmware(h, mask, results, 16, False, force, kernel, xlx)
        return code, results[ch]


OCV = [("Rest_time_T", fw.SINGLE, 100.0, 0), ("Record_every_dT", fw.SINGLE, 10.0, 0), ("E_Range", fw.INT, 1, 0)]


def cp(current=1e-3, duration=50.0, i_range=8):
    return [("Current_step", fw.SINGLE, current, 0), ("vs_initial", fw.BOOL, False, 0),
            ("Duration_step", fw.SINGLE, duration, 0), ("Step_number", fw.INT, 0, 0),
            ("Record_every_dT", fw.SINGLE, 1.0, 0), ("I_Range", fw.INT, i_range, 0)]  # fmt: skip


@pytest.fixture
def clock():
    return VirtualClock()


@pytest.fixture
def cell():
    return DummyCell(DummyCellParams(e0=1.0, r0=100.0, r1=1e-9, r2=0.0, c2=1e-9))  # a 100 ohm resistor on 1 V


@pytest.fixture
def sim(clock, cell):
    channels = {
        0: SimChannel(cell, firmware=fw.FIRMWARE_KERNEL),
        1: SimChannel(DummyCell(), board=fw.PREMIUM),
        2: SimChannel(DummyCell(), firmware=fw.FIRMWARE_ECLAB),
    }
    return SimulatedEClib(clock, {"USB0": SimDevice(5, channels)})


@pytest.fixture
def host(sim):
    return Host(sim)


def test_connect_fills_device_infos_and_unknown_address_fails(host):
    code, h = host.connect()
    assert (code, h) == (0, 1)
    assert (host.info.DeviceCode, host.info.NumberOfChannels, host.info.FirmwareVersion) == (5, 3, 1090)
    assert host.connect("192.168.0.99")[0] == -201  # ERR_COMM_CONNECTIONFAILED


def test_calls_without_connection_or_on_missing_channels(host, sim):
    assert sim.BL_StartChannel(7, 0) == -1  # not connected
    _, h = host.connect()
    assert sim.BL_StartChannel(h, 9) == -3  # channel not plugged
    plugged = (ctypes.c_uint8 * 16)()
    assert sim.BL_GetChannelsPlugged(h, plugged, 16) == 0
    assert list(plugged)[:4] == [1, 1, 1, 0]
    assert sim.BL_IsChannelPlugged(h, 2) is True and sim.BL_IsChannelPlugged(h, 3) is False


def test_firmware_must_be_loaded_and_match_the_board(host, sim):
    _, h = host.connect()
    assert host.load(h, 1, "ocv4.ecc", OCV) == -308  # kernel not loaded yet
    info = ChannelInfos()
    assert sim.BL_GetChannelInfos(h, 1, P(info)) == -308 and info.FirmwareCode == 0
    assert host.firmware(h, 1, b"kernel.bin", b"Vmp_ii_0437_a6.xlx") == (-302, -302)  # VMP3 kernel on PREMIUM
    assert host.firmware(h, 1, b"kernel9.bin", b"") == (-300, -300)  # not shipped
    assert host.firmware(h, 1, b"kernel4.bin", b"vmp_iv_0395_aa.xlx") == (0, 0)
    assert sim.BL_GetChannelInfos(h, 1, P(info)) == 0 and info.FirmwareCode == 5
    assert (info.Zboard, info.MaxIRange, info.MinIRange, info.FloatFormat) == (1, 10, 1, 0)  # TI floats


def test_eclab_firmware_blocks_until_a_forced_kernel_load(host):
    _, h = host.connect()
    assert host.load(h, 2, "ocv.ecc", OCV) == -9  # ERR_GEN_ECLAB_LOADED
    assert host.firmware(h, 2) == (-9, -9)
    assert host.firmware(h, 2, force=True) == (0, 0)
    assert host.load(h, 2, "ocv.ecc", OCV) == 0


def test_technique_file_must_exist_and_suit_the_board(host):
    _, h = host.connect()
    assert host.load(h, 0, "gcpl.ecc", OCV) == -400  # no GCPL in the Development Package
    assert host.load(h, 0, "ocv4.ecc", OCV) == -401  # PREMIUM file on an ESSENTIAL board
    assert "not compatible" in host.message(h, 0)
    assert host.load(h, 0, r"C:\EC-Lab Development Package\lib\ocv.ecc", OCV) == 0


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("Rest_time", fw.SINGLE, 1.0, 0)], "unknown parameter 'Rest_time'"),
        ([("Rest_time_T", fw.INT, 1, 0)], "has type 0, expected 2"),
        ([("Record_every_dT", fw.SINGLE, 1.0, 0)], "missing parameters Rest_time_T"),
    ],
)
def test_bad_parameters_give_invalid_parameters_and_a_message(host, entries, message):
    _, h = host.connect()
    assert host.load(h, 0, "ocv.ecc", entries) == -4
    assert message in host.message(h, 0)


def test_galvanostatic_techniques_refuse_auto_current_range(host):
    _, h = host.connect()
    assert host.load(h, 0, "cp.ecc", cp(i_range=12)) == -4
    assert "Auto-range is not allowed" in host.message(h, 0)


def test_technique_list_needs_first_and_last(host, sim):
    _, h = host.connect()
    assert sim.BL_StartChannel(h, 0) == -403  # nothing loaded
    assert host.load(h, 0, "ocv.ecc", OCV, first=True, last=False) == 0
    assert sim.BL_StartChannel(h, 0) == -403  # list not closed
    assert host.load(h, 0, "cp.ecc", cp(), first=False, last=True) == 0
    assert host.load(h, 0, "cp.ecc", cp(), first=False, last=True) == -403  # after Last without First
    info = ChannelInfos()
    sim.BL_GetChannelInfos(h, 0, P(info))
    assert info.NbOfTechniques == 2


def test_busy_channel_refuses_loads_and_starts(host, sim, clock):
    _, h = host.connect()
    assert host.load(h, 0, "cp.ecc", cp()) == 0
    assert sim.BL_StartChannel(h, 0) == 0
    assert sim.BL_StartChannel(h, 0) == -13
    assert host.load(h, 0, "ocv.ecc", OCV) == -13
    assert sim.BL_StopChannel(h, 0) == 0
    assert host.load(h, 0, "ocv.ecc", OCV) == 0


def test_start_reads_stop_then_run_then_stop_with_data_left(host, sim, clock):
    _, h = host.connect()
    host.load(h, 0, "cp.ecc", cp(current=1e-3, duration=50.0))
    sim.BL_StartChannel(h, 0)
    clock.advance(10)
    code, rows, infos, values = host.data(h, 0)
    assert (code, values.State, infos.NbRows) == (0, fw.STOP, 0)  # the transient STOP before RUN
    assert host.values(h, 0).State == fw.RUN
    clock.advance(100)
    assert host.values(h, 0).State == fw.STOP  # finished ...
    assert host.values(h, 0).MemFilled == 51 * 5 * 4  # ... with 51 rows of 5 words unread
    code, rows, infos, values = host.data(h, 0)
    assert (infos.NbRows, infos.NbCols, infos.TechniqueID, infos.ProcessIndex, infos.StartTime) == (51, 5, 102, 0, 0)
    t = row_ticks(rows, fw.ESSENTIAL) * np.float32(24e-6)
    assert 200e-6 <= t[0] < 0.01  # the first point one acquisition period (200 us) after the start, or later
    assert np.allclose(t[1:], np.arange(1.0, 51.0), atol=24e-6)
    assert np.allclose(singles(rows[:, 2], fw.ESSENTIAL), 1.0 + 1e-3 * 100.0, atol=1e-6)  # V = E0 + I R
    assert np.allclose(singles(rows[:, 3], fw.ESSENTIAL), 1e-3)
    assert host.data(h, 0)[2].NbRows == 0 and host.values(h, 0).MemFilled == 0


def test_one_call_returns_at_most_a_buffer_of_one_technique(host, sim, clock):
    _, h = host.connect()
    host.load(h, 0, "cp.ecc", cp(duration=450.0), last=False)
    host.load(h, 0, "ocv.ecc", OCV, first=False, last=True)
    sim.BL_StartChannel(h, 0)
    host.values(h, 0)  # the transient poll
    clock.advance(1000)
    sizes = []
    while True:
        infos = host.data(h, 0)[2]
        if not infos.NbRows:
            break
        sizes.append((infos.TechniqueIndex, infos.NbRows, infos.StartTime))
    assert sizes == [(0, 200, 0.0), (0, 200, 0.0), (0, 51, 0.0), (1, 11, 450.0)]


def test_stop_mid_step_releases_data_up_to_the_stop_and_leaves_the_cell_there(clock):
    cell = DummyCell(DummyCellParams(e0=0.0, r0=0.0, r1=1000.0, r2=0.0, c2=0.01))  # tau = 10 s
    sim = SimulatedEClib(clock, {"USB0": SimDevice(5, {0: SimChannel(cell, firmware=5, start_polls=0)})})
    host = Host(sim)
    _, h = host.connect()
    host.load(h, 0, "cp.ecc", cp(current=1e-3, duration=1000.0))
    sim.BL_StartChannel(h, 0)
    clock.advance(20.5)
    assert sim.BL_StopChannel(h, 0) == 0
    assert host.values(h, 0).State == fw.STOP
    _, rows, _, values = host.data(h, 0)
    t = rows[:, 1] * float(values.TimeBase)
    assert t[-1] == pytest.approx(20.5, abs=1e-4) and len(t) == 22
    assert cell.vc == pytest.approx(1.0 * (1 - np.exp(-2.05)), rel=1e-4)  # capacitor charged for 20.5 s only


def test_injected_faults_return_their_code_once(host, sim):
    _, h = host.connect()
    sim.fail_next("BL_GetData", -200)
    assert host.data(h, 0)[0] == -200
    assert host.data(h, 0)[0] == 0


def test_data_survive_a_disconnect_and_reach_a_new_connection(host, sim, clock):
    _, h = host.connect()
    host.load(h, 0, "cp.ecc", cp(duration=20.0))
    sim.BL_StartChannel(h, 0)
    host.values(h, 0)
    assert sim.BL_Disconnect(h) == 0
    clock.advance(100)
    _, h2 = host.connect()
    assert h2 != h
    assert host.data(h2, 0)[2].NbRows == 21


def test_factory_builds_a_ready_instrument(clock):
    from simulators.biologic import simulated_eclib

    sim = simulated_eclib(clock, {0: DummyCell(), 3: DummyCell()}, address="10.0.0.9", board=fw.PREMIUM)
    host = Host(sim)
    code, h = host.connect("10.0.0.9")
    assert code == 0 and host.info.DeviceCode == 20  # VSP-300
    info, board = ChannelInfos(), ctypes.c_uint32()
    assert sim.BL_GetChannelInfos(h, 3, P(info)) == 0 and info.FirmwareCode == 5 and info.MaxBandwidth == 9
    assert sim.BL_GetChannelBoardType(h, 3, P(board)) == 0 and board.value == fw.PREMIUM
    assert host.load(h, 0, "ocv4.ecc", OCV) == 0


def test_a_loop_must_jump_back(host):
    _, h = host.connect()
    assert host.load(h, 0, "ocv.ecc", OCV, first=True, last=False) == 0
    loop = [("loop_N_times", fw.INT, 2, 0), ("protocol_number", fw.INT, 1, 0)]  # itself, not an earlier one
    assert host.load(h, 0, "loop.ecc", loop, first=False, last=True) == -4
    assert host.message(h, 0) == "technique 0 loaded: ocv.ecc"
    assert host.message(h, 0) == "loop: protocol_number must name an earlier technique (0-based)"


def test_an_endless_loop_without_time_stops_the_channel(host, sim, clock):
    _, h = host.connect()
    zero = [("Rest_time_T", fw.SINGLE, 0.0, 0), ("Record_every_dT", fw.SINGLE, 1.0, 0)]
    host.load(h, 0, "ocv.ecc", zero, first=True, last=False)
    host.load(h, 0, "loop.ecc", [("loop_N_times", fw.INT, -1, 0), ("protocol_number", fw.INT, 0, 0)], first=False)
    assert sim.BL_StartChannel(h, 0) == 0
    clock.advance(1)
    assert host.values(h, 0).State == fw.STOP
    messages = [host.message(h, 0) for _ in range(4)]
    assert "technique 1 failed: the loop at technique 1 repeats a body that takes no time" in messages


def test_time_base_is_taken_as_int_or_single_and_extra_columns_only_when_none(host):
    """kbio-based scripts pass ``tb`` as an int (OCV) or a single (CA) and ``xctr`` (reference 3)."""
    _, h = host.connect()
    assert host.load(h, 0, "ocv.ecc", [*OCV, ("tb", fw.INT, 1, 0), ("xctr", fw.INT, 0, 0)]) == 0
    assert host.load(h, 0, "ocv.ecc", [*OCV, ("tb", fw.SINGLE, 24e-6, 0)]) == 0
    messages = [host.message(h, 0) for _ in range(2)]
    assert host.load(h, 0, "ocv.ecc", [*OCV, ("xctr", fw.INT, 1, 0)]) == -4
    assert "extra data columns are not simulated" in host.message(h, 0) and messages[0]
