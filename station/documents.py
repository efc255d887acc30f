"""Runs, samples and events as the JSON documents every output gives them in: `--json` on the CLI and the API.

One shape everywhere, so that a script written against `station runs --json` reads the API's `/runs` unchanged.
Times are ISO 8601 UTC; quantities are SI floats.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from station.store import EventRow, RunRow, SampleRow


def iso_utc(unix: float | None) -> str | None:
    """A stored Unix time as ISO 8601 UTC, the form every JSON output gives times in."""
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_doc(row: RunRow, now: float) -> dict[str, Any]:
    return {"run_id": row.id, "state": str(row.state), "channel": row.channel, "station": row.station,
            "kind": row.instrument.get("kind"), "protocol": row.protocol_name,
            "cell": row.cell.get("name"), "records": row.last_seq, "dry_run": row.dry_run,
            "sample": row.sample_id, "created_at": iso_utc(row.created_at), "started_at": iso_utc(row.started_at),
            "updated_at": iso_utc(row.updated_at),
            "duration_s": None if row.started_at is None else (row.updated_at if not row.active else now)
            - row.started_at,
            "end_reason": None if row.active else row.message,
            "message": row.message,
            "stop_pending": row.stop_requested is not None, "contact_lost_s":
                None if row.contact_lost_at is None else max(0.0, now - row.contact_lost_at)}


def sample_doc(row: SampleRow) -> dict[str, Any]:
    return {"sample_id": row.id, "name": row.name, "created_at": iso_utc(row.created_at),
            "cell": row.cell.get("name"), "cell_file": row.cell_file, "operator": row.operator, "notes": row.notes,
            "metadata": row.metadata}


def event_doc(e: EventRow) -> dict[str, Any]:
    return {"id": e.id, "run_id": e.run_id, "at": iso_utc(e.at), "test_time_s": e.test_time, "kind": e.kind,
            "message": e.message}
