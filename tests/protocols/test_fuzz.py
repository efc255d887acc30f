"""Fuzzed protocols and cells (issue 9, item 6): a positioned error or a valid plan, never an exception.

Hypothesis draws documents from the protocol and cell grammar and mutates the library files; every case must end
in a ``ProtocolError`` whose every line reads ``FILE:LINE:COL: path: ...`` or in a program that estimates, renders
as the plan document and goes through both compilers, which may only refuse with a ``CapabilityError`` naming the
step. Runs are derandomized (the same cases in CI every time) with a fixed number of examples. The oracle and the
mutations live in :mod:`tests.protocols.fuzzing`, shared with ``benchmarks/fuzz_protocols.py``, which runs a
larger campaign with a watchdog and reports timings; no test here measures time.
"""

from __future__ import annotations

import json
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from protocols.cells import load_cell_text
from protocols.errors import ProtocolError
from protocols.estimate import estimate_program
from protocols.loader import load_protocol_text
from protocols.program import MAX_PASSES
from protocols.yamlsource import MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_VALUES, load_yaml
from station.cli import app

from .fuzzing import (
    BOMB,
    GOOD_CELLS,
    PROTOCOL_FILES,
    as_yaml,
    branching_documents,
    cell_documents,
    check_case,
    check_compilers,
    library_case,
    protocol_documents,
    step_programs,
)

# the grammar's strategy tree is large, and hypothesis warns when it renders it; the rendering is never shown
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
LIBRARY_PROTOCOLS = [p.read_text(encoding="utf-8") for p in PROTOCOL_FILES]


@settings(FUZZ, max_examples=900)
@given(protocol_documents(), st.sampled_from(GOOD_CELLS))
def test_grammar_protocols_end_in_a_positioned_error_or_a_plan(document, cell):
    check_case(as_yaml(document), cell)


@settings(FUZZ, max_examples=300)
@given(branching_documents(), st.just(GOOD_CELLS[1]))  # a full cell, 3.0 V, whose window the steps fit
def test_branching_protocols_end_in_a_positioned_error_or_a_plan(document, cell):
    """Conditional jumps (``then: <id>``), ends and hold directions through binding, the estimate, the plan and both
    compilers (which may only refuse by step: a jump Biologic cannot make, a hold whose direction is unknown)."""
    check_case(as_yaml(document), cell)


@settings(FUZZ, max_examples=300)
@given(cell_documents(), st.sampled_from(LIBRARY_PROTOCOLS))
def test_grammar_cells_end_in_a_positioned_error_or_a_plan(document, protocol):
    check_case(protocol, as_yaml(document))


@settings(FUZZ, max_examples=2000)
@given(st.randoms(use_true_random=False))
def test_mutated_library_files_end_in_a_positioned_error_or_a_plan(rng):
    check_case(*library_case(rng, heavy=False))


@settings(FUZZ, max_examples=600)
@given(step_programs(), st.sampled_from(GOOD_CELLS))
def test_any_valid_step_program_estimates_and_compiles_or_is_refused_by_step(program, cell):
    estimate = estimate_program(program, load_cell_text(cell, "cell.yaml"))
    numbers = [estimate.total_s, *(e.total_s for e in estimate.steps.values()),
               *(e.end_s for e in estimate.steps.values()), *(e.first_s or 0.0 for e in estimate.steps.values())]
    json.dumps(numbers, allow_nan=False)
    check_compilers(program)


# -- through the command line --------------------------------------------------------------------------------------

_POSITIONED = re.compile(r"^.+:\d+:\d+: \S.*: \S.*$")


@settings(FUZZ, max_examples=60)
@given(st.randoms(use_true_random=False))
def test_validate_and_plan_print_one_positioned_line_per_error_and_exit_1(tmp_path_factory, rng):
    folder = tmp_path_factory.mktemp("cli")
    protocol, cell = library_case(rng, heavy=False)
    (folder / "p.yaml").write_text(protocol, encoding="utf-8", errors="surrogatepass")
    (folder / "c.yaml").write_text(cell, encoding="utf-8", errors="surrogatepass")
    runner = CliRunner()
    for args in (["validate", str(folder / "p.yaml")], ["validate", str(folder / "p.yaml"), "--cell",
                                                        str(folder / "c.yaml")],
                 ["plan", str(folder / "p.yaml"), "--cell", str(folder / "c.yaml"), "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code in (0, 1), (args, result.exit_code, result.output, result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert "Traceback" not in result.output
        if result.exit_code == 1:
            lines = result.stderr.splitlines()
            assert lines and all(_POSITIONED.match(line) for line in lines), lines


# -- the campaign's findings, each pinned with its message and position ----------------------------------------------


def _error(text: str, cell: str | None = GOOD_CELLS[0]):
    with pytest.raises(ProtocolError) as info:
        load_protocol_text(text, "p.yaml").bind(load_cell_text(cell, "c.yaml") if cell else None)
    return info.value.problems


def test_a_billion_laughs_is_refused_at_the_alias_that_overflows():
    with pytest.raises(ProtocolError, match=r"^f\.yaml:5:\d+: \(document\): the aliases expand the document to too"):
        load_yaml(BOMB, "f.yaml")


def test_a_recursive_alias_is_refused():
    with pytest.raises(ProtocolError, match=r"f\.yaml:1:12: .*recursive alias"):
        load_yaml("steps: &s [*s]\n", "f.yaml")


def test_aliases_that_stay_small_still_work():
    text = "protocol: x\nsteps:\n  - &r {rest: 1 h}\n  - *r\n"
    assert len(load_protocol_text(text, "p.yaml").doc.steps) == 2


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000, 100_000])
def test_deep_nesting_is_a_positioned_error_not_a_recursion_error(depth):
    with pytest.raises(ProtocolError, match=r"^f\.yaml:1:\d+: \(document\): .*(nested too deeply|nesting depth)"):
        load_yaml("[" * depth + "]" * depth, "f.yaml")


def test_a_document_with_too_many_values_is_refused_without_blaming_aliases():
    with pytest.raises(ProtocolError, match=r"f\.yaml:2:\d+: \(document\): the document has too many values"):
        load_yaml("protocol: x\nsteps: [" + "1, " * MAX_VALUES + "1]\n", "f.yaml")


@pytest.mark.parametrize(("text", "message"), [
    (BOMB, "the aliases expand the document"), ("steps: &s [*s]\n", "recursive alias"),
    ("[" * 500 + "]" * 500, "nested too deeply"), ('a: "\\ud800"\n', "not valid Unicode"),
])
def test_the_pure_python_parser_keeps_the_same_limits(monkeypatch, text, message):
    """Without libyaml PyYAML parses in Python; the limits live in our composer, so they hold there too."""
    import yaml

    monkeypatch.setattr("protocols.yamlsource._PARSER", yaml.SafeLoader)
    with pytest.raises(ProtocolError, match=message):
        load_yaml(text, "f.yaml")


def test_a_file_over_the_size_cap_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("protocol: x\n#" + " " * MAX_DOCUMENT_BYTES)
    with pytest.raises(ProtocolError, match=r"big\.yaml:1:1: \(document\): the file is too large.*at most 1 MB"):
        load_protocol_text(path.read_text(), str(path))
    from protocols.loader import load_protocol

    with pytest.raises(ProtocolError, match="the file is too large"):
        load_protocol(str(path))


def test_a_huge_repeat_plans_in_closed_form():
    text = ("protocol: x\nsteps:\n  - repeat: 1e9\n"
            "    steps: ['Charge at 1 mA until 3 V', 'Discharge at 1 mA until 0 V']\n")
    program = load_protocol_text(text, "p.yaml").bind(load_cell_text(GOOD_CELLS[0], "c.yaml"))
    estimate = estimate_program(program, load_cell_text(GOOD_CELLS[0], "c.yaml"))
    assert program.step(3).count == 10**9 and estimate.steps[1].passes == 10**9 and estimate.executions == 2 * 10**9


@pytest.mark.parametrize(("count", "message"), [
    (2**31, "more passes than any instrument's loop counter holds"),
    ("99999999999999999999", "more passes than any instrument's loop counter holds"),
    ("2.5", "a repeat count is a whole number of passes"),
])
def test_repeat_counts_beyond_any_loop_counter_are_refused(count, message):
    problems = _error(f"protocol: x\nsteps:\n  - repeat: {count}\n    steps: ['Rest for 1 s']\n")
    assert any(message in p.message and (p.line, p.path) == (3, "steps[0].repeat") for p in problems), problems


def test_nested_repeats_whose_product_is_too_large_are_refused_at_the_inner_repeat():
    text = (f"protocol: x\nsteps:\n  - repeat: {2**16}\n    steps:\n      - repeat: {2**16}\n"
            "        steps: ['Rest for 1 s']\n")
    (problem,) = _error(text)
    assert (problem.line, problem.path) == (5, "steps[0].steps[0].repeat")
    assert f"at most {MAX_PASSES}" in problem.expected


@pytest.mark.parametrize(("key", "value", "path"), [
    ("capacity", "0 mAh", "safety.capacity"), ("capacity", "-1 mAh", "safety.capacity"),
    ("duration", "0 h", "safety.duration"), ("duration", "-5 s", "safety.duration"),
    ("step_duration", "0 s", "safety.step_duration"), ("current", "-5 mA", "safety.current"),
    ("current", "-0.1C", "safety.current"), ("temperature", "-300 degC", "safety.temperature"),
])
def test_safety_limits_at_or_below_zero_are_refused(key, value, path):
    problems = _error(f"protocol: x\nsafety: {{{key}: {value}}}\nsteps: ['Rest for 1 s']\n", cell=None)
    assert [(p.line, p.path) for p in problems] == [(2, path)], problems


@pytest.mark.parametrize("value", ["nan V", "inf V", "1e308 V", "9**9**9 V", "2^2^2^2^2 V", "((10**10)**10) V",
                                   "1" + "0" * 5000 + " V", "10**400 V"])
def test_hostile_numbers_and_expressions_are_positioned_errors(value):
    problems = _error(f"protocol: x\nsteps:\n  - hold: {{voltage: '{value}', until: {{time: 1 h}}}}\n")
    assert [(p.line, p.path) for p in problems] == [(3, "steps[0].hold.voltage")], problems


@pytest.mark.parametrize(("frequency", "message"), [("0 Hz", "above zero"), ("-1 Hz", "above zero"),
                                                    ("1e-300 Hz", "no impedance analyser"),
                                                    ("20 GHz", "no impedance analyser")])
def test_eis_frequencies_outside_any_analyser_are_refused(frequency, message):
    problems = _error(f"protocol: x\nsteps:\n  - eis: {{from: '{frequency}', to: 1 Hz, amplitude: 10 mV}}\n")
    assert any(message in p.message and p.path == "steps[0].eis.from" for p in problems), problems


@pytest.mark.parametrize(("line", "path"), [
    ("diameter: 0 mm", "diameter"), ("diameter: -12 mm", "diameter"), ("capacity: -2 mAh", "capacity"),
    ("capacity: 0 mAh/cm^2\ndiameter: 12 mm", "capacity"), ("thickness: 0 um", "thickness"),
    ("limits: {current: -10 mA}", "limits.current"), ("diameter: 1e400 mm", "diameter"),
    ("diameter: 99999999999999999999999 mm", "diameter"), ("temperature: -500 K", "temperature"),
])
def test_cell_sizes_and_limits_at_or_below_zero_or_huge_are_refused(line, path):
    with pytest.raises(ProtocolError) as info:
        load_cell_text(f"name: c\n{line}\n", "c.yaml")
    assert [(p.line, p.path) for p in info.value.problems] == [(2, path)], info.value.problems


def test_a_step_program_past_the_step_bound_is_refused_at_the_first_step_beyond():
    text = "protocol: x\nsteps:\n" + "  - Rest for 1 s\n" * 1001
    (problem,) = _error(text)
    assert (problem.line, problem.path) == (1003, "steps[1000]") and "more than 1000 steps" in problem.message


def test_a_negative_relative_current_is_refused_without_a_cell():
    problems = _error("protocol: x\nsteps:\n  - discharge: {current: -0.1C, until: {voltage: 0 V}}\n", cell=None)
    assert [(p.line, p.path) for p in problems] == [(3, "steps[0].discharge.current")], problems


def test_explicit_tags_that_do_not_fit_are_positioned():
    with pytest.raises(ProtocolError, match=r"f\.yaml:1:4: a: cannot read this value as int"):
        load_yaml("a: !!int abc\n", "f.yaml")


def test_a_handful_of_campaign_cases_replay_by_seed():
    """The standalone campaign reports failing cases by seed; the same seeds replay here."""
    for seed in (3, 9, 11, 91, 150, 357):
        check_case(*library_case(random.Random(seed), heavy=False))


def test_messages_about_many_names_stay_short():
    steps = "".join(f"  - {{rest: {{until: [{{time: 1 s, then: z{i}}}], id: a{i}}}}}\n" for i in range(50))
    problems = _error("protocol: x\nsteps:\n" + steps)
    assert len(problems) == 50 and all("... (50 in all)" in p.expected and len(str(p)) < 300 for p in problems)


def test_a_line_break_inside_a_value_does_not_split_the_error_line():
    (problem,) = _error('protocol: x\nsteps:\n  - rest: "1\\nparsec"\n')
    assert "\n" not in str(problem) and "1\\nparsec" in str(problem)


def test_neware_refuses_a_loop_beyond_its_cycle_counter_by_step():
    from drivers.base import CapabilityError
    from drivers.neware.stepfile import MAX_CYCLE_COUNT, check_program

    from .fuzzing import NEWARE_RANGES

    text = "protocol: x\nsteps:\n  - repeat: {n}\n    steps: ['Charge at 1 mA for 1 h']\n"
    host = load_cell_text(GOOD_CELLS[0], "c.yaml")
    check_program(load_protocol_text(text.format(n=MAX_CYCLE_COUNT), "p.yaml").bind(host), NEWARE_RANGES)
    with pytest.raises(CapabilityError, match=r"step 2 \(loop\).*65536 passes.*Cycle_Count"):
        check_program(load_protocol_text(text.format(n=MAX_CYCLE_COUNT + 1), "p.yaml").bind(host), NEWARE_RANGES)


def test_neware_refuses_a_value_that_overflows_once_scaled_instead_of_failing_to_write_it():
    from drivers.base import CapabilityError
    from drivers.neware.stepfile import compile_program
    from protocols.program import RecordRule, RestStep, StepProgram, Termination

    from .fuzzing import NEWARE_RANGES

    rest = RestStep(index=1, until=(Termination(quantity="time", op=">=", value=60.0),),
                    record=RecordRule(every_s=1e306))
    with pytest.raises(CapabilityError, match=r"step 1 \(rest\).*too large to write"):
        compile_program(StepProgram(protocol="x", cell="c", steps=(rest,)), NEWARE_RANGES)
