// The station API as the page uses it: the session cookie (sent by the browser, HttpOnly, so this code never sees
// it), the CSRF value every state-changing request must carry, and one-line errors as the API words them.

const API = "/api/v1";

/** The session: who is logged in and the CSRF value of their cookie; null while logged out. */
export const session = { user: null, csrf: null };

/** An API refusal or failure, with the API's own one-line message and its HTTP status. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Listeners told when a request comes back 401 (the cookie expired, the service restarted): show the login. */
const loggedOutListeners = [];
export function onLoggedOut(listener) {
  loggedOutListeners.push(listener);
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch {
    // not JSON (a proxy's page): the status line says enough
  }
  return new ApiError(response.status, message);
}

/**
 * One API request. GETs need only the cookie; POSTs also carry the CSRF header, so a page on another site that
 * makes the browser send the cookie cannot act (it cannot read the value).
 */
export async function request(method, path, body = undefined) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && session.csrf) headers["X-Station-CSRF"] = session.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (exc) {
    throw new ApiError(0, `the station service does not answer (${exc.message}); is \`station serve\` running?`);
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && path !== "/session" && path !== "/login") {
      for (const listener of loggedOutListeners) listener(error);
    }
    throw error;
  }
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);

/** Ask who is logged in (the cookie decides): true and the session filled, or false on 401. */
export async function checkSession() {
  try {
    const doc = await get("/session");
    session.user = doc.user;
    session.csrf = doc.csrf;
    return true;
  } catch (exc) {
    if (exc.status === 401) {
      session.user = session.csrf = null;
      return false;
    }
    throw exc;
  }
}

export async function login(token) {
  const doc = await post("/login", { token });
  session.user = doc.user;
  session.csrf = doc.csrf;
}

export async function logout() {
  try {
    await post("/logout");
  } finally {
    session.user = session.csrf = null;
  }
}

/** A URL the browser fetches itself (downloads): same origin, so the cookie goes with it. */
export function apiUrl(path) {
  return API + path;
}

/**
 * The service's event stream. EventSource sends the cookie and reconnects by itself, resuming with
 * Last-Event-ID; ``handlers`` maps event names (channels, run, event, reset, campaign) to functions of the data.
 */
export function openStream(handlers, onState) {
  const source = new EventSource(API + "/stream");
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (msg) => {
      let data = null;
      try {
        data = JSON.parse(msg.data);
      } catch {
        return;
      }
      handler(data);
    });
  }
  source.onopen = () => onState && onState("live");
  source.onerror = () => onState && onState(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
  return source;
}
