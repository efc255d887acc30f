"""A simulated Neware BTS Client (API mode) on loopback, executing uploaded step files on cell models."""

from simulators.neware.api import BtsApi
from simulators.neware.faults import Fault, FaultPlan
from simulators.neware.server import BtsSimulator, make_clock, serve
from simulators.neware.stepfile import DeviceRanges, NativePlan, StepFileError, parse_step_file
from simulators.neware.stepping import Measurement

__all__ = [
    "BtsApi",
    "BtsSimulator",
    "DeviceRanges",
    "Fault",
    "FaultPlan",
    "Measurement",
    "NativePlan",
    "StepFileError",
    "make_clock",
    "parse_step_file",
    "serve",
]
