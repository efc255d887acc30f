"""The run store (DESIGN section 8): one interface (:class:`Store`), two backends (SQLite in the data directory,
PostgreSQL for a lab), one schema, one packed record layout. Everything a caller needs is importable from here."""

from station.store.records import RECORD_COLUMNS, RECORD_DTYPE, RECORD_DTYPE_V1, to_block
from station.store.rows import (
    CAMPAIGN_ENDED,
    CampaignEventRow,
    CampaignRow,
    CampaignStepRow,
    ChannelBusy,
    ChannelOwned,
    EventRow,
    RunRow,
    SampleRow,
    StationRow,
    StoreError,
    StoreUnreachable,
    UnknownCampaign,
    UnknownRun,
    UnknownSample,
)
from station.store.schema import SCHEMA_VERSION
from station.store.sqlite_backend import DB_NAME, RESERVE_NAME
from station.store.store import DATABASE_ENV, Store, database_url

__all__ = [
    "CAMPAIGN_ENDED", "DATABASE_ENV", "DB_NAME", "RECORD_COLUMNS", "RECORD_DTYPE", "RECORD_DTYPE_V1", "RESERVE_NAME",
    "SCHEMA_VERSION", "CampaignEventRow", "CampaignRow", "CampaignStepRow", "ChannelBusy", "ChannelOwned", "EventRow",
    "RunRow", "SampleRow", "StationRow", "Store", "StoreError", "StoreUnreachable", "UnknownCampaign", "UnknownRun",
    "UnknownSample", "database_url", "to_block",
]
