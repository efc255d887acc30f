"""EClib's numeric codes as named enums: channel states, firmware, boards, devices, ranges and technique IDs.

The numbers are the vendor's (reference sections 2.7-2.12); naming them once here keeps magic numbers out of the
compiler, the decoder and the channel driver.
"""

from __future__ import annotations

from enum import IntEnum


class ChannelProgState(IntEnum):
    STOP = 0
    RUN = 1
    PAUSE = 2
    SYNC = 3


class FirmwareCode(IntEnum):
    NONE = 0
    INTERPR = 1  # EC-Lab's own firmware: the DLL cannot drive the channel
    UNKNOWN = 4
    KERNEL = 5  # the Development Package firmware techniques need
    INVALID = 8
    ECAL = 10
    ECAL4 = 11


class BoardType(IntEnum):
    """``BL_GetChannelBoardType``: selects the ``.ecc`` suffix, the firmware files and the data layout."""

    ESSENTIAL = 1  # VMP3 technology
    PREMIUM = 2  # VMP-300 technology
    DIGICORE = 3


class ParamType(IntEnum):
    INT32 = 0
    BOOLEAN = 1
    SINGLE = 2


class DeviceCode(IntEnum):
    VMP = 0
    VMP2 = 1
    MPG = 2
    BISTAT = 3
    MCS_200 = 4
    VMP3 = 5
    VSP = 6
    HCP_803 = 7
    EPP_400 = 8
    EPP_4000 = 9
    BISTAT2 = 10
    FCT_150S = 11
    VMP_300 = 12
    SP_50 = 13
    SP_150 = 14
    FCT_50S = 15
    SP_300 = 16
    CLB_500 = 17
    HCP_1005 = 18
    CLB_2000 = 19
    VSP_300 = 20
    SP_200 = 21
    MPG2 = 22
    SP_100 = 23
    MOSLED = 24
    KINEXXX = 25
    NIKITA = 26
    SP_240 = 27
    MPG_205 = 28
    MPG_210 = 29
    MPG_220 = 30
    MPG_240 = 31
    BP_300 = 32
    VMP_3E = 33
    VSP_3E = 34
    SP_50E = 35
    SP_150E = 36
    UNKNOWN = 255


VMP3_FAMILY = frozenset(
    {
        DeviceCode.VMP2, DeviceCode.VMP3, DeviceCode.BISTAT, DeviceCode.BISTAT2, DeviceCode.MCS_200,
        DeviceCode.VSP, DeviceCode.SP_50, DeviceCode.SP_150, DeviceCode.FCT_50S, DeviceCode.FCT_150S,
        DeviceCode.CLB_500, DeviceCode.CLB_2000, DeviceCode.HCP_803, DeviceCode.HCP_1005, DeviceCode.MPG2,
        DeviceCode.MPG_205, DeviceCode.MPG_210, DeviceCode.MPG_220, DeviceCode.MPG_240, DeviceCode.VMP_3E,
        DeviceCode.VSP_3E, DeviceCode.SP_50E, DeviceCode.SP_150E,
    }
)  # fmt: skip
VMP300_FAMILY = frozenset(
    {
        DeviceCode.SP_100, DeviceCode.SP_200, DeviceCode.SP_300, DeviceCode.VSP_300, DeviceCode.VMP_300,
        DeviceCode.SP_240, DeviceCode.BP_300,
    }
)  # fmt: skip


class IRange(IntEnum):
    """``I_Range`` codes; for 0..10 the full scale is 10**(code - 10) A."""

    KEEP = -1
    I_100PA = 0
    I_1NA = 1
    I_10NA = 2
    I_100NA = 3
    I_1UA = 4
    I_10UA = 5
    I_100UA = 6
    I_1MA = 7
    I_10MA = 8
    I_100MA = 9
    I_1A = 10
    BOOSTER = 11
    AUTO = 12
    I_10PA = 13
    I_1PA = 14

    @property
    def full_scale(self) -> float | None:
        """Full-scale current in A for the decade ranges, ``None`` for KEEP/BOOSTER/AUTO and the gain ranges."""
        return 10.0 ** (self.value - 10) if 0 <= self.value <= 10 else None


class ERange(IntEnum):
    E_2_5V = 0
    E_5V = 1
    E_10V = 2
    AUTO = 3

    @property
    def full_scale(self) -> float | None:
        return {0: 2.5, 1: 5.0, 2: 10.0}.get(self.value)


class ExitCond(IntEnum):
    NEXT_STEP = 0
    NEXT_TECHNIQUE = 1
    STOP = 2


class TechniqueId(IntEnum):
    """``TDataInfos.TechniqueID``, named as the vendor header's ``TTechniqueIdentifier_e`` names them.

    The header calls 156 and 158 ``GDYNLIMIT`` and ``PDYNLIMIT`` (galvano- and potentiodynamic with limits); the
    files that produce them are ``iscanlimit.ecc`` and ``vscanlimit.ecc``, so ``ISCANLIMIT`` and ``VSCANLIMIT`` stay
    as aliases for the compiler. An alias never changes the name: ``TechniqueId(158).name == "PDYNLIMIT"``.
    """

    NONE = 0
    OCV = 100
    CA = 101
    CP = 102
    CV = 103
    PEIS = 104
    POTPULSE = 105
    GALPULSE = 106
    GEIS = 107
    STACKPEIS_SLAVE = 108
    STACKPEIS = 109
    CPOWER = 110
    CLOAD = 111
    FCT = 112
    SPEIS = 113
    SGEIS = 114
    CPO = 121
    CGA = 122
    COKINE = 123
    PDYN = 124
    GDYN = 125
    CVA = 126
    DPV = 127
    SWV = 128
    NPV = 129
    RNPV = 130
    DNPV = 131
    DPA = 132
    EVT = 133
    LP = 134
    GC = 135
    CPP = 136
    PDP = 137
    PSP = 138
    ZRA = 139
    MIR = 140
    PZIR = 141
    GZIR = 142
    LOOP = 150
    TO = 151
    TI = 152
    TOS = 153
    MUX = 154
    CPLIMIT = 155
    GDYNLIMIT = 156
    CALIMIT = 157
    PDYNLIMIT = 158
    LASV = 159
    MUXLOOP = 160
    MP = 167
    CASG = 169
    CASP = 170
    VASP = 171
    UCVANALOG = 172
    UNIPANEL = 200
    OCVR = 500
    CAR = 501
    CPR = 502
    ISCANLIMIT = 156  # alias of GDYNLIMIT: the technique file is iscanlimit.ecc
    VSCANLIMIT = 158  # alias of PDYNLIMIT: the technique file is vscanlimit.ecc


class FloatFormat(IntEnum):
    """How a channel writes the single-precision words of ``BL_GetData`` (``TChannelInfos.FloatFormat``)."""

    TI = 0  # Texas Instruments DSP (TMS320C3x) 32-bit float
    IEEE = 1  # IEEE-754 binary32


BOARD_FLOAT_FORMAT: dict[BoardType, FloatFormat] = {
    BoardType.ESSENTIAL: FloatFormat.TI,
    BoardType.PREMIUM: FloatFormat.TI,
    BoardType.DIGICORE: FloatFormat.IEEE,
}
"""Measured on the vendor converter (reference section 4): only DIGICORE boards send IEEE-754 words."""

BOARD_ECC_SUFFIX = {BoardType.ESSENTIAL: "", BoardType.PREMIUM: "4", BoardType.DIGICORE: "5"}

FIRMWARE_FILES: dict[BoardType, tuple[str, str | None]] = {
    BoardType.ESSENTIAL: ("kernel.bin", "Vmp_ii_0437_a6.xlx"),
    BoardType.PREMIUM: ("kernel4.bin", "vmp_iv_0395_aa.xlx"),
    # DIGICORE: kernel5.bin, and no FPGA file (``None`` is passed to the DLL as NULL, never as "").
    # The vendor examples name kernel.bin here, but kernel.bin cannot be the DIGICORE kernel:
    # * firmware and technique files come in matched pairs per board, and the firmware refuses an .ecc that does
    #   not match its kernel (ERR_TECH_INCOMPATIBLEECC, -401): kernel.bin pairs with the unsuffixed x.ecc
    #   (ESSENTIAL), kernel4.bin with x4.ecc (PREMIUM). DIGICORE runs x5.ecc, and x5.ecc first shipped in package
    #   6.08 together with kernel5.bin; kernel.bin is the same ~110 kB file that shipped from 5.35 on, before any
    #   package could drive a DIGICORE board (no x5.ecc, no BL_GetChannelBoardType before 6.08).
    # * kernel.bin (~110 kB) and kernel4.bin (~160 kB) run on the two boards that write TI-DSP floats; DIGICORE
    #   boards write IEEE-754 floats, i.e. another processor, and kernel5.bin (4.5 MB) is the one kernel built
    #   for something else.
    # The examples' kernel.bin reads as a line copied from the ESSENTIAL case. A package where this is wrong is
    # fixed without code: set ``kernel_file`` for the instrument (BiologicConfig.kernel_file).
    BoardType.DIGICORE: ("kernel5.bin", None),
}
