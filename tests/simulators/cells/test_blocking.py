"""Mixed conductor between blocking electrodes: EIS gives the total, DC polarisation the electronic part."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.program import CaStep, EisStep, RecordRule, Termination
from simulators.cells import build_model

AREA, THICKNESS = 1.131e-4, 45e-6
SIGMA_E, SIGMA_I = 2e-3, 1e-2  # S/m, the documented defaults


def test_dc_polarisation_recovers_re_and_ri_within_one_percent() -> None:
    cell = build_model("blocking", area=AREA, thickness=THICKNESS)
    v = 0.05
    step = CaStep(
        index=1,
        voltage=v,
        vs_ocv=True,
        until=(Termination(quantity="time", op=">=", value=3600.0),),
        record=RecordRule(every_s=1.0),
    )
    r = cell.run_step(step)
    re_expected = THICKNESS / (SIGMA_E * AREA)
    ri_expected = THICKNESS / (SIGMA_I * AREA)
    re = v / r.current[-1]
    r_total = v / r.current[0]
    ri = 1.0 / (1.0 / r_total - 1.0 / re)
    assert re == pytest.approx(re_expected, rel=0.01)
    assert ri == pytest.approx(ri_expected, rel=0.01)
    # the current decays monotonically from the total to the electronic value
    assert np.all(np.diff(r.current) <= 1e-15)
    assert r.duration == 3600.0


def test_eis_high_frequency_plateau_is_the_total_and_low_frequency_the_electronic_resistance() -> None:
    cell = build_model("blocking", {"ionic_conductivity": 5e-3}, area=AREA, thickness=THICKNESS)
    # down to 10 uHz: chemical diffusion across the film (tau ~ 11 min) blocks the ions only below ~1e-4 Hz
    step = EisStep(index=1, f_start=1e5, f_end=1e-5, points_per_decade=10, amplitude=0.05)
    r = cell.run_step(step)
    re = THICKNESS / (SIGMA_E * AREA)
    ri = THICKNESS / (5e-3 * AREA)
    total = re * ri / (re + ri)
    assert r.z_real[0] == pytest.approx(total, rel=0.01)  # 100 kHz: diffusion is shorted by the chemical capacitance
    assert r.z_real[-1] == pytest.approx(re, rel=0.01)  # 10 uHz: the ionic path is blocked
    # conductivities as P7 computes them: total from EIS, electronic from DC, ionic = total - electronic
    sigma_total = THICKNESS / (r.z_real[0] * AREA)
    sigma_e = THICKNESS / (r.z_real[-1] * AREA)
    assert sigma_total - sigma_e == pytest.approx(5e-3, rel=0.02)


def test_conductivities_and_geometry_set_the_resistances() -> None:
    thin = build_model("blocking", area=AREA, thickness=20e-6)
    thick = build_model("blocking", area=AREA, thickness=40e-6)
    z_thin = thin.impedance(np.array([1e-8]))[0].real  # DC: Re, proportional to the thickness
    z_thick = thick.impedance(np.array([1e-8]))[0].real
    assert z_thick / z_thin == pytest.approx(2.0, rel=1e-3)
