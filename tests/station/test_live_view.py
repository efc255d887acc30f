"""The live view of a watched run: percent of the estimated total, wall time elapsed and left, the instrument's
(or, in a dry run, simulated) time, and the last reading at the instrument's resolution, never stale."""

from __future__ import annotations

from rich.console import Console

from drivers.base import ChannelState, ChannelStatus
from station.live_view import RESOLUTIONS, LiveView
from station.runs import Progress

STATUS = ChannelStatus(ChannelState.RUNNING, step_index=3, cycle=2, voltage=3.876543, current=0.00102345,
                       step_capacity=0.000512345, test_time=3600.0)


def text(renderable) -> str:
    console = Console(record=True, width=200, force_terminal=False, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_a_dry_run_shows_percent_of_the_estimate_and_simulated_time():
    view = LiveView("R1", RESOLUTIONS["neware"], simulated=True)
    shown = text(view.update(Progress("R1", "running", STATUS, 361, "formation", eta_s=3600.0)))
    assert "50%" in shown
    assert "simulated time 1 h of ~2 h" in shown
    assert "elapsed" in shown and "left" in shown
    assert "formation" in shown and "361" in shown


def test_values_carry_the_instruments_resolution_and_no_more():
    neware = text(LiveView("R1", RESOLUTIONS["neware"]).update(Progress("R1", "running", STATUS, 1)))
    assert "1.0 mA" in neware and "1.0234 mA" not in neware  # the BTS reports 0.1 mA
    assert "3.8765 V" in neware and "0.512 mAh" in neware
    assert "instrument time 1 h (no estimate)" in neware
    biologic = text(LiveView("R1", RESOLUTIONS["biologic"]).update(Progress("R1", "running", STATUS, 1)))
    assert "1.023 mA" in biologic


def test_a_channel_out_of_contact_shows_no_stale_values():
    view = LiveView("R1", RESOLUTIONS["neware"])
    shown = text(view.update(Progress("R1", "running", STATUS, 5, eta_s=10.0, contact_lost_s=42.0)))
    assert "lost contact 42 s" in shown
    assert "3.8765" not in shown and "1.0 mA" not in shown
