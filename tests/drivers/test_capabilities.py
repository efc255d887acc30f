"""Capabilities as data: what each kind of channel declares, that declaring and checking do no I/O, and that the
kind-level test the station's channel choice uses is never stricter than the driver's own check."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import Capabilities, CapabilityError, ChannelDriver, ChannelRanges, StepSupport, step_features
from drivers.biologic.channel import BiologicChannel, BiologicConfig
from drivers.biologic.compiler import ChannelCapabilities
from drivers.biologic.compiler import capabilities as biologic_capabilities
from drivers.biologic.compiler import compile_program as compile_biologic
from drivers.neware.channel import NewareChannel
from drivers.neware.stepfile import capabilities as neware_capabilities
from drivers.neware.stepfile import check_program as check_neware
from protocols.program import (
    Action,
    CaStep,
    Comparison,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    LoopStep,
    LsvStep,
    PowerStep,
    Quantity,
    RestStep,
    SafetyLimits,
    StepProgram,
    Termination,
)
from tests.fakes.ordered_eclib import OrderedEClib, as_c_library

RANGES = ChannelRanges(voltage_min=-1.0, voltage_max=5.0, current_max=0.01)


def _t(quantity: str, op: str, value: float, then: str = "next", target: int | None = None) -> Termination:
    return Termination(quantity=Quantity(quantity), op=Comparison(op), value=value, then=Action(then), target=target)


def program(*steps, safety: SafetyLimits | None = None) -> StepProgram:  # type: ignore[no-untyped-def]
    return StepProgram(protocol="p", cell="c", safety=safety or SafetyLimits(),
                       steps=tuple(s.model_copy(update={"index": i}) for i, s in enumerate(steps, start=1)))


REST = RestStep(index=1, until=(_t("time", ">=", 60),))
CHARGE = CurrentStep(index=1, kind="charge", current=1e-3, until=(_t("voltage", ">=", 4.2),))
CCCV = CurrentStep(index=1, kind="charge", current=1e-3, hold_voltage=4.2, until=(_t("current", "<=", 1e-4),))
EIS = EisStep(index=1, f_start=1e4, f_end=1, points_per_decade=5, amplitude=0.01)


def test_neware_declares_its_tables() -> None:
    caps = NewareChannel.declared_capabilities(RANGES)
    assert caps.kinds == {"rest", "charge", "discharge", "hold", "ca", "lsv", "loop"}  # no eis, cv, power
    assert (caps.pause, caps.jumps, caps.max_passes, caps.max_steps, caps.ranges) == (True, True, 65535, 254, RANGES)
    assert caps.support("rest") == StepSupport(
        "rest", frozenset({Quantity.TIME, Quantity.VOLTAGE}),
        frozenset({Quantity.VOLTAGE, Quantity.CURRENT, Quantity.TIME}), frozenset())  # fmt: skip
    charge = caps.support("charge")
    assert charge is not None and charge.features == {"cccv"}
    assert charge.ends == {Quantity.TIME, Quantity.CAPACITY, Quantity.ENERGY, Quantity.VOLTAGE, Quantity.CURRENT}
    discharge = caps.support("discharge")
    assert discharge is not None and Quantity.CURRENT not in discharge.branches  # sign of |I| undocumented there
    assert {"temperature_max", "step_duration_max", "run_duration_max"}.isdisjoint(caps.safety)
    assert caps == neware_capabilities(RANGES)


def test_biologic_declares_its_techniques_and_what_connect_read() -> None:
    caps = BiologicChannel.declared_capabilities(RANGES)
    assert caps.kinds == {"rest", "charge", "discharge", "hold", "ca", "eis", "cv", "lsv", "loop"}  # no power
    assert (caps.pause, caps.jumps, caps.ranges) == (False, False, RANGES)
    assert caps.support("ca").features == {"vs_ocv"}  # type: ignore[union-attr]
    assert caps.support("charge").features == frozenset()  # type: ignore[union-attr]  # no CCCV technique
    assert caps.support("hold").branches == {Quantity.CURRENT}  # type: ignore[union-attr]  # limit tests only
    without_z = biologic_capabilities(ChannelCapabilities(has_eis=False))
    assert "eis" not in without_z.kinds


def test_capabilities_are_frozen_values() -> None:
    caps = NewareChannel.declared_capabilities(RANGES)
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.pause = False  # type: ignore[misc]
    assert hash(caps) == hash(neware_capabilities(RANGES))
    assert caps.with_ranges(None).ranges is None and caps.ranges == RANGES


def test_a_driver_that_declares_nothing_covers_nothing() -> None:
    assert ChannelDriver.declared_capabilities().problems(program(REST)) == [
        "step 1 (rest): a ChannelDriver channel cannot run rest steps"
    ]


def test_problems_name_the_step_and_what_the_kind_cannot_do() -> None:
    neware, biologic = neware_capabilities(RANGES), biologic_capabilities(ChannelCapabilities(ranges=RANGES))
    assert neware.problems(program(REST, EIS)) == ["step 2 (eis): a neware channel cannot run eis steps"]
    assert biologic.problems(program(CCCV)) == [
        "step 1 (charge): a biologic channel cannot run a constant current that holds its voltage at the end (CCCV)",
        "step 1 (charge): a biologic channel cannot end a charge step on current",
    ]
    jump = REST.model_copy(update={"until": (_t("voltage", "<=", 3.0, "jump", 3), _t("time", ">=", 60))})
    assert biologic.problems(program(jump, REST, REST)) == [
        "step 1 (rest): a biologic channel can only go on or end the run, not jump ('voltage <= 3 V -> step 3')"
    ]
    assert neware.problems(program(jump, REST, REST)) == []
    too_much = CHARGE.model_copy(update={"current": 0.05})
    assert neware.problems(program(too_much)) == ["step 1 (charge): 0.05 A is above the channel's 0.01 A"]
    looped = program(REST, LoopStep(index=2, target=1, count=70_000))
    assert neware.problems(looped) == ["step 2 (loop): 70000 passes; a neware channel runs a loop at most 65535 times"]
    hot = program(REST, safety=SafetyLimits(temperature_max=330.0))
    assert neware.problems(hot) == ["safety.temperature_max: a neware channel cannot enforce it"]
    assert biologic.covers(hot)


def test_step_features() -> None:
    assert step_features(CCCV) == {"cccv"} and step_features(CHARGE) == frozenset()
    assert step_features(CaStep(index=1, voltage=0.05, vs_ocv=True)) == {"vs_ocv"}
    assert step_features(LsvStep(index=1, scan_rate=1e-3, end=1.0)) == {"vs_ocv"}
    assert step_features(EIS) == {"vs_ocv"} and step_features(EIS.model_copy(update={"mode": "galvano"})) == set()


def test_biologic_check_and_capabilities_do_not_touch_the_instrument() -> None:
    with OrderedEClib([]) as fake:  # no call expected; leaving the block checks none came
        driver = BiologicChannel(as_c_library(fake), BiologicConfig("USB0", 0, ranges=RANGES))
        driver.check(program(REST, EIS))
        assert driver.capabilities() == BiologicChannel.declared_capabilities(RANGES)
        with pytest.raises(CapabilityError, match=r"step 1 \(power\): power steps have no Biologic technique"):
            driver.check(program(PowerStep(index=1, power=0.001, until=(_t("time", ">=", 1),))))


# -- the kind-level test is never stricter than the driver's check ------------------------------------------------

VOLTS = st.sampled_from((0.0, 0.01, 2.5, 3.0, 3.6, 4.2, 5.5, -1.5))
AMPS = st.sampled_from((1e-4, 1e-3, 5e-3, 0.02))


@st.composite
def terminations(draw: st.DrawFn, steps: int) -> tuple[Termination, ...]:
    out = []
    for _ in range(draw(st.integers(0, 3))):
        quantity = draw(st.sampled_from(list(Quantity)))
        value = {"voltage": draw(VOLTS), "current": draw(AMPS), "time": 600.0, "capacity": 1e-3, "energy": 4e-3,
                 "dvdt": 1e-6}[quantity.value]
        then = draw(st.sampled_from(("next", "next", "end", "jump")))
        target = draw(st.integers(1, steps)) if then == "jump" else None
        out.append(Termination(quantity=quantity, op=draw(st.sampled_from(list(Comparison))), value=value,
                               then=Action(then), target=target))
    return tuple(out)


@st.composite
def plausible_programs(draw: st.DrawFn) -> StepProgram:
    """Programs with lab-like values: many pass the checks, so the property below is exercised both ways."""
    n = draw(st.integers(1, 5))
    steps = []
    for index in range(1, n + 1):
        until = draw(terminations(n))
        kind = draw(st.sampled_from(("rest", "charge", "discharge", "cccv", "hold", "ca", "eis", "cv", "lsv",
                                     "power", "loop")))
        if kind == "loop" and index > 1:
            steps.append(LoopStep(index=index, target=draw(st.integers(1, index - 1)), count=draw(st.integers(1, 5))))
            continue
        if kind in ("rest", "loop"):
            steps.append(RestStep(index=index, until=until))
        elif kind in ("charge", "discharge", "cccv"):
            amps = draw(AMPS) * (-1 if kind == "discharge" else 1)
            hold = draw(VOLTS) if kind == "cccv" else None
            steps.append(CurrentStep(index=index, kind="discharge" if amps < 0 else "charge", current=amps,
                                     hold_voltage=hold, until=until))
        elif kind == "hold":
            steps.append(HoldStep(index=index, voltage=draw(VOLTS), current_limit=draw(st.none() | AMPS),
                                  direction=draw(st.sampled_from((None, "charge", "discharge"))), until=until))
        elif kind == "ca":
            steps.append(CaStep(index=index, voltage=draw(VOLTS), vs_ocv=draw(st.booleans()), until=until))
        elif kind == "eis":
            steps.append(EisStep(index=index, f_start=1e5, f_end=0.1, points_per_decade=5, amplitude=0.01,
                                 until=until))
        elif kind == "cv":
            steps.append(CvStep(index=index, scan_rate=1e-4, vertex_1=draw(VOLTS), vertex_2=draw(VOLTS),
                                start=draw(st.none() | VOLTS), until=until))
        elif kind == "lsv":
            steps.append(LsvStep(index=index, scan_rate=1e-4, start=draw(st.none() | VOLTS), end=draw(VOLTS),
                                 until=until))
        else:
            steps.append(PowerStep(index=index, power=1e-3, until=until))
    safety = SafetyLimits(current_max=draw(st.none() | AMPS), voltage_min=draw(st.none() | st.just(2.5)),
                          temperature_max=draw(st.none() | st.just(330.0)))
    return StepProgram(protocol="p", cell="c", steps=tuple(steps), safety=safety, start_voltage=3.0)


def _passes(check) -> bool:  # type: ignore[no-untyped-def]
    try:
        check()
    except CapabilityError:
        return False
    return True


def _accepted(prog: StepProgram) -> dict[str, bool]:
    """Which drivers' checks accept ``prog``, asserting that their capabilities then cover it."""
    accepted = {
        "neware": _passes(lambda: check_neware(prog, RANGES)),
        "biologic": _passes(lambda: compile_biologic(prog, ChannelCapabilities(ranges=RANGES))),
    }
    declared: dict[str, Capabilities] = {
        "neware": NewareChannel.declared_capabilities(RANGES),
        "biologic": BiologicChannel.declared_capabilities(RANGES),
    }
    for kind, ok in accepted.items():
        if ok:
            assert declared[kind].problems(prog) == [], kind
    return accepted


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plausible_programs())
def test_what_a_driver_accepts_its_capabilities_cover(prog: StepProgram) -> None:
    _accepted(prog)


def test_the_property_is_exercised_by_programs_each_driver_accepts() -> None:
    discharge = CurrentStep(index=3, kind="discharge", current=-1e-3, until=(_t("voltage", "<=", 3.0),))
    both = program(REST, CHARGE, discharge)
    assert _accepted(both) == {"neware": True, "biologic": True}
    assert _accepted(program(REST, CCCV)) == {"neware": True, "biologic": False}
    assert _accepted(program(REST, EIS)) == {"neware": False, "biologic": True}


LIBRARY = {  # protocol, cell, which kinds of channel run it (the Neware ones, as separate CC and CV steps, also
    # run on a potentiostat)
    "p1-li-deposition": ("host-cu-li", {"neware", "biologic"}),
    "p2-plating-stripping-ce": ("host-cu-li", {"neware", "biologic"}),
    "p3-full-cell-cycling": ("predeposited-ncm622", {"neware", "biologic"}),
    "p4-anode-free-cycling": ("anode-free-ncm622", {"neware", "biologic"}),
    "p5-eis": ("host-cu-li", {"biologic"}),
    "p6-cyclic-voltammetry": ("host-cu-li", {"biologic"}),
    "p7-conductivity": ("host-blocking", {"biologic"}),
}


@pytest.mark.parametrize("protocol", sorted(LIBRARY))
def test_the_library_protocols_run_where_the_lab_runs_them(protocol: str) -> None:
    from protocols.cells import load_cell
    from protocols.library import resolve_cell_path, resolve_protocol_path
    from protocols.loader import build_program

    cell_name, kinds = LIBRARY[protocol]
    prog = build_program(resolve_protocol_path(protocol), load_cell(resolve_cell_path(cell_name)), None)
    wide = ChannelRanges(voltage_min=-10.0, voltage_max=10.0, current_max=0.1)
    covered = {kind for kind, driver in (("neware", NewareChannel), ("biologic", BiologicChannel))
               if driver.declared_capabilities(wide).covers(prog)}
    assert covered == kinds
    accepted = _accepted(prog)  # and whatever a driver accepts, its capabilities cover
    assert {kind for kind, ok in accepted.items() if ok} == kinds
