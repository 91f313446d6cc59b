"""Look at a dataset version: filtered samples with their labels, and statistics."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import pyarrow as pa

from viewfinder.services import versions as vs
from viewfinder.storage import duck
from viewfinder.storage.reader import (
    VersionReader,
    label_order,
    samples_with_labels,
)
from viewfinder.storage.workspace import Workspace

__all__ = ["VersionReader", "count", "samples_page", "samples_with_labels", "stats"]

class _MatchCache:
    """Per process: the sorted ranks of the samples a filter matches in a version, so that
    the next pages of the same grid are slices instead of new scans.

    Always correct without invalidation: a version never changes, and the key holds the
    whole filter (a principal's slice is part of it). Filters on findings are not kept
    (a rescan replaces a version's findings). Bounded by bytes, least recently used out.
    """

    def __init__(self, max_bytes: int, max_entries: int) -> None:
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self._entries: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def get(self, key: tuple[str, str, str]) -> np.ndarray | None:
        with self._lock:
            ranks = self._entries.get(key)
            if ranks is not None:
                self._entries.move_to_end(key)
            return ranks

    def put(self, key: tuple[str, str, str], ranks: np.ndarray) -> None:
        if ranks.nbytes > self.max_bytes // 4:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = ranks
            self._bytes += ranks.nbytes
            while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
                self._bytes -= self._entries.popitem(last=False)[1].nbytes


FILTERED_EXACT_QUANTILES_UP_TO = 200_000
"""Stats under a filter are for looking: box-size percentiles are exact up to this many
labels, then from a repeatable sample of about as many (4x faster at a million labels)."""
MATCH_CACHE_BYTES = 256 * 1024 * 1024  # a filter matching 1M samples takes 8 MB
MATCH_CACHE_ENTRIES = 1024
_matches = _MatchCache(MATCH_CACHE_BYTES, MATCH_CACHE_ENTRIES)


def forget_matches() -> None:
    """Empty this process's match cache (benchmarks time the filters themselves)."""
    _matches.clear()


def _matching_ranks(r: VersionReader, filter: str | None) -> np.ndarray | None:
    """The sorted ``_rank`` of every matching sample (from the query cache), or None when
    the reader has no query cache or the filter reads findings."""
    if not r.cached or r.reads_findings:
        return None
    key = (r.at.dataset.id, r.at.version.id, filter or "")
    ranks = _matches.get(key)
    if ranks is None:
        ranks = r.query("SELECT _rank FROM {m} ORDER BY _rank").column(0).to_numpy()
        _matches.put(key, ranks)
    return ranks


def samples_page(ws: Workspace, spec: vs.Spec, filter: str | None = None, *, limit: int = 100,
                 offset: int = 0, with_labels: bool = True) -> list[dict[str, Any]]:
    """One page of matching samples (by key order), each with its labels.

    At scale (a version with a query cache) the filter runs once per process and version;
    later pages under the same filter read only their own rows."""
    at = vs.resolve(ws, spec)
    with VersionReader(ws, at, filter, cached=True) as r:
        matched = _matching_ranks(r, filter)
        if matched is not None:
            want = matched[int(offset):int(offset) + int(limit)]
            r.con.register("want_ranks", pa.table({"r": pa.array(want, pa.int64())}))
            page = duck.query(r.con, """SELECT * EXCLUDE (row_hash) FROM samples
                WHERE _rank BETWEEN ? AND ? AND _rank IN (SELECT r FROM want_ranks) ORDER BY _rank""",
                              [int(want[0]), int(want[-1])]) if len(want) else None
        else:
            order = "_rank" if r.cached else "key"  # the rank is the key order
            page = r.query(f"SELECT * EXCLUDE (row_hash) FROM {{m}} ORDER BY {order} LIMIT ? OFFSET ?",
                           [int(limit), int(offset)])
        if page is None:
            return []
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
        a = lab["attributes"]
        lab["attributes"] = json.loads(a) if a and a != "{}" else {}  # "{}": most labels
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
        ranks = _matching_ranks(r, filter)
        if ranks is not None:
            return len(ranks)
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
            labels = vs.label_stats(lambda sql: duck.query(con, sql).to_pylist(), "ml",
                                    exact_up_to=FILTERED_EXACT_QUANTILES_UP_TO)
            con.close()
        base = {"samples": sum(splits.values()), "splits": splits, **labels}
    base["dataset"] = at.dataset.name
    base["version"] = at.version.id
    if filter:
        base["filter"] = filter
    return base
