"""``embed`` and ``similar``: image embeddings and similarity search."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

ProviderOpt = Annotated[str, typer.Option(
    "--provider", help="Embedding provider: builtin (no weights), clip or dinov2 (need "
                       "viewfinder[learned]).")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="Weights of a learned provider: a local folder or a model-hub id.")]


@contextmanager
def _progress_bar(disable: bool) -> Iterator[Callable[[str, int, int], None]]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeRemainingColumn,
    )

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True, disable=disable) as bar:
        tasks: dict[str, object] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)  # type: ignore[arg-type]

        yield report


@handle_errors
def embed_cmd(spec: Annotated[str, typer.Argument(help="NAME or NAME@REF.")],
              provider: ProviderOpt = "builtin", model: ModelOpt = None,
              workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Compute the embeddings of a version's images (stored; only new images are embedded)."""
    import time

    from viewfinder.quality.context import QualityContext
    from viewfinder.quality.embeddings import get_provider, store
    from viewfinder.services.access import whole_dataset

    ws = workspace(workspace_path)
    at = whole_dataset(ws, principal(ws), spec, "computing embeddings")  # stored for every sample
    emb = get_provider(provider, model=model)
    started = time.perf_counter()
    with _progress_bar(json_out) as report, QualityContext(ws, at, progress=report) as ctx:
        images = len(set(ctx.sample_hashes.column("content_hash").to_pylist()))
        hashes, _ = store.compute(ctx, emb)
    result = {"dataset": at.dataset.name, "version": at.version.id, "provider": emb.name,
              "dim": emb.dim, "images": images, "embedded": len(hashes),
              "not_decodable": images - len(hashes),
              "seconds": round(time.perf_counter() - started, 2)}
    if json_out:
        print_json(result)
        return
    out.print(f"{result['dataset']}@{at.ref}: {result['embedded']} images embedded with "
              f"{result['provider']} ({result['dim']} dimensions) in {result['seconds']} s"
              + (f"; {result['not_decodable']} could not be decoded" if result["not_decodable"] else ""),
              markup=False)


@handle_errors
def similar_cmd(spec: Annotated[str, typer.Argument(help="NAME or NAME@REF.")],
                sample: Annotated[str, typer.Option("--sample", help="The query sample's id (or key).")],
                k: Annotated[int, typer.Option("-k", help="How many samples to list.")] = 10,
                provider: ProviderOpt = "builtin", model: ModelOpt = None,
                workspace_path: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """List the samples whose images look most like one sample's, nearest first."""
    from rich.table import Table

    from viewfinder.services.access_quality import similar

    ws = workspace(workspace_path)
    with _progress_bar(json_out) as report:
        hits = similar(ws, principal(ws), spec, sample, k=k, provider=provider, model=model,
                       progress=report)
    if json_out:
        print_json(hits)
        return
    t = Table("distance", "key", "split", "sample id")
    for h in hits:
        t.add_row(f"{h['distance']:.4f}", h["key"], h["split"] or "", h["sample_id"])
    out.print(t)


def register(app: typer.Typer) -> None:
    app.command("embed")(embed_cmd)
    app.command("similar")(similar_cmd)
