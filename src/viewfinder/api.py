"""The Python API: the same actions as the CLI, on objects.

Example:
    >>> import viewfinder as vf
    >>> ws = vf.init_workspace("ws")                                    # doctest: +SKIP
    >>> ws.import_source("data/coco", "street", format="coco")          # doctest: +SKIP
    >>> ds = ws.dataset("street@main")                                  # doctest: +SKIP
    >>> ds.count('label.class == "car"')                                # doctest: +SKIP
    >>> for sample in ds.iter_samples('split == "val"'):                # doctest: +SKIP
    ...     img = sample.image()                                        # PIL image
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from viewfinder.core.types import SourceLabel
from viewfinder.governance.policy import combine_filter
from viewfinder.governance.principal import Principal
from viewfinder.services import access, ingest, look
from viewfinder.services import diff as diff_service
from viewfinder.services import export as export_service
from viewfinder.services import versions as vs
from viewfinder.storage import rows
from viewfinder.storage import workspace as storage_ws
from viewfinder.storage.catalog import VersionRecord


@dataclass
class Sample:
    """One sample of a version, with its labels; the image loads on demand."""

    id: str
    key: str
    content_hash: str
    width: int
    height: int
    split: str | None
    tags: list[str]
    metadata: dict[str, Any]
    labels: list[SourceLabel] = field(default_factory=list)
    _ws: storage_ws.Workspace | None = field(default=None, repr=False, compare=False)

    def image_bytes(self) -> bytes:
        assert self._ws is not None
        return self._ws.blobs.read(self.content_hash)

    def image(self) -> Any:
        """The image as a PIL image, EXIF orientation applied."""
        from PIL import Image, ImageOps

        im = Image.open(io.BytesIO(self.image_bytes()))
        return ImageOps.exif_transpose(im)


class Workspace:
    """An open workspace. Get one with :func:`init_workspace` or :func:`open_workspace`."""

    def __init__(self, inner: storage_ws.Workspace, token: str | None = None) -> None:
        from viewfinder.governance.principal import SYSTEM
        from viewfinder.governance.tokens import resolve_token

        self._ws = inner
        token = token or os.environ.get("VIEWFINDER_TOKEN")
        #: who this session acts as: a token's user (under the access policy) or the system
        self.principal: Principal = resolve_token(inner, token) if token else SYSTEM

    @property
    def path(self) -> Path:
        return self._ws.path

    def datasets(self) -> list[str]:
        """The names of the datasets this session may read."""
        return [d["name"] for d in access.list_datasets(self._ws, self.principal)]

    def dataset(self, spec: str) -> DatasetView:
        """The dataset at ``NAME`` (branch main) or ``NAME@REF``."""
        at, grant = access.open_dataset(self._ws, self.principal, spec)
        return DatasetView(self._ws, at, self.principal, grant.slice)

    def create_dataset(self, name: str, classes: list[str] | None = None) -> DatasetView:
        from viewfinder.governance.policy import Action, decide

        decide(self._ws, self.principal, Action.DATASET_CREATE)
        return DatasetView(self._ws, vs.create_dataset(self._ws, name, classes=classes,
                                                       author=self.principal.username),
                           self.principal)

    def import_source(self, source: str | Path, dataset: str, **options: Any) -> ingest.ImportResult:
        """Import a folder; options as :func:`viewfinder.services.access.import_source`."""
        return access.import_source(self._ws, self.principal, source, dataset, **options)

    def log(self, spec: str) -> list[VersionRecord]:
        access.open_dataset(self._ws, self.principal, spec)
        return vs.log(self._ws, spec)

    def tag(self, spec: str, tag: str) -> None:
        access.create_tag(self._ws, self.principal, spec, tag)

    def branch(self, dataset: str, new: str, from_ref: str | None = None) -> None:
        access.create_branch(self._ws, self.principal, dataset, new, from_ref=from_ref)

    def merge(self, dataset: str, source: str, into: str = vs.DEFAULT_BRANCH,
              message: str | None = None) -> VersionRecord:
        return access.merge(self._ws, self.principal, dataset, source, into=into,
                            message=message).version

    def diff(self, dataset: str, a: str, b: str) -> diff_service.Diff:
        return access.diff(self._ws, self.principal, dataset, a, b)

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"


class DatasetView:
    """A dataset at one version, as the session's principal may see it (its slice applies
    to every read). Edits return a new view at the branch's new head."""

    def __init__(self, ws: storage_ws.Workspace, at: vs.DatasetAt, principal: Principal,
                 slice: str | None = None) -> None:
        self._ws = ws
        self._at = at
        self._principal = principal
        self._slice = slice

    def _filter(self, filter: str | None) -> str | None:
        return combine_filter(self._slice, filter)

    @property
    def name(self) -> str:
        return self._at.dataset.name

    @property
    def version(self) -> VersionRecord:
        return self._at.version

    @property
    def spec(self) -> str:
        return f"{self.name}@{self._at.ref}"

    @property
    def classes(self) -> list[str]:
        return list(self.version.summary.get("class_list", []))

    def __repr__(self) -> str:
        return f"DatasetView({self.name}@{self._at.ref} = {self.version.id})"

    def __len__(self) -> int:
        return int(self.version.summary["samples"])

    # -- reading --------------------------------------------------------------------

    def _pinned(self) -> str:
        return f"{self.name}@{self.version.id}"

    def samples(self, filter: str | None = None) -> pa.Table:
        """Matching samples as an Arrow table."""
        with look.VersionReader(self._ws, self._at, self._filter(filter)) as r:
            return r.query("SELECT * FROM {m} ORDER BY key")

    def labels(self, filter: str | None = None) -> pa.Table:
        """Labels of the matching samples as an Arrow table."""
        with look.VersionReader(self._ws, self._at, self._filter(filter)) as r:
            return r.query("SELECT l.* FROM labels l SEMI JOIN {m} AS mm ON l.sample_id = mm.id "
                           "ORDER BY l.sample_id, l.id")

    def to_pandas(self, filter: str | None = None, table: str = "samples") -> Any:
        return (self.samples(filter) if table == "samples" else self.labels(filter)).to_pandas()

    def to_polars(self, filter: str | None = None, table: str = "samples") -> Any:
        try:
            import polars as pl
        except ImportError:
            from viewfinder.errors import MissingDependency

            raise MissingDependency("polars", "polars") from None

        return pl.from_arrow(self.samples(filter) if table == "samples" else self.labels(filter))

    def iter_samples(self, filter: str | None = None) -> Iterator[Sample]:
        """Samples in key order with their labels (images load lazily)."""
        for s, labs in look.samples_with_labels(self._ws, self._at, self._filter(filter)):
            yield Sample(id=s["id"], key=s["key"], content_hash=s["content_hash"],
                         width=s["width"], height=s["height"], split=s["split"],
                         tags=list(s["tags"] or []), metadata=json.loads(s["metadata"] or "{}"),
                         labels=[rows.label_from_row(r) for r in labs], _ws=self._ws)

    def __iter__(self) -> Iterator[Sample]:
        return self.iter_samples()

    def query(self, filter: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return access.samples_page(self._ws, self._principal, self._pinned(), filter,
                                   limit=limit, offset=offset)

    def count(self, filter: str | None = None) -> int:
        return access.count(self._ws, self._principal, self._pinned(), filter)

    def stats(self, filter: str | None = None) -> dict[str, Any]:
        return access.stats(self._ws, self._principal, self._pinned(), filter)

    def export(self, format: str, out: str | Path, *, filter: str | None = None,
               images: str = "copy") -> export_service.ExportResult:
        return access.export(self._ws, self._principal, self._pinned(), out, format,
                             filter=filter, images=images)

    def torch_dataset(self, filter: str | None = None, transform: Any = None) -> Any:
        from viewfinder.training import VisionDataset

        return VisionDataset(self, filter=filter, transform=transform)

    # -- editing (each makes a version on the view's branch) ------------------------

    def _after(self, result: vs.CommitResult) -> DatasetView:
        return DatasetView(self._ws, vs.DatasetAt(self._at.dataset, result.version, self._at.ref),
                           self._principal, self._slice)

    def remap(self, mapping: dict[str, str], message: str | None = None) -> DatasetView:
        return self._after(access.remap(self._ws, self._principal, self.spec, mapping,
                                        message=message))

    def split(self, ratios: dict[str, float], *, stratify: bool = False, group_by: str | None = None,
              seed: int = 0, message: str | None = None) -> DatasetView:
        return self._after(access.split(self._ws, self._principal, self.spec, ratios,
                                        stratify=stratify, group_by=group_by, seed=seed,
                                        message=message))

    def tag_samples(self, filter: str | None, add: list[str] | None = None,
                    remove: list[str] | None = None, message: str | None = None) -> DatasetView:
        return self._after(access.tag_matching(self._ws, self._principal, self.spec, filter,
                                               add=add, remove=remove, message=message))


def init_workspace(path: str | Path, **options: Any) -> Workspace:
    """Create a workspace (SQLite + local store unless ``catalog``/``store`` URLs say else)."""
    return Workspace(storage_ws.init_workspace(path, **options))


def open_workspace(path: str | Path | None = None, *, token: str | None = None) -> Workspace:
    """Open a workspace (``path``, ``$VIEWFINDER_WORKSPACE`` or the current folder).

    With an API ``token`` (or ``$VIEWFINDER_TOKEN``) the session acts as the token's user
    under the same access policy as the web UI; without one, as the local system.
    """
    return Workspace(storage_ws.open_workspace(path), token=token)


__all__ = ["DatasetView", "Sample", "Workspace", "init_workspace", "open_workspace"]
