"""API tokens: created for a user, shown once, stored hashed, scoped, expiring, revocable.

A token reads ``vf_<8 hex>_<43 url-safe chars>``; the first part (``vf_<8 hex>``) is its
*prefix*, stored in clear so lists can show which token is which. The catalog stores the
SHA-256 of the whole token (it has 256 random bits, so a fast hash is enough).

Scopes narrow what the user's roles allow (they never add to them):

| scope    | actions                                                         |
|----------|-----------------------------------------------------------------|
| read     | dataset.read, labeling.queue                                    |
| write    | dataset.write, dataset.create, dataset.release, labeling.manage |
| export   | dataset.export                                                  |
| admin    | project.admin, members.admin, audit.read                        |
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from viewfinder.errors import AuthenticationFailed, InvalidInput, NotFound
from viewfinder.governance import audit
from viewfinder.governance.principal import Principal
from viewfinder.governance.roles import Action
from viewfinder.storage.catalog import api_tokens, new_id, users, utcnow
from viewfinder.storage.workspace import Workspace

SCOPES: dict[str, frozenset[Action]] = {
    "read": frozenset({Action.DATASET_READ, Action.LABELING_QUEUE}),
    "write": frozenset({Action.DATASET_WRITE, Action.DATASET_CREATE, Action.DATASET_RELEASE,
                        Action.LABELING_MANAGE}),
    "export": frozenset({Action.DATASET_EXPORT}),
    "admin": frozenset({Action.PROJECT_ADMIN, Action.MEMBERS_ADMIN, Action.AUDIT_READ}),
}
DEFAULT_SCOPES = ("read",)
DEFAULT_EXPIRY = timedelta(days=90)
_TOUCH_EVERY = timedelta(seconds=60)


class TokenNotFound(NotFound):
    """No token with that id (or it belongs to someone else)."""


@dataclass(frozen=True)
class TokenInfo:
    """What lists show about a token; never the token itself."""

    id: str
    user_id: str
    username: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > utcnow())

    def to_dict(self) -> dict[str, Any]:
        d = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}
        d["active"] = self.active
        return d


def _utc(at: datetime | None) -> datetime | None:
    return None if at is None else (at if at.tzinfo else at.replace(tzinfo=UTC))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise InvalidInput(f"unknown token scope(s) {', '.join(map(repr, bad)) or '(none)'}; "
                           f"scopes: {', '.join(SCOPES)}")
    return sorted(set(scopes))


def allowed_by_scopes(scopes: frozenset[str] | None, action: Action) -> bool:
    """Whether a principal with ``scopes`` (None: not narrowed) may attempt ``action``."""
    return scopes is None or any(action in SCOPES.get(s, frozenset()) for s in scopes)


def create_token(ws: Workspace, actor: Principal, username: str, name: str, *,
                 scopes: list[str] | tuple[str, ...] = DEFAULT_SCOPES,
                 expires_in: timedelta | None = DEFAULT_EXPIRY, ip: str | None = None,
                 user_agent: str | None = None) -> tuple[str, TokenInfo]:
    """A new token for ``username``: ``(token, info)``. The token is shown only now.

    Args:
        expires_in: lifetime; ``None`` for a token that never expires (revoke it instead).
    """
    scopes_ = check_scopes(scopes)
    if not name.strip() or len(name) > 200:
        raise InvalidInput("a token needs a name (up to 200 characters)")
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidInput("a token's lifetime must be positive")
    prefix = f"vf_{secrets.token_hex(4)}"
    token = f"{prefix}_{secrets.token_urlsafe(32)}"
    now = utcnow()
    tid = new_id()
    with ws.catalog.write() as c:
        u = c.execute(sa.select(users.c.id, users.c.username).where(users.c.username == username)).first()
        if u is None:
            from viewfinder.governance.users import UserNotFound

            raise UserNotFound(f"no user named {username!r}")
        expires = now + expires_in if expires_in is not None else None
        c.execute(api_tokens.insert().values(
            id=tid, user_id=u.id, name=name, token_hash=_digest(token), prefix=prefix,
            scopes=scopes_, created_at=now, expires_at=expires))
        audit.record(ws, actor, "token.create", resource_kind="token", resource_id=tid,
                     ip=ip, user_agent=user_agent,
                     details={"user": username, "name": name, "scopes": scopes_, "prefix": prefix,
                              "expires_at": expires.isoformat() if expires else None},
                     after={"token": tid}, conn=c)
    return token, TokenInfo(tid, u.id, username, name, prefix, scopes_, now, expires, None, None)


def resolve_token(ws: Workspace, token: str | None) -> Principal:
    """The principal a token acts as (kind ``token``, narrowed by its scopes).

    Raises:
        AuthenticationFailed: unknown, expired or revoked token, or deactivated user.
    """
    if not token or len(token) > 200 or not token.startswith("vf_"):
        raise AuthenticationFailed("invalid API token")
    now = utcnow()
    with ws.catalog.engine.connect() as c:
        r = c.execute(sa.select(api_tokens, users.c.username, users.c.is_active)
                      .join(users, users.c.id == api_tokens.c.user_id)
                      .where(api_tokens.c.token_hash == _digest(token))).first()
    if r is None or not r.is_active:
        raise AuthenticationFailed("invalid API token")
    if r.revoked_at is not None:
        raise AuthenticationFailed(f"API token {r.prefix} was revoked")
    if r.expires_at is not None and _utc(r.expires_at) <= now:  # type: ignore[operator]
        raise AuthenticationFailed(f"API token {r.prefix} expired")
    last = _utc(r.last_used_at)
    if last is None or now - last >= _TOUCH_EVERY:
        with ws.catalog.write() as c:
            c.execute(api_tokens.update().where(api_tokens.c.id == r.id).values(last_used_at=now))
    return Principal(r.user_id, r.username, "token", frozenset(r.scopes))


def _info(r: Any) -> TokenInfo:
    return TokenInfo(r.id, r.user_id, r.username, r.name, r.prefix, list(r.scopes),
                     _utc(r.created_at), _utc(r.expires_at), _utc(r.revoked_at),  # type: ignore[arg-type]
                     _utc(r.last_used_at))


def get_token(ws: Workspace, token_id: str) -> TokenInfo:
    with ws.catalog.engine.connect() as c:
        r = c.execute(sa.select(api_tokens, users.c.username)
                      .join(users, users.c.id == api_tokens.c.user_id)
                      .where(api_tokens.c.id == token_id)).first()
    if r is None:
        raise TokenNotFound(f"no API token with id {token_id!r}")
    return _info(r)


def list_tokens(ws: Workspace, username: str | None = None) -> list[TokenInfo]:
    """Tokens (of ``username`` when given), newest first; revoked ones included."""
    q = (sa.select(api_tokens, users.c.username).join(users, users.c.id == api_tokens.c.user_id)
         .order_by(api_tokens.c.created_at.desc()))
    if username is not None:
        q = q.where(users.c.username == username)
    with ws.catalog.engine.connect() as c:
        return [_info(r) for r in c.execute(q)]


def revoke_token(ws: Workspace, actor: Principal, token_id: str, *, ip: str | None = None,
                 user_agent: str | None = None) -> TokenInfo:
    """Revoke a token now (audited as ``token.revoke``); revoking twice is harmless."""
    info = get_token(ws, token_id)
    if info.revoked_at is None:
        with ws.catalog.write() as c:
            c.execute(api_tokens.update().where(api_tokens.c.id == token_id,
                                                api_tokens.c.revoked_at.is_(None))
                      .values(revoked_at=utcnow()))
            audit.record(ws, actor, "token.revoke", resource_kind="token", resource_id=token_id,
                         ip=ip, user_agent=user_agent,
                         details={"user": info.username, "prefix": info.prefix},
                         before={"token": token_id}, conn=c)
    return get_token(ws, token_id)
