"""EIS spectra of a run, fitted to an equivalent circuit with impedance.py, with the high-frequency intercept and a
Kramers-Kronig check (P5, P7).

Each EIS step execution in the records is one :class:`Spectrum` (an EIS step inside a loop gives one per cycle).
:func:`fit_spectrum` fits a circuit (the cell kind's default from :mod:`station.analysis.circuits`, or one given
in impedance.py syntax) weighting each point by its modulus (the usual choice without measured variances: every
decade counts, not just the largest impedances), with initial values read from the spectrum.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from protocols.program import EisStep
from station.analysis import circuits
from station.analysis.run_data import RunData

FINITE_WARBURG_LIMIT = 30.0
"""omega_min * tau above which a finite-length Warburg is indistinguishable from the semi-infinite one on the
measured band (tanh and coth of sqrt(30 j) differ from 1 by < 1e-3): the default fit then uses ``W``."""
GOOD_FIT_RMS = 2e-3
"""An RMS relative residual at or below which a fit is accepted without trying other starting points."""
FINITE_ATTEMPT_EVALUATIONS = 1000
"""Function evaluations allowed to a finite-Warburg attempt: started from the semi-infinite fit it converges in
tens when the data resolve its tau; when they do not, tau drifts off towards infinity and would use up
impedance.py's 100000."""
KK_C = 0.85
"""linKK's stopping criterion mu (impedance.py's default): the number of RC elements grows until the fit stops
over-fitting."""


@dataclass(frozen=True)
class Spectrum:
    """One EIS step execution as reported: z_imag signed as measured (capacitive -Z'' > 0 when z_imag < 0)."""

    step_index: int
    cycle: int
    frequency_hz: np.ndarray
    z_real_ohm: np.ndarray
    z_imag_ohm: np.ndarray

    @property
    def z(self) -> np.ndarray:
        return self.z_real_ohm + 1j * self.z_imag_ohm

    def to_dict(self) -> dict[str, Any]:
        return {"step_index": self.step_index, "cycle": self.cycle, "frequency_hz": _floats(self.frequency_hz),
                "z_real_ohm": _floats(self.z_real_ohm), "z_imag_ohm": _floats(self.z_imag_ohm)}


@dataclass(frozen=True)
class FitParameter:
    """A fitted circuit parameter (impedance.py's name, e.g. ``CPE1_0``) with its 95 % confidence interval
    (value -/+ t(0.975, dof) x standard error from the fit's covariance; None when the fit cannot bound it)."""

    name: str
    value: float
    unit: str
    ci95_low: float | None
    ci95_high: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"value": _num(self.value), "unit": self.unit, "ci95_low": _num(self.ci95_low),
                "ci95_high": _num(self.ci95_high)}


@dataclass(frozen=True)
class EisFit:
    """A spectrum's fit: parameters, intercept, quality and Kramers-Kronig residuals."""

    step_index: int
    cycle: int
    circuit: str
    parameters: tuple[FitParameter, ...]
    hf_intercept_ohm: float
    hf_intercept_source: str
    """``"crossing"`` (-Z'' changes sign at the high-frequency end, interpolated) or ``"fit:R0"`` (the fitted
    series resistance: the spectrum never turns inductive)."""
    rms_relative_residual: float
    """RMS of |Z_fit - Z| / |Z| over the points: how well the circuit describes the spectrum."""
    kk_max_residual_real: float
    kk_max_residual_imag: float
    """max |residual| of linKK's fit (residuals relative to |Z|): below ~1 % a spectrum is linear, causal and
    stable; larger ones mean drift or nonlinearity during the measurement."""
    kk_elements: int
    frequency_min_hz: float
    frequency_max_hz: float
    _model: Any = field(default=None, repr=False, compare=False)

    def parameter(self, name: str) -> FitParameter:
        found = next((p for p in self.parameters if p.name == name), None)
        if found is None:
            raise KeyError(f"fit of {self.circuit!r} has no parameter {name!r}")
        return found

    def value(self, name: str) -> float:
        return self.parameter(name).value

    def predict(self, frequency_hz: np.ndarray | list[float]) -> np.ndarray:
        """The fitted circuit's complex impedance (ohm, capacitive imaginary part < 0) at ``frequency_hz``."""
        return np.asarray(self._model.predict(np.asarray(frequency_hz, dtype=float)), dtype=complex)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step_index": self.step_index, "cycle": self.cycle, "circuit": self.circuit,
            "parameters": {p.name: p.to_dict() for p in self.parameters},
            "hf_intercept_ohm": _num(self.hf_intercept_ohm), "hf_intercept_source": self.hf_intercept_source,
            "rms_relative_residual": _num(self.rms_relative_residual),
            "kk_max_residual_real": _num(self.kk_max_residual_real),
            "kk_max_residual_imag": _num(self.kk_max_residual_imag), "kk_elements": self.kk_elements,
            "frequency_min_hz": _num(self.frequency_min_hz), "frequency_max_hz": _num(self.frequency_max_hz),
        }


@dataclass(frozen=True)
class EisResult:
    """Every spectrum of a run with its fit."""

    fits: tuple[EisFit, ...]
    spectra: tuple[Spectrum, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"spectra": [f.to_dict() for f in self.fits]}


def spectra(data: RunData) -> list[Spectrum]:
    """One :class:`Spectrum` per EIS step execution, in record order.

    Rows belong to an EIS step of the program and carry a frequency; an execution ends where the step index or
    cycle changes or another row comes between (a second pass of the same step in a loop).
    """
    r = data.records
    if len(r) == 0:
        return []
    eis_steps = [s.index for s in data.program.steps if isinstance(s, EisStep)]
    rows = np.nonzero(np.isin(r["step_index"], eis_steps) & np.isfinite(r["frequency"]))[0]
    if rows.size == 0:
        return []
    steps, cycles = r["step_index"][rows], r["cycle"][rows]
    breaks = np.nonzero((np.diff(rows) != 1) | (np.diff(steps) != 0) | (np.diff(cycles) != 0))[0] + 1
    out = []
    for block in np.split(rows, breaks):
        out.append(Spectrum(int(r["step_index"][block[0]]), int(r["cycle"][block[0]]),
                            np.array(r["frequency"][block], dtype=float), np.array(r["z_real"][block], dtype=float),
                            np.array(r["z_imag"][block], dtype=float)))
    return out


def fit_spectrum(spectrum: Spectrum, circuit: str | None = None, cell_kind: str | None = None) -> EisFit:
    """Fit ``circuit`` (impedance.py syntax; None: the default for ``cell_kind``, a ``Cell.model_type``).

    A default circuit with a finite-length Warburg is also fitted with the semi-infinite ``W`` in its place, and
    that one is kept when the finite Warburg's time constant puts the whole band on the 45 degree line
    (omega_min tau > :data:`FINITE_WARBURG_LIMIT`: the data cannot separate its resistance from its time
    constant) or does not fit better. A given circuit is fitted as given.
    Raises :class:`station.analysis.circuits.CircuitError` (a ValueError) with one line for a malformed circuit
    and ValueError when the spectrum has too few points for the circuit.
    """
    given = circuit is not None
    chosen = circuit if given else circuits.default_circuit(cell_kind)
    names = circuits.elements(chosen)
    freq, z = _clean(spectrum)
    n_params = sum(circuits.ELEMENT_PARAMS[circuits.kind(n)] for n in names)
    if 2 * len(freq) <= n_params:
        raise ValueError(f"EIS step {spectrum.step_index}: {len(freq)} points cannot fit the {n_params} parameters "
                         f"of {chosen!r}; use a simpler circuit")
    kk = _kramers_kronig(freq, z)
    variant = None if given else circuits.semi_infinite_variant(chosen)
    if variant is not None:
        return _finite_or_semi_infinite(spectrum, chosen, variant, freq, z, kk)
    return _best_start(spectrum, chosen, freq, z, kk)


def _best_start(spectrum: Spectrum, circuit: str, freq: np.ndarray, z: np.ndarray, kk: _Kk) -> EisFit:
    """The fit from the preferred starting point, or, when that one stays clearly above the noise floor (RMS over
    twice linKK's, which any valid spectrum reaches, and over 0.2 %), the best of the others too: overlapping
    or noisy arcs can send a fit into a local minimum."""
    best: EisFit | None = None
    failure: ValueError | None = None
    for guess in circuits.initial_guesses(circuit, freq, z):
        try:
            candidate = _result(spectrum, circuit, _fit(circuit, freq, z, guess), freq, z, kk)
        except ValueError as err:
            failure = failure or err
            continue
        if best is None or candidate.rms_relative_residual < best.rms_relative_residual:
            best = candidate
        if best.rms_relative_residual <= max(2.0 * kk.rms, GOOD_FIT_RMS):
            break
    if best is None:
        raise failure or ValueError(f"EIS fit of {circuit!r} did not converge; try a simpler circuit")
    return best


def analyze_eis(data: RunData, circuit: str | None = None) -> EisResult | None:
    """Every EIS spectrum of the run fitted (None when the run has no EIS data)."""
    found = spectra(data)
    if not found:
        return None
    kind = data.cell.model_type
    return EisResult(tuple(fit_spectrum(s, circuit, kind) for s in found), tuple(found))


# ---- internals ---------------------------------------------------------------------------------------------


def _clean(spectrum: Spectrum) -> tuple[np.ndarray, np.ndarray]:
    """Finite points with f > 0, highest frequency first (impedance.py and linKK take any order)."""
    f = np.asarray(spectrum.frequency_hz, dtype=float)
    z = spectrum.z
    ok = np.isfinite(f) & (f > 0) & np.isfinite(z.real) & np.isfinite(z.imag)
    order = np.argsort(f[ok])[::-1]
    return f[ok][order], z[ok][order]


def _finite_or_semi_infinite(spectrum: Spectrum, finite: str, semi: str, freq: np.ndarray, z: np.ndarray,
                             kk: _Kk) -> EisFit:
    """Fit the semi-infinite variant first (its parameters are always identifiable), then the finite-length
    Warburg started from it, at tau = 1/omega_min and a decade below; keep the finite one only when its tau is
    resolved (omega_min tau < :data:`FINITE_WARBURG_LIMIT`) and it fits clearly better (RMS below 0.9 times)."""
    semi_fit = _best_start(spectrum, semi, freq, z, kk)
    names = circuits.elements(semi)
    values = [p.value for p in semi_fit.parameters]
    w_min = 2.0 * math.pi * float(freq.min())
    best = semi_fit
    for tau in (1.0 / w_min, 0.1 / w_min):
        guess: list[float] = []
        position = 0
        for name in names:
            count = circuits.ELEMENT_PARAMS[circuits.kind(name)]
            own = values[position : position + count]
            guess += [own[0] * math.sqrt(2.0 * tau), tau] if circuits.kind(name) == "W" else own
            position += count
        try:
            model = _fit(finite, freq, z, guess, max_evaluations=FINITE_ATTEMPT_EVALUATIONS,
                         tau_limit=FINITE_WARBURG_LIMIT / w_min)
        except ValueError:
            continue
        if _warburg_unresolved(model, circuits.elements(finite), float(freq.min()), 0.99):
            continue
        candidate = _result(spectrum, finite, model, freq, z, kk)
        if candidate.rms_relative_residual < 0.9 * best.rms_relative_residual:
            best = candidate
    return best


def _fit(circuit: str, freq: np.ndarray, z: np.ndarray, guess: list[float] | None = None,
         max_evaluations: int | None = None, tau_limit: float | None = None) -> Any:
    """impedance.py's fit with its default bounds (all >= 0, CPE exponents <= 1); ``tau_limit`` caps the time
    constants of finite Warburgs (beyond it they are not resolved, so the search need not follow them there)."""
    from impedance.models.circuits import CustomCircuit  # imported late: impedance.py loads pandas and matplotlib
    from impedance.models.circuits.fitting import set_default_bounds

    if guess is None:
        guess = circuits.initial_guess(circuit, freq, z)
    extra: dict[str, Any] = {"maxfev": max_evaluations} if max_evaluations else {}
    if tau_limit is not None:
        lower, upper = (list(b) for b in set_default_bounds(circuit))
        position = 0
        for name in circuits.elements(circuit):
            if circuits.kind(name) in ("Ws", "Wo"):
                upper[position + 1] = tau_limit
                guess[position + 1] = min(guess[position + 1], 0.5 * tau_limit)
            position += circuits.ELEMENT_PARAMS[circuits.kind(name)]
        extra["bounds"] = (lower, upper)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # covariance warnings: an unbounded parameter shows as a None interval
        try:
            model = CustomCircuit(circuit, initial_guess=guess)
            model.fit(freq, z, weight_by_modulus=True, x_scale="jac", **extra)
        except Exception as err:  # impedance.py raises many kinds (its own string checks, scipy's, eval's)
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            message = f"EIS fit of {circuit!r} failed ({reason}); check the circuit or try a simpler one"
            raise ValueError(message) from None
    return model


def _warburg_unresolved(model: Any, names: list[str], f_min: float, share: float = 1.0) -> bool:
    """Whether a finite Warburg's fitted tau reaches ``share`` of the limit beyond which the band cannot resolve
    it (a fit bounded there stops at the bound)."""
    values = list(model.parameters_)
    position = 0
    for name in names:
        count = circuits.ELEMENT_PARAMS[circuits.kind(name)]
        limit = share * FINITE_WARBURG_LIMIT
        if circuits.kind(name) in ("Ws", "Wo") and 2.0 * math.pi * f_min * values[position + 1] > limit:
            return True
        position += count
    return False


def _result(spectrum: Spectrum, circuit: str, model: Any, freq: np.ndarray, z: np.ndarray, kk: _Kk) -> EisFit:
    names, units = model.get_param_names()
    values = np.asarray(model.parameters_, dtype=float)
    errors = np.asarray(model.conf_ if model.conf_ is not None else np.full(len(values), np.nan), dtype=float)
    dof = max(2 * len(freq) - len(values), 1)
    t95 = float(stats.t.ppf(0.975, dof))
    params = []
    for name, unit, value, err in zip(names, units, values, errors, strict=True):
        bounded = math.isfinite(err) and err >= 0.0
        params.append(FitParameter(name, float(value), unit, float(value - t95 * err) if bounded else None,
                                   float(value + t95 * err) if bounded else None))
    fitted = np.asarray(model.predict(freq), dtype=complex)
    rms = float(np.sqrt(np.mean(np.abs(fitted - z) ** 2 / np.abs(z) ** 2)))
    crossing = circuits.hf_crossing(freq, z)
    if crossing is not None:
        hf, source = crossing, "crossing"
    elif "R0" in names:
        hf, source = float(values[names.index("R0")]), "fit:R0"
    else:
        hf, source = circuits.hf_estimate(freq, z), "estimate"
    return EisFit(spectrum.step_index, spectrum.cycle, circuit, tuple(params), hf, source, rms, kk.max_real,
                  kk.max_imag, kk.elements, float(freq.min()), float(freq.max()), model)


@dataclass(frozen=True)
class _Kk:
    elements: int
    max_real: float
    max_imag: float
    rms: float
    """RMS of |Z - Z_KK|/|Z|: the floor any fit of a valid spectrum can reach (noise and drift)."""


def _kramers_kronig(freq: np.ndarray, z: np.ndarray) -> _Kk:
    """M, max |residual| of the real and imaginary parts and the RMS of the linear Kramers-Kronig test
    (Schoenleber et al. 2014) as impedance.py's ``linKK`` runs it: M RC elements with fixed, log-spaced time
    constants plus a series R, L and (for a blocking or capacitive low-frequency end) C, fitted to the complex
    data weighted by 1/|Z|; M grows from 1 until the negative-resistance share mu falls to :data:`KK_C`;
    residuals (Z - Z_KK)/|Z|.

    impedance.py's own ``linKK`` cannot run under numpy 2 (1.7.1 rebuilds its model by ``eval`` of printed
    numbers, which numpy 2 prints as ``np.float64(...)``, and prints to stdout every 10 M), so its fitting
    functions are called here and the model is evaluated directly.
    """
    from impedance.validation import fit_linKK, get_tc_distribution

    w = 2.0 * np.pi * freq
    m, mu = 0, 1.0
    elements, taus = np.zeros(4), np.zeros(1)
    while mu > KK_C and m < 50:
        m += 1
        taus = get_tc_distribution(freq, m)
        elements, mu = fit_linKK(freq, taus, m, z, "complex", True)
    # elements: R0, R_1..R_M, 1/C, L
    z_kk = elements[0] + (elements[1 : m + 1] / (1.0 + 1j * np.outer(w, taus))).sum(axis=1)
    z_kk = z_kk - 1j * elements[-2] / w + 1j * w * elements[-1]
    residual = (z - z_kk) / np.abs(z)
    return _Kk(m, float(np.max(np.abs(residual.real))), float(np.max(np.abs(residual.imag))),
               float(np.sqrt(np.mean(np.abs(residual) ** 2))))


def _num(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become None."""
    return float(value) if value is not None and math.isfinite(value) else None


def _floats(values: np.ndarray) -> list[float | None]:
    return [_num(float(v)) for v in values]
