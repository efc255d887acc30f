"""P7 conductivities on the blocking cell: sigma_e and sigma_i recovered from the simulated film's own parameters.

The film's total conductivity is the EIS plateau Re||Ri (both rails in parallel) and its electronic one the DC
steady state (ions blocked); the model's conductivities at 27 degC (its reference temperature, so no Arrhenius
factor) are the defaults of simulators/cells/blocking.py unless the cell record overrides them.

Tolerance 1e-4 relative: the simulated spectrum is exactly the fitted circuit (R0 to 1e-5), and after the 1 h hold
the current is within eps(3240 s) = 2e-6 of V/Re; sigma_i = sigma_total - sigma_e adds their errors scaled by
sigma/sigma_i (1.2 and 0.2).
"""

from __future__ import annotations

import dataclasses

import pytest

from simulators.cells.blocking import BLOCKING_PARAMETERS
from station.analysis.conductivity import analyze_conductivity


def _model(cell, name: str) -> float:
    return float(cell.model_params.get(name, BLOCKING_PARAMETERS[name].default))


@pytest.fixture(scope="module")
def p7(dry_run):
    return dry_run("p7-conductivity", "host-blocking")


def test_conductivities_recover_the_films_parameters(p7) -> None:
    sigma_e = _model(p7.cell, "electronic_conductivity")
    sigma_i = _model(p7.cell, "ionic_conductivity")
    result = analyze_conductivity(p7)
    assert result.thickness_m == pytest.approx(45e-6) and result.area_m2 == pytest.approx(3.14159265e-4 * 0.36)
    assert result.sigma_e_s_per_m == pytest.approx(sigma_e, rel=1e-4)
    assert result.sigma_i_s_per_m == pytest.approx(sigma_i, rel=1e-4)
    assert result.sigma_total_s_per_m == pytest.approx(sigma_e + sigma_i, rel=1e-4)
    length, area = p7.cell.thickness, p7.cell.area
    assert result.r_total_ohm == pytest.approx(length / ((sigma_e + sigma_i) * area), rel=1e-4)
    assert result.r_dc_ohm == pytest.approx(length / (sigma_e * area), rel=1e-4)
    assert result.warnings == () and result.lithiation is None
    d = result.to_dict()
    assert d["sigma_i_s_per_m"] == result.sigma_i_s_per_m and d["eis"]["circuit"] == "p(R0-W0,C0)"


def test_short_hold_overstates_sigma_e_and_warns(dry_run) -> None:
    data = dry_run("p7-conductivity", "host-blocking", dc_time="10 min")
    result = analyze_conductivity(data)
    assert result.sigma_e_s_per_m > 1.1 * _model(data.cell, "electronic_conductivity")
    assert any("not decayed" in w for w in result.warnings)


def test_label_comes_from_the_campaign(p7) -> None:
    assert analyze_conductivity(dataclasses.replace(p7, lithiation="after")).lithiation == "after"


@pytest.mark.parametrize("missing", ["thickness", "area"])
def test_missing_geometry_is_a_one_line_error(p7, missing: str) -> None:
    cell = p7.cell.model_copy(update={missing: None})
    with pytest.raises(ValueError, match=f"no {missing}") as err:
        analyze_conductivity(dataclasses.replace(p7, cell=cell))
    assert "\n" not in str(err.value) and "host-blocking" in str(err.value)


def test_run_without_eis_or_dc_gives_none(dry_run) -> None:
    assert analyze_conductivity(dry_run("p6-cyclic-voltammetry", "llto-li", cycles=2)) is None
