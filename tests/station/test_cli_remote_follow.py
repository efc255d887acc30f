"""`station run --watch` through the service polls at the injected clock's pace until the run ends."""

from __future__ import annotations

from protocols.clock import VirtualClock
from station import cli_remote


class _Service:
    """Answers a run's state: running for three polls, then stopped (as the service reports it)."""

    def __init__(self) -> None:
        self.asked = 0

    def get(self, path: str) -> dict:
        assert path == "/runs/R1"
        self.asked += 1
        state = "running" if self.asked <= 3 else "stopped"
        return {"run_id": "R1", "state": state, "message": "stopped by the operator" if state == "stopped" else ""}


def test_follow_polls_on_the_given_clock_until_the_run_ends(capsys) -> None:
    clock, service = VirtualClock(), _Service()
    code = cli_remote.follow(service, "R1", json_=True, clock=clock)  # type: ignore[arg-type]
    assert service.asked == 4  # one look, then one after each of three pauses
    assert clock.now() == 3 * cli_remote.WATCH_POLL_S  # no wall time spent: the clock paced it
    assert '"state": "stopped"' in capsys.readouterr().out
    assert code == cli_remote.EXIT_RUN_ENDED  # a stopped run is not a finished one
