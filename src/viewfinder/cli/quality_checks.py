"""``check`` and ``release``: run a dataset's check suite; release a version if it passes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    from viewfinder.quality.context import Progress
    from viewfinder.quality.report import CheckReport
    from viewfinder.quality.suite import Suite
    from viewfinder.storage.workspace import Workspace

SuiteOpt = Annotated[Path | None, typer.Option(
    "--suite", help="Suite YAML file (default: the dataset's stored suite, else the default suite).")]
PixelsOpt = Annotated[bool, typer.Option(
    "--pixels/--no-pixels", help="Run what reads images (decoding, near duplicates, label-error "
                                 "detectors); --no-pixels runs the rest only.")]


def _load(path: Path | None) -> Suite | None:
    from viewfinder.quality.suite import load_suite

    return load_suite(path) if path is not None else None


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """A ``progress(stage, done, total)`` callback drawing a rich bar on stderr."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    with Bar(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
             console=err, transient=True) as bar:
        task = bar.add_task("checks", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total or None)

        yield progress


def print_report(report: CheckReport) -> None:
    """The report as a terminal table."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=escape(f"{report.dataset}@{report.ref} ({report.version[:12]}), suite {report.suite}"),
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("check", ratio=1, overflow="fold")
    t.add_column("status", no_wrap=True)
    t.add_column("value / limit", no_wrap=True, justify="right")
    t.add_column("failing", no_wrap=True)
    for o in report.outcomes:
        r = o.result
        failing = "\n".join(p for p in (
            f"{r.sample_count} samples" if r and r.sample_count else "",
            f"{r.label_count} labels" if r and r.label_count else "") if p)
        if o.status == "passed":
            status = "[green]pass[/]"
        elif o.status == "skipped":
            status = "[dim]skip[/]"
        elif o.blocking:
            status = f"[bold red]{'FAIL' if o.status == 'failed' else 'ERROR'}[/]"
        else:
            status = f"[yellow]{'fail' if o.status == 'failed' else 'error'} ({o.severity})[/]"
        value = f"{_fmt(r.value)} / {_fmt(r.threshold)}" if r and o.status != "skipped" else ""
        t.add_row(f"{escape(o.name)}\n[dim]{escape(o.message)}[/]", status, value, failing)
    out.print(t)
    c = report.counts
    verdict = "[green]passed[/green]" if report.passed else f"[red]failed[/red] ({c['blocking']} blocking)"
    out.print(f"{verdict}: {c['passed']} passed, {c['failed']} failed, {c['error']} could not run, "
              f"{c['skipped']} skipped in {report.seconds:.2f} s; report {report.id}")


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@handle_errors
def check_cmd(
    spec: Annotated[str, typer.Argument(help="NAME or NAME@REF.")],
    suite_path: SuiteOpt = None,
    save_suite: Annotated[bool, typer.Option(
        "--save-suite", help="Store --suite as the dataset's suite (used when --suite is not given).")] = False,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here (for CI).")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")] = None,
    pixels: PixelsOpt = True,
    list_checks: Annotated[bool, typer.Option("--list", help="List the available checks and exit.")] = False,
    workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False,
) -> None:
    """Run a check suite on a dataset version; exit 1 when an error-severity check fails."""
    from viewfinder.errors import InvalidInput
    from viewfinder.services import checks as svc
    from viewfinder.services import versions as vs

    if list_checks:
        from viewfinder.quality import checks

        for name in checks.names():
            c = checks.get(name)
            out.print(f"{name:16} {'pixels ' if c.needs_pixels else '       '}{c.description}", markup=False)
        return
    from viewfinder.services import access, access_quality

    ws = workspace(workspace_path)
    who = principal(ws)
    suite = _load(suite_path)
    if save_suite:
        if suite is None:
            raise InvalidInput("--save-suite stores the file given with --suite")
        access.whole_dataset(ws, who, spec, "storing the check suite")
        run_id = svc.save_suite(ws, vs.parse_spec(spec)[0], suite, author=who.username)
        err.print(f"stored suite {suite.name!r} for {vs.parse_spec(spec)[0]} (run {run_id})", markup=False)
    with progress_bar() as progress:
        report = access_quality.run_checks(ws, who, spec, suite, pixels=pixels, progress=progress)
    _write_outputs(ws, report, junit, html)
    if json_out:
        print_json(report.to_dict())
    else:
        print_report(report)
    if not report.passed:
        raise typer.Exit(1)


def _write_outputs(ws: Workspace, report: CheckReport, junit: Path | None, html: Path | None) -> None:
    if junit is not None:
        from viewfinder.quality.report import junit_xml

        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(junit_xml(report), encoding="utf-8")
        err.print(f"wrote JUnit XML to {junit}", markup=False)
    if html is not None:
        from viewfinder.quality.html_report import render_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(ws, report), encoding="utf-8")
        err.print(f"wrote HTML report to {html}", markup=False)


@handle_errors
def release_cmd(
    spec: Annotated[str, typer.Argument(help="NAME@REF to release.")],
    tag: Annotated[str, typer.Option("--tag", help="Name of the protected tag to create.")],
    suite_path: SuiteOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Release even if checks fail (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why a failing version is released.")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write the JUnit XML of the checks here.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report of the checks here.")] = None,
    pixels: PixelsOpt = True,
    workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False,
) -> None:
    """Create a protected tag if the check suite passes (or --force --reason TEXT)."""
    from viewfinder.errors import ReleaseBlocked
    from viewfinder.quality.report import CheckReport
    from viewfinder.services import access_quality

    ws = workspace(workspace_path)
    try:
        with progress_bar() as progress:
            rel = access_quality.release(ws, principal(ws), spec, tag, suite=_load(suite_path),
                                         force=force, reason=reason, pixels=pixels,
                                         progress=progress)
    except ReleaseBlocked as e:
        report = CheckReport.from_dict(e.report)
        _write_outputs(ws, report, junit, html)
        if json_out:
            print_json({"error": "release blocked", "report": e.report})
        else:
            print_report(report)
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(1) from None
    _write_outputs(ws, rel.report, junit, html)
    if json_out:
        print_json(rel.to_dict())
        return
    print_report(rel.report)
    how = f"forced: {rel.reason}" if rel.forced else "checks passed"
    out.print(f"released {rel.dataset}@{rel.tag} = version {rel.version_id} (protected tag; {how})",
              markup=False)


def register(app: typer.Typer) -> None:
    app.command("check")(check_cmd)
    app.command("release")(release_cmd)
