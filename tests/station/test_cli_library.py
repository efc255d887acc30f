"""`station library`: what ships, with descriptions and paths, and an editable copy that validates and plans."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from protocols.library import CELLS, LIBRARY, cell_names, protocol_names
from station.cli import app

runner = CliRunner()


def test_the_listing_names_each_entry_its_description_and_file():
    result = runner.invoke(app, ["library"])
    assert result.exit_code == 0, result.output
    assert "p3-full-cell-cycling" in result.stdout and "predeposited-ncm622" in result.stdout
    assert "Two 0.1C formation cycles, then 0.2C charge / 0.5C discharge cycling." in result.stdout
    assert str(LIBRARY / "p3-full-cell-cycling.yaml") in result.stdout
    assert str(CELLS / "host-blocking.yaml") in result.stdout


def test_the_json_listing_has_every_protocol_and_cell_with_its_path():
    doc = json.loads(runner.invoke(app, ["library", "--json"]).stdout)
    assert [p["name"] for p in doc["protocols"]] == protocol_names()
    assert [c["name"] for c in doc["cells"]] == cell_names()
    p7 = next(p for p in doc["protocols"] if p["name"] == "p7-conductivity")
    assert p7["cell"] == "host-blocking" and p7["path"] == str(LIBRARY / "p7-conductivity.yaml")
    assert p7["description"].startswith("EIS and DC polarisation between blocking electrodes")
    assert all(c["description"] for c in doc["cells"])


def test_a_copy_is_the_library_file_and_runs_by_its_path(tmp_path):
    result = runner.invoke(app, ["library", "copy", "p3-full-cell-cycling", "--to", str(tmp_path / "mine")])
    assert result.exit_code == 0, result.output
    copy = tmp_path / "mine" / "p3-full-cell-cycling.yaml"
    assert copy.read_bytes() == (LIBRARY / "p3-full-cell-cycling.yaml").read_bytes()
    cell = runner.invoke(app, ["library", "copy", "predeposited-ncm622", "--to", str(tmp_path / "mine"), "--json"])
    assert json.loads(cell.stdout)["path"] == str(tmp_path / "mine" / "predeposited-ncm622.yaml")
    planned = runner.invoke(app, ["plan", str(copy), "--cell", str(tmp_path / "mine" / "predeposited-ncm622.yaml"),
                                  "--set", "cycles=2", "--json"])
    assert planned.exit_code == 0, planned.output
    assert json.loads(planned.stdout)["protocol"] == "full-cell-formation-cycling"


def test_a_copy_never_overwrites_unless_told_and_unknown_names_are_usage_errors(tmp_path):
    (tmp_path / "p5-eis.yaml").write_text("mine\n")
    refused = runner.invoke(app, ["library", "copy", "p5-eis", "--to", str(tmp_path)])
    assert refused.exit_code == 2 and "exists; give --force" in refused.stderr
    assert (tmp_path / "p5-eis.yaml").read_text() == "mine\n"
    forced = runner.invoke(app, ["library", "copy", "p5-eis", "--to", str(tmp_path), "--force"])
    assert forced.exit_code == 0 and (tmp_path / "p5-eis.yaml").read_bytes() == (LIBRARY / "p5-eis.yaml").read_bytes()
    unknown = runner.invoke(app, ["library", "copy", "p9-nothing", "--to", str(tmp_path)])
    assert unknown.exit_code == 2 and "'p9-nothing' is not a library protocol, cell or campaign" in unknown.stderr
