"""The air in a climate chamber: a first-order thermal lag to the room, closed by a PI controller with overshoot.

Physics (temperatures in degrees Celsius, time in seconds):

* **plant**: the air exchanges heat with the room through the walls with time constant ``plant_tau_s``, and the
  heater/refrigerator adds ``u`` (in degrees of equivalent steady-state offset):
  ``plant_tau * dT/dt = -(T - T_room) + u``. With the controller off (STANDBY, OFF) ``u = 0`` and the air relaxes to
  the room's temperature as ``T_room + (T0 - T_room) * exp(-t / plant_tau)``.
* **door open**: the room's air comes in: the same first-order lag with the much shorter ``door_tau_s``, and the
  controller is cut off (as a chamber's door switch does), so the air drifts to the room's temperature.
* **controller**: a PI controller with its proportional part on the measurement only (I-P form, set-point weight
  0, as chamber controllers use to avoid a kick on a set-point change): ``u = -Kp * T + I``, ``dI/dt = Ki * (S - T)``.
  It starts "bumpless" (holding the present temperature), so from rest the closed loop is the textbook second-order
  system ``plant_tau * T'' + (1 + Kp) T' + Ki T = Ki S``, whose step response overshoots by ``overshoot`` (a
  fraction of the step) inside an envelope with time constant ``response_tau_s``:
  ``T(t) = S - (S - T0) exp(-t/tau) (cos(wd t) + zeta/sqrt(1 - zeta^2) sin(wd t))``, ``tau = 1/(zeta wn)``. The
  gains follow: ``zeta = -ln(os)/sqrt(pi^2 + ln(os)^2)``, ``wn = 1/(zeta tau)``, ``Kp = 2 zeta wn plant_tau - 1``,
  ``Ki = wn^2 plant_tau``.
* **room**: drifts linearly by ``ambient_drift_c_per_h`` (a lab warming up over a day).

The model is linear in the state ``[T, I, T_room, 1]`` for each operating state, so it advances **exactly** by a
matrix exponential over any interval: the temperature after an hour is the same whether the chamber was polled
every second or once, and a virtual clock can jump hours at a time. (No heater power limit is modelled: the
response is the same for a 5 K and a 50 K step, scaled.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class ThermalParams:
    ambient_c: float = 23.0
    ambient_drift_c_per_h: float = 0.0
    plant_tau_s: float = 1800.0
    door_tau_s: float = 120.0
    response_tau_s: float = 300.0
    overshoot: float = 0.05

    def __post_init__(self) -> None:
        for name in ("plant_tau_s", "door_tau_s", "response_tau_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ThermalParams.{name} must be positive, found {getattr(self, name)}")
        if not 0 < self.overshoot < 1:
            raise ValueError(f"ThermalParams.overshoot is a fraction of the step in (0, 1), found {self.overshoot}")
        if self.proportional_gain < 0:
            raise ValueError(
                f"ThermalParams: a response time constant of {self.response_tau_s:g} s is too slow for a plant of "
                f"{self.plant_tau_s:g} s with {self.overshoot:.0%} overshoot (it would need a negative gain); "
                "make response_tau_s shorter"
            )

    @property
    def damping(self) -> float:
        log_os = math.log(self.overshoot)
        return -log_os / math.sqrt(math.pi**2 + log_os**2)

    @property
    def natural_frequency(self) -> float:
        return 1.0 / (self.damping * self.response_tau_s)

    @property
    def proportional_gain(self) -> float:
        return 2.0 * self.damping * self.natural_frequency * self.plant_tau_s - 1.0

    @property
    def integral_gain(self) -> float:
        return self.natural_frequency**2 * self.plant_tau_s


class ThermalModel:
    """The chamber's air at a time of the caller's clock; the caller serialises access."""

    def __init__(self, params: ThermalParams, now: float, initial_c: float | None = None):
        self.params = params
        self._t = now
        start = params.ambient_c if initial_c is None else initial_c
        self._x = np.array([start, 0.0, params.ambient_c, 1.0])
        self.set_point_c = start
        self.controlled = False
        self.door_open = False

    @property
    def temperature_c(self) -> float:
        return float(self._x[0])

    @property
    def room_c(self) -> float:
        return float(self._x[2])

    def advance(self, now: float) -> None:
        """Move the state to ``now`` (a clock that went backwards is held where it was)."""
        dt = now - self._t
        if dt > 0:
            from scipy.linalg import expm  # here, not at import: only a chamber's thermal model needs scipy

            self._x = expm(self._matrix() * dt) @ self._x
            self._t = now

    def _matrix(self) -> np.ndarray:
        p = self.params
        drift = p.ambient_drift_c_per_h / 3600.0
        if self.controlled and not self.door_open:
            kp, ki, tau = p.proportional_gain, p.integral_gain, p.plant_tau_s
            return np.array([
                [-(1.0 + kp) / tau, 1.0 / tau, 1.0 / tau, 0.0],
                [-ki, 0.0, 0.0, ki * self.set_point_c],
                [0.0, 0.0, 0.0, drift],
                [0.0, 0.0, 0.0, 0.0],
            ])
        tau = p.door_tau_s if self.door_open else p.plant_tau_s
        return np.array([
            [-1.0 / tau, 0.0, 1.0 / tau, 0.0],
            [0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, drift],
            [0.0, 0.0, 0.0, 0.0],
        ])

    def _bumpless(self) -> None:
        """Start the integrator where the controller's output holds the present temperature (dT/dt = 0)."""
        temperature, room = self._x[0], self._x[2]
        self._x[1] = self.params.proportional_gain * temperature + (temperature - room)

    def set_control(self, now: float, on: bool) -> None:
        self.advance(now)
        was_acting = self.controlled and not self.door_open
        self.controlled = on
        if on and not was_acting and not self.door_open:
            self._bumpless()

    def set_set_point(self, now: float, celsius: float) -> None:
        self.advance(now)
        self.set_point_c = celsius

    def set_door(self, now: float, open_: bool) -> None:
        self.advance(now)
        was_open = self.door_open
        self.door_open = open_
        if was_open and not open_ and self.controlled:
            self._bumpless()
