"""The typed context checks and detectors read: one dataset version, computed once.

Expensive shared inputs (the image scan, embeddings, neighbor graphs) are computed on first
use and cached on the context, so a suite of ten checks pays for them once. Everything is
read through DuckDB over the version's Lance tables, so a check over 10M labels never
materializes the whole table in Python.

Example:
    >>> ctx = QualityContext(ws, vs.resolve(ws, "street@main"))      # doctest: +SKIP
    >>> ctx.sql("SELECT count(*) AS n FROM labels").column("n")[0]   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from viewfinder.storage.catalog import DatasetAt
from viewfinder.storage.reader import VersionReader
from viewfinder.storage.workspace import Workspace

if TYPE_CHECKING:
    from viewfinder.storage.catalog import DatasetRecord, VersionRecord

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as long work advances (the CLI draws a bar)."""


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


class QualityContext:
    """One dataset version as checks and detectors see it.

    Args:
        ws: the open workspace.
        at: the dataset at one version (``services.versions.resolve(ws, "NAME@REF")``).
        progress: optional callback for long work.
    """

    def __init__(self, ws: Workspace, at: DatasetAt, *, progress: Progress | None = None) -> None:
        self.ws = ws
        self.at = at
        self.progress: Progress = progress or _no_progress
        self._readers: dict[str | None, VersionReader] = {}
        self._cache: dict[str, Any] = {}

    # -- identity ------------------------------------------------------------------------

    @property
    def dataset(self) -> DatasetRecord:
        return self.at.dataset

    @property
    def version(self) -> VersionRecord:
        return self.at.version

    @property
    def classes(self) -> list[str]:
        return list(self.at.dataset.classes)

    # -- reading -------------------------------------------------------------------------

    def reader(self, filter: str | None = None) -> VersionReader:
        """A DuckDB reader over this version; ``{m}`` in its queries is the samples that
        match ``filter`` (a check's scope). Readers are kept open until :meth:`close`."""
        if filter not in self._readers:
            self._readers[filter] = VersionReader(self.ws, self.at, filter)
        return self._readers[filter]

    def sql(self, sql: str, params: list[Any] | None = None, *, filter: str | None = None) -> pa.Table:
        """Run ``sql`` over the relations ``samples`` and ``labels`` (and ``{m}``, the
        samples matching ``filter``) and return Arrow."""
        return self.reader(filter).query(sql, params)

    @cached_property
    def sample_hashes(self) -> pa.Table:
        """``id``, ``key``, ``content_hash``, ``split`` of every sample, in key order."""
        return self.sql("SELECT id, key, content_hash, split FROM samples ORDER BY key")

    def image_bytes(self, content_hash: str) -> bytes:
        return self.ws.blobs.read(content_hash)

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """Compute a shared input once per context (e.g. ``"embeddings:builtin"``)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def close(self) -> None:
        for r in self._readers.values():
            r.con.close()
        self._readers.clear()

    def __enter__(self) -> QualityContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
