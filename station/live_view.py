"""What `station run` and `station attach` show while they watch a run on a terminal: a progress bar of the
estimated total (percent, wall time elapsed and left, and the instrument's own time, simulated in a dry run)
over a table of the channel's last reading, each value at the resolution its instrument reports.

Kept apart from the CLI so that it is rendered and tested without a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from station.plan import format_duration
from station.runs import Progress as RunProgress


@dataclass(frozen=True)
class Resolution:
    """Decimals an instrument's live values carry: more would be false precision."""

    voltage_decimals: int  # in V
    current_decimals: int  # in mA
    capacity_decimals: int  # in mAh


#: The BTS API reports voltage to 0.1 mV and current to 0.1 mA (neware-bts-api.md, inquire); EClib returns
#: single-precision floats whose resolution follows the current range, shown to 1 uA and 0.1 mV here.
RESOLUTIONS = {
    "neware": Resolution(voltage_decimals=4, current_decimals=1, capacity_decimals=3),
    "biologic": Resolution(voltage_decimals=4, current_decimals=3, capacity_decimals=4),
}
DEFAULT_RESOLUTION = Resolution(voltage_decimals=4, current_decimals=3, capacity_decimals=4)


def state_text(state: str, contact_lost_s: float | None, stop_requested: str | None) -> str:
    """The run's state with what qualifies it: an outage, a stop the instrument has not confirmed yet."""
    notes = []
    if contact_lost_s is not None:
        notes.append(f"lost contact {format_duration(contact_lost_s)}")
    if stop_requested:
        notes.append("stop pending")
    return state + (f" ({', '.join(notes)})" if notes else "")


def reading_table(p: RunProgress, resolution: Resolution = DEFAULT_RESOLUTION) -> Table:
    """The channel's last reading; dashes, not stale numbers, while the instrument does not answer."""
    table = Table(show_header=True, header_style="bold", title=f"run {p.run_id}", title_justify="left")
    for column in ("state", "step", "tag", "cycle", "V", "I", "step Q", "test time", "records"):
        table.add_column(column, justify="right")
    state = state_text(p.state, p.contact_lost_s, p.stop_requested)
    s = p.status
    if p.contact_lost_s is not None or s is None:  # the last values are stale: showing them as live would be a lie
        table.add_row(state, *["-"] * 7, str(p.records))
        return table
    r = resolution
    table.add_row(state, str(s.step_index or "-"), p.tag or "-", str(s.cycle or "-"),
                  f"{s.voltage:.{r.voltage_decimals}f} V" if s.voltage is not None else "-",
                  f"{s.current * 1e3:.{r.current_decimals}f} mA" if s.current is not None else "-",
                  f"{s.step_capacity * 1e3:.{r.capacity_decimals}f} mAh" if s.step_capacity is not None else "-",
                  format_duration(s.test_time) if s.test_time is not None else "-", str(p.records))
    return table


class LiveView:
    """The renderable of one watched run, updated on every poll."""

    def __init__(self, run_id: str, resolution: Resolution = DEFAULT_RESOLUTION, *, simulated: bool = False):
        self.resolution = resolution
        self.clock_name = "simulated time" if simulated else "instrument time"
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                            TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                            TextColumn("{task.fields[clock]}"), auto_refresh=False)
        self.task = self.bar.add_task(f"run {run_id}", total=None, clock="")

    def update(self, p: RunProgress) -> RenderableType:
        s = p.status
        t = s.test_time if s is not None and p.contact_lost_s is None else None
        if t is not None and p.eta_s is not None:
            total = max(t + p.eta_s, 1e-9)
            clock = f"{self.clock_name} {format_duration(t)} of ~{format_duration(total)}"
            self.bar.update(self.task, total=total, completed=min(t, total), clock=clock)
        elif t is not None:
            self.bar.update(self.task, clock=f"{self.clock_name} {format_duration(t)} (no estimate)")
        if p.waiting:  # a run between segments, waiting for its climate chamber
            return Group(self.bar.get_renderable(), reading_table(p, self.resolution), Text(p.waiting))
        return Group(self.bar.get_renderable(), reading_table(p, self.resolution))
