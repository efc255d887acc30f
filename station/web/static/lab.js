// The lab page: every station of the lab (when each was last seen, where its service listens) and every run of
// every station, read from the lab's database. A run of another station opens read-only here: its cell is watched
// by that station, and an action on it is taken there (or with `station stop RUN` and one's own token).

import { get } from "./api.js";
import { displayState, duration, el, stateClass, timeEl } from "./format.js";

/** A station not seen for longer than this (s) is shown as not running (its service reports every rescan). */
const SEEN_WITHIN_S = 60;
/** Rows of runs shown at most, newest first. */
const SHOWN = 2000;

export class LabPage {
  constructor(root) {
    this.root = root;
  }

  async load() {
    const doc = await get("/lab");
    const runs = doc.runs.slice(-SHOWN).reverse();
    this.root.replaceChildren(
      el("nav", { class: "crumbs" }, el("a", { href: "#/" }, "Channels"), " › ", "lab"),
      el("div", { class: "page-head" }, el("h1", {}, "Lab")),
      doc.reachable
        ? el("p", { class: "muted" }, `Every station's runs, from the lab's database ${doc.database}. This is station `,
          el("strong", {}, doc.this_station), ".")
        : el("p", { class: "error", role: "alert" }, `The lab's database ${doc.database || ""} cannot be reached: `
          + `only this station's own runs are shown (station ${doc.this_station}).`),
      el("section", {}, el("h2", {}, "Stations"), this.stationsTable(doc.stations, doc.this_station)),
      el("section", {}, el("h2", {}, `Runs (${doc.runs.length}${doc.runs.length > SHOWN ? `, newest ${SHOWN}` : ""})`),
        this.runsTable(runs, doc.this_station)));
  }

  stationsTable(stations, me) {
    if (!stations.length) return el("p", { class: "muted" }, "No station has reported to the lab's database yet.");
    return el("div", { class: "table-wrap" }, el("table", { class: "list", id: "lab-stations" },
      el("thead", {}, el("tr", {}, ["Station", "Service", "Last seen (local)", "API", "Version"]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, stations.map((s) => {
        const up = s.seen_s_ago <= SEEN_WITHIN_S;
        return el("tr", { "data-station": s.name },
          el("td", {}, s.name, s.name === me ? " (this station)" : ""),
          el("td", {}, el("span", { class: stateClass(up ? "running" : "stopped") }, up ? "running" : "not seen")),
          el("td", {}, timeEl(s.seen_at)), el("td", {}, s.api_url || "–"), el("td", {}, s.version || "–"));
      }))));
  }

  runsTable(runs, me) {
    if (!runs.length) return el("p", { class: "muted" }, "No run yet.");
    return el("div", { class: "table-wrap" }, el("table", { class: "list", id: "lab-runs" },
      el("thead", {}, el("tr", {}, ["Run", "Station", "State", "Channel", "Protocol", "Sample", "Started (local)",
        "Duration (h:mm:ss)", "Records"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, runs.map((r) => {
        const word = displayState(r.state, r.message, r.contact_lost_s);
        return el("tr", { "data-run": r.run_id },
          el("td", {}, el("a", { href: `#/run/${r.run_id}` }, r.run_id)),
          el("td", {}, r.station || "–", r.station && r.station !== me ? "" : " (here)"),
          el("td", {}, el("span", { class: stateClass(word) }, word)), el("td", {}, r.channel),
          el("td", {}, r.protocol || "–"),
          el("td", {}, r.sample ? el("a", { href: `#/sample/${r.sample}` }, r.sample) : "–"),
          el("td", {}, timeEl(r.started_at)), el("td", { class: "num" }, duration(r.duration_s)),
          el("td", { class: "num" }, String(r.records)));
      }))));
  }
}
