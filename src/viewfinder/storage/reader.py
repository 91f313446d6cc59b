"""Read one dataset version with DuckDB: the relations ``samples``, ``labels`` and
``findings``, and ``{m}``, the samples matching a filter; and whole versions as Arrow
tables for exports (:func:`export_tables`)."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from viewfinder.core.types import GROUND_TRUTH
from viewfinder.errors import StorageError
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

    @property
    def reads_findings(self) -> bool:
        """Whether the filter reads findings (which a rescan of the version replaces)."""
        return bool(_NAMES_FINDINGS.search(self.filter.where))

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
    """Labels in their source order where the format numbered them, then by id.

    :func:`sort_labels` is the same order over columns.
    """
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


def sort_labels(labels: pa.Table) -> pa.Table:
    """``labels`` grouped by ``sample_index``, then in :func:`label_order` within a sample.

    The one difference from :func:`label_order`: only ASCII digits make a numeric source
    id here (``str.isdigit`` accepts other Unicode digits too). Numeric ids compare by
    value without parsing them (ids may exceed 64 bits): fewer digits first, then the
    digits.
    """
    import pyarrow.compute as pc

    sid = labels.column("source_id")
    numeric = pc.fill_null(pc.match_substring_regex(sid, "^[0-9]+$"), False)
    digits = pc.utf8_ltrim(sid, characters="0")
    keys = pa.table({
        "sample_index": labels.column("sample_index"),
        "text_id": pc.invert(numeric),
        "digit_count": pc.if_else(numeric, pc.utf8_length(digits), 0),
        "digits": pc.if_else(numeric, digits, ""),
        "source_id": pc.fill_null(sid, ""),
        "id": labels.column("id"),
    })
    return labels.take(pc.sort_indices(keys, sort_keys=[(c, "ascending") for c in keys.column_names]))


def export_tables(ws: Workspace, at: DatasetAt, filter: str | None = None, *,
                  ground_truth: bool = True) -> tuple[pa.Table, pa.Table]:
    """:func:`samples_with_labels` as two Arrow tables, for readers of whole versions.

    Returns ``(samples, labels)``: the matching sample rows in key order, and their label
    rows (ground truth only by default) grouped by sample in that order and in
    :func:`label_order` within a sample, with a leading ``sample_index`` column (int32,
    the sample's row in ``samples``). ``row_hash`` is left out of both.

    Without a filter the tables are read from Lance directly: DuckDB is not even loaded.

    Raises:
        StorageError: a table cannot be read.
    """
    import pyarrow.compute as pc

    tables = ws.tables(at.dataset)
    try:
        if filter is None:
            samples = tables.open("samples", at.version.samples_table_version).to_table()
            samples = samples.drop_columns(["row_hash"]).sort_by("key")
        else:
            with VersionReader(ws, at, filter) as r:
                samples = r.query("SELECT * EXCLUDE (row_hash) FROM {m} ORDER BY key")
        labels = tables.open("labels", at.version.labels_table_version).to_table()
    except (OSError, ValueError) as e:
        raise StorageError(f"cannot read {at.dataset.name}@{at.version.id[:12]}: {e}") from e
    index = pc.index_in(labels.column("sample_id"), value_set=samples.column("id"))
    keep = pc.is_valid(index)
    if ground_truth:
        keep = pc.and_(keep, pc.equal(pc.fill_null(labels.column("source"), GROUND_TRUTH),
                                      GROUND_TRUTH))
    labels = labels.drop_columns(["row_hash"])
    labels = labels.add_column(0, "sample_index", index.cast(pa.int32())).filter(keep)
    return samples, sort_labels(labels)
