"""Forwarding one station's own store into the lab's database: in order, exactly once, resumable.

A station's data directory store (SQLite) holds its runs whole; forwarding copies what the lab's database does not
have yet. It is what `station db copy --from DATA_DIR --to postgresql://...` does once, and what a station that
kept writing locally while the lab's database was away does when it returns.

Exactly once, and resumable after a kill at any moment, without a two-database transaction:

* rows with an identity of their own (samples, campaigns, runs) are upserted by id, so forwarding one twice
  changes nothing;
* append-only rows numbered per store (run events, campaign events) go in id order, and how far each station's
  have gone (``forwarded``) moves in the same central transaction as the rows it counts;
* campaign steps (changed after they are written) are upserted by their origin, ``STATION:LOCAL_ID``;
* record blocks go by run and sequence number: only blocks after the last record the lab's database holds for the
  run, with the run's ``last_seq`` moved in the same transaction, so its readers never count a record that is not
  there.

Every run, event and block keeps its order. A run forwarded for a station belongs to that station (runs stored
before stations had names get the name given).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from station.store.records import read_block
from station.store.rows import StoreError
from station.store.store import Store

#: record bytes per central transaction: big enough for COPY to stream, small enough that a killed copy redoes
#: little (about 330k records)
BATCH_BYTES = 32 * 1024 * 1024

_SAMPLE = ("id", "name", "created_at", "cell", "cell_file", "operator", "notes", "metadata")
_CAMPAIGN = ("id", "name", "sample_id", "created_at", "updated_at", "state", "source_file", "source_text", "plan",
             "stage", "location", "waiting", "pending", "confirm_requested", "stop_requested", "started_by",
             "confirmed_by", "message")
_RUN = ("id", "created_at", "updated_at", "state", "channel", "instrument", "protocol_name", "protocol_file",
        "protocol_source", "parameters", "program", "cell", "handle", "dry_run", "message", "stop_requested",
        "contact_lost_at", "started_at", "sample_id", "campaign_id", "campaign_stage", "station")
_STEP = ("campaign_id", "stage", "stage_name", "role", "chunk", "first_cycle", "parameters", "channel", "run_id",
         "created_at", "ended_at", "outcome", "message", "cycles")


@dataclass
class Forwarded:
    """What one pass forwarded (rows new to the lab's database, or changed there)."""

    samples: int = 0
    campaigns: int = 0
    runs: int = 0
    campaign_steps: int = 0
    events: int = 0
    campaign_events: int = 0
    records: int = 0
    blocks: int = 0

    def total(self) -> int:
        return (self.samples + self.campaigns + self.runs + self.campaign_steps + self.events + self.campaign_events
                + self.records)


def _upsert(table: str, columns: Sequence[str], key: str, keep: Sequence[str] = ()) -> str:
    """An INSERT that updates the row with the same ``key`` instead (``keep``: columns an update leaves alone)."""
    sets = ", ".join(f"{c}=excluded.{c}" for c in columns if c != key and c not in keep)
    return (f"INSERT INTO {table}({', '.join(columns)}) VALUES ({','.join('?' * len(columns))}) "
            f"ON CONFLICT({key}) DO UPDATE SET {sets}")


def forward(local: Store, central: Store, station: str, *, batch_bytes: int = BATCH_BYTES,
            progress: Callable[[Forwarded], None] | None = None) -> Forwarded:
    """Forward everything of ``local`` that ``central`` lacks, for ``station``; returns what went."""
    done = Forwarded()
    _check_owners(local, central, station)
    with central.transaction() as db:
        done.samples = _samples(local, db)
        done.campaigns = _rows(local, db, "campaigns", _CAMPAIGN)
        done.runs = _runs(local, db, station)
        done.campaign_steps = _steps(local, db, station)
        done.events = _appended(local, db, station, "events", ("run_id", "at", "test_time", "kind", "message", "data"))
        done.campaign_events = _appended(local, db, station, "campaign_events",
                                         ("campaign_id", "at", "kind", "message", "who", "data"))
    if progress:
        progress(done)
    _records(local, central, done, batch_bytes, progress)
    return done


def _check_owners(local: Store, central: Store, station: str) -> None:
    """Refuse runs that the lab's database already has from another station: the same data copied under two
    names, or two stores that share run ids."""
    mine = {r[0] for r in local.db.execute("SELECT id FROM runs").fetchall()}
    if not mine:
        return
    theirs = central.db.execute("SELECT id, station FROM runs WHERE station IS NOT NULL AND station <> ?",
                                (station,)).fetchall()
    clash = sorted((run_id, other) for run_id, other in theirs if run_id in mine)
    if clash:
        run_id, other = clash[0]
        raise StoreError(f"run {run_id} is already in {central.where} from station {other}"
                         f"{f' (and {len(clash) - 1} more)' if len(clash) > 1 else ''}; copy this data directory "
                         f"as --station {other}, or it was copied before under that name")


def _samples(local: Store, db: Any) -> int:
    rows = local.db.execute(f"SELECT {', '.join(_SAMPLE)} FROM samples ORDER BY created_at, id").fetchall()
    have = {r[0] for r in db.execute("SELECT id FROM samples").fetchall()}
    new = [r for r in rows if r[0] not in have]
    if new:  # a sample is the lab's: the first station to register its id wrote it, and it is not rewritten
        db.executemany(f"INSERT INTO samples({', '.join(_SAMPLE)}) VALUES ({','.join('?' * len(_SAMPLE))}) "
                       f"ON CONFLICT(id) DO NOTHING", new)
    return len(new)


def _rows(local: Store, db: Any, table: str, columns: Sequence[str]) -> int:
    """Upsert the rows of ``table`` that the lab's database lacks or holds differently."""
    select = f"SELECT {', '.join(columns)} FROM {table} ORDER BY created_at, id"
    rows = [tuple(r) for r in local.db.execute(select).fetchall()]
    have = {row[0]: row for row in (tuple(r) for r in db.execute(select).fetchall())}
    changed = [r for r in rows if have.get(r[0]) != r]
    if changed:
        db.executemany(_upsert(table, columns, "id"), changed)
    return len(changed)


def _runs(local: Store, db: Any, station: str) -> int:
    """Upsert the station's runs that are new or changed; a run's ``last_seq`` moves only with its records."""
    select = f"SELECT {', '.join(_RUN)} FROM runs ORDER BY created_at, id"
    rows = []
    for r in local.db.execute(select).fetchall():
        row = list(r)
        row[-1] = row[-1] or station
        rows.append(tuple(row))
    have = {row[0]: row for row in (tuple(r) for r in db.execute(select).fetchall()) if row[-1] == station}
    changed = [r for r in rows if have.get(r[0]) != r]
    if changed:
        db.executemany(_upsert("runs", _RUN, "id"), changed)
    return len(changed)


def _steps(local: Store, db: Any, station: str) -> int:
    rows = local.db.execute(f"SELECT id, {', '.join(_STEP)} FROM campaign_steps ORDER BY id").fetchall()
    have = {r[0]: tuple(r[1:]) for r in db.execute(f"SELECT origin, {', '.join(_STEP)} FROM campaign_steps WHERE "
                                                   f"origin LIKE ?", (f"{station}:%",)).fetchall()}
    changed = [(*r[1:], f"{station}:{r[0]}") for r in rows if have.get(f"{station}:{r[0]}") != tuple(r[1:])]
    if changed:
        db.executemany(_upsert("campaign_steps", (*_STEP, "origin"), "origin"), changed)
    return len(changed)


def _appended(local: Store, db: Any, station: str, table: str, columns: Sequence[str]) -> int:
    """The rows after this station's mark, in id order, and the mark moved with them (same transaction)."""
    row = db.execute("SELECT upto FROM forwarded WHERE station=? AND source=?", (station, table)).fetchone()
    upto = int(row[0]) if row else 0
    rows = local.db.execute(f"SELECT id, {', '.join(columns)} FROM {table} WHERE id>? ORDER BY id",
                            (upto,)).fetchall()
    if not rows:
        return 0
    db.executemany(f"INSERT INTO {table}({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})",
                   [tuple(r[1:]) for r in rows])
    db.execute("INSERT INTO forwarded(station, source, upto) VALUES (?,?,?) ON CONFLICT(station, source) DO UPDATE "
               "SET upto=excluded.upto", (station, table, int(rows[-1][0])))
    return len(rows)


def _records(local: Store, central: Store, done: Forwarded, batch_bytes: int,
             progress: Callable[[Forwarded], None] | None) -> None:
    """Each run's blocks after the last record the lab's database holds, in batches of whole blocks; a run's
    ``last_seq`` there moves in the same transaction as its blocks."""
    held = dict(central.db.execute("SELECT run_id, MAX(last_seq) FROM record_blocks GROUP BY run_id").fetchall())
    ends = {r[0]: int(r[1]) for r in local.db.execute("SELECT id, last_seq FROM runs ORDER BY created_at, id")}
    batch: list[tuple[str, int, int, int, bytes]] = []
    size = 0

    def flush() -> None:
        nonlocal batch, size
        if not batch:
            return
        with central.transaction() as db:
            central.backend.insert_blocks(batch)
            last: dict[str, int] = {}
            for run_id, _, last_seq, _, _ in batch:
                last[run_id] = last_seq
            db.executemany("UPDATE runs SET last_seq=? WHERE id=?", [(seq, run_id) for run_id, seq in last.items()])
        done.blocks += len(batch)
        done.records += sum(b[3] for b in batch)
        batch, size = [], 0
        if progress:
            progress(done)

    for run_id, end in ends.items():
        after = int(held.get(run_id) or 0)
        if end <= after:
            continue
        cursor = local.db.execute("SELECT first_seq, last_seq, count, data FROM record_blocks WHERE run_id=? AND "
                                  "first_seq>? ORDER BY first_seq", (run_id, after))
        for first, last_seq, count, data in cursor:
            if read_block(data, count) is None:
                raise local.backend.damaged(f"the record block of run {run_id} from record {first} has the wrong "
                                            f"size")
            batch.append((run_id, int(first), int(last_seq), int(count), bytes(data)))
            size += len(data)
            if size >= batch_bytes:
                flush()
        flush()  # a run's blocks and its last_seq in one transaction where they fit


def summary(done: Forwarded) -> dict[str, int]:
    """What went, by table, for `station db copy --json`."""
    return asdict(done)
