"""The Battery Data Format vocabulary the exports are pinned to: ontology release 1.2.0, vendored verbatim as
``station/exports/ontology/battery-data-format-1.2.0.ttl``.

BDF renamed columns in four releases in ten weeks, so the exports name one ontology release, write its version
and versioned IRI into every metadata sidecar, and use its exact preferred labels. The labels, units and IRIs are
a table here rather than read from the TTL at export time (rdflib is no runtime dependency, and an export must
not parse 170 kB of Turtle); ``tests/station/test_export.py`` checks every entry against the vendored file.

What the 1.2.0 definitions decide:

* The program's step number is ``step_id`` (prefLabel ``Step ID``: "the step identifier as defined in the test
  program"); ``Step Index / 1`` is the 1-based position of a record within its step ("an instrument column named
  'Step Index' maps to step_id, not to this property"). The exports follow the definitions.
* ``Step ID`` and ``Step Type`` are the only 1.2.0 prefLabels without a ``Quantity / unit`` form. ``batterydf``
  0.1.0 loads ontology terms only from prefLabels with a unit, so even with ``BDF_ONTOLOGY_PATH`` set it reports
  these two as non-canonical; every other header is canonical for it.
* End-of-cycle aggregates and the efficiency ratios are deferred to a later (summary-table) release, so the cycle
  summary's efficiency, mean-voltage and tag columns are the project's own, named in the same notation.
"""

from __future__ import annotations

from dataclasses import dataclass

ONTOLOGY_IRI = "https://w3id.org/battery-data-alliance/ontology/battery-data-format"
ONTOLOGY_VERSION = "1.2.0"
ONTOLOGY_VERSION_IRI = f"{ONTOLOGY_IRI}/{ONTOLOGY_VERSION}/battery-data-format"
#: the vendored copy (station/exports/ontology/) and its sha256, so a sidecar names the exact file
ONTOLOGY_FILE = f"battery-data-format-{ONTOLOGY_VERSION}.ttl"
ONTOLOGY_SHA256 = "47a76a7000b59330fb40c60339a36118e73410d1788c58c1cade3c19df516523"
VALIDATOR = "batterydf"
VALIDATOR_VERSION = "0.1.0"


@dataclass(frozen=True)
class Term:
    """One ontology class: its machine-readable name (the IRI's fragment), preferred label and UCUM unit code
    (``schema:unitCode``; None for the text and identifier terms, which have none)."""

    name: str
    label: str
    unit: str | None

    @property
    def iri(self) -> str:
        return f"{ONTOLOGY_IRI}#{self.name}"


def _terms(*rows: tuple[str, str, str | None]) -> dict[str, Term]:
    return {name: Term(name, label, unit) for name, label, unit in rows}


#: every 1.2.0 term the exports write, as the ontology spells it
TERMS: dict[str, Term] = _terms(
    ("record_index", "Record Index / 1", "1"),
    ("test_time_second", "Test Time / s", "s"),
    ("unix_time_second", "Unix Time / s", "s"),
    ("voltage_volt", "Voltage / V", "V"),
    ("current_ampere", "Current / A", "A"),
    ("cycle_count", "Cycle Count / 1", "1"),
    ("step_count", "Step Count / 1", "1"),
    ("step_id", "Step ID", None),
    ("step_type", "Step Type", None),
    ("step_index", "Step Index / 1", "1"),
    ("step_time_second", "Step Time / s", "s"),
    ("charging_capacity_ah", "Charging Capacity / Ah", "A.h"),
    ("discharging_capacity_ah", "Discharging Capacity / Ah", "A.h"),
    ("charging_energy_wh", "Charging Energy / Wh", "W.h"),
    ("discharging_energy_wh", "Discharging Energy / Wh", "W.h"),
    ("step_charging_capacity_ah", "Step Charging Capacity / Ah", "A.h"),
    ("step_discharging_capacity_ah", "Step Discharging Capacity / Ah", "A.h"),
    ("step_net_capacity_ah", "Step Net Capacity / Ah", "A.h"),
    ("step_cumulative_capacity_ah", "Step Cumulative Capacity / Ah", "A.h"),
    ("step_charging_energy_wh", "Step Charging Energy / Wh", "W.h"),
    ("step_discharging_energy_wh", "Step Discharging Energy / Wh", "W.h"),
    ("step_net_energy_wh", "Step Net Energy / Wh", "W.h"),
    ("step_cumulative_energy_wh", "Step Cumulative Energy / Wh", "W.h"),
    ("cycle_charging_capacity_ah", "Cycle Charging Capacity / Ah", "A.h"),
    ("cycle_discharging_capacity_ah", "Cycle Discharging Capacity / Ah", "A.h"),
    ("cycle_net_capacity_ah", "Cycle Net Capacity / Ah", "A.h"),
    ("cycle_cumulative_capacity_ah", "Cycle Cumulative Capacity / Ah", "A.h"),
    ("cycle_charging_energy_wh", "Cycle Charging Energy / Wh", "W.h"),
    ("cycle_discharging_energy_wh", "Cycle Discharging Energy / Wh", "W.h"),
    ("cycle_net_energy_wh", "Cycle Net Energy / Wh", "W.h"),
    ("cycle_cumulative_energy_wh", "Cycle Cumulative Energy / Wh", "W.h"),
    ("frequency_hertz", "Frequency / Hz", "Hz"),
    ("real_impedance_ohm", "Real Impedance / ohm", "Ohm"),
    ("imaginary_impedance_ohm", "Imaginary Impedance / ohm", "Ohm"),
    ("absolute_impedance_ohm", "Absolute Impedance / ohm", "Ohm"),
    ("phase_degree", "Phase / deg", "deg"),
    ("ambient_temperature_celsius", "Ambient Temperature / degC", "Cel"),
    ("temperature_t1_celsius", "Temperature T1 / degC", "Cel"),
)


def _columns(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((TERMS[name].label, name) for name in names)


#: the running accumulators of one scope ("" for the test scope), in the ontology's family order
def _running(scope: str, kinds: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{scope}{kind}_{quantity}" for quantity in ("capacity_ah", "energy_wh") for kind in kinds)


#: the records file, in column order: (preferred label, machine-readable name)
RECORD_COLUMNS: tuple[tuple[str, str], ...] = _columns(
    "record_index", "test_time_second", "unix_time_second", "voltage_volt", "current_ampere", "cycle_count",
    "step_count", "step_id", "step_type", "step_index", "step_time_second",
    *_running("", ("charging", "discharging")),
    *_running("step_", ("charging", "discharging", "net")),
    *_running("cycle_", ("charging", "discharging", "net")),
)
#: the records file's last columns, each when some record has it: the chamber's temperature (``Ambient
#: Temperature``, where the ontology maps a chamber's) and the instrument's auxiliary sensor (``Temperature T1``,
#: where it maps a cycler's channel-indexed sensor, whose placement the setup defines)
TEMPERATURE_COLUMNS: tuple[tuple[str, str], ...] = _columns("ambient_temperature_celsius", "temperature_t1_celsius")
# The step and cycle "cumulative" terms (charging + discharging) are left out of the records file: each is the sum
# of two columns it has, and at a million records every float column costs ~0.1 s of CSV formatting and ~24 MB.

#: the impedance quantities
IMPEDANCE_COLUMNS: tuple[tuple[str, str], ...] = _columns(
    "frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm", "absolute_impedance_ohm", "phase_degree")

#: the EIS file: what places each point in the run (Record Index is the row's index in the records file), then
#: the spectrum
EIS_COLUMNS: tuple[tuple[str, str], ...] = _columns(
    "record_index", "test_time_second", "unix_time_second", "voltage_volt", "current_ampere", "cycle_count",
    "step_count") + IMPEDANCE_COLUMNS

#: cycle-scope terms in the summary: one row per cycle, each the end-of-cycle value of the running quantity
SUMMARY_BDF_COLUMNS: tuple[tuple[str, str], ...] = _columns(
    "cycle_count", "cycle_charging_capacity_ah", "cycle_discharging_capacity_ah", "cycle_charging_energy_wh",
    "cycle_discharging_energy_wh", "cycle_net_capacity_ah", "cycle_net_energy_wh")

#: why the summary has columns of its own
SUMMARY_PROJECT_REASON = ("BDF 1.2.0 defers end-of-cycle aggregate terms and the efficiency ratios "
                          "(coulombic_efficiency, energy_efficiency) to the per-cycle summary-table release; "
                          "these columns are the project's, in the same 'Quantity / unit' notation, with no IRI")

#: the summary's quantities that BDF 1.2.0 has no term for, with what they hold
SUMMARY_PROJECT_MEANINGS: dict[str, str] = {
    "Cycle Tag": "the protocol's tag of the cycle's steps (e.g. formation, cycling)",
    "Coulombic Efficiency / 1": "capacity returned over capacity put in, in the cycle's own order: discharge / "
                                "charge for a cycle that starts by charging, charge / discharge otherwise",
    "Energy Efficiency / 1": "the same ratio on energy",
    "Mean Charging Voltage / V": "Cycle Charging Energy / Cycle Charging Capacity",
    "Mean Discharging Voltage / V": "Cycle Discharging Energy / Cycle Discharging Capacity",
    "Voltage Hysteresis / V": "Mean Charging Voltage - Mean Discharging Voltage",
}
SUMMARY_PROJECT_COLUMNS: tuple[str, ...] = tuple(SUMMARY_PROJECT_MEANINGS)

#: Step Type values. The 1.2.0 definition lists CC_CHG, CC_DCH, CV_CHG, CCCV_CHG, REST, OCV and EIS as common
#: values and leaves the vocabulary open ("not yet standardised"); the others follow the same NAME_DIRECTION
#: pattern for what it does not list.
ONTOLOGY_STEP_TYPES = ("CC_CHG", "CC_DCH", "CV_CHG", "CCCV_CHG", "REST", "OCV", "EIS")
STEP_TYPES: dict[str, str] = {
    "CC_CHG": "constant-current charge",
    "CC_DCH": "constant-current discharge",
    "CCCV_CHG": "constant-current charge, then constant voltage at the step's hold voltage",
    "CCCV_DCH": "constant-current discharge, then constant voltage at the step's hold voltage (not listed in 1.2.0)",
    "CV_CHG": "constant-voltage hold passing charge into the cell",
    "CV_DCH": "constant-voltage hold passing charge out of the cell (not listed in 1.2.0)",
    "CP_CHG": "constant-power charge (not listed in 1.2.0)",
    "CP_DCH": "constant-power discharge (not listed in 1.2.0)",
    "REST": "open circuit, no current",
    "EIS": "impedance spectrum (potentio- or galvanostatic, see protocol.steps)",
    "CA": "chronoamperometry: potentiostatic step, e.g. DC polarisation (not listed in 1.2.0)",
    "CYCLIC_VOLTAMMETRY": "cyclic voltage sweep (not listed in 1.2.0)",
    "LINEAR_SWEEP": "linear voltage sweep (not listed in 1.2.0)",
    "TEMPERATURE": "the station sets the climate chamber and waits until it is stable; no current (not listed in "
                   "1.2.0)",
    "LOOP": "program flow only; records never carry it (not listed in 1.2.0)",
}

#: what a column holds in these files, where it needs a convention the ontology leaves open
MEANINGS: dict[str, str] = {
    "record_index": "1 for the run's first record, then +1 per record; the EIS file gives each point's row here",
    "step_id": "the step program's step number (protocol.steps[].index); repeats each cycle",
    "step_index": "1-based position of the record within its step execution",
    "step_count": "step executions started since the test began, from 1; never resets",
    "step_type": "see bdf.step_types",
    "cycle_count": "the cycle as the run numbered it under protocol.cycle_rule; never renumbered",
    "unix_time_second": "started_at_unix + test time",
    "charging_capacity_ah": "test scope, never reset: charge passed while the current was positive",
    "discharging_capacity_ah": "test scope, never reset: charge passed while the current was negative",
    "charging_energy_wh": "test scope: integral of V I dt while the current was positive",
    "discharging_energy_wh": "test scope: minus the integral of V I dt while the current was negative (so "
                             "plating below 0 V counts negative)",
    "imaginary_impedance_ohm": "as measured: negative for capacitive behaviour",
    "phase_degree": "atan2(Z'', Z') in degrees",
    "ambient_temperature_celsius": "the climate chamber's temperature when the record was taken; empty where the "
                                   "station had no reading",
    "temperature_t1_celsius": "the instrument's auxiliary temperature sensor of the channel (a Neware T1), as it "
                              "recorded it; empty where the record has none",
}
_SCOPE_MEANING = {"step": "the test-scope value minus its value just before the step execution's first record",
                  "cycle": "the test-scope value minus its value just before the cycle's first record"}


def meaning(name: str, summary: bool = False) -> str | None:
    """What the column ``name`` holds; a summary's cycle-scope column holds the end-of-cycle value."""
    if summary and name.startswith("cycle_") and name != "cycle_count":
        return "the end-of-cycle value of the running quantity: the cycle's total"
    if name in MEANINGS:
        return MEANINGS[name]
    scope = name.split("_", 1)[0]
    if scope not in _SCOPE_MEANING or not name.endswith(("_ah", "_wh")):
        return None
    if "_net_" in name or "_cumulative_" in name:
        sign = "minus" if "_net_" in name else "plus"
        return f"{scope} charging {sign} {scope} discharging, as the ontology defines it"
    return _SCOPE_MEANING[scope]


def describe(columns: tuple[tuple[str, str], ...], summary: bool = False) -> list[dict[str, str | None]]:
    """The sidecar's column list: each header with its machine-readable name, ontology IRI, UCUM unit code (the
    ontology's ``schema:unitCode``) and, where it needs one, what it holds in these files."""
    out: list[dict[str, str | None]] = []
    for label, name in columns:
        term = TERMS[name]
        entry: dict[str, str | None] = {"label": label, "name": name, "iri": term.iri, "unit_code": term.unit}
        held = meaning(name, summary)
        if held:
            entry["meaning"] = held
        out.append(entry)
    return out


def describe_summary() -> list[dict[str, str | None]]:
    """The summary's columns for the sidecar: the BDF ones with their IRIs, then the project's own (no IRI)."""
    project = [{"label": label, "name": None, "iri": None, "meaning": held, "why_no_iri": SUMMARY_PROJECT_REASON}
               for label, held in SUMMARY_PROJECT_MEANINGS.items()]
    return [*describe(SUMMARY_BDF_COLUMNS, summary=True), *project]
