"""Struct layouts, export signatures, error codes and technique IDs against the vendor header facts (reference 2)."""

from __future__ import annotations

import ctypes
import types

import pytest

from drivers.biologic import structs as d
from drivers.biologic.codes import TechniqueId
from drivers.biologic.eclib import OPTIONAL_EXPORTS, SIGNATURES, declare_signatures, load_eclib
from drivers.biologic.errors import ERROR_TABLE, EClibError, EClibLoadError

I32, F32, F64, U32 = ctypes.c_int32, ctypes.c_float, ctypes.c_double, ctypes.c_uint32
PTR = ctypes.sizeof(ctypes.c_void_p)


def int32s(*names: str) -> list[tuple[str, object]]:
    return [(name, I32) for name in names]


# Every field of every structure, in header order, with its C type, from reference section 2.4 (pack 4).
HEADER = {
    d.TDeviceInfos: (44, int32s("DeviceCode", "RAMSize", "CPU", "NumberOfChannels", "NumberOfSlots",
                                "FirmwareVersion", "FirmwareDate_yyyy", "FirmwareDate_mm", "FirmwareDate_dd",
                                "HTdisplayOn", "NbOfConnectedPC")),
    d.TChannelInfos: (84, int32s("Channel", "BoardVersion", "BoardSerialNumber", "FirmwareCode", "FirmwareVersion",
                                 "XilinxVersion", "AmpCode", "NbAmps", "Lcboard", "Zboard", "MUXboard", "GPRAboard",
                                 "MemSize", "MemFilled", "State", "MaxIRange", "MinIRange", "MaxBandwidth",
                                 "NbOfTechniques", "FloatFormat", "CPUCIE")),
    d.TCurrentValues: (76, [("State", I32), ("MemFilled", I32), ("TimeBase", F32), ("Ewe", F32),
                            ("EweRangeMin", F32), ("EweRangeMax", F32), ("Ece", F32), ("EceRangeMin", F32),
                            ("EceRangeMax", F32), ("Eoverflow", I32), ("I", F32), ("IRange", I32),
                            ("Ioverflow", I32), ("ElapsedTime", F32), ("Freq", F32), ("Rcomp", F32),
                            ("Saturation", I32), ("OptErr", I32), ("OptPos", I32)]),
    d.TDataInfos: (40, [*int32s("IRQskipped", "NbRows", "NbCols", "TechniqueIndex", "TechniqueID", "ProcessIndex",
                                "loop"), ("StartTime", F64), ("MuxPad", I32)]),
    d.TDataBuffer: (4000, [("data", U32 * 1000)]),
    d.TEccParam: (76, [("ParamStr", ctypes.c_char * 64), *int32s("ParamType", "ParamVal", "ParamIndex")]),
    d.TEccParams: (4 + PTR, [("len", I32), ("pParams", ctypes.POINTER(d.TEccParam))]),
    d.THardwareConf: (8, int32s("Conn", "Ground")),
    d.TTechniqueInfos: (16 + 2 * PTR, [*int32s("id", "indx", "nbParams", "nbSettings"),
                                       ("Params", ctypes.POINTER(d.TEccParam)),
                                       ("HardSettings", ctypes.POINTER(d.TEccParam))]),
    d.TExperimentInfos: (272, [*int32s("Group", "PCidentifier", "TimeHMS", "TimeYMD"),
                               ("Filename", ctypes.c_char * 256)]),
}  # fmt: skip


def packed_offsets(fields):
    """Offsets under ``#pragma pack(4)``: each field at its natural alignment, capped at 4."""
    offset, out = 0, []
    for _, ctype in fields:
        align = min(4, ctypes.alignment(ctype))
        offset = (offset + align - 1) // align * align
        out.append(offset)
        offset += ctypes.sizeof(ctype)
    return out, offset


@pytest.mark.parametrize("struct", list(HEADER), ids=lambda s: s.__name__)
def test_every_field_type_offset_size_and_alignment_follows_the_header(struct):
    size, fields = HEADER[struct]
    assert [name for name, _ in struct._fields_] == [name for name, _ in fields]
    for (name, declared), (_, expected) in zip(struct._fields_, fields, strict=True):
        assert declared is expected, name  # ctypes caches array and pointer types, so identity compares them
    offsets, end = packed_offsets(fields)
    assert [getattr(struct, name).offset for name, _ in fields] == offsets
    assert ctypes.sizeof(struct) == size == (end + 3) // 4 * 4
    assert ctypes.alignment(struct) == 4  # pack(4): never 8, even with a double or a pointer inside
    assert struct._pack_ == 4
    assert struct in d.ALL_STRUCTS


def test_every_struct_of_the_module_is_checked():
    assert set(d.ALL_STRUCTS) == set(HEADER)


# (struct, size, {field: offset}) spelled out from reference section 2.4 (4-byte packing)
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
    (d.TTechniqueInfos, 16 + 2 * PTR, {"id": 0, "indx": 4, "nbParams": 8, "nbSettings": 12, "Params": 16,
                                       "HardSettings": 16 + PTR}),
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


def test_loading_a_missing_dll_names_the_path_and_what_to_give(tmp_path):
    # the driver names the file and the package; the station.yaml key is the station's to name
    with pytest.raises(EClibLoadError, match=r"EClib not found at .*nowhere.*EClib(64)?\.dll of the EC-Lab") as info:
        load_eclib(tmp_path / "nowhere" / "EClib64.dll")
    assert "station.yaml" not in str(info.value)


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


_u8, _i32, _u32, _bool, _f32, _char_p, _P = (
    ctypes.c_uint8, ctypes.c_int32, ctypes.c_uint32, ctypes.c_bool, ctypes.c_float, ctypes.c_char_p, ctypes.POINTER,
)  # fmt: skip
HEADER_SIGNATURES = {  # reference section 2.1: argument types in order, then the return type
    "BL_Connect": ((_char_p, _u8, _P(_i32), _P(d.TDeviceInfos)), _i32),
    "BL_GetChannelsPlugged": ((_i32, _P(_u8), _u8), _i32),
    "BL_IsChannelPlugged": ((_i32, _u8), _bool),
    "BL_GetChannelBoardType": ((_i32, _u8, _P(_u32)), _i32),
    "BL_LoadFirmware": ((_i32, _P(_u8), _P(_i32), _u8, _bool, _bool, _char_p, _char_p), _i32),
    "BL_GetChannelInfos": ((_i32, _u8, _P(d.TChannelInfos)), _i32),
    "BL_DefineSglParameter": ((_char_p, _f32, _i32, _P(d.TEccParam)), _i32),
    "BL_LoadTechnique": ((_i32, _u8, _char_p, d.TEccParams, _bool, _bool, _bool), _i32),
    "BL_GetData": ((_i32, _u8, _P(d.TDataBuffer), _P(d.TDataInfos), _P(d.TCurrentValues)), _i32),
    "BL_GetMessage": ((_i32, _u8, _char_p, _P(_u32)), _i32),
}


@pytest.mark.parametrize("name", sorted(HEADER_SIGNATURES))
def test_export_signatures_follow_the_header(name):
    assert SIGNATURES[name] == HEADER_SIGNATURES[name]


def test_the_memory_errors_say_where_the_memory_is():
    _, meaning, fix = ERROR_TABLE[-204]
    assert "instrument" in meaning and "memory" in meaning and "PC" not in fix
    _, meaning, fix = ERROR_TABLE[-405]
    assert "technique memory is full" in meaning and "fewer techniques" in fix


def test_technique_ids_156_and_158_carry_the_header_names():
    assert TechniqueId(156).name == "GDYNLIMIT" and TechniqueId(158).name == "PDYNLIMIT"
    assert TechniqueId.ISCANLIMIT is TechniqueId.GDYNLIMIT and TechniqueId.VSCANLIMIT is TechniqueId.PDYNLIMIT
    assert {TechniqueId(155).name, TechniqueId(157).name} == {"CPLIMIT", "CALIMIT"}


def test_the_board_type_export_is_optional_for_older_packages():
    assert "BL_GetChannelBoardType" in OPTIONAL_EXPORTS  # absent from the 5.35, 6.01 and 6.04 DLLs
