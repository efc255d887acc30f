"""EClib's signed return codes as exceptions that say what went wrong and what the user can do about it.

The DLL only returns a number; users of the public wrappers keep hitting ``KeyError: -7`` because tables were
incomplete. Every code in the header is here with a meaning and a fix, and an unknown code still gives a readable
error rather than a crash in the error path.
"""

from __future__ import annotations

from drivers.base import DriverError

_POWER_CYCLE = "power-cycle the instrument (or reload the kernel firmware with force_reload) and retry"

ERROR_TABLE: dict[int, tuple[str, str, str]] = {
    -1: ("ERR_GEN_NOTCONNECTED", "no instrument is connected", "call connect() first and check the address"),
    -2: ("ERR_GEN_CONNECTIONINPROGRESS", "a connection is already being set up", "wait for it to finish, then retry"),
    -3: ("ERR_GEN_CHANNELNOTPLUGGED", "the selected channel is not plugged in",
         "check the channel number (0-based in the DLL) against the instrument's fitted boards"),
    -4: ("ERR_GEN_INVALIDPARAMETERS", "the instrument refused the parameters",
         "check the technique's parameter values and array sizes (CA/CP take at most 99 steps)"),
    -5: ("ERR_GEN_FILENOTEXISTS", "a file the DLL needs does not exist",
         "check the Development Package folder configured for this instrument"),
    -6: ("ERR_GEN_FUNCTIONFAILED", "the instrument reported that the function failed",
         "check that the kernel firmware and the technique file match the board type"),
    -7: ("ERR_GEN_NOCHANNELSELECTED", "no channel was selected", "pass at least one valid channel"),
    -8: ("ERR_GEN_INVALIDCONF", "the hardware configuration is invalid", "check the SP-300 connection/ground mode"),
    -9: ("ERR_GEN_ECLAB_LOADED", "EC-Lab's firmware is loaded on the instrument",
         "close EC-Lab and " + _POWER_CYCLE),
    -10: ("ERR_GEN_LIBNOTCORRECTLYLOADED", "the EClib library is not correctly loaded",
          "reinstall the Development Package and check the DLL's bitness matches Python"),
    -11: ("ERR_GEN_USBLIBRARYERROR", "the USB library failed", "reinstall the BioLogic USB driver or use Ethernet"),
    -12: ("ERR_GEN_FUNCTIONINPROGRESS", "another call is still in progress on this instrument",
          "serialise DLL calls through one thread and retry"),
    -13: ("ERR_GEN_CHANNEL_RUNNING", "the channel is already running an experiment",
          "stop the channel first or choose another one"),
    -14: ("ERR_GEN_DEVICE_NOTALLOWED", "this device is not allowed with this library", "use a supported instrument"),
    -15: ("ERR_GEN_UPDATEPARAMETERS", "invalid parameters for a live parameter update",
          "check the technique index and parameter labels of the update"),
    -101: ("ERR_INSTR_VMEERROR", "internal instrument bus error", _POWER_CYCLE),
    -102: ("ERR_INSTR_TOOMANYDATA", "too many data requested", "read data more often with smaller requests"),
    -103: ("ERR_INSTR_RESPNOTPOSSIBLE", "the channel is unplugged or its firmware does not allow this",
           "check the channel and load the kernel firmware"),
    -104: ("ERR_INSTR_RESPERROR", "the instrument answered with an error", "retry; if it persists, " + _POWER_CYCLE),
    -105: ("ERR_INSTR_MSGSIZEERROR", "a message to the instrument had the wrong size",
           "check the DLL version matches the firmware"),
    -200: ("ERR_COMM_COMMFAILED", "communication with the instrument failed", "check the cable or network link"),
    -201: ("ERR_COMM_CONNECTIONFAILED", "the connection to the instrument failed",
           "check the address; over USB try Ethernet, as USB links are known to be unreliable"),
    -202: ("ERR_COMM_WAITINGACK", "the instrument did not acknowledge", "check the link and retry"),
    -203: ("ERR_COMM_INVALIDIPADDRESS", "the IP address is invalid", "give an address like 192.168.0.10 or USB0"),
    -204: ("ERR_COMM_ALLOCMEMFAILED", "the instrument could not allocate memory for the request",
           "retry; if it persists, " + _POWER_CYCLE),
    -205: ("ERR_COMM_LOADFIRMWAREFAILED", "loading the firmware failed", _POWER_CYCLE),
    -206: ("ERR_COMM_INCOMPATIBLESERVER", "the instrument's communication firmware is incompatible with this DLL",
           "upgrade the instrument firmware or use the matching Development Package"),
    -207: ("ERR_COMM_MAXCONNREACHED", "the instrument has reached its maximum number of connections",
           "disconnect other PCs or programs from the instrument"),
    -300: ("ERR_FIRM_FIRMFILENOTEXISTS", "the kernel firmware file does not exist",
           "check the firmware folder configured for this instrument (kernel.bin / kernel4.bin / kernel5.bin)"),
    -301: ("ERR_FIRM_FIRMFILEACCESSFAILED", "the kernel firmware file cannot be read", "check the file's permissions"),
    -302: ("ERR_FIRM_FIRMINVALIDFILE", "the kernel firmware file is invalid",
           "use the firmware file for this board type from the same Development Package"),
    -303: ("ERR_FIRM_FIRMLOADINGFAILED", "loading the kernel firmware failed", _POWER_CYCLE),
    -304: ("ERR_FIRM_XILFILENOTEXISTS", "the FPGA (.xlx) file does not exist",
           "check the firmware folder configured for this instrument"),
    -305: ("ERR_FIRM_XILFILEACCESSFAILED", "the FPGA (.xlx) file cannot be read", "check the file's permissions"),
    -306: ("ERR_FIRM_XILINVALIDFILE", "the FPGA (.xlx) file is invalid",
           "use the FPGA file for this board type from the same Development Package"),
    -307: ("ERR_FIRM_XILLOADINGFAILED", "loading the FPGA file failed", _POWER_CYCLE),
    -308: ("ERR_FIRM_FIRMWARENOTLOADED", "the kernel firmware is not loaded on the channel",
           "load the firmware (connect with load_firmware=True) before loading techniques"),
    -309: ("ERR_FIRM_FIRMWAREINCOMPATIBLE", "the firmware on the channel is incompatible",
           "load the kernel firmware for this board type; if EC-Lab was used, " + _POWER_CYCLE),
    -400: ("ERR_TECH_ECCFILENOTEXISTS", "the technique (.ecc) file does not exist",
           "check the technique folder configured for this instrument"),
    -401: ("ERR_TECH_INCOMPATIBLEECC", "the technique file does not match the channel's firmware or board",
           "use the .ecc file with the suffix for this board type ('', '4' or '5'); if EC-Lab was used, "
           + _POWER_CYCLE),
    -402: ("ERR_TECH_ECCFILECORRUPTED", "the technique file is corrupted", "reinstall the Development Package"),
    -403: ("ERR_TECH_LOADTECHNIQUEFAILED", "loading the technique failed",
           "stop the channel, then load the whole technique list again"),
    -404: ("ERR_TECH_DATACORRUPTED", "the data read from the channel are corrupted", "retry the read"),
    -405: ("ERR_TECH_MEMFULL", "the channel's technique memory is full: the technique list does not fit",
           "load fewer techniques (split the protocol into shorter runs, or fewer steps per loop)"),
}  # fmt: skip


class EClibError(DriverError):
    """A negative EClib return code, with the call it came from, its meaning and a fix."""

    def __init__(self, code: int, function: str, where: str = ""):
        self.code = code
        self.function = function
        name, meaning, fix = ERROR_TABLE.get(code, (f"ERR_UNKNOWN({code})", "an undocumented error code", "retry"))
        self.name = name
        place = f" on {where}" if where else ""
        super().__init__(f"{function}{place} failed with {name} ({code}): {meaning}; {fix}")


class EClibLoadError(DriverError):
    """The EClib DLL could not be loaded from the configured path."""
