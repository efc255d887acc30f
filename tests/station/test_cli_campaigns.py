"""`station campaign`: a campaign file checked with its problems positioned, stored for the service with what happens
next said plainly, operator requests stored with who made them, and every refusal a one-line message with the
documented exit code (also under --json)."""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from protocols.library import CAMPAIGNS
from station.cli import app
from station.leases import Lease
from station.store import Store

runner = CliRunner()


@pytest.fixture
def env(tmp_path):
    cfg = tmp_path / "station.yaml"
    cfg.write_text(textwrap.dedent(f"""
        data_dir: {tmp_path / 'data'}
        instruments:
          - name: bts
            kind: neware
            simulated: true
            channels: [{{id: 21-1-1, voltage: [-1 V, 5 V], current: 10 mA}}]
          - name: bio
            kind: biologic
            simulated: true
            channels: [{{id: "1", voltage: [-10 V, 10 V], current: 400 mA}}]
        """))

    def cli(*args: str):
        return runner.invoke(app, [*args, "--config", str(cfg)])

    made = cli("sample", "new", "--cell", "anode-free-ncm622", "--json")
    return cli, json.loads(made.stdout)["sample_id"], tmp_path


def test_a_campaign_is_stored_for_the_service_and_says_that_nothing_runs_without_one(env):
    cli, sample, tmp_path = env
    started = cli("campaign", "start", "formation-cycling-80", "--sample", sample, "--channel", "21-1-1", "--by",
                  "ana", "--json")
    assert started.exit_code == 0, started.output
    doc = json.loads(started.stdout)
    data = tmp_path / "data"
    assert (doc["name"], doc["sample_id"], doc["state"], doc["location"], doc["started_by"], doc["stage"]) == (
        "formation-cycling-80", sample, "pending", "bts/21-1-1", "ana", {"index": 0, "name": "formation", "count": 2})
    assert doc["next"] == f"no station service serves {data}: it begins when `station serve` runs there"
    assert [(s["name"], s["protocol"], s["where"], s["chunks"], s["runs"]) for s in doc["stages"]] == [
        ("formation", "anode-free-cycling", "a neware channel", None, []),
        ("cycling", "anode-free-cycling", "a neware channel", 20, [])]
    assert doc["events"][0]["message"] == (f"started by ana on sample {sample}: 2 stages (formation, cycling); the "
                                           "sample is on bts/21-1-1")
    assert doc["created_at"].endswith("Z") and doc["events"][0]["at"].endswith("Z")
    listed = json.loads(cli("campaign", "status", "--json").stdout)["campaigns"]
    assert [(c["campaign_id"], c["state"]) for c in listed] == [(doc["campaign_id"], "pending")]
    text = cli("campaign", "status", doc["campaign_id"])
    assert text.stdout.splitlines()[:3] == [
        f"campaign {doc['campaign_id']} (formation-cycling-80) on sample {sample}: pending, stage 1/2 (formation), "
        "on bts/21-1-1",
        "  stage formation (anode-free-cycling on a neware channel): 0 cycles",
        "  stage cycling (anode-free-cycling on a neware channel): 0 cycles"]
    again = cli("campaign", "start", "formation-cycling-80", "--sample", sample)
    assert again.exit_code == 2 and again.stderr.splitlines()[-1] == (
        f"error: sample {sample} is already in campaign {doc['campaign_id']} (pending); stop it (station campaign stop "
        f"{doc['campaign_id']}) or let it end first")


def test_confirm_and_stop_are_stored_with_who_and_refused_when_they_mean_nothing(env):
    cli, sample, tmp_path = env
    campaign = cli("campaign", "start", "formation-cycling-80", "--sample", sample).stdout.strip()
    early = cli("campaign", "confirm", campaign, "--json")
    assert early.exit_code == 2
    assert json.loads(early.stdout)["error"]["message"] == (
        f"error: campaign {campaign} is pending; there is nothing to confirm (only a waiting or held campaign takes a "
        "confirmation)")
    service = Lease(tmp_path / "data", "_service")  # as `station serve` holds it
    assert service.acquire()
    try:
        stopped = cli("campaign", "stop", campaign[:8], "--by", "bo", "--json")
    finally:
        service.release()
    assert stopped.exit_code == 0, stopped.output
    assert json.loads(stopped.stdout) == {"campaign_id": campaign, "action": "stop", "state": "pending", "by": "bo",
                                          "next": "the station service carries it out on its next round"}
    row = Store(tmp_path / "data").campaign(campaign)
    assert row.stop_requested is not None and row.stop_requested["by"] == "bo"
    assert [(e.kind, e.message, e.who) for e in Store(tmp_path / "data").campaign_events(campaign)][-1] == (
        "operator", "stop requested by bo", "bo")
    unknown = cli("campaign", "stop", "C000000-XXXX")
    assert unknown.exit_code == 2 and unknown.stderr.splitlines()[-1] == (
        f"error: no campaign 'C000000-XXXX' in {tmp_path / 'data' / 'station.sqlite'}; 'station campaign status' "
        "lists them")


def test_a_campaign_with_problems_is_refused_with_each_at_its_line(env):
    cli, sample, tmp_path = env
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""
        campaign: bad
        stages:
          - name: eis
            protocol: p5-eis
            instrument: neware
          - name: cycling
            protocol: p4-anode-free-cycling
            chunks: {cycles: 5}
            until: {retention: "< 80 %"}
        """))
    refused = cli("campaign", "start", str(bad), "--sample", sample, "--json")
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["error"]["message"].splitlines() == [
        f"{bad}:10:24: stages[1].until.retention: a retention condition names its reference cycle; expected a "
        "comparison such as '< 80 % of cycle 3', found '< 80 %'"]
    bad.write_text(bad.read_text().replace('"< 80 %"', '"< 80 % of cycle 1"'))
    refused = cli("campaign", "start", str(bad), "--sample", sample)
    assert refused.exit_code == 1 and refused.stderr.splitlines()[-1] == (
        f"{bad}:6:17: stages[0].instrument: a neware channel cannot run the protocol of stage eis: step 2 (eis): a "
        "neware channel cannot run eis steps; expected a program a neware channel can run, found eis")
    assert Store(tmp_path / "data").campaigns() == []
    wrong = cli("campaign", "start", "formation-cycling-80", "--sample", "S000000-XXXX")
    assert wrong.exit_code == 2 and "no sample 'S000000-XXXX'" in wrong.stderr
    channel = cli("campaign", "start", "formation-cycling-80", "--sample", sample, "--channel", "bts/9")
    assert channel.exit_code == 2 and channel.stderr.splitlines()[-1] == (
        "error: channel 'bts/9' is not configured; configured channels: bts/21-1-1, bio/1")
    missing = cli("campaign", "start", "no-such-campaign", "--sample", sample)
    assert missing.exit_code == 2 and "campaign 'no-such-campaign' not found" in missing.stderr


def test_check_validates_without_storing(env):
    cli, sample, tmp_path = env
    ok = cli("campaign", "check", "p7-before-after-lithiation", "--cell", "host-blocking", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout) == {"valid": True, "campaign": "p7-before-after-lithiation", "cell": "host-blocking",
                                     "stages": ["conductivity-pristine", "lithiation", "conductivity-lithiated"]}
    wrong_cell = cli("campaign", "check", "p7-before-after-lithiation", "--sample", sample)
    assert wrong_cell.exit_code == 1 and len(wrong_cell.stderr.strip().splitlines()[1:]) == 2
    assert Store(tmp_path / "data").campaigns() == []


def test_the_library_lists_campaigns_and_copies_one_with_its_own_protocols(env, tmp_path):
    cli, _, _ = env
    listed = json.loads(runner.invoke(app, ["library", "--json"]).stdout)["campaigns"]
    assert [(c["name"], c["path"]) for c in listed] == [
        ("formation-cycling-80", str(CAMPAIGNS / "formation-cycling-80.yaml")),
        ("p3-at-27-and-45", str(CAMPAIGNS / "p3-at-27-and-45.yaml")),
        ("p7-before-after-lithiation", str(CAMPAIGNS / "p7-before-after-lithiation.yaml"))]
    copied = runner.invoke(app, ["library", "copy", "p7-before-after-lithiation", "--to", str(tmp_path / "mine")])
    assert copied.exit_code == 0, copied.output
    assert (tmp_path / "mine" / "protocols" / "lithiation.yaml").read_text() == \
        (CAMPAIGNS / "protocols" / "lithiation.yaml").read_text()
    checked = cli("campaign", "check", str(tmp_path / "mine" / "p7-before-after-lithiation.yaml"), "--cell",
                  "host-blocking")
    assert checked.exit_code == 0, checked.output


def test_the_campaign_file_has_a_json_schema_for_editors():
    doc = json.loads(runner.invoke(app, ["schema", "campaign"]).stdout)
    assert doc["title"] == "CampaignDoc" and doc["required"] == ["campaign", "stages"]
    assert list(doc["$defs"]["StageDoc"]["properties"]) == ["name", "protocol", "set", "cell", "instrument", "channel",
                                                            "temperature", "go_on_if", "chunks", "rpt", "until"]
