"""The dashboard's files (station/web/static: HTML, JavaScript, CSS and the vendored chart library), served by the
station service itself: a lab PC needs no web server, no build step and no internet connection (no CDN)."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
