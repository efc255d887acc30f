"""Neware BTS cycler through the BTS Client's TCP/XML API (see README.md in this package for the decisions)."""

from drivers.neware.address import ChannelAddress
from drivers.neware.channel import NewareChannel, open_client, poll_statuses
from drivers.neware.client import BackupSettings, BtsClient, StartItem
from drivers.neware.errors import AddressError, CommandRefused, NewareError, NewareProtocolError
from drivers.neware.stepfile import CompiledStepFile, CompileOptions, check_program, compile_program

__all__ = [
    "AddressError",
    "BackupSettings",
    "BtsClient",
    "ChannelAddress",
    "CommandRefused",
    "CompileOptions",
    "CompiledStepFile",
    "NewareChannel",
    "NewareError",
    "NewareProtocolError",
    "StartItem",
    "check_program",
    "compile_program",
    "open_client",
    "poll_statuses",
]
