"""The FastAPI application: ``create_app(settings)``.

One app serves the REST API under ``/api/v1`` (OpenAPI schema at ``/api/v1/openapi.json``,
docs at ``/api/v1/docs``), the web UI (``viewfinder.server.ui``) and ``/healthz``. A
process holds no state that matters: sessions, rate limits and jobs live in the catalog,
thumbnails in a content-addressed cache, so any number of processes (``uvicorn
--workers N``, or replicas on several hosts sharing one PostgreSQL catalog) serve the
same workspace.

Example::

    from viewfinder.server.app import Settings, create_app

    app = create_app(Settings(workspace="path/to/workspace"))
    # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from viewfinder.errors import StorageError
from viewfinder.server.jobs import JobRunner
from viewfinder.server.thumbnails import ALLOWED_SIZES, ThumbnailCache
from viewfinder.storage.workspace import Workspace, open_workspace

API_PREFIX = "/api/v1"
RETENTION_ENV = "VIEWFINDER_EXPORT_RETENTION_DAYS"


def _env_default(name: str, default: float) -> float | str:
    """``$name`` (validated by the field) or ``default``."""
    import os

    return os.environ.get(name) or default


class Settings(BaseModel):
    """How a server runs. Every field can be set from ``viewfinder serve`` options.

    Attributes:
        workspace: the workspace folder (its ``viewfinder.json`` names the catalog and store).
        secure_cookies: send the session cookie only over HTTPS (set behind TLS).
        max_body_bytes: larger request bodies are refused with 413.
        session_ttl_s: how long a browser keeps the session cookie.
        thumbnail_size: thumbnail edge in pixels when a request names none.
        job_workers: threads running background jobs (exports) in this process.
        export_retention_days: how long a finished export's archive stays downloadable;
            then it is deleted from the object store (default: 7, or
            ``$VIEWFINDER_EXPORT_RETENTION_DAYS``).
        warm_query_caches: build branch heads' query caches in the background, ahead of
            the first page a user opens (``server.warmup``); 0 turns it off, else the
            seconds between two looks for new heads.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    workspace: Path
    secure_cookies: bool = False
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    session_ttl_s: int = Field(default=8 * 3600, ge=60)
    thumbnail_size: int = Field(default=256, ge=1, le=max(ALLOWED_SIZES))
    job_workers: int = Field(default=2, ge=1, le=32)
    export_retention_days: float = Field(
        default_factory=lambda: _env_default(RETENTION_ENV, 7.0), gt=0, le=3650,
        validate_default=True)
    warm_query_caches: float = Field(default=30.0, ge=0)


class ServerState:
    """What one app instance holds: its settings, the open workspace, the thumbnail
    cache and (started on first use) its job runner."""

    def __init__(self, settings: Settings, ws: Workspace) -> None:
        self.settings = settings
        self.ws = ws
        self.thumbnails = ThumbnailCache(ws.path / "cache" / "thumbnails")
        self._jobs: JobRunner | None = None
        self._jobs_guard = threading.Lock()

    @property
    def jobs(self) -> JobRunner:
        with self._jobs_guard:
            if self._jobs is None:
                from viewfinder.server import export_jobs

                self._jobs = JobRunner(self.ws.catalog, workers=self.settings.job_workers,
                                       retention={export_jobs.KIND: export_jobs.retention(self)})
            return self._jobs

    def check_catalog(self) -> None:
        """Raise :class:`StorageError` when the catalog does not answer."""
        import sqlalchemy as sa

        try:
            with self.ws.catalog.engine.connect() as c:
                c.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as e:
            raise StorageError(f"the catalog does not answer: {type(e).__name__}") from e

    def close(self) -> None:
        """Wait for running jobs, then close the workspace."""
        with self._jobs_guard:
            runner, self._jobs = self._jobs, None
        if runner is not None:
            runner.shutdown()
        self.ws.close()


def _preload() -> None:
    """Import what requests need before serving: imported lazily (to keep the CLI fast),
    the readers' libraries (Lance brings pandas) would otherwise load inside the first
    requests, while every other request thread waits on the import lock for a second."""
    import importlib

    for module in ("duckdb", "lance", "PIL.Image", "viewfinder.services.access",
                   "viewfinder.services.look", "viewfinder.server.thumbnails"):
        importlib.import_module(module)


def create_app(settings: Settings) -> FastAPI:
    """A FastAPI app serving the workspace at ``settings.workspace``.

    The catalog schema is upgraded (if an older Viewfinder made it) when the app starts.

    Raises:
        WorkspaceNotFound: no workspace at ``settings.workspace``.
    """
    from viewfinder.server import api_docs, errors
    from viewfinder.server.api import router as api_router
    from viewfinder.server.middleware import (
        BodyLimitMiddleware,
        SecurityHeadersMiddleware,
        ServerTimingMiddleware,
    )
    from viewfinder.server.ui import pages_jobs
    from viewfinder.server.ui import router as ui_router

    state = ServerState(settings, open_workspace(settings.workspace))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.ws.catalog  # noqa: B018 - open (and upgrade) the catalog before serving
        _preload()
        state.jobs  # noqa: B018 - start the job runner: its sweep deletes expired exports
        warmer = None
        if settings.warm_query_caches:
            from viewfinder.server.warmup import CacheWarmer

            warmer = CacheWarmer(state.ws, interval_s=settings.warm_query_caches)
            warmer.start()
        try:
            yield
        finally:
            if warmer is not None:
                warmer.stop()
            state.close()

    from viewfinder import __version__

    app = FastAPI(
        title="Viewfinder", version=__version__, lifespan=lifespan,
        description="Versioned, tested, governed computer-vision datasets.",
        openapi_url=f"{API_PREFIX}/openapi.json", docs_url=None, redoc_url=None)
    app.state.vf = state
    errors.install(app)
    app.include_router(api_router)
    app.include_router(api_docs.router)  # Swagger UI from the package, not a CDN
    app.include_router(ui_router)
    app.include_router(pages_jobs.router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness and catalog reachability (for load balancers)."""
        state.check_catalog()
        return {"status": "ok"}

    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ServerTimingMiddleware)
    return app


SETTINGS_ENV = "VIEWFINDER_SERVER_SETTINGS"


def app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory viewfinder.server.app:app_from_env``: settings as
    JSON in ``$VIEWFINDER_SERVER_SETTINGS`` (each worker process builds its own app).

    Raises:
        ConfigError: the variable is missing or its settings are invalid.
    """
    import os

    from pydantic import ValidationError

    from viewfinder.errors import ConfigError

    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise ConfigError(f"${SETTINGS_ENV} is not set (start the server with 'viewfinder serve')")
    try:
        settings = Settings.model_validate_json(raw)
    except ValidationError as e:
        raise ConfigError(f"invalid server settings in ${SETTINGS_ENV}: {e}") from None
    return create_app(settings)
