"""A scripted channel for supervisor tests: records appear as the injected clock passes their test time."""

from __future__ import annotations

from drivers.base import ChannelDriver, ChannelState, ChannelStatus, Record, TestHandle
from protocols.clock import Clock
from protocols.program import StepProgram


def cc_records(current: float, seconds: int, every: float = 10.0, v0: float = 3.0, dv_ds: float = 1e-4,
               step_index: int = 1, cycle: int = 1, first_seq: int = 1, t0: float = 0.0) -> list[Record]:
    """A constant-current step sampled every ``every`` s: capacity is exactly I*t/3600."""
    out = []
    n = int(seconds // every) + 1
    for k in range(n):
        t = k * every
        out.append(Record(seq=first_seq + k, test_time=t0 + t, step_time=t, step_index=step_index, cycle=cycle,
                          voltage=v0 + dv_ds * t, current=current, capacity=current * t / 3600,
                          energy=current * t / 3600 * (v0 + dv_ds * t / 2)))
    return out


class ScriptedChannel(ChannelDriver):
    def __init__(self, clock: Clock, records: list[Record], channel: str = "fake/1"):
        self.clock = clock
        self.script = records
        self.channel = channel
        self.started_at: float | None = None
        self.state = ChannelState.IDLE
        self.calls: list[str] = []
        self.refuse: str | None = None
        self.barcode: str | None = None

    def check(self, program: StepProgram) -> None:
        self.calls.append("check")
        if self.refuse:
            from drivers.base import CapabilityError

            raise CapabilityError([self.refuse])

    def start(self, program: StepProgram, barcode: str) -> TestHandle:
        self.calls.append("start")
        self.barcode = barcode
        self.started_at = self.clock.now()
        self.state = ChannelState.RUNNING
        return TestHandle(channel=self.channel, test_id="7", barcode=barcode)

    def find_test(self, program: StepProgram, barcode: str, marker=None) -> TestHandle | None:
        self.calls.append("find_test")
        if self.started_at is None or barcode != self.barcode:
            return None
        return TestHandle(channel=self.channel, test_id="7", barcode=barcode)

    def attach(self, handle: TestHandle) -> None:
        self.calls.append("attach")

    def _elapsed(self) -> float:
        return self.clock.now() - (self.started_at or 0.0)

    def _available(self) -> list[Record]:
        return [r for r in self.script if r.test_time <= self._elapsed()]

    def status(self) -> ChannelStatus:
        if self.state is ChannelState.RUNNING and self._elapsed() >= self.script[-1].test_time:
            self.state = ChannelState.FINISHED
        last = self._available()[-1] if self._available() else None
        return ChannelStatus(state=self.state, step_index=last.step_index if last else None,
                             voltage=last.voltage if last else None, test_time=self._elapsed(),
                             last_seq=last.seq if last else 0)

    def read_records(self, after_seq: int, limit: int = 1000) -> list[Record]:
        return [r for r in self._available() if r.seq > after_seq][:limit]

    def pause(self) -> None:
        self.calls.append("pause")
        self.state = ChannelState.PAUSED

    def resume(self) -> None:
        self.calls.append("resume")
        self.state = ChannelState.RUNNING

    def stop(self) -> None:
        self.calls.append("stop")
        if self.state is not ChannelState.FINISHED:
            self.state = ChannelState.STOPPED


def assert_test_times(records) -> None:
    """Stored records keep the instrument's timing: the test time never decreases, and stands still only where a
    step starts (the real BTS's first record of a step repeats the test time of the step before's last; reference
    neware-bts-api.md section 9)."""
    import numpy as np

    from station.analysis.steps import step_starts

    steps = np.diff(records["test_time"])
    assert np.all(steps >= 0), "the test time went backwards"
    assert not np.any((steps == 0) & ~step_starts(records)[1:]), "the test time stood still inside a step"
