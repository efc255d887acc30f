"""The station service's HTTP API (FastAPI, OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs).

Reads (channels, runs, events, records, samples) come from the service's live board and the API's own read
connection to the store, so a dashboard never waits for a poll round. Operator actions (start, stop, pause,
continue) go to the supervision thread through the service's command queue, which carries them out between rounds
and records who asked (the token's name). Every request needs a token; every refusal is a 4xx with the same
one-line message the CLI gives, as ``{"error": {"status": N, "message": "..."}}``, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from drivers.base import DriverError
from protocols.campaign import load_campaign
from protocols.cells import Cell, load_cell_text
from protocols.clock import RealClock
from protocols.errors import ProtocolError
from protocols.library import resolve_campaign_path
from station.api.tokens import Tokens
from station.board import Board
from station.campaigns import (
    CampaignError,
    campaign_doc,
    instrument_problems,
    request_confirm,
    request_stop,
    start_campaign,
)
from station.command_queue import CommandQueue, ServiceStopping
from station.config import ConfigError, StationConfig, UnknownChannel
from station.documents import event_doc, iso_utc, run_doc, sample_doc
from station.instruments import InstrumentError
from station.runs import RunEnded, RunError
from station.samples import register_sample
from station.service_actions import (
    BadRequest,
    StartRequest,
    continue_run,
    library_cell,
    pause_run,
    start_run,
    stop_run,
)
from station.session import Station
from station.store import (
    RECORD_DTYPE,
    ChannelBusy,
    Store,
    StoreError,
    UnknownCampaign,
    UnknownRun,
    UnknownSample,
)

log = logging.getLogger(__name__)

API = "/api/v1"
#: how long a request waits for the supervision thread to carry out an action before it is told to look later
ACTION_TIMEOUT_S = 120.0
#: records per page at most: about 100 kB of JSON
MAX_PAGE = 5000
#: a protocol or cell sent as text is a few kB; anything near this is not one
MAX_BODY_BYTES = 1_000_000
#: an idle event stream says so this often, so proxies keep it open and a dead client is noticed
KEEPALIVE_S = 15.0


class StartBody(BaseModel):
    """A run to start. The protocol is a library name or a path on the station's PC, or its YAML text; the cell
    likewise, or a sample id; ``set`` overrides the protocol's parameters (``--set NAME=VALUE``)."""

    model_config = ConfigDict(extra="forbid")
    protocol: str | None = Field(None, min_length=1, max_length=4096, examples=["p2-plating-stripping-ce"])
    protocol_source: str | None = Field(None, min_length=1, max_length=MAX_BODY_BYTES)
    protocol_file: str | None = Field(None, max_length=4096, description="the file name errors in "
                                      "protocol_source are reported under")
    cell: str | None = Field(None, min_length=1, max_length=4096, examples=["host-cu-li"])
    cell_source: str | None = Field(None, min_length=1, max_length=MAX_BODY_BYTES)
    sample: str | None = Field(None, min_length=1, max_length=64)
    channel: str | None = Field(None, min_length=1, max_length=256, examples=["bts/21-1-1"])
    set: dict[str, Annotated[str, Field(max_length=256)]] = Field(default_factory=dict)


class StopBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: bool = Field(False, description="abandon a run whose test is gone from the instrument (refused while "
                        "the instrument still runs it)")


class SampleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cell: str | None = Field(None, min_length=1, max_length=4096)
    cell_source: str | None = Field(None, min_length=1, max_length=MAX_BODY_BYTES)
    name: str | None = Field(None, max_length=200)
    operator: str | None = Field(None, max_length=200)
    notes: str | None = Field(None, max_length=10_000)
    metadata: dict[str, Annotated[str, Field(max_length=2000)]] = Field(default_factory=dict)


class CampaignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign: str = Field(min_length=1, max_length=4096, description="a library campaign name or a path on the "
                          "station's PC", examples=["p7-before-after-lithiation"])
    sample: str = Field(min_length=1, max_length=64)
    channel: str | None = Field(None, min_length=1, max_length=256, description="where the sample is now")


class ConfirmBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: str | None = Field(None, min_length=1, max_length=256, description="the channel the sample is on, "
                                "when the campaign did not name one")


class ApiState:
    """What the routes share: the station (touched only on the supervision thread, through ``commands``), the
    live board, the API's own read connection to the store, and the accepted tokens."""

    def __init__(self, station: Station, board: Board, commands: CommandQueue, tokens: Tokens):
        self.station = station
        self.config: StationConfig = station.config
        self.board = board
        self.commands = commands
        self.tokens = tokens
        self.store = Store(station.store.data_dir)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def read(self) -> Iterator[Store]:
        """The read connection, one request at a time (SQLite connections are not shared between threads)."""
        with self._lock:
            yield self.store

    def act(self, action: Callable[[], Any]) -> Any:
        """Carry out ``action`` on the supervision thread and return its result (or raise its error)."""
        future: Future = self.commands.submit(action)
        try:
            return future.result(timeout=ACTION_TIMEOUT_S)
        except FutureTimeout:
            raise ApiError(504, f"the station is still carrying this out after {ACTION_TIMEOUT_S:g} s (an "
                                f"instrument slow to answer); look at the run's state and events") from None

    def close(self) -> None:
        with self._lock:
            self.store.close()


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": {"status": status, "message": _one_line(message), **extra}}, status_code=status,
                        headers=headers)


def _status_of(exc: Exception) -> int:
    """Our errors as HTTP: the request's fault is 4xx, an instrument or store that cannot be used is 503."""
    match exc:
        case UnknownRun() | UnknownSample() | UnknownCampaign() | UnknownChannel():
            return 404
        case ChannelBusy() | RunEnded():
            return 409
        case RunError():
            return 503 if exc.instrument else 409
        case BadRequest():
            return 400
        case CampaignError():
            return 409
        case ProtocolError() | ConfigError():
            return 422
        case DriverError() | InstrumentError() | StoreError() | ServiceStopping():
            return 503
    return 500


EXPECTED: tuple[type[Exception], ...] = (UnknownRun, UnknownSample, UnknownCampaign, UnknownChannel, ChannelBusy,
                                         RunError, BadRequest, CampaignError, ConfigError, DriverError,
                                         InstrumentError, StoreError, ServiceStopping)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


def _who(request: Request, authorization: Annotated[str | None, Header(description="Bearer TOKEN")] = None) -> str:
    """The name behind the request's token (recorded with what it does), or 401."""
    token = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
    name = request.app.state.api.tokens.who(token)
    if name is None:
        raise ApiError(401, "a valid token is needed: send 'Authorization: Bearer TOKEN' (the token is in the "
                            "data directory's api-token file, readable by its owner only)")
    return name


Who = Annotated[str, Depends(_who)]


def create_app(state: ApiState) -> FastAPI:
    app = FastAPI(title="Battery test station", version="1", openapi_url=f"{API}/openapi.json",
                  docs_url=f"{API}/docs", redoc_url=None, max_body_size=MAX_BODY_BYTES,
                  description="Channels, runs, samples and a live event stream of one station service. Every "
                              "request needs `Authorization: Bearer TOKEN`.")
    app.state.api = state

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(ProtocolError)
    async def _protocol(request: Request, exc: ProtocolError) -> JSONResponse:
        return _error(422, str(exc), problems=[str(p) for p in exc.problems])

    async def _ours(request: Request, exc: Exception) -> JSONResponse:
        status = _status_of(exc)
        if status == 500:  # a defect of ours: logged in full for us, one line for the client
            log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
            return _error(500, f"internal error ({type(exc).__name__}); the station's log has the details")
        return _error(status, str(exc))

    for known in (*EXPECTED, Exception):  # the expected ones answered where they arise, never logged as crashes
        app.add_exception_handler(known, _ours)

    # -- station and channels ---------------------------------------------------------------------------------------

    @app.get(f"{API}/station", summary="This station: its data directory, instruments and service")
    def station_info(user: Who) -> dict:
        return {"data_dir": str(state.station.store.data_dir), "poll_interval_s": state.config.poll_seconds,
                "instruments": [{"name": i.name, "kind": i.kind, "channels": len(i.channels)}
                                for i in state.config.instruments],
                "you": user, "now": iso_utc(RealClock().unix())}

    @app.get(f"{API}/channels", summary="Every configured channel with its run and live values")
    def channels(user: Who, instrument: str | None = None, state_: Annotated[str | None, Query(alias="state")]
                 = None) -> dict:
        now = RealClock().unix()
        with state.read() as store:
            active = {r.channel: r for r in store.runs(active_only=True, light=True)}
        live = {doc["channel"]: doc for doc in state.board.live().values()}
        out = []
        for inst in state.config.instruments:
            if instrument is not None and inst.name != instrument:
                continue
            for chan in inst.channels:
                cid = f"{inst.name}/{chan.id}"
                row = active.get(cid)
                doc = {"channel": cid, "instrument": inst.name, "kind": inst.kind,
                       "state": str(row.state) if row else "free",
                       "run": run_doc(row, now) if row else None, "live": live.get(cid) if row else None}
                if state_ is None or doc["state"] == state_:
                    out.append(doc)
        return {"channels": out}

    # -- runs ---------------------------------------------------------------------------------------------------------

    @app.get(f"{API}/runs", summary="Runs, newest last")
    def runs(user: Who, active: bool = False, sample: str | None = None,
             limit: Annotated[int, Query(ge=1, le=100_000)] = 1000) -> dict:
        now = RealClock().unix()
        with state.read() as store:
            rows = store.runs_of_sample(sample) if sample else store.runs(active_only=active, light=True)
        return {"runs": [run_doc(r, now) for r in rows[-limit:]]}

    @app.post(f"{API}/runs", status_code=201, summary="Check and start a run; answers once the instrument runs it")
    def start(body: StartBody, user: Who) -> dict:
        req = StartRequest(**body.model_dump())
        run_id = state.act(lambda: start_run(state.station, req, user))
        with state.read() as store:
            return run_doc(store.run(run_id), RealClock().unix())

    def _row(run_id: str):
        with state.read() as store:
            return store.run(run_id)

    @app.get(f"{API}/runs/{{run_id}}", summary="One run (a unique prefix of its id is enough), with live values")
    def run(run_id: str, user: Who) -> dict:
        row = _row(run_id)
        return {**run_doc(row, RealClock().unix()), "live": state.board.live().get(row.id)}

    @app.post(f"{API}/runs/{{run_id}}/stop", summary="Stop a run; confirmed only when the instrument says so")
    def stop(run_id: str, user: Who, body: StopBody | None = None) -> dict:
        row = _row(run_id)
        force = body.force if body else False
        confirmed, message = state.act(lambda: stop_run(state.station, row.id, user, force))
        return {"run_id": row.id, "confirmed": confirmed, "message": message, "state": str(_row(row.id).state)}

    @app.post(f"{API}/runs/{{run_id}}/pause", summary="Pause a running run at the instrument")
    def pause(run_id: str, user: Who) -> dict:
        row = _row(run_id)
        return {"run_id": row.id, "state": str(state.act(lambda: pause_run(state.station, row.id, user)))}

    @app.post(f"{API}/runs/{{run_id}}/continue", summary="Continue a paused run")
    def continue_(run_id: str, user: Who) -> dict:
        row = _row(run_id)
        return {"run_id": row.id, "state": str(state.act(lambda: continue_run(state.station, row.id, user)))}

    @app.get(f"{API}/runs/{{run_id}}/events", summary="A run's events, oldest first")
    def events(run_id: str, user: Who, after: Annotated[int, Query(ge=0)] = 0) -> dict:
        with state.read() as store:
            rows = store.events(store.run(run_id).id)
        return {"events": [event_doc(e) for e in rows if e.id > after]}

    @app.get(f"{API}/runs/{{run_id}}/records", summary="A page of a run's records after a record number")
    def records(run_id: str, user: Who, after: Annotated[int, Query(ge=0, description="last record number the "
                                                                    "client has (0: from the start)")] = 0,
                limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000) -> dict:
        columns = list(RECORD_DTYPE.names)
        rows: list[list] = []
        with state.read() as store:
            row = store.run(run_id)
            for block in store.iter_record_blocks(row.id, after):
                rows.extend(block[: limit - len(rows)].tolist())
                if len(rows) >= limit:
                    break
        last = int(rows[-1][0]) if rows else after
        clean = [[None if isinstance(v, float) and v != v else v for v in r] for r in rows]  # NaN is not JSON
        return {"run_id": row.id, "columns": columns, "records": clean, "after": after, "last": last,
                "more": last < row.last_seq}

    # -- samples ------------------------------------------------------------------------------------------------------

    @app.get(f"{API}/samples", summary="Every sample")
    def samples(user: Who) -> dict:
        with state.read() as store:
            return {"samples": [sample_doc(r) for r in store.samples()]}

    @app.get(f"{API}/samples/{{sample_id}}", summary="A sample and every run on it")
    def sample(sample_id: str, user: Who) -> dict:
        now = RealClock().unix()
        with state.read() as store:
            row = store.sample(sample_id)
            return {**sample_doc(row), "runs": [run_doc(r, now) for r in store.runs_of_sample(row.id)]}

    @app.post(f"{API}/samples", status_code=201, summary="Register a sample (a physical cell); returns its id")
    def new_sample(body: SampleBody, user: Who) -> dict:
        if (body.cell is None) == (body.cell_source is None):
            raise BadRequest("give the sample's cell as 'cell' (a library name or a path on the station's PC) or "
                             "'cell_source' (its YAML text), one of them")
        cell = load_cell_text(body.cell_source) if body.cell_source is not None else library_cell(body.cell)
        with state.read() as store:
            row = register_sample(store, RealClock(), cell, name=body.name, operator=body.operator or user,
                                  notes=body.notes, metadata=body.metadata)
        return sample_doc(row)

    # -- campaigns ----------------------------------------------------------------------------------------------------
    # Requests are stored (with who made them) and carried out by the service's campaign engine on its next round.

    @app.get(f"{API}/campaigns", summary="Every campaign")
    def campaigns(user: Who) -> dict:
        with state.read() as store:
            return {"campaigns": [campaign_doc(store, row, detail=False) for row in store.campaigns()]}

    @app.get(f"{API}/campaigns/{{campaign_id}}", summary="A campaign with its stages, runs, cycles and decisions")
    def campaign(campaign_id: str, user: Who) -> dict:
        with state.read() as store:
            return campaign_doc(store, store.campaign(campaign_id))

    @app.post(f"{API}/campaigns", status_code=201, summary="Check a campaign on a sample and store it; the service "
                                                             "starts it on its next round")
    def new_campaign(body: CampaignBody, user: Who) -> dict:
        if not Path(resolve_campaign_path(body.campaign)).is_file():
            raise BadRequest(f"campaign '{body.campaign}' not found on the station's PC (give a library name or a "
                             f"path there)")
        with state.read() as store:
            cell = Cell.model_validate(store.sample(body.sample).cell)
            if body.channel is not None:
                state.config.find(body.channel)
            loaded = load_campaign(body.campaign, cell)
            problems = instrument_problems(loaded, cell, state.config)
            if problems:
                raise ProtocolError(problems)
            row = start_campaign(store, RealClock(), loaded, body.sample, channel=body.channel, who=user,
                                 config=state.config)
            return campaign_doc(store, row)

    @app.post(f"{API}/campaigns/{{campaign_id}}/confirm", summary="An operator confirms the sample is where the "
                                                                    "campaign asked (or: run a held step again)")
    def confirm_campaign(campaign_id: str, user: Who, body: ConfirmBody | None = None) -> dict:
        with state.read() as store:
            row = request_confirm(store, RealClock(), state.config, campaign_id, user,
                                  body.channel if body else None)
            return campaign_doc(store, row)

    @app.post(f"{API}/campaigns/{{campaign_id}}/stop", summary="Stop a campaign and its active run")
    def stop_campaign(campaign_id: str, user: Who) -> dict:
        with state.read() as store:
            return campaign_doc(store, request_stop(store, RealClock(), campaign_id, user))

    # -- the event stream ---------------------------------------------------------------------------------------------

    @app.get(f"{API}/stream", response_class=EventSourceResponse,
             summary="Server-sent events: 'channels' (live values that changed), 'run' (state changes), 'event' "
                     "(run events); resumable with Last-Event-ID; 'reset' means reload")
    async def stream(user: Who, request: Request,
                     last_event_id: Annotated[str | None, Header()] = None) -> AsyncIterator[ServerSentEvent]:
        board = state.board
        after = board.last_id
        if last_event_id is not None and last_event_id.strip().isdigit():
            after = int(last_event_id)
        yield ServerSentEvent(event="hello", data={"last_id": board.last_id}, id=str(board.last_id), retry=2000)
        idle = 0.0
        while not await request.is_disconnected():
            changes, missed = board.since(after)
            if missed:
                yield ServerSentEvent(event="reset", data={"last_id": board.last_id}, id=str(board.last_id))
                after = board.last_id
                continue
            for change in changes:
                yield ServerSentEvent(event=change.kind, data=change.data, id=str(change.id))
                after = change.id
            if changes:
                idle = 0.0
                continue
            await asyncio.to_thread(board.wait, after, 1.0)
            idle += 1.0
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield ServerSentEvent(comment="keep-alive")

    return app
