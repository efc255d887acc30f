"""The schema, written once for both backends, as numbered migrations: version N of a SQLite data directory and of
a central PostgreSQL database hold the same tables, columns and constraints.

The DDL is written in SQLite's spelling and rendered for PostgreSQL by :func:`render`, which changes only the
types SQLite is loose about: ``REAL`` is a double there and must be ``DOUBLE PRECISION`` in PostgreSQL (whose
``REAL`` is 4 bytes: a Unix time would lose its seconds), ``INTEGER`` becomes ``BIGINT`` (sequence numbers and
counts of a long run), ``BLOB`` becomes ``BYTEA``, an autoincrement key becomes an identity column, and
``WITHOUT ROWID`` (a SQLite storage choice) goes.
"""

from __future__ import annotations

import re

SCHEMA_VERSION = 9

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        state TEXT NOT NULL,
        channel TEXT NOT NULL,
        instrument TEXT NOT NULL,
        protocol_name TEXT NOT NULL,
        protocol_file TEXT,
        protocol_source TEXT NOT NULL,
        parameters TEXT NOT NULL,
        program TEXT NOT NULL,
        cell TEXT NOT NULL,
        handle TEXT,
        dry_run INTEGER NOT NULL DEFAULT 0,
        last_seq INTEGER NOT NULL DEFAULT 0,
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX IF NOT EXISTS runs_by_channel ON runs(channel, state);
    CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(id),
        at REAL NOT NULL,
        test_time REAL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT
    );
    CREATE INDEX IF NOT EXISTS events_by_run ON events(run_id, id);
    CREATE TABLE IF NOT EXISTS record_blocks (
        run_id TEXT NOT NULL REFERENCES runs(id),
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        count INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (run_id, first_seq)
    ) WITHOUT ROWID;
    """,
    # stop_requested: an operator or the station asked for a stop that the instrument has not confirmed yet; the
    # run stays active (and its channel claimed) until it does. contact_lost_at: the start of the current outage.
    2: """
    ALTER TABLE runs ADD COLUMN stop_requested TEXT;
    ALTER TABLE runs ADD COLUMN contact_lost_at REAL;
    """,
    # started_at: when the station sent start to the instrument (written with the "starting" intent), the time
    # the instrument's test time counts from, for the unix time of exported records. Runs stored before it get
    # the time of their first "starting" state event, or for runs older than that state, of their first "running".
    3: """
    ALTER TABLE runs ADD COLUMN started_at REAL;
    UPDATE runs SET started_at = COALESCE(
        (SELECT e.at FROM events e WHERE e.run_id = runs.id AND e.kind = 'state'
            AND (e.message = 'starting' OR e.message LIKE 'starting: %') ORDER BY e.id LIMIT 1),
        (SELECT e.at FROM events e WHERE e.run_id = runs.id AND e.kind = 'state'
            AND (e.message = 'running' OR e.message LIKE 'running: %') ORDER BY e.id LIMIT 1));
    """,
    # samples: one physical cell each (an id a lab prints as a barcode, its cell record, who made it, notes); a
    # run belongs to the sample it was run on (NULL for runs given only a cell).
    4: """
    CREATE TABLE IF NOT EXISTS samples (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at REAL NOT NULL,
        cell TEXT NOT NULL,
        cell_file TEXT,
        operator TEXT,
        notes TEXT,
        metadata TEXT NOT NULL DEFAULT '{}'
    );
    ALTER TABLE runs ADD COLUMN sample_id TEXT REFERENCES samples(id);
    CREATE INDEX IF NOT EXISTS runs_by_sample ON runs(sample_id, created_at);
    """,
    # campaigns (station.campaigns): a chain of protocols on one sample. The campaign row holds its source and the
    # validated plan (every stage with its protocols' text as started), where it is (state, current stage, the
    # channel the sample is on, why it waits and for what), and the operator requests the service has not carried
    # out yet (confirm, stop: JSON with who and when). campaign_steps is one row per run the campaign started
    # (stage, role run/chunk/rpt, the run, its outcome and the cycles it counted); campaign_events records every
    # decision and operator action with who did it. A run knows its campaign and stage.
    5: """
    CREATE TABLE IF NOT EXISTS campaigns (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        sample_id TEXT NOT NULL REFERENCES samples(id),
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        state TEXT NOT NULL,
        source_file TEXT,
        source_text TEXT NOT NULL,
        plan TEXT NOT NULL,
        stage INTEGER NOT NULL DEFAULT 0,
        location TEXT,
        waiting TEXT,
        pending TEXT,
        confirm_requested TEXT,
        stop_requested TEXT,
        started_by TEXT,
        confirmed_by TEXT,
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX IF NOT EXISTS campaigns_by_state ON campaigns(state, created_at);
    CREATE INDEX IF NOT EXISTS campaigns_by_sample ON campaigns(sample_id, created_at);
    CREATE TABLE IF NOT EXISTS campaign_steps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        campaign_id TEXT NOT NULL REFERENCES campaigns(id),
        stage INTEGER NOT NULL,
        stage_name TEXT NOT NULL,
        role TEXT NOT NULL,
        chunk INTEGER,
        first_cycle INTEGER,
        parameters TEXT NOT NULL DEFAULT '{}',
        channel TEXT,
        run_id TEXT REFERENCES runs(id),
        created_at REAL NOT NULL,
        ended_at REAL,
        outcome TEXT,
        message TEXT NOT NULL DEFAULT '',
        cycles TEXT
    );
    CREATE INDEX IF NOT EXISTS campaign_steps_by_campaign ON campaign_steps(campaign_id, id);
    CREATE TABLE IF NOT EXISTS campaign_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        campaign_id TEXT NOT NULL REFERENCES campaigns(id),
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        who TEXT,
        data TEXT
    );
    CREATE INDEX IF NOT EXISTS campaign_events_by_campaign ON campaign_events(campaign_id, id);
    ALTER TABLE runs ADD COLUMN campaign_id TEXT REFERENCES campaigns(id);
    ALTER TABLE runs ADD COLUMN campaign_stage TEXT;
    CREATE INDEX IF NOT EXISTS runs_by_campaign ON runs(campaign_id, created_at);
    """,
    # The database itself enforces that a channel has one active run: create_run's check reads before it writes,
    # which SQLite serialises (one writer) but PostgreSQL, with several stations writing at once, does not.
    # The terminal states are spelled out: a migration is history and never changes with the code.
    6: """
    CREATE UNIQUE INDEX IF NOT EXISTS one_active_run_per_channel ON runs(channel)
        WHERE state NOT IN ('finished', 'stopped', 'failed');
    """,
    # Stations: each service has a name (station.yaml's station:, the host name by default) and owns its channels.
    # A run belongs to the station that created it (NULL: a run stored before stations had names, in a data
    # directory of one station). channel_owners: the first station to use a channel owns it, and its primary key is
    # what keeps a second station off it. stations: where each station's service was last seen and listens.
    7: """
    ALTER TABLE runs ADD COLUMN station TEXT;
    CREATE INDEX IF NOT EXISTS runs_by_station ON runs(station, state);
    CREATE TABLE IF NOT EXISTS channel_owners (
        channel TEXT PRIMARY KEY,
        station TEXT NOT NULL,
        claimed_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS stations (
        name TEXT PRIMARY KEY,
        started_at REAL NOT NULL,
        seen_at REAL NOT NULL,
        api_url TEXT,
        pid INTEGER,
        version TEXT
    );
    """,
    # Forwarding a station's own store into the lab's database (station.store.forward): how far each append-only
    # table of each station has been forwarded, moved in the same transaction as the rows it counts (exactly
    # once); and the campaign step a central row came from ("STATION:LOCAL_ID"), since step ids are per store.
    8: """
    CREATE TABLE IF NOT EXISTS forwarded (
        station TEXT NOT NULL,
        source TEXT NOT NULL,
        upto INTEGER NOT NULL,
        PRIMARY KEY (station, source)
    );
    ALTER TABLE campaign_steps ADD COLUMN origin TEXT;
    CREATE UNIQUE INDEX IF NOT EXISTS campaign_steps_by_origin ON campaign_steps(origin);
    """,
    # The station whose service runs a campaign (its engine reads the operator's requests): where a confirmation
    # or a stop typed on another station is sent. NULL: a campaign from before stations had names.
    9: """
    ALTER TABLE campaigns ADD COLUMN station TEXT;
    """,
}

_PG_TYPES = ((re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"),
              "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
             (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
             (re.compile(r"\bINTEGER\b"), "BIGINT"),
             (re.compile(r"\bBLOB\b"), "BYTEA"),
             (re.compile(r"\)\s*WITHOUT ROWID"), ")"))


def render(sql: str, dialect: str) -> str:
    """A migration in ``dialect`` ("sqlite" or "postgresql")."""
    if dialect == "postgresql":
        for pattern, replacement in _PG_TYPES:
            sql = pattern.sub(replacement, sql)
    return sql


def statements(version: int, dialect: str) -> list[str]:
    """The statements that take a schema from ``version - 1`` to ``version``."""
    return [s.strip() for s in render(MIGRATIONS[version], dialect).split(";") if s.strip()]
