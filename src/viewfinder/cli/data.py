"""``import`` and ``export``."""

from __future__ import annotations

from typing import Annotated

import typer

from viewfinder.cli.common import (
    FilterOpt,
    JsonOpt,
    WorkspaceOpt,
    err,
    handle_errors,
    out,
    principal,
    print_json,
    workspace,
)
from viewfinder.formats.registry import (  # names only: imports no format
    export_names,
    import_names,
)

IMPORT_FORMATS = f"{', '.join(import_names())}, or auto (detect)."
EXPORT_FORMATS = ", ".join(export_names()) + "."


@handle_errors
def import_cmd(
    source: Annotated[str, typer.Argument(help="Folder holding the dataset.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name (created if new).")],
    format: Annotated[str, typer.Option("--format", help=IMPORT_FORMATS)] = "auto",
    split: Annotated[str | None, typer.Option(help="Put every sample in this split.")] = None,
    mode: Annotated[str, typer.Option(help="add: add/update samples; sync: make the "
                                           "dataset equal to the source.")] = "add",
    on_error: Annotated[str, typer.Option(help="fail: any problem stops the import; skip: "
                                               "import the rest, record what was skipped.")] = "fail",
    message: Annotated[str | None, typer.Option("--message", "-m", help="Version message.")] = None,
    metadata: Annotated[str | None, typer.Option(help="CSV/JSON of per-image metadata keyed "
                                                      "by file name.")] = None,
    branch: Annotated[str, typer.Option(help="Branch to commit to.")] = "main",
    project: Annotated[str | None, typer.Option(help="Project a new dataset belongs to.")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel image readers.")] = None,
    rehash: Annotated[bool, typer.Option(help="Read and hash every image, even those unchanged "
                                              "since an earlier import.")] = False,
    workspace_path: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import a folder in a known format as a new version of a dataset."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeRemainingColumn,
    )

    from viewfinder.services.access import import_source

    ws = workspace(workspace_path)
    who = principal(ws)
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True, disable=json_out) as bar:
        task = bar.add_task("reading images", total=None)
        result = import_source(
            ws, who, source, dataset, project=project, format=format, split=split, mode=mode,  # type: ignore[arg-type]
            on_error=on_error, message=message, metadata=metadata, branch=branch,  # type: ignore[arg-type]
            workers=workers, rehash=rehash,
            progress=lambda done, total: bar.update(task, completed=done, total=total))
    if json_out:
        print_json(result.to_dict())
        return
    c = result.changes
    if result.created:
        out.print(f"{dataset}@{branch}: new version {result.version.id} from {result.format} "
                  f"({result.samples} samples, {result.labels} labels in the source; "
                  f"samples +{c['samples']['added']} ~{c['samples']['changed']} -{c['samples']['removed']}, "
                  f"labels +{c['labels']['added']} ~{c['labels']['changed']} -{c['labels']['removed']}) "
                  f"in {result.seconds:.1f} s", markup=False)
    else:
        out.print(f"{dataset}@{branch}: nothing changed (version {result.version.id} already "
                  "matches the source)", markup=False)
    if result.skipped:
        err.print(f"skipped {len(result.skipped)} problem(s) (recorded in the version):", markup=False)
        for p in result.skipped[:20]:
            err.print(f"  - {p}", markup=False)


@handle_errors
def export_cmd(
    spec: Annotated[str, typer.Argument(help="NAME or NAME@REF.")],
    out_dir: Annotated[str, typer.Argument(metavar="OUT", help="Folder to write (must be new or empty).")],
    format: Annotated[str, typer.Option("--format", help=EXPORT_FORMATS)],
    filter: FilterOpt = None,
    images: Annotated[str, typer.Option(help="copy, link (hard links to the store; symbolic links across file systems) or none.")] = "copy",
    workspace_path: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Export a version to a training format, deterministically."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from viewfinder.services.access import export

    ws = workspace(workspace_path)
    who = principal(ws)
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True,
                  disable=json_out or images == "none") as bar:
        task = bar.add_task(f"placing images ({images})", total=None)
        result = export(ws, who, spec, out_dir, format, filter=filter, images=images,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
    if json_out:
        print_json(result.to_dict())
    else:
        out.print(f"exported {result.samples} samples, {result.labels} labels of "
                  f"{result.dataset}@{result.version[:12]} as {result.format} to {result.out} "
                  f"in {result.seconds:.1f} s", markup=False)


def register(app: typer.Typer) -> None:
    app.command("import")(import_cmd)
    app.command("export")(export_cmd)
