"""``load_library()``: a library object of real C function pointers with the header's prototypes, driven by a
client written the way BioLogic's kbio example binds the DLL (argtypes from the header, 1-D channel masks, the 6.x
converters), through a CA and a PEIS to physical values; plus the exports a client binds and the bench helpers.
"""

from __future__ import annotations

import ctypes
import math
from pathlib import Path

import numpy as np
import pytest

from protocols.clock import VirtualClock
from simulators.biologic import load_library
from simulators.biologic import structs as s
from simulators.biologic.eclib import SimulatedEClib
from simulators.biologic.prototypes import PROTOTYPES
from simulators.cells.dummy import DummyCell, DummyCellParams

P = ctypes.POINTER
i32, u32, u8, c_bool = ctypes.c_int32, ctypes.c_uint32, ctypes.c_uint8, ctypes.c_bool
f32, f64 = ctypes.c_float, ctypes.c_double

# -- the vendor header's facts, transcribed here (reference sections 2.1-2.4; BLFunctions.h / BLStructs.h) --------

HEADER = {
    "BL_GetLibVersion": "int(char*, u32*)", "BL_GetVolumeSerialNumber": "u32()",
    "BL_GetErrorMsg": "int(int, char*, u32*)", "BL_Connect": "int(const char*, u8, int*, DeviceInfos*)",
    "BL_Disconnect": "int(int)", "BL_TestConnection": "int(int)", "BL_TestCommSpeed": "int(int, u8, int*, int*)",
    "BL_GetUSBdeviceinfos": "bool(u32, char*, u32*, char*, u32*, char*, u32*)",
    "BL_LoadFirmware": "int(int, u8*, int*, u8, bool, bool, const char*, const char*)",
    "BL_IsChannelPlugged": "bool(int, u8)", "BL_GetChannelsPlugged": "int(int, u8*, u8)",
    "BL_GetChannelInfos": "int(int, u8, ChannelInfos*)", "BL_GetMessage": "int(int, u8, char*, u32*)",
    "BL_GetHardConf": "int(int, u8, HardwareConf*)", "BL_SetHardConf": "int(int, u8, HardwareConf)",
    "BL_LoadTechnique": "int(int, u8, const char*, EccParams, bool, bool, bool)",
    "BL_DefineBoolParameter": "int(const char*, bool, int, EccParam*)",
    "BL_DefineSglParameter": "int(const char*, float, int, EccParam*)",
    "BL_DefineIntParameter": "int(const char*, int, int, EccParam*)",
    "BL_UpdateParameters": "int(int, u8, int, EccParams, const char*)", "BL_StartChannel": "int(int, u8)",
    "BL_StartChannels": "int(int, u8*, int*, u8)", "BL_StopChannel": "int(int, u8)",
    "BL_StopChannels": "int(int, u8*, int*, u8)", "BL_GetCurrentValues": "int(int, u8, CurrentValues*)",
    "BL_GetData": "int(int, u8, DataBuffer*, DataInfos*, CurrentValues*)",
    "BL_ConvertNumericIntoSingle": "int(u32, float*)", "BL_ConvertNumericIntoFloat": "int(u32, double*)",
    "BL_SetExperimentInfos": "int(int, u8, ExperimentInfos)",
    "BL_GetExperimentInfos": "int(int, u8, ExperimentInfos*)", "BL_LoadFlash": "int(int, const char*, bool)",
    "BL_GetChannelBoardType": "int(int, u8, u32*)", "BL_ConvertChannelNumericIntoSingle": "int(u32, float*, u32)",
    "BL_ConvertTimeChannelNumericIntoSeconds": "int(u32*, double*, float, u32)",
    "BL_GetChannelFloatFormat": "int(int, u8, int*)", "BL_GetFPGAVer": "int(int, u8, u32*)",
    "BL_GetOptErr": "int(int, u8, int*, int*)", "BL_GetTechniqueInfos": "int(int, u8, int, TechniqueInfos*)",
    "BL_GetParamInfos": "int(int, u8, int, TechniqueInfos*)", "BL_IsVMP4Device": "bool(int)",
    "BL_FindEChemDev": "int(char*, u32*, u32*)", "BL_FindEChemEthDev": "int(char*, u32*, u32*)",
    "BL_FindEChemUsbDev": "int(char*, u32*, u32*)", "BL_SetConfig": "int(const char*, const char*)",
}  # fmt: skip

STRUCT_FACTS = {  # name: (size, {field: offset}), 4-byte packing
    "DeviceInfos": (44, {"DeviceCode": 0, "NumberOfChannels": 12, "FirmwareVersion": 20, "NbOfConnectedPC": 40}),
    "ChannelInfos": (84, {"FirmwareCode": 12, "MemFilled": 52, "State": 56, "NbOfTechniques": 72,
                          "FloatFormat": 76, "CPUCIE": 80}),
    "CurrentValues": (76, {"State": 0, "TimeBase": 8, "Ewe": 12, "I": 40, "ElapsedTime": 52, "Freq": 56,
                           "OptErr": 68, "OptPos": 72}),
    "DataInfos": (40, {"NbRows": 4, "NbCols": 8, "TechniqueID": 16, "ProcessIndex": 20, "loop": 24,
                       "StartTime": 28, "MuxPad": 36}),
    "DataBuffer": (4000, {"data": 0}),
    "EccParam": (76, {"ParamStr": 0, "ParamType": 64, "ParamVal": 68, "ParamIndex": 72}),
    "EccParams": (4 + ctypes.sizeof(ctypes.c_void_p), {"len": 0, "pParams": 4}),
    "HardwareConf": (8, {"Conn": 0, "Ground": 4}),
    "TechniqueInfos": (16 + 2 * ctypes.sizeof(ctypes.c_void_p), {"id": 0, "indx": 4, "nbParams": 8,
                                                                  "nbSettings": 12, "Params": 16}),
    "ExperimentInfos": (272, {"Group": 0, "TimeYMD": 12, "Filename": 16}),
}  # fmt: skip

BRIEF_EXPORTS = [
    "BL_ConvertNumericIntoSingle", "BL_ConvertChannelNumericIntoSingle", "BL_ConvertTimeChannelNumericIntoSeconds",
    "BL_GetChannelFloatFormat", "BL_GetHardConf", "BL_SetHardConf", "BL_UpdateParameters", "BL_StartChannels",
    "BL_StopChannels", "BL_GetChannelsPlugged", "BL_IsChannelPlugged", "BL_GetLibVersion", "BL_GetErrorMsg",
    "BL_TestConnection", "BL_TestCommSpeed", "BL_GetFPGAVer", "BL_GetOptErr",
]  # fmt: skip


def token(kind) -> str:
    names = {i32: "int", u32: "u32", u8: "u8", c_bool: "bool", f32: "float", f64: "double",
             ctypes.c_char_p: "const char*", P(ctypes.c_char): "char*"}  # fmt: skip
    if kind in names:
        return names[kind]
    if hasattr(kind, "_type_") and issubclass(kind, ctypes._Pointer):
        return token(kind._type_) + "*"
    return kind.__name__


@pytest.mark.parametrize("name", sorted(HEADER))
def test_every_export_has_the_header_prototype(name):
    restype, argtypes = PROTOTYPES[name]
    assert f"{token(restype)}({', '.join(token(a) for a in argtypes)})" == HEADER[name]


@pytest.mark.parametrize("name", sorted(STRUCT_FACTS))
def test_struct_layouts_follow_the_header(name):
    size, offsets = STRUCT_FACTS[name]
    struct = getattr(s, name)
    assert ctypes.sizeof(struct) == size
    assert {field: getattr(struct, field).offset for field in offsets} == offsets


def test_the_library_is_a_loaded_dll_object_of_c_function_pointers():
    lib = load_library()
    assert isinstance(lib, ctypes.CDLL)
    assert set(BRIEF_EXPORTS) <= set(lib.exports) and set(HEADER) == set(lib.exports)
    assert lib.BL_Connect is lib.BL_Connect  # cached like a DLL attribute: argtypes set once stick
    fresh = lib["BL_Connect"]
    assert fresh is not lib.BL_Connect and fresh.__name__ == "BL_Connect"
    assert isinstance(fresh, ctypes._CFuncPtr) and ctypes.cast(fresh, ctypes.c_void_p).value
    with pytest.raises(AttributeError, match="BL_GCPL"):
        lib.BL_GCPL  # noqa: B018
    assert not hasattr(lib, "BL_LoadTechnique_VEE")


def test_null_pointers_and_simulator_faults_answer_codes_never_exceptions(monkeypatch):
    lib = load_library()
    assert lib.BL_GetLibVersion(None, None) == -4
    handle = connect(lib)
    assert lib.BL_GetChannelBoardType(handle, 0, None) == -4
    assert lib.BL_GetData(handle, 0, None, None, None) == -4
    assert lib.faults == []

    def broken(self, handle, channel, version):
        raise RuntimeError("simulator bug")

    monkeypatch.setattr(SimulatedEClib, "BL_GetFPGAVer", broken)
    lib = load_library()
    assert lib.BL_GetFPGAVer(connect(lib), 0, ctypes.byref(ctypes.c_uint32())) == -6
    assert "simulator bug" in lib.faults[0]


def connect(lib, address: bytes = b"USB0") -> int:
    handle, info = ctypes.c_int32(), s.DeviceInfos()
    assert lib.BL_Connect(address, 5, ctypes.byref(handle), ctypes.byref(info)) == 0
    return handle.value


# -- a kbio-style client ---------------------------------------------------------------------------------------


class Client:
    """Binds each export with argtypes from the header, passes 16-entry bool channel masks and converts every
    data word through the DLL's 6.x converters, as BioLogic's Python example package does."""

    Mask = c_bool * 16
    Results = i32 * 16

    def __init__(self, lib):
        self.lib = lib
        self.keep: list[object] = []
        sig = {
            "BL_Connect": ([ctypes.c_char_p, u8, P(i32), P(s.DeviceInfos)], i32),
            "BL_GetChannelsPlugged": ([i32, self.Mask, u8], i32),
            "BL_LoadFirmware": ([i32, self.Mask, self.Results, u8, c_bool, c_bool, ctypes.c_char_p, ctypes.c_char_p],
                                i32),
            "BL_GetChannelInfos": ([i32, u8, P(s.ChannelInfos)], i32),
            "BL_GetChannelBoardType": ([i32, u8, P(u32)], i32),
            "BL_DefineBoolParameter": ([ctypes.c_char_p, c_bool, i32, P(s.EccParam)], i32),
            "BL_DefineSglParameter": ([ctypes.c_char_p, f32, i32, P(s.EccParam)], i32),
            "BL_DefineIntParameter": ([ctypes.c_char_p, i32, i32, P(s.EccParam)], i32),
            "BL_LoadTechnique": ([i32, u8, ctypes.c_char_p, s.EccParams, c_bool, c_bool, c_bool], i32),
            "BL_StartChannels": ([i32, self.Mask, self.Results, u8], i32),
            "BL_StopChannels": ([i32, self.Mask, self.Results, u8], i32),
            "BL_GetCurrentValues": ([i32, u8, P(s.CurrentValues)], i32),
            "BL_GetData": ([i32, u8, P(u32 * 1000), P(s.DataInfos), P(s.CurrentValues)], i32),
            "BL_ConvertChannelNumericIntoSingle": ([u32, P(f32), u32], i32),
            "BL_ConvertTimeChannelNumericIntoSeconds": ([P(u32), P(f64), f32, u32], i32),
            "BL_IsChannelPlugged": ([i32, u8], c_bool),
            "BL_Disconnect": ([i32], i32),
        }  # fmt: skip
        for name, (argtypes, restype) in sig.items():
            function = getattr(lib, name)
            function.argtypes, function.restype = argtypes, restype

    def __getattr__(self, name):
        return getattr(self.lib, name)

    def connect(self) -> tuple[int, s.DeviceInfos]:
        handle, info = i32(), s.DeviceInfos()
        assert self.BL_Connect(b"USB0", 5, ctypes.byref(handle), ctypes.byref(info)) == 0
        return handle.value, info

    def mask(self, *channels: int):
        return self.Mask(*[k in channels for k in range(16)])

    def params(self, entries):
        array = (s.EccParam * len(entries))()
        for slot, (label, value, index) in zip(array, entries, strict=True):
            setter = {bool: self.BL_DefineBoolParameter, int: self.BL_DefineIntParameter,
                      float: self.BL_DefineSglParameter}[type(value)]  # fmt: skip
            assert setter(label.encode(), value, index, ctypes.byref(slot)) == 0
        self.keep.append(array)
        return s.EccParams(len(entries), ctypes.addressof(array))

    def single(self, word: int, board: int) -> float:
        value = f32()
        assert self.BL_ConvertChannelNumericIntoSingle(word, ctypes.byref(value), board) == 0
        return value.value

    def seconds(self, first: int, second: int, timebase: float, board: int) -> float:
        value = f64()
        assert self.BL_ConvertTimeChannelNumericIntoSeconds((u32 * 2)(first, second), ctypes.byref(value), timebase,
                                                            board) == 0  # fmt: skip
        return value.value

    def drain(self, handle: int, channel: int, clock: VirtualClock, board: int, step: float = 5.0):
        """Rows of every chunk until the channel reads STOP with nothing left: (infos, values, rows of floats)."""
        chunks, started = [], False
        for _ in range(100_000):
            buffer, infos, values = (u32 * 1000)(), s.DataInfos(), s.CurrentValues()
            code = self.BL_GetData(handle, channel, ctypes.byref(buffer), ctypes.byref(infos), ctypes.byref(values))
            assert code == 0
            started = started or values.State == 1 or infos.NbRows > 0
            if infos.NbRows:
                words = np.frombuffer(buffer, dtype=np.uint32, count=infos.NbRows * infos.NbCols)
                chunks.append((infos, values, words.reshape(infos.NbRows, infos.NbCols)))
            elif started and values.State == 0:
                return chunks
            else:
                clock.advance(step)
        raise AssertionError("the channel never finished")


def rc_cell() -> DummyCell:
    return DummyCell(DummyCellParams(e0=0.0, r0=50.0, r1=1000.0, r2=0.0, c2=1e-5))


@pytest.mark.parametrize(("board", "board_type", "suffix"), [("vmp3", 1, ""), ("sp300", 2, "4"), ("digicore", 3, "5")])
def test_a_kbio_style_client_runs_ca_then_peis_to_physical_values(board, board_type, suffix):
    clock = VirtualClock()
    lib = load_library(board, 2, lambda k: rc_cell(), clock)
    api = Client(lib)
    handle, _ = api.connect()
    plugged = api.Mask()
    assert api.BL_GetChannelsPlugged(handle, plugged, 16) == 0 and list(plugged)[:3] == [True, True, False]
    results = api.Results()
    assert api.BL_LoadFirmware(handle, api.mask(1), results, 16, True, False, None, None) == 0
    channel_info = s.ChannelInfos()
    assert api.BL_GetChannelInfos(handle, 1, ctypes.byref(channel_info)) == 0 and channel_info.FirmwareCode == 5
    assert api.BL_GetChannelInfos(handle, 0, ctypes.byref(channel_info)) == -308  # not selected, not loaded
    kind = u32()
    assert api.BL_GetChannelBoardType(handle, 1, ctypes.byref(kind)) == 0 and kind.value == board_type

    # CA: 100 mV for 1 s on Rs + R || C (50 ohm, 1 kohm, 10 uF): I(t) = V/(Rs+R) + V (1/Rs - 1/(Rs+R)) e^(-t/tau)
    ca = api.params([("Voltage_step", 0.1, 0), ("vs_initial", False, 0), ("Duration_step", 1.0, 0),
                     ("Step_number", 0, 0), ("Record_every_dT", 0.01, 0), ("Record_every_dI", 1.0, 0),
                     ("N_Cycles", 0, 0), ("I_Range", 8, 0)])  # fmt: skip
    peis = api.params([("vs_initial", True, 0), ("vs_final", True, 0), ("Initial_Voltage_step", 0.0, 0),
                       ("Final_Voltage_step", 0.0, 0), ("Duration_step", 0.0, 0), ("Step_number", 0, 0),
                       ("Record_every_dT", 0.1, 0), ("Record_every_dI", 0.1, 0), ("Initial_frequency", 1e5, 0),
                       ("Final_frequency", 1.0, 0), ("sweep", False, 0), ("Amplitude_Voltage", 0.01, 0),
                       ("Frequency_number", 11, 0), ("Average_N_times", 1, 0), ("Correction", False, 0),
                       ("Wait_for_steady", 0.0, 0), ("I_Range", 8, 0)])  # fmt: skip
    assert api.BL_LoadTechnique(handle, 1, f"ca{suffix}.ecc".encode(), ca, True, False, False) == 0
    assert api.BL_LoadTechnique(handle, 1, f"peis{suffix}.ecc".encode(), peis, False, True, False) == 0
    assert api.BL_StartChannels(handle, api.mask(1), results, 16) == 0 and list(results)[:2] == [0, 0]
    chunks = api.drain(handle, 1, clock, board_type, step=0.25)
    assert lib.faults == []

    ca_rows = [(i, v, r) for i, v, r in chunks if i.TechniqueID == 101]
    t = np.array([api.seconds(int(a), int(b), v.TimeBase, board_type) for _, v, r in ca_rows for a, b in r[:, :2]])
    ewe = np.array([api.single(int(w), board_type) for _, _, r in ca_rows for w in r[:, 2]])
    current = np.array([api.single(int(w), board_type) for _, _, r in ca_rows for w in r[:, 3]])
    tau = 1e-5 * 50.0 * 1000.0 / 1050.0
    expected = 0.1 / 1050.0 + 0.1 * (1 / 50.0 - 1 / 1050.0) * np.exp(-t / tau)
    assert len(t) >= 100 and t[-1] == pytest.approx(1.0, abs=1e-3)
    assert np.all(ewe == np.float32(0.1))
    # a row's time is a whole number of 24 us ticks, counted down from the sample's instant
    slope = np.abs(0.1 * (1 / 50.0 - 1 / 1050.0) * np.exp(-t / tau) / tau)
    assert np.all(np.abs(current - expected) <= 1e-5 * np.abs(expected) + slope * 24e-6)

    eis = [(i, r) for i, _, r in chunks if i.TechniqueID == 104]
    assert all(i.ProcessIndex == 1 and i.TechniqueIndex == 1 and i.NbCols == (15 if board_type == 1 else 14)
               for i, _ in eis)  # fmt: skip
    rows = np.vstack([r for _, r in eis])
    freq, abs_e, abs_i, phase = (np.array([api.single(int(w), board_type) for w in rows[:, k]]) for k in range(4))
    z = abs_e / abs_i * np.exp(1j * phase)
    omega = 2 * math.pi * freq
    expected_z = 50.0 + 1000.0 / (1 + 1j * omega * 1000.0 * 1e-5)
    assert freq == pytest.approx(np.geomspace(1e5, 1.0, 11), rel=1e-6)
    assert z == pytest.approx(expected_z, rel=1e-5)
    assert api.BL_StopChannels(handle, api.mask(1), results, 16) == 0
    assert api.BL_Disconnect(handle) == 0


# -- firmware masks, multi-channel start/stop, mid-run updates ----------------------------------------------------


def test_firmware_mask_selects_channels_by_number_and_nothing_selected_is_an_error():
    lib = load_library("sp300", 4)
    handle = connect(lib)
    mask, results = (u8 * 16)(), (i32 * 16)(*[99] * 16)
    assert lib.BL_LoadFirmware(handle, mask, results, 16, False, False, None, None) == -7  # no channel selected
    mask[2], mask[9] = 1, 1
    assert lib.BL_LoadFirmware(handle, mask, results, 16, False, False, b"kernel4.bin", b"vmp_iv_0395_aa.xlx") == -3
    assert (results[2], results[9], results[0]) == (0, -3, 0)  # 9 is not plugged; unselected ones read 0
    firmware = [lib.channel(k).firmware for k in range(4)]
    assert firmware == [0, 0, 5, 0]


def test_update_parameters_changes_a_loaded_technique_from_its_next_step():
    clock = VirtualClock()
    lib = load_library("vmp3", 1, DummyCell(DummyCellParams(e0=0.0, r0=100.0, r1=1e-9, r2=0.0, c2=1e-9)), clock,
                       firmware_loaded=True)  # fmt: skip
    api = Client(lib)
    handle, _ = api.connect()
    steps = [("Voltage_step", 0.1, 0), ("Voltage_step", 0.2, 1), ("vs_initial", False, 0), ("vs_initial", False, 1),
             ("Duration_step", 10.0, 0), ("Duration_step", 10.0, 1), ("Step_number", 1, 0),
             ("Record_every_dT", 5.0, 0)]  # fmt: skip
    assert api.BL_LoadTechnique(handle, 0, b"ca.ecc", api.params(steps), True, True, False) == 0
    assert lib.BL_StartChannel(handle, 0) == 0
    clock.advance(5.0)
    update = api.params([("Voltage_step", 0.3, 1)])
    assert lib.BL_UpdateParameters(handle, 0, 0, update, b"ca.ecc") == 0
    assert lib.BL_UpdateParameters(handle, 0, 1, update, b"ca.ecc") == -15  # no technique 1
    assert lib.BL_UpdateParameters(handle, 0, 0, update, b"cp.ecc") == -15  # not the loaded file
    assert lib.BL_UpdateParameters(handle, 0, 0, api.params([("Current_step", 0.3, 0)]), b"ca.ecc") == -4
    rows = np.vstack([r for _, _, r in api.drain(handle, 0, clock, 1)])
    current = np.array([api.single(int(w), 1) for w in rows[:, 3]])
    assert current[0] == pytest.approx(1e-3) and current[-1] == pytest.approx(3e-3)  # 0.3 V / 100 ohm
    infos = s.TechniqueInfos()
    assert lib.BL_GetTechniqueInfos(handle, 0, 0, ctypes.byref(infos)) == 0
    assert (infos.id, infos.indx, infos.nbParams) == (101, 0, len(steps) + 1)
    params = (s.EccParam * infos.nbParams).from_address(infos.Params)
    assert params[-1].ParamStr == b"Voltage_step" and params[-1].ParamIndex == 1


def test_start_and_stop_channels_take_masks_and_report_per_channel():
    clock = VirtualClock()
    lib = load_library("vmp3", 3, None, clock, firmware_loaded=True)
    api = Client(lib)
    handle, _ = api.connect()
    ocv = [("Rest_time_T", 100.0, 0), ("Record_every_dT", 10.0, 0)]
    for k in (0, 2):
        assert api.BL_LoadTechnique(handle, k, b"ocv.ecc", api.params(ocv), True, True, False) == 0
    results = api.Results()
    assert api.BL_StartChannels(handle, api.mask(0, 1, 2), results, 16) == -403  # channel 1 has nothing loaded
    assert list(results)[:4] == [0, -403, 0, 0]
    assert [lib.channel(k).run is not None for k in range(3)] == [True, False, True]
    assert api.BL_StopChannels(handle, api.mask(0, 2), results, 16) == 0


# -- channel configuration and information exports ---------------------------------------------------------------


def test_hardware_configuration_is_sp300_only_and_checked():
    for board, code in (("sp300", 0), ("vmp3", -14)):
        lib = load_library(board)
        handle = connect(lib)
        conf = s.HardwareConf()
        assert lib.BL_SetHardConf(handle, 0, s.HardwareConf(Conn=1, Ground=1)) == code
        assert lib.BL_GetHardConf(handle, 0, ctypes.byref(conf)) == code
        if code == 0:
            assert (conf.Conn, conf.Ground) == (1, 1)
            assert lib.BL_SetHardConf(handle, 0, s.HardwareConf(Conn=7, Ground=0)) == -4


def test_information_exports():
    lib = load_library("sp300", 2, address="USB0")
    assert lib.BL_Connect(b"10.0.0.1", 5, ctypes.byref(i32()), ctypes.byref(s.DeviceInfos())) == -201
    handle = connect(lib)
    text, size = ctypes.create_string_buffer(256), u32(256)
    assert lib.BL_GetErrorMsg(-401, text, ctypes.byref(size)) == 0 and b"not compatible" in text.value
    assert size.value == len(text.value)
    assert lib.BL_GetLibVersion(text, ctypes.byref(u32(256))) == 0 and text.value
    assert lib.BL_TestConnection(handle) == 0 and lib.BL_TestConnection(handle + 1) == -1
    fpga, err, pos, fmt = u32(), i32(-1), i32(-1), i32(-1)
    assert lib.BL_GetFPGAVer(handle, 0, ctypes.byref(fpga)) == 0 and fpga.value == 0x395
    assert lib.BL_GetOptErr(handle, 0, ctypes.byref(err), ctypes.byref(pos)) == 0 and (err.value, pos.value) == (0, 0)
    assert lib.BL_GetChannelFloatFormat(handle, 1, ctypes.byref(fmt)) == 0 and fmt.value == 0
    assert lib.BL_TestCommSpeed(handle, 0, ctypes.byref(err), ctypes.byref(pos)) == -308  # no kernel yet
    lib.BL_IsChannelPlugged.restype = c_bool
    assert lib.BL_IsChannelPlugged(handle, 1) is True and lib.BL_IsChannelPlugged(handle, 2) is False
    company, model, serial = (ctypes.create_string_buffer(64) for _ in range(3))
    sizes = [u32(64) for _ in range(3)]
    lib.BL_GetUSBdeviceinfos.restype = c_bool
    assert lib.BL_GetUSBdeviceinfos(0, company, ctypes.byref(sizes[0]), model, ctypes.byref(sizes[1]), serial,
                                    ctypes.byref(sizes[2])) is True  # fmt: skip
    assert model.value == b"SP-300" and sizes[1].value == len(b"SP-300") + 1  # kbio strips the counted NUL
    experiment = s.ExperimentInfos(Group=3, Filename=b"run-1")
    assert lib.BL_SetExperimentInfos(handle, 0, experiment) == 0
    back = s.ExperimentInfos()
    assert lib.BL_GetExperimentInfos(handle, 0, ctypes.byref(back)) == 0
    assert (back.Group, back.Filename) == (3, b"run-1")


def test_discovery_lists_the_instrument_as_blfind_does():
    lib = load_library("vmp3")  # answers any address; listed as USB0
    text, size, count = ctypes.create_string_buffer(512), u32(256), u32()
    assert lib.BL_FindEChemDev(text, ctypes.byref(size), ctypes.byref(count)) == 0
    found = text.raw[: 2 * size.value].decode("utf-16-le")
    assert count.value == 1 and found.endswith("%")
    fields = found[:-1].split("$")
    assert fields[0] == "USB" and [f for f in fields if f][1:] == ["0", "VMP3", "0001"]
    lib = load_library("sp300", address="192.168.0.7")
    size = u32(256)
    assert lib.BL_FindEChemEthDev(text, ctypes.byref(size), ctypes.byref(count)) == 0
    ethernet = [f for f in text.raw[: 2 * size.value].decode("utf-16-le")[:-1].split("$") if f]
    assert ethernet[:2] == ["Ethernet", "192.168.0.7"] and ethernet[-3:-1] == ["SP-300", "0001"]
    assert lib.BL_FindEChemUsbDev(text, ctypes.byref(u32(256)), ctypes.byref(count)) == 0 and count.value == 0


# -- the bench: cells on channels ------------------------------------------------------------------------------


def test_cells_come_from_library_names_files_models_or_factories():
    library_file = Path(__file__).parents[3] / "protocols" / "library" / "cells" / "host-blocking.yaml"
    by_name = load_library("vmp3", 1, "host-blocking").channel(0).cell()
    by_file = load_library("vmp3", 1, library_file).channel(0).cell()
    f = np.array([1e4, 1.0])
    assert by_name.impedance(f) == pytest.approx(by_file.impedance(f))
    made = []
    lib = load_library("vmp3", 3, lambda k: made.append(k) or rc_cell())
    assert made == []  # built when a channel first needs its cell
    lib.channel(2).cell()
    assert made == [2]
    with pytest.raises(ValueError, match="several channels"):
        load_library("vmp3", 2, rc_cell())
    with pytest.raises(Exception, match="no-such-cell"):
        load_library("vmp3", 1, "no-such-cell")
    with pytest.raises(ValueError, match="board"):
        load_library("vmp4")


def test_a_cell_is_placed_after_the_library_exists_but_not_under_current():
    clock = VirtualClock()
    lib = load_library("vmp3", 1, None, clock, firmware_loaded=True)
    lib.place_cell(0, DummyCell(DummyCellParams(e0=0.7)))
    api = Client(lib)
    handle, _ = api.connect()
    values = s.CurrentValues()
    assert lib.BL_GetCurrentValues(handle, 0, ctypes.byref(values)) == 0 and values.Ewe == pytest.approx(0.7)
    ocv = api.params([("Rest_time_T", 100.0, 0), ("Record_every_dT", 10.0, 0)])
    assert api.BL_LoadTechnique(handle, 0, b"ocv.ecc", ocv, True, True, False) == 0
    assert lib.BL_StartChannel(handle, 0) == 0
    with pytest.raises(RuntimeError, match="running"):
        lib.place_cell(0, None)
    assert lib.BL_StopChannel(handle, 0) == 0
    lib.place_cell(0, lambda k: DummyCell(DummyCellParams(e0=0.2)))
    assert lib.BL_GetCurrentValues(handle, 0, ctypes.byref(values)) == 0 and values.Ewe == pytest.approx(0.2)


def test_the_projects_driver_binds_the_library_with_its_own_dll_binding():
    """No second code path: the driver declares its argtypes on the library's function pointers as on the DLL's."""
    from drivers.biologic.channel import BiologicChannel, BiologicConfig

    lib = load_library("sp300", 2, None, VirtualClock())
    BiologicChannel(lib, BiologicConfig("USB0", 1)).connect()
    assert lib.BL_DefineSglParameter.argtypes is not None and lib.BL_LoadTechnique.argtypes is not None
    assert [lib.channel(k).firmware for k in range(2)] == [0, 5] and lib.faults == []


@pytest.mark.parametrize(("start_polls", "states"), [(0, [1, 1]), (1, [0, 1])])
def test_a_start_reads_run_at_once_unless_the_transient_stop_is_asked_for(start_polls, states):
    """BioLogic's example loop ends at the first STOP it reads; the STOP-before-RUN the reference allows is opt-in."""
    clock = VirtualClock()
    lib = load_library("vmp3", 1, None, clock, firmware_loaded=True, start_polls=start_polls)
    api = Client(lib)
    handle, _ = api.connect()
    ocv = api.params([("Rest_time_T", 10.0, 0), ("Record_every_dT", 1.0, 0)])
    assert api.BL_LoadTechnique(handle, 0, b"ocv.ecc", ocv, True, True, False) == 0
    assert lib.BL_StartChannel(handle, 0) == 0
    read = []
    for _ in states:
        values = s.CurrentValues()
        assert api.BL_GetCurrentValues(handle, 0, ctypes.byref(values)) == 0
        read.append(values.State)
    assert read == states
