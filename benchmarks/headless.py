"""Debian's chromium, headless at 1280x800, for the benchmarks that time what a user waits for in a browser
(bench_dashboard_2048, bench_run_page): one set-up, the one the browser tests use too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService
except ImportError:  # the test extra is not installed
    webdriver = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def skip_reason() -> str | None:
    """Why no browser can be started here; None when one can."""
    if webdriver is None:
        return "selenium is not installed (pip install '.[test]')"
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        return ("Debian's chromium and chromedriver are not installed (/usr/bin/chromium, /usr/bin/chromedriver): "
                "apt-get install chromium chromium-driver, as .ci/run does")
    return None


def open_browser(before_pages: str | None = None) -> Any:
    """A headless chromium whose page viewport is exactly 1280x800; ``before_pages``: a script every page runs
    before its own (the benchmarks' timestamps and counters)."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,800", "--lang=en-GB", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=DriverService(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    if before_pages:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": before_pages})
    return driver
