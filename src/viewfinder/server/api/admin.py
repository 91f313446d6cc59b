"""``/api/v1/admin`` (members, role bindings, the audit log) and ``/api/v1/tokens`` (the
caller's own API tokens). The access service decides who may do what: administering
members and reading the audit log are the head of DataOps' actions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from viewfinder.server.api.schemas import (
    CreateUserRequest,
    RoleBindingRequest,
    TokenRequest,
)
from viewfinder.server.deps import UserDep, WorkspaceDep, origin

router = APIRouter(tags=["admin"])


def _scope(text: str) -> tuple[str, str]:
    """``"org:acme"`` → ``("org", "acme")``."""
    from viewfinder.errors import InvalidInput

    kind, sep, name = text.partition(":")
    if not sep or not name:
        raise InvalidInput(f"scope must be KIND:NAME (org:..., team:... or project:...), got {text!r}")
    return kind, name


# -- members ---------------------------------------------------------------------------

@router.get("/admin/users")
def list_users(ws: WorkspaceDep, principal: UserDep) -> list[dict[str, Any]]:
    """Every user account (no password hashes)."""
    from viewfinder.services import access

    return [u.to_dict() for u in access.list_users(ws, principal)]


@router.post("/admin/users", status_code=201)
def create_user(body: CreateUserRequest, request: Request, ws: WorkspaceDep,
                principal: UserDep) -> dict[str, Any]:
    """Create a user account with a password (it has no roles until one is granted)."""
    from viewfinder.services import access

    return access.create_user(ws, principal, body.username, body.password,
                              **origin(request)).to_dict()


@router.get("/admin/role-bindings")
def list_role_bindings(ws: WorkspaceDep, principal: UserDep,
                       username: Annotated[str | None, Query(max_length=200)] = None) -> list[dict[str, Any]]:
    """Role bindings (of one user when ``username`` is given)."""
    from viewfinder.services import access

    return [b.to_dict() for b in access.list_bindings(ws, principal, username)]


@router.post("/admin/role-bindings", status_code=201)
def grant(body: RoleBindingRequest, request: Request, ws: WorkspaceDep,
          principal: UserDep) -> dict[str, Any]:
    """Give a user a role at ``org:NAME``, ``team:NAME`` or ``project:NAME``; a curator's
    binding may be narrowed to a ``slice`` (a filter expression)."""
    from viewfinder.services import access

    kind, name = _scope(body.scope)
    return access.grant_role(ws, principal, body.username, body.role, scope_kind=kind,
                             scope_name=name, slice=body.slice, **origin(request)).to_dict()


@router.post("/admin/role-bindings/revoke")
def revoke(body: RoleBindingRequest, request: Request, ws: WorkspaceDep,
           principal: UserDep) -> dict[str, int]:
    """Remove a user's role at a scope (only the binding with ``slice`` when given)."""
    from viewfinder.services import access

    kind, name = _scope(body.scope)
    n = access.revoke_role(ws, principal, body.username, body.role, scope_kind=kind,
                           scope_name=name, slice=body.slice, **origin(request))
    return {"removed": n}


# -- audit -----------------------------------------------------------------------------



@router.get("/admin/audit")
def audit_events(ws: WorkspaceDep, principal: UserDep,
                 actor: Annotated[str | None, Query(max_length=200)] = None,
                 action: Annotated[str | None, Query(max_length=100, description=(
                     'Exact, or a prefix ending in "." such as "auth."'))] = None,
                 since: datetime | None = None, until: datetime | None = None,
                 limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> list[dict[str, Any]]:
    """Audit events, oldest first."""
    from viewfinder.governance.audit import AuditFilter
    from viewfinder.services import access

    filters = AuditFilter(actor=actor, action=action, since=since, until=until)
    return [e.to_dict() for e in access.audit_events(ws, principal, filters, limit=limit)]


@router.get("/admin/audit/verify")
def audit_verify(ws: WorkspaceDep, principal: UserDep) -> dict[str, Any]:
    """Check the audit log's hash chain; names the first tampered event."""
    from viewfinder.services import access

    return access.audit_verify(ws, principal).to_dict()


@router.get("/admin/audit/export", response_class=FileResponse,
            responses={200: {"content": {"application/x-ndjson": {}}}})
def audit_export(ws: WorkspaceDep, principal: UserDep,
                 actor: Annotated[str | None, Query(max_length=200)] = None,
                 action: Annotated[str | None, Query(max_length=100)] = None,
                 since: datetime | None = None,
                 until: datetime | None = None) -> FileResponse:
    """The matching audit events as JSON lines (a download, itself audited)."""
    import os
    import tempfile

    from starlette.background import BackgroundTask

    from viewfinder.governance.audit import AuditFilter
    from viewfinder.services import access

    scratch = ws.path / "cache" / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="audit-", suffix=".jsonl", dir=scratch)
    os.close(fd)
    try:
        access.audit_export(ws, principal, tmp,
                            AuditFilter(actor=actor, action=action, since=since, until=until))
    except BaseException:
        os.unlink(tmp)
        raise
    return FileResponse(tmp, media_type="application/x-ndjson", filename="audit.jsonl",
                        background=BackgroundTask(os.unlink, tmp))


# -- the caller's API tokens -------------------------------------------------------------

@router.get("/tokens")
def list_tokens(ws: WorkspaceDep, principal: UserDep) -> list[dict[str, Any]]:
    """The caller's API tokens (prefix, scopes, expiry; never the secret)."""
    from viewfinder.services import access

    return [t.to_dict() for t in access.list_tokens(ws, principal, principal.username)]


@router.post("/tokens", status_code=201)
def create_token(body: TokenRequest, request: Request, ws: WorkspaceDep,
                 principal: UserDep) -> dict[str, Any]:
    """A new API token for the caller; ``token`` is shown only in this answer."""
    from datetime import timedelta

    from viewfinder.services import access

    days = body.expires_in_days
    token, info = access.create_token(
        ws, principal, principal.username, body.name, scopes=body.scopes,
        expires_in=timedelta(days=days) if days is not None else None, **origin(request))
    return {**info.to_dict(), "token": token}


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: str, request: Request, ws: WorkspaceDep,
                 principal: UserDep) -> dict[str, Any]:
    """Revoke one of the caller's tokens (the head of DataOps may revoke anyone's)."""
    from viewfinder.services import access

    return access.revoke_token(ws, principal, token_id, **origin(request)).to_dict()
