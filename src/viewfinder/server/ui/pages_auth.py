"""Sign-in and the home page (the datasets a user may read, or a labeler's task queue)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from viewfinder.errors import AuthenticationFailed, RateLimited
from viewfinder.server.deps import SESSION_COOKIE, SettingsDep, WorkspaceDep
from viewfinder.server.ui.common import (
    CSRF_COOKIE,
    PageUserDep,
    UIRoute,
    redirect,
    render,
)

router = APIRouter(route_class=UIRoute, include_in_schema=False)

_MAX_FIELD = 1024


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never ``//host`` or a
    scheme), else the home page."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _same_origin(request: Request) -> bool:
    """A sign-in form posted from another site is refused (login CSRF): browsers send
    ``Origin`` on form posts; when they do, it must be this server."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    """The sign-in form."""
    return render(request, "login.html", {"next": safe_next(next), "username": "", "error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, ws: WorkspaceDep, settings: SettingsDep) -> Response:
    """Check the password, open a session (cookie ``vf_session``) and keep its CSRF token
    for the pages (cookie ``vf_csrf``), then go to ``next``. Failures show the form again
    with the reason (never which of user name and password was wrong)."""
    from viewfinder.governance import sessions

    form = await request.form()
    username = str(form.get("username") or "")[:200]
    password = str(form.get("password") or "")[:_MAX_FIELD]
    target = safe_next(str(form.get("next") or "/"))
    context: dict[str, Any] = {"next": target, "username": username}
    if not _same_origin(request):
        return render(request, "login.html", context | {
            "error": "This sign-in form was sent from another site."}, status_code=403)
    if not username or not password:
        return render(request, "login.html", context | {
            "error": "Enter your user name and password."})
    ip = request.client.host if request.client else None
    try:
        _principal, token, csrf = sessions.login(ws, username, password, ip=ip,
                                                 user_agent=request.headers.get("user-agent", "")[:400])
    except RateLimited as e:
        out = render(request, "login.html", context | {"error": e.message}, status_code=429)
        out.headers["Retry-After"] = str(max(1, int(e.retry_after)))
        return out
    except AuthenticationFailed:
        return render(request, "login.html", context | {
            "error": "Wrong user name or password."}, status_code=401)
    out = redirect(target)
    common = {"max_age": settings.session_ttl_s, "httponly": True,
              "secure": settings.secure_cookies, "path": "/"}
    out.set_cookie(SESSION_COOKIE, token, samesite="lax", **common)  # type: ignore[arg-type]
    # Lax like the session: a page opened from a link elsewhere must still carry the token
    out.set_cookie(CSRF_COOKIE, csrf, samesite="lax", **common)  # type: ignore[arg-type]
    return out


@router.get("/", response_class=HTMLResponse)
def home(request: Request, ws: WorkspaceDep, page: PageUserDep) -> HTMLResponse:
    """The datasets the user may read, grouped by project, with their check status; a
    user who reads no dataset but works a labeling queue sees their tasks instead."""
    from viewfinder.errors import PermissionDenied
    from viewfinder.services import access, checks

    datasets = access.list_datasets(ws, page.principal)
    if not datasets:
        try:
            tasks = access.labeling_queue(ws, page.principal)
        except PermissionDenied:
            tasks = None
        if tasks is not None:
            return render(request, "queue.html", {"tasks": tasks})
    groups: dict[str, list[dict[str, Any]]] = {}
    for d in datasets:
        report = checks.latest_report(ws, d["name"], d["version"])
        d = {**d, "check": None if report is None else {"passed": report.passed}}
        groups.setdefault(d.get("project") or "Datasets outside a project", []).append(d)
    projects = [{"name": name, "datasets": rows} for name, rows in sorted(groups.items())]
    return render(request, "datasets.html", {"datasets": datasets, "projects": projects})
