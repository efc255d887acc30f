"""aurora-neware, an independent client in production against BTS 8.0, drives the simulated BTS unchanged.

64 channels on 2 devices; every call of aurora-neware's ``NewareAPI`` that the reference lists as implemented
(connect, getdevinfo, getchlstatus, inquire, start, stop, download with a negative start, downloadlog, inquiredf,
clearflag, light, downloadStepLayer, the zero-length download for the test id). Correctness only, never time (the
budget is ``benchmarks/bench_sim_2048.py``'s).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bts_files import end, step, step_file, values

from protocols.clock import VirtualClock
from simulators.neware import BtsSimulator
from simulators.neware.engine import LOG_START, LOG_STOP
from tests.fakes.standin_cell import LinearCell

neware = pytest.importorskip(
    "aurora_neware", reason="aurora-neware is not installed (pip install -e '.[test]' installs aurora-neware==0.2.3)"
)

#: rest 30 s, then charge 1 mA to 4.2 V or 600 s, records every 10 s
STEPS = step(1, 4, values(Time=30000)) + step(2, 1, values(Curr=1, Stop_Volt=42000, Time=600000)) + end(3)


@pytest.fixture
def sim() -> Iterator[BtsSimulator]:
    simulator = BtsSimulator(
        devices=2, subdevices=4, channels=8, clock=VirtualClock(), model_factory=lambda key: LinearCell(q0=0.001)
    ).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def api(sim: BtsSimulator) -> Iterator[Any]:
    with neware.NewareAPI("127.0.0.1", sim.port) as nw:
        yield nw


def test_aurora_neware_runs_64_channels_end_to_end(sim: BtsSimulator, api: Any, tmp_path: Path) -> None:
    nw = api
    assert len(nw.channel_map) == 64 and "22-4-8" in nw.channel_map
    assert {v["workstatus"] for v in nw.inquire().values()} == {"finish"}
    plan = tmp_path / "plan.xml"
    plan.write_text(step_file(STEPS), "utf-8")
    ids = list(nw.channel_map)
    replies = nw.start(ids, [f"cell-{i}" for i in ids], [str(plan)] * len(ids), tmp_path / "data")
    assert [r["start"] for r in replies] == ["ok"] * 64
    testids = nw.get_testid(ids[:2])
    assert {v["test_id"] for v in testids.values()} == {1}  # one batch, one test id
    sim.clock.advance(45.0)  # type: ignore[attr-defined]
    live = nw.inquire()
    assert {v["workstatus"] for v in live.values()} == {"working"}
    one = live["21-1-1"]
    # LinearCell at 0.5 of 2 mAh (3.6 V), 15 s into a 1 mA charge: 3.6 V + 1.2 V x 15/3600 mAh/2 mAh + 10 mV
    assert (one["step_id"], one["step_type"], one["current"], one["relativetime"]) == (2, "cc", 0.001, 15)
    assert one["voltage"] == pytest.approx(3.6125, abs=1e-4) and one["barcode"] == "cell-21-1-1"
    assert {v["status"] for v in nw.getchlstatus(ids).values()} == {"working"}

    last = nw.download("22-4-8", last_n_points=5)
    engine = sim.channel("22-4-8")
    assert last["seqid"] == list(range(engine.last_seqid - 4, engine.last_seqid + 1))
    everything = nw.download("22-4-8", last_n_points=1000)  # more than there are: a negative start position
    expected = engine.records.slice(0, engine.last_seqid)
    assert everything["seqid"] == list(range(1, engine.last_seqid + 1))
    assert np.allclose(everything["volt"], expected["volt"], rtol=1e-14)
    assert np.allclose(np.array(everything["testtime"]) / 1000, expected["step_time"], atol=1e-4)
    assert everything["testtime"][:5] == [0, 10000, 20000, 30000, 0]  # the rest's grid, then the charge's start
    assert everything["cycleid"][0] == 0  # download numbers cycles from 0 (the field capture), the steps from 1

    assert [r["stop"] for r in nw.stop(ids[:32])] == ["ok"] * 32
    assert {v["workstatus"] for k, v in nw.inquire(ids[:32]).items()} == {"stop"}
    log = nw.downloadlog("21-1-1")
    assert (log[0]["seqid"], log[0]["log_code"]) == (1, LOG_START)
    assert (log[-1]["seqid"], log[-1]["log_code"]) == (sim.channel("21-1-1").last_seqid, LOG_STOP)
    df = nw.inquiredf(ids[:33])
    assert df["21-1-1"]["chl"] == "true" and df[ids[32]]["chl"] == "false"  # stopped and complete / still working
    assert df["21-1-1"]["count"] == sim.channel("21-1-1").last_seqid
    steps = nw.get_steps("21-1-1")
    assert [(s["stepid"], s["steptype"], s["cycleid"]) for s in steps] == [(1, "rest", 1), (2, "cc", 1)]
    assert [r["clearflag"] for r in nw.clearflag("21-1-1")] == ["false"]  # nothing to clear on a stopped channel
    assert [r["light"] for r in nw.light("21-1-1")] == ["ok"]
    sim.clock.advance(1e4)  # type: ignore[attr-defined]
    assert {v["workstatus"] for v in nw.inquire(ids[32:]).values()} == {"finish"}
    assert [r["stop"] for r in nw.stop(ids[40])] == ["false"]  # stop on a finished channel: false (real capture)


def test_aurora_neware_is_refused_a_start_of_a_file_the_simulator_cannot_run(
    sim: BtsSimulator, api: Any, tmp_path: Path
) -> None:
    plan = tmp_path / "expression.xml"
    condition = (
        '<Other CndCount="1"><Cnd1 type="22" Function="0" CmpType="5" Jump_Line="65526" Value="0" TimeGoto="0" '
        'ExpressionName="timeLimit" Expression="(2*User3)-StepTime" GlobleUserID="2147483647" GLobleType="1" '
        'GlobalVar="2147483647" Aux="0" /></Other>'
    )
    plan.write_text(step_file(step(1, 4, values(Time=30000), condition) + end(2)), "utf-8")
    assert [r["start"] for r in api.start("21-1-1", "cell", str(plan), tmp_path)] == ["false"]
    assert "expression test condition (type 22) is not simulated" in sim.last_start_errors["(21, 1, 1)"]
