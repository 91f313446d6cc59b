"""Dependencies shared by the routes, as ``Annotated`` aliases.

Who is calling:

* ``Authorization: Bearer <API token>`` (scripts, CI): the token's principal; a wrong,
  expired or revoked token is a 401, never a silent fall-back to anonymous.
* the ``vf_session`` cookie (browsers): the session's principal; an unknown or expired
  session is anonymous (the browser is then asked to sign in).
* neither: :data:`ANONYMOUS`, which the access services deny everything but sign-in.

Cookie-authenticated mutations need the session's CSRF token (``X-CSRF-Token`` header, or
a ``csrf_token`` form field for plain HTML forms): a cookie is sent by the browser on its
own, a header or form field of the right value only by our own pages. Token-authenticated
requests carry no ambient credential and need none.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from viewfinder.errors import AuthenticationFailed, PermissionDenied
from viewfinder.governance.principal import Principal
from viewfinder.server.app import ServerState, Settings
from viewfinder.storage.workspace import Workspace

SESSION_COOKIE = "vf_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_state(request: Request) -> ServerState:
    return request.app.state.vf


def get_settings(request: Request) -> Settings:
    return get_state(request).settings


def get_workspace(request: Request) -> Workspace:
    return get_state(request).ws


StateDep = Annotated[ServerState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
WorkspaceDep = Annotated[Workspace, Depends(get_workspace)]


def origin(request: Request) -> dict[str, str | None]:
    """``ip`` and ``user_agent`` of the request, as the audit log records them."""
    return {"ip": request.client.host if request.client else None,
            "user_agent": request.headers.get("user-agent", "")[:400] or None}


def get_principal(request: Request, ws: WorkspaceDep) -> Principal:
    """The caller (see the module docstring). Remembers how they signed in on
    ``request.state.auth`` (``"token"``, ``"session"`` or None) for the CSRF check.

    Raises:
        AuthenticationFailed: an ``Authorization`` header that is not a valid bearer token.
    """
    from viewfinder.governance import sessions, tokens
    from viewfinder.governance.principal import ANONYMOUS

    request.state.auth = None
    request.state.session_token = None
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("the Authorization header must be 'Bearer <API token>'")
        principal = tokens.resolve_token(ws, token.strip())
        request.state.auth = "token"
        return principal
    session_token = request.cookies.get(SESSION_COOKIE)
    if session_token:
        principal = sessions.resolve_session(ws, session_token)
        if principal is not None:
            request.state.auth = "session"
            request.state.session_token = session_token
            return principal
    return ANONYMOUS


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def is_anonymous(principal: Principal) -> bool:
    from viewfinder.governance.principal import ANONYMOUS

    return principal is ANONYMOUS or principal == ANONYMOUS


def require_user(principal: PrincipalDep) -> Principal:
    """The caller, who must have signed in (API routes): anonymous is a 401."""
    if is_anonymous(principal):
        raise AuthenticationFailed("sign in first: POST /api/v1/auth/login, or send "
                                   "'Authorization: Bearer <API token>'")
    return principal


UserDep = Annotated[Principal, Depends(require_user)]


async def check_csrf(request: Request, ws: WorkspaceDep, _principal: PrincipalDep) -> None:
    """Refuse a cookie-authenticated mutation without the session's CSRF token.

    Raises:
        PermissionDenied: the token is missing or is not this session's.
    """
    if request.method in SAFE_METHODS or request.state.auth != "session":
        return
    token = request.headers.get(CSRF_HEADER)
    if not token:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
    if not token or not _csrf_matches(ws, request.state.session_token, token):
        raise PermissionDenied(f"CSRF check failed: send the {CSRF_HEADER} header (or a "
                               f"{CSRF_FIELD} form field) with the token given at sign-in")


def _csrf_matches(ws: Workspace, session_token: str, csrf: str) -> bool:
    from viewfinder.governance import sessions

    try:
        return sessions.verify_csrf(ws, session_token, csrf) is not False
    except (AuthenticationFailed, PermissionDenied):
        return False


CsrfDep = Annotated[None, Depends(check_csrf)]
