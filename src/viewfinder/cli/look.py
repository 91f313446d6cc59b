"""``stats`` and ``query``."""

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


@handle_errors
def stats_cmd(spec: Annotated[str, typer.Argument(help="NAME or NAME@REF.")],
              filter: FilterOpt = None, workspace_path: WorkspaceOpt = None,
              json_out: JsonOpt = False) -> None:
    """Counts of samples, labels, classes and splits, and box sizes."""
    from rich.table import Table

    from viewfinder.services.access import stats

    ws = workspace(workspace_path)
    s = stats(ws, principal(ws), spec, filter)
    if json_out:
        print_json(s)
        return
    out.print(f"{s['dataset']} @ {s['version']}{'  where ' + filter if filter else ''}", markup=False)
    out.print(f"{s['samples']} samples, {s['labels']} labels", markup=False)
    total = max(1, s["labels"])
    t = Table("class", "labels", "share", "")
    for k, n in sorted(s["classes"].items(), key=lambda kv: -kv[1]):
        t.add_row(k, str(n), f"{100 * n / total:.1f}%", "█" * max(1, round(30 * n / total)))
    out.print(t)
    t = Table("split", "samples")
    for k, n in s["splits"].items():
        t.add_row(k, str(n))
    out.print(t)
    b = s["box_sizes"]
    out.print(f"boxes: {b['buckets']['small']} small (<32²), {b['buckets']['medium']} medium, "
              f"{b['buckets']['large']} large (>96²); median {b['width']['p50'] or 0:.0f}×"
              f"{b['height']['p50'] or 0:.0f} px", markup=False)


@handle_errors
def query_cmd(spec: Annotated[str, typer.Argument(help="NAME or NAME@REF.")],
              filter: FilterOpt = None,
              limit: Annotated[int, typer.Option(help="Samples per page.")] = 20,
              offset: Annotated[int, typer.Option(help="Samples to skip.")] = 0,
              workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """List the samples matching a filter, with their labels."""
    from rich.table import Table

    from viewfinder.services.access import count, samples_page

    ws = workspace(workspace_path)
    who = principal(ws)
    page = samples_page(ws, who, spec, filter, limit=limit, offset=offset)
    total = count(ws, who, spec, filter)
    if json_out:
        print_json({"total": total, "samples": page})
        return
    t = Table("key", "split", "size", "labels", "tags")
    for s in page:
        classes: dict[str, int] = {}
        for lab in s["labels"]:
            classes[lab["class_name"]] = classes.get(lab["class_name"], 0) + 1
        t.add_row(s["key"], s["split"] or "", f"{s['width']}×{s['height']}",
                  ", ".join(f"{k}×{v}" for k, v in classes.items()), ", ".join(s["tags"] or []))
    out.print(t)
    out.print(f"{total} samples match", markup=False)


def register(app: typer.Typer) -> None:
    app.command("stats")(stats_cmd)
    app.command("query")(query_cmd)
