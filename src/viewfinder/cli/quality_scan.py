"""``scan`` (run detectors, store findings) and ``findings`` (list them)."""

from __future__ import annotations

import json
from typing import Annotated, Any

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
from viewfinder.quality.detectors import (
    names as detector_names,  # names only: imports no detector
)

SpecArg = Annotated[str, typer.Argument(help="NAME or NAME@REF.")]


def _parse_params(values: list[str]) -> dict[str, dict[str, Any]]:
    """``DETECTOR.OPTION=VALUE`` → ``{detector: {option: value}}`` (values read as JSON,
    else as text: ``dark_max=0.05``, ``kinds=["dark","blurry"]``, ``model=yolo``)."""
    from viewfinder.errors import InvalidInput

    params: dict[str, dict[str, Any]] = {}
    for item in values:
        target, sep, raw = item.partition("=")
        detector, dot, option = target.strip().partition(".")
        if not sep or not dot or not detector or not option:
            raise InvalidInput(f"--param {item!r}: expected DETECTOR.OPTION=VALUE, "
                               "e.g. image_problems.dark_max=0.05")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        params.setdefault(detector, {})[option] = value
    return params


@handle_errors
def scan_cmd(
    spec: SpecArg,
    detectors: Annotated[str | None, typer.Option(
        "--detectors", "-d", help="Comma-separated detectors (default: every detector that "
        "needs no predictions). Known: " + ", ".join(detector_names()) + ".")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="A detector option, DETECTOR.OPTION=VALUE (repeatable), "
        "e.g. near_duplicates.phash_max_distance=6.")] = None,
    workspace_path: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run detectors on a version and store their findings with it (a rescan replaces
    the findings of the detectors it runs)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from viewfinder.services.access_quality import scan

    ws = workspace(workspace_path)
    names = [d.strip() for d in detectors.split(",") if d.strip()] if detectors else None
    params = _parse_params(param or [])
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True, disable=json_out) as bar:
        task = bar.add_task("starting", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total or None)

        result = scan(ws, principal(ws), spec, names, params, progress=progress)
    if json_out:
        print_json(result.to_dict())
        return
    from rich.table import Table

    out.print(f"{result.dataset}@{result.version[:12]}: {result.total} finding(s) from "
              f"{', '.join(result.detectors)} in {result.seconds:.1f} s (run {result.run_id})",
              markup=False)
    if result.counts:
        t = Table("kind", "findings")
        for kind, n in sorted(result.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            t.add_row(kind, str(n))
        out.print(t)
        out.print(f"list them: viewfinder findings {spec} --kind KIND; "
                  f"filter: --filter 'finding.kind == \"KIND\"'", markup=False)


def _evidence_text(evidence: dict[str, Any]) -> str:
    """A one-line summary of a finding's evidence for the table."""
    parts = []
    for key, value in evidence.items():
        if isinstance(value, list):
            value = f"{len(value)} item(s)"
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in list(value.items())[:3])
        elif isinstance(value, float):
            value = f"{value:.4g}"
        parts.append(f"{key}={value}")
    text = "; ".join(parts)
    return text if len(text) <= 100 else text[:97] + "..."


@handle_errors
def findings_cmd(
    spec: SpecArg,
    kind: Annotated[str | None, typer.Option("--kind", "-k", help="Only this kind, e.g. "
                                                                   "near_duplicate.")] = None,
    detector: Annotated[str | None, typer.Option(help="Only this detector's findings.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many (highest score "
                                                   "first).")] = None,
    workspace_path: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the findings stored with a version (by ``scan``), highest score first."""
    from viewfinder.services.access_quality import findings

    ws = workspace(workspace_path)
    rows = findings(ws, principal(ws), spec, kind=kind, detector=detector, limit=limit)
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    t = Table("kind", "score", "sample", "label", "group", "evidence")
    for r in rows:
        t.add_row(r["kind"], f"{r['score']:.3f}", r["key"], (r["label_id"] or "")[:12],
                  (r["group_id"] or "")[:20], _evidence_text(r["evidence"]))
    out.print(t)
    out.print(f"{len(rows)} finding(s)" + (" (limit reached)" if limit is not None and
                                            len(rows) == limit else ""), markup=False)


def register(app: typer.Typer) -> None:
    app.command("scan")(scan_cmd)
    app.command("findings")(findings_cmd)
