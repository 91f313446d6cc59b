"""A workspace: one catalog database plus one object store, described by a config file.

``PATH/viewfinder.json`` holds the catalog URL and the store URL (relative ones resolve
against ``PATH``, so an embedded workspace can be moved). Credentials are never written
there: S3 keys come from the usual ``AWS_*`` environment variables, and
``VIEWFINDER_CATALOG_URL`` overrides the catalog URL (for a PostgreSQL password).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from viewfinder.errors import ConfigError, WorkspaceNotFound
from viewfinder.storage.blobs import BlobStore
from viewfinder.storage.catalog import Catalog, DatasetRecord, migrate
from viewfinder.storage.tables import DatasetTables

CONFIG_NAME = "viewfinder.json"
DEFAULT_CATALOG = "sqlite:///catalog.db"
DEFAULT_STORE = "objects"


@dataclass
class WorkspaceConfig:
    catalog: str = DEFAULT_CATALOG
    store: str = DEFAULT_STORE
    store_endpoint: str | None = None
    store_region: str | None = None

    def to_json(self) -> str:
        d = {"format": 1, "catalog": self.catalog, "store": self.store}
        if self.store_endpoint:
            d["store_endpoint"] = self.store_endpoint
        if self.store_region:
            d["store_region"] = self.store_region
        return json.dumps(d, indent=2) + "\n"


def _check_url(kind: str, url: str) -> None:
    if kind == "catalog" and not url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
        raise ConfigError(f"catalog URL must start with sqlite: or postgresql:, got {url!r}")
    if kind == "store" and "://" in url and not url.startswith(("s3://", "file://")):
        raise ConfigError(f"store URL must be a folder, file:// or s3://, got {url!r}")


class Workspace:
    """An open workspace. Use :func:`init_workspace` / :func:`open_workspace`."""

    def __init__(self, path: Path, config: WorkspaceConfig) -> None:
        self.path = path
        self.config = config

    # URLs with relative parts resolved against the workspace folder
    @property
    def catalog_url(self) -> str:
        url = os.environ.get("VIEWFINDER_CATALOG_URL") or self.config.catalog
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url[len("sqlite:///"):]
            return f"sqlite:///{(self.path / rel).resolve()}"
        return url

    @property
    def store_url(self) -> str:
        s = self.config.store
        if s.startswith("s3://"):
            return s.rstrip("/")
        s = s.removeprefix("file://")
        p = Path(s)
        return str((p if p.is_absolute() else self.path / p).resolve())

    @property
    def is_remote_store(self) -> bool:
        return self.store_url.startswith("s3://")

    def lance_storage_options(self) -> dict[str, str]:
        if not self.is_remote_store:
            return {}
        opts: dict[str, str] = {}
        if self.config.store_endpoint:
            opts["aws_endpoint"] = self.config.store_endpoint
            if self.config.store_endpoint.startswith("http://"):
                opts["allow_http"] = "true"
        opts["aws_region"] = self.config.store_region or os.environ.get("AWS_REGION", "us-east-1")
        for env, key in (("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
                         ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key")):
            if os.environ.get(env):
                opts[key] = os.environ[env]
        return opts

    def fsspec_storage_options(self) -> dict[str, Any]:
        if not self.is_remote_store:
            return {}
        opts: dict[str, Any] = {}
        if self.config.store_endpoint:
            opts["endpoint_url"] = self.config.store_endpoint
        region = self.config.store_region or os.environ.get("AWS_REGION", "us-east-1")
        opts["client_kwargs"] = {"region_name": region}
        return opts

    @cached_property
    def catalog(self) -> Catalog:
        catalog = Catalog(self.catalog_url)
        catalog.ensure_schema()
        return catalog

    @cached_property
    def blobs(self) -> BlobStore:
        return BlobStore(self.store_url, self.fsspec_storage_options(),
                         cache_dir=self.path / "cache")

    def tables(self, dataset: DatasetRecord) -> DatasetTables:
        return DatasetTables(self.store_url, dataset.id, self.lance_storage_options())

    def close(self) -> None:
        if "catalog" in self.__dict__:
            self.catalog.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"


def init_workspace(path: str | Path, *, catalog: str | None = None, store: str | None = None,
                   store_endpoint: str | None = None, store_region: str | None = None) -> Workspace:
    """Create a workspace at ``path`` (SQLite + local store unless URLs are given)."""
    p = Path(path).resolve()
    if (p / CONFIG_NAME).exists():
        raise ConfigError(f"a workspace already exists at {p}", path=str(p))
    cfg = WorkspaceConfig(catalog=catalog or DEFAULT_CATALOG, store=store or DEFAULT_STORE,
                          store_endpoint=store_endpoint, store_region=store_region)
    _check_url("catalog", cfg.catalog)
    _check_url("store", cfg.store)
    p.mkdir(parents=True, exist_ok=True)
    ws = Workspace(p, cfg)
    if not ws.is_remote_store:
        Path(ws.store_url).mkdir(parents=True, exist_ok=True)
    migrate(ws.catalog_url)
    (p / CONFIG_NAME).write_text(cfg.to_json())
    return ws


def find_workspace(path: str | Path | None = None) -> Path:
    """The workspace folder: ``path``, else ``$VIEWFINDER_WORKSPACE``, else the current
    folder or the nearest parent holding a ``viewfinder.json``."""
    if path is not None or os.environ.get("VIEWFINDER_WORKSPACE"):
        p = Path(path if path is not None else os.environ["VIEWFINDER_WORKSPACE"]).resolve()
        if not (p / CONFIG_NAME).is_file():
            raise WorkspaceNotFound(f"no workspace at {p} (run 'viewfinder init {p}')", path=str(p))
        return p
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / CONFIG_NAME).is_file():
            return p
    raise WorkspaceNotFound("no workspace here: pass --workspace PATH, set "
                            "VIEWFINDER_WORKSPACE, or run 'viewfinder init PATH'")


def open_workspace(path: str | Path | None = None) -> Workspace:
    """Open the workspace at ``path`` (or the one found as :func:`find_workspace` says)."""
    p = find_workspace(path)
    try:
        raw = json.loads((p / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read {p / CONFIG_NAME}: {e}", path=str(p / CONFIG_NAME)) from e
    cfg = WorkspaceConfig(catalog=raw.get("catalog", DEFAULT_CATALOG),
                          store=raw.get("store", DEFAULT_STORE),
                          store_endpoint=raw.get("store_endpoint"),
                          store_region=raw.get("store_region"))
    return Workspace(p, cfg)
