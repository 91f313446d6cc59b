"""``/api/v1/auth`` and ``/api/v1/me``: sign in with a password (a session cookie for the
browser plus its CSRF token), sign out, and who am I."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from viewfinder.governance.principal import Principal
from viewfinder.server.api.schemas import LoginRequest, LoginResponse, UserOut
from viewfinder.server.deps import (
    SESSION_COOKIE,
    SettingsDep,
    UserDep,
    WorkspaceDep,
    origin,
)
from viewfinder.storage.workspace import Workspace

router = APIRouter(tags=["auth"])
sign_in_router = APIRouter(tags=["auth"])
"""Sign-in only: included without the CSRF check (it hands out the CSRF token)."""


@sign_in_router.post("/auth/login", response_model=LoginResponse)
def login(body: LoginRequest, request: Request, response: Response, ws: WorkspaceDep,
          settings: SettingsDep) -> dict[str, Any]:
    """Check the password and start a session: sets the ``vf_session`` cookie (HttpOnly,
    SameSite=Lax) and returns the CSRF token to send with every change made through it.

    Failed attempts are counted per user name and address; too many answer 429 with
    ``Retry-After``. The message never says whether the user name or the password was wrong.
    """
    from viewfinder.governance import sessions

    principal, session_token, csrf_token = sessions.login(ws, body.username, body.password,
                                                          **origin(request))
    response.set_cookie(SESSION_COOKIE, session_token, max_age=settings.session_ttl_s,
                        httponly=True, samesite="lax", secure=settings.secure_cookies, path="/")
    return {"user": whoami(ws, principal), "csrf_token": csrf_token}


@router.post("/auth/logout", status_code=204, response_class=Response)
def logout(request: Request, ws: WorkspaceDep, _user: UserDep, settings: SettingsDep) -> Response:
    """End the session (the cookie stops working on every server process)."""
    from viewfinder.governance import sessions

    token = request.cookies.get(SESSION_COOKIE)
    if token and request.state.auth == "session":
        sessions.end_session(ws, token, **origin(request))
    out = Response(status_code=204)
    out.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                      secure=settings.secure_cookies)
    return out


@router.get("/me", response_model=UserOut)
def me(ws: WorkspaceDep, principal: UserDep) -> dict[str, Any]:
    """The signed-in user and their role bindings."""
    return whoami(ws, principal)


def whoami(ws: Workspace, principal: Principal) -> dict[str, Any]:
    """The user behind ``principal`` with their role bindings (their own, so always
    visible to them)."""
    from viewfinder.services import access

    bindings = access.list_bindings(ws, principal, principal.username)
    return {"id": principal.user_id, "username": principal.username,
            "roles": [{"role": b.role.value, "scope_kind": b.scope_kind,
                       "scope_name": b.scope_name, "slice": b.slice} for b in bindings]}
