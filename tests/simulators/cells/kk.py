"""Linear Kramers-Kronig test (Schoenleber et al., Electrochim. Acta 131 (2014) 20): fit a Voigt chain.

Any causal, linear, stable impedance is representable by R0 + sum R_k/(1 + j w tau_k) (+ a series C for a
blocking low-frequency end) with fixed, log-spaced tau_k; the fit is linear least squares on the real and
imaginary parts together. Residuals of a KK-consistent spectrum are at the numerical noise floor.
"""

from __future__ import annotations

import numpy as np


def lin_kk_residuals(freq: np.ndarray, z: np.ndarray, per_decade: int = 6) -> np.ndarray:
    """Relative residuals |Z - Z_fit| / |Z| of the Voigt-chain fit at each frequency."""
    w = 2 * np.pi * np.asarray(freq)
    tmin, tmax = 1 / w.max(), 1 / w.min()
    m = int(np.ceil(np.log10(tmax / tmin) * per_decade)) + 1
    taus = np.logspace(np.log10(tmin) - 0.5, np.log10(tmax) + 0.5, m + 2)
    cols = [np.ones_like(w, dtype=complex)]
    cols += [1.0 / (1.0 + 1j * w * tau) for tau in taus]
    cols.append(1.0 / (1j * w))  # series capacitance (as 1/C)
    a = np.array(cols).T
    a_ri = np.vstack([a.real, a.imag])
    b_ri = np.concatenate([z.real, z.imag])
    weight = np.concatenate([1 / np.abs(z), 1 / np.abs(z)])
    coef, *_ = np.linalg.lstsq(a_ri * weight[:, None], b_ri * weight, rcond=None)
    fit = a @ coef
    return np.abs(z - fit) / np.abs(z)
