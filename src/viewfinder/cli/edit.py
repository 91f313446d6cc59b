"""``remap``, ``split``, ``tag-samples``: edits that create a version."""

from __future__ import annotations

from typing import Annotated

import typer

from viewfinder.cli.common import (
    FilterOpt,
    JsonOpt,
    WorkspaceOpt,
    handle_errors,
    out,
    principal,
    print_json,
    workspace,
)

MessageOpt = Annotated[str | None, typer.Option("--message", "-m", help="Version message.")]


def _report(result, json_out: bool) -> None:  # type: ignore[no-untyped-def]
    v = result.version
    if json_out:
        print_json({"version": v.id, "created": result.created, "changes": v.changes})
    elif result.created:
        c = v.changes
        out.print(f"new version {v.id}: samples ~{c['samples']['changed']}, "
                  f"labels ~{c['labels']['changed']}", markup=False)
    else:
        out.print("nothing to change", markup=False)


@handle_errors
def remap_cmd(spec: Annotated[str, typer.Argument(help="NAME or NAME@BRANCH.")],
              map: Annotated[str, typer.Option("--map", help="old=new[,old2=new2]: rename or merge classes.")],
              message: MessageOpt = None, workspace_path: WorkspaceOpt = None,
              json_out: JsonOpt = False) -> None:
    """Rename classes, or merge several into one."""
    from viewfinder.services.access import remap
    from viewfinder.services.edit import parse_mapping

    ws = workspace(workspace_path)
    _report(remap(ws, principal(ws), spec, parse_mapping(map), message=message), json_out)


@handle_errors
def split_cmd(spec: Annotated[str, typer.Argument(help="NAME or NAME@BRANCH.")],
              ratios: Annotated[str, typer.Option(help="e.g. train=0.8,val=0.2")],
              stratify: Annotated[bool, typer.Option(help="Keep class proportions per split.")] = False,
              group_by: Annotated[str | None, typer.Option(help="metadata.FIELD or folder: keep "
                                                                "groups in one split.")] = None,
              seed: Annotated[int, typer.Option(help="Seed of the deterministic assignment.")] = 0,
              message: MessageOpt = None, workspace_path: WorkspaceOpt = None,
              json_out: JsonOpt = False) -> None:
    """Assign every sample a split, deterministically."""
    from viewfinder.services.access import split
    from viewfinder.services.edit import parse_ratios

    ws = workspace(workspace_path)
    _report(split(ws, principal(ws), spec, parse_ratios(ratios), stratify=stratify,
                  group_by=group_by, seed=seed, message=message), json_out)


@handle_errors
def tag_samples_cmd(spec: Annotated[str, typer.Argument(help="NAME or NAME@BRANCH.")],
                    filter: FilterOpt = None,
                    add: Annotated[list[str] | None, typer.Option("--add", help="Tag to add (repeatable).")] = None,
                    remove: Annotated[list[str] | None, typer.Option("--remove", help="Tag to remove (repeatable).")] = None,
                    message: MessageOpt = None, workspace_path: WorkspaceOpt = None,
                    json_out: JsonOpt = False) -> None:
    """Add or remove tags on the samples matching a filter."""
    from viewfinder.services.access import tag_matching

    ws = workspace(workspace_path)
    _report(tag_matching(ws, principal(ws), spec, filter, add=add, remove=remove,
                         message=message), json_out)


def register(app: typer.Typer) -> None:
    app.command("remap")(remap_cmd)
    app.command("split")(split_cmd)
    app.command("tag-samples")(tag_samples_cmd)
