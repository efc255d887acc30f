"""`validate` and `plan` with --channel or --instrument refuse what that channel cannot run, before any run, from
its declared capabilities (no instrument is asked): the same refusal `station run` would give, exit 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from station.cli import app

runner = CliRunner()
EIS_ON_NEWARE = "step 2 (eis): a neware channel cannot run eis steps"


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize(("where", "label"), [(["--instrument", "neware"], "a neware channel"),
                                              (["--channel", "sim-neware/21-1-1"], "channel sim-neware/21-1-1")])
def test_a_channel_that_cannot_run_the_protocol_is_refused_by_name(command, where, label):
    result = runner.invoke(app, [command, "p5-eis", "--cell", "host-cu-li", *where])
    assert result.exit_code == 2, result.output
    assert f"error: {label} cannot run this program: {EIS_ON_NEWARE}" in result.stderr


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_channel_that_can_run_it_passes(command):
    result = runner.invoke(app, [command, "p5-eis", "--cell", "host-cu-li", "--channel", "sim-biologic/1"])
    assert result.exit_code == 0, result.output
    cycling = runner.invoke(app, [command, "p3-full-cell-cycling", "--cell", "predeposited-ncm622",
                                  "--instrument", "neware"])
    assert cycling.exit_code == 0, cycling.output


def test_bad_channel_and_instrument_names_and_a_missing_cell_are_usage_errors():
    unknown = runner.invoke(app, ["validate", "p5-eis", "--cell", "host-cu-li", "--channel", "nope/1"])
    assert unknown.exit_code == 2 and "channel 'nope/1' is not configured" in unknown.stderr
    kind = runner.invoke(app, ["validate", "p5-eis", "--cell", "host-cu-li", "--instrument", "maccor"])
    assert kind.exit_code == 2 and "expected one of biologic, neware" in kind.stderr
    no_cell = runner.invoke(app, ["validate", "p5-eis", "--instrument", "neware"])
    assert no_cell.exit_code == 2 and "give --cell" in no_cell.stderr


def test_json_says_valid_for_the_channel_or_gives_the_refusal():
    ok = runner.invoke(app, ["validate", "p5-eis", "--cell", "host-cu-li", "--instrument", "biologic", "--json"])
    doc = json.loads(ok.stdout)
    assert doc["valid"] is True and doc["instrument"] == "biologic"
    refused = runner.invoke(app, ["validate", "p5-eis", "--cell", "host-cu-li", "--instrument", "neware", "--json"])
    assert refused.exit_code == 2 and EIS_ON_NEWARE in json.loads(refused.stdout)["error"]["message"]
