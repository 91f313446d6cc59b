"""Browser sessions and CSRF protection (the primitives; the web layer sets the cookie).

A session token is 32 random bytes (URL-safe text) sent as an ``HttpOnly; Secure;
SameSite=Lax`` cookie by the server (``viewfinder.server.deps``); the catalog stores only its SHA-256, so a
leaked catalog does not leak live sessions. Each session has its own CSRF token, stored
hashed too, that forms and unsafe API calls echo back (:func:`verify_csrf`, constant-time).

Expiry slides: each use moves ``expires_at`` to ``now + IDLE_TIMEOUT`` (written at most
once a minute), never past ``created_at + ABSOLUTE_TIMEOUT``.

Example:
    >>> token, csrf = create_session(ws, principal, ip="10.0.0.7")      # doctest: +SKIP
    >>> resolve_session(ws, token).username                              # doctest: +SKIP
    'ana'
    >>> verify_csrf(ws, token, csrf)                                     # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from viewfinder.errors import InvalidInput
from viewfinder.governance import audit
from viewfinder.governance.principal import Principal
from viewfinder.storage.catalog import sessions, users, utcnow
from viewfinder.storage.workspace import Workspace

IDLE_TIMEOUT = timedelta(hours=8)
ABSOLUTE_TIMEOUT = timedelta(days=7)
_TOUCH_EVERY = timedelta(seconds=60)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SessionInfo:
    user_id: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    ip: str | None
    user_agent: str | None


def create_session(ws: Workspace, principal: Principal, *, ip: str | None = None,
                   user_agent: str | None = None) -> tuple[str, str]:
    """A new session for an authenticated user; ``(session_token, csrf_token)``.

    Both are shown only now: the catalog keeps their hashes. Call it after
    :func:`viewfinder.governance.users.authenticate`.
    """
    if principal.kind != "user" or principal.user_id is None:
        raise InvalidInput("a session is made for a user who logged in with a password")
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    with ws.catalog.write() as c:
        c.execute(sessions.insert().values(
            token_hash=_digest(token), user_id=principal.user_id, csrf_hash=_digest(csrf),
            created_at=now, expires_at=now + IDLE_TIMEOUT, last_seen_at=now,
            ip=ip, user_agent=(user_agent or None) and user_agent[:500]))
    return token, csrf


def resolve_session(ws: Workspace, token: str | None) -> Principal | None:
    """The user behind a session cookie, or None when the session is unknown, expired or
    the account is deactivated. Each use slides the expiry (see the module docstring)."""
    if not token or len(token) > 200:
        return None
    h = _digest(token)
    now = utcnow()
    with ws.catalog.engine.connect() as c:
        r = c.execute(sa.select(sessions, users.c.username, users.c.is_active)
                      .join(users, users.c.id == sessions.c.user_id)
                      .where(sessions.c.token_hash == h)).first()
    if r is None:
        return None
    if _utc(r.expires_at) <= now or not r.is_active:
        with ws.catalog.write() as c:
            c.execute(sessions.delete().where(sessions.c.token_hash == h))
        return None
    if now - _utc(r.last_seen_at) >= _TOUCH_EVERY:
        expires = min(now + IDLE_TIMEOUT, _utc(r.created_at) + ABSOLUTE_TIMEOUT)
        with ws.catalog.write() as c:
            c.execute(sessions.update().where(sessions.c.token_hash == h)
                      .values(last_seen_at=now, expires_at=expires))
    return Principal(r.user_id, r.username, "user")


def session_info(ws: Workspace, token: str) -> SessionInfo | None:
    with ws.catalog.engine.connect() as c:
        r = c.execute(sa.select(sessions).where(sessions.c.token_hash == _digest(token))).first()
    if r is None:
        return None
    return SessionInfo(r.user_id, _utc(r.created_at), _utc(r.expires_at), _utc(r.last_seen_at),
                       r.ip, r.user_agent)


def end_session(ws: Workspace, token: str, *, ip: str | None = None,
                user_agent: str | None = None) -> bool:
    """Log out: delete the session (audited as ``auth.logout``); False if it was unknown."""
    h = _digest(token)
    with ws.catalog.write() as c:
        r = c.execute(sa.select(sessions.c.user_id, users.c.username)
                      .join(users, users.c.id == sessions.c.user_id)
                      .where(sessions.c.token_hash == h)).first()
        if r is None:
            return False
        c.execute(sessions.delete().where(sessions.c.token_hash == h))
        audit.record(ws, Principal(r.user_id, r.username, "user"), "auth.logout",
                     resource_kind="user", resource_id=r.username, ip=ip,
                     user_agent=user_agent, conn=c)
    return True


def verify_csrf(ws: Workspace, session_token: str | None, csrf_token: str | None) -> bool:
    """Whether ``csrf_token`` belongs to the (live) session; constant-time comparison."""
    if not session_token or not csrf_token or len(csrf_token) > 200:
        return False
    with ws.catalog.engine.connect() as c:
        stored = c.execute(sa.select(sessions.c.csrf_hash, sessions.c.expires_at)
                           .where(sessions.c.token_hash == _digest(session_token))).first()
    if stored is None or _utc(stored.expires_at) <= utcnow():
        return False
    return hmac.compare_digest(stored.csrf_hash, _digest(csrf_token))


def login(ws: Workspace, username: str, password: str, *, ip: str | None = None,
          user_agent: str | None = None) -> tuple[Principal, str, str]:
    """Authenticate (rate limited, audited) and open a session:
    ``(principal, session_token, csrf_token)``.

    Raises:
        RateLimited, AuthenticationFailed: see :func:`viewfinder.governance.users.authenticate`.
    """
    from viewfinder.governance.users import authenticate

    principal = authenticate(ws, username, password, ip=ip, user_agent=user_agent)
    token, csrf = create_session(ws, principal, ip=ip, user_agent=user_agent)
    return principal, token, csrf
