"""A simulated Neware BTS Client (API mode) on loopback, executing uploaded step files on cell models."""

from simulators.neware.faults import Fault, FaultPlan
from simulators.neware.server import BtsSimulator, make_clock, serve
from simulators.neware.stepfile import DeviceRanges, NativePlan, StepFileError, parse_step_file

__all__ = [
    "BtsSimulator",
    "DeviceRanges",
    "Fault",
    "FaultPlan",
    "NativePlan",
    "StepFileError",
    "make_clock",
    "parse_step_file",
    "serve",
]
