"""Equivalent-circuit elements, each the analytic impedance of a physical process (complex ohm, Z'' < 0 capacitive).

They are plain functions of angular frequency so that a model's spectrum is a readable sum of elements, and a
test can rebuild the same circuit independently. All of them are causal and linear, so any sum or parallel
combination passes a Kramers-Kronig check.
"""

from __future__ import annotations

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
