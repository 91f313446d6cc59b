"""Per-dataset Lance tables (``samples``, ``labels``) and their write path.

Each table has one linear Lance history. A Viewfinder version records the Lance version
of each table; a commit on a branch whose head is not the newest Lance version first
restores that version (a manifest-only operation, no data copied) and applies the change
on top. So every branch's versions live in one Lance history, unchanged data is shared by
all of them, and a commit writes only what changed. Callers hold the dataset's catalog
lock while writing (see ``Catalog.dataset_lock``).

Lance versions that no catalog version points to (a crash between the table write and the
catalog commit) are orphans, invisible to users.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from viewfinder.errors import StorageError
from viewfinder.storage import schema

if TYPE_CHECKING:
    import lance


def _lance() -> Any:
    """Lance, imported on first use (it pulls in pandas: ~0.3 s of start-up)."""
    import lance

    return lance


TABLE_SCHEMAS: dict[str, pa.Schema] = {"samples": schema.SAMPLES, "labels": schema.LABELS}
OPENED_MAX = 32
"""Opened table versions kept per process (see :meth:`DatasetTables.open`)."""

ROWS_PER_FILE = 262_144
"""Rows per Lance data file when a table is first filled. Lance encodes a whole file in
memory before writing it: at its default of 1M rows, the first import of a million
labels held another 180 MB for that; at 256k rows, 90 MB."""
_opened: OrderedDict[tuple[str, int], Any] = OrderedDict()
_opened_lock = threading.Lock()


@dataclass
class TableChange:
    """Rows to insert or replace (by ``id``) and ids to delete, for one table."""

    upserts: pa.Table | None = None
    deletes: pa.Array | None = None

    @property
    def empty(self) -> bool:
        return (self.upserts is None or self.upserts.num_rows == 0) and (
            self.deletes is None or len(self.deletes) == 0)


class DatasetTables:
    """The Lance tables of one dataset, under ``{store}/datasets/{dataset_id}/``."""

    def __init__(self, store_root: str, dataset_id: str,
                 storage_options: dict[str, str] | None = None) -> None:
        self.base = f"{store_root.rstrip('/')}/datasets/{dataset_id}"
        self.storage_options = storage_options or None

    def uri(self, table: str) -> str:
        return f"{self.base}/{table}.lance"

    def create(self) -> dict[str, int]:
        """Create empty tables; returns their Lance versions (the empty root state)."""
        out = {}
        for name, sch in TABLE_SCHEMAS.items():
            try:
                ds = _lance().write_dataset(sch.empty_table(), self.uri(name), mode="create",
                                         enable_stable_row_ids=True,
                                         storage_options=self.storage_options)
            except (OSError, ValueError) as e:
                raise StorageError(f"cannot create table {name}: {e}") from e
            out[name] = ds.version
        return out

    def open(self, table: str, version: int) -> lance.LanceDataset:
        """The table at ``version``. A Lance version never changes, so the opened dataset
        is kept (per process, the most recently used few): reading a manifest costs
        milliseconds, which every grid page and sample detail would pay again."""
        key = (self.uri(table), int(version))
        with _opened_lock:
            ds = _opened.get(key)
            if ds is not None:
                _opened.move_to_end(key)
                return ds
        try:
            ds = _lance().dataset(key[0], version=version, storage_options=self.storage_options)
        except (OSError, ValueError) as e:
            raise StorageError(f"cannot open table {table} at version {version}: {e}") from e
        with _opened_lock:
            _opened[key] = ds
            while len(_opened) > OPENED_MAX:
                _opened.popitem(last=False)
        return ds

    def read(self, table: str, version: int, columns: list[str] | None = None,
             filter: str | None = None) -> pa.Table:
        return self.open(table, version).to_table(columns=columns, filter=filter)

    def apply(self, table: str, base_version: int, change: TableChange) -> int:
        """Apply ``change`` on top of ``base_version``; returns the new Lance version."""
        if change.empty:
            return base_version
        try:
            lance = _lance()
            ds = lance.dataset(self.uri(table), storage_options=self.storage_options)
            if ds.version != base_version:
                ds.checkout_version(base_version).restore()
                ds = lance.dataset(self.uri(table), storage_options=self.storage_options)
            if change.deletes is not None and len(change.deletes):
                ids = pa.table({"id": pa.array(change.deletes, pa.string())})
                ds.merge_insert("id").when_matched_delete().execute(ids)
                ds = lance.dataset(self.uri(table), storage_options=self.storage_options)
            if change.upserts is not None and change.upserts.num_rows:
                data = change.upserts.select(TABLE_SCHEMAS[table].names).cast(TABLE_SCHEMAS[table])
                if ds.count_rows() == 0:  # first fill: nothing to match, append is faster
                    ds = lance.write_dataset(data, self.uri(table), mode="append",
                                             max_rows_per_file=ROWS_PER_FILE,
                                             storage_options=self.storage_options)
                else:
                    (ds.merge_insert("id").when_matched_update_all()
                     .when_not_matched_insert_all().execute(data))
                    ds = lance.dataset(self.uri(table), storage_options=self.storage_options)
            return int(ds.version)
        except (OSError, ValueError, RuntimeError) as e:
            raise StorageError(f"cannot write table {table}: {e}") from e
