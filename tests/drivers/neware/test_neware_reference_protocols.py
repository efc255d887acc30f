"""P1-P4 end to end: library protocol + library cell -> step program -> Neware driver -> loopback simulated BTS
running the real cell models under a VirtualClock -> records. Checks the data the way a lab would."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from neware_harness import Harness, assert_real_time_grid, run_to_end

from drivers.base import ChannelState, Record
from protocols.cells import load_cell
from protocols.clock import VirtualClock
from protocols.library import resolve_cell_path, resolve_protocol_path
from protocols.loader import build_program
from protocols.program import StepProgram, walk
from simulators.cells import build_model
from simulators.neware import BtsSimulator

CASES = {
    "P1": ("p1-li-deposition", "host-cu-li", None),
    "P2": ("p2-plating-stripping-ce", "host-cu-li", {"cycles": "5"}),
    "P3": ("p3-full-cell-cycling", "predeposited-ncm622", {"cycles": "5"}),
    "P4": ("p4-anode-free-cycling", "anode-free-ncm622", {"cycles": "10"}),
}


class Run:
    def __init__(self, program: StepProgram, records: list[Record], state: ChannelState, area: float, rows: list):
        self.program, self.records, self.state, self.area = program, records, state, area
        self.server_rows = rows  # the simulated BTS's own step layer: an independent account of the same run
        self.steps = self._instances()

    def _instances(self) -> list[list[Record]]:
        out: list[list[Record]] = []
        for r in self.records:
            if out and out[-1][-1].step_index == r.step_index and r.step_time >= out[-1][-1].step_time:
                out[-1].append(r)
            else:
                out.append([r])
        return out

    def per_cycle(self) -> dict[int, tuple[float, float]]:
        """cycle -> (charge Ah, discharge Ah) from each step's final capacity."""
        totals: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for step in self.steps:
            end = step[-1]
            totals[end.cycle][0 if end.capacity > 0 else 1] += abs(end.capacity)
        return {cycle: (c, d) for cycle, (c, d) in sorted(totals.items())}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    out = {}
    for name, (protocol, cell_name, overrides) in CASES.items():
        cell = load_cell(resolve_cell_path(cell_name))
        program = build_program(resolve_protocol_path(protocol), cell, overrides)
        clock = VirtualClock()

        def factory(key, cell=cell):
            return build_model(
                cell.model_type,
                cell.model_params,
                area=cell.area,
                capacity=cell.capacity,
                thickness=cell.thickness,
                seed=7,
            )

        with BtsSimulator(devices=1, channels=1, clock=clock, model_factory=factory) as sim:
            channel = Harness(clock, sim.port, tmp_path_factory.mktemp(name)).channel()
            channel.start(program, f"{name}-cell")
            records = run_to_end(channel, clock, poll_s=6 * 3600.0)
            rows = sim.channel("21-1-1").step_rows
            out[name] = Run(program, records, channel.status().state, cell.area, rows)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_data_are_complete_ordered_and_follow_the_program(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    assert run.state is ChannelState.FINISHED
    assert [r.seq for r in run.records] == list(range(1, len(run.records) + 1))
    assert_real_time_grid(run.records)  # as the real BTS: a step's first record repeats the previous test time
    nominal = [(e.step.index, e.cycle) for e in walk(run.program)]
    assert [(s[0].step_index, s[0].cycle) for s in run.steps] == nominal
    server = [(row.stepid, row.cycleid, row.startseqid, row.endseqid, row.cap, row.steptime) for row in run.server_rows]
    mine = [(s[0].step_index, s[0].cycle, s[0].seq, s[-1].seq, abs(s[-1].capacity), s[-1].step_time) for s in run.steps]
    assert [(x[0], x[2], x[3]) for x in mine] == [(x[0], x[2], x[3]) for x in server]  # cycles: nominal_path
    assert np.allclose([x[4] for x in mine], [x[4] for x in server], rtol=1e-12, atol=1e-15)
    assert np.allclose([x[5] for x in mine], [x[5] for x in server], rtol=0, atol=1e-4)  # 0.1 ms on the wire
    for step in run.steps:
        assert all(r.cycle == step[0].cycle for r in step)
        # a step's first record is taken at its start (step time 0.0 s), its last at its end
        assert step[0].step_time == 0.0
        assert step[-1].test_time == pytest.approx(step[0].test_time + step[-1].step_time, abs=1e-9)
        if len(step) > 2:  # capacity is the integral of the recorded current, held from the switch on
            integral = np.trapezoid([r.current for r in step], [r.step_time for r in step]) / 3600
            assert step[-1].capacity == pytest.approx(integral, rel=2e-3, abs=1e-9)
        program_step = run.program.step(step[0].step_index)
        current = getattr(program_step, "current", None)
        if current is not None:  # constant-current steps hold their set-point exactly
            assert np.allclose([r.current for r in step[1:]], current, rtol=1e-9)
        for term in program_step.until:
            if term.quantity.value == "voltage" and step is not run.steps[-1]:
                assert step[-1].voltage == pytest.approx(term.value, abs=2e-3), (step[0].step_index, term)


def test_p1_lithiates_the_host_then_plates_the_areal_capacity(runs: dict[str, Run]) -> None:
    run = runs["P1"]
    rest, lithiation, plating = run.steps
    assert rest[-1].step_time == pytest.approx(3600.0)
    assert lithiation[-1].voltage == pytest.approx(0.0, abs=1e-3)
    assert plating[-1].capacity == pytest.approx(-0.004 * run.area * 1e4, rel=1e-6)  # 4 mAh/cm^2 x area
    assert plating[-1].capacity == pytest.approx(-0.004523893, rel=1e-6)  # 4 mAh/cm^2 on 1.131 cm^2
    assert min(r.voltage for r in plating) < 0  # Li plating runs below 0 V vs Li/Li+


def test_p2_plates_2_mah_per_cm2_and_strips_at_the_li_ce_once_the_host_is_cycling(runs: dict[str, Run]) -> None:
    run = runs["P2"]
    plated = [s[-1].capacity for s in run.steps if s[0].step_index == 3]
    stripped = [s[-1].capacity for s in run.steps if s[0].step_index == 4]
    assert plated == pytest.approx([-0.0022619467] * 5, rel=1e-6)  # 2 mAh/cm^2 on 1.131 cm^2
    ce = [s / -p for s, p in zip(stripped, plated, strict=True)]
    lithiation = -next(s[-1].capacity for s in run.steps if s[0].step_index == 2)
    # The first cycle's CE counts the whole first discharge (host lithiation, its first-cycle SEI, plating): the
    # SEI, the host's Li below the 1 V cut-off and the dead Li never come back, so it is well below 100 %. The
    # first plate step also finishes the host the lithiation left short (its surface reached 0 V first), so its
    # strip/plate CE is low too. From then on the host cycles and the Li CE on the mixed conducting host stays
    # high and flat (seed Fig. S7): 99 % at 1 mA/cm^2 and 1 mAh/cm^2, a little under it at 2 and 2.
    assert 0.70 < stripped[0] / (lithiation - plated[0]) < 0.92
    assert ce[0] < ce[1]
    assert all(0.985 <= c <= 0.995 for c in ce[1:])
    assert np.ptp(ce[1:]) < 1e-3
    assert all(s[-1].voltage == pytest.approx(1.0, abs=2e-3) for s in run.steps if s[0].step_index == 4)


def test_p3_and_p4_ce_per_cycle_and_fade(runs: dict[str, Run]) -> None:
    p3, p4 = runs["P3"].per_cycle(), runs["P4"].per_cycle()
    ce3 = [d / c for c, d in p3.values() if c and d]
    ce4 = [d / c for c, d in p4.values() if c and d]
    assert len(ce3) == 7 and len(ce4) == 10
    # NCM622's first delithiation is partly irreversible: first-cycle CE 85-90 % on both cells (issue 12)
    assert 0.85 <= ce3[0] <= 0.90 and 0.85 <= ce4[0] <= 0.90, (ce3[0], ce4[0])
    # then the pre-deposited Li reservoir keeps the full cell cathode-limited: CE just below 1 (electrolyte
    # oxidation at the cathode) at a constant rate; the first 0.2C/0.5C cycle also pays the rate change
    assert all(0.99 < x < 1.0 for x in ce3[1:2] + ce3[3:]), ce3
    assert 0.9 < ce3[2] < 1.0, ce3
    # anode-free: the Li the cathode could not take back stays on the anode as a small reservoir (10 cycles
    # at 0.1C do not use it up); every cycle loses a little Li inventory and cathode capacity
    assert all(0.99 < x < 1.0 for x in ce4[1:]), ce4
    discharges = [d for c, d in p4.values() if c and d]
    assert discharges == sorted(discharges, reverse=True)  # capacity fades cycle over cycle
