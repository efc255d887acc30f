"""The dashboard in a real browser, as a lab user meets it: Debian's headless chromium, driven by selenium through
/usr/bin/chromedriver (never a browser downloaded at test time), against `station serve` and a simulated BTS, both
real processes on free ports. It logs in with the token, watches the grid follow a run from one step to the next
without reloading, finds on a run page exactly the points the server sent and the records and duration following the
stream, stops a run through the confirmation dialog and sees the channel safe, and is refused when the session
cookie or its CSRF value is missing. A page left, or a tab in the background, lets go of its event stream. On a
second station (a long grid of 150 channels on a simulated BTS in this process, for its fault injection) the grid
shows a tripped protection and a cut link by colour and word, and the keyboard reaches every row, drawn or not.

Every wait polls the page's DOM (WebDriverWait) or the API; none sleeps on the wall clock. A screenshot at
1280x800 is saved for each test (and at a few steps within) to $STATION_TEST_ARTEFACTS, else the test's tmp dir.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.headless import open_browser, skip_reason
from protocols.cells import load_cell
from simulators.neware.faults import Fault
from simulators.neware.server import BtsSimulator, make_clock
from station.api.tokens import owner_name, token_path
from tests.processes import interrupt, popen, wait_for
from tests.station.sim_bts import ENV, LONG, SHORT, start_sim, write_config

try:
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # the test extra not installed: skip_reason says so
    pass

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

CELL = "predeposited-ncm622"
#: two rests, 4 h then 100 h: at the simulator's 3600x the grid sees step 1 for about 4 s, then step 2 for 100 s
TWO_RESTS = """
protocol: two-rests
record: {every: 60 s}
steps:
  - rest: 4 h
  - rest: 100 h
"""
#: the badge colour of a stopped channel in style.css (#4a545e), as the browser computes it
STOPPED_RGB = "rgb(74, 84, 94)"
WAIT_S = 60.0


# -- the station: a simulated BTS and `station serve`, shared by the module's tests ---------------------------------


def _api(base: str, token: str | None, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + "/api/v1" + path, method=method, headers=headers,
                                 data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dashboard")
    started: list[subprocess.Popen] = []
    try:
        port = start_sim(started, channels=4)
        # channel 4 sits in a simulated climate chamber (an ESPEC on a pseudo-terminal, in real time)
        cfg = write_config(tmp / "station.yaml", port, channels=4, extra="""
            chambers:
              - {name: oven, simulated: true, channels: [bts/21-1-4]}
            """)
        serve = popen([sys.executable, "-m", "station", "serve", "--config", str(cfg), "--port", "0", "--rescan",
                       "0.5", "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV)
        started.append(serve)
        base = json.loads(serve.stdout.readline())["api"].rstrip("/")  # type: ignore[union-attr]
        token = token_path(tmp / "data").read_text().strip()

        def api(method: str, path: str, body: dict | None = None, token_: str | None = token) -> tuple[int, dict]:
            return _api(base, token_, method, path, body)

        def start(source: str, **where: str) -> dict:
            status, doc = api("POST", "/runs", {"protocol_source": source, "protocol_file": "test.yaml",
                                                **(where or {"cell": CELL})})
            assert status == 201, doc
            return doc

        yield SimpleNamespace(base=base, token=token, api=api, start=start, tmp=tmp)
    finally:
        for proc in reversed(started):
            interrupt(proc)


#: channels of the long grid: well beyond the ~50 rows the grid draws at 1280x800 (the rows in view and 12 around)
MANY = 150


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """A second station: a long grid of free channels on a simulated BTS in this process, so a test can trip a
    channel's protection and cut the link (its fault injection), and `station serve` told to try one connection
    per exchange, so a cut link is lost contact at the next poll instead of after the reconnect back-off."""
    tmp = tmp_path_factory.mktemp("dashboard-many")
    record = load_cell(CELL)  # the cell's simulated model, as `station sim neware --cell` places it
    options = {"params": dict(record.model_params)} | {k: getattr(record, k) for k in ("area", "capacity",
                                                       "thickness", "ocv") if getattr(record, k) is not None}
    if record.temperature is not None:
        options["temperature"] = record.temperature + 273.15
    sim = BtsSimulator(channels=MANY, cell=record.model_type, cell_options=options, clock=make_clock(3600)).start()
    started: list[subprocess.Popen] = []
    try:
        channels = ", ".join(f"{{id: 21-1-{i}, voltage: [0 V, 5 V], current: 10 mA}}" for i in range(1, MANY + 1))
        cfg = tmp / "station.yaml"
        cfg.write_text(f"data_dir: {tmp / 'data'}\npoll_interval: 0.05 s\ninstruments:\n  - name: bts\n"
                       f"    kind: neware\n    address: 127.0.0.1:{sim.port}\n    timeout: 5 s\n"
                       f"    reconnect_attempts: 1\n    channels: [{channels}]\n")
        serve = popen([sys.executable, "-m", "station", "serve", "--config", str(cfg), "--port", "0", "--rescan",
                       "0.5", "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV)
        started.append(serve)
        base = json.loads(serve.stdout.readline())["api"].rstrip("/")  # type: ignore[union-attr]
        token = token_path(tmp / "data").read_text().strip()

        def api(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
            return _api(base, token, method, path, body)

        yield SimpleNamespace(base=base, token=token, api=api, sim=sim,
                              channels=[f"bts/21-1-{i}" for i in range(1, MANY + 1)])
    finally:
        for proc in reversed(started):
            interrupt(proc)
        sim.faults.clear()
        sim.stop()


@pytest.fixture(scope="module")
def browser(station):
    driver = open_browser()  # the benchmarks' set-up: headless, the page's own viewport exactly 1280x800
    yield driver
    driver.quit()


@pytest.fixture
def shots(browser, request, tmp_path):
    """Screenshots of this test: ``shots("step")`` during it, and one at its end (failed or not)."""
    folder = Path(os.environ.get("STATION_TEST_ARTEFACTS") or tmp_path) / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    name = request.node.name.removeprefix("test_")

    def take(label: str) -> Path:
        path = folder / f"{name}--{label}.png"
        browser.save_screenshot(str(path))
        return path

    yield take
    take("end")


def wait(driver, condition, timeout_s: float = WAIT_S, what: str = ""):
    """Poll the page until ``condition(driver)`` is truthy; its value."""
    try:
        # a live page redraws: an element found a moment ago may be gone; the next poll looks again
        return WebDriverWait(driver, timeout_s, poll_frequency=0.05,
                             ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        raise AssertionError(f"the page never showed {what or 'what was awaited'}") from None


def wait_api(predicate, what: str, timeout_s: float = WAIT_S):
    return wait_for(predicate, timeout_s, f"the API to say {what}")


def text_of(driver, css: str) -> str | None:
    """The text of the first element ``css`` finds; None when there is none, or it was redrawn as it was read."""
    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else None
    except StaleElementReferenceException:
        return None


def ready(driver, kind: str) -> None:
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"main[data-ready='{kind}']"), what=f"the {kind} page")


def log_in(driver, station) -> None:
    """Open the dashboard and log in through its form, unless this browser already has a session."""
    driver.get(station.base + "/#/")
    wait(driver, lambda d: d.find_elements(By.ID, "login-form") or d.find_elements(By.CSS_SELECTOR,
                                                                                     "main[data-ready]"))
    if driver.find_elements(By.ID, "login-form"):
        # the form may be drawn again as it is read (a session that just ended says so): type into the one there,
        # from an empty field, so that a try the redraw cut short leaves no half token behind

        def type_token(d) -> bool:
            field = d.find_element(By.ID, "token")
            field.clear()
            field.send_keys(station.token)
            if field.get_attribute("value") != station.token:
                return False
            field.send_keys(Keys.ENTER)
            return True

        wait(driver, type_token, what="the token typed whole")
    ready(driver, "grid")


def cell(driver, channel: str, column: str) -> str | None:
    return text_of(driver, f"#grid tr[data-channel='{channel}'] td[data-col='{column}']")


# -- tests ----------------------------------------------------------------------------------------------------------


def test_log_in_with_the_token_and_see_every_channel(browser, station, shots):
    browser.delete_all_cookies()
    browser.get(station.base + "/")
    wait(browser, lambda d: d.find_elements(By.ID, "login-form"), what="the login form")
    assert browser.switch_to.active_element.get_attribute("id") == "token"  # the keyboard is where it is needed
    shots("login-form")

    browser.find_element(By.ID, "token").send_keys("not-the-token", Keys.ENTER)
    message = wait(browser, lambda d: text_of(d, "#login-error"), what="the refusal")
    assert "that token is not valid" in message
    assert browser.get_cookie("station_session") is None
    shots("wrong-token")

    browser.find_element(By.ID, "token").clear()
    browser.find_element(By.ID, "token").send_keys(station.token, Keys.ENTER)
    ready(browser, "grid")
    assert browser.find_element(By.ID, "user").text == owner_name()
    cookie = browser.get_cookie("station_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""  # invisible to the page's scripts
    rows = browser.find_elements(By.CSS_SELECTOR, "#grid tbody tr[data-channel]")
    assert [r.get_attribute("data-channel") for r in rows] == [f"bts/21-1-{i}" for i in range(1, 5)]
    status, channels = station.api("GET", "/channels")
    assert status == 200
    for doc in channels["channels"]:  # every channel's state word as the API gives it, free or not
        if doc["run"] is None:
            assert cell(browser, doc["channel"], "state") in ("free", "finished", "stopped", "failed")
        else:
            assert cell(browser, doc["channel"], "state") == doc["state"]
    headers = [th.text.replace("\n", " ") for th in browser.find_elements(By.CSS_SELECTOR, "#grid thead th")]
    assert {"V (V)", "I (mA)", "Step cap. (mAh)", "Time in run (h:mm:ss)", "ETA (h:mm:ss)"} <= set(headers)
    assert wait(browser, lambda d: text_of(d, "#live") == "live", what="the live event stream")
    shots("grid")

    browser.find_element(By.ID, "logout").click()
    assert wait(browser, lambda d: text_of(d, "#login-error"), what="the login form") == "Logged out."
    assert browser.get_cookie("station_session") is None
    assert browser.execute_async_script("fetch('/api/v1/session').then(r => arguments[0](r.status))") == 401


def test_the_grid_follows_a_run_from_one_step_to_the_next_without_reloading(browser, station, shots):
    log_in(browser, station)
    browser.execute_script("window.sameDocument = 'not reloaded'")
    run = station.start(TWO_RESTS)
    channel = run["channel"]
    wait(browser, lambda d: cell(d, channel, "step") == "1", what=f"step 1 on {channel}")
    assert cell(browser, channel, "state") == "running"
    assert cell(browser, channel, "protocol") == "two-rests"
    shots("step-1")
    wait(browser, lambda d: cell(d, channel, "step") == "2", what=f"step 2 on {channel}")
    assert browser.execute_script("return window.sameDocument") == "not reloaded"  # live, from the event stream

    # at rest no current flows and the cell sits at its OCV: the grid shows what the service's live document says
    ocv_v = load_cell(CELL).ocv
    status, doc = station.api("GET", f"/runs/{run['run_id']}")
    assert status == 200 and doc["live"]["step"] == 2 and doc["live"]["voltage_v"] == pytest.approx(ocv_v, abs=1e-3)
    wait(browser, lambda d: cell(d, channel, "voltage") == f"{doc['live']['voltage_v']:.4f}", what="the OCV")
    assert cell(browser, channel, "current") == "0.000"
    assert cell(browser, channel, "channel") == channel
    link = browser.find_element(By.CSS_SELECTOR, f"#grid tr[data-channel='{channel}'] td[data-col='channel'] a")
    assert link.get_attribute("href").endswith(f"#/run/{run['run_id']}")
    shots("step-2")

    # filters: by state, then by protocol text, without rebuilding the table
    def shown() -> list[str]:
        return sorted(r.get_attribute("data-channel")
                      for r in browser.find_elements(By.CSS_SELECTOR, "#grid tbody tr[data-channel]"))

    Select(browser.find_element(By.ID, "filter-state")).select_by_visible_text("running")
    status, channels = station.api("GET", "/channels?state=running")
    assert shown() == sorted(c["channel"] for c in channels["channels"]) and channel in shown()
    assert text_of(browser, "#grid-count") == f"{len(shown())} of 4 channels"
    Select(browser.find_element(By.ID, "filter-state")).select_by_visible_text("all states")
    browser.find_element(By.ID, "filter-sample").send_keys("two-rests")
    assert shown() == [channel] and text_of(browser, "#grid-count") == "1 of 4 channels"
    browser.find_element(By.ID, "filter-sample").send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)  # as a user clears it
    assert len(shown()) == 4
    assert station.api("POST", f"/runs/{run['run_id']}/stop")[0] == 200
    wait(browser, lambda d: cell(d, channel, "state") == "stopped", what="the stopped state")


#: a temperature step the simulated chamber (room 23 degC) takes many minutes to satisfy: the run waits for it
HOT = """
protocol: hot
record: {every: 60 s}
steps:
  - temperature: {set: 60 degC, band: 0.5 degC, stable_for: 1 h, max_wait: 4 h}
  - rest: 1 h
"""


def test_the_grid_shows_a_run_waiting_for_its_chamber_with_the_chamber_s_temperature(browser, station, shots):
    log_in(browser, station)
    channel = "bts/21-1-4"
    # with no run, the channel shows its chamber's reading (the simulated room's 23 degC, the chamber on standby)
    wait(browser, lambda d: cell(d, channel, "chamber") == "23.0", what="the idle chamber's reading")
    status, listed = station.api("GET", "/channels")
    chamber = next(c["chamber"] for c in listed["channels"] if c["channel"] == channel)
    assert chamber["name"] == "oven" and chamber["temperature_c"] == 23.0 and chamber["error"] is None
    assert all(c["chamber"] is None for c in listed["channels"] if c["channel"] != channel)
    run = station.start(HOT, cell=CELL, channel=channel)
    wait(browser, lambda d: re.fullmatch(r"\d+\.\d → 60", cell(d, channel, "chamber") or "") is not None,
         what="the chamber's reading, heading to 60")
    reading = float(cell(browser, channel, "chamber").split(" ")[0])
    assert 23.0 <= reading < 60.0  # the simulated room's 23 degC, warming
    assert cell(browser, channel, "state") == "running"
    title = browser.find_element(By.CSS_SELECTOR, f"#grid tr[data-channel='{channel}'] td[data-col='chamber']"
                                 ).get_attribute("title")
    assert title.startswith("waiting for chamber oven: 60 °C ± 0.5 °C held for 60 min (at most 4 h), now ")
    status, doc = station.api("GET", f"/runs/{run['run_id']}")
    assert status == 200 and doc["live"]["chamber_set_c"] == 60.0 and doc["live"]["waiting"] == title
    shots("waiting-for-chamber")
    assert station.api("POST", f"/runs/{run['run_id']}/stop")[0] == 200
    wait(browser, lambda d: cell(d, channel, "state") == "stopped", what="stopped while waiting")
    status, doc = station.api("GET", f"/runs/{run['run_id']}")
    assert doc["message"] == ("stopped by the operator (by root); the run was waiting for its chamber, and nothing "
                              "had been sent to the channel yet")


def test_a_run_page_plots_exactly_the_points_the_server_sends(browser, station, shots):
    log_in(browser, station)
    status, sample = station.api("POST", "/samples", {"cell": CELL, "name": "coin cell 7"})
    assert status == 201
    run = station.start(SHORT, sample=sample["sample_id"])
    browser.get(f"{station.base}/#/run/{run['run_id']}")
    ready(browser, "run")
    wait(browser, lambda d: text_of(d, "#run-state") == "finished", what="the run finishing")
    status, final = station.api("GET", f"/runs/{run['run_id']}")
    assert status == 200 and final["state"] == "finished"
    records = final["records"]
    assert 100 < records < 2000  # every record is drawn: no thinning to account for
    wait(browser, lambda d: d.execute_script("const p = window.stationRunPage; return p && p.series && "
                                             "p.series.records") == records, what="the final curves")
    status, series = station.api("GET", f"/runs/{run['run_id']}/series?points=2000")
    assert status == 200 and series["records"] == records and len(series["test_time_s"]) == records
    drawn = browser.execute_script("return window.stationRunPage.series")
    assert drawn == series  # what the page holds is what the server sent

    plotted = browser.execute_script("const c = window.stationCharts; return {vi: c.vi.plot.data, "
                                     "cap: c.capacity.plot.data, xlabel: c.vi.plot.axes[0].label}")
    t_s, volts, amps, cap_ah = (series[k] for k in ("test_time_s", "voltage_v", "current_a", "capacity_ah"))
    assert len(plotted["vi"][0]) == records and plotted["vi"][1] == volts
    div = 60 if plotted["xlabel"] == "Test time (min)" else 3600
    assert plotted["xlabel"] in ("Test time (min)", "Test time (h)")
    assert plotted["vi"][0] == pytest.approx([t / div for t in t_s], rel=1e-12)
    assert plotted["vi"][2] == pytest.approx([a * 1e3 for a in amps], rel=1e-12)
    assert plotted["cap"][1] == pytest.approx([q * 1e3 for q in cap_ah], rel=1e-12)

    # the physics on screen: charged at 0.5C until 4.2 V, discharged at 0.5C until 3.0 V
    c_rate_ma = 0.5 * load_cell(CELL).capacity * 1e3
    assert max(plotted["vi"][2]) == pytest.approx(c_rate_ma, rel=1e-3)
    assert min(plotted["vi"][2]) == pytest.approx(-c_rate_ma, rel=1e-3)
    assert max(plotted["vi"][1]) == pytest.approx(4.2, abs=0.02) and volts[-1] == pytest.approx(3.0, abs=0.02)
    assert f"{records} records, every one drawn." == text_of(browser, "#series-note")
    assert text_of(browser, "#chart-vi .u-title") == "Voltage and current"
    shots("curves")

    # the analysis figures: one cycle, its charge and discharge as the cycle table counts them
    status, analysis = station.api("GET", f"/runs/{run['run_id']}/analysis")
    assert status == 200
    cycles = analysis["figures"]["cycles"]
    assert cycles["cycle"] == [1]
    # a second route to the same numbers: the instrument's step capacity at the end of each step
    assert cycles["charge_ah"][0] == pytest.approx(max(cap_ah), rel=1e-6)
    assert cycles["discharge_ah"][0] == pytest.approx(-min(cap_ah), rel=1e-6)
    charts = wait(browser, lambda d: d.execute_script("const c = window.stationCharts.cycles; return c && "
                                                      "c.plot.data"), what="the capacity-by-cycle figure")
    assert charts[0] == [1] and charts[1] == pytest.approx([cycles["charge_ah"][0] * 1e3], rel=1e-12)
    assert charts[2] == pytest.approx([cycles["discharge_ah"][0] * 1e3], rel=1e-12)

    # the sample's page lists the run and compares its capacity by cycle
    browser.find_element(By.LINK_TEXT, sample["sample_id"]).click()
    ready(browser, "sample")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#sample-runs tbody td:first-child a")] == [
        run["run_id"]]
    compared = wait(browser, lambda d: d.execute_script("const c = window.stationCharts['compare-capacity']; "
                                                        "return c && c.curves"), what="the comparison")
    assert [c["x"] for c in compared] == [[1]]
    assert compared[0]["y"] == pytest.approx([cycles["discharge_ah"][0] * 1e3], rel=1e-12)
    shots("sample")


def test_a_page_left_lets_go_of_its_event_stream_and_reconnects_when_back(browser, station, shots):
    # a browser opens six connections to one server over HTTP/1.1: pages left with their streams open (kept in the
    # back-forward cache) once made the sixth page opened after them wait the better part of a minute
    log_in(browser, station)
    wait(browser, lambda d: text_of(d, "#live") == "live", what="the live event stream")
    browser.execute_script("""
        sessionStorage.setItem('streamsClosed', '0');
        const close = EventSource.prototype.close;
        EventSource.prototype.close = function () {
          if (this.readyState !== EventSource.CLOSED) {
            sessionStorage.setItem('streamsClosed', String(Number(sessionStorage.getItem('streamsClosed')) + 1));
          }
          return close.call(this);
        };
        // after the page's own pagehide handler (added at its start): how many streams were closed by then
        addEventListener('pagehide', () => sessionStorage.setItem('closedOnLeaving',
                                                                    sessionStorage.getItem('streamsClosed')));""")
    browser.get("about:blank")
    browser.back()
    ready(browser, "grid")
    assert browser.execute_script("return sessionStorage.getItem('closedOnLeaving')") == "1"
    wait(browser, lambda d: text_of(d, "#live") == "live", what="the stream again")  # and open again once back


def test_a_tab_in_the_background_lets_go_of_its_stream_and_catches_up_when_looked_at(browser, station, shots):
    log_in(browser, station)
    wait(browser, lambda d: text_of(d, "#live") == "live", what="the live event stream")
    first = browser.current_window_handle
    browser.execute_script("""
        window.stationHiddenStreamMs = 0;  // at once, not after the usual quarter of a minute
        localStorage.setItem('hiddenClosed', '0');
        const close = EventSource.prototype.close;
        EventSource.prototype.close = function () {
          if (this.readyState !== EventSource.CLOSED && document.visibilityState === 'hidden') {
            localStorage.setItem('hiddenClosed', String(Number(localStorage.getItem('hiddenClosed')) + 1));
          }
          return close.call(this);
        };""")
    browser.switch_to.new_window("tab")  # the first tab goes to the background
    try:
        browser.get(station.base + "/#/")
        ready(browser, "grid")
        wait(browser, lambda d: d.execute_script("return localStorage.getItem('hiddenClosed')") == "1",
             what="the background tab's stream closed")
    finally:
        browser.close()
        browser.switch_to.window(first)
    assert browser.execute_script("return document.visibilityState") == "visible"
    wait(browser, lambda d: text_of(d, "#live") == "live", what="the stream open again")
    ready(browser, "grid")
    run = station.start(LONG)  # and live it is: a run started now shows in this tab
    wait(browser, lambda d: cell(d, run["channel"], "state") == "running", what="the new run")
    assert station.api("POST", f"/runs/{run['run_id']}/stop")[0] == 200


def _hms(text: str) -> int:
    """Seconds of a duration as the page writes it (h:mm:ss, or 'N d hh:mm:ss')."""
    days = 0
    if " d " in text:
        d, text = text.split(" d ")
        days = int(d)
    h, m, sec = (int(x) for x in text.split(":"))
    return days * 86400 + h * 3600 + m * 60 + sec


def test_a_running_run_page_counts_records_and_duration_from_the_stream(browser, station, shots):
    log_in(browser, station)
    run = station.start(LONG)
    run_id = run["run_id"]
    browser.get(f"{station.base}/#/run/{run_id}")
    ready(browser, "run")
    loaded = browser.execute_script("const d = window.stationRunPage.doc; return {records: d.records, "
                                    "duration: d.duration_s, text: document.getElementById('run-duration')"
                                    ".textContent}")
    # LONG records every 60 s of test time, a record a wall 1/60 s at 3600x: the stream soon counts many more
    # records than the run's document the page loaded (which the page does not read again while nothing ends)
    read = ("const p = window.stationRunPage; return {shown: document.getElementById('run-records').textContent, "
            "live: p.doc.live && p.doc.live.records, doc: p.doc.records}")
    seen = wait(browser, lambda d: (r := d.execute_script(read))["live"] is not None
                and r["live"] > r["doc"] + 20 and r, what="the stream's record count past the loaded one")
    assert seen["doc"] == loaded["records"]  # the document was not read again: the count came by the stream
    assert seen["shown"] == str(seen["live"])
    status, doc = station.api("GET", f"/runs/{run_id}")
    assert status == 200 and doc["records"] >= seen["live"] > loaded["records"]  # the store holds what was shown

    # the duration counts on in wall time, from the document's figure, whether or not the stream says anything
    shown = wait(browser, lambda d: (t := text_of(d, "#run-duration")) and _hms(t) >= _hms(loaded["text"]) + 2
                 and t, what="the duration counting on")
    status, doc = station.api("GET", f"/runs/{run_id}")
    assert status == 200 and loaded["duration"] + 2 <= _hms(shown) + 0.5 <= doc["duration_s"] + 1.0
    shots("live-facts")
    assert station.api("POST", f"/runs/{run_id}/stop")[0] == 200


def test_stop_from_the_page_with_confirmation_makes_the_channel_safe(browser, station, shots):
    log_in(browser, station)
    run = station.start(LONG)
    run_id, channel = run["run_id"], run["channel"]
    browser.get(f"{station.base}/#/run/{run_id}")
    ready(browser, "run")
    wait(browser, lambda d: text_of(d, "#run-state") == "running", what="the run running")

    browser.find_element(By.ID, "action-stop").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "dialog#confirm-dialog[open]"), what="the dialog")
    assert browser.switch_to.active_element.get_attribute("id") == "confirm-cancel"  # the safe answer first
    shots("confirm")
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)  # Escape says no
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog#confirm-dialog"), what="the dialog closed")
    assert station.api("GET", f"/runs/{run_id}")[1]["state"] == "running"

    browser.find_element(By.ID, "action-stop").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "dialog#confirm-dialog[open]"), what="the dialog")
    browser.find_element(By.ID, "confirm-ok").click()
    wait(browser, lambda d: text_of(d, "#run-state") == "stopped", what="the run stopped")
    badge = browser.find_element(By.ID, "run-state")
    assert "state-stopped" in badge.get_attribute("class")
    assert badge.value_of_css_property("background-color") in (STOPPED_RGB, STOPPED_RGB.replace("rgb", "rgba")
                                                                 .replace(")", ", 1)"))
    assert browser.find_element(By.ID, "action-pause").get_attribute("disabled") is not None
    assert browser.find_element(By.ID, "action-stop").get_attribute("disabled") is not None

    status, doc = station.api("GET", f"/runs/{run_id}")
    assert status == 200 and doc["state"] == "stopped"
    _, events = station.api("GET", f"/runs/{run_id}/events")
    stops = [e for e in events["events"] if e["kind"] == "operator" and e["message"] == f"stop (by {owner_name()})"]
    assert len(stops) == 1  # one stop, recorded with who asked; the Escape sent nothing
    wait(browser, lambda d: [r.text for r in d.find_elements(By.CSS_SELECTOR, "#events tbody td:nth-child(4)")]
         == [e["message"] for e in events["events"]], what="the run's events")
    wait(browser, lambda d: d.execute_script("return window.stationRunPage.series.records") == doc["records"],
         what="the curves up to the run's last record")
    stamps = browser.find_elements(By.CSS_SELECTOR, "#events tbody td:first-child time")
    assert [t.get_attribute("datetime") for t in stamps] == [e["at"] for e in events["events"]]
    first = events["events"][0]["at"]  # local time shown, UTC on hover
    assert stamps[0].get_attribute("title") == first[:10] + " " + first[11:19] + " UTC"
    shots("stopped")

    browser.get(f"{station.base}/#/")
    ready(browser, "grid")
    assert cell(browser, channel, "state") == "stopped"
    state_cell = browser.find_element(By.CSS_SELECTOR, f"#grid tr[data-channel='{channel}'] td[data-col='state'] "
                                                       f"span")
    assert state_cell.value_of_css_property("background-color") in (STOPPED_RGB, "rgba(74, 84, 94, 1)")
    assert cell(browser, channel, "voltage") == "" and cell(browser, channel, "current") == ""  # nothing flows


def test_actions_without_a_valid_session_are_refused(browser, station, shots):
    log_in(browser, station)
    run = station.start(LONG)
    run_id = run["run_id"]
    browser.get(f"{station.base}/#/run/{run_id}")
    ready(browser, "run")
    wait(browser, lambda d: text_of(d, "#run-state") == "running", what="the run running")

    # the cookie alone is not enough to act: without the session's CSRF header the service refuses, 403
    answer = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/api/v1/runs/' + arguments[0] + '/pause', {method: 'POST', credentials: 'same-origin'})
          .then(r => r.json().then(b => done({status: r.status, body: b})));""", run_id)
    assert answer["status"] == 403 and "X-Station-CSRF" in answer["body"]["error"]["message"]

    # a forged cookie is no session: 401, and the page falls back to its login form
    browser.delete_cookie("station_session")
    browser.add_cookie({"name": "station_session", "value": "forged-session-id", "path": "/"})
    browser.find_element(By.ID, "action-pause").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "dialog#confirm-dialog[open]"), what="the dialog")
    browser.find_element(By.ID, "confirm-ok").click()
    note = wait(browser, lambda d: text_of(d, "#login-error"), what="the login form again")
    assert "session has ended" in note
    shots("refused")

    # and no cookie at all: the same
    browser.delete_all_cookies()
    answer = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/api/v1/runs/' + arguments[0] + '/stop', {method: 'POST', headers: {'X-Station-CSRF': 'guess'}})
          .then(r => done(r.status));""", run_id)
    assert answer == 401

    status, doc = station.api("GET", f"/runs/{run_id}")
    assert status == 200 and doc["state"] == "running"  # nothing happened
    _, events = station.api("GET", f"/runs/{run_id}/events")
    acted = [e["message"] for e in events["events"] if e["message"].split(" ")[0] in ("pause", "continue", "stop")]
    assert acted == []  # the only operator event is who started it
    assert station.api("POST", f"/runs/{run_id}/pause", token_="wrong-token")[0] == 401
    assert station.api("POST", f"/runs/{run_id}/stop")[0] == 200



def test_a_campaign_waiting_for_the_operator_is_confirmed_from_the_sample_page(browser, station, shots):
    log_in(browser, station)
    status, sample = station.api("POST", "/samples", {"cell": "anode-free-ncm622", "name": "anode-free 2"})
    assert status == 201
    status, campaign = station.api("POST", "/campaigns", {"campaign": "formation-cycling-80",
                                                          "sample": sample["sample_id"]})
    assert status == 201, campaign
    cid = campaign["campaign_id"]
    # the service's campaign engine asks for the sample to be placed on a channel, and waits
    waiting = wait_api(lambda: (d := station.api("GET", f"/campaigns/{cid}")[1])["state"] == "waiting" and d,
                       "the campaign waiting")
    browser.get(f"{station.base}/#/sample/{sample['sample_id']}")
    ready(browser, "sample")
    assert waiting["waiting"] in text_of(browser, "article.campaign p.waiting")
    # the page is read again when its campaign moves: a button found a moment ago may be gone, so look again
    wait(browser, lambda d: d.find_element(By.ID, f"confirm-{cid}").click() or True, what="the confirm button")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "dialog#confirm-dialog[open]"), what="the dialog")
    shots("confirm")
    wait(browser, lambda d: d.find_element(By.ID, "confirm-ok").click() or True, what="the dialog's confirm button")
    wait(browser, lambda d: (text_of(d, "#action-message") or "").startswith("Confirmed"), what="the confirmation")
    done = wait_api(lambda: (d := station.api("GET", f"/campaigns/{cid}")[1])["confirmed_by"] and d,
                    "who confirmed")
    assert done["confirmed_by"] == owner_name()
    target = waiting["target"] or waiting["location"]
    confirmations = [e for e in done["events"] if e["kind"] == "operator" and e["message"].startswith("confirmed")]
    assert [(e["who"], e["message"]) for e in confirmations] == [
        (owner_name(), f"confirmed by {owner_name()}: the sample is on {target}")]  # once, with who did it
    shots("confirmed")
    assert station.api("POST", f"/campaigns/{cid}/stop")[0] == 200


# -- the long grid: the keyboard, and the states a lab must see at once ---------------------------------------------


def _css_rgb(rule: str) -> str:
    """The background colour style.css gives ``rule``, as the browser computes it (rgb(r, g, b))."""
    css = (Path(__file__).resolve().parents[2] / "station/web/static/style.css").read_text()
    hexa = css.split(rule + " {", 1)[1].split("background:", 1)[1].split(";", 1)[0].strip().lstrip("#")
    return "rgb({}, {}, {})".format(*(int(hexa[i:i + 2], 16) for i in (0, 2, 4)))


ROW_STATE = "const r = document.querySelector(`#grid tr[data-channel='${arguments[0]}']`); return r && r.dataset.state"
FOCUSED = "const a = document.activeElement; return a && a.dataset ? a.dataset.channel || null : null"
#: the focused row's place against the grid's box, below its sticky header: true when it is wholly in view
IN_VIEW = """const a = document.activeElement, w = document.querySelector('.grid-wrap');
const r = a.getBoundingClientRect(), b = w.getBoundingClientRect();
const header = document.querySelector('#grid thead th').getBoundingClientRect().bottom;
return r.top >= header && r.bottom <= b.top + w.clientTop + w.clientHeight"""


def test_the_grid_shows_protection_and_lost_contact_by_colour_and_word(browser, many, shots):
    log_in(browser, many)
    runs = {}
    for name, channel in (("tripped", many.channels[0]), ("cut off", many.channels[1])):
        status, doc = many.api("POST", "/runs", {"protocol_source": LONG, "protocol_file": "test.yaml",
                                                 "cell": CELL, "channel": channel})
        assert status == 201, doc
        runs[name] = doc
        wait(browser, lambda d, c=channel: cell(d, c, "state") == "running", what=f"{channel} running")

    def badge(channel: str) -> tuple[str, str]:
        span = browser.find_element(By.CSS_SELECTOR, f"#grid tr[data-channel='{channel}'] td[data-col='state'] span")
        return span.text, span.value_of_css_property("background-color")

    # the instrument trips the channel's protection: the station stops it, and the grid says "protected"
    tripped = many.channels[0]
    assert many.sim.trip(tripped.split("/")[1], "over-voltage")
    wait(browser, lambda d: cell(d, tripped, "state") == "protected", what="the protected state")
    status, doc = many.api("GET", f"/runs/{runs['tripped']['run_id']}")
    assert status == 200 and doc["state"] == "stopped" and doc["message"].startswith("instrument protection")
    word, colour = badge(tripped)
    assert word == "protected" and colour in (_css_rgb(".state-protected"),
                                              _css_rgb(".state-protected").replace("rgb", "rgba")[:-1] + ", 1)")
    assert "protection" in cell(browser, tripped, "alarms")
    assert cell(browser, tripped, "voltage") == "" and cell(browser, tripped, "current") == ""

    # the link to the instrument is cut (every reply dropped): the running channel is "lost contact", and its last
    # values are not shown as if they were live
    cut = many.channels[1]
    many.sim.inject(Fault("drop", times=10**9))
    try:
        wait(browser, lambda d: cell(d, cut, "state") == "lost contact", what="the lost-contact state")
        status, doc = many.api("GET", f"/runs/{runs['cut off']['run_id']}")
        assert status == 200 and doc["state"] == "running" and doc["contact_lost_s"] is not None
        assert doc["live"]["voltage_v"] is None and doc["live"]["contact_lost_s"] is not None
        word, colour = badge(cut)
        assert word == "lost contact" and colour in (_css_rgb(".state-lost-contact"),
                                                     _css_rgb(".state-lost-contact").replace("rgb", "rgba")[:-1]
                                                     + ", 1)")
        alarms = browser.find_element(By.CSS_SELECTOR, f"#grid tr[data-channel='{cut}'] td[data-col='alarms']")
        assert "no contact for " in alarms.get_attribute("title")  # every alarm on hover, the newest shown
        assert cell(browser, cut, "voltage") == "–" and cell(browser, cut, "time") == "–"  # no stale word as live
        # the word is read whole, not cut by its column
        assert browser.execute_script("const s = document.querySelector(`#grid tr[data-channel='${arguments[0]}'] "
                                      "td[data-col='state'] span`); return s.scrollWidth <= s.clientWidth", cut)
        assert cell(browser, tripped, "state") == "protected"  # an ended run's state does not depend on the link
        shots("protected-and-lost-contact")
    finally:
        many.sim.faults.clear()
    # the link comes back: the channel is running again, as the instrument says
    wait(browser, lambda d: cell(d, cut, "state") == "running", what="contact back")
    assert many.api("POST", f"/runs/{runs['cut off']['run_id']}/stop")[0] == 200
    wait(browser, lambda d: cell(d, cut, "state") == "stopped", what="the stop")


def test_the_keyboard_reaches_every_row_of_a_long_grid(browser, many, shots):
    log_in(browser, many)
    drawn = [r.get_attribute("data-channel") for r in browser.find_elements(By.CSS_SELECTOR,
                                                                             "#grid tbody tr[data-channel]")]
    assert drawn == many.channels[:len(drawn)] and len(drawn) < MANY - 50  # the last rows are not in the document
    # the way a keyboard user comes: the sample filter, then Tab to the grid's box, then the arrow keys
    browser.find_element(By.ID, "filter-sample").click()
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert "grid-wrap" in browser.switch_to.active_element.get_attribute("class")
    browser.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    assert browser.execute_script(FOCUSED) == many.channels[0]  # the first row in view takes the focus
    browser.switch_to.active_element.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN)
    assert browser.execute_script(FOCUSED) == many.channels[2]

    # a page is the rows the box shows under its header, less one
    box, header = browser.execute_script("return [document.querySelector('.grid-wrap').clientHeight, "
                                         "document.querySelector('#grid thead').offsetHeight]")
    page = (box - header) // 28 - 1
    assert page > 10
    browser.switch_to.active_element.send_keys(Keys.PAGE_DOWN)
    assert browser.execute_script(FOCUSED) == many.channels[2 + page] and browser.execute_script(IN_VIEW)

    # row by row past the drawn window: each row is drawn as the focus reaches it, and scrolled into view
    at = 2 + page
    for _ in range(len(drawn) + 5 - at):
        browser.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
        at += 1
    assert at > len(drawn) and browser.execute_script(FOCUSED) == many.channels[at]
    assert browser.execute_script(IN_VIEW)
    shots("row-beyond-the-first-window")

    browser.switch_to.active_element.send_keys(Keys.END)
    assert browser.execute_script(FOCUSED) == many.channels[-1] and browser.execute_script(IN_VIEW)
    browser.switch_to.active_element.send_keys(Keys.PAGE_UP)
    assert browser.execute_script(FOCUSED) == many.channels[MANY - 1 - page] and browser.execute_script(IN_VIEW)
    browser.switch_to.active_element.send_keys(Keys.ARROW_UP)
    assert browser.execute_script(FOCUSED) == many.channels[MANY - 2 - page]
    shots("last-page")
    browser.switch_to.active_element.send_keys(Keys.HOME)
    assert browser.execute_script(FOCUSED) == many.channels[0] and browser.execute_script(IN_VIEW)
    assert browser.execute_script("return document.querySelector('.grid-wrap').scrollTop") == 0

    # a filter leaves fewer rows: the keys run over those only. A run far down the grid, found by its protocol
    far = many.channels[120]
    status, doc = many.api("POST", "/runs", {"protocol_source": LONG, "protocol_file": "test.yaml", "cell": CELL,
                                             "channel": far})
    assert status == 201, doc
    browser.find_element(By.ID, "filter-sample").send_keys("long-rest")
    wait(browser, lambda d: d.execute_script(ROW_STATE, far) == "running", what=f"{far} running")
    last = {r["channel"]: r for r in many.api("GET", "/runs")[1]["runs"]}  # each channel's newest run
    matching = [c for c in many.channels if c in last and last[c]["protocol"] == "long-rest"]
    assert matching[-1] == far and text_of(browser, "#grid-count") == f"{len(matching)} of {MANY} channels"
    browser.find_element(By.CSS_SELECTOR, ".grid-wrap").click()
    browser.switch_to.active_element.send_keys(Keys.HOME)
    assert browser.execute_script(FOCUSED) == matching[0]
    browser.switch_to.active_element.send_keys(Keys.END)
    assert browser.execute_script(FOCUSED) == far and browser.execute_script(IN_VIEW)
    shots("filtered")
    # Enter on a row opens its run
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    ready(browser, "run")
    assert text_of(browser, "h1 code") == doc["run_id"]
    assert many.api("POST", f"/runs/{doc['run_id']}/stop")[0] == 200


# -- a station with a lab database ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_station(tmp_path_factory):
    """A third station, whose station.yaml names a lab database of its own that a test may stop and start."""
    from tests.postgres import PostgresForTests

    tmp = tmp_path_factory.mktemp("dashboard-lab")
    database = PostgresForTests()
    started: list[subprocess.Popen] = []
    try:
        url = database.fresh()
        cfg = write_config(tmp / "station.yaml", start_sim(started, channels=1), channels=1,
                           extra=f"station: lab-pc-3\ndatabase: {url}\n")
        serve = popen([sys.executable, "-m", "station", "serve", "--config", str(cfg), "--port", "0", "--rescan",
                       "0.5", "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV)
        started.append(serve)
        base = json.loads(serve.stdout.readline())["api"].rstrip("/")  # type: ignore[union-attr]
        token = token_path(tmp / "data").read_text().strip()
        yield SimpleNamespace(base=base, token=token, database=database, url=url, tmp=tmp,
                              api=lambda method, path, body=None: _api(base, token, method, path, body))
    finally:
        for proc in reversed(started):
            interrupt(proc)
        database.close()


def test_the_header_shows_a_station_buffering_while_its_lab_database_is_away(browser, lab_station, shots):
    # the header asks every 0.3 s instead of every 10 s, in the pages this test loads only
    pace = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                   {"source": "window.stationLabEveryMs = 300;"})
    try:
        log_in(browser, lab_station)
        browser.refresh()
        ready(browser, "grid")
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": pace["identifier"]})
    assert browser.execute_script("return window.stationLabEveryMs") == 300
    badge = "#lab:not([hidden])"
    wait(browser, lambda d: text_of(d, badge) == "lab database", what="the lab database reached")
    lab_station.database.stop()
    try:
        wait(browser, lambda d: text_of(d, badge) == "lab database: buffering", what="the station buffering")
        title = browser.find_element(By.ID, "lab").get_attribute("title")
        assert "is not reached since" in title and "keeps everything in its own store" in title
        status, info = lab_station.api("GET", "/station")
        assert status == 200 and info["lab"]["buffering"] and info["lab"]["buffering_since"] and info["station"] == (
            "lab-pc-3")
        shots("buffering")
    finally:
        lab_station.database.start()
    wait(browser, lambda d: text_of(d, badge) == "lab database", what="the lab database back")


def test_the_lab_page_lists_every_station_and_another_station_s_run_opens_read_only(browser, lab_station, shots):
    """Another station's runs reach the lab's database by its forwarding; here they are written there as it would."""
    import numpy as np

    from station.store import RECORD_DTYPE, Store

    other = Store(lab_station.tmp / "other", lab_station.url, station="lab-pc-9")
    now = time.time()
    other.station_seen(now, started_at=now - 3600, api_url="http://lab-pc-9:8760", pid=4242, version="0.1.0")
    other.create_run(run_id="20261130-070000-0ther9", at=now - 600, channel="bts9/21-1-1",
                     instrument={"kind": "neware"}, protocol_name="long-rest", protocol_file=None,
                     protocol_source=LONG, parameters={}, program='{"steps": []}', cell={"name": CELL},
                     dry_run=False)
    other.set_state("20261130-070000-0ther9", "running", now - 590)
    block = np.zeros(50, dtype=RECORD_DTYPE)
    block["seq"] = np.arange(1, 51)
    block["test_time"] = block["step_time"] = 60.0 * block["seq"]
    block["voltage"] = 3.0 + 0.01 * block["seq"]
    block["frequency"] = block["z_real"] = block["z_imag"] = np.nan
    other.append_records("20261130-070000-0ther9", block)
    other.close()

    log_in(browser, lab_station)
    wait(browser, lambda d: not d.find_element(By.ID, "nav-lab").get_attribute("hidden"), what="the Lab link")
    browser.get(lab_station.base + "/#/lab")
    ready(browser, "lab")
    stations = [r.get_attribute("data-station") for r in browser.find_elements(By.CSS_SELECTOR, "#lab-stations tr")
                if r.get_attribute("data-station")]
    assert stations == ["lab-pc-3", "lab-pc-9"]
    row = "#lab-runs tr[data-run='20261130-070000-0ther9']"
    assert text_of(browser, f"{row} td:nth-child(2)") == "lab-pc-9"
    assert text_of(browser, f"{row} td:nth-child(9)") == "50"
    shots("lab")
    browser.find_element(By.CSS_SELECTOR, f"{row} a").click()
    ready(browser, "run")
    stop = browser.find_element(By.ID, "action-stop")
    assert stop.get_attribute("disabled") is not None
    assert stop.get_attribute("title") == "this run belongs to station lab-pc-9: act on it there"
    status, series = lab_station.api("GET", "/runs/20261130-070000-0ther9/series")
    assert status == 200 and series["records"] == 50 and series["voltage_v"][-1] == pytest.approx(3.5)  # the lab's
    shots("other-station-run")


def test_the_lab_s_samples_and_campaigns_are_read_from_every_station_and_acted_on_where_they_run(lab_station):
    """Another station's sample, its run and its campaign (forwarded to the lab's database as that station would):
    this station's API lists and shows them, and refuses to confirm a campaign it does not run, naming where."""
    from protocols.campaign import load_campaign
    from station.store import CampaignRow, SampleRow, Store

    other = Store(lab_station.tmp / "other-2", lab_station.url, station="lab-pc-8")
    other.create_sample(SampleRow(id="S-LAB8", name="coin on lab-pc-8", created_at=time.time(), cell={"name": CELL}))
    loaded = load_campaign("formation-cycling-80", load_cell("anode-free-ncm622"))
    other.create_campaign(CampaignRow(id="C-LAB8", name=loaded.name, sample_id="S-LAB8", created_at=time.time(),
                                      updated_at=time.time(), state="waiting", source_file=None,
                                      source_text=loaded.source.text, plan=loaded.plan.to_json()), "started by bo")
    other.create_run(run_id="20261130-080000-lab8r1", at=time.time(), channel="bts8/21-1-1",
                     instrument={"kind": "neware"}, protocol_name="long-rest", protocol_file=None,
                     protocol_source=LONG, parameters={}, program='{"steps": []}', cell={"name": CELL},
                     dry_run=False, sample_id="S-LAB8")
    other.link_run("20261130-080000-lab8r1", "C-LAB8", "formation")
    other.close()

    status, listed = lab_station.api("GET", "/samples")
    assert status == 200 and "S-LAB8" in [s["sample_id"] for s in listed["samples"]]
    status, sample = lab_station.api("GET", "/samples/S-LAB8")
    assert status == 200 and [(r["run_id"], r["station"]) for r in sample["runs"]] == [
        ("20261130-080000-lab8r1", "lab-pc-8")]
    status, campaigns = lab_station.api("GET", "/campaigns")
    assert status == 200 and [(c["campaign_id"], c["here"]) for c in campaigns["campaigns"]] == [("C-LAB8", False)]
    status, refused = lab_station.api("POST", "/campaigns/C-LAB8/confirm")
    assert status == 409 and refused["error"]["message"] == (
        "campaign C-LAB8 is run by station lab-pc-8; confirm it there (its dashboard, or `station campaign confirm "
        "C-LAB8` on that PC)")
