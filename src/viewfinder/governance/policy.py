"""The one module that decides every access.

:func:`decide` answers "may this principal do this action here?" with a :class:`Grant`
(and the slice to apply), or raises: :class:`DatasetNotFound` when the principal may not
even read the dataset (so its existence is not revealed), :class:`PermissionDenied` when
it may read it but not do the action, :class:`AuthenticationFailed` for an anonymous
caller. The service layer (``services.access``) calls it before every use case, so the
CLI, the Python API, REST and the web UI obey the same rules.

How a decision is made:

1. ``SYSTEM`` (the local CLI with direct catalog access) may do everything.
2. The bindings that *apply* are those at the resource's scopes: for a dataset, its
   project's organization, team and the project itself (a dataset in no project: only
   organization-level bindings); without a resource, bindings at any scope, except for
   the organization-level actions (:data:`ORG_LEVEL`), which need an organization binding.
3. Reading a dataset needs an applying binding whose role allows ``dataset.read``,
   otherwise it is not found. The action needs an applying binding whose role allows it
   (the table in :mod:`viewfinder.governance.roles`), and, for a token, a scope that
   covers it (:data:`viewfinder.governance.tokens.SCOPES`).
4. The slice: if any binding allowing the action has no slice, none; otherwise the
   bindings' slices OR-ed. It is ANDed into every read and write (:func:`combine_filter`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from viewfinder.errors import AuthenticationFailed, DatasetNotFound, PermissionDenied
from viewfinder.governance.principal import Principal
from viewfinder.governance.roles import PERMISSIONS, Action, Role
from viewfinder.governance.tokens import allowed_by_scopes
from viewfinder.storage.catalog import (
    DatasetRecord,
    project_datasets,
    projects,
    role_bindings,
    teams,
    users,
)
from viewfinder.storage.workspace import Workspace

ORG_LEVEL = frozenset({Action.MEMBERS_ADMIN, Action.AUDIT_READ, Action.PROJECT_ADMIN})
"""Actions that, asked without a resource, need a binding at organization scope."""


@dataclass(frozen=True)
class Grant:
    """A positive decision.

    Attributes:
        action: what was allowed.
        slice: the filter every read and write must be ANDed with (``None``: all samples).
        roles: the roles that allowed it (empty for ``SYSTEM``).
    """

    action: Action
    slice: str | None = None
    roles: frozenset[Role] = frozenset()


@dataclass(frozen=True)
class _Binding:
    role: Role
    scope_kind: str
    scope_id: str
    slice: str | None


@dataclass(frozen=True)
class _Place:
    """Where a resource sits: organization, team and project ids."""

    org_id: str | None
    team_id: str | None
    project_id: str | None


def _bindings(ws: Workspace, principal: Principal) -> list[_Binding]:
    """The principal's bindings; none for a deactivated user."""
    if principal.user_id is None:
        return []
    q = (sa.select(role_bindings.c.role, role_bindings.c.scope_kind, role_bindings.c.scope_id,
                   role_bindings.c.slice)
         .select_from(users.join(role_bindings, role_bindings.c.user_id == users.c.id))
         .where(users.c.id == principal.user_id, users.c.is_active == sa.true()))
    with ws.catalog.engine.connect() as c:  # one query: every request decides at least once
        rows = c.execute(q).all()
    return [_Binding(Role(r.role), r.scope_kind, r.scope_id, r.slice) for r in rows]


def _places(ws: Workspace, dataset_ids: list[str] | None = None) -> dict[str, _Place]:
    """Dataset id → its place, for datasets that belong to a project."""
    q = (sa.select(project_datasets.c.dataset_id, projects.c.id, projects.c.org_id,
                   projects.c.team_id)
         .join(projects, projects.c.id == project_datasets.c.project_id))
    if dataset_ids is not None:
        q = q.where(project_datasets.c.dataset_id.in_(dataset_ids))
    with ws.catalog.engine.connect() as c:
        return {r.dataset_id: _Place(r.org_id, r.team_id, r.id) for r in c.execute(q)}


def _project_place(ws: Workspace, project_id: str) -> _Place:
    with ws.catalog.engine.connect() as c:
        r = c.execute(sa.select(projects.c.org_id, projects.c.team_id)
                      .where(projects.c.id == project_id)).first()
    if r is None:
        from viewfinder.governance.orgs import ProjectNotFound

        raise ProjectNotFound(f"no project with id {project_id!r}")
    return _Place(r.org_id, r.team_id, project_id)


def _team_place(ws: Workspace, team_id: str) -> _Place:
    with ws.catalog.engine.connect() as c:
        org_id = c.execute(sa.select(teams.c.org_id).where(teams.c.id == team_id)).scalar()
    return _Place(org_id, team_id, None)


def _applies(b: _Binding, place: _Place | None) -> bool:
    if place is None:  # a dataset in no project: organization-level bindings only
        return b.scope_kind == "org"
    return ((b.scope_kind == "org" and b.scope_id == place.org_id)
            or (b.scope_kind == "team" and place.team_id is not None and b.scope_id == place.team_id)
            or (b.scope_kind == "project" and place.project_id is not None
                and b.scope_id == place.project_id))


def _grant(principal: Principal, action: Action, applying: list[_Binding], where: str) -> Grant:
    allowing = [b for b in applying if action in PERMISSIONS[b.role]]
    if not allowing:
        raise PermissionDenied(f"{principal.username} may not {action.value} {where}")
    if not allowed_by_scopes(principal.scopes, action):
        raise PermissionDenied(f"the API token's scopes ({', '.join(sorted(principal.scopes or ()))}) "
                               f"do not allow {action.value}")
    slices = [b.slice for b in allowing]
    slice_ = None if any(s is None for s in slices) else any_of(sorted(set(slices)))  # type: ignore[arg-type]
    return Grant(action, slice_, frozenset(b.role for b in allowing))


def decide(ws: Workspace, principal: Principal, action: Action | str, *,
           dataset: str | DatasetRecord | None = None, project_id: str | None = None,
           team_id: str | None = None, org_id: str | None = None) -> Grant:
    """Decide whether ``principal`` may do ``action`` on a resource (see the module doc).

    Args:
        ws: the workspace.
        principal: who asks.
        action: what they want to do.
        dataset: the dataset (name or record) the action is on.
        project_id: the project the action is on (e.g. creating a dataset in it).
        team_id: the team the action is on.
        org_id: the organization the action is on.

    Returns:
        The grant, with the slice to apply to every read and write.

    Raises:
        AuthenticationFailed: the caller is anonymous.
        DatasetNotFound: the dataset does not exist or the principal may not read it.
        PermissionDenied: the principal may see the resource but not do this.
    """
    action = Action(action)
    if principal.is_system:
        return Grant(action)
    if principal.is_anonymous:
        raise AuthenticationFailed("log in or give an API token first")
    bindings = _bindings(ws, principal)
    if dataset is not None:
        rec = dataset if isinstance(dataset, DatasetRecord) else ws.catalog.get_dataset(dataset)
        place = _places(ws, [rec.id]).get(rec.id)
        applying = [b for b in bindings if _applies(b, place)]
        if not any(Action.DATASET_READ in PERMISSIONS[b.role] for b in applying):
            raise DatasetNotFound(f"no dataset named {rec.name!r}", dataset=rec.name)
        return _grant(principal, action, applying, f"on dataset {rec.name!r}")
    if project_id is not None or team_id is not None or org_id is not None:
        place = (_project_place(ws, project_id) if project_id is not None
                 else _team_place(ws, team_id) if team_id is not None
                 else _Place(org_id, None, None))
        applying = [b for b in bindings if _applies(b, place)]
        what = ("in this project" if project_id is not None
                else "in this team" if team_id is not None else "in this organization")
        return _grant(principal, action, applying, what)
    applying = [b for b in bindings if b.scope_kind == "org"] if action in ORG_LEVEL else bindings
    return _grant(principal, action, applying,
                  "(it needs an organization-level role)" if action in ORG_LEVEL else "anywhere")


def read_grants(ws: Workspace, principal: Principal) -> list[tuple[DatasetRecord, Grant]]:
    """Every dataset ``principal`` may read, by name, with its read grant (one pass over
    the bindings, for lists)."""
    all_ds = ws.catalog.list_datasets()
    if principal.is_system:
        return [(d, Grant(Action.DATASET_READ)) for d in all_ds]
    if principal.is_anonymous:
        return []
    bindings = _bindings(ws, principal)
    if not bindings:
        return []
    places = _places(ws)
    out = []
    for d in all_ds:
        applying = [b for b in bindings if _applies(b, places.get(d.id))]
        if any(Action.DATASET_READ in PERMISSIONS[b.role] for b in applying):
            try:
                out.append((d, _grant(principal, Action.DATASET_READ, applying, "")))
            except PermissionDenied:  # a token without the read scope
                continue
    return out


def visible_datasets(ws: Workspace, principal: Principal) -> list[DatasetRecord]:
    """The datasets ``principal`` may read, by name (what lists show; nothing else exists
    for it)."""
    return [d for d, _grant in read_grants(ws, principal)]


# -- slices and filters ----------------------------------------------------------------

def _explicit(node: Any) -> Any:
    """``node`` with every implicit label group turned into an explicit ``any(...)``."""
    from viewfinder.storage.query import And, Not, Or, Quantifier

    if isinstance(node, Quantifier):
        return replace(node, implicit=False) if node.implicit else node
    if isinstance(node, Not):
        return replace(node, operand=_explicit(node.operand))
    if isinstance(node, (And, Or)):
        return replace(node, operands=tuple(_explicit(o) for o in node.operands))
    return node


def sealed(expression: str) -> str:
    """``expression`` parsed and printed back with its label groups explicit, so it keeps
    its meaning when joined with another filter by ``and``/``or``.

    (``label.class == "car"`` joined directly with ``label.area < 10`` would otherwise
    be evaluated on one label; a slice must select the same samples whatever it is
    combined with.) Raises :class:`FilterSyntaxError` when it does not parse.
    """
    from viewfinder.storage.query import parse
    from viewfinder.storage.query.compiler import (
        _group,  # the grouping the compiler applies
    )

    return str(_explicit(_group(parse(expression))))


def any_of(expressions: list[str]) -> str:
    """The samples matching at least one of ``expressions`` (slices of several bindings)."""
    if len(expressions) == 1:
        return sealed(expressions[0])
    return " or ".join(f"({sealed(e)})" for e in expressions)


def combine_filter(slice: str | None, user_filter: str | None) -> str | None:
    """The filter a sliced principal's query runs: ``(slice) and (user_filter)``.

    Both are parsed and printed back from their syntax trees before joining, so no text
    of either is pasted in: a hostile filter (``") or (1==1``) fails to parse, and any
    filter that parses is an expression of its own that cannot reach out of its
    parentheses. The result selects exactly the samples matching both.

    Example:
        >>> combine_filter('metadata.region == "APAC"', 'split == "val"')
        '(metadata.region == "APAC") and (split == "val")'
        >>> combine_filter(None, 'split == "val"')
        'split == "val"'
    """
    if not slice:
        return user_filter or None
    if not user_filter or not user_filter.strip():
        return sealed(slice)
    return f"({sealed(slice)}) and ({sealed(user_filter)})"


__all__ = ["ORG_LEVEL", "Action", "Grant", "Role", "any_of", "combine_filter", "decide", "read_grants",
           "sealed", "visible_datasets"]
