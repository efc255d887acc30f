"""The station service's HTTP API (FastAPI, OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs).

Reads (channels, runs, events, records, samples) come from the service's live board and the API's own read
connection to the store, so a dashboard never waits for a poll round. Operator actions (start, stop, pause,
continue) go to the supervision thread through the service's command queue, which carries them out between rounds
and records who asked (the token's name). Every request needs a token, as a Bearer header or as the dashboard's
session cookie made from one at login (station/api/sessions.py; a POST with the cookie also needs the session's
CSRF header); every refusal is a 4xx with the same one-line message the CLI gives, as
``{"error": {"status": N, "message": "..."}}``, never a traceback. The dashboard's own files (``/``, ``/static/``)
are served without a token: they hold no data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Cookie, Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from drivers.base import DriverError
from protocols.campaign import load_campaign
from protocols.cells import Cell, load_cell_text
from protocols.clock import RealClock
from protocols.errors import ProtocolError
from protocols.library import resolve_campaign_path
from protocols.program import StepProgram
from station.analysis.report import analyze_run
from station.api.figures import figures
from station.api.series import DEFAULT_POINTS, MAX_POINTS, MIN_POINTS, series_doc
from station.api.sessions import COOKIE, CSRF_HEADER, Sessions, csrf_ok
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
from station.export import ExportError, MissingDependency, export_run
from station.instruments import InstrumentError
from station.lab import LabLink
from station.plan import plan_document, scan_rate_setting_for
from station.run_data import load_run
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
    SampleRow,
    StationRow,
    Store,
    StoreError,
    UnknownCampaign,
    UnknownRun,
    UnknownSample,
)
from station.store.postgres_backend import shown
from station.web.serve import SecurityHeaders, add_static_routes

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
#: analyses kept, by run and its record count and state: a run page opened again (or by a second browser) does not
#: fit its spectra again; a few, since each holds figure data of a few hundred kB at most
ANALYSES_KEPT = 16
#: a download's type by file suffix
EXPORT_TYPES = {".csv": "text/csv; charset=utf-8", ".parquet": "application/vnd.apache.parquet"}


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


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=4096, description="the owner token or a named user's token")


class ApiState:
    """What the routes share: the station (touched only on the supervision thread, through ``commands``), the
    live board, the API's own read connection to the store, the accepted tokens and the browsers' sessions."""

    def __init__(self, station: Station, board: Board, commands: CommandQueue, tokens: Tokens,
                 sessions: Sessions | None = None):
        self.station = station
        self.config: StationConfig = station.config
        self.board = board
        self.commands = commands
        self.tokens = tokens
        self.sessions = sessions if sessions is not None else Sessions()
        # the station's own store (with a lab database too: its runs are this station's; the lab's are forwarded)
        self.store = Store(station.store.data_dir, local=True, station=station.config.station)
        self.lab: Store | None = None
        """The lab's database, for the lab-wide pages (read only: every station writes its own store)."""
        self._lock = threading.Lock()
        self.analyses: dict[tuple, dict] = {}
        self._analyses_lock = threading.Lock()

    @contextlib.contextmanager
    def read(self, run_id: str | None = None) -> Iterator[Store]:
        """The read connection, one request at a time (SQLite connections are not shared between threads).
        ``run_id``: a run that may be another station's; its pages are then read from the lab's database."""
        with self._lock:
            if run_id is not None and self.config.database and not _holds(self.store, run_id):
                lab = self._lab_store()
                if lab is not None and _holds(lab, run_id):
                    yield lab
                    return
            yield self.store

    @contextlib.contextmanager
    def read_both(self) -> Iterator[tuple[Store, Store | None]]:
        """This station's store and the lab's database (``None`` without one, or while it cannot be reached), for
        the pages of what the lab shares (samples, campaigns): the lab's rows, and this station's own where it
        holds them fresher (not forwarded yet)."""
        with self._lock:
            yield self.store, (self._lab_store() if self.config.database else None)

    def lab_failed(self) -> None:
        """The lab's database failed in the middle of a read: open it again next time."""
        if self.lab is not None:
            with contextlib.suppress(StoreError):
                self.lab.close()
        self.lab = None

    def _lab_store(self) -> Store | None:
        """The lab's database for reading every station's runs (opened on first use, again after it went away);
        ``None`` while it cannot be reached."""
        if self.lab is None:
            try:
                self.lab = Store(self.station.store.data_dir, self.config.database, station=self.config.station)
            except StoreError:
                return None
        return self.lab

    def lab_view(self) -> dict[str, Any]:
        """Every station of the lab and every run, from the lab's database (this station's own store when it
        cannot be reached, said so)."""
        now = RealClock().unix()
        with self._lock:
            lab = self._lab_store() if self.config.database else None
            try:
                if lab is not None:
                    return {"reachable": True, "database": lab.where, "this_station": self.config.station,
                            "stations": [_station_doc(s, now) for s in lab.stations()],
                            "runs": [run_doc(r, now) for r in lab.runs(light=True)]}
            except StoreError:
                with contextlib.suppress(StoreError):
                    lab.close()  # type: ignore[union-attr]
                self.lab = None
            return {"reachable": False, "database": shown(self.config.database) if self.config.database else None,
                    "this_station": self.config.station, "stations": [],
                    "runs": [run_doc(r, now) for r in self.store.runs(light=True)]}

    def sample(self, store: Store, sample_id: str) -> SampleRow:
        """A sample from this station's store, or the lab's (copied here, for the campaign or run on it)."""
        if self.config.database:
            return LabLink(self.config.database, self.config.station, store, RealClock()).sample(sample_id)
        return store.sample(sample_id)

    def act(self, action: Callable[[], Any]) -> Any:
        """Carry out ``action`` on the supervision thread and return its result (or raise its error)."""
        future: Future = self.commands.submit(action)
        try:
            return future.result(timeout=ACTION_TIMEOUT_S)
        except FutureTimeout:
            raise ApiError(504, f"the station is still carrying this out after {ACTION_TIMEOUT_S:g} s (an "
                                f"instrument slow to answer); look at the run's state and events") from None

    def keep_analysis(self, key: tuple, answer: dict) -> None:
        """Remember a run's analysis answer (the oldest of :data:`ANALYSES_KEPT` goes)."""
        with self._analyses_lock:
            while len(self.analyses) >= ANALYSES_KEPT:
                self.analyses.pop(next(iter(self.analyses)))
            self.analyses[key] = answer

    def close(self) -> None:
        with self._lock:
            self.store.close()
            if self.lab is not None:
                self.lab.close()


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


def _from_lab(state: ApiState, lab: Store | None, read: Callable[[Store], list],
              missing: tuple[type[Exception], ...] = ()) -> list:
    """What ``read`` finds in the lab's database; nothing when there is none, it cannot be reached (it is opened
    again next time), or it does not hold what was asked (``missing``)."""
    if lab is None:
        return []
    try:
        return read(lab)
    except missing:
        return []
    except StoreError:
        state.lab_failed()
        return []


def _refuse_elsewhere(state: ApiState, campaign_id: str, action: str) -> None:
    """A campaign another station runs is acted on there: its engine is the one that reads the request."""
    with state.read_both() as (store, lab):
        try:
            store.campaign(campaign_id)
            return
        except UnknownCampaign:
            runs = _from_lab(state, lab, lambda db: db.runs_of_campaign(db.campaign(campaign_id).id),
                             missing=(UnknownCampaign,))
            found = _from_lab(state, lab, lambda db: [db.campaign(campaign_id)], missing=(UnknownCampaign,))
    if not found:
        return  # nowhere: the request says so as it always did
    where = found[0].station or next((r.station for r in runs if r.station), None)
    raise ApiError(409, f"campaign {found[0].id} is run by {f'station {where}' if where else 'another station'}; "
                        f"{action} it there (its dashboard, or `station campaign {action} {found[0].id}` on that PC)")


def _holds(store: Store, run_id: str) -> bool:
    try:
        store.run(run_id)
    except UnknownRun:
        return False
    return True


def _station_doc(row: StationRow, now: float) -> dict[str, Any]:
    return {"name": row.name, "api_url": row.api_url, "started_at": iso_utc(row.started_at),
            "seen_at": iso_utc(row.seen_at), "seen_s_ago": max(0.0, now - row.seen_at), "version": row.version}


def _lab_doc(station: Station) -> dict[str, Any] | None:
    """The lab's database as the station sees it: None without one; else whether it is reached, and since when
    the station buffers (its own store keeps everything meanwhile)."""
    lab = getattr(station, "lab", None)
    if lab is None:
        return None
    s = lab.state()
    return {"database": s.database, "connected": s.connected, "buffering": s.buffering_since is not None,
            "buffering_since": iso_utc(s.buffering_since), "why": s.why, "forwarded_at": iso_utc(s.forwarded_at),
            "backlog": s.backlog}


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
        case DriverError() | InstrumentError() | StoreError() | ServiceStopping() | ExportError():
            return 503
    return 500


EXPECTED: tuple[type[Exception], ...] = (UnknownRun, UnknownSample, UnknownCampaign, UnknownChannel, ChannelBusy,
                                         RunError, BadRequest, CampaignError, ConfigError, DriverError,
                                         InstrumentError, StoreError, ServiceStopping, ExportError)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


#: methods that change nothing: a cookie is enough for them; any other needs the session's CSRF header as well
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _who(request: Request, authorization: Annotated[str | None, Header(description="Bearer TOKEN")] = None,
         station_session: Annotated[str | None, Cookie(description="the dashboard's session (POST /api/v1/login)")]
         = None,
         x_station_csrf: Annotated[str | None, Header(description="the session's CSRF value, with the cookie on a "
                                                                  "POST")] = None) -> str:
    """The name behind the request's token or session cookie (recorded with what it does), or 401; a state-
    changing request made with the cookie and without the session's CSRF value is 403, before anything is done.
    A Bearer header, when sent, decides alone (a script never depends on a browser's cookie)."""
    api: ApiState = request.app.state.api
    if authorization:
        scheme, _, value = authorization.partition(" ")
        name = api.tokens.who(value.strip()) if scheme.lower() == "bearer" else None
    else:
        session = api.sessions.get(station_session)
        name = session.user if session else None
        if session is not None and request.method not in SAFE_METHODS and not csrf_ok(session, x_station_csrf):
            raise ApiError(403, f"this request came with the session cookie but without the session's "
                                f"{CSRF_HEADER} header; send the 'csrf' value GET /api/v1/session gives")
    if name is None:
        raise ApiError(401, "a valid token is needed: send 'Authorization: Bearer TOKEN' (the token is in the "
                            "data directory's api-token file, readable by its owner only) or log in at "
                            "POST /api/v1/login")
    return name


Who = Annotated[str, Depends(_who)]


def _unreadable(run_id: str, exc: ValidationError) -> ApiError:
    """A stored run whose program or cell record this version cannot read (written by hand or by a foreign
    importer): its records and source still show, its analysis and export cannot be made."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(x) for x in first.get("loc", ())) or exc.title
    why = first.get("msg", "invalid")
    return ApiError(409, f"run {run_id}: its stored {exc.title} cannot be read ({where}: {why}); its records can "
                         f"still be read at /api/v1/runs/{run_id}/records")


def create_app(state: ApiState) -> FastAPI:
    app = FastAPI(title="Battery test station", version="1", openapi_url=f"{API}/openapi.json",
                  docs_url=f"{API}/docs", redoc_url=None, max_body_size=MAX_BODY_BYTES,
                  description="Channels, runs, samples and a live event stream of one station service. Every "
                              "request needs `Authorization: Bearer TOKEN`.")
    app.state.api = state
    app.state.stopping = threading.Event()  # set by the server's stop (station.api.server): event streams end then
    app.add_middleware(SecurityHeaders)
    add_static_routes(app)

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

    # -- browser sessions (the dashboard) ---------------------------------------------------------------------------

    @app.post(f"{API}/login", summary="Exchange a token for a session cookie (HttpOnly, SameSite=Strict) and the "
                                       "session's CSRF value")
    def login(body: LoginBody, request: Request, response: Response) -> dict:
        user = state.tokens.who(body.token)
        if user is None:
            raise ApiError(401, "that token is not valid: give the owner token (the data directory's api-token "
                                "file) or a named user's token (`station token new NAME`)")
        state.sessions.end(request.cookies.get(COOKIE))  # a new login replaces this browser's old session
        sid, session = state.sessions.create(user)
        response.set_cookie(COOKIE, sid, max_age=int(state.sessions.ttl_s), path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return {"user": user, "csrf": session.csrf}

    @app.get(f"{API}/session", summary="The logged-in user of this browser's session and its CSRF value, or 401")
    def session(request: Request) -> dict:
        found = state.sessions.get(request.cookies.get(COOKIE))
        if found is None:
            raise ApiError(401, "not logged in: POST /api/v1/login with {\"token\": ...}")
        return {"user": found.user, "csrf": found.csrf}

    @app.post(f"{API}/logout", summary="End this browser's session and clear its cookie")
    def logout(request: Request, response: Response,
               x_station_csrf: Annotated[str | None, Header()] = None) -> dict:
        sid = request.cookies.get(COOKIE)
        found = state.sessions.get(sid)
        if found is not None and not csrf_ok(found, x_station_csrf):
            raise ApiError(403, f"logging out needs the session's {CSRF_HEADER} header")
        state.sessions.end(sid)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return {"user": found.user if found else None}

    # -- station and channels ---------------------------------------------------------------------------------------

    @app.get(f"{API}/station", summary="This station: its data directory, instruments and service")
    def station_info(user: Who) -> dict:
        return {"data_dir": str(state.station.store.data_dir), "poll_interval_s": state.config.poll_seconds,
                "instruments": [{"name": i.name, "kind": i.kind, "channels": len(i.channels)}
                                for i in state.config.instruments],
                "you": user, "now": iso_utc(RealClock().unix()), "station": state.config.station,
                "lab": _lab_doc(state.station)}

    @app.get(f"{API}/lab", summary="Every station of the lab and every run, from the lab's database")
    def lab(user: Who) -> dict:
        return state.lab_view()

    @app.get(f"{API}/channels", summary="Every configured channel with its run and live values")
    def channels(user: Who, instrument: str | None = None, state_: Annotated[str | None, Query(alias="state")]
                 = None) -> dict:
        now = RealClock().unix()
        with state.read() as store:
            active = {r.channel: r for r in store.runs(active_only=True, light=True)}
        live = {doc["channel"]: doc for doc in state.board.live().values()}
        chambers = {channel: doc for doc in state.board.chambers() for channel in doc["channels"]}
        out = []
        for inst in state.config.instruments:
            if instrument is not None and inst.name != instrument:
                continue
            for chan in inst.channels:
                cid = f"{inst.name}/{chan.id}"
                row = active.get(cid)
                doc = {"channel": cid, "instrument": inst.name, "kind": inst.kind,
                       "state": str(row.state) if row else "free",
                       "run": run_doc(row, now) if row else None, "live": live.get(cid) if row else None,
                       "chamber": chambers.get(cid)}
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
        with state.read(run_id) as store:
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

    @app.get(f"{API}/runs/{{run_id}}/series", summary="Voltage, current and step capacity against test time, "
                                                       "thinned to at most N points keeping each bucket's min and max")
    def series(run_id: str, user: Who,
               points: Annotated[int, Query(ge=MIN_POINTS, le=MAX_POINTS)] = DEFAULT_POINTS) -> dict:
        with state.read(run_id) as store:
            row = store.run(run_id)
            records = store.records(row.id)
        return series_doc(row.id, records, points)

    @app.get(f"{API}/runs/{{run_id}}/analysis", summary="The run's analysis (as `station analyze --json`) and the "
                                                         "data of its figures")
    def analysis(run_id: str, user: Who) -> dict:
        with state.read(run_id) as store:
            row = store.run(run_id)
            key = (row.id, row.last_seq, str(row.state))
            known = state.analyses.get(key)
            if known is not None:
                return known
            try:
                data = load_run(store, row.id)
            except ValidationError as exc:
                raise _unreadable(row.id, exc) from None
        doc = analyze_run(data)  # outside the read lock: EIS fits take a second, other requests go on meanwhile
        answer = {"analysis": doc, "figures": figures(data, doc)}
        state.keep_analysis(key, answer)
        return answer

    @app.get(f"{API}/runs/{{run_id}}/export", summary="The run's records, cycle summary or EIS points as a Battery "
                                                       "Data Format file (as `station export`)")
    def export(run_id: str, user: Who, what: Literal["records", "summary", "eis"] = "records",
               format_: Annotated[Literal["csv", "parquet"], Query(alias="format")] = "csv") -> FileResponse:
        folder = Path(tempfile.mkdtemp(prefix="station-export-"))
        try:
            with state.read(run_id) as store:
                row = store.run(run_id)
                try:
                    written = export_run(store, row.id, folder, format_, summary=what == "summary")
                except ValidationError as exc:
                    raise _unreadable(row.id, exc) from None
            files = [f for f in written if f.suffix in EXPORT_TYPES]
            wanted = [f for f in files if ".eis." in f.name] if what == "eis" else files[:1]
            if not wanted:
                raise ApiError(404, f"run {row.id} has no impedance points to export; export its records instead "
                                    f"(what=records)")
        except MissingDependency as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise ApiError(503, str(exc)) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        path = wanted[0]
        return FileResponse(path, media_type=EXPORT_TYPES[path.suffix], filename=path.name,
                            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))

    @app.get(f"{API}/runs/{{run_id}}/program", summary="The run's protocol source and its plan (as `station plan "
                                                        "--json`)")
    def program(run_id: str, user: Who) -> dict:
        row = _row(run_id)
        kind = row.instrument.get("kind") if isinstance(row.instrument, dict) else None
        try:
            scan_rate = scan_rate_setting_for(state.config, row.channel) if state.config is not None else None
            given = scan_rate is not None
        except ConfigError:  # a dry run's or an import's channel: not one of this station's
            scan_rate, given = None, False
        try:
            plan = plan_document(StepProgram.from_json(row.program), Cell.model_validate(row.cell),
                                 scan_rate=scan_rate, channel_given=given,
                                 instrument_kind=kind if kind in ("neware", "biologic") else None)
            problem = None
        except Exception as exc:  # an imported run's program may not be a plannable one: the source still shows
            log.info("no plan for run %s: %s", row.id, exc)
            plan, problem = None, _one_line(f"no plan for this run: {type(exc).__name__}: {exc}")
        return {"run_id": row.id, "protocol": row.protocol_name, "protocol_file": row.protocol_file,
                "protocol_source": row.protocol_source, "parameters": row.parameters, "plan": plan,
                "plan_error": problem}

    @app.get(f"{API}/runs/{{run_id}}/events", summary="A run's events, oldest first")
    def events(run_id: str, user: Who, after: Annotated[int, Query(ge=0)] = 0) -> dict:
        with state.read(run_id) as store:
            rows = store.events(store.run(run_id).id)
        return {"events": [event_doc(e) for e in rows if e.id > after]}

    @app.get(f"{API}/runs/{{run_id}}/records", summary="A page of a run's records after a record number")
    def records(run_id: str, user: Who, after: Annotated[int, Query(ge=0, description="last record number the "
                                                                    "client has (0: from the start)")] = 0,
                limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000) -> dict:
        columns = list(RECORD_DTYPE.names)
        rows: list[list] = []
        with state.read(run_id) as store:
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

    @app.get(f"{API}/samples", summary="Every sample (of the lab, with a lab database)")
    def samples(user: Who) -> dict:
        with state.read_both() as (store, lab):
            rows = {r.id: r for r in _from_lab(state, lab, lambda db: db.samples())}
            rows.update((r.id, r) for r in store.samples())
        return {"samples": [sample_doc(r) for r in sorted(rows.values(), key=lambda r: (r.created_at, r.id))]}

    @app.get(f"{API}/samples/{{sample_id}}", summary="A sample and every run on it (every station's, with a lab "
                                                     "database)")
    def sample(sample_id: str, user: Who) -> dict:
        now = RealClock().unix()
        with state.read_both() as (store, lab):
            there = _from_lab(state, lab, lambda db: [db.sample(sample_id)], missing=(UnknownSample,))
            try:
                row = store.sample(sample_id)
            except UnknownSample:
                if not there:
                    raise
                row = there[0]
            runs = {r.id: r for r in _from_lab(state, lab, lambda db: db.runs_of_sample(row.id))}
            runs.update((r.id, r) for r in store.runs_of_sample(row.id))  # this station's, fresher
        ordered = sorted(runs.values(), key=lambda r: (r.created_at, r.id))
        return {**sample_doc(row), "runs": [run_doc(r, now) for r in ordered]}

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

    @app.get(f"{API}/campaigns", summary="Every campaign (of the lab, with a lab database)")
    def campaigns(user: Who) -> dict:
        with state.read_both() as (store, lab):
            mine = {row.id for row in store.campaigns()}
            docs = [campaign_doc(store, row, detail=False) for row in store.campaigns()]
            docs += _from_lab(state, lab, lambda db: [campaign_doc(db, row, detail=False) | {"here": False}
                                                      for row in db.campaigns() if row.id not in mine])
        return {"campaigns": [d if "here" in d else d | {"here": True} for d in docs]}

    @app.get(f"{API}/campaigns/{{campaign_id}}", summary="A campaign with its stages, runs, cycles and decisions")
    def campaign(campaign_id: str, user: Who) -> dict:
        with state.read_both() as (store, lab):
            try:
                return campaign_doc(store, store.campaign(campaign_id)) | {"here": True}
            except UnknownCampaign:
                there = _from_lab(state, lab, lambda db: [campaign_doc(db, db.campaign(campaign_id))],
                                  missing=(UnknownCampaign,))
                if not there:
                    raise
                return there[0] | {"here": False}

    @app.post(f"{API}/campaigns", status_code=201, summary="Check a campaign on a sample and store it; the service "
                                                             "starts it on its next round")
    def new_campaign(body: CampaignBody, user: Who) -> dict:
        if not Path(resolve_campaign_path(body.campaign)).is_file():
            raise BadRequest(f"campaign '{body.campaign}' not found on the station's PC (give a library name or a "
                             f"path there)")
        with state.read() as store:
            cell = Cell.model_validate(state.sample(store, body.sample).cell)
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
        _refuse_elsewhere(state, campaign_id, "confirm")
        with state.read() as store:
            row = request_confirm(store, RealClock(), state.config, campaign_id, user,
                                  body.channel if body else None)
            return campaign_doc(store, row)

    @app.post(f"{API}/campaigns/{{campaign_id}}/stop", summary="Stop a campaign and its active run")
    def stop_campaign(campaign_id: str, user: Who) -> dict:
        _refuse_elsewhere(state, campaign_id, "stop")
        with state.read() as store:
            return campaign_doc(store, request_stop(store, RealClock(), campaign_id, user))

    # -- the event stream ---------------------------------------------------------------------------------------------

    @app.get(f"{API}/stream", response_class=EventSourceResponse,
             summary="Server-sent events: 'channels' (live values that changed), 'run' (state changes), 'event' "
                     "(run events), 'chambers' (climate chambers' readings); resumable with Last-Event-ID; 'reset' "
                     "means reload")
    async def stream(user: Who, request: Request,
                     last_event_id: Annotated[str | None, Header()] = None) -> AsyncIterator[ServerSentEvent]:
        board = state.board
        after = board.last_id
        if last_event_id is not None and last_event_id.strip().isdigit():
            after = int(last_event_id)
        yield ServerSentEvent(event="hello", data={"last_id": board.last_id}, id=str(board.last_id), retry=2000)
        idle = 0.0
        stopping: threading.Event = request.app.state.stopping
        while not stopping.is_set() and not await request.is_disconnected():
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
