"""A per-version DuckDB copy of a dataset's tables, for fast filters at scale.

Versions are immutable, so a copy never goes stale: it is keyed by version id and built
once (on first use) under ``<workspace>/cache/query/``, written to a temporary file and
renamed into place, then opened read-only by any number of processes. Samples carry
``_rank`` (their key order); labels keep only the columns filters read, plus
``_sample_rank`` and ``_rowid`` (the Lance row id, to fetch full rows such as polygons
and masks from the version itself), sorted by class so that DuckDB's row-group min/max
skip everything but the classes a filter names.

Small versions are queried straight from Lance; the copy pays off from about half a
million labels, where a full scan per query costs hundreds of milliseconds.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

from viewfinder.storage.catalog import DatasetRecord, VersionRecord
from viewfinder.storage.workspace import Workspace

log = logging.getLogger(__name__)

MIN_LABELS = 500_000
KEEP_PER_DATASET = 4
"""Copies kept on disk per dataset (the most recently built); older ones are removed."""
OPEN_MAX = 4
"""Read-only connections kept open per process (opening a copy costs ~20 ms)."""
_open: OrderedDict[str, duckdb.DuckDBPyConnection] = OrderedDict()
_lock = threading.Lock()
FILTER_LABEL_COLUMNS = ["id", "sample_id", "kind", "class_name", "x", "y", "w", "h", "area",
                        "iscrowd", "attributes", "score", "source"]


def cache_path(ws: Workspace, dataset: DatasetRecord, version: VersionRecord) -> Path:
    return ws.path / "cache" / "query" / dataset.id / f"{version.id}.duckdb"


def wanted(version: VersionRecord) -> bool:
    return int(version.summary.get("labels", 0)) >= MIN_LABELS


def build(ws: Workspace, dataset: DatasetRecord, version: VersionRecord) -> Path:
    """Build the copy for ``version`` if it is not there yet; returns its path.

    One process builds while the others (server workers asked for the same new version)
    wait for it on a lock file, then read its copy: building takes tens of seconds and
    all the CPU at a million samples, so it must not run once per process."""
    path = cache_path(ws, dataset, version)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.stem}.lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not path.exists():  # built while this process waited
                _build(ws, dataset, version, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path


def _build(ws: Workspace, dataset: DatasetRecord, version: VersionRecord, path: Path) -> None:
    started = time.perf_counter()
    log.info("building the query cache of version %s (%s labels); once per version",
             version.id, f"{version.summary.get('labels', 0):,}")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    import duckdb

    tables = ws.tables(dataset)
    con = duckdb.connect(str(tmp))
    try:
        con.register("ls", tables.open("samples", version.samples_table_version))
        con.execute("CREATE TABLE samples AS SELECT *, row_number() OVER (ORDER BY key) AS _rank FROM ls")
        con.register("ll", tables.open("labels", version.labels_table_version).to_table(
            columns=[*FILTER_LABEL_COLUMNS, "_rowid"]))
        # sorted by class: a class filter (the usual label filter) reads only its row groups
        con.execute("""CREATE TABLE labels AS SELECT l.*, s._rank AS _sample_rank
                       FROM ll l JOIN (SELECT id, _rank FROM samples) s ON l.sample_id = s.id
                       ORDER BY l.class_name, _sample_rank""")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(tmp, path)
    _prune(path.parent)
    log.info("query cache of version %s built in %.1f s", version.id, time.perf_counter() - started)


def _prune(folder: Path) -> None:
    copies = sorted(folder.glob("*.duckdb"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in copies[KEEP_PER_DATASET:]:
        old.unlink(missing_ok=True)  # an open connection keeps reading its copy
        old.with_name(f".{old.stem}.lock").unlink(missing_ok=True)


def connect(ws: Workspace, dataset: DatasetRecord, version: VersionRecord) -> duckdb.DuckDBPyConnection | None:
    """A read-only cursor on the version's copy (built if needed; the database stays open
    for the next caller), or None when the version is small enough to query in place."""
    if not wanted(version):
        return None
    import duckdb

    path = str(build(ws, dataset, version))
    with _lock:
        con = _open.get(path)
        if con is None:
            con = _open[path] = duckdb.connect(path, read_only=True)
            while len(_open) > OPEN_MAX:
                _open.popitem(last=False)[1].close()
        _open.move_to_end(path)
        return con.cursor()  # each reader gets its own cursor on the shared database
