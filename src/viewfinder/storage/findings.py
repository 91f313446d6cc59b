"""The per-dataset findings table: what detectors found, per version.

One Lance table ``findings.lance`` beside the dataset's ``samples`` and ``labels``
(:data:`~viewfinder.storage.schema.FINDINGS` rows). Unlike those tables it is not
pinned per version: every row names its ``version_id``, and a version's findings are the
rows that name it. A scan replaces the findings of the detectors it ran on that version,
in one Lance commit (readers see the old rows or the new ones, never neither), and leaves
every other version's and detector's rows alone.

Findings are derived data: they can always be recomputed from the immutable version, so
they live outside the catalog's version record and a rescan may change them.

Example:
    >>> replace(ws, dataset, version.id, ["exact_duplicates"], table)   # doctest: +SKIP
    >>> read(ws, dataset, version.id, kind="exact_duplicate").num_rows  # doctest: +SKIP
    4
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import pyarrow as pa

from viewfinder.errors import StorageError
from viewfinder.storage.schema import FINDINGS as FINDINGS_SCHEMA
from viewfinder.storage.tables import DatasetTables, _lance

if TYPE_CHECKING:
    import lance

    from viewfinder.storage.catalog import DatasetRecord
    from viewfinder.storage.workspace import Workspace

TABLE = "findings"
KEEP_VERSIONS_FOR = timedelta(hours=1)
"""Old versions of the findings table stay this long (a reader that opened one keeps
reading it), then a scan removes them."""
log = logging.getLogger(__name__)


def _uri(tables: DatasetTables) -> str:
    return tables.uri(TABLE)


def _open(tables: DatasetTables) -> lance.LanceDataset | None:
    """The findings table, or None before the dataset's first scan."""
    try:
        return _lance().dataset(_uri(tables), storage_options=tables.storage_options)
    except ValueError as e:
        if "not found" in str(e).lower():
            return None
        raise StorageError(f"cannot open the findings table {_uri(tables)}: {e}") from e
    except OSError as e:
        raise StorageError(f"cannot open the findings table {_uri(tables)}: {e}") from e


def _sql_string(value: str) -> str:
    """A SQL string literal (Lance's delete predicates take SQL text, not parameters)."""
    return "'" + value.replace("'", "''") + "'"


def replace(ws: Workspace, dataset: DatasetRecord, version_id: str, detectors: list[str],
            table: pa.Table) -> int:
    """Make ``table`` the findings of ``detectors`` on ``version_id``.

    Rows of other versions, and of detectors not in ``detectors``, are kept. Rows of the
    named detectors on this version that are not in ``table`` are removed, in the same
    commit as the new rows are added (a Lance merge-insert keyed on the whole row:
    unchanged findings stay, everything else in scope is replaced).

    Args:
        ws: the open workspace.
        dataset: the dataset whose findings table to write.
        version_id: the version the findings describe.
        detectors: the detectors that ran (their old findings on this version go).
        table: :data:`FINDINGS_SCHEMA` rows, all of ``version_id`` and of ``detectors``.

    Returns:
        The number of findings stored for these detectors on this version.

    Raises:
        InvalidInput: a row names another version or a detector not in ``detectors``.
        StorageError: the table cannot be written.
    """
    from viewfinder.errors import InvalidInput

    data = table.select(FINDINGS_SCHEMA.names).cast(FINDINGS_SCHEMA)
    if data.num_rows:
        import pyarrow.compute as pc

        other_versions = set(pc.unique(data.column("version_id")).to_pylist()) - {version_id}
        if other_versions:
            raise InvalidInput(f"findings to store for version {version_id} of dataset "
                               f"{dataset.name!r} hold rows of version(s) "
                               f"{', '.join(sorted(other_versions))}")
        stray = set(pc.unique(data.column("detector")).to_pylist()) - set(detectors)
        if stray:
            raise InvalidInput(f"findings to store for detector(s) {', '.join(detectors) or 'none'} "
                               f"of dataset {dataset.name!r} hold rows of detector(s) "
                               f"{', '.join(sorted(stray))}")
        data = data.group_by(FINDINGS_SCHEMA.names, use_threads=False).aggregate([]) \
            .select(FINDINGS_SCHEMA.names).cast(FINDINGS_SCHEMA)  # identical rows say nothing more
    if not detectors:
        return 0
    tables = ws.tables(dataset)
    scope = (f"version_id = {_sql_string(version_id)} AND detector IN "
             f"({', '.join(_sql_string(d) for d in detectors)})")
    with ws.catalog.dataset_lock(dataset.id):  # one writer per dataset at a time
        try:
            ds = _open(tables)
            if ds is None:
                _lance().write_dataset(data, _uri(tables), mode="create",
                                       storage_options=tables.storage_options)
            else:
                (ds.merge_insert(FINDINGS_SCHEMA.names)
                 .when_not_matched_insert_all()
                 .when_not_matched_by_source_delete(scope)
                 .execute(data))
        except (OSError, ValueError, RuntimeError) as e:
            raise StorageError(f"cannot write the findings table {_uri(tables)}: {e}") from e
        _prune(tables)
    return data.num_rows


def _prune(tables: DatasetTables) -> None:
    """Drop table versions older than :data:`KEEP_VERSIONS_FOR` (no catalog version points
    at them: findings are read at the newest), so storage follows the live findings, not
    the number of scans. A failure only leaves old files behind."""
    ds = _open(tables)
    if ds is None:
        return
    try:
        ds.cleanup_old_versions(older_than=KEEP_VERSIONS_FOR)
    except (OSError, ValueError, RuntimeError) as e:
        log.warning("findings table %s: old versions not removed: %s", _uri(tables), e)


def read(ws: Workspace, dataset: DatasetRecord, version_id: str, kind: str | None = None,
         detector: str | None = None) -> pa.Table:
    """The findings of one version (optionally of one kind or detector).

    Returns:
        :data:`FINDINGS_SCHEMA` rows in a fixed order (detector, kind, score descending,
        sample, label); an empty table when the version was never scanned.
    """
    import pyarrow.compute as pc

    ds = _open(ws.tables(dataset))
    if ds is None:
        return FINDINGS_SCHEMA.empty_table()
    expr = pc.field("version_id") == version_id
    if kind is not None:
        expr = expr & (pc.field("kind") == kind)
    if detector is not None:
        expr = expr & (pc.field("detector") == detector)
    try:
        rows = ds.to_table(columns=FINDINGS_SCHEMA.names, filter=expr)
    except (OSError, ValueError, RuntimeError) as e:
        raise StorageError(f"cannot read the findings table {_uri(ws.tables(dataset))}: {e}") from e
    rows = rows.cast(FINDINGS_SCHEMA)
    return rows.sort_by([("detector", "ascending"), ("kind", "ascending"),
                         ("score", "descending"), ("sample_id", "ascending"),
                         ("label_id", "ascending")])
