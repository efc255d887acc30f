"""A mixed ion-electron conductor between Li-ion blocking electrodes ("blocking"): the P7 measurement cell.

Electrons cross the blocking electrodes freely, ions do not; so the film is the electronic resistance Re in
parallel with the ionic path Ri in series with the two interfacial double layers (Hebb-Wagner / DC
polarisation). With the geometric (bulk dielectric) capacitance across all of it:

    Z = R_contact + 1 / (1/Re + 1/(Ri + 1/(j w C_int)) + j w C_geo)

EIS shows the total, Re || Ri, as the high-frequency arc; a DC step of V decays from V/(Re||Ri) to V/Re with
time constant (Re + Ri) C_int. Re and Ri follow from the film: R = thickness / (sigma * area). C_geo is
nanofarads, so it only matters above ~1 MHz and is left out of the time domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from simulators.cells import impedance as zel
from simulators.cells.engine import ConstantCurrentPath, SimulatedCell
from simulators.cells.parameters import Param

VACUUM_PERMITTIVITY = 8.8541878128e-12  # F/m, CODATA 2018

BLOCKING_PARAMETERS: dict[str, Param] = {
    "electronic_conductivity": Param(
        2e-3,
        "S/m",
        "2e-5 S/cm: CNT network wrapped in LLTO, electronically percolating but throttled (assumption; the P7 "
        "measurement is what determines it)",
        1e-12,
    ),
    "ionic_conductivity": Param(
        1e-2,
        "S/m",
        "1e-4 S/cm: LLTO total (bulk + grain boundary) ionic conductivity in a porous film, reported 1e-5..1e-3",
        1e-12,
    ),
    "interfacial_capacitance": Param(
        0.5, "F/m^2", "50 uF/cm^2 double layer at each blocking electrode (metal | solid electrolyte, rough)", 1e-9
    ),
    "relative_permittivity": Param(100.0, "1", "LLTO's high bulk permittivity (order 100)", 1.0),
    "contact_resistance": Param(0.0, "ohm", "series lead/contact resistance (0: ideal sputtered contacts)", 0.0),
}


class BlockingCell(SimulatedCell):
    """Host film between Li-ion blocking electrodes (stainless steel or Au)."""

    type_name = "blocking"
    PARAMETERS: ClassVar[Mapping[str, Param]] = BLOCKING_PARAMETERS

    def _setup(self) -> None:
        p = self.p
        self.re = self.thickness / (p.electronic_conductivity * self.area)
        self.ri = self.thickness / (p.ionic_conductivity * self.area)
        # the two interfaces are in series
        self.c_int = p.interfacial_capacitance * self.area / 2.0
        self.c_geo = VACUUM_PERMITTIVITY * p.relative_permittivity * self.area / self.thickness
        self._tau = (self.re + self.ri) * self.c_int

    def _reset_state(self) -> None:
        self.v_c = 0.0  # charge on the interfacial double layers, as a voltage

    def _constant_current(self, current: float) -> ConstantCurrentPath:
        return _BlockingPath(self, float(current))

    def _grid_spacing(self, current: float) -> float:
        return 60.0

    def _current_scale(self) -> float:
        return 0.05 / (self.re * self.ri / (self.re + self.ri))  # the current of a 50 mV step

    def open_circuit_voltage(self) -> float:
        return 0.0  # symmetric electrodes: no equilibrium voltage

    def impedance(self, frequencies: np.ndarray) -> np.ndarray:
        w = zel.angular(frequencies)
        y = 1.0 / self.re + 1.0 / (self.ri + zel.capacitor(w, self.c_int)) + 1j * w * self.c_geo
        return self.p.contact_resistance + 1.0 / y

    def _state_vars(self) -> dict[str, Any]:
        return {"v_c": self.v_c}

    def _load_state_vars(self, state: Mapping[str, Any]) -> None:
        self.v_c = float(state["v_c"])


class _BlockingPath(ConstantCurrentPath):
    """Under constant I the double layer charges as v_c -> Re I with time constant (Re + Ri) C_int."""

    __slots__ = ("_cell", "_vc0", "current")

    def __init__(self, cell: BlockingCell, current: float) -> None:
        self._cell = cell
        self.current = current
        self._vc0 = cell.v_c

    def feature_times(self, fine: bool) -> np.ndarray:
        return self._cell._tau * np.array([0.01, 0.03, 0.1, 0.3, 0.6, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0])

    def _vc(self, t: np.ndarray) -> np.ndarray:
        c = self._cell
        target = c.re * self.current
        return target + (self._vc0 - target) * np.exp(-t / c._tau)

    def voltage(self, t: np.ndarray) -> np.ndarray:
        c = self._cell
        # V = Re (I - (V - v_c)/Ri)  =>  V = (Re Ri I + Re v_c) / (Re + Ri)
        v = (c.re * c.ri * self.current + c.re * self._vc(t)) / (c.re + c.ri)
        return v + c.p.contact_resistance * self.current

    def commit(self, t: float) -> None:
        self._cell.v_c = float(self._vc(np.array([t]))[0])
