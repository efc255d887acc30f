"""Struct sizes and offsets against the vendor header facts, and the two sides' copies against each other."""

from __future__ import annotations

import ctypes
import inspect
import types

import pytest

from drivers.biologic import structs as d
from drivers.biologic.eclib import SIGNATURES, declare_signatures, load_eclib
from drivers.biologic.errors import ERROR_TABLE, EClibError, EClibLoadError
from simulators.biologic import structs as s
from simulators.biologic.eclib import SimulatedEClib

# (struct, size, {field: offset}) from reference section 2.4 (4-byte packing)
LAYOUTS = [
    (d.TDeviceInfos, 44, {"DeviceCode": 0, "RAMSize": 4, "NumberOfChannels": 12, "FirmwareVersion": 20,
                          "FirmwareDate_dd": 32, "NbOfConnectedPC": 40}),
    (d.TChannelInfos, 84, {"Channel": 0, "BoardVersion": 4, "FirmwareCode": 12, "AmpCode": 24, "Zboard": 36,
                           "MUXboard": 40, "GPRAboard": 44, "MemSize": 48, "MemFilled": 52, "State": 56,
                           "MaxIRange": 60, "MinIRange": 64, "MaxBandwidth": 68, "NbOfTechniques": 72,
                           "FloatFormat": 76, "CPUCIE": 80}),
    (d.TCurrentValues, 76, {"State": 0, "MemFilled": 4, "TimeBase": 8, "Ewe": 12, "EweRangeMin": 16,
                            "EweRangeMax": 20, "Ece": 24, "Eoverflow": 36, "I": 40, "IRange": 44, "Ioverflow": 48,
                            "ElapsedTime": 52, "Freq": 56, "Rcomp": 60, "Saturation": 64, "OptErr": 68,
                            "OptPos": 72}),
    (d.TDataInfos, 40, {"IRQskipped": 0, "NbRows": 4, "NbCols": 8, "TechniqueIndex": 12, "TechniqueID": 16,
                        "ProcessIndex": 20, "loop": 24, "StartTime": 28, "MuxPad": 36}),
    (d.TDataBuffer, 4000, {"data": 0}),
    (d.TEccParam, 76, {"ParamStr": 0, "ParamType": 64, "ParamVal": 68, "ParamIndex": 72}),
    (d.THardwareConf, 8, {"Conn": 0, "Ground": 4}),
    (d.TTechniqueInfos, 16 + 2 * ctypes.sizeof(ctypes.c_void_p), {"id": 0, "indx": 4, "nbParams": 8,
                                                                   "nbSettings": 12, "Params": 16}),
    (d.TExperimentInfos, 272, {"Group": 0, "PCidentifier": 4, "TimeHMS": 8, "TimeYMD": 12, "Filename": 16}),
]  # fmt: skip


@pytest.mark.parametrize(("struct", "size", "offsets"), LAYOUTS, ids=lambda x: getattr(x, "__name__", ""))
def test_struct_size_and_offsets_follow_the_header(struct, size, offsets):
    assert ctypes.sizeof(struct) == size
    for name, offset in offsets.items():
        assert getattr(struct, name).offset == offset, name


def test_channel_infos_fields_are_21_int32_in_header_order():
    names = [f[0] for f in d.TChannelInfos._fields_]
    assert names[:19][-1] == "NbOfTechniques"  # the 76-byte prefix older DLLs fill
    assert all(f[1] is ctypes.c_int32 for f in d.TChannelInfos._fields_)


def test_ecc_params_is_12_bytes_with_the_pointer_at_4_under_pack_4():
    assert d.TEccParams.len.offset == 0
    assert d.TEccParams.pParams.offset == 4
    assert ctypes.sizeof(d.TEccParams) == 4 + ctypes.sizeof(ctypes.c_void_p)


def test_start_time_is_a_double_at_offset_28_not_32():
    infos = d.TDataInfos(StartTime=12.5)
    raw = bytes(infos)
    assert ctypes.c_double.from_buffer_copy(raw, 28).value == 12.5


PAIRS = [
    (d.TDeviceInfos, s.DeviceInfos), (d.TChannelInfos, s.ChannelInfos), (d.TCurrentValues, s.CurrentValues),
    (d.TDataInfos, s.DataInfos), (d.TDataBuffer, s.DataBuffer), (d.TEccParam, s.EccParam),
    (d.TEccParams, s.EccParams),
]  # fmt: skip


@pytest.mark.parametrize(("host", "instrument"), PAIRS, ids=lambda x: x.__name__)
def test_driver_and_simulator_structs_are_byte_identical(host, instrument):
    assert ctypes.sizeof(host) == ctypes.sizeof(instrument)
    assert [f[0] for f in host._fields_] == [f[0] for f in instrument._fields_]
    for name, *_ in host._fields_:
        assert getattr(host, name).offset == getattr(instrument, name).offset
        assert getattr(host, name).size == getattr(instrument, name).size


EXPECTED_CODES = {
    0: None, -1: "ERR_GEN_NOTCONNECTED", -3: "ERR_GEN_CHANNELNOTPLUGGED", -4: "ERR_GEN_INVALIDPARAMETERS",
    -7: "ERR_GEN_NOCHANNELSELECTED", -9: "ERR_GEN_ECLAB_LOADED", -13: "ERR_GEN_CHANNEL_RUNNING",
    -15: "ERR_GEN_UPDATEPARAMETERS", -101: "ERR_INSTR_VMEERROR", -105: "ERR_INSTR_MSGSIZEERROR",
    -200: "ERR_COMM_COMMFAILED", -207: "ERR_COMM_MAXCONNREACHED", -300: "ERR_FIRM_FIRMFILENOTEXISTS",
    -308: "ERR_FIRM_FIRMWARENOTLOADED", -309: "ERR_FIRM_FIRMWAREINCOMPATIBLE", -400: "ERR_TECH_ECCFILENOTEXISTS",
    -401: "ERR_TECH_INCOMPATIBLEECC", -405: "ERR_TECH_MEMFULL",
}  # fmt: skip


def test_every_documented_error_code_has_a_name_meaning_and_fix():
    documented = [*range(-1, -16, -1), *range(-101, -106, -1), *range(-200, -208, -1), *range(-300, -310, -1),
                  *range(-400, -406, -1)]  # fmt: skip
    assert sorted(ERROR_TABLE) == sorted(documented)
    for code, name in EXPECTED_CODES.items():
        if name:
            assert ERROR_TABLE[code][0] == name
    assert all(meaning and fix for _, meaning, fix in ERROR_TABLE.values())


def test_error_message_names_call_place_meaning_and_fix():
    error = EClibError(-401, "BL_LoadTechnique", "channel 2 (cplimit.ecc)")
    text = str(error)
    assert text.startswith("BL_LoadTechnique on channel 2 (cplimit.ecc) failed with ERR_TECH_INCOMPATIBLEECC (-401)")
    assert "suffix" in text and error.code == -401
    assert "ERR_UNKNOWN(-999)" in str(EClibError(-999, "BL_Connect"))


def test_loading_a_missing_dll_names_the_path_and_the_setting(tmp_path):
    with pytest.raises(EClibLoadError, match=r"EClib not found at .*nowhere.*'dll_path'"):
        load_eclib(tmp_path / "nowhere" / "EClib64.dll")


def test_a_directory_is_searched_for_the_default_dll_name(tmp_path):
    with pytest.raises(EClibLoadError, match=r"EClib(64)?\.dll"):
        load_eclib(tmp_path)


def test_a_file_that_is_not_a_loadable_dll_gives_a_clear_error(tmp_path):
    fake = tmp_path / "EClib64.dll"
    fake.write_bytes(b"MZ not really a DLL")
    with pytest.raises(EClibLoadError, match=r"cannot be loaded .*same bitness"):
        load_eclib(fake)


def test_declaring_signatures_refuses_a_library_without_the_exports():
    not_eclib = types.SimpleNamespace(BL_Connect=types.SimpleNamespace())
    with pytest.raises(EClibLoadError, match=r"lacks the EClib exports .*BL_GetData"):
        declare_signatures(not_eclib)


def test_declaring_signatures_sets_argtypes_and_restype():
    class Fake:
        pass

    fake = Fake()
    for name in SIGNATURES:
        setattr(fake, name, type("F", (), {})())
    declare_signatures(fake)
    assert fake.BL_LoadTechnique.argtypes[3] is d.TEccParams  # by value
    assert fake.BL_IsChannelPlugged.restype is ctypes.c_bool
    assert fake.BL_GetData.restype is ctypes.c_int32


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_simulator_offers_every_export_with_the_same_arity(name):
    method = getattr(SimulatedEClib, name)
    params = list(inspect.signature(method).parameters)[1:]  # drop self
    assert len(params) == len(SIGNATURES[name][0]), name
