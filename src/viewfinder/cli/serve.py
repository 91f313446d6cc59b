"""``viewfinder serve``: the team server (REST API and web UI) on one workspace."""

from __future__ import annotations

from typing import Annotated

import typer

from viewfinder.cli.common import WorkspaceOpt, err, handle_errors


@handle_errors
def serve_cmd(
    workspace_path: WorkspaceOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes (they share the "
                                                           "catalog; nothing else is per process).")] = 1,
    secure_cookies: Annotated[bool, typer.Option(help="Send the session cookie over HTTPS only "
                                                      "(set this behind TLS).")] = False,
    max_body_mb: Annotated[float, typer.Option(min=0.01, help="Largest request body, in MB.")] = 2.0,
    session_hours: Annotated[float, typer.Option(min=0.1, help=(
        "How long the browser keeps the session cookie (the server also ends sessions "
        "idle for 8 hours)."))] = 8.0,
    thumbnail_size: Annotated[int, typer.Option(min=1, max=512, help="Default thumbnail edge (px).")] = 256,
    job_workers: Annotated[int, typer.Option(min=1, max=32, help="Threads per process for "
                                                                 "background jobs (exports).")] = 2,
    keep_alive: Annotated[int, typer.Option(min=1, max=600, help=(
        "Seconds an idle HTTP connection stays open. Longer than a person looks at a page, so "
        "a browser rarely reuses a connection the server is closing at that moment."))] = 75,
    export_retention_days: Annotated[float | None, typer.Option(min=0.001, help=(
        "Days a finished export stays downloadable before its archive is deleted "
        "(default 7, or $VIEWFINDER_EXPORT_RETENTION_DAYS)."))] = None,
    warm_query_caches: Annotated[float, typer.Option(min=0, help=(
        "Seconds between looks for new branch heads whose query cache (large versions) is "
        "built ahead of the first page a user opens; 0 turns it off."))] = 30.0,
) -> None:
    """Serve the REST API (/api/v1, schema at /api/v1/openapi.json) and the web UI.

    Sign-in needs a user: create the first one with 'viewfinder admin bootstrap'.
    """
    import os
    import socket

    import uvicorn

    from viewfinder.server.app import SETTINGS_ENV, Settings
    from viewfinder.storage.workspace import find_workspace

    settings = Settings(workspace=find_workspace(workspace_path), secure_cookies=secure_cookies,
                        max_body_bytes=int(max_body_mb * 1024 * 1024),
                        session_ttl_s=int(session_hours * 3600), thumbnail_size=thumbnail_size,
                        job_workers=job_workers, warm_query_caches=warm_query_caches,
                        **({"export_retention_days": export_retention_days}
                           if export_retention_days is not None else {}))
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    err.print(f"Serving workspace {settings.workspace} on http://{host}:{port} "
              f"({workers} process{'es' if workers > 1 else ''}); API docs at /api/v1/docs",
              markup=False)
    config = uvicorn.Config("viewfinder.server.app:app_from_env", factory=True, host=host,
                            port=port, workers=workers, proxy_headers=True, server_header=False,
                            log_level="info", timeout_keep_alive=keep_alive)
    # uvicorn binds its socket without naming TCP as the protocol, so asyncio never turns
    # Nagle's algorithm off on the connections: every small answer (a thumbnail, a sample)
    # then waits ~40 ms for the browser's delayed ACK. Set on the listening socket, the
    # option is inherited by every accepted connection, in every worker process.
    sock = config.bind_socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()
        return
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
