"""The paper's figures (DESIGN section 1) made from dry runs, checked by the data they draw, not by their pixels.

Every figure's lines, markers and bars are compared with numbers the test computes itself from the records (or
the simulated cells' parameters) by another route than the figure code. Each figure is also written as a PNG to a
temporary directory and, when STATION_TEST_ARTEFACTS names a directory, copied there for a person to look at.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from station import plots
from station.analysis.dqdv import dqdv
from station.analysis.run_data import RunData
from station.plots.axes import capacity_unit
from station.plots.impedance import FIT_POINTS
from station.plots.selection import parse_cycles

AREA_CM2 = np.pi * 0.6**2  # the library's 12 mm disks
NCM_MASS_G = 12.9e-3  # predeposited-ncm622: 12.9 mg of NCM622
FILM_M = 45e-6  # host-blocking: 45 um
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

LITHIATED_CELL = """\
name: host-blocking-lithiated
description: the LLTO@CNT host after lithiation, between Li-ion blocking electrodes (test cell)
diameter: 12 mm
thickness: 45 um
ocv: 0 V
limits:
  voltage: [-1.5 V, 1.5 V]
  current: 10 mA
temperature: 27 degC
model: {type: blocking, electronic_conductivity: 0.01, ionic_conductivity: 0.004}
"""
#: sigma_e, sigma_i in S/m of the simulated films: the blocking model's defaults, and the lithiated test cell's
SIGMA = {"before": (2e-3, 1e-2), "after": (1e-2, 4e-3)}


# ---- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keep(tmp_path_factory: pytest.TempPathFactory):
    """``keep(fig, name)``: write the figure as a PNG (and copy it to $STATION_TEST_ARTEFACTS when set)."""
    out = tmp_path_factory.mktemp("figures")
    artefacts = os.environ.get("STATION_TEST_ARTEFACTS")

    def save(fig: Figure, name: str) -> Path:
        path = plots.save(fig, out / f"{name}.png")
        assert path.read_bytes()[:8] == PNG_MAGIC
        if artefacts:
            Path(artefacts).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(artefacts) / path.name)
        return path

    return save


def named(data: RunData, sample: str, lithiation: str | None = None) -> RunData:
    """A dry run given the sample id (and lithiation state) a campaign would give it."""
    return dataclasses.replace(data, sample_id=sample, lithiation=lithiation)


@pytest.fixture(scope="module")
def p1(dry_run) -> list[RunData]:
    params = {"plate_capacity": "0.5mAh/cm^2", "rest_time": "10min"}
    return [named(dry_run("p1-li-deposition", "host-cu-li", **params), "LLTO@CNT"),
            named(dry_run("p1-li-deposition", "cu-li", **params), "Cu")]


@pytest.fixture(scope="module")
def p2(dry_run) -> list[RunData]:
    return [named(dry_run("p2-plating-stripping-ce", "host-cu-li", cycles=3), "LLTO@CNT"),
            named(dry_run("p2-plating-stripping-ce", "cu-li", cycles=3), "Cu")]


@pytest.fixture(scope="module")
def p3(dry_run) -> RunData:
    return named(dry_run("p3-full-cell-cycling", "predeposited-ncm622", cycles=3), "NCM622|Li@host")


@pytest.fixture(scope="module")
def p7(dry_run, tmp_path_factory: pytest.TempPathFactory) -> list[RunData]:
    lithiated = tmp_path_factory.mktemp("cells") / "host-blocking-lithiated.yaml"
    lithiated.write_text(LITHIATED_CELL, encoding="utf-8")
    return [named(dry_run("p7-conductivity", "host-blocking"), "host", "before"),
            named(dry_run("p7-conductivity", str(lithiated)), "host", "after")]


@pytest.fixture(scope="module")
def p6(dry_run) -> RunData:
    return named(dry_run("p6-cyclic-voltammetry", "host-cu-li", scan_rate="1mV/s", cycles=2), "LLTO@CNT")


# ---- helpers -----------------------------------------------------------------------------------------------------


def lines(ax: Axes) -> dict[str, object]:
    """The axes' lines by their gid (every figure line carries one naming its run and what it is)."""
    return {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}


def legend(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def step_ends(data: RunData) -> dict[tuple[int, int], float]:
    """{(cycle, step index): signed Ah at the step's last record}, by a plain loop over the records."""
    ends: dict[tuple[int, int], float] = {}
    for rec in data.records:
        ends[(int(rec["cycle"]), int(rec["step_index"]))] = float(rec["capacity"])
    return ends


def rows_of(data: RunData, cycle: int, step: int) -> np.ndarray:
    r = data.records
    return r[(r["cycle"] == cycle) & (r["step_index"] == step)]


# ---- voltage profiles: plating on the host and on Cu ---------------------------------------------------------------


def test_plating_profiles_on_host_and_cu_are_voltage_against_time(p1, keep) -> None:
    fig = plots.figure(p1, "voltage")
    keep(fig, "voltage-p1-plating-host-vs-cu")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Time (h)" and ax.get_ylabel() == "Voltage (V)"
    assert legend(ax) == ["LLTO@CNT", "Cu"]
    drawn = lines(ax)
    for run in p1:
        line = drawn[f"{run.run_id} time"]
        np.testing.assert_array_equal(line.get_xdata(), run.records["test_time"] / 3600.0)
        np.testing.assert_array_equal(line.get_ydata(), run.records["voltage"])
    # the host takes up Li before 0 V, Cu almost none: read on the time axis at 0.5 mA/cm^2, the time each curve
    # takes from leaving the rest's OCV to reaching 0 V is the lithiation capacity the records count in step 2
    host, cu = p1
    for run in p1:
        line = drawn[f"{run.run_id} time"]
        t, v = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        step = run.records["step_index"]
        start, reach = t[step == 1][-1], t[step == 2][-1]  # leaving the rest's OCV; the 0 V termination
        assert v[step == 2][-1] == pytest.approx(0.0, abs=5e-3)
        counted = abs(step_ends(run)[(1, 2)]) * 1e3 / AREA_CM2  # mAh/cm^2
        assert (reach - start) * 0.5 == pytest.approx(counted, rel=0.02)
    assert abs(step_ends(host)[(1, 2)]) > 10 * abs(step_ends(cu)[(1, 2)])


def test_plating_cycle_profiles_are_areal_and_start_each_cycle_at_zero(p2, keep) -> None:
    host = p2[0]
    fig = plots.figure([host], "voltage", cycles=[2, 3])
    keep(fig, "voltage-p2-plating-stripping-cycles")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Areal capacity (mAh/cm²)" and ax.get_ylabel() == "Voltage (V)"
    assert legend(ax) == ["LLTO@CNT, cycle 2", "LLTO@CNT, cycle 3"]
    drawn = lines(ax)
    assert sorted(drawn) == sorted(f"{host.run_id} cycle {c} {d}" for c in (2, 3) for d in ("charge", "discharge"))
    ends = step_ends(host)
    for cycle in (2, 3):
        plate, strip = drawn[f"{host.run_id} cycle {cycle} discharge"], drawn[f"{host.run_id} cycle {cycle} charge"]
        for line, step in ((plate, 3), (strip, 4)):
            part = rows_of(host, cycle, step)
            np.testing.assert_allclose(line.get_xdata(), np.abs(part["capacity"]) * 1e3 / AREA_CM2, rtol=1e-12)
            np.testing.assert_array_equal(line.get_ydata(), part["voltage"])
            assert line.get_xdata()[-1] == pytest.approx(abs(ends[(cycle, step)]) * 1e3 / AREA_CM2, rel=1e-12)
        # plating stops at the protocol's 2 mAh/cm^2; Li plates below 0 V and strips above it
        assert plate.get_xdata()[-1] == pytest.approx(2.0, rel=2e-3)
        assert np.median(plate.get_ydata()) < 0.0 < np.median(strip.get_ydata())
        assert strip.get_ydata()[-1] == pytest.approx(1.0, abs=0.02)  # the strip cut-off


# ---- CE per cycle: host against Cu -------------------------------------------------------------------------------


def test_ce_per_cycle_of_li_on_host_and_on_cu(p2, keep) -> None:
    fig = plots.figure(p2, "ce")
    keep(fig, "ce-p2-host-vs-cu")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Cycle number" and ax.get_ylabel() == "Coulombic efficiency (%)"
    assert legend(ax) == ["LLTO@CNT", "Cu"]
    drawn = lines(ax)
    ce = {}
    for run in p2:
        ends = step_ends(run)
        cycles = [2, 3, 4]  # cycle 1 is the lithiation (rest + discharge to 0 V): no CE
        expected = [100 * ends[(c, 4)] / -ends[(c, 3)] for c in cycles]  # stripped / plated
        line = drawn[f"{run.run_id} ce"]
        np.testing.assert_array_equal(line.get_xdata(), cycles)
        np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12)
        ce[run.sample_id] = np.asarray(expected)
    # the paper's point: after the first cycle Li cycles more reversibly on the host than on bare Cu
    assert np.all(ce["LLTO@CNT"][1:] > ce["Cu"][1:])
    assert np.all(ce["LLTO@CNT"] < 100.0) and np.all(ce["Cu"] < 100.0)


# ---- full cell: capacity per mass, CE and retention over cycles ---------------------------------------------------


def full_cell_cycles(run: RunData) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(cycles, charge Ah, discharge Ah) of P3 from the step ends: formation steps 2/3, cycling steps 5/6."""
    ends = step_ends(run)
    cycles = sorted({c for c, s in ends if s in (2, 3, 5, 6)})
    charge = np.array([sum(q for (c, s), q in ends.items() if c == cyc and q > 0) for cyc in cycles])
    discharge = np.array([sum(-q for (c, s), q in ends.items() if c == cyc and q < 0) for cyc in cycles])
    return cycles, charge, discharge


def test_full_cell_capacity_is_per_gram_of_cathode(p3, keep) -> None:
    fig = plots.figure([p3], "capacity")
    keep(fig, "capacity-p3-full-cell")
    (ax,) = fig.axes
    assert ax.get_ylabel() == "Specific capacity (mAh/g)"  # the cell has an area too: mass wins
    assert legend(ax) == ["NCM622|Li@host, discharge", "NCM622|Li@host, charge"]
    cycles, charge, discharge = full_cell_cycles(p3)
    assert cycles == [1, 2, 3, 4, 5]  # the rest joins formation: formation 1-2; cycling 3-5
    drawn = lines(ax)
    for name, ah in (("discharge", discharge), ("charge", charge)):
        line = drawn[f"{p3.run_id} {name}"]
        np.testing.assert_array_equal(line.get_xdata(), cycles)
        np.testing.assert_allclose(line.get_ydata(), ah * 1e3 / NCM_MASS_G, rtol=1e-12)
    specific = discharge * 1e3 / NCM_MASS_G
    assert specific[0] == pytest.approx(175.0, rel=0.05)  # 0.1C formation delivers the rated 175 mAh/g
    assert specific[2:].max() < specific[1]  # 0.5C discharges less than 0.1C (polarisation)


def test_full_cell_ce_and_retention_over_cycles(p3, keep) -> None:
    cycles, charge, discharge = full_cell_cycles(p3)
    fig = plots.figure([p3], "ce")
    keep(fig, "ce-p3-full-cell")
    line = lines(fig.axes[0])[f"{p3.run_id} ce"]
    np.testing.assert_array_equal(line.get_xdata(), cycles)
    np.testing.assert_allclose(line.get_ydata(), 100 * discharge / charge, rtol=1e-12)
    assert line.get_ydata()[0] < 90.0 < line.get_ydata()[1]  # the first-cycle irreversible loss

    fig = plots.figure([p3], "retention")
    keep(fig, "retention-p3-full-cell")
    (ax,) = fig.axes
    assert ax.get_ylabel() == "Capacity retention (%)"
    assert legend(ax) == ["NCM622|Li@host (vs cycle 3)"]  # the first cycle after formation
    drawn = lines(ax)
    line = drawn[f"{p3.run_id} retention"]
    np.testing.assert_array_equal(line.get_xdata(), cycles[2:])  # the cycling group; formation is not fade
    np.testing.assert_allclose(line.get_ydata(), 100 * discharge[2:] / discharge[2], rtol=1e-12)
    assert drawn["80 %"].get_ydata()[0] == 80.0


def test_dqdv_integrates_to_the_cycles_capacity(p3, keep) -> None:
    fig = plots.figure([p3], "dqdv", cycles=[4])
    keep(fig, "dqdv-p3-cycle-4")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Voltage (V)" and ax.get_ylabel() == "dQ/dV (mAh g⁻¹ V⁻¹)"
    drawn = lines(ax)
    ends = step_ends(p3)
    for direction, step in (("charge", 5), ("discharge", 6)):
        line = drawn[f"{p3.run_id} cycle 4 {direction}"]
        volts, slope = dqdv(p3, 4, direction)
        np.testing.assert_array_equal(line.get_xdata(), volts)
        np.testing.assert_allclose(line.get_ydata(), slope * 1e3 / NCM_MASS_G, rtol=1e-12)
        # the area under dQ/dV over the swept window is the capacity the step passed (per gram)
        area = abs(np.trapezoid(line.get_ydata(), line.get_xdata()))
        assert area == pytest.approx(abs(ends[(4, step)]) * 1e3 / NCM_MASS_G, rel=0.02)


# ---- EIS: Nyquist and Bode before and after lithiation ------------------------------------------------------------


def eis_rows(run: RunData) -> np.ndarray:
    return run.records[np.isfinite(run.records["frequency"])]


def test_nyquist_before_and_after_lithiation(p7, keep) -> None:
    fig = plots.figure(p7, "nyquist")
    keep(fig, "nyquist-p7-before-after-lithiation")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Z′ (Ω)" and ax.get_ylabel() == "−Z″ (Ω)"
    assert ax.get_aspect() == 1.0  # equal aspect: a semicircle looks like one
    assert ax.get_title().startswith("markers: measured; lines: fitted p(R0-")  # the blocking film's circuit
    assert legend(ax) == ["host, before lithiation", "host, after lithiation"]
    drawn = lines(ax)
    for run in p7:
        rows = eis_rows(run)
        points = drawn[f"{run.run_id} cycle 1 step 2 measured"]
        np.testing.assert_array_equal(points.get_xdata(), rows["z_real"])
        np.testing.assert_array_equal(points.get_ydata(), -rows["z_imag"])  # -Z'' up
        (fit_gid,) = [g for g in drawn if g.startswith(f"{run.run_id} cycle 1 step 2 fit")]
        fit = drawn[fit_gid]
        # the fitted curve, drawn at FIT_POINTS log-spaced frequencies from the top of the band down, passes
        # through the measured points (within 1 % of |Z|)
        f_fit = np.geomspace(rows["frequency"].max(), rows["frequency"].min(), FIT_POINTS)
        logf = np.log10(f_fit[::-1])
        re = np.interp(np.log10(rows["frequency"]), logf, np.asarray(fit.get_xdata())[::-1])
        im = np.interp(np.log10(rows["frequency"]), logf, np.asarray(fit.get_ydata())[::-1])
        modulus = np.hypot(rows["z_real"], rows["z_imag"])
        assert np.max(np.hypot(re - rows["z_real"], im + rows["z_imag"]) / modulus) < 0.01
        # its plateau is the film's Re || Ri = L / ((sigma_e + sigma_i) A), from the simulated film's parameters
        sigma_e, sigma_i = SIGMA[run.lithiation]
        assert fit.get_xdata()[0] == pytest.approx(FILM_M / ((sigma_e + sigma_i) * AREA_CM2 * 1e-4), rel=0.01)


def test_bode_before_and_after_lithiation(p7, keep) -> None:
    fig = plots.figure(p7, "bode")
    keep(fig, "bode-p7-before-after-lithiation")
    modulus_ax, phase_ax = fig.axes
    assert modulus_ax.get_ylabel() == "|Z| (Ω)" and phase_ax.get_ylabel() == "−Phase (°)"
    assert phase_ax.get_xlabel() == "Frequency (Hz)"
    assert modulus_ax.get_xscale() == "log" and modulus_ax.get_yscale() == "log"
    assert legend(modulus_ax) == ["host, before lithiation", "host, after lithiation"]
    for run in p7:
        rows = eis_rows(run)
        gid = f"{run.run_id} cycle 1 step 2 measured"
        modulus, phase = lines(modulus_ax)[f"{gid} modulus"], lines(phase_ax)[f"{gid} phase"]
        np.testing.assert_array_equal(modulus.get_xdata(), rows["frequency"])
        np.testing.assert_allclose(modulus.get_ydata(), np.sqrt(rows["z_real"] ** 2 + rows["z_imag"] ** 2),
                                   rtol=1e-12)
        np.testing.assert_allclose(phase.get_ydata(), -np.degrees(np.arctan2(rows["z_imag"], rows["z_real"])),
                                   rtol=1e-12, atol=1e-12)


# ---- conductivities before and after lithiation ------------------------------------------------------------------


def test_conductivity_bars_before_and_after_lithiation(p7, keep) -> None:
    fig = plots.figure(p7, "conductivity")
    keep(fig, "conductivity-p7-before-after-lithiation")
    (ax,) = fig.axes
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "Conductivity (S/cm)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["electronic σₑ", "ionic σᵢ", "total σ"]
    assert legend(ax) == ["host, before lithiation", "host, after lithiation"]
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers}
    for run in p7:
        sigma_e, sigma_ion, sigma_total = bars[f"host, {run.lithiation} lithiation"]
        # electronic: the DC step's final current through the film, L I / (dV A), straight from the records
        dc = run.records[run.records["step_index"] == 3]
        rest = run.records[run.records["step_index"] == 1]
        dv = dc["voltage"][-1] - rest["voltage"][-1]
        assert dv == pytest.approx(0.05, rel=1e-6)
        assert sigma_e == pytest.approx(FILM_M * dc["current"][-1] / (dv * AREA_CM2 * 1e-4) / 100, rel=2e-3)
        # and the film's parameters (S/m -> S/cm), which EIS (total) and DC (electronic) recover
        expected_e, expected_i = SIGMA[run.lithiation]
        assert sigma_e == pytest.approx(expected_e / 100, rel=0.01)
        assert sigma_total == pytest.approx((expected_e + expected_i) / 100, rel=0.01)
        assert sigma_ion == pytest.approx(sigma_total - sigma_e, rel=1e-9)
        assert sigma_ion == pytest.approx(expected_i / 100, rel=0.02)


# ---- CV curves ---------------------------------------------------------------------------------------------------


def test_cv_curves_per_cv_cycle(p6, keep) -> None:
    fig = plots.figure([p6], "cv")
    keep(fig, "cv-p6-host")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Potential (V)" and ax.get_ylabel() == "Current (mA)"
    assert legend(ax) == ["LLTO@CNT, cycle 1", "LLTO@CNT, cycle 2"]
    drawn = lines(ax)
    r = p6.records
    for cycle in (1, 2):
        rows = r[r["cv_cycle"] == cycle]
        curve = drawn[f"{p6.run_id} step 2 cv cycle {cycle}"]
        np.testing.assert_array_equal(curve.get_xdata(), rows["voltage"])
        np.testing.assert_allclose(curve.get_ydata(), rows["current"] * 1e3, rtol=1e-12)
        # every cycle sweeps between the vertices 0.01 and 2.50 V
        assert rows["voltage"].min() == pytest.approx(0.01, abs=2e-3)
        assert rows["voltage"].max() >= 2.5 - 2e-3
        # the peaks marked are the cycle's extreme currents: reduction (cathodic, < 0) on the way down, oxidation
        # (anodic, > 0) on the way up, the anodic one at the higher potential
        low, high = int(np.argmin(rows["current"])), int(np.argmax(rows["current"]))
        cathodic = drawn[f"{p6.run_id} step 2 cv cycle {cycle} cathodic peak"]
        anodic = drawn[f"{p6.run_id} step 2 cv cycle {cycle} anodic peak"]
        assert (cathodic.get_xdata()[0], cathodic.get_ydata()[0]) == (rows["voltage"][low], rows["current"][low] * 1e3)
        assert (anodic.get_xdata()[0], anodic.get_ydata()[0]) == (rows["voltage"][high], rows["current"][high] * 1e3)
        assert cathodic.get_ydata()[0] < 0 < anodic.get_ydata()[0]
        assert anodic.get_xdata()[0] > cathodic.get_xdata()[0]
        assert np.diff(rows["voltage"])[max(low - 1, 0)] < 0 < np.diff(rows["voltage"])[min(high, len(rows) - 2)]


def test_cv_cycles_without_the_cv_cycle_field_come_from_the_waveform(p6) -> None:
    """Records of an older store or an import carry cv_cycle 0: the curves are cut by the step's own waveform."""
    records = p6.records.copy()
    records["cv_cycle"] = 0
    bare = dataclasses.replace(p6, records=records)
    given, derived = lines(plots.figure([p6], "cv").axes[0]), lines(plots.figure([bare], "cv").axes[0])
    assert sorted(given) == sorted(derived)
    for gid, line in given.items():
        np.testing.assert_array_equal(derived[gid].get_xdata(), line.get_xdata())
        np.testing.assert_array_equal(derived[gid].get_ydata(), line.get_ydata())


# ---- units, selection and errors ----------------------------------------------------------------------------------


def test_capacity_unit_rule(p2, p3) -> None:
    assert capacity_unit([p3]).unit == "mAh/g"  # area and mass: mass
    assert capacity_unit(p2).unit == "mAh/cm²"  # area only
    assert capacity_unit([p3, p2[0]]).unit == "mAh/cm²"  # only the area is common
    bare = dataclasses.replace(p2[0], cell=p2[0].cell.model_copy(update={"area": None}))
    assert capacity_unit([bare, p3]).unit == "mAh"
    assert capacity_unit([bare]).label() == "Capacity (mAh)"


def test_parse_cycles() -> None:
    assert parse_cycles("1,2,5-7") == [1, 2, 5, 6, 7]
    assert parse_cycles(" 3 , 1-2,2") == [1, 2, 3]
    for bad, part in (("2-x", "2-x"), ("0", "0"), ("5-3", "5-3"), ("1,,2", "")):
        with pytest.raises(plots.PlotError, match=f"--cycles '{bad}': '{part}'"):
            parse_cycles(bad)


def test_a_kind_that_does_not_apply_names_the_run_and_the_kinds_that_do(p1, p2) -> None:
    with pytest.raises(plots.PlotError) as caught:
        plots.figure([p2[0], p1[1]], "ce")
    assert str(caught.value) == ("--kind ce does not apply to run Cu: it has no cycle with both a charge and a "
                                 "discharge; kinds that apply to it: voltage")
    with pytest.raises(plots.PlotError, match="--kind nyquist does not apply to run LLTO@CNT: it has no EIS "
                                              "spectrum; kinds that apply to it: voltage, capacity, ce"):
        plots.figure([p2[0]], "nyquist")


def test_cycles_a_run_lacks_and_mixed_runs_are_one_line_errors(p1, p2, p7) -> None:
    with pytest.raises(plots.PlotError, match=r"run LLTO@CNT has no cycle 7-9 \(its cycles: 1-4\)"):
        plots.figure([p2[0]], "voltage", cycles=[7, 8, 9])
    with pytest.raises(plots.PlotError, match=r"runs without cycles .* plot them in separate figures"):
        plots.figure([p1[0], p2[0]], "voltage")
    with pytest.raises(plots.PlotError, match="--cycles does not apply: these runs have no cycles"):
        plots.figure(p1, "voltage", cycles=[1])
    with pytest.raises(plots.PlotError, match="--cycles does not apply to --kind conductivity"):
        plots.figure(p7, "conductivity", cycles=[1])
    with pytest.raises(plots.PlotError, match="unknown --kind 'nope'"):
        plots.figure(p2, "nope")
    with pytest.raises(plots.PlotError, match=r"must end in \.png or \.svg"):
        plots.save(Figure(), "figure.pdf")
