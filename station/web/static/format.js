// Numbers, units and times as the page shows them, and a small DOM builder (text is always set as text, never as
// HTML, so a sample name or an event message cannot inject markup).

/** Build an element: el("td", {class: "num", title: "..."}, "text", child, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const DASH = "–";

/** A number with fixed decimals, or a dash for "the instrument said nothing". */
export function fixed(value, decimals) {
  return value === null || value === undefined || Number.isNaN(value) ? DASH : Number(value).toFixed(decimals);
}

export const volts = (v) => fixed(v, 4);
export const milliamps = (a) => fixed(a === null || a === undefined ? a : a * 1e3, 3);
export const milliampHours = (ah) => fixed(ah === null || ah === undefined ? ah : ah * 1e3, 3);

/** A duration in s as the lab reads it: 0:04:05, 27:13:00, 3 d 04:00:00. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return DASH;
  const s = Math.max(0, Math.round(seconds));
  const days = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const hms = `${days ? String(h).padStart(2, "0") : h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`;
  return days ? `${days} d ${hms}` : hms;
}

/** A time as a Date: the API gives ISO 8601 UTC strings, the event stream Unix seconds. */
export function toDate(value) {
  if (value === null || value === undefined) return null;
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

const LOCAL = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  hour12: false, timeZoneName: "short",
});

/** The lab's time zone: the browser's, which on the lab PC is the lab's. */
export const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;

export function utcText(date) {
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** A time as text in the lab's time zone, with its UTC in brackets (for a title, which holds no markup). */
export function localTime(value) {
  const date = toDate(value);
  return date ? `${LOCAL.format(date)} (${utcText(date)})` : DASH;
}

/** A <time> in the lab's time zone with UTC on hover (the title) and the ISO value machine-readable. */
export function timeEl(value) {
  const date = toDate(value);
  if (!date) return el("span", {}, DASH);
  return el("time", { datetime: date.toISOString(), title: utcText(date) }, LOCAL.format(date));
}

/** The state a channel shows, by word and colour: the run's state, with the two the lab must see at once. */
export function displayState(state, message, contactLostS) {
  if (contactLostS !== null && contactLostS !== undefined && ["running", "paused", "started"].includes(state)) {
    return "lost contact";
  }
  if (state === "stopped" && message && message.startsWith("instrument protection")) return "protected";
  if (state === "started") return "running";
  if (["created", "validated", "starting"].includes(state)) return "starting";
  return state || "free";
}

/** The badge for a displayed state: colour from the stylesheet's class, and the word itself. */
export function stateBadge(word) {
  return el("span", { class: `state state-${word.replace(/ /g, "-")}` }, word);
}

export function stateClass(word) {
  return `state state-${word.replace(/ /g, "-")}`;
}

export const TERMINAL = ["finished", "stopped", "failed"];
