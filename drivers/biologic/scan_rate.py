"""The unit of the ``Scan_Rate`` parameter (CV, VSCANLIMIT): a per-channel setting, V/s unless a lab says otherwise.

The sources disagree (reference section 3.12): PyExpLabSys's CV docstring and one kbio-based script say mV/s;
easy-biologic first scaled to mV/s, then, after users checked on hardware, changed to passing V/s unscaled
(issue #5, "Updated JV_Scan parameter to match Biologic"; its README's 50 mV/s is ``rate: 0.05``). The default is
**V/s**, for two reasons:

* it is the only reading that was changed *because of* a measurement on an instrument; the mV/s readings are a
  docstring and a script, neither reported as checked;
* it fails safe. If the firmware really takes mV/s, a V/s number makes the sweep 1000 times *slower* than asked:
  the cell sees less current, and the run visibly crawls. The opposite mistake sweeps 1000 times faster, with
  1000 times the capacitive current, through the cell and possibly beyond the current range.

One check on hardware settles it for an installation: run a short CV on a dummy cell (a resistor) and compare
the sweep's duration with ``station plan``. If it took 1000 times longer, set ``scan_rate_unit: mV/s`` for that
instrument (or channel) in station.yaml. ``station plan`` shows the number the instrument will receive.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

ScanRateUnit = Literal["V/s", "mV/s"]
SCAN_RATE_UNITS: tuple[str, ...] = get_args(ScanRateUnit)
DEFAULT_SCAN_RATE_UNIT: ScanRateUnit = "V/s"
_SCALE = {"V/s": 1.0, "mV/s": 1000.0}


def scan_rate_parameter(rate_v_per_s: float, unit: ScanRateUnit) -> float:
    """The ``Scan_Rate`` value for a sweep of ``rate_v_per_s`` (SI, V/s) on a channel set to ``unit``."""
    if unit not in _SCALE:
        raise ValueError(f"scan-rate unit '{unit}' is not one of {', '.join(SCAN_RATE_UNITS)}")
    return rate_v_per_s * _SCALE[unit]


def scan_rate_as_sent(rate_v_per_s: float, unit: ScanRateUnit) -> float:
    """The number the instrument receives: the parameter rounded to a single, as ``BL_DefineSglParameter`` does."""
    return float(np.float32(scan_rate_parameter(rate_v_per_s, unit)))
