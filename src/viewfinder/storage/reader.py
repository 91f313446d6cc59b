"""Read one dataset version with DuckDB: the relations ``samples``, ``labels`` and
``findings``, and ``{m}``, the samples matching a filter."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from viewfinder.storage import duck, query_cache
from viewfinder.storage.catalog import DatasetAt
from viewfinder.storage.query import compile_filter
from viewfinder.storage.schema import GROUND_TRUTH_SQL
from viewfinder.storage.workspace import Workspace

_NAMES_FINDINGS = re.compile(r"\bfindings\b")
"""SQL naming the ``findings`` relation (filters on ``finding.`` fields compile to it)."""


class VersionReader:
    """DuckDB over one version's ``samples``, ``labels`` and ``findings``; in :meth:`query`,
    ``{m}`` stands for the samples matching the filter. Use as a context manager.

    ``cached=True`` (read-only questions: counts, stats, pages) reads the version's query
    cache when it is large enough to have one; its ``labels`` then hold only the filter
    columns (see ``storage.query_cache``).

    ``findings`` (this version's rows of ``storage.findings``; empty before a scan) is
    registered on the first :meth:`query` that names it, so readers that never look at
    findings never open their table.
    """

    def __init__(self, ws: Workspace, at: DatasetAt, filter: str | None = None, *,
                 cached: bool = False) -> None:
        self.ws = ws
        self.tables = ws.tables(at.dataset)
        self.at = at
        con = query_cache.connect(ws, at.dataset, at.version) if cached else None
        self.cached = con is not None
        self.filter = compile_filter(filter, join="rank" if self.cached else "id")
        self.con = con or duck.connect(
            samples=self.tables.open("samples", at.version.samples_table_version),
            labels=self.tables.open("labels", at.version.labels_table_version))
        self._matched_sql = f"(SELECT s.* FROM samples AS s WHERE {self.filter.where})"
        self.join = ("_sample_rank", "_rank") if self.cached else ("sample_id", "id")
        self._findings_registered = False

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run ``sql`` where ``{m}`` stands for the matching samples."""
        user = list(params or [])
        bound: list[Any] = []
        for token in re.findall(r"\{m\}|\?", sql):  # bind in textual order
            bound.extend(self.filter.params if token == "{m}" else [user.pop(0)])
        sql = sql.replace("{m}", self._matched_sql)
        if not self._findings_registered and _NAMES_FINDINGS.search(sql):
            self.register_findings()
        return duck.query(self.con, sql, bound)

    def register_findings(self) -> None:
        """Register ``findings``: this version's findings (filters join them to samples by
        id, in the query cache too: they are not part of the immutable copy)."""
        from viewfinder.storage import findings as stored

        self.con.register("findings", stored.read(self.ws, self.at.dataset, self.at.version.id))
        self._findings_registered = True

    def __enter__(self) -> VersionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()


def label_order(r: dict[str, Any]) -> tuple[Any, ...]:
    """Labels in their source order where the format numbered them, then by id."""
    sid = r.get("source_id")
    numeric = sid is not None and sid.isdigit()
    return (0 if numeric else 1, int(sid) if numeric else 0, sid or "", r["id"])


def samples_with_labels(ws: Workspace, at: DatasetAt, filter: str | None = None, *,
                        ground_truth: bool = True,
                        ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Matching sample rows in key order, each with its label rows in a fixed order.

    With ``ground_truth`` (the default: what exports and training read) the labels are the
    ground truth only, without model predictions.
    """
    with VersionReader(ws, at, filter) as r:
        samples = r.query("SELECT * FROM {m} ORDER BY key")
        r.con.register("ids", pa.table({"sid": samples.column("id")}))
        labels = duck.query(r.con, "SELECT l.* FROM labels l SEMI JOIN ids ON l.sample_id = ids.sid"
                            + (f" WHERE {GROUND_TRUTH_SQL}" if ground_truth else ""))
    by: dict[str, list[dict[str, Any]]] = {}
    for lab in labels.to_pylist():
        by.setdefault(lab["sample_id"], []).append(lab)
    return [(s, sorted(by.get(s["id"], []), key=label_order)) for s in samples.to_pylist()]
