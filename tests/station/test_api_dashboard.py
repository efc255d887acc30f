"""The API's side of the dashboard (issue 16): login to an HttpOnly session cookie with a CSRF value, the page's
static files, a run's decimated series, its analysis with figure data, exports and the program.

Reads run against a store filled by dry runs and by hand, through an API state without a service (no instrument
is touched by a read); the actions run against a service on a simulated BTS, as tests/station/test_api.py does."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from station.analysis.report import analyze_run
from station.api.app import ApiState, create_app
from station.api.sessions import COOKIE, Sessions
from station.api.tokens import Tokens, token_hash
from station.cli import app as cli
from station.config import load_config
from station.export import export_run
from station.run_data import load_run
from station.store import RECORD_DTYPE, Store
from station.web import STATIC_DIR
from tests.station.sim_bts import ALICE, LONG, served_api, write_config

OWNER = "owner-token-for-tests-0123456789abcdefghijklmn"
CSRF = "X-Station-CSRF"



# -- a store of finished runs, read without a service -----------------------------------------------------------------


def _dry(data_dir: Path, protocol: str, cell: str, **params: object) -> str:
    args = ["run", protocol, "--cell", cell, "--dry-run", "--json", "--data-dir", str(data_dir)]
    for name, value in params.items():
        args += ["--set", f"{name}={value}"]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)["run_id"]


def _hand_run(store: Store, run_id: str, records: np.ndarray) -> None:
    """A run whose records the test wrote itself (the program of a dry run stands in: the series reads none)."""
    store.create_run(run_id=run_id, at=0.0, channel=f"hand/{run_id}", instrument={"kind": "test"}, protocol_name="hand",
                     protocol_file=None, protocol_source="protocol: hand", parameters={}, program="{}",
                     cell={}, dry_run=True)
    store.append_records(run_id, records)
    store.set_state(run_id, "finished", 0.0)


def _records(n: int, seed: int = 7) -> np.ndarray:
    """``n`` records with noisy voltage, current and capacity and a few lone spikes (what decimation must keep)."""
    rng = np.random.default_rng(seed)
    block = np.zeros(n, dtype=RECORD_DTYPE)
    block["seq"] = np.arange(1, n + 1)
    block["test_time"] = 10.0 * np.arange(n)
    block["voltage"] = 3.7 + 0.01 * rng.standard_normal(n)
    block["current"] = np.repeat([0.001, -0.001], (n + 1) // 2)[:n] + 1e-6 * rng.standard_normal(n)
    block["capacity"] = np.cumsum(np.abs(block["current"])) * 10 / 3600
    block["voltage"][[17, n // 3, n - 5]] = [4.9, 0.1, 5.0]  # spikes one record wide
    block["current"][n // 2] = 0.5
    block["frequency"] = block["z_real"] = block["z_imag"] = np.nan
    return block


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("dashboard")
    runs = {"p3": _dry(data_dir, "p3-full-cell-cycling", "predeposited-ncm622", cycles=2),
            "p5": _dry(data_dir, "p5-eis", "llto-li", settle="1 min"),
            "p6": _dry(data_dir, "p6-cyclic-voltammetry", "llto-li", cycles=2),
            "p7": _dry(data_dir, "p7-conductivity", "host-blocking", dc_time="10 min")}
    store = Store(data_dir)
    _hand_run(store, "hand-big", _records(10_007))
    short = _records(300)
    short["capacity"][5] = np.nan
    _hand_run(store, "hand-short", short)
    store.close()
    cfg, _ = load_config(str(write_config(data_dir / "station.yaml", 1)))
    station = SimpleNamespace(config=cfg, store=SimpleNamespace(data_dir=data_dir))
    tokens = Tokens("owner", OWNER, {"alice": token_hash(ALICE)})
    state = ApiState(station, board=None, commands=None, tokens=tokens)  # type: ignore[arg-type]
    yield SimpleNamespace(state=state, data_dir=data_dir, runs=runs, app=create_app(state))
    state.close()


@pytest.fixture
def client(offline):
    """A fresh browser: its own cookie jar."""
    with TestClient(offline.app, raise_server_exceptions=False) as c:
        yield c


def bearer(token: str = OWNER) -> dict:
    return {"Authorization": f"Bearer {token}"}


# -- 1. login, the cookie and CSRF ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("token", "user"), [(OWNER, "owner"), (ALICE, "alice")])
def test_login_sets_an_httponly_strict_session_cookie_that_reads_like_the_token(client, token, user):
    assert client.get("/api/v1/session").status_code == 401
    response = client.post("/api/v1/login", json={"token": token})
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["user"] == user and len(doc["csrf"]) >= 40
    cookie = response.headers["set-cookie"]
    attributes = [a.strip().lower() for a in cookie.split(";")]
    assert attributes[0].startswith(f"{COOKIE}=")
    sid = cookie.split(";")[0].split("=", 1)[1]
    assert token not in cookie and len(sid) >= 40  # a random id, never the token
    assert {"httponly", "samesite=strict", "path=/"} <= set(attributes)
    assert "secure" not in attributes  # plain http here; https gets Secure (below)
    assert client.get("/api/v1/session").json() == {"user": user, "csrf": doc["csrf"]}
    assert client.get("/api/v1/station").json()["you"] == user  # the cookie alone reads every GET route
    assert client.get("/api/v1/runs").status_code == 200


def test_over_https_the_cookie_is_secure(offline):
    with TestClient(offline.app, base_url="https://station.lab") as c:
        cookie = c.post("/api/v1/login", json={"token": OWNER}).headers["set-cookie"].lower()
    assert "; secure" in cookie


@pytest.mark.parametrize("body", [{"token": "nope"}, {"token": OWNER + "x"}, {"token": token_hash(ALICE)}, {},
                                  {"token": ""}, {"token": 5}, {"token": OWNER, "extra": 1}])
def test_a_wrong_token_is_refused_and_sets_nothing(client, body):
    response = client.post("/api/v1/login", json=body)
    assert response.status_code in (401, 422)
    assert "set-cookie" not in response.headers
    error = response.json()["error"]
    assert error["status"] == response.status_code and "\n" not in error["message"]
    assert client.get("/api/v1/session").status_code == 401
    assert client.get("/api/v1/runs").status_code == 401


def test_a_forged_or_ended_session_is_not_one(client):
    client.cookies.set(COOKIE, "made-up-session-id")
    assert client.get("/api/v1/runs").status_code == 401
    login = client.post("/api/v1/login", json={"token": OWNER}).json()
    assert client.post("/api/v1/logout").status_code == 403  # logging out needs the CSRF value too
    assert client.get("/api/v1/runs").status_code == 200
    out = client.post("/api/v1/logout", headers={CSRF: login["csrf"]})
    assert out.status_code == 200 and out.json() == {"user": "owner"}
    assert f'{COOKIE}=""' in out.headers["set-cookie"] or "max-age=0" in out.headers["set-cookie"].lower()
    assert client.get("/api/v1/session").status_code == 401
    assert client.get("/api/v1/runs").status_code == 401


def test_the_old_cookie_value_is_dead_after_logout_even_if_replayed(client):
    client.post("/api/v1/login", json={"token": ALICE})
    sid = client.cookies.get(COOKIE)
    csrf = client.get("/api/v1/session").json()["csrf"]
    client.post("/api/v1/logout", headers={CSRF: csrf})
    client.cookies.set(COOKIE, sid)
    assert client.get("/api/v1/runs").status_code == 401


def test_bearer_needs_no_csrf_and_a_bearer_header_decides_alone(client):
    client.post("/api/v1/login", json={"token": ALICE})
    assert client.get("/api/v1/station", headers=bearer()).json()["you"] == "owner"
    assert client.get("/api/v1/station", headers=bearer("wrong")).status_code == 401  # no fallback to the cookie
    # a POST with the Bearer token passes authentication without the CSRF header (the run is unknown: 404 after it)
    assert client.post("/api/v1/runs/nope/pause", headers=bearer()).status_code == 404
    assert client.post("/api/v1/runs/nope/pause").status_code == 403  # the cookie alone: refused first


def test_sessions_expire_and_the_table_is_bounded():
    now = [1000.0]
    sessions = Sessions(clock=lambda: now[0], ttl_s=60.0, limit=3)
    sid, session = sessions.create("alice")
    assert sessions.get(sid) is session
    now[0] += 60.0
    assert sessions.get(sid) is None and len(sessions) == 0
    ids = [sessions.create(f"u{i}")[0] for i in range(5)]
    assert len(sessions) == 3 and sessions.get(ids[0]) is None and sessions.get(ids[4]).user == "u4"


# -- actions with the cookie: a service on a simulated BTS ------------------------------------------------------------


@pytest.fixture
def live(tmp_path, processes):
    with served_api(tmp_path, processes, channels=1) as served:
        yield served


def test_a_cookie_post_without_the_csrf_header_is_refused_and_not_carried_out(live):
    c = live.client
    csrf = c.post("/api/v1/login", json={"token": ALICE}).json()["csrf"]
    started = c.post("/api/v1/runs", headers={CSRF: csrf}, json={
        "protocol_source": LONG, "protocol_file": "test.yaml", "cell": "predeposited-ncm622"})
    assert started.status_code == 201, started.text
    run_id = started.json()["run_id"]
    for headers in ({}, {CSRF: "wrong"}, {CSRF: csrf + "x"}, {CSRF: ""}):
        for action in ("stop", "pause"):
            refused = c.post(f"/api/v1/runs/{run_id}/{action}", headers=headers, json={} if action == "stop" else None)
            assert refused.status_code == 403, refused.text
            assert CSRF in refused.json()["error"]["message"]
    refused = c.post("/api/v1/runs", headers={CSRF: "wrong"}, json={
        "protocol_source": LONG, "cell": "predeposited-ncm622"})
    assert refused.status_code == 403
    assert live.store.run(run_id).state == "running"  # nothing was carried out
    assert len(live.store.runs()) == 1
    events = c.get(f"/api/v1/runs/{run_id}/events").json()["events"]
    assert [e["message"] for e in events if e["kind"] == "operator"] == ["started by alice"]

    paused = c.post(f"/api/v1/runs/{run_id}/pause", headers={CSRF: csrf})
    assert paused.json() == {"run_id": run_id, "state": "paused"}
    stopped = c.post(f"/api/v1/runs/{run_id}/stop", headers=bearer(live.tokens.owner_token) | {"Cookie": ""},
                     json={})
    assert stopped.json()["state"] == "stopped"
    operator = [e["message"] for e in c.get(f"/api/v1/runs/{run_id}/events").json()["events"]
                if e["kind"] == "operator"]
    assert operator == ["started by alice", "pause (by alice)", f"stop (by {live.tokens.owner})"]


# -- 2. the page and its static files ---------------------------------------------------------------------------------


def test_the_page_shell_and_static_files_need_no_token_and_nothing_outside_is_served(client, tmp_path):
    made = []
    index = STATIC_DIR / "index.html"
    if not index.exists():  # the front end may not be there yet: the route is tested with a stand-in
        index.write_text("<!doctype html><title>station</title>")
        made.append(index)
    try:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.content == index.read_bytes()
        assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
        same = client.get("/static/index.html")
        assert same.status_code == 200 and same.content == index.read_bytes()
    finally:
        for path in made:
            path.unlink()
    for bad in ("/static/../__init__.py", "/static/%2e%2e/__init__.py", "/static/..%2f__init__.py",
                "/static/%2e%2e%2f%2e%2e%2fapi%2fapp.py", "/static/", "/static/nope.js", "/static/.hidden",
                "/static//etc/passwd", "/static/%00", "/static/vendor/../../__init__.py"):
        response = client.get(bad)
        assert response.status_code == 404, bad
        assert "\n" not in response.json()["error"]["message"]
    assert client.post("/static/index.html").status_code == 405


def test_a_javascript_module_is_served_as_javascript(client):
    probe = STATIC_DIR / "zz-probe-test.js"
    probe.write_text("export const x = 1;\n")
    try:
        response = client.get("/static/zz-probe-test.js")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/javascript")
    finally:
        probe.unlink()


# -- 3. the series ----------------------------------------------------------------------------------------------------


def _positions(doc: dict, records: np.ndarray) -> np.ndarray:
    """Which records were sent: found back by test time (strictly increasing in these runs)."""
    at = np.searchsorted(records["test_time"], doc["test_time_s"])
    assert np.array_equal(records["test_time"][at], doc["test_time_s"])
    return at


@pytest.mark.parametrize("points", [8, 14, 200, 2000])
def test_the_series_keeps_every_buckets_min_and_max_and_both_ends_within_n(client, offline, points):
    records = _records(10_007)
    doc = client.get("/api/v1/runs/hand-big/series", params={"points": points}, headers=bearer()).json()
    assert doc["run_id"] == "hand-big" and doc["records"] == 10_007
    assert len(doc["test_time_s"]) == doc["points"] <= points
    assert all(len(doc[k]) == doc["points"] for k in ("voltage_v", "current_a", "capacity_ah"))
    at = _positions(doc, records)
    assert at[0] == 0 and at[-1] == 10_006 and list(at) == sorted(set(at))
    for name, field in (("voltage_v", "voltage"), ("current_a", "current"), ("capacity_ah", "capacity")):
        assert doc[name] == records[field][at].tolist()  # each point is the record's own value
    size = doc["bucket_records"]
    assert size == math.ceil(10_007 / math.ceil(10_007 / size))  # buckets of equal size from the first record
    sent = set(at.tolist())
    for start in range(0, 10_007, size):  # plain Python, one bucket at a time
        chunk = records[start:start + size]
        for field in ("voltage", "current", "capacity"):
            values = chunk[field].tolist()
            lo = start + values.index(min(values))
            hi = start + values.index(max(values))
            assert lo in sent and hi in sent, (field, start)
    spikes = {17, 10_007 // 3, 10_007 - 5, 10_007 // 2}
    if points >= 200:  # then each spike is alone in its bucket, and so kept
        assert spikes <= sent
    else:  # one or two buckets: the largest spikes still are
        assert {10_007 // 3, 10_007 - 5, 10_007 // 2} <= sent


def test_a_run_shorter_than_n_is_sent_whole_equal_to_the_store(client, offline):
    doc = client.get("/api/v1/runs/hand-short/series", headers=bearer()).json()
    store = Store(offline.data_dir)
    stored = store.records("hand-short")
    store.close()
    assert doc["records"] == doc["points"] == 300 and doc["bucket_records"] is None
    assert doc["test_time_s"] == stored["test_time"].tolist()
    assert doc["voltage_v"] == stored["voltage"].tolist() and doc["current_a"] == stored["current"].tolist()
    assert doc["capacity_ah"][5] is None  # NaN is sent as null
    assert doc["capacity_ah"][:5] + doc["capacity_ah"][6:] == stored["capacity"][:5].tolist() + \
        stored["capacity"][6:].tolist()


def test_the_series_of_a_dry_run_matches_its_records(client, offline):
    run_id = offline.runs["p3"]
    store = Store(offline.data_dir)
    stored = store.records(run_id)
    store.close()
    doc = client.get(f"/api/v1/runs/{run_id[:-2]}/series", params={"points": 20000}, headers=bearer()).json()
    assert doc["run_id"] == run_id and doc["records"] == len(stored) == doc["points"]
    assert doc["capacity_ah"] == stored["capacity"].tolist()  # step capacity, as stored
    small = client.get(f"/api/v1/runs/{run_id}/series", params={"points": 100}, headers=bearer()).json()
    assert small["points"] <= 100
    assert max(small["voltage_v"]) == stored["voltage"].max() and min(small["voltage_v"]) == stored["voltage"].min()
    assert max(small["capacity_ah"]) == stored["capacity"].max()


@pytest.mark.parametrize(("params", "status"), [({"points": 7}, 422), ({"points": 20001}, 422),
                                                ({"points": "x"}, 422), ({}, 200)])
def test_series_limits_and_unknown_runs(client, offline, params, status):
    response = client.get("/api/v1/runs/hand-short/series", params=params, headers=bearer())
    assert response.status_code == status
    missing = client.get("/api/v1/runs/nope/series", headers=bearer())
    assert missing.status_code == 404 and "\n" not in missing.json()["error"]["message"]
    assert client.get("/api/v1/runs/hand-short/series").status_code == 401


# -- 4. the analysis and its figures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def analysed(offline):
    """Each dry run's analysis answer through the API, and the run loaded straight from the store."""
    store = Store(offline.data_dir)
    out = {}
    with TestClient(offline.app) as c:
        for name, run_id in offline.runs.items():
            response = c.get(f"/api/v1/runs/{run_id}/analysis", headers=bearer())
            assert response.status_code == 200, response.text
            out[name] = SimpleNamespace(doc=response.json(), data=load_run(store, run_id), run_id=run_id)
    store.close()
    return out


def _plain(doc):
    return json.loads(json.dumps(doc))


@pytest.mark.parametrize("name", ["p3", "p5", "p6", "p7"])
def test_the_analysis_is_station_analyze_s(analysed, name):
    got = analysed[name]
    assert got.doc["analysis"] == _plain(analyze_run(got.data))
    assert set(got.doc["figures"]) == {"cycles", "profiles", "nyquist", "cv", "conductivity"}


def test_the_cycle_figure_is_the_cycling_analysis(analysed):
    got = analysed["p3"]
    rows = got.doc["analysis"]["cycling"]["cycles"]
    fig = got.doc["figures"]["cycles"]
    assert fig["cycle"] == [r["cycle"] for r in rows]
    for key in ("charge_ah", "discharge_ah", "ce", "retention"):
        assert fig[key] == [r[key] for r in rows], key
    reference = got.doc["analysis"]["cycling"]["reference_cycle"]
    assert fig["retention"][fig["cycle"].index(reference)] == 1.0
    complete = [k for k, ce in enumerate(fig["ce"]) if ce is not None]
    for k in complete:  # CE of a charge-first cycle: discharge over charge
        assert fig["ce"][k] == pytest.approx(fig["discharge_ah"][k] / fig["charge_ah"][k], rel=1e-12)


def test_voltage_profiles_end_at_each_cycles_capacity_and_stay_in_the_cells_window(analysed):
    got = analysed["p3"]
    table = {r["cycle"]: r for r in got.doc["analysis"]["cycling"]["cycles"]}
    profiles = got.doc["figures"]["profiles"]
    assert {p["cycle"] for p in profiles} == set(table)  # 5 cycles: all of them (at most 12)
    records = got.data.records
    for curve in profiles:
        assert len(curve["capacity_ah"]) == len(curve["voltage_v"]) <= 500
        x = curve["capacity_ah"]
        assert x == sorted(x) and x[0] >= 0  # capacity counted on from zero across the direction's steps
        assert x[-1] == pytest.approx(table[curve["cycle"]][f"{curve['direction']}_ah"], rel=1e-9)
        in_cycle = records["voltage"][records["cycle"] == curve["cycle"]]
        assert set(curve["voltage_v"]) <= set(in_cycle.tolist())  # measured values, not interpolated
    limits = got.data.cell
    assert all(2.4 < v < 4.4 for p in profiles for v in p["voltage_v"]), limits.name


def test_a_run_without_cycling_has_no_cycle_figures_and_a_cycling_run_no_eis_or_cv(analysed):
    for name in ("p5", "p6", "p7"):
        figures = analysed[name].doc["figures"]
        assert figures["cycles"] is None and figures["profiles"] is None, name
    p3 = analysed["p3"].doc["figures"]
    assert p3["nyquist"] is None and p3["cv"] is None and p3["conductivity"] is None
    assert analysed["p5"].doc["figures"]["cv"] is None and analysed["p6"].doc["figures"]["nyquist"] is None


@pytest.mark.filterwarnings("ignore:Simulating circuit based on initial parameters")
@pytest.mark.parametrize("name", ["p5", "p7"])
def test_the_nyquist_points_are_the_records_and_the_line_is_the_reported_fit(analysed, name):
    from impedance.models.circuits import CustomCircuit

    got = analysed[name]
    records = got.data.records
    eis_rows = records[np.isfinite(records["frequency"])]
    nyquist = got.doc["figures"]["nyquist"]
    fits = got.doc["analysis"]["eis"]["spectra"]
    assert len(nyquist) == len(fits) >= 1
    assert sum(len(s["z_real"]) for s in nyquist) == len(eis_rows)
    assert [v for s in nyquist for v in s["z_real"]] == eis_rows["z_real"].tolist()
    assert [v for s in nyquist for v in s["minus_z_imag"]] == (-eis_rows["z_imag"]).tolist()
    for spectrum, fit in zip(nyquist, fits, strict=True):
        assert spectrum["circuit"] == fit["circuit"] and len(spectrum["fit_z_real"]) == 200
        f = np.array(spectrum["frequency_hz"])
        grid = np.geomspace(f.max(), f.min(), 200)
        values = [p["value"] for p in fit["parameters"].values()]  # the reported parameters, in the circuit's order
        z = CustomCircuit(fit["circuit"], initial_guess=values).predict(grid, use_initial=True)
        assert np.allclose(spectrum["fit_z_real"], z.real, rtol=1e-9, atol=0)
        assert np.allclose(spectrum["fit_minus_z_imag"], -z.imag, rtol=1e-9, atol=1e-12)
        assert min(spectrum["z_real"]) > 0 and max(spectrum["minus_z_imag"]) > 0  # capacitive, above the axis


def test_the_conductivity_figure_is_the_analysis_and_obeys_sigma_l_over_ra(analysed):
    got = analysed["p7"]
    fig = got.doc["figures"]["conductivity"]
    assert fig == got.doc["analysis"]["conductivity"]
    cell = got.data.cell
    assert fig["sigma_total_s_per_m"] == pytest.approx(cell.thickness / (fig["r_total_ohm"] * cell.area), rel=1e-12)
    assert fig["sigma_i_s_per_m"] == pytest.approx(fig["sigma_total_s_per_m"] - fig["sigma_e_s_per_m"], rel=1e-9)


def test_cv_curves_are_each_cycles_records_with_their_peaks(analysed):
    got = analysed["p6"]
    records = got.data.records
    cv = got.doc["figures"]["cv"]
    peaks = got.doc["analysis"]["cv"]["cycles"]
    assert [(c["step_index"], c["cv_cycle"]) for c in cv] == [(p["step_index"], p["cv_cycle"]) for p in peaks]
    assert [c["cv_cycle"] for c in cv] == [1, 2]
    for curve, peak in zip(cv, peaks, strict=True):
        rows = records[(records["cv_cycle"] == curve["cv_cycle"]) & (records["step_index"] == curve["step_index"])]
        assert len(curve["voltage_v"]) == len(curve["current_a"]) <= min(1000, len(rows))
        assert min(curve["current_a"]) == rows["current"].min() and max(curve["current_a"]) == rows["current"].max()
        assert min(curve["voltage_v"]) == rows["voltage"].min() and max(curve["voltage_v"]) == rows["voltage"].max()
        for v, i in ((peak["cathodic_peak_v"], peak["cathodic_peak_a"]), (peak["anodic_peak_v"],
                                                                         peak["anodic_peak_a"])):
            if i in (rows["current"].min(), rows["current"].max()):  # a peak that is the cycle's extreme is drawn
                assert (v, i) in set(zip(curve["voltage_v"], curve["current_a"], strict=True))


def test_the_analysis_of_an_unknown_run_is_404_and_needs_a_token(client):
    assert client.get("/api/v1/runs/nope/analysis", headers=bearer()).status_code == 404
    assert client.get("/api/v1/runs/nope/analysis").status_code == 401


# -- 5. exports -------------------------------------------------------------------------------------------------------


def _exported(offline, run_id: str, tmp_path: Path, **options) -> list[Path]:
    store = Store(offline.data_dir)
    try:
        return export_run(store, run_id, tmp_path / "ref", **options)
    finally:
        store.close()


def _leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("station-export-*")}


def test_a_records_export_downloads_the_file_station_export_writes(client, offline, tmp_path):
    run_id = offline.runs["p3"]
    before = _leftovers()
    response = client.get(f"/api/v1/runs/{run_id}/export", headers=bearer())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == f'attachment; filename="{run_id}.bdf.csv"'
    reference = _exported(offline, run_id, tmp_path / "ref")[0]
    assert response.content == reference.read_bytes()
    assert _leftovers() <= before  # the temporary folder is gone once the file is sent


@pytest.mark.parametrize(("name", "what", "fmt", "rows"), [
    ("p3", "records", "parquet", "records"), ("p3", "summary", "csv", "cycles"), ("p5", "eis", "parquet", "eis"),
    ("p7", "eis", "csv", "eis")])
def test_each_export_has_the_runs_rows(client, offline, analysed, name, what, fmt, rows, tmp_path):
    import pyarrow.csv
    import pyarrow.parquet

    run_id = offline.runs[name]
    response = client.get(f"/api/v1/runs/{run_id}/export", params={"what": what, "format": fmt}, headers=bearer())
    assert response.status_code == 200, response.text
    suffix = ".parquet" if fmt == "parquet" else ".csv"
    infix = {"records": "", "summary": ".summary", "eis": ".eis"}[what]
    assert response.headers["content-disposition"] == f'attachment; filename="{run_id}{infix}.bdf{suffix}"'
    path = tmp_path / f"x{suffix}"
    path.write_bytes(response.content)
    table = pyarrow.parquet.read_table(path) if fmt == "parquet" else pyarrow.csv.read_csv(path)
    records = analysed[name].data.records
    if rows == "cycles":
        expected = len(analysed[name].doc["analysis"]["cycling"]["cycles"])
    else:
        expected = len(records) if rows == "records" else int(np.isfinite(records["frequency"]).sum())
    assert table.num_rows == expected > 0


def test_export_refusals_are_one_line(client, offline):
    no_eis = client.get(f"/api/v1/runs/{offline.runs['p3']}/export", params={"what": "eis"}, headers=bearer())
    assert no_eis.status_code == 404 and "no impedance points" in no_eis.json()["error"]["message"]
    for params in ({"what": "everything"}, {"format": "xlsx"}):
        bad = client.get(f"/api/v1/runs/{offline.runs['p3']}/export", params=params, headers=bearer())
        assert bad.status_code == 422 and "\n" not in bad.json()["error"]["message"]
    assert client.get("/api/v1/runs/nope/export", headers=bearer()).status_code == 404
    assert client.get(f"/api/v1/runs/{offline.runs['p3']}/export").status_code == 401


# -- 6. the program ---------------------------------------------------------------------------------------------------


def test_the_program_is_the_stored_source_and_station_plan_s_steps(client, offline):
    run_id = offline.runs["p3"]
    doc = client.get(f"/api/v1/runs/{run_id}/program", headers=bearer()).json()
    store = Store(offline.data_dir)
    row = store.run(run_id)
    store.close()
    assert doc["protocol_source"] == row.protocol_source and doc["protocol"] == "full-cell-formation-cycling"
    assert doc["parameters"]["cycles"] == "2" and doc["plan_error"] is None
    planned = CliRunner().invoke(cli, ["plan", "p3-full-cell-cycling", "--cell", "predeposited-ncm622", "--set",
                                       "cycles=2", "--json"])
    assert planned.exit_code == 0, planned.output
    expected = json.loads(planned.stdout)
    assert doc["plan"]["steps"] == expected["steps"]
    assert doc["plan"]["estimated_duration_s"] == expected["estimated_duration_s"]
    assert client.get("/api/v1/runs/nope/program", headers=bearer()).status_code == 404


def test_a_hand_made_run_without_a_plannable_program_still_shows_its_source(client):
    for route in ("analysis", "export"):
        refused = client.get(f"/api/v1/runs/hand-short/{route}", headers=bearer())
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["message"].startswith("run hand-short: its stored StepProgram cannot be read")
    doc = client.get("/api/v1/runs/hand-short/program", headers=bearer())
    assert doc.status_code == 200
    assert doc.json()["protocol_source"] == "protocol: hand" and doc.json()["plan"] is None
    assert doc.json()["plan_error"].startswith("no plan for this run")


# -- no input gets a traceback ----------------------------------------------------------------------------------------

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(["series", "analysis", "export", "program"]),
       run=st.sampled_from(["hand-short", "x"]) | text,
       params=st.dictionaries(st.sampled_from(["points", "what", "format"]), text | st.integers(-5, 30000), max_size=3),
       static=text, cookie=text, csrf=text)
def test_no_dashboard_request_gets_a_500(client, route, run, params, static, cookie, csrf):
    response = client.get(f"/api/v1/runs/{quote(run, safe='')}/{route}", params=params, headers=bearer())
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert "\n" not in response.json()["error"]["message"]
    assert client.get("/static/" + quote(static, safe="/")).status_code in (200, 404, 405)
    client.cookies.set(COOKIE, quote(cookie, safe=""))
    for method in ("get", "post"):
        answer = getattr(client, method)("/api/v1/runs/x/pause" if method == "post" else "/api/v1/session",
                                         headers={CSRF: quote(csrf, safe="")})
        assert answer.status_code == 401 and "\n" not in answer.json()["error"]["message"]
