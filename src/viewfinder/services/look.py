"""Look at a dataset version: filtered samples with their labels, and statistics."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from viewfinder.services import versions as vs
from viewfinder.storage import duck
from viewfinder.storage.reader import VersionReader, label_order, samples_with_labels
from viewfinder.storage.workspace import Workspace

__all__ = ["VersionReader", "count", "samples_page", "samples_with_labels", "stats"]

def samples_page(ws: Workspace, spec: vs.Spec, filter: str | None = None, *, limit: int = 100,
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
            s["labels"] = sorted(by.get(s["id"], []), key=label_order)
    return out


def count(ws: Workspace, spec: vs.Spec, filter: str | None = None) -> int:
    at = vs.resolve(ws, spec)
    if not filter:
        return int(at.version.summary["samples"])
    with VersionReader(ws, at, filter, cached=True) as r:
        return int(r.query("SELECT count(*) AS n FROM {m}").column("n")[0].as_py())


def stats(ws: Workspace, spec: vs.Spec, filter: str | None = None) -> dict[str, Any]:
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
                              "SEMI JOIN {m} AS mm ON l.%s = mm.%s WHERE %s"
                              % (*r.join, vs.GROUND_TRUTH_SQL))
            con = duck.connect(ml=matched)
            labels = vs.label_stats(lambda sql: duck.query(con, sql).to_pylist(), "ml")
            con.close()
        base = {"samples": sum(splits.values()), "splits": splits, **labels}
    base["dataset"] = at.dataset.name
    base["version"] = at.version.id
    if filter:
        base["filter"] = filter
    return base
