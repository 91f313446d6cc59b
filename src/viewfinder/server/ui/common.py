"""What every web UI page shares: the Jinja2 environment, the page route class (HTML
error pages, the sign-in form for anonymous visitors, security headers), the signed-in
page user, and the static files.

Escaping rules (the UI shows names and values typed by users: class names, metadata,
dataset names, filter text):

* templates are autoescaped, and no template marks user data ``|safe``;
* data for the ES modules travels in ``<script type="application/json">`` blocks written
  with ``|tojson`` (which escapes ``<``, ``>``, ``&`` and ``'``), never in inline code;
* every UI answer carries :data:`CONTENT_SECURITY_POLICY`, which allows scripts and
  styles only from ``/static``, so markup that slipped through would still not run.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Coroutine
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from viewfinder.errors import ViewfinderError
from viewfinder.governance.principal import Principal
from viewfinder.server.deps import CSRF_FIELD, PrincipalDep, WorkspaceDep, is_anonymous

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger(__name__)

SERVER_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = SERVER_DIR / "templates"
STATIC_DIR = SERVER_DIR / "static"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'")
"""Scripts and styles from this server's ``/static`` only: no inline code, no CDN."""

CSRF_COOKIE = "vf_csrf"
"""Holds the session's CSRF token for the UI's pages (see :func:`page_user`)."""

PALETTE_SIZE = 20
"""Class colors: ``app.css`` defines ``--class-0`` .. ``--class-19``; class ``i`` (by its
index in the version's class list) takes color ``i % PALETTE_SIZE``."""

_STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg)$")
_MEDIA = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
          "svg": "image/svg+xml"}


class SignInRequired(Exception):
    """Raised by :func:`page_user` for an anonymous visitor: the route answers with the
    sign-in form (401), which brings the visitor back to the page afterwards."""


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one Jinja2 environment of the UI (autoescape on for every template)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["urlpart"] = lambda v: quote(str(v), safe="")
    env.filters["short"] = lambda v: str(v)[:12] if v else ""
    env.filters["when"] = lambda v: str(v)[:19].replace("T", " ") if v else ""
    env.globals["palette_size"] = PALETTE_SIZE
    return env


def render(request: Request, template: str, context: dict[str, Any], *,
           status_code: int = 200) -> HTMLResponse:
    """Render ``template`` with ``context`` plus the page basics (``user``,
    ``csrf_token``, ``is_admin``), with the UI's security headers."""
    page = getattr(request.state, "page", None)
    base: dict[str, Any] = {"request_path": request.url.path, "user": None, "csrf_token": "",
                            "is_admin": False, "csrf_field": CSRF_FIELD}
    if page is not None:
        base |= {"user": page.principal, "csrf_token": page.csrf_token,
                 "is_admin": page.is_admin}
    html = environment().get_template(template).render(base | context)
    return HTMLResponse(html, status_code=status_code, headers=ui_headers())


def ui_headers() -> dict[str, str]:
    return {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"}


def redirect(url: str) -> RedirectResponse:
    """A 303 (after a form post, the browser GETs ``url``)."""
    return RedirectResponse(url, status_code=303, headers=ui_headers())


class UIRoute(APIRoute):
    """A page route: Viewfinder errors become an HTML error page with the API's status
    code; an anonymous visitor gets the sign-in form (401) where the page would be."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            from viewfinder.server.errors import status_of

            try:
                return await handler(request)
            except SignInRequired:
                # the sign-in form in place (401), posting back to this page afterwards
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return render(request, "login.html", {
                    "next": target, "username": "", "error": None}, status_code=401)
            except ViewfinderError as e:
                code = status_of(e)
                message = e.message if code != 500 else (
                    "the server could not complete the request; see the server log")
                if code == 500:
                    log.error("UI page %s failed: %s", request.url.path, e)
                return render(request, "error.html", {
                    "status": code, "kind": type(e).__name__, "message": message},
                    status_code=code)

        return page_handler


class PageUser:
    """The signed-in user of a page, with the session's CSRF token (for forms and fetch
    calls) and whether they administer members (the Admin pages)."""

    def __init__(self, principal: Principal, csrf_token: str, is_admin: bool) -> None:
        self.principal = principal
        self.csrf_token = csrf_token
        self.is_admin = is_admin


def page_user(request: Request, ws: WorkspaceDep, principal: PrincipalDep) -> PageUser:
    """The signed-in user of a page; anyone else is shown the sign-in form.

    A browser session's CSRF token is stored hashed in the catalog, so the page cannot
    read it back there: the UI's sign-in keeps it in the ``vf_csrf`` cookie (HttpOnly,
    SameSite=Lax), and a page renders it into its forms only after checking that it
    belongs to the session. A session opened through the API has no such cookie: its
    pages render without a token, and their forms are refused until the user signs in
    through the UI.

    Raises:
        SignInRequired: no valid session cookie.
    """
    from viewfinder.errors import PermissionDenied
    from viewfinder.governance import policy, sessions
    from viewfinder.governance.roles import Action

    if is_anonymous(principal) or request.state.auth != "session":
        raise SignInRequired
    csrf = request.cookies.get(CSRF_COOKIE, "")
    if csrf and not sessions.verify_csrf(ws, request.state.session_token, csrf):
        csrf = ""
    try:
        policy.decide(ws, principal, Action.MEMBERS_ADMIN)
        is_admin = True
    except PermissionDenied:
        is_admin = False
    page = PageUser(principal, csrf, is_admin)
    request.state.page = page
    return page


PageUserDep = Annotated[PageUser, Depends(page_user)]


def static_files() -> list[str]:
    """The names of the files under ``static/`` (one flat folder)."""
    return sorted(p.name for p in STATIC_DIR.iterdir()
                  if p.is_file() and _STATIC_NAME.match(p.name))


def static_route(name: str) -> Callable[[Request], Response]:
    """A GET handler for one file of ``static/``: each file has a route of its own, so no
    path from a request is ever joined to a folder. Revalidated by ETag; public (the
    sign-in page needs the stylesheet)."""
    path = STATIC_DIR / name
    media = _MEDIA[name.rsplit(".", 1)[1]]

    def serve(request: Request) -> Response:
        data = path.read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:24] + '"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(data, media_type=media, headers=headers)

    serve.__name__ = f"static_{name.replace('.', '_').replace('-', '_')}"
    return serve
