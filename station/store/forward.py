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

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from station.store.records import RECORD_DTYPE, read_block
from station.store.rows import StoreError
from station.store.store import Store

#: record bytes per central transaction: big enough for COPY to stream, small enough that a killed copy redoes
#: little (about 330k records)
BATCH_BYTES = 32 * 1024 * 1024

_SAMPLE = ("id", "name", "created_at", "cell", "cell_file", "operator", "notes", "metadata")
_CAMPAIGN = ("id", "name", "sample_id", "created_at", "updated_at", "state", "source_file", "source_text", "plan",
             "stage", "location", "waiting", "pending", "confirm_requested", "stop_requested", "started_by",
             "confirmed_by", "message", "station")
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
    complete: bool = True
    """Everything the station had is in the lab's database now (False: a budget left a backlog for next time)."""

    def total(self) -> int:
        return (self.samples + self.campaigns + self.runs + self.campaign_steps + self.events + self.campaign_events
                + self.records)


def _upsert(table: str, columns: Sequence[str], key: str, keep: Sequence[str] = ()) -> str:
    """An INSERT that updates the row with the same ``key`` instead (``keep``: columns an update leaves alone)."""
    sets = ", ".join(f"{c}=excluded.{c}" for c in columns if c != key and c not in keep)
    return (f"INSERT INTO {table}({', '.join(columns)}) VALUES ({','.join('?' * len(columns))}) "
            f"ON CONFLICT({key}) DO UPDATE SET {sets}")


#: the columns of a run that change while it runs (compared to tell a changed run; the rest is set at creation)
_LIVE = ("updated_at", "state", "handle", "message", "stop_requested", "contact_lost_at", "started_at", "sample_id",
         "campaign_id", "campaign_stage")


def forward(local: Store, central: Store, station: str, *, batch_bytes: int = BATCH_BYTES,
            budget_bytes: int | None = None, check: bool = True,
            progress: Callable[[Forwarded], None] | None = None) -> Forwarded:
    """Forward what ``central`` lacks of ``local``, for ``station``; returns what went.

    A pass whose records fit in ``batch_bytes`` is one central transaction: the lab sees all of it or none. A
    larger one (a copy, the backlog of a long outage) goes as a head (samples, campaigns, new runs), record
    batches, and a tail (changed runs, campaign steps, events); a run's changed row goes only with the last of its
    records, so no reader sees it ended while its records are still on the way. ``budget_bytes``: stop after
    about that many record bytes (a supervising service forwards a long backlog a round at a time); the next
    pass goes on. ``check``: refuse runs another station already has there (once per link is enough)."""
    try:
        return _forward(local, central, station, batch_bytes, budget_bytes, check, progress)
    except central.backend.errors as exc:  # a database that went away in the middle: StoreUnreachable
        raise central.backend.explain(exc) from None
    except local.backend.errors as exc:
        raise local.backend.explain(exc) from None


def _forward(local: Store, central: Store, station: str, batch_bytes: int, budget_bytes: int | None, check: bool,
             progress: Callable[[Forwarded], None] | None) -> Forwarded:
    done = Forwarded()
    if check:
        _check_owners(local, central, station)
    mine = _local_runs(local)
    theirs = _central_runs(central, station)
    new = [run_id for run_id in mine if run_id not in theirs]
    changed = [run_id for run_id, (live, _) in mine.items() if run_id in theirs and theirs[run_id][0] != live]
    pending = [(run_id, theirs.get(run_id, (None, 0))[1], end) for run_id, (_, end) in mine.items()
               if end > theirs.get(run_id, (None, 0))[1]]
    size = sum((end - after) * RECORD_DTYPE.itemsize for _, after, end in pending)
    if size <= batch_bytes and (budget_bytes is None or size <= budget_bytes):
        with central.transaction() as db:
            _head(local, db, station, new, done)
            batch = [b for run_id, after, _ in pending for b in _blocks(local, run_id, after)]
            _store_blocks(central, db, batch, done)
            _tail(local, db, station, changed, done)
        if progress:
            progress(done)
        return done
    with central.transaction() as db:
        _head(local, db, station, new, done)
    if progress:
        progress(done)
    incomplete = _records(local, central, pending, done, batch_bytes, budget_bytes, progress)
    done.complete = not incomplete
    with central.transaction() as db:
        _tail(local, db, station, [r for r in changed if r not in incomplete], done)
    if progress:
        progress(done)
    return done


def _head(local: Store, db: Any, station: str, new: list[str], done: Forwarded) -> None:
    """What a run's rows point to (samples, campaigns), then the runs new to the lab's database."""
    done.samples += _samples(local, db)
    done.campaigns += _campaigns(local, db, station)
    if new:
        rows = []
        for run_id in new:
            row = list(local.db.execute(f"SELECT {', '.join(_RUN)} FROM runs WHERE id=?", (run_id,)).fetchone())
            row[-1] = row[-1] or station
            rows.append(tuple(row))
        db.executemany(_upsert("runs", _RUN, "id"), rows)  # last_seq stays 0 until records go
        done.runs += len(rows)


def _tail(local: Store, db: Any, station: str, changed: list[str], done: Forwarded) -> None:
    """The runs' changes, the campaign steps, and the events after each station's mark."""
    if changed:
        rows = []
        for run_id in changed:
            live = local.db.execute(f"SELECT {', '.join(_LIVE)} FROM runs WHERE id=?", (run_id,)).fetchone()
            rows.append((*live, run_id))
        db.executemany(f"UPDATE runs SET {', '.join(f'{c}=?' for c in _LIVE)} WHERE id=?", rows)
        done.runs += len(rows)
    done.campaign_steps += _steps(local, db, station)
    done.events += _appended(local, db, station, "events", ("run_id", "at", "test_time", "kind", "message", "data"))
    done.campaign_events += _appended(local, db, station, "campaign_events",
                                      ("campaign_id", "at", "kind", "message", "who", "data"))


def _local_runs(local: Store) -> dict[str, tuple[tuple, int]]:
    """Every run of the station's own store: its changing columns and its last stored record."""
    rows = local.db.execute(f"SELECT id, last_seq, {', '.join(_LIVE)} FROM runs ORDER BY created_at, id").fetchall()
    return {r[0]: (tuple(r[2:]), int(r[1])) for r in rows}


def _central_runs(central: Store, station: str) -> dict[str, tuple[tuple, int]]:
    rows = central.db.execute(f"SELECT id, last_seq, {', '.join(_LIVE)} FROM runs WHERE station=?",
                              (station,)).fetchall()
    return {r[0]: (tuple(r[2:]), int(r[1])) for r in rows}


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
    local_ids = [r[0] for r in local.db.execute("SELECT id FROM samples ORDER BY created_at, id").fetchall()]
    have: set[str] = set()
    for at in range(0, len(local_ids), 500):  # only this station's: the lab's samples grow with every station
        chunk = local_ids[at:at + 500]
        have.update(r[0] for r in db.execute(f"SELECT id FROM samples WHERE id IN ({','.join('?' * len(chunk))})",
                                             chunk).fetchall())
    new = [i for i in local_ids if i not in have]
    if not new:
        return 0
    rows = [local.db.execute(f"SELECT {', '.join(_SAMPLE)} FROM samples WHERE id=?", (i,)).fetchone() for i in new]
    # a sample is the lab's: the first station to register its id wrote it, and it is not rewritten
    db.executemany(f"INSERT INTO samples({', '.join(_SAMPLE)}) VALUES ({','.join('?' * len(_SAMPLE))}) "
                   f"ON CONFLICT(id) DO NOTHING", [tuple(r) for r in rows])
    return len(new)


def _campaigns(local: Store, db: Any, station: str) -> int:
    """Upsert the campaigns that are new or changed (every change moves a campaign's ``updated_at``)."""
    mine = dict(local.db.execute("SELECT id, updated_at FROM campaigns").fetchall())
    have = dict(db.execute("SELECT id, updated_at FROM campaigns WHERE station=?", (station,)).fetchall())
    changed = [i for i, at in mine.items() if have.get(i) != at]
    if not changed:
        return 0
    rows = [(*local.db.execute(f"SELECT {', '.join(_CAMPAIGN)} FROM campaigns WHERE id=?", (i,)).fetchone()[:-1],
             station) for i in changed]  # the station forwarding it runs it (one from before names: this one)
    db.executemany(_upsert("campaigns", _CAMPAIGN, "id"), rows)
    return len(rows)


def _steps(local: Store, db: Any, station: str) -> int:
    rows = local.db.execute(f"SELECT id, {', '.join(_STEP)} FROM campaign_steps ORDER BY id").fetchall()
    if not rows:
        return 0
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


Block = tuple[str, int, int, int, bytes]


def _blocks(local: Store, run_id: str, after: int) -> Iterator[Block]:
    """The run's stored blocks after record ``after``, whole (blocks never straddle a forwarded end)."""
    cursor = local.db.execute("SELECT first_seq, last_seq, count, data FROM record_blocks WHERE run_id=? AND "
                              "first_seq>? ORDER BY first_seq", (run_id, after))
    for first, last_seq, count, data in cursor:
        if read_block(data, count) is None:
            raise local.backend.damaged(f"the record block of run {run_id} from record {first} has the wrong size")
        yield (run_id, int(first), int(last_seq), int(count), bytes(data))


def _store_blocks(central: Store, db: Any, batch: list[Block], done: Forwarded) -> None:
    """Blocks into the lab's database with each run's ``last_seq`` moved to its last one (same transaction)."""
    if not batch:
        return
    central.backend.insert_blocks(batch)
    last = {run_id: last_seq for run_id, _, last_seq, _, _ in batch}
    db.executemany("UPDATE runs SET last_seq=? WHERE id=?", [(seq, run_id) for run_id, seq in last.items()])
    done.blocks += len(batch)
    done.records += sum(b[3] for b in batch)


def _records(local: Store, central: Store, pending: list[tuple[str, int, int]], done: Forwarded, batch_bytes: int,
             budget_bytes: int | None, progress: Callable[[Forwarded], None] | None) -> set[str]:
    """Record blocks in batches of about ``batch_bytes``, each its own transaction; returns the runs whose records
    did not all go (the budget ran out)."""
    batch: list[Block] = []
    size = sent = 0

    def flush() -> None:
        nonlocal batch, size
        if batch:
            with central.transaction() as db:
                _store_blocks(central, db, batch, done)
            batch, size = [], 0
            if progress:
                progress(done)

    incomplete: set[str] = set()
    for run_id, after, _ in pending:
        if budget_bytes is not None and sent >= budget_bytes:
            incomplete.add(run_id)
            continue
        for block in _blocks(local, run_id, after):
            batch.append(block)
            size += len(block[4])
            sent += len(block[4])
            if size >= batch_bytes:
                flush()
            if budget_bytes is not None and sent >= budget_bytes:
                incomplete.add(run_id)  # perhaps whole, perhaps not: its row waits for the next pass
                break
    flush()
    return incomplete


def summary(done: Forwarded) -> dict[str, int]:
    """What went, by table, for `station db copy --json`."""
    return {k: v for k, v in asdict(done).items() if k != "complete"}
