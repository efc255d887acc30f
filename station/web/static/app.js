// The station dashboard: the page shell's one script (an ES module; its parts are small modules next to it).
//
// Why this way: plain JavaScript modules served as they are, no framework and no build step, so what ships in the
// package is what runs, and a lab PC without internet needs nothing else. Plots are drawn by uPlot (vendored in
// vendor/uplot, MIT): canvas, about 50 kB, and fast at hundreds of thousands of points, where SVG would make one
// DOM node per point. The channel grid is a plain table built once and updated cell by cell from the service's
// server-sent events (EventSource sends the session cookie and resumes by itself), which keeps 2048 channels
// usable. Pages are chosen by the address' hash (#/, #/run/ID, #/sample/ID), so the browser's back button and
// bookmarks work and the service serves one page shell.

import { checkSession, get, login, logout, onLoggedOut, openStream, session } from "./api.js";
import { clearCharts } from "./charts.js";
import { el, localTime, TIME_ZONE } from "./format.js";
import { Grid } from "./grid.js";
import { LabPage } from "./lab.js";
import { RunPage } from "./run.js";
import { SamplePage } from "./sample.js";

const main = document.getElementById("main");
const userEl = document.getElementById("user");
const liveEl = document.getElementById("live");
const labEl = document.getElementById("lab");
const labLink = document.getElementById("nav-lab");

/** How often the header asks whether the lab's database is reached (ms); the browser tests may set a shorter one. */
const LAB_EVERY_MS = 10000;
let labTimer = null;

// A station with a lab database forwards its runs there every round; while that database is away it buffers in
// its own store, and says so here (nothing changes for its cells).
function stopLab() {
  if (labTimer !== null) clearInterval(labTimer);
  labTimer = null;
  labEl.hidden = true;
}

async function showLab() {
  if (!session.user) return;  // logged out: nothing to ask (an answer of 401 would show the login form again)
  let info;
  try {
    info = await get("/station");
  } catch {
    return;  // the stream's badge already says when the station does not answer
  }
  session.station = info.station;
  const lab = info.lab;
  labEl.hidden = !lab;
  labLink.hidden = !lab;
  if (!lab) return;
  labEl.className = lab.buffering ? "lab-buffering" : lab.backlog ? "lab-backlog" : "lab-ok";
  labEl.textContent = lab.buffering ? "lab database: buffering" : lab.backlog ? "lab database: catching up"
    : "lab database";
  labEl.title = lab.buffering
    ? `the lab's database ${lab.database} is not reached since ${localTime(lab.buffering_since)}: this station keeps `
      + `everything in its own store and forwards it when the database is back (${lab.why || ""})`
    : `runs are forwarded to ${lab.database}` + (lab.forwarded_at ? `; all in at ${localTime(lab.forwarded_at)}` : "");
}
const logoutButton = document.getElementById("logout");
const nav = document.getElementById("nav");

let view = null;
let stream = null;

/** How long a tab in the background keeps its event stream (ms); the browser tests may set a shorter one. */
const HIDDEN_STREAM_MS = 15000;

function setLive(state) {
  liveEl.textContent = state === "live" ? "live" : state === "closed" ? "not connected" : "reconnecting…";
  liveEl.className = `live-${state}`;
  liveEl.title = state === "live" ? "receiving the station's events as they happen"
    : "the event stream is down; values on this page may be old";
}

function dispatch(method) {
  return (data) => {
    if (view && view[method]) view[method](data);
  };
}

function openEvents() {
  if (stream) stream.close();
  stream = openStream({
    channels: dispatch("onChannels"),
    run: dispatch("onRun"),
    event: dispatch("onEvent"),
    chambers: dispatch("onChambers"),
    reset: () => route(),  // the stream lost track: read everything again
  }, setLive);
}

function closeEvents() {
  if (stream) stream.close();
  stream = null;
  setLive("closed");
}

function leaveView() {
  if (view && view.close) view.close();
  view = null;
  clearCharts();
}

function showLogin(note = "") {
  leaveView();
  closeEvents();
  stopLab();
  userEl.textContent = "";
  logoutButton.hidden = true;
  nav.hidden = true;
  document.title = "Log in – battery test station";
  const input = el("input", { id: "token", name: "token", type: "password", autocomplete: "current-password",
    required: true, size: 48, "aria-describedby": "token-help" });
  const error = el("p", { id: "login-error", class: "error", role: "alert" }, note);
  const form = el("form", { id: "login-form", class: "login" },
    el("h1", {}, "Log in"),
    el("label", { for: "token" }, "Token"), input,
    el("p", { id: "token-help", class: "muted" }, "The station's token (the ", el("code", {}, "api-token"),
      " file in its data directory) or your own named token (", el("code", {}, "station token new NAME"), ")."),
    el("button", { type: "submit", class: "primary" }, "Log in"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      await login(input.value.trim());
    } catch (exc) {
      error.textContent = exc.message;
      input.select();
      return;
    }
    input.value = "";
    started();
  });
  main.replaceChildren(form);
  input.focus();
}

function started() {
  userEl.textContent = session.user;
  userEl.title = `logged in as ${session.user}; times are shown in ${TIME_ZONE} (UTC on hover)`;
  logoutButton.hidden = false;
  nav.hidden = false;
  openEvents();
  if (labTimer === null) labTimer = setInterval(showLab, window.stationLabEveryMs ?? LAB_EVERY_MS);
  showLab().then(route);  // a page needs the station's name first (another station's run is read-only here)
}

async function route() {
  if (!session.user) return;
  leaveView();
  delete main.dataset.ready;
  const hash = location.hash.replace(/^#\/?/, "");
  const [kind, ...rest] = hash.split("/");
  const id = decodeURIComponent(rest.join("/"));
  let next;
  if (kind === "run" && id) {
    next = new RunPage(main, id);
    document.title = `Run ${id} – battery test station`;
  } else if (kind === "sample" && id) {
    next = new SamplePage(main, id);
    document.title = `Sample ${id} – battery test station`;
  } else if (kind === "lab") {
    next = new LabPage(main);
    document.title = "Lab – battery test station";
  } else {
    next = new Grid(main);
    document.title = "Channels – battery test station";
  }
  view = next;
  main.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  main.setAttribute("aria-busy", "true");
  try {
    await next.load();
  } catch (exc) {
    if (view === next && exc.status !== 401) {
      main.replaceChildren(el("p", { class: "error", role: "alert" }, exc.message),
        el("p", {}, el("a", { href: "#/" }, "Back to the channels")));
    }
  } finally {
    main.removeAttribute("aria-busy");
  }
  if (view === next) main.dataset.ready = kind || "grid";  // the browser tests wait for this
}

logoutButton.addEventListener("click", async () => {
  try {
    await logout();
  } finally {
    showLogin("Logged out.");
  }
});

onLoggedOut(() => showLogin("Your session has ended (or the station restarted); log in again."));
window.addEventListener("hashchange", () => route());
// A page the browser leaves, or keeps in its back-forward cache, lets go of its event stream: a browser opens a
// handful of connections to one server (six over HTTP/1.1), and streams held by pages nobody sees left a newly
// opened page waiting for one. Brought back from that cache, the page reads everything again and reconnects.
window.addEventListener("pagehide", () => closeEvents());
// For the same reason a tab left in the background lets go of its stream after a while (several tabs of run pages
// would otherwise hold every connection), and reads everything again when it is looked at.
let hiddenTimer = null;
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") {
    if (stream && hiddenTimer === null) {
      hiddenTimer = setTimeout(() => {
        hiddenTimer = null;
        if (document.visibilityState === "hidden") closeEvents();
      }, window.stationHiddenStreamMs ?? HIDDEN_STREAM_MS);
    }
  } else if (hiddenTimer !== null) {
    clearTimeout(hiddenTimer);
    hiddenTimer = null;
  } else if (!stream && session.user) {
    openEvents();
    route();
  }
});
window.addEventListener("pageshow", (event) => {
  if (event.persisted && session.user) {
    openEvents();
    route();
  }
});

async function boot() {
  try {
    if (await checkSession()) started();
    else showLogin();
  } catch (exc) {
    main.replaceChildren(el("p", { class: "error", role: "alert" }, exc.message));
  }
}

boot();
