"""The step engine shared by every cell model: one way to apply any control until its terminations.

A model only supplies physics: a closed-form trajectory under constant current (:class:`ConstantCurrentPath`),
its equilibrium voltage, its impedance and its state. Everything else is here, once:

* constant current and rest use the closed form directly on a sample grid (vectorised), and the end of the
  step is located by root finding on the closed form between two samples;
* voltage, power and sweep controls (hold, CA, CCCV's CV phase, power, CV, LSV, biased EIS) are integrated
  with an implicit zero-order-hold scheme: over each time step the current is constant and chosen so that the
  voltage at the *end* of the step meets the set-point. Because the state is advanced by the model's exact
  constant-current solution, the scheme is stable at any step size; the step size is adapted to keep the
  current change per step below 1 %;
* recording rules, measurement noise (seeded, and part of the saved state) and StepResult assembly.

Time here is simulated step time; nothing reads a clock.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from protocols.program import (
    CaStep,
    Comparison,
    CurrentStep,
    CvStep,
    EisStep,
    HoldStep,
    LoopStep,
    LsvStep,
    PowerStep,
    ProgramStep,
    Quantity,
    RecordRule,
    RestStep,
    Termination,
)
from simulators.cells.base import CellEvent, CellModel, EndReason, StepResult
from simulators.cells.errors import ParameterError, StateError, StepKindError
from simulators.cells.parameters import Param, Parameters, resolve_parameters
from simulators.cells.physics import SECONDS_PER_HOUR
from simulators.cells.recording import record_times
from simulators.cells.roots import find_root
from simulators.cells.terminations import Samples, first_hits, refine

STATE_FORMAT = 1
_CHUNK = 4096  # samples evaluated at once when a constant-current step's end is not known in advance

#: parameters every model has (measurement and engine settings rather than physics)
COMMON_PARAMETERS: dict[str, Param] = {
    "noise_voltage": Param(0.0, "V", "standard deviation of Gaussian voltage noise on records; 0 = noiseless", 0.0),
    "noise_current": Param(0.0, "A", "standard deviation of Gaussian current noise on records; 0 = noiseless", 0.0),
    "max_step_duration": Param(
        7.776e6,
        "s",
        "90 days: a step none of whose terminations is ever met ends here with end_reason 'max_duration' "
        "(the instrument's safety limits normally end it long before)",
        1.0,
    ),
    "temperature": Param(
        300.15, "K", "27 degC, the cycling temperature of the reference workload; a cell record's temperature or a "
        "climate chamber sets it", 200.0, 400.0,
    ),
    "eis_periods": Param(
        2.0, "1", "sine periods integrated per EIS measure (assumption: a potentiostat averages a few periods)", 0.5
    ),
    "eis_min_measure_time": Param(
        0.25, "s", "shortest time per EIS measure at high frequency (assumption: settling plus integration)", 0.0
    ),
}


class ConstantCurrentPath(abc.ABC):
    """The closed-form trajectory of a model under a constant current, from the model's present state.

    ``voltage`` must accept any array of times >= 0 (vectorised); ``commit`` advances the model's state to
    time ``t`` of this path. Creating a path must not change the model.
    """

    current: float

    @abc.abstractmethod
    def voltage(self, t: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def commit(self, t: float) -> None: ...

    def expected_duration(self) -> float | None:
        """A guess (s) of when this path reaches the end of the cell's window, to size the first sample chunk."""
        return None

    def voltage_at(self, t: float) -> float:
        """V at one instant; models override this with scalar math, the root finders call it a lot."""
        return float(self.voltage(np.array([t]))[0])

    def feature_times(self, fine: bool) -> np.ndarray:
        """Extra sample instants where the trajectory has narrow features (a regime change, a nucleation dip).

        They refine the detection grid only where needed, so a long step keeps a coarse grid. ``fine`` asks
        also for features that only matter to change-based records (fast transients at the step start).
        """
        return _NO_TIMES


@dataclass(slots=True)
class _Segment:
    """A piece of a step's trajectory: dense samples (step time) and, for closed forms, an exact evaluator."""

    t: np.ndarray
    v: np.ndarray
    i: np.ndarray
    q: np.ndarray
    e: np.ndarray
    end_reason: EndReason
    ended_by: int | None
    exact_voltage: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def t_end(self) -> float:
        return float(self.t[-1])


_NO_TIMES = np.empty(0)
_MAX_REFINED = 32  # steep intervals subdivided per pass
_DV_MAX = 0.02  # V: the largest voltage move between two samples of the dense (detection) grid
_INTERNAL = -1  # marker for an engine-internal termination (CCCV switch-over), never reported


class SimulatedCell(CellModel):
    """Base class of all simulated cells: parameters, geometry, noise and the step engine."""

    #: the model's physics parameters (COMMON_PARAMETERS are added automatically)
    PARAMETERS: ClassVar[Mapping[str, Param]] = {}

    def __init__(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        area: float | None = None,
        capacity: float | None = None,
        thickness: float | None = None,
        seed: int | None = None,
        temperature: float | None = None,
        ocv: float | None = None,
    ) -> None:
        if temperature is not None:
            params = {**(params or {}), "temperature": temperature}
        self.p: Parameters = resolve_parameters(self.type_name, self.parameter_spec(), params)
        self.area = float(area) if area is not None else 1.131e-4
        self.thickness = float(thickness) if thickness is not None else 45e-6
        self._capacity_given = None if capacity is None else float(capacity)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._events: list[CellEvent] = []
        self._setup()
        self._reset_state()
        if ocv is not None:
            self._start_at_ocv(float(ocv))

    # ---- what a model provides ------------------------------------------------------------------------

    @classmethod
    def parameter_spec(cls) -> dict[str, Param]:
        return {**cls.PARAMETERS, **COMMON_PARAMETERS}

    def _setup(self) -> None:
        """Derive constants from parameters and geometry (called once, and again on load_state)."""

    @abc.abstractmethod
    def _reset_state(self) -> None:
        """Put the cell in its as-assembled state."""

    @abc.abstractmethod
    def _constant_current(self, current: float) -> ConstantCurrentPath: ...

    @abc.abstractmethod
    def _grid_spacing(self, current: float) -> float:
        """The largest sample spacing (s) that resolves every feature of a constant-current trajectory."""

    @abc.abstractmethod
    def _current_scale(self) -> float:
        """A typical current (A) for this cell, used for solver tolerances."""

    @abc.abstractmethod
    def _state_vars(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def _load_state_vars(self, state: Mapping[str, Any]) -> None: ...

    def _start_at_ocv(self, voltage: float) -> None:
        """Put the as-assembled cell where its equilibrium voltage is ``voltage`` (the cell record's ``ocv``).

        A model with no way to place itself accepts an OCV within 50 mV of its own as-assembled one and refuses
        any other, rather than simulate a cell the record does not describe."""
        own = self.open_circuit_voltage()
        if abs(own - voltage) > 0.05:
            raise ParameterError(
                f"cell model {self.type_name!r} starts at {own:.3f} V and cannot be placed at the cell record's ocv "
                f"{voltage:g} V; correct 'ocv' in the cell record or set the model's own initial-state parameter"
            )

    def _raise_event(self, kind: str, message: str, step_time: float) -> None:
        self._events.append(CellEvent(kind, message, float(step_time)))

    def _double_layer_capacitance(self) -> float:
        """Capacitance (F) charged by a voltage sweep in parallel with the faradaic current."""
        return 0.0

    # ---- CellModel interface ----------------------------------------------------------------------------

    def drain_events(self) -> list[CellEvent]:
        events, self._events = self._events, []
        return events

    def set_temperature(self, kelvin: float) -> None:
        """Re-derive every temperature-dependent constant at ``kelvin``; the state (charge, history) is kept."""
        values = {**self.p.as_dict(), "temperature": float(kelvin)}
        self.p = resolve_parameters(self.type_name, self.parameter_spec(), values)
        self._setup()

    def rest_voltage(self) -> float:
        """The voltage the cell shows at open circuit right now (relaxing towards the equilibrium)."""
        return float(self._constant_current(0.0).voltage(np.zeros(1))[0])

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "type": self.type_name,
            "params": self.p.as_dict(),
            "area": self.area,
            "capacity": self._capacity_given,
            "thickness": self.thickness,
            "seed": self.seed,
            "rng": _jsonable(self._rng.bit_generator.state),
            "state": self._state_vars(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("format") != STATE_FORMAT or state.get("type") != self.type_name:
            raise StateError(
                f"saved state is for model {state.get('type')!r} (format {state.get('format')!r}), not "
                f"{self.type_name!r} format {STATE_FORMAT}; build the model named in the saved state instead"
            )
        self.p = resolve_parameters(self.type_name, self.parameter_spec(), state["params"])
        self.area = float(state["area"])
        self.thickness = float(state["thickness"])
        self._capacity_given = state["capacity"]
        self.seed = state["seed"]
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]
        self._setup()
        self._load_state_vars(state["state"])

    def run_step(
        self,
        step: ProgramStep,
        *,
        extra_until: Sequence[Termination] = (),
        max_duration: float | None = None,
        sample_period: float = 0.0,
    ) -> StepResult:
        terms = tuple(step.until) + tuple(extra_until)
        t_cap = self.p.max_step_duration if max_duration is None else max(0.0, float(max_duration))
        if isinstance(step, LoopStep):
            raise StepKindError(f"step {step.index} is a loop: the instrument follows loops, a cell runs steps")
        if isinstance(step, EisStep):
            return self._run_eis(step, terms, t_cap)
        if isinstance(step, RestStep):
            segments = [self._cc_segment(0.0, terms, step.record, 0.0, 0.0, 0.0, t_cap)]
        elif isinstance(step, CurrentStep):
            segments = self._run_current(step, terms, t_cap)
        elif isinstance(step, HoldStep):
            segments = [self._hold(step.voltage, terms, t_cap, limit=step.current_limit, every=step.record.every_s)]
        elif isinstance(step, CaStep):
            v = step.voltage + (self.rest_voltage() if step.vs_ocv else 0.0)
            segments = [self._hold(v, terms, t_cap, every=step.record.every_s)]
        elif isinstance(step, PowerStep):
            segments = [
                self._controlled(
                    "power", lambda _t: step.power, lambda _t: 0.0, [], math.inf, terms, t_cap,
                    record_every=step.record.every_s,
                )
            ]  # fmt: skip
        elif isinstance(step, CvStep | LsvStep):
            segments = [self._sweep(step, terms, t_cap)]
        else:  # pragma: no cover - the ProgramStep union is closed
            raise StepKindError(f"step {step.index}: unknown step kind {step.kind!r}")
        return self._assemble(segments, step.record, sample_period)

    # ---- constant current -------------------------------------------------------------------------------

    def _run_current(self, step: CurrentStep, terms: tuple[Termination, ...], t_cap: float) -> list[_Segment]:
        if step.hold_voltage is None:
            return [self._cc_segment(step.current, terms, step.record, 0.0, 0.0, 0.0, t_cap)]
        op = Comparison.GE if step.current > 0 else Comparison.LE
        switch = Termination(quantity=Quantity.VOLTAGE, op=op, value=step.hold_voltage)
        cc = self._cc_segment(step.current, (*terms, switch), step.record, 0.0, 0.0, 0.0, t_cap)
        if cc.ended_by != len(terms):
            return [cc]
        cc.ended_by, cc.end_reason = None, "termination"
        cv = self._hold(
            step.hold_voltage,
            terms,
            t_cap,
            limit=abs(step.current),
            t0=cc.t_end,
            q0=float(cc.q[-1]),
            e0=float(cc.e[-1]),
            i0=step.current,
            every=step.record.every_s,
        )
        return [cc, cv]

    def _cc_segment(
        self,
        current: float,
        terms: Sequence[Termination],
        rule: RecordRule,
        t0: float,
        q0: float,
        e0: float,
        t_cap: float,
    ) -> _Segment:
        path = self._constant_current(current)
        h = self._grid_spacing(current)
        if rule.every_s is not None:
            h = min(h, rule.every_s)
        horizon = max(t_cap - t0, 0.0)
        wanted = {term.quantity for term in terms}
        need_t, need_q, need_dvdt = Quantity.TIME in wanted, Quantity.CAPACITY in wanted, Quantity.DVDT in wanted
        i_abs = float(abs(current))  # one number: first_hits reads a float as the same at every sample
        dv_max = _DV_MAX if rule.voltage_change is None else min(_DV_MAX, 0.25 * rule.voltage_change)

        def samples(tl: np.ndarray, v: np.ndarray, e: np.ndarray) -> Samples:
            # only what the terminations compare; |I| is one number (constant current)
            return Samples(
                tl + t0 if need_t else None,
                v,
                i_abs,
                q0 + current * tl / SECONDS_PER_HOUR if need_q else None,
                e,
                _dvdt(path, tl) if need_dvdt else None,
            )

        t_parts = [np.zeros(1)]
        v_parts = [path.voltage(t_parts[0])]
        e_parts = [np.array([e0])]
        t_prev, v_prev, e_prev = 0.0, float(v_parts[0][0]), float(e0)
        if need_dvdt:
            k, who = first_hits(terms, samples(t_parts[0], v_parts[0], e_parts[0]))
        else:  # the start sample as plain floats: the same comparisons without a dozen one-element arrays
            k, who = first_hits(terms, Samples(t0 + 0.0, v_prev, i_abs, q0 + current * 0.0 / SECONDS_PER_HOUR, e_prev))
        end_reason: EndReason = "termination"
        ended_by = who[0] if k == 0 else None
        half_current = current * 0.5
        start = 0.0
        k0 = 0
        features = path.feature_times(rule.voltage_change is not None or rule.current_change is not None)
        guess = path.expected_duration()
        chunk = _CHUNK if guess is None else int(min(max(1.1 * guess / h + 2, 8), _CHUNK))
        while ended_by is None:
            # integer multiples of h, so that time-rule records (also multiples) coincide with grid points bitwise
            tl = h * np.arange(k0 + 1, k0 + chunk + 1, dtype=float)
            k0 += chunk
            chunk = min(2 * chunk, _CHUNK)
            if features.size:
                extra = features[(features > start) & (features < tl[-1])]
                if extra.size:
                    tl = np.union1d(tl, extra)
            last = tl[-1] >= horizon
            if last:
                tl = np.append(tl[tl < horizon], horizon)
            if rule.voltage_change is not None:
                tl, v = _refined(path, t_prev, v_prev, tl, dv_max)
            else:  # crossings are bracketed and solved exactly anyway; only change records need a fine grid
                v = path.voltage(tl)
            # e = e_prev + cumsum(I/2 (v + v shifted by one, v_prev first) dt) / 3600, evaluated in place: the same
            # operations in the same order as the plain expression, without its temporaries
            n = len(tl)
            dt = np.empty(n)
            dt[0] = tl[0] - t_prev
            np.subtract(tl[1:], tl[:-1], out=dt[1:])
            e = np.empty(n)
            e[0] = v_prev
            e[1:] = v[:-1]
            e += v
            e *= half_current
            e *= dt
            np.add.accumulate(e, out=e)  # np.cumsum's loop, without its wrapper
            e /= SECONDS_PER_HOUR
            e += e_prev
            k, who = first_hits(terms, samples(tl, v, e))
            if k >= 0:
                t_a = float(tl[k - 1]) if k > 0 else t_prev
                v_a = float(v[k - 1]) if k > 0 else v_prev
                e_a = float(e[k - 1]) if k > 0 else e_prev
                t_end, ended_by = self._refine_cc(path, terms, who, t_a, float(tl[k]), v_a, e_a, t0, q0)
                keep = int(tl.searchsorted(t_end))  # tl ascends: the samples before the end are a prefix
                v_end = path.voltage_at(t_end)
                e_end = e_a + current * 0.5 * (v_a + v_end) * (t_end - t_a) / SECONDS_PER_HOUR
                t_parts += (tl[:keep], np.array([t_end]))
                v_parts += (v[:keep], np.array([v_end]))
                e_parts += (e[:keep], np.array([e_end]))
                break
            t_parts.append(tl)
            v_parts.append(v)
            e_parts.append(e)
            if last:
                end_reason = "max_duration"
                break
            t_prev, v_prev, e_prev = float(tl[-1]), float(v[-1]), float(e[-1])
            start = t_prev
        tl = np.concatenate(t_parts)
        path.commit(float(tl[-1]))
        return _Segment(
            t=tl + t0,
            v=np.concatenate(v_parts),
            i=np.full(len(tl), float(current)),
            q=q0 + current * tl / SECONDS_PER_HOUR,
            e=np.concatenate(e_parts),
            end_reason=end_reason,
            ended_by=ended_by,
            exact_voltage=lambda ts: path.voltage(np.asarray(ts) - t0),
        )

    def _refine_cc(
        self,
        path: ConstantCurrentPath,
        terms: Sequence[Termination],
        who: list[int],
        t_a: float,
        t_b: float,
        v_a: float,
        e_a: float,
        t0: float,
        q0: float,
    ) -> tuple[float, int]:
        current = path.current

        def quantity_at(term: Termination) -> Callable[[float], float]:
            quantity = term.quantity
            if quantity is Quantity.VOLTAGE:
                return path.voltage_at
            if quantity is Quantity.CAPACITY:
                return lambda t: q0 + current * t / SECONDS_PER_HOUR
            if quantity is Quantity.ENERGY:
                return lambda t: e_a + current * 0.5 * (v_a + path.voltage_at(t)) * (t - t_a) / SECONDS_PER_HOUR
            if quantity is Quantity.DVDT:
                return lambda t: float(_dvdt(path, np.array([t]))[0])
            if quantity is Quantity.CURRENT:
                return lambda t: abs(current)
            return lambda t: t + t0

        best_t, best_n = t_b, who[0]
        for n in who:
            term = terms[n]
            if term.quantity is Quantity.TIME:
                t_hit = min(max(term.value - t0, t_a), t_b)
            else:
                t_hit = refine(term, quantity_at(term), t_a, t_b)
            if t_hit < best_t:
                best_t, best_n = t_hit, n
        return best_t, best_n

    # ---- voltage / power controlled ---------------------------------------------------------------------

    def _hold(
        self,
        voltage: float,
        terms: Sequence[Termination],
        t_cap: float,
        *,
        limit: float | None = None,
        t0: float = 0.0,
        q0: float = 0.0,
        e0: float = 0.0,
        i0: float = 0.0,
        every: float | None = None,
    ) -> _Segment:
        return self._controlled(
            "voltage", lambda _t: voltage, lambda _t: 0.0, [], math.inf, terms, t_cap,
            limit=limit, t0=t0, q0=q0, e0=e0, i0=i0, record_every=every,
        )  # fmt: skip

    def _sweep(self, step: CvStep | LsvStep, terms: Sequence[Termination], t_cap: float) -> _Segment:
        times, volts = step.corners(self.rest_voltage())
        slopes = np.sign(np.diff(volts)) * step.scan_rate

        def target(t: float) -> float:
            return float(np.interp(t, times, volts))

        def slope(t: float) -> float:
            k = int(np.searchsorted(times, t, side="right")) - 1
            return float(slopes[min(max(k, 0), len(slopes) - 1)])

        dt_max = 1e-3 / step.scan_rate  # 1 mV per integration step resolves every OCV feature
        return self._controlled(
            "voltage", target, slope, list(times[1:]), float(times[-1]), terms, t_cap,
            dt_max=dt_max, record_every=step.record.every_s,
        )  # fmt: skip

    def _solve_current(self, mode: str, setpoint: float, dt: float, guess: float) -> tuple[float, float]:
        """The constant current over [0, dt] that meets the set-point at dt; returns (current, voltage at dt)."""
        scale = self._current_scale()
        cache: dict[float, float] = {}

        def v_of(current: float) -> float:
            v = cache.get(current)
            if v is None:
                v = self._constant_current(current).voltage_at(dt)
                cache[current] = v
            return v

        def residual(current: float) -> float:
            v = v_of(current)
            return v - setpoint if mode == "voltage" else current * v - setpoint

        tol = 1e-10 if mode == "voltage" else 1e-10 * max(abs(setpoint), 1e-9)
        x0 = guess
        f0 = residual(x0)
        if abs(f0) <= tol:
            return x0, v_of(x0)
        step = 1e-3 * max(abs(x0), scale)
        x1 = x0 - math.copysign(step, f0)
        f1 = residual(x1)
        for _ in range(30):
            if abs(f1) <= tol:
                return x1, v_of(x1)
            if f1 == f0:
                break
            x0, x1, f0 = x1, x1 - f1 * (x1 - x0) / (f1 - f0), f1
            f1 = residual(x1)
        # the secant failed (a kink in the characteristic): bracket and bisect, which cannot fail
        lo, hi = guess - scale, guess + scale
        while residual(lo) > 0:
            lo -= 4 * (hi - lo)
        while residual(hi) < 0:
            hi += 4 * (hi - lo)
        x = find_root(residual, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)
        return x, v_of(x)

    def _controlled(
        self,
        mode: str,
        setpoint: Callable[[float], float],
        slope: Callable[[float], float],
        knots: list[float],
        t_nominal_end: float,
        terms: Sequence[Termination],
        t_cap: float,
        *,
        limit: float | None = None,
        t0: float = 0.0,
        q0: float = 0.0,
        e0: float = 0.0,
        i0: float = 0.0,
        dt_max: float = 120.0,
        record_every: float | None = None,
    ) -> _Segment:
        """Integrate a voltage- or power-controlled step (see the module docstring for the scheme).

        Integration steps land on the sweep's corners and on the record grid (``record_every``), so that
        time-based records are integration points rather than interpolations.
        """
        c_dl = self._double_layer_capacitance()
        scale = self._current_scale()
        horizon = min(t_cap, t_nominal_end)
        for term in terms:
            if term.quantity is Quantity.TIME and term.op is Comparison.GE:
                horizon = min(horizon, term.value)
        horizon = max(horizon, t0)

        def solve(t_from: float, dt: float, guess: float) -> tuple[float, float, float]:
            """(faradaic current, total current, voltage) at t_from + dt."""
            i_f, v = self._solve_current(mode, setpoint(t_from + dt), dt, guess)
            if limit is not None and abs(i_f) > limit:
                i_f = math.copysign(limit, i_f)
                v = self._constant_current(i_f).voltage_at(dt)
            return i_f, i_f + c_dl * slope(t_from + dt), v

        i_f, i_tot, v = solve(t0, 0.0, i0)
        ts, vs, is_, qs, es = [t0], [v], [i_tot], [q0], [e0]
        start = Samples(np.array([t0]), np.array([v]), np.array([abs(i_tot)]), np.array([q0]), np.array([e0]))
        k, who = first_hits(terms, start)
        if k == 0:
            return _Segment(*map(np.array, (ts, vs, is_, qs, es)), end_reason="termination", ended_by=who[0])
        t, q, e = t0, q0, e0
        dt = min(1e-3, dt_max)
        end_reason: EndReason = "complete" if horizon == t_nominal_end else "max_duration"
        ended_by: int | None = None
        knot_iter = iter(sorted(x for x in knots if x > t0))
        next_knot = next(knot_iter, math.inf)
        while t < horizon:
            while next_knot <= t + 1e-12:
                next_knot = next(knot_iter, math.inf)
            stop = next_knot
            if record_every is not None:
                stop = min(stop, record_every * (math.floor(t / record_every + 1e-9) + 1))
            step_dt = min(dt, dt_max, horizon - t, stop - t)
            if stop - (t + step_dt) < 1e-9:
                step_dt = stop - t
            new_f, new_tot, new_v = solve(t, step_dt, i_f)
            change = abs(new_f - i_f)
            allowed = 0.01 * max(abs(i_f), abs(new_f)) + 1e-4 * scale
            if change > allowed and step_dt > 1e-6:
                dt = step_dt / 4
                continue
            t_new = t + step_dt
            q_new = q + 0.5 * (is_[-1] + new_tot) * step_dt / SECONDS_PER_HOUR
            e_new = e + 0.5 * (is_[-1] * vs[-1] + new_tot * new_v) * step_dt / SECONDS_PER_HOUR
            s = Samples(
                np.array([t_new]),
                np.array([new_v]),
                np.array([abs(new_tot)]),
                np.array([q_new]),
                np.array([e_new]),
                np.array([abs(new_v - vs[-1]) / step_dt]),
            )
            k, who = first_hits(terms, s)
            if k == 0:
                t_new, ended_by, (new_f, new_tot, new_v) = self._refine_controlled(
                    terms, who, solve, t, step_dt, i_f, vs[-1], is_[-1], q, e
                )
                step_dt = t_new - t
                q_new = q + 0.5 * (is_[-1] + new_tot) * step_dt / SECONDS_PER_HOUR
                e_new = e + 0.5 * (is_[-1] * vs[-1] + new_tot * new_v) * step_dt / SECONDS_PER_HOUR
                end_reason = "termination"
            self._constant_current(new_f).commit(step_dt)
            t, q, e, i_f = t_new, q_new, e_new, new_f
            ts.append(t)
            vs.append(new_v)
            is_.append(new_tot)
            qs.append(q)
            es.append(e)
            if ended_by is not None:
                break
            if change < 0.3 * allowed:
                dt = step_dt * 1.5
        if ended_by is None and end_reason != "complete":
            for n, term in enumerate(terms):
                if term.quantity is Quantity.TIME and term.op is Comparison.GE and t >= term.value - 1e-9:
                    end_reason, ended_by = "termination", n
                    break
        return _Segment(*map(np.array, (ts, vs, is_, qs, es)), end_reason=end_reason, ended_by=ended_by)

    def _refine_controlled(
        self,
        terms: Sequence[Termination],
        who: list[int],
        solve: Callable[[float, float, float], tuple[float, float, float]],
        t: float,
        dt: float,
        i_f: float,
        v_prev: float,
        i_prev: float,
        q: float,
        e: float,
    ) -> tuple[float, int, tuple[float, float, float]]:
        def quantity_at(term: Termination) -> Callable[[float], float]:
            def at(sub: float) -> float:
                if sub <= 0.0:
                    sub = 1e-12
                _f, tot, v = solve(t, sub, i_f)
                if term.quantity is Quantity.VOLTAGE:
                    return v
                if term.quantity is Quantity.CURRENT:
                    return tot
                if term.quantity is Quantity.CAPACITY:
                    return q + 0.5 * (i_prev + tot) * sub / SECONDS_PER_HOUR
                if term.quantity is Quantity.ENERGY:
                    return e + 0.5 * (i_prev * v_prev + tot * v) * sub / SECONDS_PER_HOUR
                if term.quantity is Quantity.DVDT:
                    return abs(v - v_prev) / sub
                return t + sub

            return at

        best, best_n = dt, who[0]
        for n in who:
            term = terms[n]
            if term.quantity is Quantity.TIME:
                sub = min(max(term.value - t, 0.0), dt)
            else:
                sub = refine(term, quantity_at(term), 0.0, dt)
            if sub < best:
                best, best_n = sub, n
        return t + best, best_n, solve(t, max(best, 0.0), i_f)

    # ---- impedance --------------------------------------------------------------------------------------

    def measured_impedance(self, frequencies: np.ndarray, amplitude: float, mode: str = "potentio") -> np.ndarray:
        """The impedance an analyser reads at a finite sine ``amplitude`` (V for "potentio", A for "galvano"):
        V_1/I_1 of the fundamental. A model with nonlinear interfaces overrides this (large amplitudes distort the
        spectrum); a linear model's measured impedance is its small-signal one at any amplitude."""
        return self.impedance(frequencies)

    def _run_eis(self, step: EisStep, terms: tuple[Termination, ...], t_cap: float) -> StepResult:
        """An EIS step: the DC control it is measured around, and at each frequency the first-harmonic impedance
        for the step's amplitude and mode (so that a large amplitude shows the distortion a real analyser sees)."""
        freqs = np.asarray(step.frequencies())
        z = self.measured_impedance(freqs, step.amplitude, step.mode)
        per_point = step.measures_per_point * np.maximum(self.p.eis_periods / freqs, self.p.eis_min_measure_time)
        row_t = np.cumsum(per_point)
        total = float(row_t[-1])
        cap = min(t_cap, total)
        no_record = RecordRule()
        if step.mode == "galvano":
            seg = self._cc_segment(step.bias, terms, no_record, 0.0, 0.0, 0.0, cap)
        elif step.bias_vs_ocv and step.bias == 0.0:
            seg = self._cc_segment(0.0, terms, no_record, 0.0, 0.0, 0.0, cap)
        else:
            v_dc = step.bias + (self.rest_voltage() if step.bias_vs_ocv else 0.0)
            seg = self._hold(v_dc, terms, cap)
        end = seg.t_end
        keep = row_t <= end + 1e-9
        if not keep.any():  # ended before the first frequency was measured: report that one point, cut short
            keep[0] = True
            row_t[0] = end
        row_t = row_t[keep]
        end_reason: EndReason = seg.end_reason if seg.ended_by is not None else "complete"
        if seg.ended_by is None and end < total - 1e-9:
            end_reason = "max_duration"
        v, i, q, e = self._evaluate([seg], row_t)
        v, i = self._add_noise(v, i)
        return StepResult(
            t=row_t,
            voltage=v,
            current=i,
            capacity=q,
            energy=e,
            duration=end,
            end_reason=end_reason,
            ended_by=seg.ended_by,
            frequency=freqs[keep],
            z_real=z.real[keep].copy(),
            z_imag=z.imag[keep].copy(),
        )

    # ---- assembly ---------------------------------------------------------------------------------------

    def _evaluate(
        self, segments: list[_Segment], times: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if len(segments) == 1:
            seg = segments[0]
            t, i, q, e = seg.t, seg.i, seg.q, seg.e
        else:
            t = np.concatenate([s.t for s in segments])
            i = np.concatenate([s.i for s in segments])
            q = np.concatenate([s.q for s in segments])
            e = np.concatenate([s.e for s in segments])
        if len(segments) == 1 and len(times) and float(times.min()) >= 0.0:
            # one piece holding every record (a step's segments start at step time 0): no masks to apply
            seg = segments[0]
            if seg.exact_voltage is not None and len(times) == len(t) and (times == t).all():
                # a record at every dense sample (a time rule whose interval is the grid's, the usual constant-current
                # step): the samples themselves, as the searches below find them (record times ascend strictly, so
                # the samples' times do too, and each record's sample is the one at its own index)
                return seg.v.copy(), _interp_step(times, t, i), q.copy(), e.copy()
            v = _exact_at(seg, times) if seg.exact_voltage is not None else np.interp(times, seg.t, seg.v)
            # records on the dense grid (a time rule whose interval the grid shares) take the samples themselves:
            # np.interp returns fp[j] exactly at x == xp[j], j the last such index (t ascends, so t[j] <= x)
            j = t.searchsorted(times, side="right")
            j -= 1
            if (t[j] == times).all():
                return v, _interp_step(times, t, i), q[j], e[j]
            return v, _interp_step(times, t, i), np.interp(times, t, q), np.interp(times, t, e)
        v = np.empty(len(times))
        lo = 0.0
        for n, seg in enumerate(segments):
            hi = seg.t_end if n < len(segments) - 1 else math.inf
            mask = (times >= lo) & (times <= hi) if n == 0 else (times > lo) & (times <= hi)
            if seg.exact_voltage is not None:
                v[mask] = _exact_at(seg, times[mask])
            else:
                v[mask] = np.interp(times[mask], seg.t, seg.v)
            lo = hi
        return v, _interp_step(times, t, i), np.interp(times, t, q), np.interp(times, t, e)

    def _voltage_evaluator(self, segments: list[_Segment]) -> Callable[[np.ndarray], np.ndarray]:
        bounds = [s.t_end for s in segments[:-1]]

        def at(times: np.ndarray) -> np.ndarray:
            if not bounds:
                return segments[0].exact_voltage(times)  # type: ignore[misc]
            k = int(np.searchsorted(bounds, float(times[0])))
            seg = segments[min(k, len(segments) - 1)]
            return seg.exact_voltage(times) if seg.exact_voltage is not None else np.interp(times, seg.t, seg.v)

        return at

    def _add_noise(self, v: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.p.noise_voltage > 0.0:
            v = v + self._rng.normal(0.0, self.p.noise_voltage, len(v))
        if self.p.noise_current > 0.0:
            i = i + self._rng.normal(0.0, self.p.noise_current, len(i))
        return v, i

    def _assemble(self, segments: list[_Segment], rule: RecordRule, sample_period: float = 0.0) -> StepResult:
        last = segments[-1]
        if len(segments) == 1:
            dense_t, dense_v, dense_i = last.t, last.v, last.i
        else:
            dense_t = np.concatenate([s.t for s in segments])
            dense_v = np.concatenate([s.v for s in segments])
            dense_i = np.concatenate([s.i for s in segments])
        exact = None
        if rule.voltage_change is not None and all(s.exact_voltage is not None for s in segments):
            exact = self._voltage_evaluator(segments)
        times = record_times(dense_t, dense_v, dense_i, rule, exact, sample_period)
        v, i, q, e = self._evaluate(segments, times)
        # the end sample carries the exact end state, not an interpolation
        v[-1], i[-1], q[-1], e[-1] = last.v[-1], last.i[-1], last.q[-1], last.e[-1]
        v, i = self._add_noise(v, i)
        return StepResult(
            t=times,
            voltage=v,
            current=i,
            capacity=q,
            energy=e,
            duration=last.t_end,
            end_reason=last.end_reason,
            ended_by=last.ended_by,
        )


def _refined(
    path: ConstantCurrentPath, t_prev: float, v_prev: float, tl: np.ndarray, dv_max: float
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate the path on ``tl``, subdividing (twice at most) wherever V moves by more than ``dv_max``.

    A coarse grid is right for the long flat parts of a step; the steep ends and regime changes get the
    points they need so that change-based records, energy and termination brackets stay accurate.
    """
    v = path.voltage(tl)
    for _ in range(2):
        jumps = np.abs(np.diff(v, prepend=v_prev))
        # only the first few steep intervals: past a cliff (a cell run dry) the step has ended anyway
        coarse = np.flatnonzero(jumps > dv_max)[:_MAX_REFINED]
        if coarse.size == 0:
            break
        lefts = np.where(coarse > 0, tl[np.maximum(coarse - 1, 0)], t_prev)
        pieces = np.minimum(np.ceil(jumps[coarse] / dv_max), 256).astype(int)
        extra = np.concatenate(
            [a + (b - a) * np.arange(1, m) / m for a, b, m in zip(lefts, tl[coarse], pieces, strict=True)]
        )
        if extra.size == 0:
            break
        tl = np.union1d(tl, extra)
        v = path.voltage(tl)
    return tl, v


def _exact_at(seg: _Segment, times: np.ndarray) -> np.ndarray:
    """Closed-form V at ``times``, reusing the dense samples where a record time is a grid point."""
    idx = seg.t.searchsorted(times)
    np.minimum(idx, len(seg.t) - 1, out=idx)
    on_grid = seg.t[idx] == times
    if on_grid.all():
        return seg.v[idx]
    v = seg.v[idx]
    off = ~on_grid
    v[off] = seg.exact_voltage(times[off])  # type: ignore[misc]
    return v


def _interp_step(times: np.ndarray, t: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Current at the record instants: exact for constant-current pieces, interpolated elsewhere."""
    if len(i) and i[0] == i[-1] and (i == i[0]).all():
        return np.full(len(times), float(i[0]))
    return np.interp(times, t, i)


def _dvdt(path: ConstantCurrentPath, t: np.ndarray) -> np.ndarray:
    """|dV/dt| of a closed-form path by central differences (one-sided at t = 0)."""
    eps = np.maximum(1e-3, 1e-6 * t)
    lo = np.maximum(t - eps, 0.0)
    hi = t + eps
    return np.abs(path.voltage(hi) - path.voltage(lo)) / (hi - lo)


_NESTED = (dict, np.integer)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):  # (leaves are returned as they are without a call: a state is saved every step)
        return {k: _jsonable(v) if isinstance(v, _NESTED) else v for k, v in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    return value

