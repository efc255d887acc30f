"""Equivalent-circuit elements, each the analytic impedance of a physical process (complex ohm, Z'' < 0 capacitive).

They are plain functions of angular frequency so that a model's spectrum is a readable sum of elements, and a
test can rebuild the same circuit independently. All of them are causal and linear, so any sum or parallel
combination passes a Kramers-Kronig check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def angular(frequencies: np.ndarray) -> np.ndarray:
    return 2.0 * np.pi * np.asarray(frequencies, dtype=float)


def zarc(omega: np.ndarray, resistance: float, q: float, alpha: float) -> np.ndarray:
    """R || CPE: one depressed semicircle of diameter ``resistance`` (charge transfer across an interface)."""
    if resistance <= 0.0:
        return np.zeros_like(omega, dtype=complex)
    return resistance / (1.0 + resistance * q * (1j * omega) ** alpha)


def warburg_transmissive(omega: np.ndarray, resistance: float, tau: float) -> np.ndarray:
    """Finite-length Warburg with a transmissive boundary (diffusion across a layer into a reservoir).

    Z = R tanh(sqrt(j w tau)) / sqrt(j w tau): a 45 degree line at high frequency that bends to the real axis
    at R for w << 1/tau. Its low-frequency limit R/(1 + j w tau/3) is the first-order RC a time-domain model
    uses, with time constant tau/3.
    """
    if resistance <= 0.0:
        return np.zeros_like(omega, dtype=complex)
    x = np.sqrt(1j * omega * tau)
    return resistance * np.tanh(x) / x


def mixed_conductor_blocking(omega: np.ndarray, re: float, ri: float, tau: float) -> np.ndarray:
    """A mixed ion-electron conductor film between ion-blocking, electron-reversible electrodes (Jamnik-Maier).

    Z = Re||Ri + (Re^2/(Re + Ri)) tanh(x)/x with x = (pi/2) sqrt(j w tau), tau = L^2/(pi^2 D~) the longest
    chemical-diffusion time constant: Re||Ri at high frequency, Re at DC, and between them the transmissive
    finite-length Warburg of chemical diffusion across the film (each half-thickness L/2 diffuses from its
    electrode to the symmetry plane). See ``simulators.cells.blocking`` for the derivation.
    """
    r_par = re * ri / (re + ri)
    return r_par + warburg_transmissive(omega, re**2 / (re + ri), np.pi**2 * tau / 4.0)


def spherical_diffusion(omega: np.ndarray, capacitance: float, tau: float) -> np.ndarray:
    """Solid-state diffusion into spherical particles with a reflective centre (an intercalation cathode).

    With x = sqrt(j w tau_d), tau_d = R_p^2/D:  Z = -(tau_d/(3 C)) tanh(x) / (tanh(x) - x), where C = dQ/dU is
    the differential (intercalation) capacitance. At low frequency Z -> 1/(j w C) + tau_d/(15 C): the 1/15 is
    the same steady surface-concentration offset the time-domain model uses, so EIS and DC agree.
    """
    if capacitance <= 0.0 or not np.isfinite(capacitance):
        return np.zeros_like(omega, dtype=complex)
    x = np.sqrt(1j * omega * tau)
    z = np.empty_like(x)
    small = np.abs(x) < 1e-2
    # series expansion where tanh(x) - x loses all its digits
    xs = x[small]
    z[small] = 3.0 / (xs**2) + 0.2 - xs**2 / 175.0
    xl = x[~small]
    t = np.tanh(xl)
    z[~small] = -t / (t - xl)
    return (tau / (3.0 * capacitance)) * z


def capacitor(omega: np.ndarray, capacitance: float) -> np.ndarray:
    """An ideal series capacitor; ``inf`` capacitance means a short (no element)."""
    if not np.isfinite(capacitance):
        return np.zeros_like(omega, dtype=complex)
    return 1.0 / (1j * omega * capacitance)


def diffusion_reflective(omega: np.ndarray, capacitance: float, tau: float) -> np.ndarray:
    """Solid-state diffusion into a slab fed through one face, reflective at the other (an insertion host layer).

    With z = sqrt(j w tau), tau = L^2/D:  Z = (tau/C) coth(z)/z, C = dQ/dU the differential (intercalation)
    capacitance. At low frequency Z -> 1/(j w C) + tau/(3 C): the capacitor plus the steady surface offset tau/3
    of the slab's spectral (mode) solution; at high frequency the 45 degree Warburg line. ``tau`` = 0 is the
    bare capacitor (a host without diffusion).
    """
    if capacitance <= 0.0 or not np.isfinite(capacitance):
        return np.zeros_like(omega, dtype=complex)
    if tau <= 0.0:
        return capacitor(omega, capacitance)
    z = np.sqrt(1j * omega * tau)
    out = np.empty_like(z)
    small = np.abs(z) < 1e-2
    zs = z[small]
    out[small] = 1.0 / zs**2 + 1.0 / 3.0 - zs**2 / 45.0  # coth(z)/z, where coth loses its digits
    zl = z[~small]
    out[~small] = 1.0 / (np.tanh(zl) * zl)
    return (tau / capacitance) * out


# ---- amplitude: what an analyser measures on a nonlinear (Butler-Volmer) interface ----------------------------


@dataclass(frozen=True, slots=True)
class Interface:
    """A symmetric Butler-Volmer charge-transfer interface, I = 2 I0 sinh(eta/(2 V_T)), with its double layer
    (a CPE) in parallel: the ZARC whose small-signal diameter is R_ct = V_T/I0."""

    exchange_current: float
    """I0, A."""
    vt: float
    """RT/F, V."""
    q: float
    """CPE coefficient of the double layer, F s^(alpha - 1)."""
    alpha: float

    @property
    def resistance(self) -> float:
        return self.vt / self.exchange_current

    def small_signal(self, omega: np.ndarray) -> np.ndarray:
        return zarc(omega, self.resistance, self.q, self.alpha)


@dataclass(frozen=True, slots=True)
class EisCircuit:
    """A cell's spectrum as nonlinear interfaces in series with a linear rest (ohmic, diffusion, capacitors).

    ``linear`` gives the rest's impedance at angular frequencies > 0. The small-signal impedance is the plain sum;
    :func:`first_harmonic_impedance` gives what an analyser reads at a finite amplitude.
    """

    interfaces: tuple[Interface, ...]
    linear: Callable[[np.ndarray], np.ndarray]

    def small_signal(self, omega: np.ndarray) -> np.ndarray:
        z = np.asarray(self.linear(omega), dtype=complex)
        for interface in self.interfaces:
            z = z + interface.small_signal(omega)
        return z


def bv_potentiostatic_factor(amplitude: float, vt: float) -> float:
    """R_ct seen at the fundamental / small-signal R_ct, for a sine of ``amplitude`` (V) across a symmetric BV
    interface.

    sinh(a sin t) = 2 sum_{k odd} (-1)^((k-1)/2) I_k(a) sin(k t) (the modified-Bessel expansion of e^(a sin t)), so
    the fundamental current is 4 I0 I_1(a) with a = dV/(2 V_T), and R_1 = dV/(4 I0 I_1(a)) = R_ct a/(2 I_1(a)):
    below 1 (the current grows faster than the voltage), 1 - a^2/8 for small a.
    """
    a = amplitude / (2.0 * vt)
    if a < 1e-6:
        return 1.0 - a * a / 8.0
    from scipy import special  # here, not at import: only an EIS at a finite amplitude needs scipy

    return float(a / (2.0 * special.iv(1, a)))


def bv_galvanostatic_factor(amplitude: float, exchange_current: float) -> float:
    """R_ct seen at the fundamental / small-signal R_ct, for a sine current of ``amplitude`` (A) through a
    symmetric BV interface.

    eta = 2 V_T asinh(b sin t), b = dI/(2 I0). Its fundamental (1/pi) int asinh(b sin t) sin t dt, by parts
    (b/pi) int cos^2 t / sqrt(1 + b^2 sin^2 t) dt, is (4 b/pi)[K(-b^2) + (K(-b^2) - E(-b^2))/b^2] with the complete
    elliptic integrals of parameter m = -b^2; divided by b it is the factor: below 1 too (the overpotential grows
    slower than the current, Tafel-like), 1 - b^2/8 for small b.
    """
    b = amplitude / (2.0 * exchange_current)
    if b < 1e-4:
        return 1.0 - b * b / 8.0
    m = -b * b
    from scipy import special  # here, not at import: only an EIS at a finite amplitude needs scipy

    k, e = special.ellipk(m), special.ellipe(m)
    return float((4.0 / np.pi) * (k + (k - e) / (b * b)))


_NONLINEAR_FLOOR = 1e-7
"""Relative size of the amplitude effect (~a^2/8) below which a frequency keeps its small-signal impedance."""


def first_harmonic_impedance(
    circuit: EisCircuit, omega: np.ndarray, amplitude: float, mode: str = "potentio"
) -> np.ndarray:
    """The impedance an analyser measures, V_1/I_1 of the fundamental, under a sine of ``amplitude``.

    ``mode`` "potentio": a voltage sine of ``amplitude`` V across the cell; "galvano": a current sine of
    ``amplitude`` A. The cell is at rest (no DC bias), so with symmetric interfaces every signal is
    half-wave antisymmetric, x(t + T/2) = -x(t): odd harmonics only, no DC. Solved by harmonic balance on that
    half period: each interface voltage and the cell current are sampled on N/2 points; the interfaces' sinh
    acts pointwise in time, the double layers and the linear rest act on each odd harmonic in frequency, and
    Newton's method (vectorised over the frequencies) balances them. Frequencies where no interface sees enough
    voltage to matter keep the small-signal value. :func:`bv_potentiostatic_factor` and
    :func:`bv_galvanostatic_factor` are the closed-form limits for a bare interface.
    """
    omega = np.asarray(omega, dtype=float)
    small = circuit.small_signal(omega)
    if not circuit.interfaces or amplitude <= 0.0:
        return small
    drive = _drive(circuit, omega, small, amplitude, mode)
    busy = drive * drive / 8.0 >= _NONLINEAR_FLOOR
    if not busy.any():
        return small
    biggest = float(drive.max())
    # harmonics kept: N/2 - 1 odd ones; 64 samples keep the fundamental to 1e-8 up to 1 V across an interface
    n = 32 if biggest < 8.0 else 64
    out = small.copy()
    if mode == "galvano":
        out[busy] = _galvanostatic_balance(circuit, omega[busy], amplitude, n)
    else:
        out[busy] = _potentiostatic_balance(circuit, omega[busy], small[busy], amplitude, n)
    return out


def _drive(circuit: EisCircuit, omega: np.ndarray, small: np.ndarray, amplitude: float, mode: str) -> np.ndarray:
    """Per frequency, the largest a = eta/(2 V_T) any interface sees in the small-signal solution."""
    current = amplitude / np.abs(small) if mode != "galvano" else np.full(len(omega), amplitude)
    return np.max([current * np.abs(i.small_signal(omega)) / (2.0 * i.vt) for i in circuit.interfaces], axis=0)


def _half_wave_operator(response: np.ndarray, n: int) -> np.ndarray:
    """Real (N/2 x N/2) matrices, one per frequency, applying a response harmonic by harmonic to a half-wave
    antisymmetric signal given by its first half period.

    ``response`` has shape (F, n//2 + 1): the factor for harmonics 0..n/2 of each frequency's fundamental (only
    the odd ones act). The full-period operator A maps x = [x_h; -x_h] to y whose first half is
    (A[:m, :m] - A[:m, m:]) x_h.
    """
    m = n // 2
    basis = np.fft.rfft(np.eye(n), axis=0)  # (n//2 + 1, n): the harmonics of each unit sample
    full = np.fft.irfft(response[:, :, None] * basis[None], n=n, axis=1)
    return full[:, :m, :m] - full[:, :m, m:]


def _odd_responses(circuit: EisCircuit, omega: np.ndarray, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Double-layer admittances of each interface and the linear rest's impedance at the odd harmonics (the even
    ones, DC included, never occur: set to 0)."""
    h = np.arange(n // 2 + 1)
    odd = h[h % 2 == 1]
    w = np.outer(omega, odd).ravel()
    shape = (len(omega), len(odd))

    def spread(values: np.ndarray) -> np.ndarray:
        out = np.zeros((len(omega), len(h)), dtype=complex)
        out[:, odd] = values.reshape(shape)
        return out

    admittances = [spread(i.q * (1j * w) ** i.alpha) for i in circuit.interfaces]
    return admittances, spread(np.asarray(circuit.linear(w), dtype=complex))


def _half_period(phasors: np.ndarray, n: int) -> np.ndarray:
    """Samples Re(X e^(j theta)) of each frequency's phasor on the first half period."""
    theta = 2.0 * np.pi * np.arange(n // 2) / n
    return np.real(np.outer(phasors, np.exp(1j * theta)))


def _fundamental(half: np.ndarray, n: int) -> np.ndarray:
    """The phasor X of x = Re(X e^(j theta)) + higher odd harmonics, from its first half period."""
    theta = 2.0 * np.pi * np.arange(n // 2) / n
    return (4.0 / n) * (half @ np.exp(-1j * theta))


def _sinh_current(interface: Interface, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(I, dI/deta) of the interface's Butler-Volmer branch at overpotentials ``eta``."""
    x = eta / (2.0 * interface.vt)
    i0 = interface.exchange_current
    return 2.0 * i0 * np.sinh(x), (i0 / interface.vt) * np.cosh(x)


def _newton_limit(delta: np.ndarray, vt: float, voltages: int | None = None) -> np.ndarray:
    """Scale each frequency's Newton step so no interface voltage (the first ``voltages`` unknowns; all by
    default) moves by more than 4 V_T: sinh is steep, and a full step from far away overshoots."""
    biggest = np.max(np.abs(delta[:, :voltages]), axis=1, keepdims=True)
    return delta * np.minimum(1.0, 4.0 * vt / np.maximum(biggest, 1e-300))


def _potentiostatic_balance(
    circuit: EisCircuit, omega: np.ndarray, small: np.ndarray, amplitude: float, n: int
) -> np.ndarray:
    """Unknowns per frequency: each interface's voltage and the cell current on the half period. Rows: each
    interface passes the cell current (faradaic + double layer), and the voltages add up to the drive."""
    interfaces = circuit.interfaces
    k, m, f = len(interfaces), n // 2, len(omega)
    drive = amplitude * np.cos(2.0 * np.pi * np.arange(m) / n)
    admittances, rest = _odd_responses(circuit, omega, n)
    y_ops = [_half_wave_operator(a, n) for a in admittances]
    z_op = _half_wave_operator(rest, n)
    eye = np.eye(m)
    i1 = amplitude / small
    state = np.hstack([_half_period(i1 * i.small_signal(omega), n) for i in interfaces] + [_half_period(i1, n)])
    jac = np.zeros((f, (k + 1) * m, (k + 1) * m))
    jac[:, k * m :, k * m :] = z_op
    for j in range(k):
        jac[:, j * m : (j + 1) * m, k * m :] = -eye
        jac[:, k * m :, j * m : (j + 1) * m] = eye
    vt = min(i.vt for i in interfaces)
    for _ in range(200):
        current = state[:, k * m :]
        residual = np.empty_like(state)
        total = np.einsum("fab,fb->fa", z_op, current) - drive
        for j, interface in enumerate(interfaces):
            eta = state[:, j * m : (j + 1) * m]
            i_f, slope = _sinh_current(interface, eta)
            residual[:, j * m : (j + 1) * m] = i_f + np.einsum("fab,fb->fa", y_ops[j], eta) - current
            jac[:, j * m : (j + 1) * m, j * m : (j + 1) * m] = y_ops[j] + slope[:, :, None] * eye
            total += eta
        residual[:, k * m :] = total
        delta = np.linalg.solve(jac, -residual[:, :, None])[:, :, 0]
        state = state + _newton_limit(delta, vt, k * m)
        scale = float(np.max(np.abs(current)))
        if np.max(np.abs(residual[:, : k * m])) < 1e-12 * scale and np.max(np.abs(delta)) < 1e-12 * amplitude:
            break
    return amplitude / _fundamental(state[:, k * m :], n)


def _galvanostatic_balance(circuit: EisCircuit, omega: np.ndarray, amplitude: float, n: int) -> np.ndarray:
    """The current is imposed: each interface is solved alone (faradaic + double layer = the sine), then
    Z = Z_rest + sum of the interfaces' fundamental voltages over the current. Newton starts from the
    small-signal faradaic current put through the exact inverse (asinh) of Butler-Volmer."""
    m = n // 2
    current = amplitude * np.cos(2.0 * np.pi * np.arange(m) / n)
    admittances, _ = _odd_responses(circuit, omega, n)
    eye = np.eye(m)
    z = np.asarray(circuit.linear(omega), dtype=complex)
    for interface, admittance in zip(circuit.interfaces, admittances, strict=True):
        y_op = _half_wave_operator(admittance, n)
        faradaic = _half_period(amplitude * interface.small_signal(omega) / interface.resistance, n)
        eta = 2.0 * interface.vt * np.arcsinh(faradaic / (2.0 * interface.exchange_current))
        for _ in range(200):
            i_f, slope = _sinh_current(interface, eta)
            residual = i_f + np.einsum("fab,fb->fa", y_op, eta) - current
            delta = np.linalg.solve(y_op + slope[:, :, None] * eye, -residual[:, :, None])[:, :, 0]
            eta = eta + _newton_limit(delta, interface.vt)
            if np.max(np.abs(delta)) < 1e-13 * max(float(np.max(np.abs(eta))), interface.vt):
                break
        z = z + _fundamental(eta, n) / amplitude
    return z
