"""This program's version, as installed: what exports, the lab's station list and reports say wrote them."""

from __future__ import annotations

from importlib import metadata


def software_version() -> str | None:
    """The installed battery-test-station's version; None when running from a tree that is not installed."""
    try:
        return metadata.version("battery-test-station")
    except metadata.PackageNotFoundError:
        return None
