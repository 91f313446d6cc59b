"""``log``, ``tag``, ``branch``, ``merge``, ``diff``."""

from __future__ import annotations

from typing import Annotated

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
from viewfinder.errors import MergeConflict


@handle_errors
def log_cmd(spec: Annotated[str, typer.Argument(help="NAME or NAME@REF.")],
            workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Show the versions of a dataset, newest first."""
    from viewfinder.services import versions as vs
    from viewfinder.services.access import open_dataset

    ws = workspace(workspace_path)
    open_dataset(ws, principal(ws), spec)  # the history of a dataset it may read
    versions = vs.log(ws, spec)
    refs = vs.refs_by_version(ws, ws.catalog.get_dataset(vs.parse_spec(spec)[0]))
    from viewfinder.services.checks import version_quality

    quality = version_quality(ws, vs.parse_spec(spec)[0])
    if json_out:
        print_json([{**v.to_dict(), "refs": [r.name for r in refs.get(v.id, [])],
                     **quality.get(v.id, {})} for v in versions])
        return
    for v in versions:
        names = ", ".join(r.name for r in refs.get(v.id, []))
        c = v.changes
        out.print(f"version {v.id}{f' ({names})' if names else ''}", style="yellow", markup=False)
        if len(v.parents) > 1:
            out.print(f"Merge:  {' '.join(p[:12] for p in v.parents)}", markup=False)
        out.print(f"Author: {v.author}\nDate:   {v.created_at:%Y-%m-%d %H:%M:%S %Z}", markup=False)
        if v.run_id:
            out.print(f"Run:    {v.run_id}", markup=False)
        out.print(f"\n    {v.message}\n", markup=False)
        out.print(f"    {v.summary['samples']} samples, {v.summary['labels']} labels; "
                  f"samples +{c['samples']['added']} ~{c['samples']['changed']} -{c['samples']['removed']}, "
                  f"labels +{c['labels']['added']} ~{c['labels']['changed']} -{c['labels']['removed']}",
                  markup=False)
        if v.extra.get("skipped"):
            out.print(f"    skipped {len(v.extra['skipped'])} problem(s) at import", markup=False)
        q = quality.get(v.id, {})
        if "check" in q:
            ck = q["check"]
            out.print(f"    checks: {'passed' if ck['passed'] else 'failed'} (suite {ck['suite']}: "
                      f"{ck['counts']['passed']} passed, {ck['counts']['failed']} failed, "
                      f"{ck['counts']['blocking']} blocking; report {ck['report']})",
                      markup=False)
        for rel in q.get("releases", []):
            how = f"FORCED by {rel['author']}: {rel['reason']}" if rel["forced"] else "checks passed"
            out.print(f"    release {rel['tag']} ({how})", markup=False)
        out.print("")


@handle_errors
def tag_cmd(spec: Annotated[str, typer.Argument(help="NAME@REF to tag.")],
            tag: Annotated[str, typer.Argument(help="New tag name.")],
            workspace_path: WorkspaceOpt = None) -> None:
    """Give a version a fixed name."""
    from viewfinder.services.access import create_tag

    ws = workspace(workspace_path)
    r = create_tag(ws, principal(ws), spec, tag)
    out.print(f"tagged {r.version_id} as {tag}", markup=False)


@handle_errors
def branch_cmd(name: Annotated[str, typer.Argument(help="Dataset name.")],
               new: Annotated[str, typer.Argument(help="New branch name.")],
               from_ref: Annotated[str | None, typer.Option("--from", help="Start point (default main).")] = None,
               workspace_path: WorkspaceOpt = None) -> None:
    """Create a branch."""
    from viewfinder.services.access import create_branch

    ws = workspace(workspace_path)
    r = create_branch(ws, principal(ws), name, new, from_ref=from_ref)
    out.print(f"created branch {new} at {r.version_id}", markup=False)


@handle_errors
def merge_cmd(name: Annotated[str, typer.Argument(help="Dataset name.")],
              source: Annotated[str, typer.Argument(help="Branch, tag or version to merge.")],
              into: Annotated[str, typer.Option(help="Branch to merge into.")] = "main",
              message: Annotated[str | None, typer.Option("--message", "-m")] = None,
              workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Three-way merge by sample and label; conflicting edits are reported, never resolved silently."""
    from viewfinder.services.access import merge

    ws = workspace(workspace_path)
    try:
        result = merge(ws, principal(ws), name, source, into=into, message=message)
    except MergeConflict as e:
        if json_out:
            print_json({"error": "merge conflict", "conflicts": [c.__dict__ for c in e.conflicts]})
        err.print(str(e), markup=False)
        raise typer.Exit(1) from None
    if json_out:
        print_json({"version": result.version.id, "created": result.created, "changes": result.version.changes})
    elif result.created:
        out.print(f"merged {source} into {into}: version {result.version.id}", markup=False)
    else:
        out.print(f"{source} is already merged into {into}", markup=False)


@handle_errors
def diff_cmd(name: Annotated[str, typer.Argument(help="Dataset name.")],
             a: Annotated[str, typer.Argument(help="From REF.")],
             b: Annotated[str, typer.Argument(help="To REF.")],
             workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Samples and labels added, removed and changed between two versions."""
    from viewfinder.services.access import diff

    ws = workspace(workspace_path)
    d = diff(ws, principal(ws), name, a, b)
    if json_out:
        print_json(d.to_dict())
        return
    out.print(f"{name}: {d.a.id[:12]} → {d.b.id[:12]}", markup=False)
    for t, td in (("samples", d.samples), ("labels", d.labels)):
        out.print(f"  {t:8} +{len(td.added)} added  -{len(td.removed)} removed  ~{len(td.changed)} changed",
                  markup=False)
    if d.classes:
        out.print("  per-class label counts:", markup=False)
        for k, v in d.classes.items():
            out.print(f"    {k:24} {v['a']:>8} → {v['b']:<8} ({v['delta']:+d})", markup=False)


def register(app: typer.Typer) -> None:
    app.command("log")(log_cmd)
    app.command("tag")(tag_cmd)
    app.command("branch")(branch_cmd)
    app.command("merge")(merge_cmd)
    app.command("diff")(diff_cmd)
