"""``import-predictions``: bring a model's predictions into a dataset version."""

from __future__ import annotations

from typing import Annotated

import typer

from viewfinder.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    handle_errors,
    out,
    principal,
    print_json,
    workspace,
)


@handle_errors
def import_predictions_cmd(
    spec: Annotated[str, typer.Argument(help="NAME or NAME@BRANCH.")],
    file: Annotated[str, typer.Argument(help="Predictions file: COCO results JSON or a CSV.")],
    model: Annotated[str, typer.Option("--model", help="Name of the model run; the labels get "
                                                       "source 'model:NAME'.")],
    format: Annotated[str, typer.Option("--format", help="coco-results or classification-csv.")] = "coco-results",
    coco: Annotated[str | None, typer.Option("--coco", help="The COCO annotation file the model ran on "
                                                            "(resolves image_id and category_id).")] = None,
    on_error: Annotated[str, typer.Option("--on-error", help="fail: import nothing when a record is "
                                                             "bad; skip: import the good records.")] = "fail",
    message: Annotated[str | None, typer.Option("--message", "-m", help="Version message.")] = None,
    workspace_path: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import model predictions as labels of a model run (one new version).

    Importing a model's predictions again replaces that model's earlier predictions.
    Statistics and exports keep to the ground truth.
    """
    from viewfinder.errors import InvalidInput
    from viewfinder.services.access_quality import import_predictions
    from viewfinder.services.predictions import FORMATS

    if format not in FORMATS:
        raise InvalidInput(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
    if on_error not in ("fail", "skip"):
        raise InvalidInput(f"--on-error must be fail or skip, not {on_error!r}")
    ws = workspace(workspace_path)
    result = import_predictions(ws, principal(ws), spec, file, model=model,
                                format=format, annotations=coco,  # type: ignore[arg-type]
                                on_error=on_error, message=message)  # type: ignore[arg-type]
    if json_out:
        print_json(result.to_dict())
        return
    c = result.changes["labels"]
    if result.created:
        out.print(f"new version {result.version.id}: {result.predictions} predictions of "
                  f"{result.model} (+{c['added']} ~{c['changed']} -{c['removed']}) "
                  f"in {result.seconds:.2f} s", markup=False)
    else:
        out.print(f"nothing to change: the predictions of {result.model} are already in "
                  f"version {result.version.id}", markup=False)
    for p in result.skipped:
        out.print(f"  skipped: {p}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("import-predictions")(import_predictions_cmd)
