"""``user``, ``admin``, ``org``, ``team``, ``project`` and ``audit``: accounts, access and
the audit log.

Who acts: these commands act as the local system (``SYSTEM``: whoever can open the
catalog is trusted like its owner) unless ``VIEWFINDER_TOKEN`` holds an API token; then
they act as that token's user, under the same policy as the web UI and the REST API.
Either way every change is an audit event (actor ``system`` or the token's user).
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from viewfinder.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    err,
    handle_errors,
    out,
    principal,
    print_json,
    workspace,
)

if TYPE_CHECKING:
    from viewfinder.governance.principal import Principal
    from viewfinder.storage.workspace import Workspace

_WHO = (" Acts as the local system, or as the user of the API token in $VIEWFINDER_TOKEN "
        "(under the same access policy as the web UI); every change is audited.")

user_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="User accounts, their roles and API tokens." + _WHO)
token_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="API tokens (shown once, stored hashed)." + _WHO)
admin_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="First-time set-up of a workspace's access.")
org_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Organizations." + _WHO)
team_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Teams." + _WHO)
project_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                          help="Projects: one prediction task each, owning datasets." + _WHO)
audit_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="The hash-chained audit log." + _WHO)
user_app.add_typer(token_app, name="token")

OrgOpt = Annotated[str | None, typer.Option("--org", help="Organization scope.")]
TeamOpt = Annotated[str | None, typer.Option("--team", help="Team scope.")]
ProjectOpt = Annotated[str | None, typer.Option("--project", help="Project scope.")]
SliceOpt = Annotated[str | None, typer.Option(
    "--slice", help='Curators only: limit the binding to the samples matching this filter, '
                    'e.g. \'metadata.region == "APAC"\'.')]
PasswordStdinOpt = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from the first line of standard input.")]


def _open(workspace_path: str | None) -> tuple[Workspace, Principal]:
    ws = workspace(workspace_path)
    return ws, principal(ws)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def _scope(org: str | None, team: str | None, project: str | None) -> tuple[str, str]:
    given = [(k, v) for k, v in (("org", org), ("team", team), ("project", project)) if v]
    if len(given) != 1:
        from viewfinder.errors import InvalidInput

        raise InvalidInput("give exactly one scope: --org, --team or --project")
    return given[0]


def parse_since(text: str) -> datetime:
    """``2026-11-01``, ``2026-11-01T08:00:00+00:00`` or a relative age: ``30m``, ``24h``, ``7d``."""
    from viewfinder.errors import InvalidInput
    from viewfinder.storage.catalog import utcnow

    m = re.fullmatch(r"(\d+)([mhd])", text.strip())
    if m:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return utcnow() - timedelta(**{unit: int(m.group(1))})
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--since takes a date, a date-time or an age like 7d, not {text!r}") from None
    from datetime import UTC

    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _table(columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    t = Table(*columns)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    out.print(t)


# -- user ------------------------------------------------------------------------------

@user_app.command("create")
@handle_errors
def user_create(username: Annotated[str, typer.Argument(help="Lower-case user name.")],
                password_stdin: PasswordStdinOpt = False,
                no_password: Annotated[bool, typer.Option(
                    "--no-password", help="No password: the user works with API tokens only.")] = False,
                display_name: Annotated[str | None, typer.Option(help="Full name.")] = None,
                workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Create a local user account (the password is asked for twice, or read from stdin)."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    password = None if no_password else _read_password(password_stdin)
    u = access.create_user(ws, who, username, password, display_name=display_name)
    if json_out:
        print_json(u.to_dict())
    else:
        out.print(f"created user {u.username}", markup=False)


@user_app.command("list")
@handle_errors
def user_list(workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """List the user accounts with their role bindings."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    us = access.list_users(ws, who)
    bindings = access.list_bindings(ws, who)
    by: dict[str, list[str]] = {}
    for b in bindings:
        by.setdefault(b.username, []).append(
            f"{b.role.value}@{b.scope_kind}:{b.scope_name}" + (f" [{b.slice}]" if b.slice else ""))
    if json_out:
        print_json([{**u.to_dict(), "roles": by.get(u.username, [])} for u in us])
        return
    _table(["user", "name", "active", "roles"],
           [[u.username, u.display_name, "yes" if u.is_active else "no",
             ", ".join(by.get(u.username, []))] for u in us])


@user_app.command("grant")
@handle_errors
def user_grant(username: Annotated[str, typer.Argument()],
               role: Annotated[str, typer.Argument(help="head_of_dataops, labeling_manager, "
                                                        "data_engineer, curator, labeler or viewer.")],
               org: OrgOpt = None, team: TeamOpt = None, project: ProjectOpt = None,
               slice: SliceOpt = None, workspace_path: WorkspaceOpt = None,
               json_out: JsonOpt = False) -> None:
    """Give a user a role at one scope (organization, team or project)."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    kind, name = _scope(org, team, project)
    b = access.grant_role(ws, who, username, role, scope_kind=kind, scope_name=name, slice=slice)
    if json_out:
        print_json(b.to_dict())
    else:
        out.print(f"{username} is {b.role.value} on {kind} {name}"
                  + (f" for samples where {b.slice}" if b.slice else ""), markup=False)


@user_app.command("revoke")
@handle_errors
def user_revoke(username: Annotated[str, typer.Argument()], role: Annotated[str, typer.Argument()],
                org: OrgOpt = None, team: TeamOpt = None, project: ProjectOpt = None,
                slice: SliceOpt = None, workspace_path: WorkspaceOpt = None) -> None:
    """Take a role at one scope away from a user (only the binding with --slice if given)."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    kind, name = _scope(org, team, project)
    n = access.revoke_role(ws, who, username, role, scope_kind=kind, scope_name=name, slice=slice)
    out.print(f"removed {n} binding(s)", markup=False)


@user_app.command("deactivate")
@handle_errors
def user_deactivate(username: Annotated[str, typer.Argument()],
                    workspace_path: WorkspaceOpt = None) -> None:
    """Lock an account: its sessions end, its password and tokens stop working."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    access.deactivate_user(ws, who, username)
    out.print(f"deactivated {username}", markup=False)


@user_app.command("password")
@handle_errors
def user_password(username: Annotated[str, typer.Argument()], password_stdin: PasswordStdinOpt = False,
                  workspace_path: WorkspaceOpt = None) -> None:
    """Set a user's password (their sessions end)."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    access.set_password(ws, who, username, _read_password(password_stdin))
    out.print(f"password of {username} changed", markup=False)


# -- user token ------------------------------------------------------------------------

@token_app.command("create")
@handle_errors
def token_create(username: Annotated[str, typer.Argument(help="Whose token.")],
                 name: Annotated[str, typer.Argument(help="What it is for, e.g. 'ci'.")],
                 scope: Annotated[list[str] | None, typer.Option(
                     "--scope", help="read, write, export or admin (repeatable; default read).")] = None,
                 expires_days: Annotated[int, typer.Option(help="Lifetime in days.")] = 90,
                 no_expiry: Annotated[bool, typer.Option("--no-expiry", help="Never expires.")] = False,
                 workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Create an API token; it is printed once and cannot be shown again."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    token, info = access.create_token(ws, who, username, name, scopes=scope or ["read"],
                                      expires_in=None if no_expiry else timedelta(days=expires_days))
    if json_out:
        print_json({**info.to_dict(), "token": token})
        return
    err.print(f"token {info.id} ({info.prefix}, scopes {', '.join(info.scopes)}) for {username}; "
              "store it now, it is not shown again:", markup=False)
    out.print(token, markup=False)


@token_app.command("list")
@handle_errors
def token_list(username: Annotated[str | None, typer.Argument(help="Whose tokens (default all).")] = None,
               workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """List API tokens (never the tokens themselves)."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    ts = access.list_tokens(ws, who, username)
    if json_out:
        print_json([t.to_dict() for t in ts])
        return
    _table(["id", "user", "name", "prefix", "scopes", "expires", "state"],
           [[t.id, t.username, t.name, t.prefix, ",".join(t.scopes),
             t.expires_at.date() if t.expires_at else "never",
             "active" if t.active else ("revoked" if t.revoked_at else "expired")] for t in ts])


@token_app.command("revoke")
@handle_errors
def token_revoke(token_id: Annotated[str, typer.Argument(help="The token's id (see 'token list').")],
                 workspace_path: WorkspaceOpt = None) -> None:
    """Revoke an API token now."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    info = access.revoke_token(ws, who, token_id)
    out.print(f"revoked token {info.id} ({info.prefix}) of {info.username}", markup=False)


# -- admin, org, team, project -----------------------------------------------------------

@admin_app.command("bootstrap")
@handle_errors
def admin_bootstrap(username: Annotated[str, typer.Argument()],
                    org: Annotated[str, typer.Option(help="Organization (created if missing).")] = "default",
                    password_stdin: PasswordStdinOpt = False,
                    workspace_path: WorkspaceOpt = None) -> None:
    """Create the first head of DataOps; works only while there is none."""
    from viewfinder.governance.users import bootstrap_admin

    ws = workspace(workspace_path)
    u = bootstrap_admin(ws, username, _read_password(password_stdin), org=org)
    out.print(f"{u.username} is head_of_dataops of organization {org}", markup=False)


@org_app.command("create")
@handle_errors
def org_create(name: Annotated[str, typer.Argument()], workspace_path: WorkspaceOpt = None) -> None:
    """Create an organization."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    access.create_org(ws, who, name)
    out.print(f"created organization {name}", markup=False)


@org_app.command("list")
@handle_errors
def org_list(workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """List organizations and their teams."""
    from viewfinder.governance import orgs

    ws, _who = _open(workspace_path)
    os_, ts = orgs.list_orgs(ws), orgs.list_teams(ws)
    rows = [{"org": o.name, "teams": [t.name for t in ts if t.org_id == o.id]} for o in os_]
    if json_out:
        print_json(rows)
    else:
        _table(["organization", "teams"], [[r["org"], ", ".join(r["teams"])] for r in rows])


@team_app.command("create")
@handle_errors
def team_create(name: Annotated[str, typer.Argument()],
                org: Annotated[str, typer.Option("--org", help="Its organization.")],
                workspace_path: WorkspaceOpt = None) -> None:
    """Create a team in an organization."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    access.create_team(ws, who, org, name)
    out.print(f"created team {name} in {org}", markup=False)


@project_app.command("create")
@handle_errors
def project_create(name: Annotated[str, typer.Argument()],
                   org: Annotated[str, typer.Option("--org", help="Its organization.")],
                   team: Annotated[str | None, typer.Option("--team", help="Its team.")] = None,
                   task_type: Annotated[str, typer.Option(help="classification, detection, "
                                                               "segmentation, keypoints or other.")] = "detection",
                   dataset: Annotated[list[str] | None, typer.Option(
                       "--dataset", help="A dataset it owns (repeatable).")] = None,
                   workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Create a project (one prediction task) owning datasets."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    p = access.create_project(ws, who, name, org=org, team=team, task_type=task_type,
                              datasets=dataset or [])
    if json_out:
        print_json(p.to_dict())
    else:
        out.print(f"created project {p.name} ({p.task_type}) with datasets: "
                  f"{', '.join(p.datasets) or '(none)'}", markup=False)


@project_app.command("list")
@handle_errors
def project_list(workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """List the projects you have a role in."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    ps = access.list_projects(ws, who)
    if json_out:
        print_json([p.to_dict() for p in ps])
    else:
        _table(["project", "task", "datasets"], [[p.name, p.task_type, ", ".join(p.datasets)] for p in ps])


# -- audit -------------------------------------------------------------------------------

ActorOpt = Annotated[str | None, typer.Option("--actor", help="Only this actor's events.")]
ActionOpt = Annotated[str | None, typer.Option(
    "--action", help="Only this action (a prefix ending in '.', e.g. 'auth.', matches a family).")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="A date, date-time or age (7d, 24h).")]


def _filters(actor: str | None, action: str | None, since: str | None) -> Any:
    from viewfinder.governance.audit import AuditFilter

    return AuditFilter(actor=actor, action=action, since=parse_since(since) if since else None)


@audit_app.command("verify")
@handle_errors
def audit_verify(workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Recompute the hash chain; exit 1 and name the first bad event if it was tampered with."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    res = access.audit_verify(ws, who)
    if json_out:
        print_json(res.to_dict())
    elif res.ok:
        out.print(f"audit log intact: {res.events} event(s)", markup=False)
    else:
        err.print(f"audit log TAMPERED at seq {res.bad_seq}: {res.problem} "
                  f"({res.events} event(s) before it are intact)", markup=False)
    if not res.ok:
        raise typer.Exit(1)


@audit_app.command("export")
@handle_errors
def audit_export(jsonl: Annotated[str, typer.Option("--jsonl", help="Output file (JSON lines).")],
                 actor: ActorOpt = None, action: ActionOpt = None, since: SinceOpt = None,
                 workspace_path: WorkspaceOpt = None) -> None:
    """Export audit events as JSON lines."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    n = access.audit_export(ws, who, jsonl, _filters(actor, action, since))
    out.print(f"exported {n} event(s) to {jsonl}", markup=False)


@audit_app.command("log")
@handle_errors
def audit_log(actor: ActorOpt = None, action: ActionOpt = None, since: SinceOpt = None,
              limit: Annotated[int, typer.Option(help="At most this many (oldest first).")] = 200,
              workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Show audit events."""
    from viewfinder.services import access

    ws, who = _open(workspace_path)
    evs = access.audit_events(ws, who, _filters(actor, action, since), limit=limit)
    if json_out:
        print_json([e.to_dict() for e in evs])
        return
    _table(["seq", "at", "actor", "action", "resource", "ip"],
           [[e.seq, e.at.isoformat(timespec="seconds"), e.actor, e.action,
             f"{e.resource_kind}:{e.resource_id or ''}", e.ip] for e in evs])


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
    app.add_typer(admin_app, name="admin")
    app.add_typer(org_app, name="org")
    app.add_typer(team_app, name="team")
    app.add_typer(project_app, name="project")
    app.add_typer(audit_app, name="audit")
