"""The web dashboard (``/ui``), the offline API pages (``/docs``, ``/redoc``) and the
security headers on every answer (docs/ui.md, docs/server.md).

Everything the browser loads comes from files inside the package
(``keeldb/server/ui/``): the dashboard's own HTML, CSS and script, and vendored copies of
Swagger UI and ReDoc with their licences (``ui/vendor/README.md``). Nothing is fetched
from another host, so the pages work without internet access.

The HTML pages and static files hold no data, so they are served without a key: a
browser cannot send a bearer key when it navigates, so the pages sign in themselves.
Every piece of data comes from the JSON API, which checks the key the page sends as
``Authorization: Bearer`` (the key the dashboard keeps in the tab's ``sessionStorage``).
That includes ``/openapi.json`` itself, which ``/docs`` and ``/redoc`` fetch with that key
(no key needed with ``--public-docs``).

:class:`SecurityHeaders` wraps the whole app, fast lane included: a strict
Content-Security-Policy (scripts and styles from this origin only, no inline script, no
``eval``), no framing, no MIME sniffing, no referrer, and ``Cache-Control: no-store`` on
everything but the static files.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keeldb.server.marks import public

__all__ = ["ASSETS", "UI_DIR", "SecurityHeaders", "install_dashboard"]

UI_DIR = Path(__file__).resolve().parent / "ui"
ASSETS = "/ui/assets"

# The dashboard and every JSON answer: only this origin's scripts, styles and API.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
# Swagger UI and ReDoc set element styles from script (React/styled-components insert
# <style> elements), so their pages allow inline *styles*; scripts stay 'self' only,
# without 'unsafe-inline' or 'unsafe-eval'. ReDoc builds its search worker from a blob:.
_CSP_API_PAGES = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; worker-src blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_API_PAGES = ("/docs", "/redoc")


def _header_list(csp: str, cache: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", csp.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cache-control", cache.encode()),
    ]


class SecurityHeaders:
    """Pure ASGI middleware adding the security headers to every HTTP answer.

    ``Cache-Control`` is ``no-store`` except under :data:`ASSETS` (static files, which
    revalidate with their ETag: ``no-cache``). A header the inner app already set with
    one of these names is replaced, so there is exactly one of each.
    """

    _NAMES = frozenset(name for name, _ in _header_list("", ""))

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._default = _header_list(_CSP, "no-store")
        self._assets = _header_list(_CSP, "no-cache")
        self._api_pages = _header_list(_CSP_API_PAGES, "no-store")

    def headers_for(self, path: str) -> list[tuple[bytes, bytes]]:
        """The headers added to the answer for ``path``."""
        if path.startswith(ASSETS + "/"):
            return self._assets
        if path in _API_PAGES:
            return self._api_pages
        return self._default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers_for(scope["path"])
        names = self._NAMES

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in names]
                message["headers"] = kept + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_dashboard(app: FastAPI) -> None:
    """Serve ``/ui`` (``/`` redirects there), its static files under :data:`ASSETS`,
    ``/docs`` and ``/redoc``, and wrap ``app`` in :class:`SecurityHeaders`.

    Call it last in ``create_app``: the headers middleware must be the outermost layer so
    it also covers the fast lane's answers.
    """

    async def root() -> Response:
        """Redirect to the dashboard."""
        return RedirectResponse("/ui", status_code=307)

    async def dashboard() -> Response:
        """The dashboard's single page (it signs in and loads everything over /v1)."""
        return FileResponse(UI_DIR / "index.html", media_type="text/html")

    async def swagger_page() -> Response:
        """Swagger UI over /openapi.json, from the package's own copy (a page without data:
        its script fetches the schema with the tab's key)."""
        return FileResponse(UI_DIR / "docs.html", media_type="text/html")

    async def redoc_page() -> Response:
        """ReDoc over /openapi.json, from the package's own copy."""
        return FileResponse(UI_DIR / "redoc.html", media_type="text/html")

    router = app.router
    router.add_api_route("/", public(root), include_in_schema=False)
    router.add_api_route("/ui", public(dashboard), include_in_schema=False)
    router.add_api_route("/ui/", public(dashboard), include_in_schema=False)
    router.add_api_route("/docs", public(swagger_page), include_in_schema=False)
    router.add_api_route("/redoc", public(redoc_page), include_in_schema=False)
    app.mount(ASSETS, StaticFiles(directory=UI_DIR), name="ui-assets")
    app.add_middleware(SecurityHeaders)
