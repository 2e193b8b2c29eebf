"""The embeddable chat widget and its demo page.

``GET /widget.js`` is the widget: one ``<script>`` tag embeds it on any page (see the comment at
the top of ``api/static/widget.js``). ``GET /`` is a demo page that shows an article beside the
widget, with a Content-Security-Policy that allows no inline script or style and no requests
to any other origin. The static files are a fixed list: nothing else under ``api/static/`` is
served.

Wired into the app with ``app.include_router(web.router)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: The demo page's policy: scripts, styles, fetches and images from this origin only; no
#: inline code (the widget styles its shadow root with a constructed stylesheet), no eval,
#: no plugins, no framing, and Trusted Types enforced so no HTML string can reach the DOM.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)

#: Sent with every file served here.
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate (ETag), so a new widget is picked up at once
}

PAGE_HEADERS = {
    **COMMON_HEADERS,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

#: URL path -> (file under static/, media type, extra headers).
FILES: dict[str, tuple[str, str, dict[str, str]]] = {
    "/": ("index.html", "text/html; charset=utf-8", PAGE_HEADERS),
    # Publishers load the widget from their own pages: let pages that isolate themselves
    # (Cross-Origin-Embedder-Policy) load it too.
    "/widget.js": (
        "widget.js",
        "text/javascript; charset=utf-8",
        {**COMMON_HEADERS, "Cross-Origin-Resource-Policy": "cross-origin"},
    ),
    "/static/demo.js": ("demo.js", "text/javascript; charset=utf-8", COMMON_HEADERS),
    "/static/demo.css": ("demo.css", "text/css; charset=utf-8", COMMON_HEADERS),
    "/static/favicon.svg": ("favicon.svg", "image/svg+xml", COMMON_HEADERS),
}

router = APIRouter(include_in_schema=False)


def _file_endpoint(
    name: str, media_type: str, headers: dict[str, str]
) -> Callable[[], Awaitable[FileResponse]]:
    path = STATIC_DIR / name

    async def serve() -> FileResponse:
        return FileResponse(path, media_type=media_type, headers=headers)

    serve.__name__ = f"static_{name.replace('.', '_')}"
    return serve


for _url, (_name, _media_type, _headers) in FILES.items():
    router.add_api_route(
        _url, _file_endpoint(_name, _media_type, _headers), methods=["GET", "HEAD"]
    )
