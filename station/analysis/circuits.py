"""Equivalent circuits for EIS fits: the default circuit of each cell kind, circuit-string checks and initial
guesses read from the spectrum itself.

The defaults follow what each simulated cell model (``simulators/cells``) puts in its spectrum, so a fit recovers
the model's own parameters; a real cell of the same kind has the same physics:

* ``blocking`` (a mixed ion-electron conductor between Li-ion blocking electrodes, P7): ``p(R0-Ws0,C0)``. R0 is
  Re||Ri (the total conductivity path, plus any contact resistance), Ws0 the finite-length (transmissive)
  Warburg of chemical diffusion across the film (Z0 = Re^2/(Re + Ri), tau = L^2/(4 D~)), C0 the film's
  geometric (dielectric) capacitance. When the spectrum stops on the 45 degree line (the lowest frequency is
  still far above 1/tau) Z0 and tau cannot be told apart; the fit then uses the semi-infinite ``p(R0-W0,C0)``
  (A_W = Z0/sqrt(2 tau)), see :func:`semi_infinite_variant`.
* Li half cells (``li-host``, ``li-llto``, ``li-cu``) and Li|NCM full cells (``ncm622-li``,
  ``ncm622-anode-free``): ``R0-p(R1,CPE1)-p(R2,CPE2)-CPE3``. R0 the ohmic resistance, two charge-transfer arcs
  (working electrode and Li counter electrode, or Li anode and cathode) with their double layers as CPEs, and a
  low-frequency CPE that is the diffusion tail: alpha near 0.5 is a Warburg line (diffusion into the host or
  cathode), near 1 a capacitor (a host with nothing to diffuse into, or the intercalation capacitance reached).
  A CPE rather than a Warburg because one element then fits both ends without a choice made beforehand.
* ``dummy-cell`` (the R/C test box): ``R0-p(R1,R2-C2)``, its exact network.

Any other circuit is given in impedance.py's syntax (e.g. ``"R0-p(R1,CPE1)-W1"``) and overrides the default.
"""

from __future__ import annotations

import math
import re

import numpy as np

BLOCKING = "p(R0-Ws0,C0)"
BLOCKING_SEMI_INFINITE = "p(R0-W0,C0)"
TWO_ARCS = "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3"
DUMMY = "R0-p(R1,R2-C2)"

DEFAULT_CIRCUITS: dict[str, str] = {
    "blocking": BLOCKING,
    "li-host": TWO_ARCS,
    "li-llto": TWO_ARCS,
    "li-cu": TWO_ARCS,
    "ncm622-li": TWO_ARCS,
    "ncm622-anode-free": TWO_ARCS,
    "dummy-cell": DUMMY,
}
"""Default circuit per cell model type (``Cell.model_type``); a cell of no listed kind gets :data:`TWO_ARCS`."""

#: elements a circuit string may use, with their parameter count (impedance.py's circuit elements we support)
ELEMENT_PARAMS: dict[str, int] = {"R": 1, "C": 1, "L": 1, "W": 1, "Wo": 2, "Ws": 2, "CPE": 2, "La": 2, "G": 2,
                                  "Zarc": 3}
_ELEMENT = re.compile(r"^([A-Za-z]+?)(\d+|_\w+)$")
_TOKEN = re.compile(r"p\(|[(),\-]|[A-Za-z]+_?\w*")


class CircuitError(ValueError):
    """A circuit string the fit cannot use; the message is one line naming the circuit and the fix."""


def default_circuit(cell_kind: str | None) -> str:
    """The circuit a spectrum of a cell of model type ``cell_kind`` is fitted with when none is given."""
    return DEFAULT_CIRCUITS.get(cell_kind or "", TWO_ARCS)


def elements(circuit: str) -> list[str]:
    """The element names of ``circuit`` in order (``"R0"``, ``"CPE1"``, ...), checked: a malformed string, an
    unknown element or a repeated name raises :class:`CircuitError`."""
    text = circuit.replace(" ", "")
    hint = 'use impedance.py syntax, e.g. "R0-p(R1,CPE1)-W1"'
    if not text:
        raise CircuitError(f"empty EIS circuit: {hint}")
    tokens = _TOKEN.findall(text)
    if "".join(tokens) != text:
        raise CircuitError(f"EIS circuit {circuit!r} has characters it cannot read: {hint}")
    groups: list[bool] = []  # per open p(...): whether it has a ',' yet
    names: list[str] = []
    expect_term = True
    for token in tokens:
        if token == "p(":
            if not expect_term:
                raise CircuitError(f"EIS circuit {circuit!r}: 'p(' must follow '-', ',' or '(': {hint}")
            groups.append(False)
        elif token in ("-", ","):
            if expect_term or (token == "," and not groups):
                raise CircuitError(f"EIS circuit {circuit!r}: misplaced {token!r}: {hint}")
            if token == ",":
                groups[-1] = True
            expect_term = True
        elif token == ")":
            if not groups or expect_term:
                raise CircuitError(f"EIS circuit {circuit!r}: unbalanced ')': {hint}")
            if not groups.pop():
                raise CircuitError(f"EIS circuit {circuit!r}: a parallel group p(...) needs two branches "
                                   f"separated by ',': {hint}")
            expect_term = False
        elif token == "(":
            raise CircuitError(f"EIS circuit {circuit!r}: a bare '(' (parallel groups are 'p(...)'): {hint}")
        else:
            match = _ELEMENT.match(token)
            if not expect_term or match is None:
                raise CircuitError(f"EIS circuit {circuit!r}: element {token!r} needs a kind and a number: {hint}")
            if match.group(1) not in ELEMENT_PARAMS:
                known = ", ".join(ELEMENT_PARAMS)
                raise CircuitError(f"EIS circuit {circuit!r}: unknown element {token!r}; known kinds: {known}")
            if token in names:
                raise CircuitError(f"EIS circuit {circuit!r}: element {token!r} appears twice; number each one")
            names.append(token)
            expect_term = False
    if groups or expect_term:
        raise CircuitError(f"EIS circuit {circuit!r} is incomplete (unclosed 'p(' or a trailing '-'): {hint}")
    return names


def kind(element: str) -> str:
    """``"CPE"`` of ``"CPE1"``."""
    match = _ELEMENT.match(element)
    return match.group(1) if match else element


def _top_level(circuit: str) -> set[str]:
    """Elements in series at the top level (outside every ``p(...)``)."""
    depth, top = 0, set()
    for token in _TOKEN.findall(circuit.replace(" ", "")):
        if token == "p(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif token not in ("-", ",", "(") and depth == 0:
            top.add(token)
    return top


def semi_infinite_variant(circuit: str) -> str | None:
    """The circuit with its finite-length Warburg ``Ws``/``Wo`` elements replaced by the semi-infinite ``W``, or
    None when it has none: used when the spectrum never reaches the frequencies where they bend."""
    swapped = re.sub(r"\bW[so](\d+|_\w+)\b", r"W\1", circuit)
    return None if swapped == circuit else swapped


# ---- initial guesses ---------------------------------------------------------------------------------------


def hf_estimate(freq: np.ndarray, z: np.ndarray) -> float:
    """A first estimate of the high-frequency (series) resistance: the real part where -Z'' crosses zero at the
    high-frequency end, else the highest-frequency point's Z' less its -Z'' (the arc's foot rises at ~45 degrees
    or steeper), never below a tenth of it."""
    order = np.argsort(freq)[::-1]
    crossing = hf_crossing(freq, z)
    if crossing is not None:
        return crossing
    top = z[order[0]]
    return float(max(top.real + top.imag, 0.1 * top.real, 1e-9))


def hf_crossing(freq: np.ndarray, z: np.ndarray) -> float | None:
    """Z' where -Z'' changes sign at the high-frequency end (inductive above, capacitive below), interpolated
    linearly between the two points around it; None when the highest frequency is already capacitive."""
    order = np.argsort(freq)[::-1]
    neg_imag = -z.imag[order]
    if neg_imag[0] >= 0.0:
        return None
    above = np.nonzero(neg_imag >= 0.0)[0]
    if above.size == 0:
        return None
    k = int(above[0])
    z_a, z_b = z[order[k - 1]], z[order[k]]
    neg_a, neg_b = -z_a.imag, -z_b.imag
    w = -neg_a / (neg_b - neg_a)  # neg_a < 0 <= neg_b: the zero lies between them
    return float(z_a.real + w * (z_b.real - z_a.real))


MIN_ARC_SHARE = 0.03
"""An arc narrower than 3 % of the spectrum's whole Z' rise is taken for noise in the derivative, not an arc."""


def arcs(freq: np.ndarray, z: np.ndarray, smoothing: float = 0.3) -> list[tuple[float, float]]:
    """(frequency, width) of each arc, high frequency first, read from dZ'/dln f: an R||C adds its R to Z' over
    about a decade around 1/(2 pi R C), so each arc is a local maximum of that derivative (even where -Z'' shows
    only a shoulder), its width the Z' gained between the derivative's valleys on either side. A rise that goes
    on to the lowest frequency is the diffusion tail, not an arc. The derivative is averaged over ``smoothing``
    decades (a triangular window) so that measurement noise does not make arcs of its own."""
    order = np.argsort(freq)[::-1]
    f, zr = freq[order], z.real[order]
    if len(f) < 4:
        return []
    gain = np.diff(zr)
    slope = gain / np.maximum(-np.diff(np.log(f)), 1e-12)
    per_decade = (len(f) - 1) / max(math.log10(f[0] / f[-1]), 1e-9)
    half = max(1, round(smoothing * per_decade / 2.0))
    window = np.concatenate([np.arange(1, half + 2), np.arange(half, 0, -1)]).astype(float)
    smooth = np.convolve(np.pad(slope, half, mode="edge"), window / window.sum(), mode="valid")
    n = len(smooth)
    span = max(float(zr.max() - zr.min()), 1e-12)
    peaks = [k for k in range(n) if (k == 0 or smooth[k] > smooth[k - 1]) and (k == n - 1 or smooth[k] >= smooth[k + 1])
             and k != n - 1]
    out = []
    for k in peaks:
        lo = k
        while lo > 0 and smooth[lo - 1] < smooth[lo]:
            lo -= 1
        hi = k
        while hi < n - 1 and smooth[hi + 1] <= smooth[hi]:
            hi += 1
        width = float(np.sum(gain[lo : hi + 1]))
        if width > MIN_ARC_SHARE * span:
            out.append((float(math.sqrt(f[k] * f[k + 1])), width))
    return out


def initial_guesses(circuit: str, freq: np.ndarray, z: np.ndarray) -> list[list[float]]:
    """Distinct starting points for a fit, the preferred first: the arcs read at two smoothings and, as a last
    resort, arcs spread evenly around the middle of the band (when the derivative shows none clearly)."""
    out: list[list[float]] = []
    for smoothing in (0.3, 0.7, None):
        guess = initial_guess(circuit, freq, z, smoothing)
        if not any(np.allclose(guess, g, rtol=1e-6) for g in out):
            out.append(guess)
    return out


def initial_guess(circuit: str, freq: np.ndarray, z: np.ndarray, smoothing: float | None = 0.3) -> list[float]:
    """Initial parameter values for ``circuit`` from the spectrum: nothing here is a constant tuned to one cell.

    * the first resistor in series at the top level is the high-frequency intercept (:func:`hf_estimate`);
    * capacitors and CPEs inside parallel groups (and ZARCs) are arcs: in circuit order (high frequency first,
      as circuits are written) they take the arcs :func:`arcs` finds (``smoothing`` None: none found), their
      time constant from the arc's frequency and their resistance from its width, which the other resistors
      take in the same order; arcs the spectrum does not show are spread around the last one seen;
    * series capacitors, CPEs and Warburgs form the low-frequency tail and are sized from the lowest-frequency
      point, a CPE's exponent from the tail's log-log slope;
    * a finite Warburg's time constant is 1/omega at the lowest frequency.
    """
    names = elements(circuit)
    if circuit.replace(" ", "") in (BLOCKING, BLOCKING_SEMI_INFINITE):
        return blocking_guess(circuit, freq, z)
    top = _top_level(circuit)
    r_hf = hf_estimate(freq, z)
    found = arcs(freq, z, smoothing) if smoothing is not None else []
    lf, hf = int(np.argmin(freq)), int(np.argmax(freq))
    w_lf, w_hf = 2.0 * math.pi * float(freq[lf]), 2.0 * math.pi * float(freq[hf])
    neg_lf = max(float(-z[lf].imag), 1e-6 * max(r_hf, 1e-9))
    series_r = [n for n in names if kind(n) == "R" and n in top]
    first_r = series_r[0] if series_r else next((n for n in names if kind(n) == "R"), None)
    other_r = [n for n in names if kind(n) == "R" and n != first_r]
    arc_caps = [n for n in names if kind(n) == "Zarc" or (kind(n) in ("C", "CPE") and n not in top)]
    width = sum(w for _, w in found) if found else max(float(np.max(z.real)) - r_hf, 1e-3 * max(r_hf, 1e-9))
    f_mid = float(math.sqrt(freq.max() * freq.min()))
    if len(found) < len(arc_caps):  # fewer arcs seen than the circuit has: spread the rest around the others
        spread = np.geomspace(4.0, 0.25, len(arc_caps) - len(found) + 1)
        base = found[-1] if found else (f_mid, width)
        extra = [(base[0] * s, base[1] / len(spread)) for s in spread]
        found = found[:-1] + extra if found else extra
    found = sorted(found, key=lambda a: -a[0])
    if len(found) > len(arc_caps):  # keep the widest, in frequency order
        keep = sorted(sorted(found, key=lambda a: -a[1])[: max(len(arc_caps), 1)], key=lambda a: -a[0])
        found = keep
    r_arc = [max(w, 1e-3 * max(r_hf, 1e-9)) for _, w in found] or [width]
    tail_alpha = _tail_exponent(freq, z)
    guess: list[float] = []
    for name in names:
        k = kind(name)
        if k == "R":
            guess.append(r_hf if name == first_r else r_arc[min(other_r.index(name), len(r_arc) - 1)])
        elif name in arc_caps:
            f_c, r_local = found[min(arc_caps.index(name), len(found) - 1)]
            r_local = max(r_local, 1e-3 * max(r_hf, 1e-9))
            w_c = 2.0 * math.pi * f_c
            if k == "C":
                guess.append(1.0 / (w_c * r_local))
            elif k == "CPE":
                guess += [1.0 / (r_local * w_c**0.85), 0.85]
            else:
                guess += [r_local, 1.0 / w_c, 0.85]
        elif k == "C":
            guess.append(1.0 / (w_lf * neg_lf))
        elif k == "CPE":
            guess += [math.sin(tail_alpha * math.pi / 2.0) / (neg_lf * w_lf**tail_alpha), tail_alpha]
        elif k == "W":
            guess.append(neg_lf * math.sqrt(w_lf))
        elif k in ("Ws", "Wo"):
            guess += [neg_lf * math.sqrt(2.0), 1.0 / w_lf]
        elif k in ("L", "La"):  # lead inductance: from an inductive top point, else a thousandth of |Z| there
            inductance = max(float(z[hf].imag), 1e-3 * float(abs(z[hf]))) / w_hf
            guess += [inductance] if k == "L" else [inductance, 0.9]
        elif k == "G":
            guess += [width, 1.0 / (2.0 * math.pi * f_mid)]
    return guess


def blocking_guess(circuit: str, freq: np.ndarray, z: np.ndarray) -> list[float]:
    """Initial values for the blocking circuits ``p(R0-W0,C0)`` / ``p(R0-Ws0,C0)`` from the spectrum.

    R0 is Z' where -Z'' is lowest (the plateau between the dielectric arc and the diffusion line); C0 the
    admittance's imaginary part over omega at the highest frequency (the R0 branch is nearly real there); the
    Warburg is what remains at the lowest frequency once C0 is taken off and R0 subtracted: A_W = |Z_W| sqrt(w/2)
    (its modulus is A_W sqrt(2/w)), and for ``Ws`` Z0 = A_W sqrt(2 tau) with tau = 1/omega_min, where the
    band ends.
    """
    hf, lf = int(np.argmax(freq)), int(np.argmin(freq))
    w_hf, w_lf = 2.0 * math.pi * float(freq[hf]), 2.0 * math.pi * float(freq[lf])
    plateau = int(np.argmin(np.abs(z.imag)))
    r0 = float(max(z[plateau].real, 1e-9))
    c0 = float(max((1.0 / z[hf]).imag / w_hf, 1e-15))
    branch = 1.0 / (1.0 / z[lf] - 1j * w_lf * c0) - r0
    a_w = float(max(abs(branch) * math.sqrt(w_lf / 2.0), 1e-9 * r0))
    if "Ws" in circuit:
        tau = 1.0 / w_lf
        return [r0, a_w * math.sqrt(2.0 * tau), tau, c0]
    return [r0, a_w, c0]


def _tail_exponent(freq: np.ndarray, z: np.ndarray) -> float:
    """-d log(-Z'')/d log(omega) over the lowest decade (or the lowest three points): 0.5 on a Warburg line, 1
    on a capacitor; clipped to 0.3..1."""
    order = np.argsort(freq)
    f, neg = freq[order], -z.imag[order]
    n = max(3, int(np.sum(f <= 10.0 * f[0])))
    f, neg = f[:n], neg[:n]
    ok = neg > 0
    if ok.sum() < 2:
        return 0.8
    slope = np.polyfit(np.log(f[ok]), np.log(neg[ok]), 1)[0]
    return float(min(max(-slope, 0.3), 1.0))
