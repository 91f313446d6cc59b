"""``viewfinder``: the app object and workspace-level commands. Other groups register
their commands from their own modules (data, history, look, edit)."""

from __future__ import annotations

import atexit
import contextlib
import copy
import gc
import os
import sys
import threading
from typing import Annotated, NoReturn

import typer

from viewfinder.cli.common import JsonOpt, WorkspaceOpt, err, handle_errors, out, print_json, workspace

app = typer.Typer(
    name="viewfinder", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Versioned, tested, governed computer-vision datasets. "
         "Datasets are named NAME or NAME@REF (REF = branch, tag or version id).")


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more detail.")] = False) -> None:
    """Progress notes from the services (e.g. a query cache being built) go to stderr."""
    import logging

    from rich.logging import RichHandler

    handler = RichHandler(console=err, show_time=False, show_path=False, markup=False)
    logger = logging.getLogger("viewfinder")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


@app.command("init")
@handle_errors
def init_cmd(
    path: Annotated[str, typer.Argument(help="Folder for the new workspace.")],
    catalog: Annotated[str | None, typer.Option(help="Catalog URL (default: SQLite in the "
                                                     "workspace; postgresql://... for a team).")] = None,
    store: Annotated[str | None, typer.Option(help="Object store: a folder (default "
                                                   "'objects') or s3://bucket/prefix.")] = None,
    store_endpoint: Annotated[str | None, typer.Option(help="S3 endpoint URL (non-AWS servers).")] = None,
    store_region: Annotated[str | None, typer.Option(help="S3 region.")] = None,
) -> None:
    """Create a workspace: a catalog database and an object store."""
    from viewfinder.storage.workspace import init_workspace

    ws = init_workspace(path, catalog=catalog, store=store, store_endpoint=store_endpoint,
                        store_region=store_region)
    out.print(f"Initialized workspace at {ws.path} (catalog {ws.config.catalog}, store {ws.config.store})")


@app.command("datasets")
@handle_errors
def datasets_cmd(workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """List the datasets in the workspace with their main branch's size."""
    from viewfinder.services import versions as vs

    ws = workspace(workspace_path)
    rows = []
    for d in ws.catalog.list_datasets():
        at = vs.resolve(ws, d.name)
        rows.append({"name": d.name, "version": at.version.id, "samples": at.version.summary["samples"],
                     "labels": at.version.summary["labels"], "created_by": d.created_by})
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    t = Table("dataset", "main", "samples", "labels", "created by")
    for r in rows:
        t.add_row(r["name"], r["version"][:12], str(r["samples"]), str(r["labels"]), r["created_by"])
    out.print(t)


@app.command("formats")
def formats_cmd() -> None:
    """List the formats Viewfinder imports and exports."""
    from viewfinder.formats.registry import FORMATS

    for spec in FORMATS.values():
        rw = ("import" if spec.can_import else "") + ("/export" if spec.can_export else "")
        out.print(f"{spec.name:12} {rw:14} {spec.description}", markup=False)


from viewfinder.cli import data, edit, governance, history, look, quality_predictions, quality_checks, quality_embed, quality_scan, serve  # noqa: E402  (register commands)

for _module in (data, history, look, edit, serve, quality_scan, quality_checks, quality_predictions, governance, quality_embed):
    _module.register(app)


def main() -> None:
    """The ``viewfinder`` console script: run the command, then leave without tearing the
    interpreter down (see :func:`_leave`).

    The cycle collector runs every 10,000 net allocations instead of 700. Most of what a
    command allocates are the modules it imports, which live until it ends and which each
    young collection walked again: 80 ms of a 10k-image export, 40 ms after this. A long
    ``serve`` only collects its cycles a little later."""
    gc.set_threshold(10_000, 10, 10)
    try:
        invoked_only(app, sys.argv[1:])()
    except SystemExit as e:
        _leave(e.code)
    _leave(0)


def invoked_only(cli: typer.Typer, args: list[str]) -> typer.Typer:
    """``cli`` with only the command or command group that ``args`` name, if they name one.

    Typer builds a Click command from every registered command each time it starts,
    reading each function's signature and options: ~50 ms for Viewfinder's 40 commands,
    to run one of them. Options before the command are flags (``-v``), so the first
    argument that is not an option is the command's name. Without one (``viewfinder
    --help``), or with an unknown one, ``cli`` is returned whole, so help and "no such
    command" list every command.
    """
    name = next((a for a in args if not a.startswith("-")), None)
    commands = [c for c in cli.registered_commands if c.name == name]
    groups = [g for g in cli.registered_groups if g.name == name]
    if not commands and not groups:
        return cli
    only = copy.copy(cli)
    only.registered_commands, only.registered_groups = commands, groups
    return only


def _leave(code: object) -> NoReturn:
    """End the process as ``sys.exit(code)`` would, minus the interpreter's teardown.

    Everything a command promises is done when it returns (versions committed, files
    closed), and this still flushes the output, waits for non-daemon threads and runs the
    exit handlers (multiprocessing, logging, temporary files). What it skips is freeing
    every object and module one by one, and the native libraries' destructors: 0.2-0.3 s
    after an import of 10k images, a tenth of the command.
    """
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
        status = 1
    main_thread = threading.main_thread()
    for t in threading.enumerate():
        if t is not main_thread and not t.daemon:
            t.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
