"""Neware-specific failures, each one line naming the server or channel and what to do about it."""

from __future__ import annotations

from drivers.base import DriverError


class NewareError(DriverError):
    """Base of the Neware driver's errors."""


class NewareProtocolError(NewareError):
    """A reply that is not the BTS XML we expect (garbled, truncated or from a different program)."""


class CommandRefused(NewareError):
    """The BTS answered ``false`` for a channel (e.g. start on a busy channel, stop on a finished one)."""


class AddressError(NewareError, ValueError):
    """A channel id that does not follow the ``devid-subdevid-chlid`` form."""
