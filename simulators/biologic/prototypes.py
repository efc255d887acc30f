"""The C prototypes of the EClib (and blfind) exports, from the vendor header ``BLFunctions.h`` (reference 2.1-2.3).

These are the callee's side of each call: the simulated library builds its function pointers from them, so a
client's arguments cross a real C boundary and arrive as the DLL would see them. ``const char*`` inputs are
``c_char_p``; ``char*`` buffers the DLL writes into are ``POINTER(c_char)`` (an address, not a copy); structures
passed by value (``TEccParams``, ``THardwareConf``, ``TExperimentInfos``) are the structures themselves.

``BL_UpdateParameters`` takes ``TEccParams`` by value, as the header and the Delphi unit declare it (kbio declares a
pointer, which is the same thing only under the Windows x64 convention; reference 2.1 item 13).
``BL_GetChannelFloatFormat`` and ``BL_GetFPGAVer`` are in the DLL's export list but not in the 2013 header; their
prototypes, ``(int ID, uint8 ch, int* format)`` and ``(int ID, uint8 ch, uint32* version)``, follow the export list
in the reference's battery-tester source.
"""

from __future__ import annotations

import ctypes
from typing import Any

from simulators.biologic.structs import (
    ChannelInfos,
    CurrentValues,
    DataBuffer,
    DataInfos,
    DeviceInfos,
    EccParam,
    EccParams,
    ExperimentInfos,
    HardwareConf,
    TechniqueInfos,
)

_i32, _u32, _u8, _bool = ctypes.c_int32, ctypes.c_uint32, ctypes.c_uint8, ctypes.c_bool
_f32, _f64 = ctypes.c_float, ctypes.c_double
_P = ctypes.POINTER
IN_TEXT = ctypes.c_char_p
"""``const char*``: the callee receives the string's bytes."""
OUT_TEXT = _P(ctypes.c_char)
"""``char*`` a function writes into: the callee receives the address."""

Prototype = tuple[Any, tuple[Any, ...]]

PROTOTYPES: dict[str, Prototype] = {
    # general
    "BL_GetLibVersion": (_i32, (OUT_TEXT, _P(_u32))),
    "BL_GetVolumeSerialNumber": (_u32, ()),
    "BL_GetErrorMsg": (_i32, (_i32, OUT_TEXT, _P(_u32))),
    # communication
    "BL_Connect": (_i32, (IN_TEXT, _u8, _P(_i32), _P(DeviceInfos))),
    "BL_Disconnect": (_i32, (_i32,)),
    "BL_TestConnection": (_i32, (_i32,)),
    "BL_TestCommSpeed": (_i32, (_i32, _u8, _P(_i32), _P(_i32))),
    "BL_GetUSBdeviceinfos": (_bool, (_u32, OUT_TEXT, _P(_u32), OUT_TEXT, _P(_u32), OUT_TEXT, _P(_u32))),
    "BL_IsVMP4Device": (_bool, (_i32,)),
    # firmware
    "BL_LoadFirmware": (_i32, (_i32, _P(_u8), _P(_i32), _u8, _bool, _bool, IN_TEXT, IN_TEXT)),
    "BL_LoadFlash": (_i32, (_i32, IN_TEXT, _bool)),
    # channel information and configuration
    "BL_IsChannelPlugged": (_bool, (_i32, _u8)),
    "BL_GetChannelsPlugged": (_i32, (_i32, _P(_u8), _u8)),
    "BL_GetChannelInfos": (_i32, (_i32, _u8, _P(ChannelInfos))),
    "BL_GetMessage": (_i32, (_i32, _u8, OUT_TEXT, _P(_u32))),
    "BL_GetHardConf": (_i32, (_i32, _u8, _P(HardwareConf))),
    "BL_SetHardConf": (_i32, (_i32, _u8, HardwareConf)),
    "BL_GetChannelBoardType": (_i32, (_i32, _u8, _P(_u32))),
    "BL_GetChannelFloatFormat": (_i32, (_i32, _u8, _P(_i32))),
    "BL_GetFPGAVer": (_i32, (_i32, _u8, _P(_u32))),
    "BL_GetOptErr": (_i32, (_i32, _u8, _P(_i32), _P(_i32))),
    # techniques
    "BL_LoadTechnique": (_i32, (_i32, _u8, IN_TEXT, EccParams, _bool, _bool, _bool)),
    "BL_DefineBoolParameter": (_i32, (IN_TEXT, _bool, _i32, _P(EccParam))),
    "BL_DefineSglParameter": (_i32, (IN_TEXT, _f32, _i32, _P(EccParam))),
    "BL_DefineIntParameter": (_i32, (IN_TEXT, _i32, _i32, _P(EccParam))),
    "BL_UpdateParameters": (_i32, (_i32, _u8, _i32, EccParams, IN_TEXT)),
    "BL_GetTechniqueInfos": (_i32, (_i32, _u8, _i32, _P(TechniqueInfos))),
    "BL_GetParamInfos": (_i32, (_i32, _u8, _i32, _P(TechniqueInfos))),
    # start and stop
    "BL_StartChannel": (_i32, (_i32, _u8)),
    "BL_StartChannels": (_i32, (_i32, _P(_u8), _P(_i32), _u8)),
    "BL_StopChannel": (_i32, (_i32, _u8)),
    "BL_StopChannels": (_i32, (_i32, _P(_u8), _P(_i32), _u8)),
    # data
    "BL_GetCurrentValues": (_i32, (_i32, _u8, _P(CurrentValues))),
    "BL_GetData": (_i32, (_i32, _u8, _P(DataBuffer), _P(DataInfos), _P(CurrentValues))),
    "BL_ConvertNumericIntoSingle": (_i32, (_u32, _P(_f32))),
    "BL_ConvertNumericIntoFloat": (_i32, (_u32, _P(_f64))),
    "BL_ConvertChannelNumericIntoSingle": (_i32, (_u32, _P(_f32), _u32)),
    "BL_ConvertTimeChannelNumericIntoSeconds": (_i32, (_P(_u32), _P(_f64), _f32, _u32)),
    # miscellaneous
    "BL_SetExperimentInfos": (_i32, (_i32, _u8, ExperimentInfos)),
    "BL_GetExperimentInfos": (_i32, (_i32, _u8, _P(ExperimentInfos))),
    # blfind64.dll
    "BL_FindEChemDev": (_i32, (OUT_TEXT, _P(_u32), _P(_u32))),
    "BL_FindEChemEthDev": (_i32, (OUT_TEXT, _P(_u32), _P(_u32))),
    "BL_FindEChemUsbDev": (_i32, (OUT_TEXT, _P(_u32), _P(_u32))),
    "BL_SetConfig": (_i32, (IN_TEXT, IN_TEXT)),
}
