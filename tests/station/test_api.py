"""The service's HTTP API, in-process against a simulated BTS in its own process: tokens and who did what, runs
started, paused, continued and stopped through the supervision thread, records paged, the event stream, and
malformed or unauthorised requests answered with one-line 4xx errors (never a 500, never a traceback)."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from station.api.tokens import TokenError, ensure_token, load_tokens, token_path
from station.config import load_config
from tests.processes import wait_for
from tests.station.sim_bts import ALICE, LONG, SHORT, served_api, write_config


@pytest.fixture
def api(tmp_path, processes):
    with served_api(tmp_path, processes, channels=3) as served:
        yield served



def start(api, source: str, headers=None, **extra) -> dict:
    body = {"protocol_source": source, "protocol_file": "test.yaml", "cell": "predeposited-ncm622", **extra}
    response = api.client.post("/api/v1/runs", json=body, headers=headers or api.owner)
    assert response.status_code == 201, response.text
    return response.json()


# -- tokens ------------------------------------------------------------------------------------------------------------


def test_the_token_file_is_made_once_readable_by_its_owner_only(tmp_path):
    token = ensure_token(tmp_path)
    assert len(token) == 43 and ensure_token(tmp_path) == token
    mode = stat.S_IMODE(os.stat(token_path(tmp_path)).st_mode)
    assert mode == 0o600
    os.chmod(token_path(tmp_path), 0o644)
    with pytest.raises(TokenError, match="can be read by other users; `chmod 600"):
        ensure_token(tmp_path)


def test_every_request_needs_a_valid_token(api):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": api.owner["Authorization"][7:]},
                    {"Authorization": "Basic " + api.tokens.owner_token}):
        response = api.client.get("/api/v1/runs", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["message"].startswith("a valid token is needed")
    assert api.client.get("/api/v1/runs", headers=api.owner).status_code == 200
    assert api.client.get("/api/v1/station", headers=api.alice).json()["you"] == "alice"
    assert api.client.post("/api/v1/runs/x/stop", headers={}).status_code == 401  # actions too, before anything


def test_a_hash_in_station_yaml_must_be_a_hash_never_the_token(tmp_path):
    path = tmp_path / "station.yaml"
    write_config(path, 1, extra=f"api:\n  users:\n    bob: {ALICE}\n")
    with pytest.raises(Exception, match="give the SHA-256 of the token"):
        load_config(str(path))


# -- runs through the supervision thread ------------------------------------------------------------------------------


def test_start_pause_continue_stop_are_carried_out_and_recorded_with_who_did_them(api):
    doc = start(api, LONG, headers=api.alice, channel="bts/21-1-2", set={})
    run_id = doc["run_id"]
    assert (doc["state"], doc["channel"], doc["protocol"]) == ("running", "bts/21-1-2", "long-rest")

    channels = api.client.get("/api/v1/channels", headers=api.owner).json()["channels"]
    assert [(c["channel"], c["state"]) for c in channels] == [
        ("bts/21-1-1", "free"), ("bts/21-1-2", "running"), ("bts/21-1-3", "free")]
    live = wait_for(lambda: (d := api.client.get(f"/api/v1/runs/{run_id}", headers=api.owner).json()["live"])
                    and d["test_time_s"] is not None and d)
    assert live["channel"] == "bts/21-1-2" and live["step"] == 1 and live["current_a"] == 0.0
    assert 2.0 < live["voltage_v"] < 4.5

    paused = api.client.post(f"/api/v1/runs/{run_id}/pause", headers=api.alice)
    assert paused.json() == {"run_id": run_id, "state": "paused"}
    resumed = api.client.post(f"/api/v1/runs/{run_id}/continue", headers=api.owner)
    assert resumed.json() == {"run_id": run_id, "state": "running"}
    stopped = api.client.post(f"/api/v1/runs/{run_id}/stop", headers=api.alice, json={}).json()
    assert stopped["confirmed"] is True and stopped["state"] == "stopped"

    events = api.client.get(f"/api/v1/runs/{run_id}/events", headers=api.owner).json()["events"]
    operator = [e["message"] for e in events if e["kind"] == "operator"]
    owner = api.tokens.owner
    assert operator == ["started by alice", "pause (by alice)", f"continue (by {owner})", "stop (by alice)"]
    assert api.store.run(run_id).message == "stopped by the operator (by alice)"


def test_records_are_paged_from_a_record_number(api):
    run_id = start(api, SHORT)["run_id"]
    row = wait_for(lambda: (r := api.store.run(run_id)).state == "finished" and r)
    first = api.client.get(f"/api/v1/runs/{run_id}/records", params={"limit": 5}, headers=api.owner).json()
    assert first["columns"][:3] == ["seq", "test_time", "step_time"]
    assert [r[0] for r in first["records"]] == [1, 2, 3, 4, 5] and first["last"] == 5 and first["more"] is True
    assert [r[1] for r in first["records"]] == [0.0, 10.0, 20.0, 30.0, 40.0]
    rest = api.client.get(f"/api/v1/runs/{run_id}/records", params={"after": 5, "limit": 5000},
                          headers=api.owner).json()
    assert rest["records"][0][0] == 6 and rest["last"] == row.last_seq and rest["more"] is False
    assert len(first["records"]) + len(rest["records"]) == row.last_seq
    json.dumps(rest)  # NaN (no impedance on a BTS) is sent as null: valid JSON


def test_two_starts_without_a_channel_get_two_channels(api):
    results: list = []

    def one() -> None:
        results.append(api.client.post("/api/v1/runs", headers=api.owner, json={
            "protocol_source": LONG, "cell": "predeposited-ncm622"}))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(r.status_code for r in results) == [201, 201]
    assert len({r.json()["channel"] for r in results}) == 2
    busy = api.client.post("/api/v1/runs", headers=api.owner, json={
        "protocol_source": LONG, "cell": "predeposited-ncm622", "channel": results[0].json()["channel"]})
    assert busy.status_code == 409
    assert busy.json()["error"]["message"].startswith(f"channel {results[0].json()['channel']} already has run")
    for r in results:
        api.client.post(f"/api/v1/runs/{r.json()['run_id']}/stop", headers=api.owner)


def test_the_event_stream_tells_state_changes_live_values_and_events(api):
    with api.client.stream("GET", "/api/v1/stream", headers=api.owner) as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: hello"
        run_id = start(api, SHORT, channel="bts/21-1-3")["run_id"]
        seen: dict[str, list] = {}
        kind = None
        for line in lines:
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind:
                seen.setdefault(kind, []).append(json.loads(line[6:]))
            if any(d["state"] == "finished" for d in seen.get("run", [])):
                break
    assert [d["state"] for d in seen["run"] if d["run_id"] == run_id] == ["running", "finished"]
    live = [d for batch in seen["channels"] for d in batch if d["run_id"] == run_id]
    assert live and all(d["channel"] == "bts/21-1-3" for d in live)
    assert any(e["run_id"] == run_id and e["message"] == "started by " + api.tokens.owner for e in seen["event"])


def test_a_run_stopped_by_an_operator_is_told_on_the_stream_as_stopped(api):
    """The grid learns a channel is safe from the stream: a stop ends supervision of the run, and its last state
    is still published."""
    run_id = start(api, LONG, channel="bts/21-1-2")["run_id"]
    with api.client.stream("GET", "/api/v1/stream", headers=api.owner) as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: hello"
        assert api.client.post(f"/api/v1/runs/{run_id}/stop", headers=api.owner).status_code == 200
        kind, states = None, []
        for count, line in enumerate(lines):
            assert count < 2000, f"no 'stopped' on the stream, only {states}"
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "run":
                doc = json.loads(line[6:])
                if doc["run_id"] == run_id:
                    states.append(doc["state"])
                    if doc["state"] == "stopped":
                        assert doc["channel"] == "bts/21-1-2"
                        break
    assert states[-1] == "stopped" and api.client.get(f"/api/v1/runs/{run_id}", headers=api.owner).json()[
        "state"] == "stopped"


# -- bad input ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"protocol": "no-such-protocol", "cell": "predeposited-ncm622"}, 400,
     "protocol 'no-such-protocol' not found on the station's PC"),
    ({"protocol_source": LONG}, 400, "give the cell on the channel as 'cell'"),
    ({"protocol_source": LONG, "protocol": "p1-li-deposition", "cell": "x"}, 400, "give the protocol as 'protocol'"),
    ({"protocol_source": "protocol: x\nsteps: [bogus]", "cell": "predeposited-ncm622"}, 422,
     "<protocol>:2:9: steps[0]: cannot read the step 'bogus'"),
    ({"protocol_source": LONG, "cell": "predeposited-ncm622", "channel": "bts/99"}, 404,
     "channel 'bts/99' is not configured"),
    ({"protocol_source": LONG, "sample": "S000000-XXXX"}, 404, "sample"),
    ({"protocol_source": LONG, "cell": "predeposited-ncm622", "colour": "red"}, 422,
     "colour: Extra inputs are not permitted"),
    ({"protocol_source": LONG, "cell": "predeposited-ncm622", "set": {"x": 3}}, 422,
     "set.x: Input should be a valid string"),
    ({"protocol_source": LONG, "cell": "predeposited-ncm622", "set": {"nope": "3"}}, 422, "nope"),
])
def test_bad_start_requests_get_one_line_4xx(api, body, status, message):
    response = api.client.post("/api/v1/runs", json=body, headers=api.owner)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and message in error["message"] and "\n" not in error["message"]
    assert "Traceback" not in response.text


def test_malformed_requests_and_unknown_things(api):
    h = api.owner
    bad_json = api.client.post("/api/v1/runs", content=b"{bad", headers={**h, "Content-Type": "application/json"})
    assert bad_json.status_code == 422 and "JSON" in bad_json.json()["error"]["message"]
    assert api.client.get("/api/v1/runs/nope", headers=h).json() == {"error": {"status": 404, "message": (
        api.client.get("/api/v1/runs/nope", headers=h).json()["error"]["message"])}}
    assert api.client.get("/api/v1/runs/nope", headers=h).status_code == 404
    assert api.client.post("/api/v1/runs/nope/pause", headers=h).status_code == 404
    assert api.client.get("/api/v1/nothing", headers=h).status_code == 404
    assert api.client.delete("/api/v1/runs", headers=h).status_code == 405
    assert api.client.get("/api/v1/runs", params={"limit": -1}, headers=h).status_code == 422
    huge = api.client.post("/api/v1/runs", content=b"{" + b" " * 2_000_000 + b"}",
                           headers={**h, "Content-Type": "application/json"})
    assert huge.status_code == 413


def test_the_openapi_schema_documents_every_route(api):
    schema = api.client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/runs", "/api/v1/runs/{run_id}/stop", "/api/v1/runs/{run_id}/records", "/api/v1/stream",
            "/api/v1/channels", "/api/v1/samples"} <= set(schema["paths"])


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                                              max_size=4),
                           max_leaves=12)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(["protocol", "protocol_source", "cell", "cell_source", "sample",
                                             "channel", "set", "extra"]), json_values, max_size=5),
       path=st.sampled_from(["/api/v1/runs", "/api/v1/samples"]))
def test_no_request_body_gets_a_500(api, body, path):
    response = api.client.post(path, json=body, headers=api.owner)
    assert 400 <= response.status_code < 500 or response.status_code == 201, response.text
    if response.status_code >= 400:
        assert "\n" not in response.json()["error"]["message"]
    elif path == "/api/v1/runs":
        api.client.post(f"/api/v1/runs/{response.json()['run_id']}/stop", headers=api.owner)


def test_station_token_new_prints_a_token_and_the_hash_the_config_takes(tmp_path):
    import subprocess
    import sys

    made = subprocess.run([sys.executable, "-m", "station", "token", "new", "bob", "--json"], capture_output=True,
                          text=True, timeout=60)
    doc = json.loads(made.stdout)
    tokens = load_tokens(tmp_path, {"bob": doc["sha256"]})
    assert doc["name"] == "bob" and tokens.who(doc["token"]) == "bob"
    assert tokens.who(doc["sha256"]) is None  # the hash itself is no token
    assert tokens.who(tokens.owner_token) == tokens.owner


CAMPAIGN = """
campaign: two-stages
stages:
  - name: first
    protocol: short.yaml
    instrument: neware
  - name: second
    protocol: short.yaml
    channel: bts/21-1-3
"""


def test_a_campaign_through_the_api_waits_for_the_move_and_records_who_confirmed(api, tmp_path):
    (tmp_path / "short.yaml").write_text(SHORT)
    (tmp_path / "two.yaml").write_text(CAMPAIGN)
    sample = api.client.post("/api/v1/samples", headers=api.owner, json={"cell": "predeposited-ncm622",
                                                                          "name": "coin 7"}).json()
    assert sample["name"] == "coin 7" and sample["operator"] == api.tokens.owner
    bad = api.client.post("/api/v1/campaigns", headers=api.owner, json={"campaign": "nope", "sample": "x"})
    assert bad.status_code == 400 and "campaign 'nope' not found" in bad.json()["error"]["message"]
    created = api.client.post("/api/v1/campaigns", headers=api.alice, json={
        "campaign": str(tmp_path / "two.yaml"), "sample": sample["sample_id"], "channel": "bts/21-1-1"})
    assert created.status_code == 201, created.text
    cid = created.json()["campaign_id"]

    def doc():
        return api.client.get(f"/api/v1/campaigns/{cid}", headers=api.owner).json()

    waiting = wait_for(lambda: (d := doc())["state"] == "waiting" and d, 120)
    early = api.client.post(f"/api/v1/campaigns/{cid}/confirm", headers=api.alice, json={"channel": "bts/21-1-2"})
    assert early.status_code == 409 and "runs on channel bts/21-1-3, not bts/21-1-2" in early.text
    confirmed = api.client.post(f"/api/v1/campaigns/{cid}/confirm", headers=api.alice)
    assert confirmed.status_code == 200, confirmed.text
    done = wait_for(lambda: (d := doc())["state"] == "finished" and d, 120)
    runs = api.client.get("/api/v1/runs", params={"sample": sample["sample_id"]}, headers=api.owner).json()["runs"]
    assert [(r["channel"], r["state"]) for r in runs] == [("bts/21-1-1", "finished"), ("bts/21-1-3", "finished")]
    text = json.dumps(done)
    assert "started by alice" in text and "confirmed by alice: the sample is on bts/21-1-3" in text
    assert waiting["state"] == "waiting"
    gone = api.client.post(f"/api/v1/campaigns/{cid}/stop", headers=api.owner)
    assert gone.status_code == 409 and "is finished; there is nothing to stop" in gone.json()["error"]["message"]
    assert api.client.get("/api/v1/campaigns/C000", headers=api.owner).status_code == 404


def test_a_full_disk_pauses_the_channels_it_hit_and_the_service_goes_on(api, monkeypatch):
    from station.store import Store, StoreError

    first = start(api, LONG, channel="bts/21-1-1")["run_id"]
    wait_for(lambda: api.store.run(first).last_seq >= 2)
    real = Store.append_blocks
    full = {"on": True}

    def append_blocks(self, blocks):
        if full["on"] and first in blocks:
            raise StoreError("database or disk is full")
        return real(self, blocks)

    monkeypatch.setattr(Store, "append_blocks", append_blocks)
    row = wait_for(lambda: (r := api.store.run(first)).state == "paused" and r)
    assert row.message.startswith("storage failed: database or disk is full")
    full["on"] = False  # room again: the service was never down, and starts and finishes runs as before
    second = start(api, SHORT, channel="bts/21-1-2")["run_id"]
    assert wait_for(lambda: (r := api.store.run(second)).state != "running" and r).state == "finished"
    assert api.client.get(f"/api/v1/runs/{first}", headers=api.owner).json()["state"] == "paused"
    resumed = api.client.post(f"/api/v1/runs/{first}/continue", headers=api.owner)
    assert resumed.json()["state"] == "running"
    paused_at = api.store.run(first).last_seq
    wait_for(lambda: api.store.run(first).last_seq > paused_at + 5)  # watched again, records stored again
    stored = api.store.records(first)
    assert list(stored["seq"]) == list(range(1, len(stored) + 1))  # nothing lost or repeated across the pause
    api.client.post(f"/api/v1/runs/{first}/stop", headers=api.owner)
