"""Biologic potentiostats through the EC-Lab Development Package (EClib): binding, compiler, decoder, driver.

Layers, bottom up: ``structs`` (the C structures, 4-byte packing) and ``codes``/``errors`` (the vendor's numbers);
``eclib`` (the thin ctypes layer: one method per export, codes -> exceptions); ``params``/``limits`` (technique
labels, types and the limit bit-field); ``compiler`` (step program -> technique list, ranges, capability errors);
``decode`` (``BL_GetData`` words -> SI arrays); ``records`` (chunks -> station records); ``channel`` (the station's
``ChannelDriver``). The simulated EClib in ``simulators.biologic`` implements the instrument's side of the same
boundary from the same reference facts, without importing any of this.

Where the reference is disputed or silent, the choice made here (each is a setting or a single constant):

* ``TChannelInfos`` is declared at 84 bytes (the 2013 header); DLLs that fill 76 leave the tail zero.
* ``Scan_Rate`` unit: V/s by default (easy-biologic's hardware-tested choice); ``BiologicConfig.scan_rate_unit``.
* Impedance phase unit: radians by default; ``BiologicConfig.phase_unit`` ("deg" for the other reading).
* Time: ``StartTime + TimeBase * ticks``; process-1 rows: ``StartTime + t``; NaN ``StartTime`` reads as 0.
* Firmware: kernel.bin + Vmp_ii_0437_a6.xlx (ESSENTIAL), kernel4.bin + vmp_iv_0395_aa.xlx (PREMIUM), kernel.bin
  and no FPGA file (DIGICORE, as the vendor examples); ``kernel_file``/``fpga_file`` override them.
* ``TDataInfos.loop`` is read as "loop jumps since the start" to place a re-attached run on the program's path.
Check these on the installed package and instrument (reference section 8) before trusting a new installation.
"""

from drivers.biologic.channel import BiologicChannel, BiologicConfig
from drivers.biologic.compiler import ChannelCapabilities, compile_program
from drivers.biologic.eclib import EClib, load_eclib
from drivers.biologic.errors import EClibError, EClibLoadError

__all__ = [
    "BiologicChannel",
    "BiologicConfig",
    "ChannelCapabilities",
    "EClib",
    "EClibError",
    "EClibLoadError",
    "compile_program",
    "load_eclib",
]
