// A sample's page: its record, its campaigns with their stages (and the operator's confirmation when a campaign
// waits for one), every run on it, and their capacities and coulombic efficiencies compared cycle by cycle.

import { get, post } from "./api.js";
import { xyChart } from "./charts.js";
import { confirmAction } from "./dialog.js";
import { displayState, duration, el, stateClass, TERMINAL, timeEl } from "./format.js";

/** Runs compared at most (their analysis is read one request each). */
const COMPARED = 12;
/** The page is read again at most this often (ms) while its runs change. */
const RELOAD_MS = 3000;

export class SamplePage {
  constructor(root, sampleId) {
    this.root = root;
    this.sampleId = sampleId;
    this.message = el("p", { id: "action-message", role: "status", "aria-live": "polite" });  // kept across reloads
    this.reloadTimer = null;
    this.runIds = new Set();
  }

  async load() {
    const [doc, campaigns] = await Promise.all([get(`/samples/${encodeURIComponent(this.sampleId)}`),
      get("/campaigns")]);
    this.doc = doc;
    const mine = campaigns.campaigns.filter((c) => c.sample_id === doc.sample_id);
    const details = await Promise.all(mine.map((c) => get(`/campaigns/${encodeURIComponent(c.campaign_id)}`)));
    this.compareEl = el("div", { id: "compare" }, el("p", { class: "muted" }, "Loading the runs' analysis…"));
    this.runIds = new Set(doc.runs.map((r) => r.run_id));
    const fact = (label, ...value) => [el("dt", {}, label), el("dd", {}, ...value)];
    const meta = Object.entries(doc.metadata || {});
    this.root.replaceChildren(
      el("nav", { class: "crumbs" }, el("a", { href: "#/" }, "Channels"), " › ", `sample ${doc.sample_id}`),
      el("div", { class: "page-head" }, el("h1", {}, "Sample ", el("code", {}, doc.sample_id))),
      this.message,
      el("div", { class: "two" },
        el("section", {}, el("h2", {}, "Record"), el("dl", { class: "facts" },
          ...fact("Name", doc.name || "–"), ...fact("Cell", doc.cell || "–"),
          ...fact("Cell file", doc.cell_file || "–"), ...fact("Operator", doc.operator || "–"),
          ...fact("Registered", timeEl(doc.created_at)), ...fact("Notes", doc.notes || "–"),
          ...meta.flatMap(([k, v]) => fact(k, v)))),
        el("section", {}, el("h2", {}, "Campaigns"), details.length ? details.map((c) => this.campaign(c))
          : el("p", { class: "muted" }, "No campaign on this sample."))),
      el("section", {}, el("h2", {}, "Runs"), this.runsTable(doc.runs)),
      el("section", {}, el("h2", {}, "Comparison"), this.compareEl));
    await this.compare(doc.runs.slice(-COMPARED));
  }

  campaign(c) {
    const stages = el("table", { class: "list" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Stage"), el("th", { scope: "col" }, "Protocol"),
        el("th", { scope: "col" }, "Where"), el("th", { scope: "col", class: "num" }, "Cycles"),
        el("th", { scope: "col" }, "Runs"))),
      el("tbody", {}, (c.stages || []).map((s, i) => el("tr", { class: i === c.stage.index ? "current" : null },
        el("td", {}, `${i + 1}. ${s.name}`), el("td", {}, s.protocol), el("td", {}, s.where || "–"),
        el("td", { class: "num" }, String(s.cycles)),
        el("td", {}, s.runs.map((r) => r.run_id ? el("a", { href: `#/run/${r.run_id}`, class: "run-link" },
          r.run_id) : null))))));
    const waiting = c.waiting && !["finished", "stopped", "failed"].includes(c.state);
    return el("article", { class: "campaign" },
      el("h3", {}, c.name, " ", el("span", { class: stateClass(c.state) }, c.state)),
      el("p", {}, `Stage ${Math.min(c.stage.index + 1, c.stage.count)} of ${c.stage.count}`,
        c.stage.name ? ` (${c.stage.name})` : "", c.location ? `, at ${c.location}` : "",
        c.message && c.message !== c.waiting ? `: ${c.message}` : ""),
      // a campaign another station runs is confirmed there: its engine is the one that reads the confirmation
      waiting ? el("p", { class: "waiting" }, `Waiting: ${c.waiting} `, c.here === false
        ? el("span", { class: "muted" }, "(another station runs this campaign: confirm it there)")
        : el("button", { type: "button", class: "primary", id: `confirm-${c.campaign_id}`,
          onclick: () => this.confirm(c) }, "Confirm…")) : null,
      c.confirm_pending ? el("p", { class: "muted" }, `Confirmed by ${c.confirm_pending.by || "?"}; the station `
        + "goes on at its next round.") : null,
      stages);
  }

  async confirm(c) {
    const ok = await confirmAction({ title: `Confirm campaign ${c.name}?`, text: `You confirm that ${c.waiting}. `
      + "The station then goes on with the campaign's next step.", confirmLabel: "Confirm" });
    if (!ok) return;
    try {
      await post(`/campaigns/${encodeURIComponent(c.campaign_id)}/confirm`);
      this.message.className = "";
      this.message.textContent = "Confirmed; the station goes on at its next round.";
      await this.load();
    } catch (exc) {
      this.message.className = "error";
      this.message.textContent = `Confirm refused (${exc.status || "no answer"}): ${exc.message}`;
    }
  }

  runsTable(runs) {
    if (!runs.length) return el("p", { class: "muted" }, "No run on this sample yet.");
    return el("div", { class: "table-wrap" }, el("table", { class: "list", id: "sample-runs" },
      el("thead", {}, el("tr", {}, ["Run", "State", "Protocol", "Channel", "Started (local)", "Duration (h:mm:ss)",
        "Records"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, runs.map((r) => {
        const word = displayState(r.state, r.message, r.contact_lost_s);
        return el("tr", {}, el("td", {}, el("a", { href: `#/run/${r.run_id}` }, r.run_id)),
          el("td", {}, el("span", { class: stateClass(word) }, word)), el("td", {}, r.protocol || "–"),
          el("td", {}, r.channel), el("td", {}, timeEl(r.started_at)), el("td", { class: "num" },
            duration(r.duration_s)), el("td", { class: "num" }, String(r.records)));
      }))));
  }

  async compare(runs) {
    const analyses = await Promise.all(runs.map((r) => get(`/runs/${encodeURIComponent(r.run_id)}/analysis`)
      .then((a) => ({ run: r, cycles: a.figures && a.figures.cycles })).catch(() => null)));
    const usable = analyses.filter((a) => a && a.cycles && a.cycles.cycle && a.cycles.cycle.length);
    if (!usable.length) {
      this.compareEl.replaceChildren(el("p", { class: "muted" }, "No run of this sample has complete cycles to "
        + "compare yet."));
      return;
    }
    const label = (a) => `${a.run.run_id} (${a.run.protocol || "?"})`;
    const capBox = el("div", { class: "chart", id: "chart-compare-capacity" });
    const ceBox = el("div", { class: "chart", id: "chart-compare-ce" });
    this.compareEl.replaceChildren(el("div", { class: "charts" }, capBox, ceBox));
    xyChart(capBox, "compare-capacity", { title: "Discharge capacity by cycle", xLabel: "Cycle", wholeX: true,
      yLabel: "Discharge capacity (mAh)", curves: usable.map((a) => ({ label: label(a), x: a.cycles.cycle,
        y: a.cycles.discharge_ah.map((v) => (v === null ? null : v * 1e3)), points: true })) });
    xyChart(ceBox, "compare-ce", { title: "Coulombic efficiency by cycle", xLabel: "Cycle", yLabel: "CE (%)",
      wholeX: true, curves: usable.map((a) => ({ label: label(a), x: a.cycles.cycle,
        y: a.cycles.ce.map((v) => (v === null ? null : v * 100)), points: true })) });
  }

  /** Read the page again soon (at most every RELOAD_MS): a run of this sample changed, or a campaign may have. */
  scheduleReload() {
    if (this.reloadTimer !== null) return;
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = null;
      this.load().catch(() => {});
    }, RELOAD_MS);
  }

  onChannels() {}

  onRun(change) {
    // a run of this sample changed state, or a new run started (perhaps by this sample's campaign)
    if (this.runIds.has(change.run_id) || !TERMINAL.includes(change.state)) this.scheduleReload();
  }

  onEvent(event) {
    if (this.runIds.has(event.run_id)) this.scheduleReload();
  }

  close() {
    if (this.reloadTimer !== null) clearTimeout(this.reloadTimer);
  }
}
