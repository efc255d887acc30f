// The channel grid: one row per configured channel, kept live from the event stream. Only the rows in view (and a
// few around them) are in the document: a table of 2048 rows costs the browser ~25 ms of layout for every changed
// cell, so at 20 updates a second it would do nothing else. Rows have one fixed height, spacers stand for the rows
// out of view, and a row's cells are rewritten only when it is in view and their text changed (one DOM pass per
// animation frame). Filters choose which rows the window runs over, without rebuilding any.
//
// The keyboard reaches every row, drawn or not: the grid keeps which row has the focus (a Row, not an element), and
// the arrow keys, Page Up/Down and Home/End move it through all the rows the filters let through, scrolling the
// window so that the row is drawn and in view before it takes the focus. Enter opens the row's run.

import { get } from "./api.js";
import {
  displayState, duration, el, milliampHours, milliamps, stateClass, TERMINAL, toDate, utcText, volts,
} from "./format.js";

const COLUMNS = [
  { key: "channel", label: "Channel", width: "8.6rem" },
  { key: "state", label: "State", width: "7.6rem" },  // "lost contact" whole
  { key: "sample", label: "Sample", width: "7.6rem" },
  { key: "protocol", label: "Protocol", width: "auto" },
  { key: "tag", label: "Tag", width: "4.5rem" },
  { key: "cycle", label: "Cycle", width: "4.2rem", num: true },
  { key: "step", label: "Step", width: "3.9rem", num: true },
  { key: "voltage", label: "V (V)", width: "5rem", num: true },
  { key: "current", label: "I (mA)", width: "5.2rem", num: true },
  { key: "capacity", label: "Step cap. (mAh)", width: "5.6rem", num: true },
  { key: "time", label: "Time in run (h:mm:ss)", width: "8.6rem", num: true },
  { key: "eta", label: "ETA (h:mm:ss)", width: "8.6rem", num: true },
  { key: "chamber", label: "Chamber (°C)", width: "6.4rem", num: true },
  { key: "alarms", label: "Alarms", width: "9rem" },
];

export const STATE_WORDS = ["free", "starting", "running", "paused", "finished", "stopped", "failed", "protected",
  "lost contact"];

/** Every row's height in px (style.css gives the same): what lets the page place rows it has not drawn. */
const ROW_H = 28;
/** Rows drawn above and below the visible ones, so a quick scroll does not show blanks. */
const OVERSCAN = 12;

/** One channel's row: what the page knows of it, and its cells' last text (so unchanged cells are not touched). */
class Row {
  constructor(doc) {
    this.channel = doc.channel;
    this.instrument = doc.instrument;
    this.run = doc.run;          // the run doc of the channel's current run, or of its last one once ended
    this.live = doc.live;        // the latest live doc of the run (step, cycle, V, I, ...)
    this.alarms = [];            // alarm events of the current run seen on the stream
    this.chamber = doc.chamber || null;  // the climate chamber the channel sits in: its latest reading
    this.cells = {};
    this.text = {};
    this.dirty = true;
    this.tr = el("tr", { dataset: { channel: doc.channel }, tabindex: "-1" });
    for (const col of COLUMNS) {
      const td = el("td", { dataset: { col: col.key }, class: col.num ? "num" : null });
      this.cells[col.key] = td;
      this.tr.append(td);
    }
  }

  get state() {
    const run = this.run;
    if (!run) return "free";
    const live = this.live && this.live.run_id === run.run_id && !TERMINAL.includes(run.state) ? this.live : null;
    return displayState(live ? live.state : run.state, run.message, live ? live.contact_lost_s : run.contact_lost_s);
  }

  /** Set one cell's text (and, for links, its target); the DOM is touched only when something differs. */
  set(key, text, { href = null, title = null, cls = null } = {}) {
    const sig = `${text}|${href}|${title}|${cls}`;
    if (this.text[key] === sig) return;
    this.text[key] = sig;
    const td = this.cells[key];
    td.title = title || "";
    if (href) td.replaceChildren(el("a", { href, class: cls }, text));
    else if (cls) td.replaceChildren(el("span", { class: cls }, text));
    else td.textContent = text;
  }

  render() {
    this.dirty = false;
    const run = this.run;
    const active = run && !TERMINAL.includes(run.state);
    const live = active && this.live && this.live.run_id === run.run_id ? this.live : null;
    const state = this.state;
    this.set("channel", this.channel, run ? { href: `#/run/${run.run_id}`, title: `run ${run.run_id}` } : {});
    this.set("state", state, { cls: stateClass(state), title: run && run.message ? run.message : null });
    this.set("sample", run && run.sample ? run.sample : run && run.cell ? run.cell : "",
      run && run.sample ? { href: `#/sample/${run.sample}`, title: `cell ${run.cell || "?"}` }
        : { title: run && run.cell ? `cell ${run.cell} (no sample registered)` : null, cls: "muted" });
    this.set("protocol", run ? run.protocol || "" : "");
    this.set("tag", live && live.tag ? live.tag : "");
    this.set("cycle", live && live.cycle !== null && live.cycle !== undefined ? String(live.cycle) : "");
    this.set("step", live && live.step !== null && live.step !== undefined ? String(live.step) : "");
    this.set("voltage", live ? volts(live.voltage_v) : "");
    this.set("current", live ? milliamps(live.current_a) : "");
    this.set("capacity", live ? milliampHours(live.step_capacity_ah) : "");
    // the instrument's test time while it answers; none while contact is lost (its last word is stale)
    const lost = live && live.contact_lost_s !== null && live.contact_lost_s !== undefined;
    const time = live && live.test_time_s !== null ? live.test_time_s : run && !lost ? run.duration_s : null;
    this.set("time", run ? duration(time) : "");
    this.set("eta", live && live.eta_s !== null && live.eta_s !== undefined ? duration(live.eta_s) : "");
    // the chamber's reading (the run's, else the chamber's own: a channel in a chamber shows it with no run);
    // "→ set point" while the run waits for the chamber to get there
    const own = this.chamber;
    const reading = live && live.chamber_c !== null && live.chamber_c !== undefined ? live.chamber_c
      : own && own.temperature_c !== null && own.temperature_c !== undefined ? own.temperature_c : null;
    const toward = live && live.waiting && live.chamber_set_c !== null && live.chamber_set_c !== undefined
      ? ` → ${live.chamber_set_c}` : "";
    const shown = reading !== null ? reading.toFixed(1) : own && own.error ? "no reading" : toward ? "–" : "";
    const about = live && live.waiting ? live.waiting
      : own ? `chamber ${own.name}` + (own.set_point_c !== null ? `, set point ${own.set_point_c} °C` : "")
        + (own.error ? `: ${own.error}` : "") : null;
    this.set("chamber", shown + toward, { title: about });
    const alarms = [];
    if (live && live.contact_lost_s !== null && live.contact_lost_s !== undefined) {
      alarms.push(`no contact for ${duration(live.contact_lost_s)}`);
    }
    if (active && (run.stop_pending || (live && live.stop_requested))) alarms.push("stop pending");
    if (run && ["failed", "protected"].includes(state) && run.message) alarms.push(run.message);
    for (const a of this.alarms) alarms.push(a);
    this.set("alarms", alarms.length ? (alarms.length > 1 ? `${alarms.length}: ` : "") + alarms[alarms.length - 1]
      : "", { title: alarms.join("\n") || null, cls: alarms.length ? "alarm" : null });
    this.tr.dataset.state = state;
  }
}

export class Grid {
  constructor(root) {
    this.root = root;
    this.rows = new Map();       // channel -> Row, in the station's order
    this.byRun = new Map();      // run id -> Row
    this.shown = [];             // the rows the filters let through, in order
    this.attached = new Set();   // the rows in the document now
    this.pending = new Set();
    this.frame = null;
    this.windowFrame = null;
    this.fetching = new Set();
    this.focused = null;         // the row the keyboard is on (drawn or not)
  }

  async load() {
    const [channels, runs] = await Promise.all([get("/channels"), get("/runs?limit=5000")]);
    const last = new Map();      // each channel's newest run (of the last 5000), to show how its last run ended
    for (const run of runs.runs) last.set(run.channel, run);
    this.rows.clear();
    this.byRun.clear();
    for (const doc of channels.channels) {
      if (!doc.run && last.has(doc.channel) && TERMINAL.includes(last.get(doc.channel).state)) {
        doc.run = last.get(doc.channel);
      }
      const row = new Row(doc);
      this.rows.set(row.channel, row);
      if (row.run) this.byRun.set(row.run.run_id, row);
    }
    this.build(channels.channels);
    this.applyFilter();
  }

  build(channels) {
    const instruments = [...new Set(channels.map((c) => c.instrument))];
    this.filters = {
      instrument: el("select", { id: "filter-instrument", onchange: () => this.applyFilter() },
        el("option", { value: "" }, "all instruments"), instruments.map((i) => el("option", { value: i }, i))),
      state: el("select", { id: "filter-state", onchange: () => this.applyFilter() },
        el("option", { value: "" }, "all states"),
        el("option", { value: "available" }, "available (no active run)"),
        STATE_WORDS.map((s) => el("option", { value: s }, s))),
      sample: el("input", { id: "filter-sample", type: "search", placeholder: "sample, cell or protocol", size: 24,
        oninput: () => this.applyFilter() }),
    };
    this.count = el("span", { id: "grid-count", class: "muted", "aria-live": "polite" });
    const spacer = () => el("tr", { class: "spacer", "aria-hidden": "true" }, el("td", { colspan: COLUMNS.length }));
    this.top = spacer();
    this.bottom = spacer();
    this.body = el("tbody", {}, this.top, this.bottom);
    this.table = el("table", { id: "grid", class: "grid", "aria-rowcount": this.rows.size + 1 },
      el("colgroup", {}, COLUMNS.map((c) => el("col", { style: `width:${c.width}` }))),
      el("thead", {}, el("tr", { "aria-rowindex": 1 }, COLUMNS.map((c) => el("th", { scope: "col",
        class: c.num ? "num" : null }, c.label)))),
      this.body);
    this.wrap = el("div", { class: "grid-wrap", tabindex: "0", "aria-label": "channels; scroll for more" },
      this.table);
    this.wrap.addEventListener("scroll", () => this.scheduleWindow(), { passive: true });
    this.wrap.addEventListener("keydown", (event) => this.onKey(event));
    this.wrap.addEventListener("focusin", (event) => {
      const tr = event.target.closest && event.target.closest("tr[data-channel]");
      if (tr) this.focused = this.rows.get(tr.dataset.channel) || this.focused;  // a click or a Tab onto a row
    });
    this.resize = new ResizeObserver(() => this.scheduleWindow());
    this.resize.observe(this.wrap);
    this.root.replaceChildren(
      el("div", { class: "toolbar", role: "search" },
        el("h1", {}, "Channels"),
        el("label", {}, "Instrument ", this.filters.instrument),
        el("label", {}, "State ", this.filters.state),
        el("label", {}, "Sample ", this.filters.sample),
        this.count),
      this.wrap);
  }

  applyFilter() {
    const inst = this.filters.instrument.value;
    const state = this.filters.state.value;
    const text = this.filters.sample.value.trim().toLowerCase();
    this.shown = [];
    for (const row of this.rows.values()) {
      const run = row.run;
      const hay = run ? `${run.sample || ""} ${run.cell || ""} ${run.protocol || ""}`.toLowerCase() : "";
      const word = row.state;
      const stateOk = !state || word === state || (state === "available" && (word === "free" || !run
        || TERMINAL.includes(run.state)));
      if ((!inst || row.instrument === inst) && stateOk && (!text || hay.includes(text))) {
        this.shown.push(row);
      }
    }
    this.count.textContent = `${this.shown.length} of ${this.rows.size} channels`;
    this.renderWindow();
  }

  scheduleWindow() {
    if (this.windowFrame !== null) return;
    this.windowFrame = requestAnimationFrame(() => {
      this.windowFrame = null;
      this.renderWindow();
    });
  }

  /** Put the rows in view (and OVERSCAN around them) in the document, spacers for the others. */
  renderWindow() {
    const view = this.wrap.clientHeight || 800;
    const first = Math.max(0, Math.floor(this.wrap.scrollTop / ROW_H) - OVERSCAN);
    const slice = this.shown.slice(first, first + Math.ceil(view / ROW_H) + 2 * OVERSCAN);
    this.top.style.height = `${first * ROW_H}px`;
    this.bottom.style.height = `${(this.shown.length - first - slice.length) * ROW_H}px`;
    const same = slice.length === this.attached.size && slice.every((r) => this.attached.has(r));
    if (!same) {
      // taking a focused row out of the document, even to put it straight back, loses the focus: give it back, or,
      // when the row scrolled out of the window, keep it on the grid's box so the keys still reach the grid
      const active = document.activeElement;
      const hadFocus = active && this.body.contains(active);
      slice.forEach((r, i) => r.tr.setAttribute("aria-rowindex", String(first + i + 2)));
      this.body.replaceChildren(this.top, ...slice.map((r) => r.tr), this.bottom);
      this.attached = new Set(slice);
      if (hadFocus && document.activeElement !== active) {
        if (this.body.contains(active)) active.focus({ preventScroll: true });
        else this.wrap.focus({ preventScroll: true });
      }
    }
    for (const r of slice) if (r.dirty) r.render();
  }

  // -- the keyboard -------------------------------------------------------------------------------------------------

  /** Rows a Page Up/Down moves: those the box shows below its header, less one kept for context. */
  pageRows() {
    const header = this.table.tHead ? this.table.tHead.offsetHeight : ROW_H;
    return Math.max(1, Math.floor((this.wrap.clientHeight - header) / ROW_H) - 1);
  }

  onKey(event) {
    if (event.altKey || event.metaKey || !this.shown.length) return;
    if (event.target !== this.wrap && !(event.target.matches && event.target.matches("tr[data-channel], a"))) return;
    let at = this.focused ? this.shown.indexOf(this.focused) : -1;
    if (at < 0) at = Math.min(this.shown.length - 1, Math.floor(this.wrap.scrollTop / ROW_H));  // the top row in view
    const moves = {
      ArrowDown: at + 1, ArrowUp: at - 1, PageDown: at + this.pageRows(), PageUp: at - this.pageRows(),
      Home: 0, End: this.shown.length - 1,
    };
    if (event.key === "Enter" && event.target.matches && event.target.matches("tr[data-channel]")) {
      const run = this.focused && this.focused.run;
      if (run) location.hash = `#/run/${run.run_id}`;
      return;
    }
    if (!(event.key in moves)) return;
    event.preventDefault();  // the box must not scroll by itself as well
    const fromBox = event.target === this.wrap && !this.focused;
    this.focusRow(Math.max(0, Math.min(this.shown.length - 1, fromBox ? at : moves[event.key])));
  }

  /** Give the focus to the index-th shown row: scroll it into view (under the sticky header), draw the window now,
   * then focus the row's element. The row's place is first reckoned from its index (so that it gets drawn), then
   * measured: borders and the header's height are not whole multiples of a row. */
  focusRow(index) {
    const row = this.shown[index];
    const header = this.table.tHead ? this.table.tHead.offsetHeight : ROW_H;
    const top = index * ROW_H;
    const view = this.wrap.clientHeight - header;
    if (top < this.wrap.scrollTop) this.wrap.scrollTop = top;
    else if (top + ROW_H > this.wrap.scrollTop + view) this.wrap.scrollTop = top + ROW_H - view;
    this.focused = row;
    this.renderWindow();
    const box = this.wrap.getBoundingClientRect();
    const th = this.table.tHead && this.table.tHead.rows[0] ? this.table.tHead.rows[0].cells[0] : null;
    const from = th ? th.getBoundingClientRect().bottom : box.top + this.wrap.clientTop;
    const to = box.top + this.wrap.clientTop + this.wrap.clientHeight;
    const r = row.tr.getBoundingClientRect();
    if (r.top < from) this.wrap.scrollTop -= Math.ceil(from - r.top);
    else if (r.bottom > to) this.wrap.scrollTop += Math.ceil(r.bottom - to);
    this.renderWindow();
    row.tr.focus({ preventScroll: true });
  }

  touch(row) {
    row.dirty = true;
    this.pending.add(row);
    if (this.frame === null) {
      this.frame = requestAnimationFrame(() => {
        this.frame = null;
        for (const r of this.pending) if (this.attached.has(r)) r.render();
        this.pending.clear();
        if (this.filters.state.value || this.filters.sample.value) this.applyFilter();  // a row may go or come
      });
    }
  }

  /** A run the grid does not know yet (started elsewhere) or whose state changed: read its document once. */
  async refreshRun(runId) {
    if (this.fetching.has(runId)) return;
    this.fetching.add(runId);
    try {
      const doc = await get(`/runs/${encodeURIComponent(runId)}`);
      const row = this.rows.get(doc.channel);
      if (!row) return;
      if (row.run && row.run.run_id !== doc.run_id) {
        if (toDate(row.run.created_at) > toDate(doc.created_at)) return;  // an older run's late news
        this.byRun.delete(row.run.run_id);
        row.alarms = [];
      }
      row.run = doc;
      if (doc.live) row.live = doc.live;
      this.byRun.set(doc.run_id, row);
      this.touch(row);
    } catch {
      // the next update tries again
    } finally {
      this.fetching.delete(runId);
    }
  }

  close() {
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    if (this.windowFrame !== null) cancelAnimationFrame(this.windowFrame);
    if (this.resize) this.resize.disconnect();
    this.frame = this.windowFrame = null;
  }

  // -- the event stream --------------------------------------------------------------------------------------------

  onChannels(docs) {
    for (const doc of docs) {
      const row = this.rows.get(doc.channel);
      if (!row) continue;
      row.live = doc;
      if (!row.run || row.run.run_id !== doc.run_id) {
        this.refreshRun(doc.run_id);
        continue;
      }
      if (row.run.state !== doc.state) row.run.state = doc.state;
      this.touch(row);
    }
  }

  onChambers(docs) {
    for (const doc of docs) {
      for (const channel of doc.channels) {
        const row = this.rows.get(channel);
        if (!row) continue;
        row.chamber = doc;
        this.touch(row);
      }
    }
  }

  onRun(change) {
    const row = this.rows.get(change.channel);
    if (row && row.run && row.run.run_id === change.run_id) {
      row.run.state = change.state;
      this.touch(row);
    } else if (row && (!row.run || TERMINAL.includes(row.run.state)) && !TERMINAL.includes(change.state)) {
      // a run started on a channel with none going: its state shows at once, its document (protocol, sample, ...)
      // follows from refreshRun; stamped now, so that a late document of the channel's older run cannot replace it
      if (row.run) this.byRun.delete(row.run.run_id);
      row.run = { run_id: change.run_id, channel: change.channel, state: change.state,
        created_at: new Date().toISOString() };
      row.alarms = [];
      this.byRun.set(change.run_id, row);
      this.touch(row);
    }
    this.refreshRun(change.run_id);  // the message, end reason and duration come with the run's document
  }

  onEvent(event) {
    const row = this.byRun.get(event.run_id);
    if (!row) return;
    // an operator's stop, a safe state or an alarm may end the run without a `run` change on the stream: read the
    // run's document again (events are rare next to the channels' updates)
    this.refreshRun(event.run_id);
    if (event.kind !== "alarm") return;
    const at = toDate(event.at);
    row.alarms.push(at ? `${event.message} (${utcText(at)})` : event.message);
    this.touch(row);
  }
}
