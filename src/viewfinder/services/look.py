"""Look at a dataset version: filtered samples with their labels, and statistics."""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

from viewfinder.services import versions as vs
from viewfinder.storage import duck, query_cache
from viewfinder.storage.query import compile_filter
from viewfinder.storage.workspace import Workspace


class VersionReader:
    """DuckDB over one version's ``samples`` and ``labels``; in :meth:`query`, ``{m}``
    stands for the samples matching the filter. Use as a context manager.

    ``cached=True`` (read-only questions: counts, stats, pages) reads the version's query
    cache when it is large enough to have one; its ``labels`` then hold only the filter
    columns (see ``storage.query_cache``).
    """

    def __init__(self, ws: Workspace, at: vs.DatasetAt, filter: str | None = None, *,
                 cached: bool = False) -> None:
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

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run ``sql`` where ``{m}`` stands for the matching samples."""
        user = list(params or [])
        bound: list[Any] = []
        for token in re.findall(r"\{m\}|\?", sql):  # bind in textual order
            bound.extend(self.filter.params if token == "{m}" else [user.pop(0)])
        return duck.query(self.con, sql.replace("{m}", self._matched_sql), bound)

    def __enter__(self) -> VersionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()


def samples_page(ws: Workspace, spec: str, filter: str | None = None, *, limit: int = 100,
                 offset: int = 0, with_labels: bool = True) -> list[dict[str, Any]]:
    """One page of matching samples (by key order), each with its labels."""
    at = vs.resolve(ws, spec)
    with VersionReader(ws, at, filter, cached=True) as r:
        order = "_rank" if r.cached else "key"  # the rank is the key order
        page = r.query(f"SELECT * EXCLUDE (row_hash) FROM {{m}} ORDER BY {order} LIMIT ? OFFSET ?",
                       [int(limit), int(offset)])
        if with_labels and page.num_rows:
            if r.cached:  # row ids from the copy, full rows (polygons, masks) from Lance
                ranks = page.column("_rank").to_pylist()
                r.con.register("page_ranks", pa.table({"r": pa.array(ranks, pa.int64())}))
                rowids = duck.query(r.con, """SELECT _rowid FROM labels
                    WHERE _sample_rank BETWEEN ? AND ? AND _sample_rank IN (SELECT r FROM page_ranks)""",
                                    [min(ranks), max(ranks)]).column("_rowid")
                labels = r.tables.open("labels", at.version.labels_table_version)._take_rows(
                    rowids).drop_columns(["row_hash"])
                page = page.drop_columns(["_rank"])
            else:
                r.con.register("page_ids", pa.table({"sid": page.column("id")}))
                labels = duck.query(r.con, """SELECT l.* EXCLUDE (row_hash) FROM labels l
                    SEMI JOIN page_ids p ON l.sample_id = p.sid""")
        else:
            labels = None
    out = page.to_pylist()
    by: dict[str, list[dict[str, Any]]] = {}
    for lab in (labels.to_pylist() if labels is not None else []):
        lab["attributes"] = json.loads(lab["attributes"] or "{}")
        lab["mask"] = json.loads(lab["mask"]) if lab["mask"] else None
        by.setdefault(lab["sample_id"], []).append(lab)
    for s in out:
        s["metadata"] = json.loads(s["metadata"] or "{}")
        if with_labels:
            s["labels"] = sorted(by.get(s["id"], []), key=_label_order)
    return out


def count(ws: Workspace, spec: str, filter: str | None = None) -> int:
    at = vs.resolve(ws, spec)
    if not filter:
        return int(at.version.summary["samples"])
    with VersionReader(ws, at, filter, cached=True) as r:
        return int(r.query("SELECT count(*) AS n FROM {m}").column("n")[0].as_py())


def stats(ws: Workspace, spec: str, filter: str | None = None) -> dict[str, Any]:
    """Samples, labels, per-class and per-split counts, and the box-size distribution.

    Without a filter everything comes from the version's stored summary (no scan).
    """
    at = vs.resolve(ws, spec)
    if not filter and "box_sizes" in at.version.summary:
        base = dict(at.version.summary)
    else:
        with VersionReader(ws, at, filter, cached=True) as r:
            splits = {x["k"]: x["n"] for x in r.query(
                "SELECT coalesce(split, ?) AS k, count(*) AS n FROM {m} GROUP BY 1 ORDER BY 1",
                [vs.NO_SPLIT]).to_pylist()}
            # the matching samples' labels, fetched once (one scan), then counted in memory
            matched = r.query("SELECT l.class_name, l.area, l.w, l.h FROM labels l "
                              "SEMI JOIN {m} AS mm ON l.%s = mm.%s" % r.join)
            con = duck.connect(ml=matched)
            labels = vs.label_stats(lambda sql: duck.query(con, sql).to_pylist(), "ml")
            con.close()
        base = {"samples": sum(splits.values()), "splits": splits, **labels}
    base["dataset"] = at.dataset.name
    base["version"] = at.version.id
    if filter:
        base["filter"] = filter
    return base


def _label_order(r: dict[str, Any]) -> tuple[Any, ...]:
    """Labels in their source order where the format numbered them, then by id."""
    sid = r.get("source_id")
    numeric = sid is not None and sid.isdigit()
    return (0 if numeric else 1, int(sid) if numeric else 0, sid or "", r["id"])


def samples_with_labels(ws: Workspace, at: vs.DatasetAt, filter: str | None = None,
                        ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Matching sample rows in key order, each with its label rows in a fixed order."""
    with VersionReader(ws, at, filter) as r:
        samples = r.query("SELECT * FROM {m} ORDER BY key")
        r.con.register("ids", pa.table({"sid": samples.column("id")}))
        labels = duck.query(r.con, "SELECT l.* FROM labels l SEMI JOIN ids ON l.sample_id = ids.sid")
    by: dict[str, list[dict[str, Any]]] = {}
    for lab in labels.to_pylist():
        by.setdefault(lab["sample_id"], []).append(lab)
    return [(s, sorted(by.get(s["id"], []), key=_label_order)) for s in samples.to_pylist()]
