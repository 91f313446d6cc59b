"""What every command shares: workspace option, output helpers, error reporting."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from viewfinder.errors import FilterSyntaxError, ImportFailed, ViewfinderError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

WorkspaceOpt = Annotated[str | None, typer.Option(
    "--workspace", "-w", envvar="VIEWFINDER_WORKSPACE",
    help="Workspace folder (default: $VIEWFINDER_WORKSPACE or the current folder).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
FilterOpt = Annotated[str | None, typer.Option("--filter", "-f", help="Filter expression, "
                                                "e.g. 'label.class == \"car\" and split == \"val\"'.")]

F = TypeVar("F", bound=Callable[..., Any])


def workspace(path: str | None) -> Any:
    from viewfinder.storage.workspace import open_workspace

    return open_workspace(path)


TOKEN_ENV = "VIEWFINDER_TOKEN"


def principal(ws: Any) -> Any:
    """Who a command acts as: the user of the API token in ``$VIEWFINDER_TOKEN`` (under
    the same access policy as the web UI), else the local system (whoever can open the
    catalog is trusted like its owner). Every change is audited either way."""
    import os

    from viewfinder.governance.principal import SYSTEM
    from viewfinder.governance.tokens import resolve_token

    token = os.environ.get(TOKEN_ENV)
    return resolve_token(ws, token) if token else SYSTEM


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def handle_errors(fn: F) -> F:
    """Turn Viewfinder errors into a clear message and exit code 1 (no traceback)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ImportFailed as e:
            if kwargs.get("json_out"):
                print_json({"error": "import failed", "problems": [p.to_dict() for p in e.problems]})
            err.print(f"[red]error:[/red] import failed: {len(e.problems)} problem(s); "
                      "no version was created (use --on-error skip to import the rest)", markup=True)
            for p in e.problems:
                err.print(f"  - {p}", markup=False)
            raise typer.Exit(1) from None
        except FilterSyntaxError as e:
            err.print(f"error: {e}", markup=False)
            raise typer.Exit(2) from None
        except ViewfinderError as e:
            err.print(f"error: {e}", markup=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
