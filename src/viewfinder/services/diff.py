"""Diff two versions, and merge one ref into a branch (three-way, by sample and label id).

A diff is a join of the two versions of each table on ``id`` comparing ``row_hash``:
same id with another hash is *changed*, never removed + added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from viewfinder.errors import ConflictError, MergeConflict, MergeConflictDetail
from viewfinder.services import versions as vs
from viewfinder.storage import duck
from viewfinder.storage.catalog import VersionRecord
from viewfinder.storage.tables import DatasetTables, TableChange
from viewfinder.storage.workspace import Workspace

TABLE_VERSION = {"samples": "samples_table_version", "labels": "labels_table_version"}


@dataclass
class TableDiff:
    added: list[str]
    removed: list[str]
    changed: list[str]

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "removed": len(self.removed), "changed": len(self.changed)}


@dataclass
class Diff:
    dataset: str
    a: VersionRecord
    b: VersionRecord
    samples: TableDiff
    labels: TableDiff
    classes: dict[str, dict[str, int]]

    def to_dict(self, ids: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset": self.dataset, "a": self.a.id, "b": self.b.id,
            "samples": self.samples.counts(), "labels": self.labels.counts(),
            "classes": self.classes,
        }
        if ids:
            out["ids"] = {t: {"added": d.added, "removed": d.removed, "changed": d.changed}
                          for t, d in (("samples", self.samples), ("labels", self.labels))}
        return out


def _empty_changes() -> pa.Table:
    return pa.table({"id": pa.array([], pa.string()), "change": pa.array([], pa.string()),
                     "row_hash": pa.array([], pa.string())})


def table_changes(tables: DatasetTables, table: str, a: VersionRecord, b: VersionRecord,
                  *, a_is_ancestor: bool = False) -> pa.Table:
    """Rows ``(id, change, row_hash)`` for ids that differ from ``a`` to ``b``
    (``row_hash`` is b's, null when removed), sorted by id.

    When ``a`` is an ancestor of ``b``, every row written since ``a`` carries a newer Lance
    version, so only those rows are read (cost proportional to the change); otherwise the
    two versions are joined on ``id``.
    """
    va, vb = getattr(a, TABLE_VERSION[table]), getattr(b, TABLE_VERSION[table])
    if va == vb:
        return _empty_changes()
    if a_is_ancestor and vb > va:
        return _changes_since(tables.open(table, va), tables.open(table, vb), va)
    con = duck.connect(ta=tables.open(table, va), tb=tables.open(table, vb))
    out = duck.query(con, """
        SELECT coalesce(b.id, a.id) AS id,
               CASE WHEN a.id IS NULL THEN 'added' WHEN b.id IS NULL THEN 'removed'
                    ELSE 'changed' END AS change,
               b.row_hash AS row_hash
        FROM (SELECT id, row_hash FROM ta) a FULL OUTER JOIN (SELECT id, row_hash FROM tb) b
          ON a.id = b.id
        WHERE a.id IS NULL OR b.id IS NULL OR a.row_hash <> b.row_hash
        ORDER BY 1""")
    con.close()
    return out


def _changes_since(ds_a: Any, ds_b: Any, va: int) -> pa.Table:
    """The fast path of :func:`table_changes` for a descendant ``ds_b`` of ``ds_a``."""
    import numpy as np

    written = ds_b.to_table(columns=["id", "row_hash", "_rowid", "_row_created_at_version"],
                            filter=f"_row_last_updated_at_version > {int(va)}")
    created = pc.greater(written.column("_row_created_at_version"), va)
    updated = written.filter(pc.invert(created))
    new_rows = written.filter(created)
    old_hash = {}
    if updated.num_rows:
        old = ds_a._take_rows(updated.column("_rowid"), columns=["id", "row_hash"])
        old_hash = dict(zip(old.column("id").to_pylist(), old.column("row_hash").to_pylist(), strict=True))
    out: dict[str, tuple[str, str | None]] = {}
    for i, h in zip(updated.column("id").to_pylist(), updated.column("row_hash").to_pylist(), strict=True):
        if old_hash.get(i) != h:  # written again with the same content is no change
            out[i] = ("changed", h)
    removed_rows = ds_a.count_rows() - (ds_b.count_rows() - new_rows.num_rows)
    gone: dict[str, str] = {}
    if removed_rows > 0:
        ra = ds_a.to_table(columns=[], with_row_id=True).column("_rowid").to_numpy()
        rb = ds_b.to_table(columns=[], with_row_id=True).column("_rowid").to_numpy()
        lost = np.setdiff1d(ra, rb, assume_unique=True)
        old = ds_a._take_rows(pa.array(lost, pa.uint64()), columns=["id", "row_hash"])
        gone = dict(zip(old.column("id").to_pylist(), old.column("row_hash").to_pylist(), strict=True))
    for i, h in zip(new_rows.column("id").to_pylist(), new_rows.column("row_hash").to_pylist(), strict=True):
        if i in gone:  # removed and added again under the same id
            if gone.pop(i) != h:
                out[i] = ("changed", h)
        else:
            out[i] = ("added", h)
    for i in gone:
        out[i] = ("removed", None)
    ids = sorted(out)
    return pa.table({"id": pa.array(ids, pa.string()),
                     "change": pa.array([out[i][0] for i in ids], pa.string()),
                     "row_hash": pa.array([out[i][1] for i in ids], pa.string())})


def _split(t: pa.Table) -> TableDiff:
    rows = t.select(["id", "change"]).to_pydict()
    groups: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
    for i, ch in zip(rows["id"], rows["change"], strict=True):
        groups[ch].append(i)
    return TableDiff(**groups)


def diff(ws: Workspace, name: str, ref_a: str, ref_b: str) -> Diff:
    a = vs.resolve(ws, f"{name}@{ref_a}")
    b = vs.resolve(ws, f"{name}@{ref_b}")
    tables = ws.tables(a.dataset)
    fast = a.version.id in vs.ancestors(ws.catalog.all_versions(a.dataset.id), b.version.id)
    ca, cb = a.version.summary["classes"], b.version.summary["classes"]
    classes = {k: {"a": ca.get(k, 0), "b": cb.get(k, 0), "delta": cb.get(k, 0) - ca.get(k, 0)}
               for k in sorted(set(ca) | set(cb)) if ca.get(k, 0) != cb.get(k, 0)}
    return Diff(name, a.version, b.version,
                _split(table_changes(tables, "samples", a.version, b.version, a_is_ancestor=fast)),
                _split(table_changes(tables, "labels", a.version, b.version, a_is_ancestor=fast)),
                classes)


def merge(ws: Workspace, name: str, source: str, *, into: str = vs.DEFAULT_BRANCH,
          message: str | None = None, author: str | None = None) -> vs.CommitResult:
    """Three-way merge of ``source`` into branch ``into``.

    Changes made only on one side are taken. A sample or label changed on both sides to
    different content (or changed on one side and removed on the other) is a conflict:
    the merge raises :class:`MergeConflict` listing every one, and commits nothing.
    """
    src = vs.resolve(ws, f"{name}@{source}")
    dataset = src.dataset

    def build(head: VersionRecord, tables: DatasetTables) -> vs.Changes:
        allv = ws.catalog.all_versions(dataset.id)
        if src.version.id in vs.ancestors(allv, head.id):
            return vs.Changes()  # already merged
        base_id = vs.merge_base(allv, head.id, src.version.id)
        if base_id is None:  # every version descends from the dataset's first one
            raise ConflictError(f"{source} and {into} share no history", dataset=name)
        base = allv[base_id]
        changes = vs.Changes()
        conflicts: list[MergeConflictDetail] = []
        for table in ("samples", "labels"):
            ours = table_changes(tables, table, base, head, a_is_ancestor=True).to_pydict()
            theirs = table_changes(tables, table, base, src.version, a_is_ancestor=True).to_pydict()
            ours_by_id = {i: (c, h) for i, c, h in zip(ours["id"], ours["change"], ours["row_hash"], strict=True)}
            upsert_ids, delete_ids = [], []
            for i, c, h in zip(theirs["id"], theirs["change"], theirs["row_hash"], strict=True):
                if i in ours_by_id:
                    oc, oh = ours_by_id[i]
                    if oh != h:  # both removed → both None → equal
                        conflicts.append(MergeConflictDetail(table, i, oc, c))
                    continue
                (delete_ids if c == "removed" else upsert_ids).append(i)
                changes.counts[table][c] += 1
            tc = TableChange(deletes=vs.id_array(delete_ids) if delete_ids else None)
            if upsert_ids:
                ds_src = tables.open(table, getattr(src.version, TABLE_VERSION[table]))
                con = duck.connect(t=ds_src, ids=pa.table({"id": vs.id_array(upsert_ids)}))
                tc.upserts = duck.query(con, "SELECT t.* FROM t SEMI JOIN ids ON t.id = ids.id")
                con.close()
            setattr(changes, table, tc)
        if conflicts:
            raise MergeConflict(conflicts, dataset=name)
        return changes

    return vs.commit(ws, dataset, into, build,
                     message=message or f"merge {source} into {into}", author=author,
                     parents_extra=[src.version.id], operation="merge",
                     params={"source": source, "source_version": src.version.id})
