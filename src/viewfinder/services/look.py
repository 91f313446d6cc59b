"""Look at a dataset version: filtered samples with their labels, and statistics."""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

from viewfinder.services import versions as vs
from viewfinder.storage import duck
from viewfinder.storage.query import compile_filter
from viewfinder.storage.workspace import Workspace

BOX_SIZE_BUCKETS = (("small", 0, 32**2), ("medium", 32**2, 96**2), ("large", 96**2, None))
"""COCO's object-size buckets, by area in pixels."""


class VersionReader:
    """DuckDB over one version's ``samples`` and ``labels``; in :meth:`query`, ``{m}``
    stands for the samples matching the filter. Use as a context manager."""

    def __init__(self, ws: Workspace, at: vs.DatasetAt, filter: str | None = None) -> None:
        tables = ws.tables(at.dataset)
        self.at = at
        self.filter = compile_filter(filter)
        self.con = duck.connect(samples=tables.open("samples", at.version.samples_table_version),
                                labels=tables.open("labels", at.version.labels_table_version))
        self._matched_sql = f"(SELECT s.* FROM samples AS s WHERE {self.filter.where})"

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
    with VersionReader(ws, at, filter) as r:
        page = r.query("SELECT * EXCLUDE (row_hash) FROM {m} ORDER BY key LIMIT ? OFFSET ?",
                       [int(limit), int(offset)])
        out = page.to_pylist()
        if with_labels and out:
            ids = pa.table({"sid": page.column("id")})
            r.con.register("page_ids", ids)
            labs = duck.query(r.con, """SELECT l.* EXCLUDE (row_hash) FROM labels l
                SEMI JOIN page_ids p ON l.sample_id = p.sid ORDER BY l.sample_id, l.id""").to_pylist()
            by: dict[str, list[dict[str, Any]]] = {}
            for lab in labs:
                lab["attributes"] = json.loads(lab["attributes"] or "{}")
                lab["mask"] = json.loads(lab["mask"]) if lab["mask"] else None
                by.setdefault(lab["sample_id"], []).append(lab)
            for s in out:
                s["metadata"] = json.loads(s["metadata"] or "{}")
                s["labels"] = by.get(s["id"], [])
        return out


def count(ws: Workspace, spec: str, filter: str | None = None) -> int:
    at = vs.resolve(ws, spec)
    if not filter:
        return int(at.version.summary["samples"])
    with VersionReader(ws, at, filter) as r:
        return int(r.query("SELECT count(*) AS n FROM {m}").column("n")[0].as_py())


def stats(ws: Workspace, spec: str, filter: str | None = None) -> dict[str, Any]:
    """Samples, labels, per-class and per-split counts, and the box-size distribution.

    Without a filter the counts come from the version's stored summary.
    """
    at = vs.resolve(ws, spec)
    with VersionReader(ws, at, filter) as r:
        if filter:
            splits = {x["k"]: x["n"] for x in r.query(
                "SELECT coalesce(split, ?) AS k, count(*) AS n FROM {m} GROUP BY 1 ORDER BY 1",
                [vs.NO_SPLIT]).to_pylist()}
            classes = {x["k"]: x["n"] for x in r.query(
                "SELECT l.class_name AS k, count(*) AS n FROM labels l SEMI JOIN {m} AS mm "
                "ON l.sample_id = mm.id GROUP BY 1 ORDER BY 1").to_pylist()}
            base = {"samples": sum(splits.values()), "labels": sum(classes.values()),
                    "classes": classes, "splits": splits}
            label_src = "(SELECT l.* FROM labels l SEMI JOIN {m} AS mm ON l.sample_id = mm.id)"
        else:
            base = dict(at.version.summary)
            label_src = "labels"
        sizes = r.query(f"""SELECT
              count(*) FILTER (WHERE area < 1024) AS small,
              count(*) FILTER (WHERE area >= 1024 AND area < 9216) AS medium,
              count(*) FILTER (WHERE area >= 9216) AS large,
              quantile_cont(w, [0.05, 0.25, 0.5, 0.75, 0.95]) AS w_q,
              quantile_cont(h, [0.05, 0.25, 0.5, 0.75, 0.95]) AS h_q,
              min(w) AS w_min, max(w) AS w_max, min(h) AS h_min, max(h) AS h_max
            FROM {label_src} WHERE w IS NOT NULL""").to_pylist()[0]
    q = ("p5", "p25", "p50", "p75", "p95")
    base["box_sizes"] = {
        "buckets": {"small": sizes["small"], "medium": sizes["medium"], "large": sizes["large"]},
        "width": {"min": sizes["w_min"], **dict(zip(q, sizes["w_q"] or [None] * 5, strict=True)),
                  "max": sizes["w_max"]},
        "height": {"min": sizes["h_min"], **dict(zip(q, sizes["h_q"] or [None] * 5, strict=True)),
                   "max": sizes["h_max"]},
    }
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
