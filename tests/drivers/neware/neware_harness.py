"""Shared set-up for the end-to-end tests: a simulated BTS on a free loopback port, a driver, a poll loop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drivers.base import ChannelRanges, ChannelState, Record
from drivers.neware.address import ChannelAddress
from drivers.neware.channel import NewareChannel, open_client
from drivers.transport import Backoff
from protocols.clock import VirtualClock

RANGES = ChannelRanges(voltage_min=-1.0, voltage_max=5.0, current_max=0.02)
DONE = (ChannelState.FINISHED, ChannelState.STOPPED, ChannelState.PROTECTED)


@dataclass
class Harness:
    clock: VirtualClock
    port: int
    step_dir: Path

    def channel(self, channel_id: str = "21-1-1", *, timeout_s: float = 10.0) -> NewareChannel:
        client = open_client(
            "127.0.0.1", self.port, clock=self.clock, timeout_s=timeout_s, backoff=Backoff(attempts=4, first_s=0.5)
        )
        return NewareChannel(client, ChannelAddress.parse(channel_id), RANGES, step_dir=self.step_dir)


def drain(channel: NewareChannel, after_seq: int) -> list[Record]:
    out: list[Record] = []
    while True:
        page = channel.read_records(after_seq, 1000)
        if not page:
            return out
        out += page
        after_seq = page[-1].seq


def run_to_end(
    channel: NewareChannel, clock: VirtualClock, *, poll_s: float = 3600.0, max_polls: int = 100_000
) -> list[Record]:
    """The station's loop in miniature: let time pass, read what is new, until the channel is done."""
    records: list[Record] = []
    for _ in range(max_polls):
        clock.advance(poll_s)
        records += drain(channel, records[-1].seq if records else 0)
        if channel.status().state in DONE:
            records += drain(channel, records[-1].seq if records else 0)
            return records
    raise AssertionError("the channel never finished")


def step_starts(records: list[Record]) -> np.ndarray:
    """True where a record opens a step instance: another step, or the step clock starting over."""
    index = np.array([r.step_index for r in records])
    step_time = np.array([r.step_time for r in records])
    return np.r_[True, (index[1:] != index[:-1]) | (step_time[1:] < step_time[:-1])]


def assert_real_time_grid(records: list[Record], every_s: float | None = None) -> None:
    """The real BTS's timing (reference section 9): each step's first record at step time 0.0 s repeating the test
    time of the step before's last record; the test time never decreasing and standing still only there; and,
    with ``every_s``, the records inside a step at whole multiples of the interval (the step's last record, at its
    end, may fall between)."""
    test_time = np.array([r.test_time for r in records])
    step_time = np.array([r.step_time for r in records])
    starts = step_starts(records)
    steps = np.diff(test_time)
    assert np.all(steps >= 0), "the test time went backwards"
    assert np.array_equal(steps == 0, starts[1:]), "the test time repeats exactly at step boundaries, nowhere else"
    assert np.all(step_time[starts] == 0.0), "a step's first record is at step time 0.0 s"
    assert np.allclose(test_time - step_time, np.maximum.accumulate(np.where(starts, test_time, 0.0)), atol=1e-9)
    if every_s is not None:
        ends = np.r_[starts[1:], True]
        inner = step_time[~ends]
        assert np.allclose(inner / every_s, np.round(inner / every_s), atol=1e-9), "records off the interval grid"
