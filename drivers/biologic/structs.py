"""The EClib C structures, laid out exactly as the vendor header declares them.

The header wraps every structure in ``#pragma pack(push, 4)``, so each class sets ``_pack_ = 4``; without it
``TDataInfos.StartTime`` moves to offset 32 and ``TEccParams`` grows to 16 bytes on 64-bit Python, and the DLL
reads garbage. ``TChannelInfos`` is declared with the two trailing fields of the 2013 header (84 bytes): older
DLLs fill only the first 76, newer ones all 84, and a buffer that is too large is harmless while one that is
too small is memory corruption.
"""

from __future__ import annotations

import ctypes

DATA_BUFFER_WORDS = 1000
"""Words in one ``TDataBuffer``; one ``BL_GetData`` call never returns more (NbRows x NbCols <= 1000)."""

PARAM_LABEL_SIZE = 64


class TDeviceInfos(ctypes.Structure):
    _pack_ = 4
    _fields_ = [
        ("DeviceCode", ctypes.c_int32),
        ("RAMSize", ctypes.c_int32),
        ("CPU", ctypes.c_int32),
        ("NumberOfChannels", ctypes.c_int32),
        ("NumberOfSlots", ctypes.c_int32),
        ("FirmwareVersion", ctypes.c_int32),
        ("FirmwareDate_yyyy", ctypes.c_int32),
        ("FirmwareDate_mm", ctypes.c_int32),
        ("FirmwareDate_dd", ctypes.c_int32),
        ("HTdisplayOn", ctypes.c_int32),
        ("NbOfConnectedPC", ctypes.c_int32),
    ]


class TChannelInfos(ctypes.Structure):
    _pack_ = 4
    _fields_ = [
        ("Channel", ctypes.c_int32),
        ("BoardVersion", ctypes.c_int32),
        ("BoardSerialNumber", ctypes.c_int32),
        ("FirmwareCode", ctypes.c_int32),
        ("FirmwareVersion", ctypes.c_int32),
        ("XilinxVersion", ctypes.c_int32),
        ("AmpCode", ctypes.c_int32),
        ("NbAmps", ctypes.c_int32),
        ("Lcboard", ctypes.c_int32),
        ("Zboard", ctypes.c_int32),
        ("MUXboard", ctypes.c_int32),
        ("GPRAboard", ctypes.c_int32),
        ("MemSize", ctypes.c_int32),
        ("MemFilled", ctypes.c_int32),
        ("State", ctypes.c_int32),
        ("MaxIRange", ctypes.c_int32),
        ("MinIRange", ctypes.c_int32),
        ("MaxBandwidth", ctypes.c_int32),
        ("NbOfTechniques", ctypes.c_int32),
        ("FloatFormat", ctypes.c_int32),
        ("CPUCIE", ctypes.c_int32),
    ]


class TCurrentValues(ctypes.Structure):
    _pack_ = 4
    _fields_ = [
        ("State", ctypes.c_int32),
        ("MemFilled", ctypes.c_int32),
        ("TimeBase", ctypes.c_float),
        ("Ewe", ctypes.c_float),
        ("EweRangeMin", ctypes.c_float),
        ("EweRangeMax", ctypes.c_float),
        ("Ece", ctypes.c_float),
        ("EceRangeMin", ctypes.c_float),
        ("EceRangeMax", ctypes.c_float),
        ("Eoverflow", ctypes.c_int32),
        ("I", ctypes.c_float),
        ("IRange", ctypes.c_int32),
        ("Ioverflow", ctypes.c_int32),
        ("ElapsedTime", ctypes.c_float),
        ("Freq", ctypes.c_float),
        ("Rcomp", ctypes.c_float),
        ("Saturation", ctypes.c_int32),
        ("OptErr", ctypes.c_int32),
        ("OptPos", ctypes.c_int32),
    ]


class TDataInfos(ctypes.Structure):
    _pack_ = 4
    _fields_ = [
        ("IRQskipped", ctypes.c_int32),
        ("NbRows", ctypes.c_int32),
        ("NbCols", ctypes.c_int32),
        ("TechniqueIndex", ctypes.c_int32),
        ("TechniqueID", ctypes.c_int32),
        ("ProcessIndex", ctypes.c_int32),
        ("loop", ctypes.c_int32),
        ("StartTime", ctypes.c_double),
        ("MuxPad", ctypes.c_int32),
    ]


class TDataBuffer(ctypes.Structure):
    _pack_ = 4
    _fields_ = [("data", ctypes.c_uint32 * DATA_BUFFER_WORDS)]


class TEccParam(ctypes.Structure):
    _pack_ = 4
    _fields_ = [
        ("ParamStr", ctypes.c_char * PARAM_LABEL_SIZE),
        ("ParamType", ctypes.c_int32),
        ("ParamVal", ctypes.c_int32),
        ("ParamIndex", ctypes.c_int32),
    ]


class TEccParams(ctypes.Structure):
    _pack_ = 4
    _fields_ = [
        ("len", ctypes.c_int32),
        ("pParams", ctypes.POINTER(TEccParam)),
    ]


class THardwareConf(ctypes.Structure):
    _pack_ = 4
    _fields_ = [
        ("Conn", ctypes.c_int32),
        ("Ground", ctypes.c_int32),
    ]


class TTechniqueInfos(ctypes.Structure):
    _pack_ = 4
    _fields_ = [
        ("id", ctypes.c_int32),
        ("indx", ctypes.c_int32),
        ("nbParams", ctypes.c_int32),
        ("nbSettings", ctypes.c_int32),
        ("Params", ctypes.POINTER(TEccParam)),
        ("HardSettings", ctypes.POINTER(TEccParam)),
    ]


class TExperimentInfos(ctypes.Structure):
    _pack_ = 4
    _fields_ = [
        ("Group", ctypes.c_int32),
        ("PCidentifier", ctypes.c_int32),
        ("TimeHMS", ctypes.c_int32),
        ("TimeYMD", ctypes.c_int32),
        ("Filename", ctypes.c_char * 256),
    ]


ALL_STRUCTS = (
    TDeviceInfos,
    TChannelInfos,
    TCurrentValues,
    TDataInfos,
    TDataBuffer,
    TEccParam,
    TEccParams,
    THardwareConf,
    TTechniqueInfos,
    TExperimentInfos,
)
