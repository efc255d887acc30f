"""Property: YAML -> model -> step program -> JSON -> step program loses nothing.

Random protocols are generated as plain data with the numbers they should resolve to; the test writes them as
YAML text, binds them to a cell, checks every resolved number against the generator's own arithmetic, then
checks the JSON round trip is exact.
"""

from __future__ import annotations

import math

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.cells import load_cell_text
from protocols.loader import load_protocol_text
from protocols.program import StepProgram

AREA = math.pi * 0.006**2  # 12 mm disk, m^2
CAPACITY = 2e-3  # Ah
CELL = load_cell_text("name: rt\ndiameter: 12 mm\ncapacity: 2 mAh\nlimits: {voltage: [-5 V, 10 V]}\n")

numbers = st.decimals(min_value="0.001", max_value="50", places=3).map(lambda d: float(d))
volts = st.decimals(min_value="-1", max_value="5", places=3).map(lambda d: float(d))


@st.composite
def currents(draw):
    value = draw(numbers)
    basis = draw(st.sampled_from(["mA", "C", "mA/cm^2"]))
    if basis == "mA":
        return f"{value} mA", value * 1e-3
    if basis == "C":
        return f"{value}C", value * CAPACITY
    return f"{value} mA/cm^2", value * 10 * AREA  # 1 mA/cm^2 = 10 A/m^2


@st.composite
def cc_step(draw):
    kind = draw(st.sampled_from(["charge", "discharge"]))
    text, amps = draw(currents())
    until, expected = {}, []
    if draw(st.booleans()):
        v = draw(volts)
        until["voltage"] = f"{v} V"
        expected.append(("voltage", ">=" if kind == "charge" else "<=", v))
    # Always a time limit too: two voltage-only steps in a row may rightly be refused as ending at once.
    hours = draw(numbers)
    until["time"] = f"{hours} h"
    expected.append(("time", ">=", hours * 3600))
    if draw(st.booleans()):
        mah = draw(numbers)
        until["capacity"] = f"{mah} mAh"
        expected.append(("capacity", ">=", mah * 1e-3))
    signed = amps if kind == "charge" else -amps
    return {kind: {"current": text, "until": until}}, [(kind, signed, expected)]


@st.composite
def rest_step(draw):
    minutes = draw(numbers)
    return {"rest": f"{minutes} min"}, [("rest", None, [("time", ">=", minutes * 60)])]


@st.composite
def hold_step(draw):
    v = draw(volts)
    text, amps = draw(currents())
    return ({"hold": {"voltage": f"{v} V", "until": {"current": text}}},
            [("hold", v, [("current", "<=", amps)])])


def steps(depth: int):
    leaf = st.one_of(cc_step(), rest_step(), hold_step())
    if depth == 0:
        return st.lists(leaf, min_size=1, max_size=4)
    return st.lists(st.one_of(leaf, repeat_step(depth - 1)), min_size=1, max_size=4)


@st.composite
def repeat_step(draw, depth):
    body = draw(steps(depth))
    count = draw(st.integers(1, 5))
    tag = draw(st.one_of(st.none(), st.sampled_from(["formation", "cycling", "a-b"])))
    doc = {"repeat": count, "steps": [d for d, _ in body]}
    if tag:
        doc["tag"] = tag
    return doc, [("repeat", (count, tag), [e for _, e in body])]


def flatten(expected, out, tag=None):
    for group in expected:
        for kind, value, ends in group:
            if kind == "repeat":
                count, inner_tag = value
                first = len(out) + 1
                flatten(ends, out, inner_tag or tag)
                out.append(("loop", (first, count), [], inner_tag or tag))
            else:
                out.append((kind, value, ends, tag))
    return out


@settings(max_examples=60, deadline=None)
@given(steps(2))
def test_protocols_survive_yaml_binding_and_json_exactly(generated):
    document = {"protocol": "generated", "steps": [d for d, _ in generated]}
    text = yaml.safe_dump(document, sort_keys=False)
    program = load_protocol_text(text, "gen.yaml").bind(CELL)
    expected = flatten([e for _, e in generated], [])
    assert len(program.steps) == len(expected)
    for step, (kind, value, ends, tag) in zip(program.steps, expected, strict=True):
        assert step.kind == kind
        assert step.tag == tag
        if kind == "loop":
            assert (step.target, step.count) == value
            continue
        if kind in ("charge", "discharge"):
            assert math.isclose(step.current, value, rel_tol=1e-12)
        if kind == "hold":
            assert math.isclose(step.voltage, value, rel_tol=1e-12, abs_tol=1e-15)
        got = sorted((t.quantity.value, t.op.value, t.value) for t in step.until)
        want = sorted(ends)
        assert [(q, op) for q, op, _ in got] == [(q, op) for q, op, _ in want]
        for (_, _, a), (_, _, b) in zip(got, want, strict=True):
            assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
    again = StepProgram.from_json(program.to_json())
    assert again == program
    assert again.to_json() == program.to_json()
