"""``/api/v1/docs``: Swagger UI for the REST API, served by this server alone.

FastAPI's own docs page loads Swagger UI from a CDN, which a team server's users often
cannot reach. This page loads it from the ``openapi-ui-bundles`` package (the Swagger UI
distribution, installed with Viewfinder), and starts it with ``/static/api-docs.js``.
The page's Content-Security-Policy allows nothing but this server, so no asset can come
from elsewhere, and Swagger UI's online validator (which would send the schema to
swagger.io) is switched off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

DOCS_PATH = "/api/v1/docs"
ASSETS = {"swagger-ui.css": "text/css; charset=utf-8",
          "swagger-ui-bundle.js": "text/javascript; charset=utf-8"}
"""The Swagger UI files the page loads, each served at ``/api/v1/docs/<name>``."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'")
"""Scripts, styles, the schema and images from this server only (no inline code)."""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Viewfinder REST API</title>
<link rel="stylesheet" href="{docs}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi="/api/v1/openapi.json"></div>
<script src="{docs}/swagger-ui-bundle.js"></script>
<script src="/static/api-docs.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


def swagger_ui_dir() -> Path:
    """The folder of the installed Swagger UI distribution."""
    from openapi_ui_bundles.swagger_ui import static_path

    return Path(static_path)


@lru_cache(maxsize=len(ASSETS))
def _asset(name: str) -> tuple[bytes, str]:
    data = (swagger_ui_dir() / name).read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:24] + '"'


@router.get(DOCS_PATH, response_class=HTMLResponse)
def docs_page() -> HTMLResponse:
    """The API documentation (Swagger UI), public like the schema it shows."""
    return HTMLResponse(_PAGE.format(docs=DOCS_PATH), headers={
        "Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"})


def _asset_route(name: str, media_type: str) -> Callable[[Request], Response]:
    """A GET handler for one Swagger UI file (one route per file: no path from a request
    reaches the file system), revalidated by ETag."""

    def serve(request: Request) -> Response:
        data, etag = _asset(name)
        headers = {"ETag": etag, "Cache-Control": "public, max-age=3600"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(data, media_type=media_type, headers=headers)

    serve.__name__ = "docs_" + name.replace("-", "_").replace(".", "_")
    return serve


for _name, _media in ASSETS.items():
    router.add_api_route(f"{DOCS_PATH}/{_name}", _asset_route(_name, _media), methods=["GET"],
                         include_in_schema=False)
