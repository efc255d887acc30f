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
    NONE = 0
    OCV = 100
    CA = 101
    CP = 102
    CV = 103
    PEIS = 104
    GEIS = 107
    SPEIS = 113
    SGEIS = 114
    LOOP = 150
    TO = 151
    TI = 152
    TOS = 153
    CPLIMIT = 155
    ISCANLIMIT = 156
    CALIMIT = 157
    VSCANLIMIT = 158


BOARD_ECC_SUFFIX = {BoardType.ESSENTIAL: "", BoardType.PREMIUM: "4", BoardType.DIGICORE: "5"}

FIRMWARE_FILES: dict[BoardType, tuple[str, str]] = {
    BoardType.ESSENTIAL: ("kernel.bin", "Vmp_ii_0437_a6.xlx"),
    BoardType.PREMIUM: ("kernel4.bin", "vmp_iv_0395_aa.xlx"),
    # The vendor examples name kernel.bin and no FPGA file for DIGICORE (reference: unverified, 6.08+ also ships
    # kernel5.bin); the station config can override the pair per instrument.
    BoardType.DIGICORE: ("kernel.bin", ""),
}
