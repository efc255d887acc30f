"""Serving the dashboard's files: ``GET /`` is the page shell, ``GET /static/PATH`` a file under station/web/static.

Neither needs a token: the files are the same for every station and hold no data; the page asks the API (which does
need one) for everything else and shows its login form when told 401. A path is served only when it resolves to a
regular file inside the static directory (no ``..``, no symlink out, no hidden file); anything else is a plain 404.
Every answer carries headers that forbid framing the dashboard in another site's page (clickjacking of its stop
button) and MIME sniffing; files are revalidated on each load (``no-cache``), so an updated station is seen at once.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from station.web import STATIC_DIR

#: served types by suffix: module scripts must come as JavaScript whatever the PC's mimetypes table says
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
               ".woff2": "font/woff2", ".map": "application/json", ".txt": "text/plain; charset=utf-8",
               ".md": "text/plain; charset=utf-8"}
#: a file without a known suffix (LICENSE) is shown as text, never run
DEFAULT_TYPE = "text/plain; charset=utf-8"
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", b"frame-ancestors 'none'"), (b"referrer-policy", b"no-referrer")]


def static_file(relative: str, root: Path = STATIC_DIR) -> Path | None:
    """The file ``relative`` names under ``root``, or None when it is not a regular file inside it."""
    if not relative or "\x00" in relative or "\\" in relative:
        return None
    parts = relative.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    try:
        base = root.resolve()
        path = (base / relative).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


def _file(relative: str) -> FileResponse:
    path = static_file(relative)
    if path is None:
        raise StarletteHTTPException(404, f"no dashboard file '{relative}'; the page's files are under /static/")
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix.lower(), DEFAULT_TYPE),
                        headers={"Cache-Control": "no-cache"})


def add_static_routes(app: FastAPI) -> None:
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> FileResponse:
        path = static_file("index.html")
        if path is None:
            raise StarletteHTTPException(404, "the dashboard's page is not installed (station/web/static/index.html "
                                              "is missing); reinstall the station package")
        return _file("index.html")

    @app.api_route("/static/{relative:path}", methods=["GET", "HEAD"], include_in_schema=False)
    def static(relative: str) -> FileResponse:
        return _file(relative)


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every response (a plain ASGI wrapper, so the event
    stream is passed through untouched)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
