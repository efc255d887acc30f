"""Budget (DESIGN, issue 16): the dashboard's channel grid of 2048 channels shows a change within 2 s of it, and
stays usable while every channel streams live values.

Run: python benchmarks/bench_dashboard_2048.py [--channels 2048] [--sims 4] [--trials 10] [--window 20]

The station is set up as benchmarks/bench_service_2048.py sets it up (its ``Sim``: ``--sims`` processes of
``station sim neware``, one BTS Client port each; the same long protocol recording every second): every channel
but ``--trials`` free ones gets a run, started in-process before the service, and `station serve` (a subprocess,
its API on a free port) adopts them all. Then Debian's headless chromium (/usr/bin/chromium through
/usr/bin/chromedriver, window 1280x800, as tests/station/test_dashboard_browser.py drives it) opens the dashboard:

(a) login: from pressing Enter on the token form until the grid says "N of N channels" (``#grid-count``), until
    the page marks itself ready, and until the first row in view shows a live voltage; a few times (cookies
    cleared in between, so each is a fresh login and a fresh read of every channel and run).
(b) change latency: on each free channel in turn (spread over the grid; the grid draws only the rows in view, so
    its scroll box is moved to the row first, as a user would scroll), a run is started through the API
    (POST /api/v1/runs, Bearer token) and stopped again (POST .../stop); the time from the API's answer (the run is
    running at the instrument / the instrument confirmed the stop) until the row's state reads "running" /
    "stopped". Two clocks: WebDriverWait polling the DOM every 50 ms (what a watcher sees, an upper bound), and a
    MutationObserver in the page that stamps the moment the row's ``data-state`` changed (Date.now(): the same
    machine's clock as this process's time.time()). The figure from the request (a request queues behind a
    supervision round in progress) is printed and held to the budget too, and when the event
    stream first mentioned the channel ('run', 'channels' messages, stamped by the EventSource wrapper of (c)), which
    splits a latency into the service's part and the page's.
(c) busy-ness: for ``--window`` seconds of the page idling on the grid while every channel streams, the long tasks
    (PerformanceObserver 'longtask': main-thread tasks over 50 ms) by count, total and worst; animation frames and
    the longest gap between two; the 'channels' messages and channel updates the event stream delivered (counted by
    a wrapper around EventSource installed before the page's scripts, which the page does not know of); the cell
    changes in view.
(d) a user's moves at that load: the state filter to "running" until the count says so, and a scroll to the last
    row until it is drawn.

Nothing in station/web/static is changed; every wait polls (the API or the DOM), none sleeps a fixed time. At the
end (or on Ctrl-C / SIGTERM) the browser quits, the service gets SIGTERM and the simulators Ctrl-C. Exit status 1
if a budget fails; 0 with a message when selenium, chromium or chromedriver is missing (skipped).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_service_2048 import CHANNELS_PER_DEVICE, PROTOCOL, Sim, _cpu_s, _load, report  # noqa: E402  the same set-up
from headless import open_browser, skip_reason  # noqa: E402

from protocols.cells import load_cell  # noqa: E402
from protocols.loader import load_protocol_text  # noqa: E402
from station.api.tokens import token_path  # noqa: E402
from station.config import load_config  # noqa: E402
from station.session import Station  # noqa: E402

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # the test extra is not installed
    webdriver = None

BUDGET_S = 2.0
CELL = "predeposited-ncm622"  # the simulators' cell (bench_service_2048.Sim)
POLL_S = 0.05
WAIT_S = 120.0
#: the run each trial starts on a free channel: long enough never to end by itself
TRIAL = """
protocol: dashboard-trial
record: {every: 1 s}
steps:
  - rest: 10 h
"""

#: installed before the page's own scripts: counts what the event stream delivers, without parsing it twice
STREAM_COUNTER = """
(() => {
  const stats = window.benchStream = {messages: 0, chars: 0, docs: 0};
  const Native = window.EventSource;
  window.EventSource = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("channels", (m) => {
        stats.messages += 1;
        stats.chars += m.data.length;
        for (let i = m.data.indexOf('"channel":'); i !== -1; i = m.data.indexOf('"channel":', i + 1)) stats.docs += 1;
      });
      // when the stream first mentions the watched channel, by kind of message (where a change's latency goes)
      for (const kind of ["channels", "run", "event"]) {
        this.addEventListener(kind, (m) => {
          const watch = window.benchWatch;
          if (watch && !(kind in watch.seen) && m.data.includes(`"${watch.channel}"`)) watch.seen[kind] = Date.now();
        });
      }
    }
  };
})();
"""

#: stamps the first moment each row shows each state (Date.now(), ms); rows keep their <tr> while the grid lives
STATE_STAMPS = """
window.benchSeen = {};
new MutationObserver((records) => {
  const now = Date.now();
  for (const r of records) {
    const key = r.target.dataset.channel + "|" + r.target.dataset.state;
    if (!(key in window.benchSeen)) window.benchSeen[key] = now;
  }
}).observe(document.getElementById("grid"), {subtree: true, attributes: true, attributeFilter: ["data-state"]});
"""

#: the busy-ness window: resolves after arguments[0] s with what the main thread and the stream did meanwhile
BUSY_WINDOW = """
const seconds = arguments[0];
const done = arguments[arguments.length - 1];
const tasks = [];
const longtasks = new PerformanceObserver((list) => { for (const e of list.getEntries()) tasks.push(e.duration); });
longtasks.observe({type: "longtask"});
let frames = 0, gap = 0, last = null, running = true;
const tick = (t) => {
  if (last !== null) gap = Math.max(gap, t - last);
  last = t;
  frames += 1;
  if (running) requestAnimationFrame(tick);
};
requestAnimationFrame(tick);
let cells = 0;
const cellObserver = new MutationObserver((records) => { cells += records.length; });
cellObserver.observe(document.querySelector("#grid tbody"), {subtree: true, childList: true, characterData: true});
const s0 = Object.assign({}, window.benchStream);
const t0 = performance.now();
setTimeout(() => {
  running = false;
  longtasks.disconnect();
  cellObserver.disconnect();
  const s1 = window.benchStream;
  done({seconds: (performance.now() - t0) / 1000, longtasks: tasks, frames, maxGapMs: gap, cellChanges: cells,
        messages: s1.messages - s0.messages, chars: s1.chars - s0.chars, docs: s1.docs - s0.docs});
}, seconds * 1000);
"""

ROW_STATE = "const r = document.querySelector(`#grid tr[data-channel='${arguments[0]}']`); return r && r.dataset.state"


# -- the station ----------------------------------------------------------------------------------------------------


class Serve:
    """`station serve --port 0 --json` as a user starts it: its API's address from its one JSON line on stdout;
    stderr read all along so that its pipe never blocks it."""

    def __init__(self, config: Path):
        self.proc = subprocess.Popen([sys.executable, "-m", "station", "serve", "--config", str(config), "--port", "0",
                                      "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.lines: list[str] = []
        self.info: dict[str, Any] = {}
        started = threading.Event()

        def read_stdout() -> None:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if line.strip():
                self.info = json.loads(line)
            started.set()
            self.proc.stdout.read()

        def read_stderr() -> None:
            assert self.proc.stderr is not None
            for text in self.proc.stderr:
                self.lines.append(text)

        threading.Thread(target=read_stdout, daemon=True).start()
        threading.Thread(target=read_stderr, daemon=True).start()
        if not started.wait(300) or "api" not in self.info:
            raise SystemExit("the service did not start:\n" + "".join(self.lines[-20:]))
        self.base = self.info["api"].rstrip("/")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Api:
    """The HTTP API with the owner's token (Bearer), as a script in the lab would call it."""

    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def __call__(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(self.base + "/api/v1" + path, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.token}"},
                                     data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(req, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


def write_config(tmp: Path, sims: list[Sim], poll_s: float) -> Path:
    lines = [f"data_dir: {tmp}/data", f"poll_interval: {poll_s} s", "instruments:"]
    for sim in sims:
        lines += [f"  - name: {sim.name}", "    kind: neware", f"    address: 127.0.0.1:{sim.port}",
                  "    timeout: 10 s", "    channels:"]
        lines += [f"      - {{id: {c}, voltage: [0 V, 5 V], current: 10 mA}}" for c in sim.channels]
    path = tmp / "station.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def launch(config_file: Path, channels: list[str]) -> float:
    """Start the long protocol on ``channels`` in-process and let go of them (a detached `station run`); seconds."""
    config, _ = load_config(str(config_file))
    station = Station.open(config)
    started = time.perf_counter()
    try:
        cell = load_cell(CELL)
        loaded = load_protocol_text(PROTOCOL.format(every=1), "service-load.yaml")
        for channel in channels:
            station.launch(loaded, cell, channel)
    finally:
        station.close()
    return time.perf_counter() - started


def wait_api(predicate: Callable[[], bool], what: str, timeout_s: float = 300.0) -> float:
    """Poll the API until ``predicate()``; seconds taken."""
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout_s:
            raise SystemExit(f"the API never said {what} within {timeout_s:g} s")
        time.sleep(0.5)
    return time.perf_counter() - started


# -- the browser ----------------------------------------------------------------------------------------------------


def wait(driver: Any, condition: Callable[[Any], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    """Poll the page every 50 ms until ``condition(driver)`` is truthy; its value."""
    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=POLL_S).until(condition)
    except TimeoutException:
        raise SystemExit(f"the page never showed {what} within {timeout_s:g} s") from None


def text_of(driver: Any, css: str) -> str | None:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else None


def login(driver: Any, base: str, token: str, total: int) -> tuple[float, float, float]:
    """A fresh login through the form: seconds from Enter to the full count, to ready, to a live value in view."""
    driver.delete_all_cookies()
    driver.get("about:blank")  # a new document each time (the same address again would only be a hash change)
    driver.get(base + "/#/")
    wait(driver, lambda d: d.find_elements(By.ID, "login-form"), "the login form")
    field = driver.find_element(By.ID, "token")
    field.send_keys(token)
    started = time.perf_counter()
    field.send_keys(Keys.ENTER)
    wanted = f"{total} of {total} channels"
    wait(driver, lambda d: text_of(d, "#grid-count") == wanted, f"'{wanted}'")
    count_s = time.perf_counter() - started
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "main[data-ready='grid']"), "the grid ready")
    ready_s = time.perf_counter() - started
    wait(driver, lambda d: d.execute_script(
        "return [...document.querySelectorAll('#grid td[data-col=voltage]')].some(td => /\\d/.test(td.textContent))"),
        "a live voltage in view")
    live_s = time.perf_counter() - started
    return count_s, ready_s, live_s


def scroll_to(driver: Any, index: int, channel: str) -> None:
    """Scroll the grid's box so that row ``index`` is in view, and wait for it to be drawn."""
    driver.execute_script("const w = document.querySelector('.grid-wrap'); "
                          "w.scrollTop = Math.max(0, arguments[0] * 28 - w.clientHeight / 2);", index)
    wait(driver, lambda d: d.execute_script(ROW_STATE, channel), f"the row of {channel}")


def watch(driver: Any, channel: str) -> None:
    """From now, stamp when the event stream first mentions ``channel`` (by message kind)."""
    driver.execute_script("window.benchWatch = {channel: arguments[0], seen: {}}", channel)


def arrivals(driver: Any, since: float) -> str:
    """When the stream first mentioned the watched channel, by message kind, in s after ``since``."""
    seen = driver.execute_script("return window.benchWatch.seen")
    return "stream: " + (", ".join(f"{kind} {stamp / 1000 - since:+.3f}" for kind, stamp in sorted(seen.items(),
                                   key=lambda kv: kv[1])) or "nothing")


def shown_at(driver: Any, channel: str, states: tuple[str, ...], what: str) -> tuple[float, float | None]:
    """Wait for the row of ``channel`` to read one of ``states``: (time.time() when seen by polling, the page's
    stamp of the change in s or None)."""
    state = wait(driver, lambda d: (s := d.execute_script(ROW_STATE, channel)) in states and s, what)
    seen = time.time()
    stamp = driver.execute_script("return window.benchSeen[arguments[0]]", f"{channel}|{state}")
    return seen, None if stamp is None else stamp / 1000


def tree_cpu_s(root: int) -> float | None:
    """User + system CPU seconds of ``root``'s descendants (chromedriver's browser processes); None without /proc."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    if not parent:
        return None
    tree, grown = {root}, True
    while grown:
        more = {pid for pid, ppid in parent.items() if ppid in tree} - tree
        tree |= more
        grown = bool(more)
    return sum(_cpu_s(pid) or 0.0 for pid in tree - {root})


# -- figures --------------------------------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"median {statistics.median(values):.3f} s, min {min(values):.3f}, max {max(values):.3f} "
            f"(n={len(values)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=2048)
    parser.add_argument("--sims", type=int, default=4, help="simulator processes (one BTS Client port each)")
    parser.add_argument("--trials", type=int, default=10, help="start/stop trials, each on its own free channel")
    parser.add_argument("--logins", type=int, default=3, help="fresh logins timed")
    parser.add_argument("--window", type=float, default=20.0, help="seconds the page's busy-ness is watched")
    parser.add_argument("--poll", type=float, default=1.0, help="the service's poll interval, s")
    args = parser.parse_args()
    reason = skip_reason()
    if reason is not None:
        print(f"skipped: {reason}")
        return 0

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM cleans up as Ctrl-C does

    signal.signal(signal.SIGTERM, terminate)
    print(f"load average at start: {_load()} (2 cores shared; figures are noisy)", flush=True)
    sims: list[Sim] = []
    serve: Serve | None = None
    driver = None
    results: list[tuple[str, bool, str]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            per_sim, remaining = math.ceil(args.channels / args.sims), args.channels
            for k in range(args.sims):
                n = min(per_sim, remaining)
                remaining -= n
                ids = [f"{21 + i // CHANNELS_PER_DEVICE}-1-{1 + i % CHANNELS_PER_DEVICE}" for i in range(n)]
                sims.append(Sim(f"bts{k + 1}", ids))
            config_file = write_config(tmp, sims, args.poll)
            everything = [f"{sim.name}/{c}" for sim in sims for c in sim.channels]
            total = len(everything)
            free = [everything[int((i + 0.5) * total / args.trials)] for i in range(args.trials)]
            busy = [c for c in everything if c not in set(free)]
            launch_s = launch(config_file, busy)
            print(f"{total} channels on {args.sims} simulator process(es): launched {len(busy)} runs in "
                  f"{launch_s:.1f} s; {len(free)} left free for the trials", flush=True)

            serve = Serve(config_file)
            api = Api(serve.base, token_path(tmp / "data").read_text().strip())

            def adopted() -> bool:
                status, doc = api("GET", "/channels")
                return status == 200 and sum(c.get("run") is not None and c.get("live") is not None
                                             for c in doc["channels"]) >= len(busy)

            adopt_s = wait_api(adopted, f"all {len(busy)} runs adopted with live values")
            order = [c["channel"] for c in api("GET", "/channels")[1]["channels"]]
            print(f"service {serve.base} (pid {serve.proc.pid}): every run adopted and live in {adopt_s:.1f} s",
                  flush=True)

            # -- (a) login until the grid counts every channel
            driver = open_browser(STREAM_COUNTER)
            driver.set_script_timeout(300)
            logins = []
            for i in range(1, args.logins + 1):
                count_s, ready_s, live_s = login(driver, serve.base, api.token, total)
                logins.append((count_s, ready_s, live_s))
                print(f"(a) login {i}: '{total} of {total} channels' after {count_s:.3f} s, page ready "
                      f"{ready_s:.3f} s, a live voltage in view {live_s:.3f} s", flush=True)
            wait(driver, lambda d: text_of(d, "#live") == "live", "the live event stream")
            driver.execute_script(STATE_STAMPS)

            # -- (b) a change on a channel until its row shows it
            start_poll, start_page, start_req, stop_poll, stop_page, stop_req = [], [], [], [], [], []
            for i, channel in enumerate(free, 1):
                scroll_to(driver, order.index(channel), channel)
                watch(driver, channel)
                asked = time.time()
                status, doc = api("POST", "/runs", {"protocol_source": TRIAL, "protocol_file": "dashboard-trial.yaml",
                                                    "cell": CELL, "channel": channel})
                answered = time.time()
                if status != 201:
                    raise SystemExit(f"starting a run on {channel} was refused ({status}): {doc}")
                seen, stamp = shown_at(driver, channel, ("running",), f"{channel} running")
                start_poll.append(seen - answered)
                start_req.append(seen - asked)
                if stamp is not None:
                    start_page.append(stamp - answered)
                page = "n/a" if stamp is None else f"{stamp - answered:.3f}"
                run_text = (f"(b) trial {i} {channel}: start answered in {answered - asked:.2f} s, 'running' seen "
                            f"{seen - answered:.3f} s later (page stamp {page}; {arrivals(driver, answered)})")
                watch(driver, channel)
                asked = time.time()
                status, doc = api("POST", f"/runs/{doc['run_id']}/stop")
                answered = time.time()
                if status != 200:
                    raise SystemExit(f"stopping the run on {channel} was refused ({status}): {doc}")
                seen, stamp = shown_at(driver, channel, ("stopped", "free"), f"{channel} stopped")
                stop_poll.append(seen - answered)
                stop_req.append(seen - asked)
                if stamp is not None:
                    stop_page.append(stamp - answered)
                print(f"{run_text}; stop answered in {answered - asked:.2f} s (confirmed {doc.get('confirmed')}), "
                      f"'stopped' seen {seen - answered:.3f} s later (page stamp "
                      f"{'n/a' if stamp is None else f'{stamp - answered:.3f}'}; {arrivals(driver, answered)})",
                      flush=True)

            # -- (c) the main thread while every channel streams
            driver.execute_script("document.querySelector('.grid-wrap').scrollTop = 0")
            wait(driver, lambda d: d.execute_script(ROW_STATE, order[0]), "the first row again")
            load0 = _load()
            browser_pid = driver.service.process.pid
            cpu0, service0, t0 = tree_cpu_s(browser_pid), _cpu_s(serve.proc.pid), time.perf_counter()
            busy_doc = driver.execute_async_script(BUSY_WINDOW, args.window)
            cpu1, service1, t1 = tree_cpu_s(browser_pid), _cpu_s(serve.proc.pid), time.perf_counter()
            window = busy_doc["seconds"]
            tasks = busy_doc["longtasks"]
            print(f"(c) {window:.1f} s idle on the grid while {len(busy)} channels stream (load {load0} -> "
                  f"{_load()}): {len(tasks)} long tasks, {sum(tasks):.0f} ms in all "
                  f"({100 * sum(tasks) / 1000 / window:.1f} % of the window), worst {max(tasks, default=0):.0f} ms; "
                  f"{busy_doc['frames']} frames ({busy_doc['frames'] / window:.1f}/s), longest gap "
                  f"{busy_doc['maxGapMs']:.0f} ms; stream: {busy_doc['messages']} 'channels' messages, "
                  f"{busy_doc['docs']} channel updates ({busy_doc['docs'] / window:.0f}/s), "
                  f"{busy_doc['chars'] / 1e6 / window:.2f} MB/s of JSON; {busy_doc['cellChanges']} cell changes "
                  f"in view", flush=True)
            if None not in (cpu0, cpu1, service0, service1):
                print(f"    CPU meanwhile: the browser (all its processes) {100 * (cpu1 - cpu0) / (t1 - t0):.0f} % of "
                      f"one core, the service {100 * (service1 - service0) / (t1 - t0):.0f} %", flush=True)

            # -- (d) a user's moves at that load
            started = time.perf_counter()
            Select(driver.find_element(By.ID, "filter-state")).select_by_visible_text("running")
            wait(driver, lambda d: (text_of(d, "#grid-count") or "").endswith(f"of {total} channels")
                 and not text_of(d, "#grid-count").startswith(f"{total} of"), "the running filter")
            filter_s = time.perf_counter() - started
            counted = text_of(driver, "#grid-count")
            Select(driver.find_element(By.ID, "filter-state")).select_by_visible_text("all states")
            wait(driver, lambda d: text_of(d, "#grid-count") == f"{total} of {total} channels", "the filter cleared")
            started = time.perf_counter()
            driver.execute_script("const w = document.querySelector('.grid-wrap'); w.scrollTop = w.scrollHeight;")
            wait(driver, lambda d: d.execute_script(ROW_STATE, order[-1]), "the last row")
            scroll_s = time.perf_counter() - started
            print(f"(d) state filter 'running' -> '{counted}' in {filter_s:.3f} s; scroll to the last row drawn in "
                  f"{scroll_s:.3f} s", flush=True)

            worst_start = max(start_poll)
            worst_stop = max(stop_poll)
            results.append((f"grid shows a started run within {BUDGET_S:g} s of the API's answer (worst of "
                            f"{len(start_poll)}, polled at 50 ms)", worst_start < BUDGET_S, f"{worst_start:.3f} s"))
            results.append((f"grid shows a stopped run within {BUDGET_S:g} s of the API's answer (worst of "
                            f"{len(stop_poll)}, polled at 50 ms)", worst_stop < BUDGET_S, f"{worst_stop:.3f} s"))
            # what the operator lives: from the click (the request), queueing behind a round in progress included
            worst_asked = max(start_req + stop_req)
            results.append((f"grid shows a started or stopped run within {BUDGET_S:g} s of the request (worst of "
                            f"{len(start_req) + len(stop_req)}, polled at 50 ms)", worst_asked < BUDGET_S,
                            f"{worst_asked:.3f} s"))
            print(f"(a) login to '{total} of {total} channels': {spread([x[0] for x in logins])}")
            print(f"(b) start -> 'running' from the answer, polled: {spread(start_poll)}")
            print(f"    page stamp: {spread(start_page)}; from the request: {spread(start_req)}")
            print(f"(b) stop -> 'stopped' from the answer, polled: {spread(stop_poll)}")
            print(f"    page stamp: {spread(stop_page)}; from the request: {spread(stop_req)}")
        except KeyboardInterrupt:
            print("interrupted: cleaning up", file=sys.stderr)
            return 130
        finally:
            # a second Ctrl-C or SIGTERM must not cut the clean-up short; each step runs whatever the others did
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            steps = ([driver.quit] if driver is not None else []) + ([serve.stop] if serve is not None else [])
            for step in steps + [sim.close for sim in sims]:
                try:
                    step()
                except Exception as exc:  # report it and go on cleaning up
                    print(f"clean-up: {exc}", file=sys.stderr)
    return report(results)


if __name__ == "__main__":
    sys.exit(main())
