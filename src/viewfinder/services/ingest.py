"""Import a source folder into a dataset as one new version.

Steps: read the annotations (format importer) → read every image in parallel (hash,
size, integrity; store the blob) → check labels against the real image sizes → build
rows → commit under the dataset lock, diffing against the branch head so that an
unchanged source creates no version. With ``on_error="fail"`` (the default) any problem
stops the import before a version exists, and the error lists every problem.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from viewfinder.core.geometry import box_iou_matrix
from viewfinder.core.memory import gc_paused
from viewfinder.core.types import LabelKind, SourceDataset, SourceLabel, SourceSample
from viewfinder.errors import ImportFailed, InvalidInput, Problem
from viewfinder.formats import registry
from viewfinder.services import versions as vs
from viewfinder.services.images import ImageInfo, process_chunk
from viewfinder.storage import duck, rows
from viewfinder.storage.catalog import VersionRecord
from viewfinder.storage.file_cache import FileCache, Identity, identity
from viewfinder.storage.tables import DatasetTables, TableChange
from viewfinder.storage.workspace import Workspace

Progress = Callable[[int, int], None]
BOX_TOLERANCE = 1.0  # pixels a box may stick out of the image (rounding in exports)
MATCH_IOU = 0.5


@dataclass
class ImportResult:
    dataset: str
    format: str
    version: VersionRecord
    created: bool
    samples: int
    labels: int
    changes: dict[str, Any]
    skipped: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "format": self.format, "version": self.version.id,
                "created": self.created, "samples": self.samples, "labels": self.labels,
                "changes": self.changes, "skipped": [p.to_dict() for p in self.skipped],
                "seconds": round(self.seconds, 3)}


def load_metadata_file(path: Path) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
    """User metadata keyed by file name, from CSV (a ``file`` column) or JSON."""
    problems: list[Problem] = []
    out: dict[str, dict[str, Any]] = {}
    name_cols = ("file", "file_name", "filename", "key", "image", "path")
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                col = next((c for c in name_cols if c in (reader.fieldnames or [])), None)
                if col is None:
                    return {}, [Problem(str(path), f"CSV needs one of the columns {', '.join(name_cols)}")]
                for i, row in enumerate(reader, start=2):
                    name = row.pop(col)
                    if not name:
                        problems.append(Problem(str(path), "empty file name", f"line {i}"))
                        continue
                    out[name] = {k: _auto_type(v) for k, v in row.items() if k}
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                items = data.items()
            elif isinstance(data, list):
                items = []
                for i, rec in enumerate(data):
                    col = next((c for c in name_cols if isinstance(rec, dict) and c in rec), None)
                    if col is None:
                        problems.append(Problem(str(path), "record has no file name", f"item {i}"))
                        continue
                    rec = dict(rec)
                    items.append((rec.pop(col), rec))
            else:
                return {}, [Problem(str(path), "metadata JSON must be an object or a list")]
            for name, rec in items:
                if not isinstance(rec, dict):
                    problems.append(Problem(str(path), "metadata must be an object", str(name)))
                    continue
                out[str(name)] = rec
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as e:
        problems.append(Problem(str(path), f"cannot read metadata file: {e}"))
    return out, problems


def _auto_type(v: str | None) -> Any:
    if v is None or v == "":
        return None
    for cast in (int, float):
        try:
            x = cast(v)
            return x if not (isinstance(x, float) and not math.isfinite(x)) else v
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def _worker_context() -> BaseContext:
    """``fork`` while this process has one OS thread (safe, and no re-import of the
    caller's ``__main__``); ``forkserver`` once native thread pools (DuckDB, Lance) run."""
    try:
        single = len(os.listdir("/proc/self/task")) == 1
    except OSError:
        single = False
    return get_context("fork" if single else "forkserver")


class _Scan:
    """Image reading in flight: images are handed over as the format reader finds them
    (:meth:`submit`) and read by worker processes while the reader goes on with the
    annotations; :meth:`collect` submits the rest and waits, with progress.

    The pool is forked at the first batch large enough to be worth it, while this process
    is still single-threaded when it can be (see :func:`_worker_context`).
    """

    POOL_MIN = 512      # images: fewer are read in this process
    CHUNK_MAX = 1024    # images per task: small enough to balance, large enough to be cheap

    def __init__(self, ws: Workspace, *, workers: int | None, rehash: bool = False) -> None:
        self.store, self.opts = ws.store_url, ws.fsspec_storage_options()
        self.ws = ws
        self.rehash = rehash
        self.workers = workers or min(os.cpu_count() or 1, 8)
        self.known: dict[str, tuple[ImageInfo | None, str | None]] = {}
        self.cache = FileCache(ws.path / "cache" / "files.sqlite")
        self.identities: dict[str, Identity | None] = {}
        self.submitted: set[str] = set()
        self.pending: list[tuple[str, str]] = []  # not cached, not handed to a worker yet
        self.items: list[tuple[str, str]] = []    # every image that is read (not cached)
        self.pool: ProcessPoolExecutor | None = None
        self.futures: list[Any] = []

    def submit(self, found: list[tuple[str, str]]) -> None:
        """``(key, path)`` of images found so far; each key is read once."""
        fresh = [(k, p) for k, p in found if p and k not in self.submitted]
        self.submitted.update(k for k, _ in fresh)
        todo = fresh if self.rehash else self._use_cache(fresh)
        self.items.extend(todo)
        self.pending.extend(todo)
        if self.workers > 1 and self.pending and (
                self.pool is not None or len(self.pending) >= self.POOL_MIN):
            self._dispatch()

    def _dispatch(self) -> None:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=_worker_context())
        todo, self.pending = self.pending, []
        chunk = max(64, min(self.CHUNK_MAX, len(todo) // (self.workers * 8) or 64))
        self.futures += [self.pool.submit(process_chunk, todo[i:i + chunk], self.store, self.opts)
                         for i in range(0, len(todo), chunk)]

    def _use_cache(self, found: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Take what the file cache knows for unchanged files whose blob is stored; the
        rest still has to be read."""
        cached = self.cache.lookup([path for _, path in found])
        todo = []
        for key, path in found:
            ident = self.identities[path] = identity(path)
            hit = cached.get(path)
            if hit is not None and ident is not None and hit[0] == ident and (
                    not self.ws.blobs.is_local or self.ws.blobs.exists(hit[1][0])):
                self.known[key] = (ImageInfo(*hit[1]), None)
            else:
                todo.append((key, path))
        return todo

    def collect(self, progress: Progress | None) -> dict[str, tuple[ImageInfo | None, str | None]]:
        """Wait for every submitted image (with progress; images too few for a pool are
        read here); remember what was learned; close."""
        try:
            out = self._read(progress)
            fresh = []
            for key, path in self.items:
                info = out[key][0]
                ident = self.identities.get(path) or identity(path)
                if info is not None and ident is not None:
                    fresh.append((path, ident, (info.content_hash, info.size_bytes, info.width,
                                                info.height, info.media_type, info.exif)))
            self.cache.store(fresh)
            return {**self.known, **out}
        finally:
            self.close()

    def _read(self, progress: Progress | None) -> dict[str, tuple[ImageInfo | None, str | None]]:
        out: dict[str, tuple[ImageInfo | None, str | None]] = {}
        total = len(self.items)
        local, self.pending = self.pending, []
        batches = itertools.chain((fut.result() for fut in self.futures),
                                  (process_chunk(local[i:i + 256], self.store, self.opts)
                                   for i in range(0, len(local), 256)))
        for batch in batches:
            for key, info, err in batch:
                out[key] = (info, err)
            if progress:
                progress(len(out), total)
        return out

    def close(self) -> None:
        """Stop the workers and release the file cache (safe to call twice)."""
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None
        self.cache.close()


def _size_problem(s: SourceSample, info: ImageInfo) -> Problem | None:
    """The annotation's image size against the real one (either orientation)."""
    if s.width and s.height and (s.width, s.height) not in ((info.width, info.height),
                                                            (info.height, info.width)):
        return Problem(s.key, f"annotation says {s.width}x{s.height} but the image "
                              f"is {info.width}x{info.height}")
    return None


def _label_problems(labels: pa.Table, sizes: dict[str, tuple[int, int]]) -> dict[str, list[tuple[str, str]]]:
    """Sample id → ``(record, message)`` of each problem of its label rows, in row order: a
    box that is not finite, has a negative size or lies outside its image's real size, a
    label without a class.

    Works on the plan's columns (the label objects are gone by then); only the rows found
    bad become Python objects. Rows of samples not in ``sizes`` (unreadable images) are
    not checked.
    """
    if not labels.num_rows or not sizes:
        return {}
    sid = labels.column("sample_id")
    at = pc.index_in(sid, value_set=pa.array(list(sizes), pa.string()))
    width = pc.take(pa.array([w for w, _ in sizes.values()], pa.float64()), at)
    height = pc.take(pa.array([h for _, h in sizes.values()], pa.float64()), at)
    x, y, w, h = (labels.column(n) for n in ("x", "y", "w", "h"))
    finite = pc.and_(pc.and_(pc.is_finite(x), pc.is_finite(y)), pc.and_(pc.is_finite(w), pc.is_finite(h)))
    negative = pc.or_(pc.less(w, 0), pc.less(h, 0))
    tol = BOX_TOLERANCE
    outside = pc.or_(pc.or_(pc.less(x, -tol), pc.less(y, -tol)),
                     pc.or_(pc.greater(pc.add(x, w), pc.add(width, tol)),
                            pc.greater(pc.add(y, h), pc.add(height, tol))))
    # the first of these a box fails names its problem; null where there is no box
    problem = pc.case_when(pc.make_struct(pc.invert(finite), negative, outside),
                           _NOT_FINITE, _NEGATIVE, _OUTSIDE)
    no_class = pc.equal(pc.fill_null(labels.column("class_name"), ""), "")
    bad = pc.and_(pc.is_valid(at), pc.or_(pc.is_valid(problem), no_class))
    rows_at = pc.indices_nonzero(bad)
    if not len(rows_at):
        return {}
    found = labels.select(["sample_id", "source_id", "x", "y", "w", "h"]).take(rows_at)
    found = found.append_column("problem", problem.take(rows_at)).append_column("no_class", no_class.take(rows_at))
    starts = None
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r, row in zip(rows_at.to_pylist(), found.to_pylist(), strict=True):
        source_id = row["source_id"]
        if source_id is None:  # named by its place among the sample's labels
            if starts is None:
                starts = _sample_starts(sid)
            source_id = r - starts[bisect.bisect_right(starts, r) - 1]
        rec, problems = f"label {source_id}", out[row["sample_id"]]
        bx, by, bw, bh = row["x"], row["y"], row["w"], row["h"]
        if row["problem"] == _NOT_FINITE:
            problems.append((rec, "box has non-finite coordinates"))
        elif row["problem"] == _NEGATIVE:
            problems.append((rec, f"box has negative size ({bw:g}x{bh:g})"))
        elif row["problem"] == _OUTSIDE:
            img_w, img_h = sizes[row["sample_id"]]
            problems.append((rec, f"box [{bx:g}, {by:g}, {bw:g}, {bh:g}] lies outside the {img_w}x{img_h} image"))
        if row["no_class"]:
            problems.append((rec, "label has no class"))
    return out


_NOT_FINITE, _NEGATIVE, _OUTSIDE = 1, 2, 3
"""What is wrong with a label's box, in the order the checks name it."""


def _sample_starts(sample_ids: pa.ChunkedArray) -> list[int]:
    """The first row of each sample in rows grouped by sample."""
    ids = sample_ids.combine_chunks()
    change = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))
    return [0, *(i + 1 for i in pc.indices_nonzero(change).to_pylist())]


def _assign_label_ids(sid: str, labels: list[SourceLabel], head: list[dict[str, Any]]) -> list[str]:
    """Stable label ids: from the format's ids, else matched to the head's labels by
    geometry (IoU ≥ 0.5, same class preferred), else new ids."""
    ids: list[str | None] = [None] * len(labels)
    taken: set[str] = set()
    for i, lab in enumerate(labels):
        if lab.source_id is not None:
            ids[i] = rows.short_hash("label", sid, lab.source, str(lab.source_id))
            taken.add(ids[i])
    todo = [i for i in range(len(labels)) if ids[i] is None]
    cands = [h for h in head if h["source_id"] is None and h["id"] not in taken]
    if todo and cands:
        pairs: list[tuple[float, int, int]] = []
        boxed = [i for i in todo if labels[i].bbox is not None or labels[i].kind is not LabelKind.CLASSIFICATION]
        for i in todo:
            lab = labels[i]
            for j, h in enumerate(cands):
                if h["kind"] != lab.kind.value:
                    continue
                same = 1.0 if h["class_name"] == lab.class_name else 0.0
                if lab.kind is LabelKind.CLASSIFICATION:
                    pairs.append((1.0 + same, i, j))
        if boxed:
            a = np.array([_bbox_of(labels[i]) for i in boxed], dtype=np.float64)
            hb = [j for j, h in enumerate(cands) if h["x"] is not None]
            if hb:
                b = np.array([[cands[j]["x"], cands[j]["y"], cands[j]["w"], cands[j]["h"]] for j in hb])
                m = box_iou_matrix(a, b)
                for ii, i in enumerate(boxed):
                    for jj, j in enumerate(hb):
                        if m[ii, jj] >= MATCH_IOU and cands[j]["kind"] == labels[i].kind.value:
                            same = 1.0 if cands[j]["class_name"] == labels[i].class_name else 0.0
                            pairs.append((float(m[ii, jj]) + same, i, j))
        used_i, used_j = set(), set()
        for _score, i, j in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
            if i in used_i or j in used_j:
                continue
            used_i.add(i)
            used_j.add(j)
            ids[i] = cands[j]["id"]
            taken.add(cands[j]["id"])
    n = 0
    for i in range(len(labels)):
        if ids[i] is None:
            while True:
                cand = rows.short_hash("label", sid, labels[i].source, "auto", str(n))
                n += 1
                if cand not in taken:
                    break
            ids[i] = cand
            taken.add(cand)
    return [i for i in ids if i is not None]


def _bbox_of(lab: SourceLabel) -> tuple[float, float, float, float]:
    if lab.bbox is not None:
        return lab.bbox
    r = rows.label_row(lab, label_id="", sample_id_="")
    return (r["x"] or 0.0, r["y"] or 0.0, r["w"] or 0.0, r["h"] or 0.0)


def import_source(ws: Workspace, source: str | Path, dataset: str, *, format: str = "auto",
                  split: str | None = None, mode: Literal["add", "sync"] = "add",
                  on_error: Literal["fail", "skip"] = "fail", message: str | None = None,
                  metadata: str | Path | None = None, branch: str = vs.DEFAULT_BRANCH,
                  author: str | None = None, workers: int | None = None,
                  progress: Progress | None = None, rehash: bool = False) -> ImportResult:
    """Import ``source`` into ``dataset`` (created if new) as one version on ``branch``.

    Images unchanged since an earlier import (same file identity, see
    ``storage.file_cache``) are not read again unless ``rehash``.
    """
    t0 = time.perf_counter()
    if mode not in ("add", "sync"):
        raise InvalidInput(f"mode must be 'add' or 'sync', not {mode!r}")
    if on_error not in ("fail", "skip"):
        raise InvalidInput(f"on_error must be 'fail' or 'skip', not {on_error!r}")
    vs.check_name("dataset", dataset)
    root = Path(source).resolve()
    if not root.is_dir():
        raise InvalidInput(f"source {source} is not a folder", path=str(source))
    spec = registry.detect(root) if format == "auto" else registry.get(format)
    if not spec.can_import:
        raise InvalidInput(f"format {spec.name!r} cannot be imported")
    # images are read by worker processes from the moment the reader finds them, while it
    # goes on with the annotations, and this process then builds the label rows
    scan = _Scan(ws, workers=workers, rehash=rehash)
    with gc_paused():  # no cycles are built; see core.memory
        try:
            return _import(ws, scan, spec, root, source, dataset, split=split, mode=mode,
                           on_error=on_error, message=message, metadata=metadata,
                           branch=branch, author=author, progress=progress, t0=t0)
        finally:
            scan.close()


def _import(ws: Workspace, scan: _Scan, spec: registry.FormatSpec, root: Path, source: str | Path,
            dataset: str, *, split: str | None, mode: Literal["add", "sync"],
            on_error: Literal["fail", "skip"], message: str | None, metadata: str | Path | None,
            branch: str, author: str | None, progress: Progress | None, t0: float) -> ImportResult:
    found = {"images_found": scan.submit} if spec.streams_images else {}
    try:
        src: SourceDataset = spec.load().read(root, split=split, **found)
    except (OSError, OverflowError, ValueError, RecursionError, UnicodeError, MemoryError) as e:
        # importers report bad records as problems; anything that still escapes is bad
        # input too, and must read as such, not as a crash
        raise ImportFailed([Problem(str(source), f"cannot read the {spec.name} source: "
                                                 f"{type(e).__name__}: {e}")], dataset=dataset) from e
    problems = list(src.problems)

    by_key: dict[str, SourceSample] = {}
    for s in src.samples:
        if s.key in by_key:
            problems.append(Problem(s.key, "the same image is listed twice in the source"))
            continue
        by_key[s.key] = s
    samples = list(by_key.values())

    user_meta: dict[str, dict[str, Any]] = {}
    if metadata is not None:
        user_meta, meta_problems = load_metadata_file(Path(metadata))
        problems.extend(meta_problems)

    scan.submit([(s.key, s.path) for s in samples if s.path])  # those the reader did not hand over
    # while the workers read images, build the label rows against the current head; the
    # label objects are let go as their rows are made (see _label_plan)
    sample_ids = [rows.sample_id(s.key) for s in samples]
    plan = _plan_labels(ws, dataset, branch, samples, sample_ids)
    scanned = scan.collect(progress)
    sizes: dict[str, tuple[int, int]] = {}
    for s, sid in zip(samples, sample_ids, strict=True):
        info, err = scanned[s.key] if s.path else (None, None)
        if info is not None and err is None:
            sizes[sid] = (info.width, info.height)
    by_sample = _label_problems(plan.table, sizes)
    bad_keys: set[str] = set()
    for s, sid in zip(samples, sample_ids, strict=True):
        if sid in sizes:
            size_problem = _size_problem(s, scanned[s.key][0])  # type: ignore[arg-type]
            found = [*([size_problem] if size_problem else []),
                     *(Problem(s.key, message, record) for record, message in by_sample.get(sid, ()))]
        else:  # no image: the reader has said so, or the scan says why
            found = [Problem(s.key, scanned[s.key][1] or "unreadable image")] if s.path else []
            bad_keys.add(s.key)
        if found:
            problems.extend(found)
            bad_keys.add(s.key)

    if problems and on_error == "fail":
        raise ImportFailed(problems, dataset=dataset)
    good = [(s, sid) for s, sid in zip(samples, sample_ids, strict=True) if s.key not in bad_keys]
    protected_ids = {sid for s, sid in zip(samples, sample_ids, strict=True)
                     if s.key in bad_keys}  # left as they are in sync mode
    del sizes

    infos = [scanned[s.key][0] for s, _ in good]  # sample rows as columns: no dict per sample
    meta_json = []
    for (s, _), info in zip(good, infos, strict=True):
        assert info is not None
        meta = {"exif": json.loads(info.exif)} if info.exif else {}
        meta.update(s.metadata)  # the annotation's own fields, then the user's, win
        extra = user_meta and (user_meta.get(s.key) or user_meta.get(Path(s.key).name))
        if extra:
            meta.update(extra)
        meta_json.append(rows.canonical_json(meta))
    columns: dict[str, list[Any]] = {
        "id": [sid for _, sid in good], "key": [s.key for s, _ in good],
        "content_hash": [i.content_hash for i in infos], "width": [i.width for i in infos],
        "height": [i.height for i in infos], "size_bytes": [i.size_bytes for i in infos],
        "media_type": [i.media_type for i in infos], "split": [s.split for s, _ in good],
        "tags": [[] for _ in good], "metadata": meta_json}
    new_samples = rows.samples_table(columns)
    good_ids = pa.array(columns["id"], pa.string()) if bad_keys else None
    del columns, infos, meta_json

    def good_labels(table: pa.Table) -> pa.Table:
        """Only the labels of good samples (a copy: not made when all are good)."""
        return table if good_ids is None else table.filter(pc.is_in(table.column("sample_id"), good_ids))

    planned = good_labels(plan.table)
    # the source's classes, then any other in label order (Arrow's unique keeps it)
    classes = list(dict.fromkeys([*src.classes, *pc.unique(planned.column("class_name")).to_pylist()]))
    n_labels = planned.num_rows

    def build(head: VersionRecord, tables: DatasetTables) -> vs.Changes:
        labels, table = plan, planned
        stale = labels.head_id != head.id and not (labels.head_id is None and head.summary["labels"] == 0)
        if stale:  # another writer moved the branch: label ids against its head
            labels = _label_plan(_with_planned_labels(plan.table, samples, sample_ids), sample_ids,
                                 _head_labels(tables, head, sample_ids), head.id)
            table = good_labels(labels.table)
        return _build_changes(head, tables, new_samples, table, labels.old, mode=mode,
                              protected=protected_ids, classes=classes)

    ds = vs.get_or_create_dataset(ws, dataset, author=author)
    run_id = ws.catalog.start_run(
        dataset_id=ds.id, operation="import",
        params={"source": str(root), "format": spec.name, "split": split, "mode": mode,
                "on_error": on_error, "metadata": str(metadata) if metadata else None,
                "branch": branch},
        author=author or vs.current_user(), code_version=vs.code_version())
    extra: dict[str, Any] = {"source": str(root), "format": spec.name, "mode": mode}
    if problems:
        extra["skipped"] = [p.to_dict() for p in problems]
    try:
        result = vs.commit(ws, ds, branch, build,
                           message=message or f"import {spec.name} from {root.name} ({mode})",
                           author=author, run_id=run_id, extra=extra)
    except Exception as e:
        ws.catalog.finish_run(run_id, status="failed", error=str(e))
        raise
    ws.catalog.finish_run(run_id, status="succeeded",
                          outputs={"version": result.version.id, "created": result.created})
    return ImportResult(
        dataset=dataset, format=spec.name, version=result.version, created=result.created,
        samples=len(good), labels=n_labels,
        changes=result.version.changes if result.created else vs.empty_changes(),
        skipped=problems, seconds=time.perf_counter() - t0)


@dataclass
class _LabelPlan:
    head_id: str | None
    table: pa.Table                      # label rows (with row_hash) of every source sample
    old: list[dict[str, Any]]            # the head's labels of those samples


def _head_labels(tables: DatasetTables, head: VersionRecord, sample_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The head's labels of the samples ``sample_ids``."""
    if head.summary.get("labels", 1) == 0:
        return []
    ids = sorted(set(sample_ids))
    con = duck.connect(l=tables.open("labels", head.labels_table_version),
                       t=pa.table({"sid": vs.id_array(ids)}))
    # ground truth only: a re-import replaces annotations and leaves predictions alone
    out = duck.query(con, f"""SELECT l.id, l.sample_id, l.kind, l.class_name, l.x, l.y,
        l.w, l.h, l.source_id, l.row_hash FROM l SEMI JOIN t ON l.sample_id = t.sid
        WHERE {vs.GROUND_TRUTH_SQL}""").to_pylist()
    con.close()
    return out


def _plan_labels(ws: Workspace, dataset: str, branch: str, samples: list[SourceSample],
                 sample_ids: list[str]) -> _LabelPlan:
    """Label rows built against the branch's current head (read without the lock; the
    commit checks the head is still the same)."""
    from viewfinder.errors import NotFound

    try:
        at = vs.resolve(ws, f"{dataset}@{branch}")
    except NotFound:
        return _label_plan(samples, sample_ids, [], None)
    return _label_plan(samples, sample_ids, _head_labels(ws.tables(at.dataset), at.version, sample_ids),
                       at.version.id)


LABEL_BATCH = 200_000


def _label_plan(samples: list[SourceSample], sample_ids: list[str], old: list[dict[str, Any]],
                head_id: str | None) -> _LabelPlan:
    old_by_sample: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in old:
        old_by_sample[r["sample_id"]].append(r)
    batches, batch = [], rows.LabelColumns()
    for s, sid in zip(samples, sample_ids, strict=True):
        if not s.labels:
            continue
        if all(lab.source_id is not None and lab.source for lab in s.labels):
            for lab in s.labels:  # ids from the source's ids: derived for the whole batch
                batch.add(lab, label_id=None, sample_id_=sid)
        else:
            ids = _assign_label_ids(sid, s.labels, old_by_sample.get(sid, []))
            for lab, lid in zip(s.labels, ids, strict=True):
                batch.add(lab, label_id=lid, sample_id_=sid)
        # from here on the sample's labels are these rows: a million label objects would
        # otherwise hold about 400 MB under the Arrow tables until the commit
        s.labels = []
        if len(batch) >= LABEL_BATCH:  # Arrow holds them far smaller than Python does
            batches.append(batch.table())
            batch = rows.LabelColumns()
    batches.append(batch.table())
    return _LabelPlan(head_id, pa.concat_tables(batches), old)


def _with_planned_labels(table: pa.Table, samples: list[SourceSample],
                         sample_ids: list[str]) -> list[SourceSample]:
    """``samples`` again with their labels, rebuilt (in order) from the plan's rows: for
    planning again against another head, after the label objects were let go."""
    by_sample: dict[str, list[SourceLabel]] = defaultdict(list)
    for r in table.to_pylist():
        by_sample[r["sample_id"]].append(rows.label_from_row(r))
    return [SourceSample(key=s.key, path=s.path, labels=by_sample.get(sid, []))
            for s, sid in zip(samples, sample_ids, strict=True)]


def _keep_viewfinder_fields(new_samples: pa.Table, head_s: dict[str, dict[str, Any]]) -> pa.Table:
    """Imports do not carry Viewfinder-side fields: a sample already in the head keeps its
    tags, and its split where the source has none."""
    ids = new_samples.column("id").to_pylist()
    if not any(i in head_s for i in ids):
        return new_samples
    tags, splits = new_samples.column("tags").to_pylist(), new_samples.column("split").to_pylist()
    for n, i in enumerate(ids):
        old = head_s.get(i)
        if old is not None:
            tags[n] = old["tags"] or []
            if splits[n] is None:
                splits[n] = old["split"]
    for name, values in (("tags", tags), ("split", splits)):
        at = new_samples.schema.get_field_index(name)
        new_samples = new_samples.set_column(at, new_samples.schema.field(at),
                                             pa.array(values, new_samples.schema.field(at).type))
    return rows.with_row_hash(new_samples, "samples").cast(new_samples.schema)


def _build_changes(head: VersionRecord, tables: DatasetTables, new_samples: pa.Table, new_labels: pa.Table,
                   old_labels: list[dict[str, Any]], *, mode: str, protected: set[str],
                   classes: list[str]) -> vs.Changes:
    changes = vs.Changes()
    head_s: dict[str, dict[str, Any]] = {}
    if head.summary.get("samples", 1):
        head_samples = tables.read("samples", head.samples_table_version,
                                   columns=["id", "split", "tags", "metadata", "row_hash"])
        head_s = {r["id"]: r for r in head_samples.to_pylist()}
        new_samples = _keep_viewfinder_fields(new_samples, head_s)
    counts = changes.counts
    if not head_s and not old_labels:  # a first import: everything is added
        counts["samples"]["added"] = new_samples.num_rows
        counts["labels"]["added"] = new_labels.num_rows
        changes.samples = TableChange(upserts=new_samples if new_samples.num_rows else None)
        changes.labels = TableChange(upserts=new_labels if new_labels.num_rows else None)
        changes.classes = _merged_classes(head, classes, mode)
        return changes
    new_ids = set(new_samples.column("id").to_pylist())

    upsert_mask = []
    for i, h in zip(new_samples.column("id").to_pylist(), new_samples.column("row_hash").to_pylist(), strict=True):
        old = head_s.get(i)
        if old is None:
            counts["samples"]["added"] += 1
            upsert_mask.append(True)
        elif old["row_hash"] != h:
            counts["samples"]["changed"] += 1
            upsert_mask.append(True)
        else:
            upsert_mask.append(False)
    removed_samples = []
    if mode == "sync":
        removed_samples = [i for i in head_s if i not in new_ids and i not in protected]
        counts["samples"]["removed"] = len(removed_samples)
    changes.samples = TableChange(
        upserts=new_samples.filter(pa.array(upsert_mask, pa.bool_())) if any(upsert_mask) else None,
        deletes=vs.id_array(removed_samples) if removed_samples else None)

    if removed_samples:  # their labels go too
        old_labels = old_labels + _head_labels(tables, head, removed_samples)
    # labels of the source's good samples; labels of skipped samples stay untouched
    touched = new_ids | set(removed_samples)
    old_hash = {r["id"]: r["row_hash"] for r in old_labels if r["sample_id"] in touched}
    new_label_ids = set()
    mask = []
    for i, h in zip(new_labels.column("id").to_pylist(), new_labels.column("row_hash").to_pylist(), strict=True):
        new_label_ids.add(i)
        o = old_hash.get(i)
        if o is None:
            counts["labels"]["added"] += 1
            mask.append(True)
        elif o != h:
            counts["labels"]["changed"] += 1
            mask.append(True)
        else:
            mask.append(False)
    removed_labels = sorted(i for i in old_hash if i not in new_label_ids)
    counts["labels"]["removed"] = len(removed_labels)
    changes.labels = TableChange(
        upserts=new_labels.filter(pa.array(mask, pa.bool_())) if any(mask) else None,
        deletes=vs.id_array(removed_labels) if removed_labels else None)
    changes.classes = _merged_classes(head, classes, mode)
    return changes


def _merged_classes(head: VersionRecord, classes: list[str], mode: str) -> list[str] | None:
    """The class list after the import, or None where it stays the head's. Sync: the
    source's class list is the truth; add: new classes are appended."""
    old = head.summary.get("class_list", [])
    merged = classes if mode == "sync" else list(dict.fromkeys([*old, *classes]))
    return merged if merged != old else None
