"""Who the caller is: passwords, sessions and CSRF, API tokens, the login rate limit and
the first-admin bootstrap."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.unit.governance.conftest import PASSWORD, Org
from viewfinder.errors import (
    AuthenticationFailed,
    ConflictError,
    InvalidInput,
    PermissionDenied,
    RateLimited,
)
from viewfinder.governance import audit, passwords, sessions, tokens, users
from viewfinder.governance.policy import Action, decide
from viewfinder.governance.principal import SYSTEM
from viewfinder.storage.catalog import api_tokens, utcnow
from viewfinder.storage.catalog import sessions as sessions_table


def test_passwords_are_argon2id_salted_and_verified() -> None:
    a, b = passwords.hash_password(PASSWORD), passwords.hash_password(PASSWORD)
    assert a.startswith("$argon2id$") and a != b  # own salt each time
    assert passwords.verify_password(a, PASSWORD)
    assert not passwords.verify_password(a, PASSWORD + "!")
    assert not passwords.verify_password("not a hash", PASSWORD)
    with pytest.raises(InvalidInput, match="at least"):
        passwords.check_strength("short")


def test_the_catalog_never_holds_a_password_or_a_session_token(gov: Org) -> None:
    gov.user("ana")
    p = users.authenticate(gov.ws, "ana", PASSWORD)
    token, csrf = sessions.create_session(gov.ws, p)
    with gov.ws.catalog.engine.connect() as c:
        dump = " ".join(str(v) for t in ("users", "sessions")
                        for row in c.execute(sa.text(f"SELECT * FROM {t}")) for v in row)
    assert PASSWORD not in dump and token not in dump and csrf not in dump


def test_login_failure_does_not_say_which_part_was_wrong_and_is_audited(gov: Org) -> None:
    gov.user("ana")
    with pytest.raises(AuthenticationFailed) as wrong_pw:
        users.authenticate(gov.ws, "ana", "wrong password!!", ip="10.0.0.9", user_agent="curl/8")
    with pytest.raises(AuthenticationFailed) as no_user:
        users.authenticate(gov.ws, "nobody", PASSWORD)
    assert str(wrong_pw.value) == str(no_user.value)
    failed = audit.query(gov.ws, audit.AuditFilter(action="auth.login_failed"))
    assert [(e.resource_id, e.ip, e.user_agent) for e in failed][:1] == [("ana", "10.0.0.9", "curl/8")]
    ok = audit.query(gov.ws, audit.AuditFilter(action="auth.login", actor="ana"))
    assert len(ok) == 1  # gov.user logged ana in once


def test_deactivated_user_cannot_log_in_and_loses_sessions(gov: Org) -> None:
    p = gov.user("ana")
    token, _ = sessions.create_session(gov.ws, p)
    users.deactivate(gov.ws, SYSTEM, "ana")
    assert sessions.resolve_session(gov.ws, token) is None
    with pytest.raises(AuthenticationFailed):
        users.authenticate(gov.ws, "ana", PASSWORD)


def test_session_resolves_slides_and_ends(gov: Org) -> None:
    p = gov.user("ana")
    principal, token, csrf = sessions.login(gov.ws, "ana", PASSWORD, ip="10.1.1.1", user_agent="firefox")
    assert principal == p
    assert sessions.resolve_session(gov.ws, token) == p
    assert sessions.resolve_session(gov.ws, token + "x") is None
    assert sessions.resolve_session(gov.ws, None) is None
    # last seen a while ago: the next use slides the expiry forward
    with gov.ws.catalog.engine.begin() as c:
        c.execute(sessions_table.update().values(last_seen_at=utcnow() - timedelta(hours=1),
                                                 expires_at=utcnow() + timedelta(minutes=5)))
    assert sessions.resolve_session(gov.ws, token) == p
    info = sessions.session_info(gov.ws, token)
    assert info is not None and info.expires_at > utcnow() + timedelta(hours=7)
    assert (info.ip, info.user_agent) == ("10.1.1.1", "firefox")
    assert sessions.end_session(gov.ws, token)
    assert sessions.resolve_session(gov.ws, token) is None
    assert not sessions.verify_csrf(gov.ws, token, csrf)
    assert audit.query(gov.ws, audit.AuditFilter(action="auth.logout"))[0].actor == "ana"


def test_expired_session_is_gone_and_never_slides_past_the_absolute_limit(gov: Org) -> None:
    p = gov.user("ana")
    token, _ = sessions.create_session(gov.ws, p)
    with gov.ws.catalog.engine.begin() as c:
        c.execute(sessions_table.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    assert sessions.resolve_session(gov.ws, token) is None
    token, _ = sessions.create_session(gov.ws, p)
    old = utcnow() - sessions.ABSOLUTE_TIMEOUT + timedelta(minutes=1)
    with gov.ws.catalog.engine.begin() as c:
        c.execute(sessions_table.update().where(sessions_table.c.created_at > old)
                  .values(created_at=old, last_seen_at=old + timedelta(minutes=1)))
    assert sessions.resolve_session(gov.ws, token) == p
    info = sessions.session_info(gov.ws, token)
    assert info is not None and info.expires_at <= utcnow() + timedelta(minutes=1)


def test_csrf_token_belongs_to_its_own_session(gov: Org) -> None:
    p = gov.user("ana")
    t1, c1 = sessions.create_session(gov.ws, p)
    t2, c2 = sessions.create_session(gov.ws, p)
    assert sessions.verify_csrf(gov.ws, t1, c1) and sessions.verify_csrf(gov.ws, t2, c2)
    assert not sessions.verify_csrf(gov.ws, t1, c2)
    assert not sessions.verify_csrf(gov.ws, t1, "")
    assert not sessions.verify_csrf(gov.ws, t1, None)


def test_login_rate_limit_is_shared_through_the_catalog(gov: Org) -> None:
    gov.user("ana")
    for _ in range(users.MAX_FAILURES_PER_USER):
        with pytest.raises(AuthenticationFailed) as e:
            users.authenticate(gov.ws, "ana", "wrong password!!")
        assert not isinstance(e.value, RateLimited)
    # a second server process = another Workspace object on the same catalog
    from viewfinder.storage.workspace import open_workspace

    other = open_workspace(gov.ws.path)
    with pytest.raises(RateLimited) as limited:
        users.authenticate(other, "ana", PASSWORD)  # even the right password is not tried
    assert 0 < limited.value.retry_after <= users.RATE_WINDOW.total_seconds() + 1
    other.close()
    reasons = [e.details["reason"] for e in audit.query(gov.ws, audit.AuditFilter(action="auth.login_failed"))]
    assert reasons[-1] == "rate limited"
    # other users are not locked out by ana's failures
    gov.user("bob")


def test_tokens_are_shown_once_stored_hashed_and_resolve(gov: Org) -> None:
    gov.user("ana", "viewer", ("org", "acme"))
    token, info = tokens.create_token(gov.ws, SYSTEM, "ana", "notebook", scopes=["read"])
    assert token.startswith(info.prefix + "_")
    with gov.ws.catalog.engine.connect() as c:
        stored = c.execute(sa.select(api_tokens)).one()
    assert token not in " ".join(map(str, stored))
    p = tokens.resolve_token(gov.ws, token)
    assert (p.username, p.kind, p.scopes) == ("ana", "token", frozenset({"read"}))
    assert tokens.list_tokens(gov.ws, "ana")[0].last_used_at is not None
    with pytest.raises(AuthenticationFailed):
        tokens.resolve_token(gov.ws, token[:-1] + ("A" if token[-1] != "A" else "B"))


def test_revoked_and_expired_tokens_stop_working(gov: Org) -> None:
    gov.user("ana", "viewer", ("org", "acme"))
    token, info = tokens.create_token(gov.ws, SYSTEM, "ana", "ci")
    tokens.revoke_token(gov.ws, SYSTEM, info.id)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        tokens.resolve_token(gov.ws, token)
    assert not tokens.get_token(gov.ws, info.id).active
    short, _ = tokens.create_token(gov.ws, SYSTEM, "ana", "short", expires_in=timedelta(hours=1))
    with gov.ws.catalog.engine.begin() as c:
        c.execute(api_tokens.update().where(api_tokens.c.name == "short")
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(AuthenticationFailed, match="expired"):
        tokens.resolve_token(gov.ws, short)
    assert [e.action for e in audit.query(gov.ws, audit.AuditFilter(action="token."))] == [
        "token.create", "token.revoke", "token.create"]


def test_token_scopes_narrow_the_users_roles(gov: Org) -> None:
    gov.user("eng", "data_engineer", ("org", "acme"))
    read_token, _ = tokens.create_token(gov.ws, SYSTEM, "eng", "read-only", scopes=["read"])
    p = tokens.resolve_token(gov.ws, read_token)
    assert decide(gov.ws, p, Action.DATASET_READ, dataset="street").slice is None
    with pytest.raises(PermissionDenied, match="scopes"):
        decide(gov.ws, p, Action.DATASET_WRITE, dataset="street")
    with pytest.raises(PermissionDenied):
        decide(gov.ws, p, Action.DATASET_EXPORT, dataset="street")
    # scopes never add to roles: a viewer's write-scoped token still cannot write
    gov.user("val", "viewer", ("org", "acme"))
    wt, _ = tokens.create_token(gov.ws, SYSTEM, "val", "w", scopes=["read", "write"])
    with pytest.raises(PermissionDenied):
        decide(gov.ws, tokens.resolve_token(gov.ws, wt), Action.DATASET_WRITE, dataset="street")
    with pytest.raises(InvalidInput, match="scope"):
        tokens.create_token(gov.ws, SYSTEM, "val", "x", scopes=["root"])


def test_bootstrap_admin_works_only_once(ws) -> None:  # type: ignore[no-untyped-def]
    w = ws._ws
    users.bootstrap_admin(w, "boss", PASSWORD)
    p = users.authenticate(w, "boss", PASSWORD)
    assert decide(w, p, Action.MEMBERS_ADMIN).roles == {"head_of_dataops"}
    with pytest.raises(ConflictError, match="only once"):
        users.bootstrap_admin(w, "mallory", PASSWORD)
    with pytest.raises(users.UserNotFound):
        users.get_user(w, "mallory")
    assert [e.action for e in audit.query(w)] == [
        "org.create", "user.create", "admin.bootstrap", "auth.login"]
