"""The cycle of a live status whose step the downloaded records have already left: the BTS's live values trail
its records by seconds after every step change, and the look-ahead that places such a step walks its whole horizon.
It is done once per state of the program's execution, not once per channel per poll."""

from __future__ import annotations

from pathlib import Path

from drivers.base import ChannelRanges
from drivers.neware.address import ChannelAddress
from drivers.neware.channel import NewareChannel
from protocols.cells import load_cell
from protocols.loader import load_protocol_text
from protocols.program import Execution

PROTOCOL = """
protocol: rest-then-cycles
record: {every: 1 s}
steps:
  - rest: 10 s
  - repeat: 100
    steps:
      - Charge at 0.2C until 4.3 V
      - Discharge at 0.5C until 3.0 V
"""


def channel(tmp_path: Path) -> NewareChannel:
    driver = NewareChannel(None, ChannelAddress.parse("21-1-1"),  # type: ignore[arg-type]  # never sends here
                           ChannelRanges(voltage_min=0.0, voltage_max=5.0, current_max=0.01), step_dir=tmp_path)
    program = load_protocol_text(PROTOCOL, "p.yaml").bind(load_cell("predeposited-ncm622"))
    assert program is not None
    driver._program = program
    driver._execution = Execution(program)
    driver._execution.observe(1)
    driver._execution.observe(2)  # the records are in the first charge
    return driver


def test_a_stale_live_step_is_placed_once_per_execution_state(tmp_path, monkeypatch):
    driver = channel(tmp_path)
    walks: list[int] = []
    walk = NewareChannel._walk_to

    def counted(self, execution, step_index):
        walks.append(step_index)
        return walk(self, execution, step_index)

    monkeypatch.setattr(NewareChannel, "_walk_to", counted)
    first = driver._live_cycle(1, 1)  # the live values still show the rest the records have left
    assert [driver._live_cycle(1, 1) for _ in range(50)] == [first] * 50
    assert walks == [1]
    assert driver._live_cycle(2, 1) == driver._execution.cycle and walks == [1]  # the records' own step: no walk at all
    driver._execution.observe(3)  # the records reach the discharge: a new state, placed afresh
    assert driver._live_cycle(1, 1) == first and walks == [1, 1]


def test_the_memo_gives_what_the_walk_gives(tmp_path):
    driver = channel(tmp_path)
    for step in (1, 3, 2):
        execution = driver._execution
        assert execution is not None
        expected = driver._walk_to(execution, step) if execution.position != step else execution.cycle
        assert driver._live_cycle(step, 1) == expected
        assert driver._live_cycle(step, 1) == expected
