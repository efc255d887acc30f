"""Biologic potentiostats through the EC-Lab Development Package (EClib): binding, compiler, decoder, driver.

Layers, bottom up: ``structs`` (the C structures, 4-byte packing) and ``codes``/``errors`` (the vendor's numbers);
``eclib`` (the thin ctypes layer: one method per export, codes -> exceptions); ``params``/``limits`` (technique
labels, types and the limit bit-field); ``scan_rate`` (the ``Scan_Rate`` unit setting); ``compiler`` (step program
-> technique list, ranges, capability errors); ``numbers`` (TI-DSP / IEEE floats and the tick words, per board
type) and ``decode`` (``BL_GetData`` words -> SI arrays); ``records`` (chunks -> station records); ``channel`` (the
station's ``ChannelDriver``). The simulated EClib in ``simulators.biologic`` implements the instrument's side of
the same boundary from the same reference facts, without importing any of this.

Where the reference is disputed or silent, the choice made here (each is a setting or a single constant):

* ``TChannelInfos`` is declared at 84 bytes (the 2013 header); a DLL that fills 76 leaves ``FloatFormat`` and
  ``CPUCIE`` at the -1 they are given before the call, read as "not reported".
* ``Scan_Rate`` unit: V/s by default (easy-biologic's hardware-tested choice, and the slow side if wrong);
  ``BiologicConfig.scan_rate_unit``, set per instrument or channel in station.yaml (``drivers.biologic.scan_rate``).
* Data words: TI-DSP floats on ESSENTIAL and PREMIUM boards, IEEE-754 on DIGICORE (measured on the vendor DLL); a
  channel whose reported ``FloatFormat`` disagrees with its board type is refused at connect.
* Impedance phase unit: radians by default; ``BiologicConfig.phase_unit`` ("deg" for the other reading).
* Time: ``StartTime + TimeBase * ticks``; process-1 rows: ``StartTime + t``; NaN ``StartTime`` reads as 0.
* Firmware: kernel.bin + Vmp_ii_0437_a6.xlx (ESSENTIAL), kernel4.bin + vmp_iv_0395_aa.xlx (PREMIUM), kernel5.bin
  and no FPGA file, passed as NULL (DIGICORE; why not the examples' kernel.bin: ``codes.FIRMWARE_FILES``);
  ``kernel_file``/``fpga_file`` override them.
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
