"""The texts ``BL_GetErrorMsg`` returns, one per EClib error code (reference section 2.5).

The instrument side's own table: a client that shows the DLL's message to its user sees the code's meaning, not
a number, exactly as with the vendor library.
"""

from __future__ import annotations

ERROR_TEXT: dict[int, str] = {
    0: "No error",
    -1: "No instrument connected",
    -2: "Connection in progress",
    -3: "Selected channel(s) unplugged",
    -4: "Invalid function parameters",
    -5: "Selected file does not exist",
    -6: "Function failed",
    -7: "No channel selected",
    -8: "Invalid instrument configuration",
    -9: "EC-Lab firmware loaded on the instrument",
    -10: "Library not correctly loaded in memory",
    -11: "USB library not correctly loaded in memory",
    -12: "Function already in progress",
    -13: "Selected channel(s) already in use",
    -14: "Device not allowed",
    -15: "Invalid update-function parameters",
    -101: "Internal instrument communication failed",
    -102: "Too many data to transfer from the instrument",
    -103: "Channel unplugged or firmware not allowed (instrument error)",
    -104: "Instrument response error",
    -105: "Invalid message size",
    -200: "Communication with the instrument failed",
    -201: "Cannot establish a connection with the instrument",
    -202: "Waiting for the instrument's acknowledgement",
    -203: "Invalid IP address",
    -204: "Cannot allocate memory in the instrument",
    -205: "Cannot load the firmware on the selected channel(s)",
    -206: "Communication firmware not compatible with the library",
    -207: "Maximum number of connections reached",
    -300: "Cannot find the kernel firmware file",
    -301: "Cannot read the kernel firmware file",
    -302: "Invalid kernel firmware file",
    -303: "Cannot load the kernel firmware on the selected channel(s)",
    -304: "Cannot find the FPGA file",
    -305: "Cannot read the FPGA file",
    -306: "Invalid FPGA file",
    -307: "Cannot load the FPGA file on the selected channel(s)",
    -308: "No firmware loaded on the selected channel(s)",
    -309: "Loaded firmware not compatible with the library",
    -400: "Cannot find the technique (.ecc) file",
    -401: "Technique file not compatible with the channel firmware",
    -402: "Technique file corrupted",
    -403: "Cannot load the technique",
    -404: "Data returned by the instrument are corrupted",
    -405: "Cannot load techniques: instrument memory full",
}


def error_text(code: int) -> str:
    return ERROR_TEXT.get(int(code), f"Unknown error {int(code)}")
