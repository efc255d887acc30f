"""EIS figures: Nyquist (-Z'' up against Z', equal aspect so that a semicircle looks like one) and Bode (|Z| and
-phase against frequency), the measured points as markers and the fitted equivalent circuit as a line.

The spectra and fits are :mod:`station.analysis.eis`'s (each EIS step execution one spectrum, the cell kind's
default circuit), so the curve drawn is the fit ``station analyze`` reports. The fitted curve is evaluated on
:data:`FIT_POINTS` log-spaced frequencies across the measured band. A fit that does not converge leaves the
measured points alone, and their legend entry says so.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from station.analysis.eis import EisFit, Spectrum, fit_spectrum, spectra
from station.analysis.run_data import RunData
from station.plots.axes import Colour, cycle_colours, finish, new_figure, run_colours
from station.plots.selection import pick

#: points of the fitted curve across the measured band
FIT_POINTS = 200


def fit_frequencies(spectrum: Spectrum) -> np.ndarray:
    """Where the fitted curve is drawn: log-spaced from the highest to the lowest measured frequency."""
    f = spectrum.frequency_hz[np.isfinite(spectrum.frequency_hz) & (spectrum.frequency_hz > 0)]
    return np.geomspace(float(f.max()), float(f.min()), FIT_POINTS)


def chosen_spectra(run: RunData, cycles: Collection[int] | None) -> list[Spectrum]:
    """The run's spectra, or those measured in the chosen cycles."""
    found = spectra(run)
    picked = set(pick(run, sorted({s.cycle for s in found}), cycles, "cycle with an EIS spectrum"))
    return [s for s in found if s.cycle in picked]


def spectrum_label(run: RunData, spectrum: Spectrum, several: bool) -> str:
    """The run's label, with the lithiation state (P7 before/after) and, when a run has several spectra, the cycle
    and step each was measured in."""
    label = run.label
    if run.lithiation:
        label += f", {run.lithiation} lithiation"
    return f"{label}, cycle {spectrum.cycle} step {spectrum.step_index}" if several else label


#: fits already made in this process, by cell kind and the spectrum's bytes: a Nyquist and a Bode of the same run
#: (or a notebook redrawing one) fit once; bounded, since a long session may plot many spectra
_FITS: dict[tuple, EisFit | None] = {}
_FITS_KEPT = 64


def fitted(run: RunData, spectrum: Spectrum) -> EisFit | None:
    """The default-circuit fit of the cell's kind, or None when it does not converge."""
    key = (run.cell.model_type, spectrum.frequency_hz.tobytes(), spectrum.z_real_ohm.tobytes(),
           spectrum.z_imag_ohm.tobytes())
    if key not in _FITS:
        try:
            fit: EisFit | None = fit_spectrum(spectrum, None, run.cell.model_type)
        except ValueError:
            fit = None
        if len(_FITS) >= _FITS_KEPT:
            _FITS.pop(next(iter(_FITS)))
        _FITS[key] = fit
    return _FITS[key]


def figure(runs: Sequence[RunData], kind: str, cycles: Collection[int] | None = None) -> Figure:
    """Nyquist (``kind="nyquist"``) or Bode (``kind="bode"``) of every spectrum of ``runs``."""
    nyquist = kind == "nyquist"
    fig, axes = new_figure(1 if nyquist else 2, sharex=True, height=4.8 if nyquist else 5.6)
    circuits: list[str] = []
    for run, colour in zip(runs, run_colours(len(runs)), strict=True):
        chosen = chosen_spectra(run, cycles)
        shades = cycle_colours(None if len(runs) == 1 and len(chosen) > 1 else colour, len(chosen))
        if len(chosen) == 1:
            shades = [colour]
        for spectrum, shade in zip(chosen, shades, strict=True):
            fit = fitted(run, spectrum)
            if fit is not None and fit.circuit not in circuits:
                circuits.append(fit.circuit)
            label = spectrum_label(run, spectrum, len(chosen) > 1) + ("" if fit else " (fit did not converge)")
            gid = f"{run.run_id} cycle {spectrum.cycle} step {spectrum.step_index}"
            if nyquist:
                _nyquist(axes[0], spectrum, fit, shade, label, gid)
            else:
                _bode(axes, spectrum, fit, shade, label, gid)
    if circuits:  # which line is which: the legend names the runs, this the two kinds of mark
        axes[0].set_title(f"markers: measured; lines: fitted {', '.join(circuits)}", fontsize="small")
    if nyquist:
        ax = axes[0]
        ax.set_xlabel("Z′ (Ω)")
        ax.set_ylabel("−Z″ (Ω)")
        ax.set_aspect("equal", adjustable="datalim")
        ax.axhline(0.0, color="0.6", linewidth=0.6)
    else:
        axes[0].set_xscale("log")
        axes[0].set_yscale("log")
        axes[0].set_ylabel("|Z| (Ω)")
        low, high = axes[0].dataLim.intervaly
        if low > 0 and high < 10 * low:  # a range inside one decade is labelled on minor ticks: 35, not 3.5x10^1
            plain = FuncFormatter(lambda value, _pos: f"{value:g}")
            axes[0].yaxis.set_major_formatter(plain)
            axes[0].yaxis.set_minor_formatter(plain)
        axes[1].set_ylabel("−Phase (°)")
        axes[1].set_xlabel("Frequency (Hz)")
    return finish(fig, axes[:1])


def _nyquist(ax: Axes, spectrum: Spectrum, fit: EisFit | None, colour: Colour, label: str, gid: str) -> None:
    ax.plot(spectrum.z_real_ohm, -spectrum.z_imag_ohm, linestyle="none", marker="o", markersize=3.5, color=colour,
            markerfacecolor="none", label=label, gid=f"{gid} measured")
    if fit is not None:
        z = fit.predict(fit_frequencies(spectrum))
        ax.plot(z.real, -z.imag, color=colour, linewidth=1.2, label="_nolegend_", gid=f"{gid} fit {fit.circuit}")


def _bode(axes: list[Axes], spectrum: Spectrum, fit: EisFit | None, colour: Colour, label: str, gid: str) -> None:
    z = spectrum.z
    axes[0].plot(spectrum.frequency_hz, np.abs(z), linestyle="none", marker="o", markersize=3.5, color=colour,
                 markerfacecolor="none", label=label, gid=f"{gid} measured modulus")
    axes[1].plot(spectrum.frequency_hz, -np.degrees(np.angle(z)), linestyle="none", marker="o", markersize=3.5,
                 color=colour, markerfacecolor="none", gid=f"{gid} measured phase")
    if fit is not None:
        f = fit_frequencies(spectrum)
        zf = fit.predict(f)
        axes[0].plot(f, np.abs(zf), color=colour, linewidth=1.2, gid=f"{gid} fit modulus {fit.circuit}")
        axes[1].plot(f, -np.degrees(np.angle(zf)), color=colour, linewidth=1.2, gid=f"{gid} fit phase {fit.circuit}")
