// A run's page: its facts and live values, live V and I and capacity against time (thinned on the server, so a
// million-record run opens at once), the analysis figures, the events, the protocol and plan, exports, and the
// operator's actions (pause, continue, stop), each after a confirmation.

import { apiUrl, get, post, session } from "./api.js";
import { COLOURS, lineChart, xyChart } from "./charts.js";
import { confirmAction } from "./dialog.js";
import {
  displayState, duration, el, fixed, milliampHours, milliamps, stateClass, TERMINAL, timeEl, volts,
} from "./format.js";

/** Points per series asked of the server: about one per pixel column of a wide screen, min and max kept. */
const SERIES_POINTS = 2000;
/** A running run's curves are fetched again at most this often (ms), or ten times as long as the last fetch took
 * (a very long run): live enough, and never more than a tenth of the service's time for one page. */
const SERIES_REFRESH_MS = 3000;

const ACTIONS = {
  pause: { label: "Pause", when: ["running", "started"], text: "The instrument pauses the channel: no current "
    + "flows until you continue." },
  continue: { label: "Continue", when: ["paused"], text: "The instrument continues the program where it paused." },
  stop: { label: "Stop", when: ["running", "started", "paused"], danger: true, text: "The instrument stops the "
    + "channel: no current flows and the program ends. This cannot be undone." },
};

/** The time axis in units a person reads: minutes for a short run, hours for a long one. */
function timeUnit(seconds) {
  const last = seconds.length ? seconds[seconds.length - 1] || 0 : 0;
  return last > 2 * 3600 ? { label: "Test time (h)", div: 3600 } : { label: "Test time (min)", div: 60 };
}

const scaled = (values, factor) => values.map((v) => (v === null ? null : v * factor));

export class RunPage {
  constructor(root, runId) {
    this.root = root;
    this.runId = runId;
    this.doc = null;
    this.lastEvent = 0;
    this.seriesAt = 0;
    this.seriesBusy = false;
    this.seriesTimer = null;
    this.charts = {};
    window.stationRunPage = this;  // for the browser tests: the series the page drew, as the server sent it
  }

  async load() {
    this.setDoc(await get(`/runs/${encodeURIComponent(this.runId)}`));
    this.runId = this.doc.run_id;  // a prefix in the address is enough; the page knows the full id
    this.build();
    this.renderDoc();
    // the duration counts on between the stream's messages (a paused run's live values do not change)
    this.ticker = setInterval(() => {
      if (this.durationEl) this.durationEl.textContent = duration(this.duration);
    }, 1000);
    await Promise.all([this.loadSeries(), this.loadEvents(), this.loadAnalysis(), this.loadProgram()]);
  }

  build() {
    const d = this.doc;
    this.stateEl = el("span", { id: "run-state" });
    this.buttons = {};
    for (const [name, a] of Object.entries(ACTIONS)) {
      this.buttons[name] = el("button", { type: "button", id: `action-${name}`, class: a.danger ? "danger" : null,
        onclick: () => this.act(name) }, a.label);
    }
    this.message = el("p", { id: "action-message", role: "status", "aria-live": "polite" });
    this.facts = el("dl", { class: "facts" });
    this.liveEl = el("dl", { class: "facts live", id: "run-live" });
    const exportLink = (what, format, label) => el("a", { class: "button", download: true,
      href: apiUrl(`/runs/${encodeURIComponent(d.run_id)}/export?what=${what}&format=${format}`) }, label);
    this.seriesBox = el("div", { class: "chart", id: "chart-vi" });
    this.capBox = el("div", { class: "chart", id: "chart-capacity" });
    this.seriesNote = el("p", { class: "muted", id: "series-note" });
    this.analysisEl = el("div", { id: "analysis" }, el("p", { class: "muted" }, "Loading the analysis…"));
    this.eventsBody = el("tbody");
    this.programEl = el("div", { id: "program" }, el("p", { class: "muted" }, "Loading…"));
    this.root.replaceChildren(
      el("nav", { class: "crumbs" }, el("a", { href: "#/" }, "Channels"), " › ", `run ${d.run_id}`),
      el("div", { class: "page-head" },
        el("h1", {}, "Run ", el("code", {}, d.run_id)), this.stateEl,
        el("div", { class: "actions" }, Object.values(this.buttons))),
      this.message,
      el("div", { class: "two" }, el("section", {}, el("h2", {}, "Run"), this.facts),
        el("section", {}, el("h2", {}, "Now"), this.liveEl)),
      el("section", {}, el("h2", {}, "Voltage, current and capacity"), this.seriesNote,
        el("div", { class: "charts" }, this.seriesBox, this.capBox)),
      el("section", {}, el("h2", {}, "Analysis"), this.analysisEl),
      el("section", {}, el("h2", {}, "Events"),
        el("div", { class: "table-wrap events-wrap" }, el("table", { id: "events", class: "list" },
          el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Time (local)"),
            el("th", { scope: "col", class: "num" }, "Test time (h:mm:ss)"), el("th", { scope: "col" }, "Kind"),
            el("th", { scope: "col" }, "Message"))),
          this.eventsBody))),
      el("section", {}, el("h2", {}, "Protocol and plan"), this.programEl),
      el("section", {}, el("h2", {}, "Export"), el("div", { class: "exports" },
        exportLink("records", "csv", "Records (CSV)"), exportLink("records", "parquet", "Records (Parquet)"),
        this.summaryExport = exportLink("summary", "csv", "Cycle summary (CSV)"),
        this.eisExport = exportLink("eis", "csv", "EIS spectra (CSV)"))));
    this.summaryExport.hidden = this.eisExport.hidden = true;  // shown once the analysis says the run has them
  }

  /** A run document as the API sent it, and when it came: its duration was counted at that moment. */
  setDoc(doc) {
    this.doc = doc;
    this.docAt = Date.now();
  }

  /** The live document of a run still going (null once it ended, or before the stream said anything). */
  get live() {
    const d = this.doc;
    return d.live && d.live.run_id === d.run_id && !TERMINAL.includes(d.state) ? d.live : null;
  }

  /** Records stored so far: the stream's count while the run goes (the document's is as of the page's load). */
  get records() {
    const l = this.live;
    const stored = this.doc.records;
    return l && l.records !== null && l.records !== undefined ? Math.max(l.records, stored) : stored;
  }

  /** Wall time since the run started: the document's figure, plus the time since it came while the run goes. */
  get duration() {
    const d = this.doc;
    if (d.duration_s === null || d.duration_s === undefined || TERMINAL.includes(d.state)) return d.duration_s;
    return d.duration_s + Math.max(0, Date.now() - this.docAt) / 1000;
  }

  get state() {
    const d = this.doc;
    const live = d.live && !TERMINAL.includes(d.state) ? d.live : null;
    return displayState(live ? live.state : d.state, d.message, live ? live.contact_lost_s : d.contact_lost_s);
  }

  renderDoc() {
    const d = this.doc;
    const state = this.state;
    this.stateEl.className = stateClass(state);
    this.stateEl.textContent = state;
    this.stateEl.title = d.message || "";
    // another station's run (read from the lab's database): its cell is watched there, and acted on there
    const elsewhere = d.station && session.station && d.station !== session.station;
    for (const [name, a] of Object.entries(ACTIONS)) {
      const runState = d.live && !TERMINAL.includes(d.state) ? d.live.state : d.state;
      this.buttons[name].disabled = elsewhere || !a.when.includes(runState);
      this.buttons[name].title = elsewhere ? `this run belongs to station ${d.station}: act on it there` : "";
    }
    const fact = (label, ...value) => [el("dt", {}, label), el("dd", {}, ...value)];
    this.facts.replaceChildren(
      ...fact("Station", d.station || "–"), ...fact("Channel", d.channel), ...fact("Protocol", d.protocol || "–"), ...fact("Cell", d.cell || "–"),
      ...fact("Sample", d.sample ? el("a", { href: `#/sample/${d.sample}` }, d.sample) : "none registered"),
      ...fact("Created", timeEl(d.created_at)), ...fact("Started", timeEl(d.started_at)),
      ...fact("Duration (h:mm:ss)", this.durationEl = el("span", { id: "run-duration" }, duration(this.duration))),
      ...fact("Records", el("span", { id: "run-records" }, String(this.records))),
      ...fact(TERMINAL.includes(d.state) ? "End" : "Last word", d.message || "–"));
    const l = d.live && !TERMINAL.includes(d.state) ? d.live : null;
    if (TERMINAL.includes(d.state)) {
      this.liveEl.replaceChildren(...fact("Ended", timeEl(d.updated_at)), ...fact("State", state),
        ...fact("Why", d.end_reason || d.message || "–"));
      return;
    }
    this.liveEl.replaceChildren(
      ...fact("Step", l && l.step !== null ? String(l.step) : "–"),
      ...fact("Cycle", l && l.cycle !== null ? String(l.cycle) : "–"),
      ...fact("Tag", (l && l.tag) || "–"),
      ...fact("Voltage (V)", l ? volts(l.voltage_v) : "–"),
      ...fact("Current (mA)", l ? milliamps(l.current_a) : "–"),
      ...fact("Step capacity (mAh)", l ? milliampHours(l.step_capacity_ah) : "–"),
      ...fact("Test time (h:mm:ss)", l ? duration(l.test_time_s) : "–"),
      ...fact("ETA (h:mm:ss)", l && l.eta_s !== null ? duration(l.eta_s) : "–"));
  }

  // -- curves ------------------------------------------------------------------------------------------------------

  async loadSeries() {
    if (this.seriesBusy) return;
    this.seriesBusy = true;
    this.seriesAt = Date.now();
    try {
      const s = await get(`/runs/${encodeURIComponent(this.runId)}/series?points=${SERIES_POINTS}`);
      this.seriesTook = Date.now() - this.seriesAt;
      this.series = s;
      this.drawSeries(s);
    } catch (exc) {
      this.seriesNote.textContent = `The curves could not be read: ${exc.message}`;
    } finally {
      this.seriesBusy = false;
    }
  }

  drawSeries(s) {
    const unit = timeUnit(s.test_time_s);
    const x = scaled(s.test_time_s, 1 / unit.div);
    const volt = s.voltage_v;
    const milli = scaled(s.current_a, 1e3);
    const cap = scaled(s.capacity_ah, 1e3);
    const shown = s.test_time_s.length;
    this.seriesNote.textContent = shown < s.records
      ? `${s.records} records, drawn as ${shown} points (each stretch's lowest and highest kept).`
      : `${s.records} records, every one drawn.`;
    if (this.charts.vi && this.unit && this.unit.div === unit.div) {
      this.charts.vi.update(x, [volt, milli]);
      this.charts.capacity.update(x, [cap]);
      return;
    }
    this.unit = unit;
    for (const box of [this.seriesBox, this.capBox]) box.replaceChildren();
    for (const c of [this.charts.vi, this.charts.capacity]) if (c) c.destroy();
    this.charts.vi = lineChart(this.seriesBox, "vi", {
      title: "Voltage and current", x: { label: unit.label, values: x },
      series: [{ label: "Voltage (V)", scale: "V", values: volt, color: COLOURS[0], decimals: 4 },
        { label: "Current (mA)", scale: "mA", values: milli, color: COLOURS[1], decimals: 3 }],
    });
    this.charts.capacity = lineChart(this.capBox, "capacity", {
      title: "Step capacity", x: { label: unit.label, values: x },
      series: [{ label: "Step capacity (mAh)", scale: "mAh", values: cap, color: COLOURS[2], decimals: 3 }],
    });
  }

  /** New data on a live run: fetch the curves again, at most every SERIES_REFRESH_MS. */
  scheduleSeries() {
    if (this.seriesTimer !== null) return;
    const every = Math.max(SERIES_REFRESH_MS, 10 * (this.seriesTook || 0));
    const wait = Math.max(0, this.seriesAt + every - Date.now());
    this.seriesTimer = setTimeout(() => {
      this.seriesTimer = null;
      this.loadSeries();
    }, wait);
  }

  // -- analysis ----------------------------------------------------------------------------------------------------

  async loadAnalysis() {
    let doc;
    try {
      doc = await get(`/runs/${encodeURIComponent(this.runId)}/analysis`);
    } catch (exc) {
      this.analysisEl.replaceChildren(el("p", { class: "muted" }, `No analysis: ${exc.message}`));
      return;
    }
    const f = doc.figures || {};
    this.summaryExport.hidden = !f.cycles;
    this.eisExport.hidden = !f.nyquist;
    const parts = [];
    const box = (id) => el("div", { class: "chart", id });
    const boxes = [];
    if (f.cycles && f.cycles.cycle && f.cycles.cycle.length) {
      const c = f.cycles;
      const b1 = box("chart-cycles-capacity");
      const b2 = box("chart-cycles-ce");
      const cycleX = { label: "Cycle", values: c.cycle, whole: true };
      boxes.push(() => lineChart(b1, "cycles", { title: "Capacity by cycle", x: cycleX, series: [
        { label: "Charge (mAh)", axisLabel: "Capacity (mAh)", scale: "mAh", values: scaled(c.charge_ah, 1e3),
          points: true, decimals: 4 },
        { label: "Discharge (mAh)", scale: "mAh", values: scaled(c.discharge_ah, 1e3), points: true, decimals: 4,
          color: COLOURS[1] }] }));
      boxes.push(() => lineChart(b2, "ce", { title: "Coulombic efficiency and retention", x: cycleX, series: [
        { label: "CE (%)", axisLabel: "CE, retention (%)", scale: "%", values: scaled(c.ce, 100), points: true,
          decimals: 3 },
        { label: "Retention (%)", scale: "%", values: scaled(c.retention, 100), points: true, decimals: 2,
          color: COLOURS[2] }] }));
      parts.push(b1, b2);
    }
    if (f.profiles && f.profiles.length) {
      const b = box("chart-profiles");
      const cycles = [...new Set(f.profiles.map((p) => p.cycle))];
      boxes.push(() => xyChart(b, "profiles", { title: "Voltage profiles by cycle (charge dashed)",
        xLabel: "Capacity (mAh)", yLabel: "Voltage (V)", curves: f.profiles.map((p) => ({
          label: `cycle ${p.cycle}${p.direction ? ` ${p.direction}` : ""}`, x: scaled(p.capacity_ah, 1e3),
          y: p.voltage_v, color: COLOURS[cycles.indexOf(p.cycle) % COLOURS.length],
          dash: p.direction === "charge" ? [5, 4] : undefined })) }));
      parts.push(b);
    }
    if (f.nyquist && f.nyquist.length) {
      const b = box("chart-nyquist");
      const curves = [];
      f.nyquist.forEach((n, i) => {
        const color = COLOURS[i % COLOURS.length];
        curves.push({ label: `${n.label} (measured)`, x: n.z_real, y: n.minus_z_imag, color, points: true,
          lines: false });
        if (n.fit_z_real && n.fit_z_real.length) {
          curves.push({ label: `${n.label} (fit${n.circuit ? `: ${n.circuit}` : ""})`, x: n.fit_z_real,
            y: n.fit_minus_z_imag, color, dash: [6, 4] });
        }
      });
      boxes.push(() => xyChart(b, "nyquist", { title: "Nyquist, with the fitted circuit", xLabel: "Z′ (Ω)",
        yLabel: "−Z″ (Ω)", curves }));
      parts.push(b);
    }
    if (f.cv && f.cv.length) {
      const b = box("chart-cv");
      boxes.push(() => xyChart(b, "cv", { title: "Cyclic voltammetry by cycle", xLabel: "Voltage (V)",
        yLabel: "Current (mA)", curves: f.cv.map((c) => ({ label: new Set(f.cv.map((k) => k.step_index)).size > 1
          ? `step ${c.step_index}, CV cycle ${c.cv_cycle}` : `CV cycle ${c.cv_cycle}`, x: c.voltage_v,
          y: scaled(c.current_a, 1e3) })) }));
      parts.push(b);
    }
    const extra = [];
    if (f.conductivity) extra.push(conductivityTable(f.conductivity));
    extra.push(summaryOf(doc.analysis));
    this.analysisEl.replaceChildren(
      parts.length ? el("div", { class: "charts" }, parts) : el("p", { class: "muted" }, "No figures for this "
        + "run's steps (yet)."), ...extra);
    for (const make of boxes) make();
  }

  // -- events, protocol --------------------------------------------------------------------------------------------

  async loadEvents() {
    const doc = await get(`/runs/${encodeURIComponent(this.runId)}/events?after=${this.lastEvent}`);
    for (const e of doc.events) this.addEvent(e);
  }

  addEvent(e) {
    if (e.id <= this.lastEvent) return;
    this.lastEvent = e.id;
    this.eventsBody.append(el("tr", { class: `event-${e.kind}`, dataset: { kind: e.kind } },
      el("td", {}, timeEl(e.at)),
      el("td", { class: "num" }, e.test_time_s === null || e.test_time_s === undefined ? "–"
        : duration(e.test_time_s)),
      el("td", {}, e.kind), el("td", {}, e.message)));
  }

  async loadProgram() {
    let doc;
    try {
      doc = await get(`/runs/${encodeURIComponent(this.runId)}/program`);
    } catch (exc) {
      this.programEl.replaceChildren(el("p", { class: "muted" }, `Not available: ${exc.message}`));
      return;
    }
    const params = Object.entries(doc.parameters || {});
    this.programEl.replaceChildren(
      params.length ? el("p", {}, "Parameters: ", params.map(([k, v], i) => [i ? ", " : "", el("code", {},
        `${k} = ${typeof v === "object" ? JSON.stringify(v) : v}`)])) : null,
      el("details", { open: true }, el("summary", {}, `Protocol source${doc.protocol_file ? ` (${doc.protocol_file})`
        : ""}`), el("pre", { id: "protocol-source", tabindex: "0" }, doc.protocol_source || "–")),
      doc.plan ? el("details", {}, el("summary", {}, "Plan (what the station sends to the instrument)"),
        el("pre", { id: "plan", tabindex: "0" }, JSON.stringify(doc.plan, null, 2)))
        : el("p", { class: "muted" }, doc.plan_error || "No plan for this run."));
  }

  // -- actions -----------------------------------------------------------------------------------------------------

  async act(name) {
    const a = ACTIONS[name];
    const ok = await confirmAction({ title: `${a.label} run ${this.runId}?`, text: `${a.text} Channel `
      + `${this.doc.channel}, protocol ${this.doc.protocol || "?"}.`, confirmLabel: `${a.label} the run`,
    danger: a.danger });
    if (!ok) return;
    this.message.className = "";
    this.message.textContent = `${a.label}: asking the station…`;
    try {
      const answer = await post(`/runs/${encodeURIComponent(this.runId)}/${name}`);
      this.message.textContent = `${a.label}: done, the run is ${answer.state}`
        + (answer.message ? ` (${answer.message})` : "") + ".";
    } catch (exc) {
      this.message.className = "error";
      this.message.setAttribute("role", "alert");
      this.message.textContent = `${a.label} refused (${exc.status || "no answer"}): ${exc.message}`;
    }
    await this.refresh();
  }

  /** Read the run again: its state, its new events, and (when they changed) its curves and analysis. */
  async refresh() {
    const before = this.doc.state;
    try {
      this.setDoc(await get(`/runs/${encodeURIComponent(this.runId)}`));
    } catch {
      return;  // the stream brings the news later
    }
    this.renderDoc();
    if (this.series && this.doc.records !== this.series.records) this.scheduleSeries();
    if (TERMINAL.includes(this.doc.state) && !TERMINAL.includes(before)) this.loadAnalysis();
    try {
      await this.loadEvents();
    } catch {
      // likewise
    }
  }

  // -- the event stream --------------------------------------------------------------------------------------------

  onChannels(docs) {
    for (const d of docs) {
      if (d.run_id !== this.runId) continue;
      this.doc.live = d;
      if (!TERMINAL.includes(this.doc.state)) this.doc.state = d.state;
      this.renderDoc();
      if (this.series && d.records !== this.series.records) this.scheduleSeries();
    }
  }

  onRun(change) {
    if (change.run_id === this.runId) this.refresh();
  }

  onEvent(event) {
    if (event.run_id !== this.runId) return;
    this.refresh();  // the events, and the state: a stop may end the run without a `run` change on the stream
  }

  close() {
    if (this.seriesTimer !== null) clearTimeout(this.seriesTimer);
    if (this.ticker) clearInterval(this.ticker);
    if (window.stationRunPage === this) window.stationRunPage = null;
  }
}

function conductivityTable(c) {
  const rows = Object.entries(c).map(([key, value]) => el("tr", {}, el("th", { scope: "row" }, key),
    el("td", { class: "num" }, typeof value === "number" ? fixed(value, 6) : JSON.stringify(value))));
  return el("section", {}, el("h3", {}, "Conductivity"), el("table", { class: "list" }, el("tbody", {}, rows)));
}

/** The analysis' headline numbers as a definition list (the full document is one click away as JSON). */
function summaryOf(analysis) {
  if (!analysis) return el("p", { class: "muted" }, "No analysis.");
  return el("details", { class: "analysis-json" }, el("summary", {}, "Analysis document (JSON)"),
    el("pre", { tabindex: "0" }, JSON.stringify(analysis, null, 2)));
}
