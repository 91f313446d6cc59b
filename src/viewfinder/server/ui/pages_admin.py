"""Administration pages (members admins only): users, teams and projects, role bindings
(with curator slices), API tokens, and the audit log (filter, export as JSON Lines).

Forms post back with the session's CSRF token (``csrf_token`` field, checked by
:data:`~viewfinder.server.deps.CsrfDep`) and follow post/redirect/get: the outcome is
shown once on the next page from a short-lived ``vf_flash`` cookie. Every change goes
through ``services.access`` (policy check and audit record there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.background import BackgroundTask

from viewfinder.errors import InvalidInput, PermissionDenied, ViewfinderError
from viewfinder.server.deps import CsrfDep, WorkspaceDep
from viewfinder.server.ui.common import PageUser, PageUserDep, UIRoute, redirect, render
from viewfinder.storage.workspace import Workspace

router = APIRouter(prefix="/admin", route_class=UIRoute, include_in_schema=False)

FLASH_COOKIE = "vf_flash"
AUDIT_PAGE = 500
"""Newest audit events shown on the page (the export has them all)."""


def _admin(page: PageUser) -> None:
    """Raises PermissionDenied (a 403 page) unless the user administers members."""
    if not page.is_admin:
        raise PermissionDenied(f"{page.principal.username} may not administer members "
                               "(it needs an organization-level head_of_dataops role)")


def _origin(request: Request) -> dict[str, str | None]:
    return {"ip": request.client.host if request.client else None,
            "user_agent": request.headers.get("user-agent", "")[:400]}


def _done(path: str, kind: str, message: str) -> Response:
    """Redirect to ``path``, showing ``message`` there once."""
    out = redirect(f"/admin/{path}")
    out.set_cookie(FLASH_COOKIE, json.dumps({"kind": kind, "message": message[:500]}),
                   max_age=60, httponly=True, samesite="strict", path="/admin")
    return out


def _attempt(path: str, action: Callable[[], str]) -> Response:
    """Run an admin action and redirect to ``path`` with its message, or with the error a
    user can correct; a refusal stays a 403 page."""
    try:
        message = action()
    except PermissionDenied:
        raise
    except ViewfinderError as e:
        return _done(path, "error", str(e))
    return _done(path, "ok", message)


def _page(request: Request, template: str, context: dict[str, Any]) -> Response:
    """Render an admin page, with (and then forgetting) the pending flash message."""
    flash = None
    raw = request.cookies.get(FLASH_COOKIE)
    if raw:
        try:
            value = json.loads(raw)
            flash = {"kind": "ok" if value.get("kind") == "ok" else "error",
                     "message": str(value.get("message", ""))}
        except (ValueError, AttributeError):
            flash = None
    out = render(request, template, {"flash": flash} | context)
    if raw is not None:
        out.delete_cookie(FLASH_COOKIE, path="/admin")
    return out


async def _form(request: Request, *names: str) -> dict[str, str]:
    form = await request.form()
    return {n: str(form.get(n) or "").strip() for n in names}


def _scope(text: str) -> tuple[str, str]:
    """``kind:name`` (``org:acme``, ``team:vision``, ``project:streets``)."""
    from viewfinder.governance.roles import SCOPE_KINDS

    kind, sep, name = text.partition(":")
    if not sep or kind not in SCOPE_KINDS or not name:
        raise InvalidInput(f"scope must be one of {', '.join(k + ':NAME' for k in SCOPE_KINDS)}, "
                           f"got {text!r}")
    return kind, name


def _scopes(ws: Workspace) -> list[str]:
    from viewfinder.governance import orgs

    return ([f"org:{o.name}" for o in orgs.list_orgs(ws)]
            + [f"team:{t.name}" for t in orgs.list_teams(ws)]
            + [f"project:{p.name}" for p in orgs.list_projects(ws)])


# -- users -----------------------------------------------------------------------------

@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, ws: WorkspaceDep, page: PageUserDep) -> Response:
    """Every user with their role bindings."""
    from viewfinder.services import access

    _admin(page)
    roles_of: dict[str, list[Any]] = {}
    for b in access.list_bindings(ws, page.principal):
        roles_of.setdefault(b.username, []).append(b)
    return _page(request, "admin_users.html", {
        "tab": "users", "users": access.list_users(ws, page.principal), "roles_of": roles_of})


@router.post("/users")
async def create_user(request: Request, ws: WorkspaceDep, page: PageUserDep, _csrf: CsrfDep) -> Response:
    """Create a local account."""
    from viewfinder.services import access

    _admin(page)
    f = await _form(request, "username", "password")
    if not f["username"] or not f["password"]:
        return _done("users", "error", "A new user needs a user name and a password.")
    def create() -> str:
        access.create_user(ws, page.principal, f["username"], f["password"], **_origin(request))
        return f"User {f['username']} created."

    return _attempt("users", create)


@router.post("/users/{username}/deactivate")
async def deactivate_user(request: Request, username: str, ws: WorkspaceDep, page: PageUserDep,
                          _csrf: CsrfDep) -> Response:
    """Deactivate an account: it can no longer sign in, and its sessions and tokens stop
    working (audited as ``user.deactivate``)."""
    from viewfinder.services import access

    _admin(page)
    if username == page.principal.username:
        return _done("users", "error", "You cannot deactivate your own account.")
    def deactivate() -> str:
        access.deactivate_user(ws, page.principal, username, **_origin(request))
        return f"User {username} deactivated."

    return _attempt("users", deactivate)


@router.get("/teams", response_class=HTMLResponse)
def teams_page(request: Request, ws: WorkspaceDep, page: PageUserDep) -> Response:
    """Organizations, teams and projects (with their datasets)."""
    from viewfinder.governance import orgs
    from viewfinder.services import access

    _admin(page)
    return _page(request, "admin_teams.html", {
        "tab": "teams", "orgs": orgs.list_orgs(ws), "teams": orgs.list_teams(ws),
        "projects": access.list_projects(ws, page.principal), "task_types": orgs.TASK_TYPES,
        "datasets": [d["name"] for d in access.list_datasets(ws, page.principal)]})


@router.post("/teams")
async def create_team(request: Request, ws: WorkspaceDep, page: PageUserDep, _csrf: CsrfDep) -> Response:
    """Create a team in an organization."""
    from viewfinder.services import access

    _admin(page)
    f = await _form(request, "org", "name")
    if not f["org"] or not f["name"]:
        return _done("teams", "error", "A team needs an organization and a name.")
    def create() -> str:
        access.create_team(ws, page.principal, f["org"], f["name"])
        return f"Team {f['name']} created in {f['org']}."

    return _attempt("teams", create)


@router.post("/projects")
async def create_project(request: Request, ws: WorkspaceDep, page: PageUserDep,
                         _csrf: CsrfDep) -> Response:
    """Create a project (one prediction task) in an organization or team, with datasets."""
    from viewfinder.services import access

    _admin(page)
    f = await _form(request, "name", "org", "team", "task_type", "datasets")
    if not f["name"] or not f["org"]:
        return _done("teams", "error", "A project needs a name and an organization.")
    datasets = [d for d in f["datasets"].replace(",", " ").split() if d]
    def create() -> str:
        access.create_project(ws, page.principal, f["name"], org=f["org"], team=f["team"] or None,
                              task_type=f["task_type"] or "detection", datasets=datasets)
        return f"Project {f['name']} created."

    return _attempt("teams", create)


# -- role bindings ---------------------------------------------------------------------

@router.get("/bindings", response_class=HTMLResponse)
def bindings_page(request: Request, ws: WorkspaceDep, page: PageUserDep) -> Response:
    """Role bindings, and the form to grant one (with an optional curator slice)."""
    from viewfinder.governance.roles import Role
    from viewfinder.services import access

    _admin(page)
    bindings = sorted(access.list_bindings(ws, page.principal),
                      key=lambda b: (b.username, b.role.value, b.scope_kind, b.scope_name))
    return _page(request, "admin_bindings.html", {
        "tab": "bindings", "bindings": bindings, "users": access.list_users(ws, page.principal),
        "roles": [r.value for r in Role], "scopes": _scopes(ws)})


@router.post("/bindings")
async def grant(request: Request, ws: WorkspaceDep, page: PageUserDep, _csrf: CsrfDep) -> Response:
    """Bind a role to a user at a scope (audited as ``role.grant``)."""
    from viewfinder.services import access

    _admin(page)
    f = await _form(request, "username", "role", "scope", "slice")
    if not f["username"] or not f["role"] or not f["scope"]:
        return _done("bindings", "error", "Choose a user, a role and a scope.")
    try:
        kind, name = _scope(f["scope"])
        access.grant_role(ws, page.principal, f["username"], f["role"], scope_kind=kind,
                          scope_name=name, slice=f["slice"] or None, **_origin(request))
    except PermissionDenied:
        raise
    except ViewfinderError as e:
        return _done("bindings", "error", str(e))
    where = f" (slice {f['slice']})" if f["slice"] else ""
    return _done("bindings", "ok", f"{f['username']} is now {f['role']} at {f['scope']}{where}.")


@router.post("/bindings/revoke")
async def revoke(request: Request, ws: WorkspaceDep, page: PageUserDep, _csrf: CsrfDep) -> Response:
    """Remove a user's role at a scope (audited as ``role.revoke``)."""
    from viewfinder.services import access

    _admin(page)
    f = await _form(request, "username", "role", "scope")
    if not f["username"] or not f["role"] or not f["scope"]:
        return _done("bindings", "error", "Say which user, role and scope to revoke.")
    try:
        kind, name = _scope(f["scope"])
        n = access.revoke_role(ws, page.principal, f["username"], f["role"], scope_kind=kind,
                               scope_name=name, **_origin(request))
    except PermissionDenied:
        raise
    except ViewfinderError as e:
        return _done("bindings", "error", str(e))
    return _done("bindings", "ok", f"Revoked {f['role']} at {f['scope']} from {f['username']}"
                                   f" ({n} binding{'s' if n != 1 else ''}).")


# -- API tokens ------------------------------------------------------------------------

def _tokens_context(ws: Workspace, page: PageUser) -> dict[str, Any]:
    from viewfinder.services import access

    tokens = sorted(access.list_tokens(ws, page.principal), key=lambda t: t.created_at, reverse=True)
    return {"tab": "tokens", "tokens": tokens, "users": access.list_users(ws, page.principal),
            "new_token": None}


@router.get("/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, ws: WorkspaceDep, page: PageUserDep) -> Response:
    """Every API token (prefix, scopes, expiry, last use) and the form to make one."""
    _admin(page)
    return _page(request, "admin_tokens.html", _tokens_context(ws, page))


@router.post("/tokens", response_class=HTMLResponse)
async def create_token(request: Request, ws: WorkspaceDep, page: PageUserDep,
                       _csrf: CsrfDep) -> Response:
    """Make a token; the page answering the post shows its secret, once (it is never
    stored in a cookie or shown again)."""
    from viewfinder.services import access

    _admin(page)
    f = await _form(request, "username", "name", "scopes", "expires_in_days")
    if not f["username"] or not f["name"]:
        return _done("tokens", "error", "A token needs a user and a name.")
    try:
        days = int(f["expires_in_days"]) if f["expires_in_days"] else None
        if days is not None and not 1 <= days <= 3650:
            raise InvalidInput("expiry must be between 1 and 3650 days")
        scopes = [s for s in f["scopes"].replace(",", " ").split() if s] or ["read"]
        secret, info = access.create_token(
            ws, page.principal, f["username"], f["name"], scopes=scopes,
            expires_in=timedelta(days=days) if days else None, **_origin(request))
    except PermissionDenied:
        raise
    except ValueError:
        return _done("tokens", "error",
                     f"expiry must be a whole number of days, got {f['expires_in_days']!r}")
    except ViewfinderError as e:
        return _done("tokens", "error", str(e))
    context = _tokens_context(ws, page) | {"new_token": {"username": info.username, "secret": secret}}
    return render(request, "admin_tokens.html", context | {"flash": None})


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: str, ws: WorkspaceDep, page: PageUserDep,
                       _csrf: CsrfDep) -> Response:
    """Revoke a token (it stops working at once, on every server)."""
    from viewfinder.errors import NotFound
    from viewfinder.services import access

    _admin(page)
    try:
        info = access.revoke_token(ws, page.principal, token_id, **_origin(request))
    except NotFound as e:
        return _done("tokens", "error", e.message)
    return _done("tokens", "ok", f"Token {info.name} ({info.prefix}) of {info.username} revoked.")


# -- audit log -------------------------------------------------------------------------

_AUDIT_FIELDS = ("actor", "action", "resource", "since", "until")


def _when(text: str, field: str) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field} must be a date or time like 2026-01-31 or "
                           f"2026-01-31T14:00, got {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _audit_filter(q: dict[str, str]) -> Any:
    """The :class:`AuditFilter` of the page's query (``resource`` is ``kind`` or ``kind:id``)."""
    from viewfinder.governance.audit import AuditFilter

    kind, _, rid = q["resource"].partition(":")
    return AuditFilter(actor=q["actor"] or None, action=q["action"] or None,
                       since=_when(q["since"], "since"), until=_when(q["until"], "until"),
                       resource_kind=kind or None, resource_id=rid or None)


def _audit_query(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "").strip()[:200] for k in _AUDIT_FIELDS}


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, ws: WorkspaceDep, page: PageUserDep) -> Response:
    """The newest audit events matching the filter, newest first."""
    from viewfinder.services import access

    _admin(page)
    q = _audit_query(request)
    error, events = None, []
    try:
        events = access.audit_events(ws, page.principal, _audit_filter(q), limit=None)[-AUDIT_PAGE:]
    except InvalidInput as e:
        error = e.message
    events.reverse()
    return _page(request, "admin_audit.html", {
        "tab": "audit", "q": q, "events": events, "error": error, "limit": AUDIT_PAGE,
        "export_query": urlencode({k: v for k, v in q.items() if v})})


@router.get("/audit.jsonl")
def audit_export(request: Request, ws: WorkspaceDep, page: PageUserDep) -> Response:
    """Every matching event as JSON Lines (a download; the export itself is audited)."""
    import tempfile
    from pathlib import Path

    from viewfinder.services import access

    _admin(page)
    filters = _audit_filter(_audit_query(request))
    tmp = Path(tempfile.mkdtemp(prefix="vf-audit-"))
    out = tmp / "audit.jsonl"

    def cleanup() -> None:
        out.unlink(missing_ok=True)
        tmp.rmdir()

    try:
        access.audit_export(ws, page.principal, out, filters)
    except BaseException:
        out.unlink(missing_ok=True)
        tmp.rmdir()
        raise
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return FileResponse(out, media_type="application/x-ndjson", filename=f"audit-{stamp}.jsonl",
                        background=BackgroundTask(cleanup), headers={"Cache-Control": "no-store"})
