"""Local user accounts: create, change password, deactivate, log in, bootstrap the first
head of DataOps.

Logins are rate limited in the catalog (table ``login_attempts``), so every server
process shares one limit: after :data:`MAX_FAILURES_PER_USER` failed attempts for a user
name (since its last success) or :data:`MAX_FAILURES_PER_IP` from one address within
:data:`RATE_WINDOW`, further attempts raise :class:`RateLimited` without checking the
password. Every attempt, successful or not, is an audit event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from viewfinder.errors import (
    AlreadyExists,
    AuthenticationFailed,
    ConflictError,
    InvalidInput,
    NotFound,
    RateLimited,
)
from viewfinder.governance import audit, passwords
from viewfinder.governance.principal import ANONYMOUS, SYSTEM, Principal
from viewfinder.storage.catalog import (
    login_attempts,
    new_id,
    organizations,
    role_bindings,
    sessions,
    users,
    utcnow,
)
from viewfinder.storage.workspace import Workspace

RATE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_IP = 50
RESERVED = frozenset({"system", "anonymous", "admin-bootstrap"})
_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,99}$")


class UserNotFound(NotFound):
    """No user with that name."""


@dataclass(frozen=True)
class User:
    id: str
    username: str
    display_name: str
    is_active: bool
    created_at: datetime
    has_password: bool

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["created_at"] = self.created_at.isoformat()
        return d


def _user(r: Any) -> User:
    return User(r.id, r.username, r.display_name, bool(r.is_active), r.created_at,
                r.password_hash is not None)


def check_username(username: str) -> str:
    """User names: lower-case letters, digits, ``. _ @ -``; up to 100 characters."""
    if not _USERNAME_RE.match(username) or username in RESERVED:
        raise InvalidInput(f"invalid user name {username!r}: use lower-case letters, digits, "
                           "'.', '_', '@' and '-' (not 'system' or 'anonymous')")
    return username


def create_user(ws: Workspace, actor: Principal, username: str, password: str | None = None, *,
                display_name: str | None = None, ip: str | None = None,
                user_agent: str | None = None, conn: sa.Connection | None = None) -> User:
    """A new active user. Without a password the user can only use API tokens.

    Raises:
        AlreadyExists: the user name is taken.
        InvalidInput: bad user name or a too weak password.
    """
    check_username(username)
    pw_hash = None
    if password is not None:
        passwords.check_strength(password)
        pw_hash = passwords.hash_password(password)
    uid, now = new_id(), utcnow()

    def insert(c: sa.Connection) -> None:
        c.execute(users.insert().values(id=uid, username=username,
                                        display_name=display_name or username,
                                        password_hash=pw_hash, is_active=True, created_at=now))
        audit.record(ws, actor, "user.create", resource_kind="user", resource_id=username,
                     ip=ip, user_agent=user_agent, after={"user": uid}, conn=c)

    try:
        if conn is not None:
            insert(conn)
        else:
            with ws.catalog.write() as c:
                insert(c)
    except sa.exc.IntegrityError:
        raise AlreadyExists(f"a user named {username!r} already exists") from None
    return User(uid, username, display_name or username, True, now, pw_hash is not None)


def get_user(ws: Workspace, username: str) -> User:
    with ws.catalog.engine.connect() as c:
        r = c.execute(sa.select(users).where(users.c.username == username)).first()
    if r is None:
        raise UserNotFound(f"no user named {username!r}")
    return _user(r)


def get_user_by_id(ws: Workspace, user_id: str) -> User | None:
    with ws.catalog.engine.connect() as c:
        r = c.execute(sa.select(users).where(users.c.id == user_id)).first()
    return _user(r) if r else None


def list_users(ws: Workspace) -> list[User]:
    with ws.catalog.engine.connect() as c:
        return [_user(r) for r in c.execute(sa.select(users).order_by(users.c.username))]


def set_password(ws: Workspace, actor: Principal, username: str, password: str, *,
                 ip: str | None = None, user_agent: str | None = None) -> None:
    """Replace the password and end the user's sessions (audited as ``user.set_password``)."""
    passwords.check_strength(password)
    u = get_user(ws, username)
    with ws.catalog.write() as c:
        c.execute(users.update().where(users.c.id == u.id)
                  .values(password_hash=passwords.hash_password(password)))
        c.execute(sessions.delete().where(sessions.c.user_id == u.id))
        audit.record(ws, actor, "user.set_password", resource_kind="user", resource_id=username,
                     ip=ip, user_agent=user_agent, conn=c)


def deactivate(ws: Workspace, actor: Principal, username: str, *, ip: str | None = None,
               user_agent: str | None = None) -> None:
    """Lock the account: its sessions end, its tokens and password stop working."""
    u = get_user(ws, username)
    with ws.catalog.write() as c:
        c.execute(users.update().where(users.c.id == u.id).values(is_active=False))
        c.execute(sessions.delete().where(sessions.c.user_id == u.id))
        audit.record(ws, actor, "user.deactivate", resource_kind="user", resource_id=username,
                     ip=ip, user_agent=user_agent, conn=c)


def _utc(at: datetime) -> datetime:
    """SQLite gives back naive datetimes; the catalog stores UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _retry_after(times: list[datetime], limit: int, now: datetime) -> int:
    """Seconds until fewer than ``limit`` of ``times`` (newest first) fall in the window
    (0 when they already do)."""
    if len(times) < limit:
        return 0
    return max(1, int((_utc(times[limit - 1]) + RATE_WINDOW - now).total_seconds()) + 1)


def check_rate_limit(ws: Workspace, username: str, ip: str | None) -> None:
    """Raise :class:`RateLimited` when ``username`` or ``ip`` failed too often lately.

    Failures for a user name count since its last successful login; failures from an
    address count regardless of the name (one address guessing many names).
    """
    now = utcnow()
    since = now - RATE_WINDOW
    la = login_attempts
    with ws.catalog.engine.connect() as c:
        last_ok = c.execute(sa.select(sa.func.max(la.c.at)).where(
            la.c.username == username, la.c.success.is_(True), la.c.at >= since)).scalar()
        user_since = max(since, _utc(last_ok)) if last_ok is not None else since
        by_user = list(c.execute(sa.select(la.c.at).where(
            la.c.username == username, la.c.success.is_(False), la.c.at > user_since)
            .order_by(la.c.at.desc()).limit(MAX_FAILURES_PER_USER)).scalars())
        by_ip = list(c.execute(sa.select(la.c.at).where(
            la.c.ip == ip, la.c.success.is_(False), la.c.at >= since)
            .order_by(la.c.at.desc()).limit(MAX_FAILURES_PER_IP)).scalars()) if ip else []
    wait = max(_retry_after(by_user, MAX_FAILURES_PER_USER, now),
               _retry_after(by_ip, MAX_FAILURES_PER_IP, now))
    if wait:
        raise RateLimited(f"too many failed logins; try again in {wait} s", retry_after=wait)


def authenticate(ws: Workspace, username: str, password: str, *, ip: str | None = None,
                 user_agent: str | None = None) -> Principal:
    """Check a user name and password; the user's principal.

    Raises:
        RateLimited: too many recent failures for this user name or address.
        AuthenticationFailed: unknown user, wrong password or deactivated account (the
            message does not say which).
    """
    try:
        check_rate_limit(ws, username, ip)
    except RateLimited:
        audit.record(ws, ANONYMOUS, "auth.login_failed", resource_kind="user",
                     resource_id=username[:100], ip=ip, user_agent=user_agent,
                     details={"reason": "rate limited"})
        raise
    with ws.catalog.engine.connect() as c:
        r = c.execute(sa.select(users).where(users.c.username == username)).first()
    ok = passwords.verify_password(r.password_hash if r is not None and r.password_hash
                                   else passwords.dummy_hash(), password)
    ok = ok and r is not None and r.password_hash is not None and bool(r.is_active)
    with ws.catalog.write() as c:
        c.execute(login_attempts.insert().values(id=new_id(), username=username[:100], ip=ip,
                                                 at=utcnow(), success=ok))
        if ok:
            audit.record(ws, Principal(r.id, r.username, "user"), "auth.login", resource_kind="user",
                         resource_id=r.username, ip=ip, user_agent=user_agent, conn=c)
        else:
            audit.record(ws, ANONYMOUS, "auth.login_failed", resource_kind="user",
                         resource_id=username[:100], ip=ip, user_agent=user_agent,
                         details={"reason": "bad credentials"}, conn=c)
    if not ok:
        raise AuthenticationFailed("wrong user name or password")
    if passwords.needs_rehash(r.password_hash):
        with ws.catalog.write() as c:
            c.execute(users.update().where(users.c.id == r.id)
                      .values(password_hash=passwords.hash_password(password)))
    return Principal(r.id, r.username, "user")


def bootstrap_admin(ws: Workspace, username: str, password: str | None, *,
                    org: str = "default") -> User:
    """Create the first head of DataOps (at organization scope of ``org``, created if
    missing), acting as the local system.

    Works only while no ``head_of_dataops`` binding exists anywhere; the check and the
    grant run under the audit chain lock, so two concurrent bootstraps cannot both win.
    An existing user of that name is promoted instead of created.

    Raises:
        ConflictError: a head of DataOps already exists.
    """
    from viewfinder.governance.roles import Role

    check_username(username)
    if password is not None:
        passwords.check_strength(password)
    with ws.catalog.write() as c:
        audit.lock_head(c)
        taken = c.execute(sa.select(role_bindings.c.id).where(
            role_bindings.c.role == Role.HEAD_OF_DATAOPS.value).limit(1)).first()
        if taken is not None:
            raise ConflictError("a head_of_dataops already exists; the first-admin bootstrap "
                                "works only once (use 'viewfinder user grant' instead)")
        org_id = c.execute(sa.select(organizations.c.id).where(organizations.c.name == org)).scalar()
        if org_id is None:
            org_id = new_id()
            c.execute(organizations.insert().values(id=org_id, name=org, created_at=utcnow()))
            audit.record(ws, SYSTEM, "org.create", resource_kind="organization", resource_id=org,
                         after={"org": org_id}, conn=c)
        r = c.execute(sa.select(users).where(users.c.username == username)).first()
        if r is None:
            user = create_user(ws, SYSTEM, username, password, conn=c)
        else:
            user = _user(r)
            if password is not None:
                c.execute(users.update().where(users.c.id == r.id)
                          .values(password_hash=passwords.hash_password(password), is_active=True))
        bid = new_id()
        c.execute(role_bindings.insert().values(
            id=bid, user_id=user.id, role=Role.HEAD_OF_DATAOPS.value, scope_kind="org",
            scope_id=org_id, slice=None, created_by=SYSTEM.username, created_at=utcnow()))
        audit.record(ws, SYSTEM, "admin.bootstrap", resource_kind="user", resource_id=username,
                     details={"role": Role.HEAD_OF_DATAOPS.value, "scope": f"org:{org}"},
                     after={"binding": bid}, conn=c)
    return get_user(ws, username)


__all__ = ["MAX_FAILURES_PER_IP", "MAX_FAILURES_PER_USER", "RATE_WINDOW", "User", "UserNotFound",
           "authenticate", "bootstrap_admin", "check_rate_limit", "check_username", "create_user",
           "deactivate", "get_user", "get_user_by_id", "list_users", "set_password"]
