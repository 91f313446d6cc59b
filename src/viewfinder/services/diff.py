"""Diff two versions, and merge one ref into a branch (three-way, by sample and label id).

A diff is a join of the two versions of each table on ``id`` comparing ``row_hash``:
same id with another hash is *changed*, never removed + added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from viewfinder.errors import MergeConflict, MergeConflictDetail
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


def table_changes(tables: DatasetTables, table: str, a: VersionRecord, b: VersionRecord) -> pa.Table:
    """Rows ``(id, change, row_hash)`` for ids that differ from ``a`` to ``b``
    (``row_hash`` is b's, null when removed)."""
    va, vb = getattr(a, TABLE_VERSION[table]), getattr(b, TABLE_VERSION[table])
    if va == vb:
        return pa.table({"id": pa.array([], pa.string()), "change": pa.array([], pa.string()),
                         "row_hash": pa.array([], pa.string())})
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
    ca, cb = a.version.summary["classes"], b.version.summary["classes"]
    classes = {k: {"a": ca.get(k, 0), "b": cb.get(k, 0), "delta": cb.get(k, 0) - ca.get(k, 0)}
               for k in sorted(set(ca) | set(cb)) if ca.get(k, 0) != cb.get(k, 0)}
    return Diff(name, a.version, b.version,
                _split(table_changes(tables, "samples", a.version, b.version)),
                _split(table_changes(tables, "labels", a.version, b.version)), classes)


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
        base = allv[base_id] if base_id else None
        changes = vs.Changes()
        conflicts: list[MergeConflictDetail] = []
        for table in ("samples", "labels"):
            if base is None:
                raise MergeConflict([], dataset=name)
            ours = table_changes(tables, table, base, head).to_pydict()
            theirs = table_changes(tables, table, base, src.version).to_pydict()
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
                     parents_extra=[src.version.id])
