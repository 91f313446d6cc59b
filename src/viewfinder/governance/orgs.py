"""Organization → teams → projects, and which project owns which dataset.

A *project* is one prediction task (``task_type`` and ``label_schema``) owning one or
more datasets; it sits in an organization and optionally in a team. Both team models
work on this structure: a central DataOps team gets roles at organization scope (every
project), an embedded DataOps engineer gets roles on one ML team's projects (team scope)
or on single projects.

These functions change the catalog and write the audit event in the same transaction;
whether the caller may do it is decided before, by ``services.access``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from viewfinder.errors import AlreadyExists, DatasetNotFound, InvalidInput, NotFound
from viewfinder.governance import audit
from viewfinder.governance.principal import Principal
from viewfinder.storage.catalog import (
    DatasetRecord,
    datasets,
    new_id,
    organizations,
    project_datasets,
    projects,
    teams,
    utcnow,
)
from viewfinder.storage.workspace import Workspace

TASK_TYPES = ("classification", "detection", "segmentation", "keypoints", "other")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$")


class OrganizationNotFound(NotFound):
    """No organization with that name."""


class TeamNotFound(NotFound):
    """No team with that name."""


class ProjectNotFound(NotFound):
    """No project with that name (or the caller may not see it)."""


@dataclass(frozen=True)
class Organization:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Team:
    id: str
    org_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Project:
    id: str
    org_id: str
    team_id: str | None
    name: str
    task_type: str
    label_schema: dict[str, Any]
    created_at: datetime
    datasets: list[str] = field(default_factory=list)  # dataset names

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["created_at"] = self.created_at.isoformat()
        return d


def _check_name(kind: str, name: str) -> str:
    if not _NAME_RE.match(name) or name != name.strip():
        raise InvalidInput(f"invalid {kind} name {name!r}: use letters, digits, spaces, '.', '_' "
                           "and '-' (up to 200 characters, not starting with a symbol)")
    return name


def create_org(ws: Workspace, actor: Principal, name: str) -> Organization:
    """A new organization. Raises :class:`AlreadyExists` when the name is taken."""
    org = Organization(new_id(), _check_name("organization", name), utcnow())
    try:
        with ws.catalog.write() as c:
            c.execute(organizations.insert().values(id=org.id, name=org.name, created_at=org.created_at))
            audit.record(ws, actor, "org.create", resource_kind="organization",
                         resource_id=org.name, after={"org": org.id}, conn=c)
    except sa.exc.IntegrityError:
        raise AlreadyExists(f"an organization named {name!r} already exists") from None
    return org


def create_team(ws: Workspace, actor: Principal, org: str, name: str) -> Team:
    """A new team in organization ``org`` (a name). Team names are unique in the workspace."""
    o = get_org(ws, org)
    team = Team(new_id(), o.id, _check_name("team", name), utcnow())
    try:
        with ws.catalog.write() as c:
            c.execute(teams.insert().values(id=team.id, org_id=o.id, name=team.name,
                                            created_at=team.created_at))
            audit.record(ws, actor, "team.create", resource_kind="team", resource_id=team.name,
                         details={"org": o.name}, after={"team": team.id}, conn=c)
    except sa.exc.IntegrityError:
        raise AlreadyExists(f"a team named {name!r} already exists") from None
    return team


def create_project(ws: Workspace, actor: Principal, name: str, *, org: str, team: str | None = None,
                   task_type: str = "detection", label_schema: dict[str, Any] | None = None,
                   dataset_names: list[str] | None = None) -> Project:
    """A new project (one prediction task) in ``org``, optionally in ``team``, owning the
    named datasets.

    Raises:
        AlreadyExists: the project name is taken, or a dataset already belongs to a project.
        InvalidInput: unknown task type, or the team is in another organization.
    """
    if task_type not in TASK_TYPES:
        raise InvalidInput(f"unknown task type {task_type!r}; use one of {', '.join(TASK_TYPES)}")
    o = get_org(ws, org)
    t = get_team(ws, team) if team else None
    if t is not None and t.org_id != o.id:
        raise InvalidInput(f"team {team!r} is not in organization {org!r}")
    schema = dict(label_schema or {"classes": []})
    owned = [ws.catalog.get_dataset(d) for d in dict.fromkeys(dataset_names or [])]
    p = Project(new_id(), o.id, t.id if t else None, _check_name("project", name), task_type,
                schema, utcnow())
    try:
        with ws.catalog.write() as c:
            c.execute(projects.insert().values(id=p.id, org_id=p.org_id, team_id=p.team_id,
                                               name=p.name, task_type=task_type,
                                               label_schema=schema, created_at=p.created_at))
            audit.record(ws, actor, "project.create", resource_kind="project", resource_id=p.name,
                         details={"org": o.name, "team": team, "task_type": task_type},
                         after={"project": p.id}, conn=c)
            for ds in owned:  # the project and its datasets commit together, or not at all
                _link(ws, c, actor, p, ds)
    except sa.exc.IntegrityError:
        raise AlreadyExists(f"a project named {name!r} already exists") from None
    return get_project(ws, p.name)


def _link(ws: Workspace, c: sa.Connection, actor: Principal, p: Project, ds: DatasetRecord) -> None:
    owner = c.execute(sa.select(projects.c.name).join(
        project_datasets, project_datasets.c.project_id == projects.c.id)
        .where(project_datasets.c.dataset_id == ds.id)).scalar()
    if owner is not None:
        raise AlreadyExists(f"dataset {ds.name!r} already belongs to project {owner!r}",
                            dataset=ds.name)
    c.execute(project_datasets.insert().values(dataset_id=ds.id, project_id=p.id))
    audit.record(ws, actor, "project.add_dataset", resource_kind="project", resource_id=p.name,
                 details={"dataset": ds.name}, after={"dataset": ds.id}, conn=c)


def add_dataset(ws: Workspace, actor: Principal, project: str, dataset: str) -> None:
    """Make ``project`` the owner of ``dataset`` (a dataset belongs to one project).

    Raises:
        AlreadyExists: the dataset already belongs to a project.
    """
    p = get_project(ws, project)
    ds = ws.catalog.get_dataset(dataset)
    try:
        with ws.catalog.write() as c:
            _link(ws, c, actor, p, ds)
    except sa.exc.IntegrityError:
        raise AlreadyExists(f"dataset {dataset!r} already belongs to a project", dataset=dataset) from None


def get_org(ws: Workspace, name: str) -> Organization:
    with ws.catalog.engine.connect() as c:
        r = c.execute(sa.select(organizations).where(organizations.c.name == name)).first()
    if r is None:
        raise OrganizationNotFound(f"no organization named {name!r}")
    return Organization(r.id, r.name, r.created_at)


def get_team(ws: Workspace, name: str) -> Team:
    with ws.catalog.engine.connect() as c:
        r = c.execute(sa.select(teams).where(teams.c.name == name)).first()
    if r is None:
        raise TeamNotFound(f"no team named {name!r}")
    return Team(r.id, r.org_id, r.name, r.created_at)


def _project(r: Any, names: list[str]) -> Project:
    return Project(r.id, r.org_id, r.team_id, r.name, r.task_type, dict(r.label_schema),
                   r.created_at, names)


def list_projects(ws: Workspace) -> list[Project]:
    """Every project with the names of its datasets, by name."""
    with ws.catalog.engine.connect() as c:
        rows = c.execute(sa.select(projects).order_by(projects.c.name)).all()
        owned = c.execute(sa.select(project_datasets.c.project_id, datasets.c.name)
                          .join(datasets, datasets.c.id == project_datasets.c.dataset_id)
                          .order_by(datasets.c.name)).all()
    by: dict[str, list[str]] = {}
    for pid, dname in owned:
        by.setdefault(pid, []).append(dname)
    return [_project(r, by.get(r.id, [])) for r in rows]


def get_project(ws: Workspace, name: str) -> Project:
    for p in list_projects(ws):
        if p.name == name:
            return p
    raise ProjectNotFound(f"no project named {name!r}")


def list_orgs(ws: Workspace) -> list[Organization]:
    with ws.catalog.engine.connect() as c:
        return [Organization(r.id, r.name, r.created_at)
                for r in c.execute(sa.select(organizations).order_by(organizations.c.name))]


def list_teams(ws: Workspace) -> list[Team]:
    with ws.catalog.engine.connect() as c:
        return [Team(r.id, r.org_id, r.name, r.created_at)
                for r in c.execute(sa.select(teams).order_by(teams.c.name))]


def project_of_dataset(ws: Workspace, dataset: str) -> Project | None:
    """The project owning ``dataset`` (a name), or None."""
    try:
        ds = ws.catalog.get_dataset(dataset)
    except DatasetNotFound:
        return None
    with ws.catalog.engine.connect() as c:
        name = c.execute(sa.select(projects.c.name).join(
            project_datasets, project_datasets.c.project_id == projects.c.id)
            .where(project_datasets.c.dataset_id == ds.id)).scalar()
    return get_project(ws, name) if name else None
