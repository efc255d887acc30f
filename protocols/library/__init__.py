"""The shipped protocols (P1-P7 of the reference workload), the cells they were written for, and campaigns that chain
them (campaigns/, with the few protocols of their own they name by relative path under campaigns/protocols/).

Users may name them instead of giving a path: ``station plan li-deposition --cell host-cu-li``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

LIBRARY = Path(__file__).parent
CELLS = LIBRARY / "cells"
CAMPAIGNS = LIBRARY / "campaigns"

#: Each library protocol with the library cell it was written for.
PAIRS = {
    "p1-li-deposition": "host-cu-li",
    "p2-plating-stripping-ce": "host-cu-li",
    "p3-full-cell-cycling": "predeposited-ncm622",
    "p4-anode-free-cycling": "anode-free-ncm622",
    "p5-eis": "host-cu-li",
    "p6-cyclic-voltammetry": "host-cu-li",
    "p7-conductivity": "host-blocking",
    "p8-temperature-cycling": "predeposited-ncm622",
}


def protocol_names() -> list[str]:
    return sorted(p.stem for p in LIBRARY.glob("*.yaml"))


def cell_names() -> list[str]:
    return sorted(p.stem for p in CELLS.glob("*.yaml"))


def campaign_names() -> list[str]:
    return sorted(p.stem for p in CAMPAIGNS.glob("*.yaml"))


def _resolve(name: str, folder: Path) -> str:
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml") or "/" in name or "\\" in name:
        return str(path)
    candidate = folder / f"{name}.yaml"
    return str(candidate) if candidate.exists() else str(path)


def resolve_protocol_path(name: str) -> str:
    return _resolve(name, LIBRARY)


def resolve_cell_path(name: str) -> str:
    return _resolve(name, CELLS)


def resolve_campaign_path(name: str) -> str:
    return _resolve(name, CAMPAIGNS)


def entry_path(name: str) -> Path | None:
    """The library file of a protocol, a cell or a campaign called ``name`` (in that order), or None."""
    for folder in (LIBRARY, CELLS, CAMPAIGNS):
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    return None


def description(path: Path) -> str:
    """The ``description:`` a library file gives itself ("" when it has none): what ``station library`` shows."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return ""
    text = doc.get("description") if isinstance(doc, dict) else None
    return str(text) if text else ""
