"""Ionic and electronic conductivity of a film between Li-ion blocking electrodes (P7): EIS and DC polarisation.

The film is a mixed conductor: an electronic rail Re = L/(sigma_e A) and an ionic rail Ri = L/(sigma_i A), coupled
along the thickness by the chemical capacitance (the Jamnik-Maier line, ``simulators/cells/blocking.py``). Its
spectrum is the dielectric arc (MHz), then a plateau at Re||Ri, then the diffusion line of chemical diffusion
bending, far below the measured band, to Re at DC. So:

* R_total is the plateau, the fitted R0 of ``p(R0-Ws0,C0)`` (or ``p(R0-W0,C0)``, :mod:`station.analysis.circuits`):
  both rails in parallel, sigma_total = L/(R_total A) = sigma_e + sigma_i. Not the low-frequency end of the
  spectrum, which is on its way to Re and depends on where the sweep stops;
* the DC step's steady current passes the electronic rail only (the ions are blocked once the film has
  polarised): sigma_e = L I_ss/(dV A) (:mod:`station.analysis.dcpol`);
* sigma_i = sigma_total - sigma_e.

Any contact resistance is in series with both readings and is counted in the film's resistances (a two-electrode
measurement cannot separate it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from station.analysis.dcpol import DcStep, analyze_dc
from station.analysis.eis import EisFit, fit_spectrum, spectra
from station.analysis.run_data import RunData


@dataclass(frozen=True)
class Conductivity:
    """P7's result, in S/m (1 S/m = 0.01 S/cm)."""

    sigma_total_s_per_m: float | None
    sigma_e_s_per_m: float | None
    sigma_i_s_per_m: float | None
    r_total_ohm: float | None
    """The EIS plateau resistance Re||Ri."""
    r_dc_ohm: float | None
    """dV / I_ss, the DC (electronic) resistance."""
    thickness_m: float
    area_m2: float
    lithiation: str | None
    """``"before"``/``"after"`` lithiation when the run's campaign says so, else None."""
    label: str
    eis_fit: EisFit | None
    dc: DcStep | None
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "lithiation": self.lithiation,
            "sigma_total_s_per_m": _num(self.sigma_total_s_per_m), "sigma_e_s_per_m": _num(self.sigma_e_s_per_m),
            "sigma_i_s_per_m": _num(self.sigma_i_s_per_m), "r_total_ohm": _num(self.r_total_ohm),
            "r_dc_ohm": _num(self.r_dc_ohm), "thickness_m": self.thickness_m, "area_m2": self.area_m2,
            "eis": self.eis_fit.to_dict() if self.eis_fit is not None else None,
            "dc": self.dc.to_dict() if self.dc is not None else None, "warnings": list(self.warnings),
        }


def analyze_conductivity(data: RunData, circuit: str | None = None) -> Conductivity | None:
    """sigma_total, sigma_e and sigma_i of a P7 run (None when it has neither an EIS spectrum nor a ``ca`` step).

    The EIS spectrum used is the last one before the last DC step (the last one when there is no DC step);
    ``circuit`` overrides the blocking cell's default circuit and must then name its plateau resistance ``R0``
    (otherwise the high-frequency intercept stands in for it). Raises ValueError (one line) when the cell record
    lacks its thickness or area.
    """
    found = spectra(data)
    dc_result = analyze_dc(data)
    if not found and dc_result is None:
        return None
    cell = data.cell
    for name, value, example in (("thickness", cell.thickness, "45 um"), ("area", cell.area, "12 mm diameter")):
        if not value:
            raise ValueError(f"cell {cell.name!r} has no {name}: conductivity needs it; add it to the cell record "
                             f"(e.g. {example})")
    length, area = float(cell.thickness), float(cell.area)  # type: ignore[arg-type]
    dc = dc_result.last if dc_result is not None else None
    warnings: list[str] = []
    fit = None
    r_total = None
    if found:
        before = [s for s in found if dc is None or s.step_index < dc.step_index]
        fit = fit_spectrum((before or found)[-1], circuit, cell.model_type or "blocking")
        names = [p.name for p in fit.parameters]
        r_total = fit.value("R0") if "R0" in names else fit.hf_intercept_ohm
    sigma_total = length / (r_total * area) if r_total else None
    sigma_e = None
    if dc is not None:
        if dc.warning:
            warnings.append(dc.warning)
        if dc.delta_v_v and math.isfinite(dc.delta_v_v):
            sigma_e = length * dc.steady_current_a / (dc.delta_v_v * area)
    sigma_i = sigma_total - sigma_e if sigma_total is not None and sigma_e is not None else None
    if sigma_i is not None and sigma_i < 0:
        warnings.append(f"sigma_e {sigma_e:.3g} S/m exceeds sigma_total {sigma_total:.3g} S/m: the DC step has not "
                        "reached the electronic steady state or the EIS plateau is misread")
    return Conductivity(sigma_total, sigma_e, sigma_i, r_total, dc.resistance_ohm if dc else None, length, area,
                        data.lithiation, data.label, fit, dc, tuple(warnings))


def _num(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
