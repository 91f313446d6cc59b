"""Roles, what each may do, and role bindings (a role given to a user at a scope).

The permission table :data:`PERMISSIONS` is the whole answer to "what may a role do";
:mod:`viewfinder.governance.policy` combines it with the bindings, the dataset's project
and the token's scopes. A curator binding may carry a *slice*: a filter expression
(``metadata.region == "APAC"``) that limits every read and write of that binding to the
matching samples.

| role               | what it may do                                                  |
|--------------------|-----------------------------------------------------------------|
| head_of_dataops    | everything (administers members, projects, reads the audit log) |
| labeling_manager   | read datasets, manage labeling, work a labeling queue           |
| data_engineer      | read, write, create, export and release datasets                |
| curator            | read, write (tags, splits, fixes) and export, optionally sliced |
| labeler            | only its labeling queue: no dataset browsing at all             |
| viewer             | read datasets                                                   |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from viewfinder.errors import InvalidInput, NotFound
from viewfinder.governance import audit
from viewfinder.governance.principal import Principal
from viewfinder.storage.catalog import (
    new_id,
    organizations,
    projects,
    role_bindings,
    teams,
    users,
    utcnow,
)
from viewfinder.storage.workspace import Workspace


class Action(StrEnum):
    """Everything the policy decides about."""

    DATASET_READ = "dataset.read"          # browse samples, labels, stats, history, diffs
    DATASET_WRITE = "dataset.write"        # edits that create versions (tags, splits, remaps)
    DATASET_EXPORT = "dataset.export"      # export files, bulk image downloads
    DATASET_RELEASE = "dataset.release"    # protected tags gated by the check suite
    DATASET_CREATE = "dataset.create"      # new datasets, imports into a project
    PROJECT_ADMIN = "project.admin"        # create teams and projects, assign datasets
    MEMBERS_ADMIN = "members.admin"        # users, role bindings, other users' tokens
    AUDIT_READ = "audit.read"              # read, verify and export the audit log
    LABELING_MANAGE = "labeling.manage"    # batches, assignments, reviews, escalations
    LABELING_QUEUE = "labeling.queue"      # work on the tasks assigned to oneself


class Role(StrEnum):
    HEAD_OF_DATAOPS = "head_of_dataops"
    LABELING_MANAGER = "labeling_manager"
    DATA_ENGINEER = "data_engineer"
    CURATOR = "curator"
    LABELER = "labeler"
    VIEWER = "viewer"


A = Action
PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.HEAD_OF_DATAOPS: frozenset(Action),
    Role.LABELING_MANAGER: frozenset({A.DATASET_READ, A.LABELING_MANAGE, A.LABELING_QUEUE}),
    Role.DATA_ENGINEER: frozenset({A.DATASET_READ, A.DATASET_WRITE, A.DATASET_EXPORT,
                                   A.DATASET_RELEASE, A.DATASET_CREATE}),
    Role.CURATOR: frozenset({A.DATASET_READ, A.DATASET_WRITE, A.DATASET_EXPORT}),
    Role.LABELER: frozenset({A.LABELING_QUEUE}),
    Role.VIEWER: frozenset({A.DATASET_READ}),
}
"""Role → the actions it allows. Deny by default: an action in no set is never allowed."""

SLICEABLE = frozenset({Role.CURATOR})
"""Roles whose bindings may be narrowed to a slice of samples."""

SCOPE_KINDS = ("org", "team", "project")


def allows(role: Role, action: Action) -> bool:
    return action in PERMISSIONS[role]


def parse_role(name: str) -> Role:
    try:
        return Role(name)
    except ValueError:
        raise InvalidInput(f"unknown role {name!r}; roles: {', '.join(r.value for r in Role)}") from None


@dataclass(frozen=True)
class RoleBinding:
    """``role`` given to a user at one scope, optionally narrowed to ``slice``."""

    id: str
    user_id: str
    username: str
    role: Role
    scope_kind: str      # "org" | "team" | "project"
    scope_id: str
    scope_name: str
    slice: str | None
    created_by: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["role"] = self.role.value
        d["created_at"] = self.created_at.isoformat()
        return d


_SCOPE_TABLES = {"org": organizations, "team": teams, "project": projects}


def scope_id(ws: Workspace, kind: str, name: str) -> str:
    """The id of the organization, team or project called ``name``."""
    if kind not in _SCOPE_TABLES:
        raise InvalidInput(f"scope must be one of {', '.join(SCOPE_KINDS)}, not {kind!r}")
    t = _SCOPE_TABLES[kind]
    with ws.catalog.engine.connect() as c:
        sid = c.execute(sa.select(t.c.id).where(t.c.name == name)).scalar()
    if sid is None:
        label = {"org": "organization"}.get(kind, kind)
        raise NotFound(f"no {label} named {name!r}")
    return str(sid)


def check_slice(role: Role, slice: str | None) -> str | None:
    """Validate a binding's slice: only for sliceable roles, and it must parse.

    Returns:
        The slice in its canonical form (as the filter language prints it back).
    """
    if slice is None:
        return None
    if role not in SLICEABLE:
        raise InvalidInput(f"a {role.value} binding cannot be narrowed to a slice "
                           f"(only {', '.join(r.value for r in SLICEABLE)})")
    from viewfinder.storage.query import parse

    if not slice.strip():
        raise InvalidInput("the slice is empty")
    return str(parse(slice))


def _user_id(c: sa.Connection, username: str) -> str:
    uid = c.execute(sa.select(users.c.id).where(users.c.username == username)).scalar()
    if uid is None:
        from viewfinder.governance.users import UserNotFound

        raise UserNotFound(f"no user named {username!r}")
    return str(uid)


def grant(ws: Workspace, actor: Principal, username: str, role: Role | str, *, scope_kind: str,
          scope_name: str, slice: str | None = None, ip: str | None = None,
          user_agent: str | None = None) -> RoleBinding:
    """Give ``username`` the ``role`` at a scope, audited as ``role.grant``.

    Granting what already exists (same role, scope and slice) returns the existing binding.
    """
    role = parse_role(role) if isinstance(role, str) else role
    canonical = check_slice(role, slice)
    sid = scope_id(ws, scope_kind, scope_name)
    with ws.catalog.write() as c:
        audit.lock_head(c)  # serializes with other grants: no duplicate bindings
        uid = _user_id(c, username)
        same = c.execute(sa.select(role_bindings.c.id).where(
            role_bindings.c.user_id == uid, role_bindings.c.role == role.value,
            role_bindings.c.scope_kind == scope_kind, role_bindings.c.scope_id == sid,
            role_bindings.c.slice.is_(None) if canonical is None
            else role_bindings.c.slice == canonical)).scalar()
        if same is not None:
            return _bindings(c, role_bindings.c.id == same)[0]
        bid = new_id()
        c.execute(role_bindings.insert().values(
            id=bid, user_id=uid, role=role.value, scope_kind=scope_kind, scope_id=sid,
            slice=canonical, created_by=actor.username, created_at=utcnow()))
        audit.record(ws, actor, "role.grant", resource_kind="user", resource_id=username,
                     ip=ip, user_agent=user_agent,
                     details={"role": role.value, "scope": f"{scope_kind}:{scope_name}",
                              "slice": canonical},
                     after={"binding": bid}, conn=c)
        return _bindings(c, role_bindings.c.id == bid)[0]


def revoke(ws: Workspace, actor: Principal, username: str, role: Role | str, *, scope_kind: str,
           scope_name: str, slice: str | None = None, ip: str | None = None,
           user_agent: str | None = None) -> int:
    """Remove ``username``'s ``role`` bindings at a scope (only the one with ``slice`` when
    given, else all of them); how many were removed. Audited as ``role.revoke``."""
    role = parse_role(role) if isinstance(role, str) else role
    sid = scope_id(ws, scope_kind, scope_name)
    canonical = check_slice(role, slice) if slice is not None else None
    with ws.catalog.write() as c:
        uid = _user_id(c, username)
        where = [role_bindings.c.user_id == uid, role_bindings.c.role == role.value,
                 role_bindings.c.scope_kind == scope_kind, role_bindings.c.scope_id == sid]
        if canonical is not None:
            where.append(role_bindings.c.slice == canonical)
        ids = list(c.execute(sa.select(role_bindings.c.id).where(*where)).scalars())
        if not ids:
            raise NotFound(f"{username!r} has no {role.value} binding on {scope_kind} {scope_name!r}")
        c.execute(role_bindings.delete().where(role_bindings.c.id.in_(ids)))
        audit.record(ws, actor, "role.revoke", resource_kind="user", resource_id=username,
                     ip=ip, user_agent=user_agent,
                     details={"role": role.value, "scope": f"{scope_kind}:{scope_name}",
                              "slice": canonical},
                     before={"bindings": sorted(ids)}, conn=c)
    return len(ids)


def _bindings(c: sa.Connection, *where: Any) -> list[RoleBinding]:
    names: dict[tuple[str, str], str] = {}
    for kind, t in _SCOPE_TABLES.items():
        for i, n in c.execute(sa.select(t.c.id, t.c.name)):
            names[(kind, i)] = n
    rows = c.execute(sa.select(role_bindings, users.c.username)
                     .join(users, users.c.id == role_bindings.c.user_id)
                     .where(*where).order_by(users.c.username, role_bindings.c.created_at)).all()
    return [RoleBinding(r.id, r.user_id, r.username, Role(r.role), r.scope_kind, r.scope_id,
                        names.get((r.scope_kind, r.scope_id), "?"), r.slice, r.created_by,
                        r.created_at) for r in rows]


def list_bindings(ws: Workspace, username: str | None = None) -> list[RoleBinding]:
    """Every binding (of ``username`` when given), by user name."""
    with ws.catalog.engine.connect() as c:
        where = [users.c.username == username] if username else []
        return _bindings(c, *where)


def bindings_of(ws: Workspace, user_id: str) -> list[RoleBinding]:
    with ws.catalog.engine.connect() as c:
        return _bindings(c, role_bindings.c.user_id == user_id)
