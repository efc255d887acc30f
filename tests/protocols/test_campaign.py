"""Campaign files: validated like protocols, every problem at its line and column in the campaign file, every stage's
protocol loaded with its set values and bound to the sample's cell, and a plan that carries the protocols' text."""

from __future__ import annotations

import textwrap

import pytest

from protocols.campaign import CampaignPlan, Condition, load_campaign, load_campaign_text
from protocols.cells import load_cell
from protocols.errors import ProtocolError
from protocols.library import CAMPAIGNS, LIBRARY, campaign_names

ANODE_FREE = load_cell("anode-free-ncm622")

CYCLING = """
protocol: test-cycling
parameters: {cycles: 3, rate: 1C}
steps:
  - rest: 1 min
  - repeat: ${cycles}
    steps:
      - charge: {current: "${rate}", until: {voltage: 4.2 V}}
      - discharge: {current: "${rate}", until: {voltage: 2.75 V}}
"""


def problems(text: str, tmp_path=None, cell=ANODE_FREE) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        load_campaign_text(textwrap.dedent(text).lstrip("\n"), "c.yaml", cell, base_dir=tmp_path)
    return [str(p) for p in info.value.problems]


def test_a_set_value_the_protocol_does_not_declare_is_named_at_its_key():
    assert problems("""
        campaign: x
        stages:
          - name: formation
            protocol: p4-anode-free-cycling
            set: {rate: 0.1C, cycels: 2}
        """) == ["c.yaml:5:23: stages[0].set.cycels: 'cycels' is not a parameter of protocol 'anode-free-cycling' "
                 "(did you mean 'cycles'?); expected one of cycles, rate, v_max, v_min, found 'cycels'"]


def test_a_stage_in_chunks_needs_a_repeat_count_parameter_and_says_where():
    assert problems("""
        campaign: x
        stages:
          - name: eis
            protocol: p5-eis
            chunks: {cycles: 20}
            until: {cycles: 100}
          - name: cycling
            protocol: p4-anode-free-cycling
            chunks: {cycles: 5, parameter: v_max}
            until: {cycles: 10}
        """) == [
        "c.yaml:5:13: stages[0].chunks: protocol 'eis' has no parameter 'cycles' to run it in chunks of 20 cycles; "
        "expected a parameter that sets a repeat count (repeat: ${cycles}), named with chunks.parameter, found "
        "parameters: amplitude, points_per_decade, settle",
        "c.yaml:9:36: stages[1].chunks.parameter: parameter 'v_max' of protocol 'anode-free-cycling' is not a repeat "
        "count, so it cannot run the protocol 5 cycles at a time; expected a whole-number parameter used as "
        "'repeat: ${v_max}', found v_max: '4.2 V'"]


def test_chunks_until_and_rpt_go_together_and_the_chunk_size_is_not_set_twice():
    assert problems("""
        campaign: x
        stages:
          - name: a
            protocol: p4-anode-free-cycling
            set: {cycles: 3}
            chunks: {cycles: 5}
          - name: b
            protocol: p4-anode-free-cycling
            rpt: {protocol: p4-anode-free-cycling}
            until: {cycles: 3}
          - name: c
            protocol: p4-anode-free-cycling
            chunks: {cycles: 5}
            until: {}
        """) == [
        "c.yaml:5:11: stages[0].set.cycles: 'cycles' is the chunk size here (chunks.cycles: 5); it cannot also be "
        "set; expected no 'cycles' under set, found cycles: 3",
        "c.yaml:6:13: stages[0].chunks: a stage in chunks needs 'until:' (when cycling stops), or it never ends; "
        "expected until: {retention: '< 80 % of cycle 1', cycles: 500}, found no until",
        "c.yaml:9:10: stages[1].rpt: an RPT runs between chunks of cycling; this stage runs its protocol once; "
        "expected chunks: {cycles: N} (the RPT runs every N cycles), found no chunks",
        "c.yaml:10:12: stages[1].until: 'until:' is checked between chunks; this stage runs its protocol once; "
        "expected chunks: {cycles: N} with until, or go_on_if for a single run, found no chunks",
        "c.yaml:14:12: stages[2].until: 'until' names no condition; expected retention, ce or cycles, found {}"]


def test_conditions_are_read_strictly_with_their_positions():
    assert problems("""
        campaign: x
        stages:
          - name: cycling
            protocol: p4-anode-free-cycling
            chunks: {cycles: 5}
            until: {retention: "< 80 %", cycles: 0}
            go_on_if: {ce: "> 80", outcome: done, cycles: "about 3"}
        """) == [
        "c.yaml:6:24: stages[0].until.retention: a retention condition names its reference cycle; expected a "
        "comparison such as '< 80 % of cycle 3', found '< 80 %'",
        "c.yaml:6:42: stages[0].until.cycles: must be >= 1; expected a number >= 1, found 0",
        "c.yaml:7:20: stages[0].go_on_if.ce: a CE of 80 is out of range; expected a percentage such as '80 %' or a "
        "fraction such as 0.8, found '> 80'",
        "c.yaml:7:37: stages[0].go_on_if.outcome: not an allowed value; expected 'finished' or 'ended', found 'done'",
        "c.yaml:7:51: stages[0].go_on_if.cycles: cannot read this cycle count; expected a whole number such as 100, "
        "or '>= 100', found 'about 3'"]


def test_misspelt_keys_missing_protocols_and_duplicate_names_are_each_told():
    found = problems("""
        campaign: x
        stages:
          - name: one
            protocol: p4-anode-free-cyclng
            instrument: neware
            channel: bts/21-1-1
          - name: one
            protocol: p5-eis
            instrumnt: biologic
        """)
    assert found == [
        "c.yaml:4:15: stages[0].protocol: protocol 'p4-anode-free-cyclng' not found (did you mean "
        "'p4-anode-free-cycling'?); expected a library protocol name (station library) or a YAML file relative to "
        f"the campaign file ({__import__('pathlib').Path.cwd()}), found 'p4-anode-free-cyclng'",
        "c.yaml:6:14: stages[0].channel: give the instrument kind or a channel, not both; expected instrument: "
        "neware|biologic, or channel: NAME/ID, found both",
        "c.yaml:9:5: stages[1].instrumnt: unknown key 'instrumnt' (did you mean 'instrument'?); expected one of cell, "
        "channel, chunks, go_on_if, instrument, name, protocol, rpt, set, temperature, until, found 'instrumnt'"]


def test_duplicate_stage_names_are_refused():
    assert problems("""
        campaign: x
        stages:
          - {name: eis, protocol: p5-eis}
          - {name: eis, protocol: p5-eis}
        """) == ["c.yaml:4:12: stages[1].name: stage name 'eis' is used twice; expected a name no other stage has, "
                 "found also stages[0].name"]


def test_a_protocol_that_does_not_bind_to_the_cell_is_told_at_the_set_value_that_breaks_it():
    found = problems("""
        campaign: x
        stages:
          - name: formation
            protocol: p4-anode-free-cycling
            set: {v_max: 4.5 V}
        """)
    assert found == [
        "c.yaml:5:18: stages[0].set.v_max: protocol 'anode-free-cycling' on cell 'anode-free-ncm622': "
        "steps[1].steps[0].charge.until.voltage: the limit 4.5 V is never reached: the safety/cell limit stops the "
        f"run at 4.3 V first ({LIBRARY / 'p4-anode-free-cycling.yaml'}:23:55); expected a voltage below 4.3 V, or a "
        "higher safety limit, found '4.5 V' (from parameter 'v_max')"]


def test_a_set_value_of_the_wrong_kind_and_a_protocol_that_needs_what_the_cell_lacks(tmp_path):
    (tmp_path / "needs-area.yaml").write_text("protocol: a\nrequires: [area]\nsteps:\n  - rest: 1 min\n")
    cell = load_cell("predeposited-ncm622").model_copy(update={"area": None})
    assert problems("""
        campaign: x
        stages:
          - name: eis
            protocol: p5-eis
            set: {amplitude: 1 A}
          - name: rest
            protocol: needs-area.yaml
        """, tmp_path, cell) == [
        "c.yaml:5:22: stages[0].set.amplitude: set: amplitude=1 A has the wrong type for this parameter; expected a "
        "voltage like the default '10 mV', found a current '1 A'",
        "c.yaml:7:15: stages[1].protocol: protocol 'a' on cell 'predeposited-ncm622': requires[0]: the protocol "
        "requires the cell's area, which cell 'predeposited-ncm622' does not give "
        f"({tmp_path / 'needs-area.yaml'}:2:12); expected a cell with area, found no area in "
        f"{LIBRARY / 'cells' / 'predeposited-ncm622.yaml'}"]


def test_relative_protocols_and_a_stage_cell_are_read_next_to_the_campaign_and_kept_as_text(tmp_path):
    (tmp_path / "protocols").mkdir()
    (tmp_path / "protocols" / "cycling.yaml").write_text(CYCLING)
    text = textwrap.dedent("""
        campaign: relative
        stages:
          - name: cycling
            protocol: protocols/cycling.yaml
            instrument: neware
            chunks: {cycles: 4}
            rpt: {protocol: protocols/cycling.yaml, set: {cycles: 1, rate: 0.5C}}
            until: {retention: "< 80 % of cycle 1", ce: "< 99 %", cycles: 10}
          - name: host
            protocol: p5-eis
            cell: host-cu-li
            channel: sim-biologic/1
            go_on_if: {outcome: ended}
        """)
    (tmp_path / "c.yaml").write_text(text)
    plan = load_campaign(str(tmp_path / "c.yaml"), ANODE_FREE).plan
    first, second = plan.stages
    assert first.protocol.file == str(tmp_path / "protocols" / "cycling.yaml")
    assert first.protocol.text == CYCLING and first.rpt is not None and first.rpt.set == {"cycles": "1",
                                                                                          "rate": "0.5C"}
    assert first.until is not None and first.until.retention == Condition(op="<", value=0.8, cycle=1,
                                                                         text="< 80 % of cycle 1")
    assert first.until.ce == Condition(op="<", value=0.99, text="< 99 %") and first.until.cycles == 10
    assert second.cell is not None and second.cell["name"] == "host-cu-li" and second.channel == "sim-biologic/1"
    assert second.go_on_if.outcome == "ended" and second.where() == "channel sim-biologic/1"
    (tmp_path / "protocols" / "cycling.yaml").write_text("protocol: changed\nsteps: [rest: 1 s]\n")
    again = CampaignPlan.from_json(plan.to_json())  # what the store keeps: the text as validated
    assert again == plan and again.stages[0].protocol.load({"cycles": "4"}).name == "test-cycling"


def test_a_chunk_parameter_nested_in_repeats_counts(tmp_path):
    (tmp_path / "nested.yaml").write_text(textwrap.dedent("""
        protocol: nested
        parameters: {n: 2}
        steps:
          - repeat: 1
            steps:
              - repeat: ${n}
                steps: [Charge at 1C until 4.2 V, Discharge at 1C until 2.75 V]
        """))
    plan = load_campaign_text("campaign: n\nstages:\n  - {name: a, protocol: nested.yaml, chunks: {cycles: 7, "
                              "parameter: n}, until: {cycles: 14}}\n", "c.yaml", ANODE_FREE, base_dir=tmp_path).plan
    assert plan.stages[0].chunks is not None and plan.stages[0].chunks.parameter == "n"


@pytest.mark.parametrize(("name", "cell"), [("p7-before-after-lithiation", "host-blocking"),
                                            ("formation-cycling-80", "anode-free-ncm622")])
def test_the_library_campaigns_load_and_bind_to_their_cells(name, cell):
    assert campaign_names() == ["formation-cycling-80", "p3-at-27-and-45", "p7-before-after-lithiation"]
    loaded = load_campaign(name, load_cell(cell))
    assert loaded.source.file == str(CAMPAIGNS / f"{name}.yaml")
    stages = loaded.plan.stages
    if name == "formation-cycling-80":
        assert [(s.name, s.protocol.name, s.instrument, s.set) for s in stages] == [
            ("formation", "anode-free-cycling", "neware", {"rate": "0.1C", "cycles": "2"}),
            ("cycling", "anode-free-cycling", "neware", {"rate": "0.2C"})]
        cycling = stages[1]
        assert cycling.chunks is not None and (cycling.chunks.cycles, cycling.chunks.parameter) == (20, "cycles")
        assert cycling.until is not None and cycling.until.retention is not None
        assert (cycling.until.retention.value, cycling.until.retention.cycle, cycling.until.cycles) == (0.8, 1, 500)
        assert cycling.rpt is not None and cycling.rpt.set == {"rate": "0.05C", "cycles": "1"}
        assert stages[0].go_on_if.ce is not None and stages[0].go_on_if.ce.cycle == 2
    else:
        assert [(s.name, s.protocol.name, s.instrument, (s.cell or {}).get("name")) for s in stages] == [
            ("conductivity-pristine", "conductivity", "biologic", None),
            ("lithiation", "lithiation", "neware", "host-cu-li"),
            ("conductivity-lithiated", "conductivity", "biologic", None)]
        assert stages[1].protocol.file == str(CAMPAIGNS / "protocols" / "lithiation.yaml")


def test_the_p7_campaign_refuses_a_cell_without_thickness_at_each_stage_that_needs_it():
    found = problems((CAMPAIGNS / "p7-before-after-lithiation.yaml").read_text(), CAMPAIGNS,
                     load_cell("predeposited-ncm622"))
    needs = ("protocol 'conductivity' on cell 'predeposited-ncm622': requires[1]: the protocol requires the cell's "
             f"thickness, which cell 'predeposited-ncm622' does not give ({LIBRARY / 'p7-conductivity.yaml'}:14:18); "
             f"expected a cell with thickness, found no thickness in {LIBRARY / 'cells' / 'predeposited-ncm622.yaml'}")
    assert found == [f"c.yaml:15:15: stages[0].protocol: {needs}", f"c.yaml:22:15: stages[2].protocol: {needs}"]


def test_set_values_are_text_or_numbers_as_set_takes_them():
    assert problems("""
        campaign: x
        stages:
          - {name: a, protocol: p4-anode-free-cycling, set: {cycles: true, rate: [1]}}
        """) == [
        "c.yaml:3:62: stages[0].set.cycles: a parameter value is text or a number, as --set takes it; expected a "
        "value such as 0.2C, 20 or '2 mAh/cm^2', found True",
        "c.yaml:3:74: stages[0].set.rate: a parameter value is text or a number, as --set takes it; expected a value "
        "such as 0.2C, 20 or '2 mAh/cm^2', found [1]"]
    plan = load_campaign_text("campaign: x\nstages:\n  - {name: a, protocol: p4-anode-free-cycling, set: {cycles: 3, "
                              "rate: 0.5C, v_min: 2.8 V}}\n", "c.yaml", ANODE_FREE).plan
    assert plan.stages[0].set == {"cycles": "3", "rate": "0.5C", "v_min": "2.8 V"}
