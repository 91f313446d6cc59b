"""Datasets and their versions: create, resolve ``NAME@REF``, commit, log, tag, branch.

A commit runs under the dataset's catalog lock: read the branch head, let the caller
build the change from that head, write the Lance tables, then insert the version row and
move the branch in the same catalog transaction. So a commit is never lost to a
concurrent one (the second waits and builds on the first), and a crash before the
catalog commit leaves only an orphan table version, never a half-visible version.
Hooks registered with :func:`on_commit` run inside that same transaction (the audit
event of an edit commits or rolls back with its version).
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import Connection

from viewfinder.core.types import GROUND_TRUTH
from viewfinder.errors import AlreadyExists, InvalidInput, RefNotFound
from viewfinder.storage import duck
from viewfinder.storage.catalog import (
    DatasetAt,
    DatasetRecord,
    RefRecord,
    VersionRecord,
    new_id,
    resolve_ref_name,
    utcnow,
)
from viewfinder.storage.schema import GROUND_TRUTH_SQL, NO_SPLIT
from viewfinder.storage.tables import DatasetTables, TableChange
from viewfinder.storage.workspace import Workspace

DEFAULT_BRANCH = "main"
Spec = str | DatasetAt  # NAME[@REF], or a dataset already resolved at a version
CommitHook = Callable[[Connection, "VersionRecord"], None]
_commit_hooks: ContextVar[tuple[CommitHook, ...]] = ContextVar("commit_hooks", default=())
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def current_user() -> str:
    return os.environ.get("VIEWFINDER_USER") or getpass.getuser()


def code_version() -> str:
    from viewfinder import __version__

    return f"viewfinder {__version__}"


def check_name(kind: str, name: str) -> str:
    """Dataset, branch and tag names: letters, digits, ``.``, ``_``, ``-``; no ``@``."""
    if not _NAME_RE.match(name) or name in (".", ".."):
        raise InvalidInput(f"invalid {kind} name {name!r}: use letters, digits, '.', '_' "
                           "and '-' (up to 200 characters, not starting with a symbol)")
    return name


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"NAME@REF"`` → ``("NAME", "REF")``; ``"NAME"`` → ``("NAME", None)``."""
    name, sep, ref = spec.partition("@")
    if not name or (sep and not ref):
        raise InvalidInput(f"expected NAME or NAME@REF, got {spec!r}")
    return name, (ref or None)


def resolve(ws: Workspace, spec: Spec, default_ref: str = DEFAULT_BRANCH) -> DatasetAt:
    """The dataset and version ``spec`` names (a ``DatasetAt`` is returned as it is)."""
    if isinstance(spec, DatasetAt):
        return spec
    name, ref = parse_spec(spec)
    return resolve_in(ws, ws.catalog.get_dataset(name), ref, default_ref)


def resolve_in(ws: Workspace, dataset: DatasetRecord, ref: str | None,
               default_ref: str = DEFAULT_BRANCH) -> DatasetAt:
    """``dataset`` at ``ref`` (a branch, tag, version id or id prefix; default ``main``)."""
    ref = ref or default_ref
    return DatasetAt(dataset, resolve_ref_name(ws.catalog, dataset, ref), ref)


def create_dataset(ws: Workspace, name: str, *, author: str | None = None,
                   classes: list[str] | None = None) -> DatasetAt:
    """A new dataset with an empty first version on branch ``main``."""
    check_name("dataset", name)
    author = author or current_user()
    rec = ws.catalog.create_dataset(name, author=author, classes=classes)
    table_versions = ws.tables(rec).create()
    v = VersionRecord(
        id=new_id(), dataset_id=rec.id, parents=[], author=author,
        message=f"create dataset {name}", created_at=utcnow(), run_id=None,
        samples_table_version=table_versions["samples"],
        labels_table_version=table_versions["labels"],
        summary={**empty_summary(), "class_list": list(classes or [])},
        changes=empty_changes(), extra={})
    with ws.catalog.dataset_lock(rec.id) as c:
        ws.catalog.insert_version(c, v)
        ws.catalog.set_ref(c, rec.id, DEFAULT_BRANCH, "branch", v.id, create=True)
    return DatasetAt(rec, v, DEFAULT_BRANCH)


def get_or_create_dataset(ws: Workspace, name: str, *, author: str | None = None) -> DatasetRecord:
    from viewfinder.errors import DatasetNotFound

    try:
        return ws.catalog.get_dataset(name)
    except DatasetNotFound:
        try:
            return create_dataset(ws, name, author=author).dataset
        except AlreadyExists:  # created by a concurrent import
            return ws.catalog.get_dataset(name)


# -- summaries -----------------------------------------------------------------------

def empty_summary() -> dict[str, Any]:
    """``class_list`` is the label schema's classes in order, as of this version."""
    return {"samples": 0, "labels": 0, "classes": {}, "splits": {}, "class_list": []}


def empty_changes() -> dict[str, Any]:
    z = {"added": 0, "removed": 0, "changed": 0}
    return {"samples": dict(z), "labels": dict(z)}


def summarize(tables: DatasetTables, samples_version: int, labels_version: int,
              parent: VersionRecord | None = None,
              labels_change: TableChange | None = None) -> dict[str, Any]:
    """Counts stored with each version: samples, labels, per class, per split, and the
    box-size distribution (one scan of each table). The counts of a table the commit did
    not write (same table version as ``parent``) are the parent's: tagging samples does
    not rescan millions of labels. ``labels_change`` (what the commit wrote to the labels
    of ``parent``) tells when every label is ground truth: the scan then skips the
    ``source`` column (a tenth of a second per million labels)."""
    same_samples = (parent is not None and parent.samples_table_version == samples_version
                    and all(k in parent.summary for k in _SAMPLE_PARTS))
    same_labels = (parent is not None and parent.labels_table_version == labels_version
                   and all(k in parent.summary for k in _LABEL_PARTS))
    out: dict[str, Any] = {}
    if same_samples:
        assert parent is not None
        out.update({k: parent.summary[k] for k in _SAMPLE_PARTS})
    else:
        con = duck.connect(s=tables.open("samples", samples_version))
        splits = duck.query(con, "SELECT coalesce(split, ?) AS k, count(*) AS n FROM s GROUP BY 1 ORDER BY 1",
                            [NO_SPLIT]).to_pylist()
        out.update(samples=sum(r["n"] for r in splits), splits={r["k"]: r["n"] for r in splits})
        con.close()
    if same_labels:
        assert parent is not None
        out.update({k: parent.summary[k] for k in (*_LABEL_PARTS, "predictions") if k in parent.summary})
        return out
    labels = tables.open("labels", labels_version)
    con = duck.connect(l=labels)
    # label counts are of the ground truth; predictions (labels of a model run) are counted
    # apart; both, and the ground truth's box-size percentiles, from one scan of the labels
    pick = _quantile_rows(labels.count_rows(), EXACT_QUANTILES_UP_TO)
    if _only_ground_truth(parent, labels_change):
        gt, source, sets = "true", "NULL::VARCHAR", "(class_name), ()"
    else:
        gt, source, sets = f"({GROUND_TRUTH_SQL})", "source", "(gt, class_name, source), (gt)"
    rows = duck.query(con, f"""SELECT {gt} AS gt, class_name AS k, {source} AS source,
        grouping(class_name) = 1 AS everything, {_PER_CLASS_AGGREGATES},
        quantile_cont(w, {_QUANTILES}) FILTER (WHERE {pick}) AS wq,
        quantile_cont(h, {_QUANTILES}) FILTER (WHERE {pick}) AS hq
        FROM l GROUP BY GROUPING SETS ({sets})""").to_pylist()
    groups = [r for r in rows if not r["everything"]]
    truth = next((r for r in rows if r["everything"] and r["gt"]), {"wq": None, "hq": None})
    out.update(label_stats(lambda sql: duck.query(con, sql).to_pylist(),
                           f"(SELECT * FROM l WHERE {GROUND_TRUTH_SQL})",
                           per_class=_merge_class_groups([g for g in groups if g["gt"]]),
                           quantiles={"wq": truth["wq"], "hq": truth["hq"]}))
    predictions: dict[str, int] = {}
    for g in sorted((g for g in groups if not g["gt"]), key=lambda g: g["source"]):
        predictions[g["source"]] = predictions.get(g["source"], 0) + g["n"]
    con.close()
    if predictions:
        out["predictions"] = predictions
    return out


def _only_ground_truth(parent: VersionRecord | None, change: TableChange | None) -> bool:
    """Whether the labels written on ``parent`` by ``change`` are all ground truth: the
    parent's were (its summary counts no predictions) and the change adds none."""
    if parent is None or change is None or "labels" not in parent.summary or "predictions" in parent.summary:
        return False
    upserts = change.upserts
    if upserts is None or upserts.num_rows == 0:
        return True
    if "source" not in upserts.column_names:  # not a full labels row: no promise
        return False
    import pyarrow.compute as pc  # here: `viewfinder log` imports this module

    return bool(pc.all(pc.fill_null(pc.equal(upserts.column("source"), GROUND_TRUTH), True)).as_py())


_SAMPLE_PARTS = ("samples", "splits")
_LABEL_PARTS = ("labels", "classes", "box_sizes")  # and "predictions" when there are any


EXACT_QUANTILES_UP_TO = 1_000_000
"""Box-size percentiles are exact up to this many labels, then taken from a repeatable
sample of about that many (a distribution does not need every row)."""


def _quantile_rows(n: int, up_to: int) -> str:
    """SQL condition on a labels row: it counts for the box-size percentiles. Every row up
    to ``up_to`` rows, above that about one in ``n / up_to``, picked by the box's size, so
    the same rows give the same figures whatever the number of DuckDB threads (a system
    sample repeats only on one thread)."""
    every = -(-n // up_to)
    return "true" if every <= 1 else f"hash(w, h) % {every} = 0"

_QUANTILES = "[0.05, 0.25, 0.5, 0.75, 0.95]"


_PER_CLASS_AGGREGATES = """count(*) AS n,
            count(*) FILTER (WHERE area < 1024) AS small,
            count(*) FILTER (WHERE area >= 1024 AND area < 9216) AS medium,
            count(*) FILTER (WHERE area >= 9216) AS large,
            min(w) AS w_min, max(w) AS w_max, min(h) AS h_min, max(h) AS h_max"""


def _merge_class_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-class rows from rows per (class, source): counts summed, extremes combined."""
    out: dict[str, dict[str, Any]] = {}
    for g in groups:
        r = out.get(g["k"])
        if r is None:
            out[g["k"]] = {k: g[k] for k in ("k", "n", "small", "medium", "large",
                                            "w_min", "w_max", "h_min", "h_max")}
            continue
        for k in ("n", "small", "medium", "large"):
            r[k] += g[k]
        for k, fn in (("w_min", min), ("w_max", max), ("h_min", min), ("h_max", max)):
            vals = [v for v in (r[k], g[k]) if v is not None]
            r[k] = fn(vals) if vals else None
    return [out[k] for k in sorted(out)]


def label_stats(run: Callable[[str], list[dict[str, Any]]], labels: str,
                per_class: list[dict[str, Any]] | None = None,
                exact_up_to: int = EXACT_QUANTILES_UP_TO,
                quantiles: dict[str, Any] | None = None) -> dict[str, Any]:
    """``labels``, ``classes`` and ``box_sizes`` of the label rows ``labels`` (a table or
    a subquery), with ``run(sql) -> rows``; ``per_class`` and the width/height percentiles
    (``wq``, ``hq``) when the caller has them already (rows of ``k`` and
    :data:`_PER_CLASS_AGGREGATES`). Box-size percentiles are exact up to ``exact_up_to``
    labels, then from a repeatable sample of about that many."""
    if per_class is None:
        per_class = run(f"SELECT class_name AS k, {_PER_CLASS_AGGREGATES} FROM {labels} GROUP BY 1 ORDER BY 1")
    n = sum(r["n"] for r in per_class)
    if quantiles is None:
        quantiles = run(f"""SELECT quantile_cont(w, {_QUANTILES}) AS wq, quantile_cont(h, {_QUANTILES}) AS hq
            FROM {labels} WHERE w IS NOT NULL AND {_quantile_rows(n, exact_up_to)}""")[0]
    q = dict(quantiles)

    def pick(key: str, fn: Callable[..., Any]) -> Any:
        vals = [r[key] for r in per_class if r[key] is not None]
        return fn(vals) if vals else None

    q.update(w_min=pick("w_min", min), w_max=pick("w_max", max),
             h_min=pick("h_min", min), h_max=pick("h_max", max))
    buckets = {b: sum(r[b] for r in per_class) for b in ("small", "medium", "large")}
    return {"labels": n, "classes": {r["k"]: r["n"] for r in per_class},
            "box_sizes": box_sizes(q, buckets)}


def box_sizes(q: dict[str, Any], buckets: dict[str, int]) -> dict[str, Any]:
    """COCO's size buckets by area (small < 32², large ≥ 96²) and width/height percentiles."""
    names = ("p5", "p25", "p50", "p75", "p95")
    return {
        "buckets": buckets,
        "width": {"min": q["w_min"], **dict(zip(names, q["wq"] or [None] * 5, strict=True)), "max": q["w_max"]},
        "height": {"min": q["h_min"], **dict(zip(names, q["hq"] or [None] * 5, strict=True)), "max": q["h_max"]},
    }


# -- commits -------------------------------------------------------------------------

@dataclass
class Changes:
    """What a commit writes: per-table upserts/deletes, and the counts for the log."""

    samples: TableChange = field(default_factory=TableChange)
    labels: TableChange = field(default_factory=TableChange)
    counts: dict[str, Any] = field(default_factory=empty_changes)
    classes: list[str] | None = None  # new class list of the dataset, if it changes

    @property
    def empty(self) -> bool:
        return self.samples.empty and self.labels.empty


@dataclass(frozen=True)
class CommitResult:
    version: VersionRecord
    created: bool  # False when there was nothing to change (the head is returned)


def commit(ws: Workspace, dataset: DatasetRecord, branch: str,
           build: Callable[[VersionRecord, DatasetTables], Changes], *, message: str,
           author: str | None = None, run_id: str | None = None,
           extra: dict[str, Any] | None = None, parents_extra: list[str] | None = None,
           allow_empty: bool = False, operation: str | None = None,
           params: dict[str, Any] | None = None) -> CommitResult:
    """Build a change from the head of ``branch`` and commit it as a new version.

    ``build(head, tables)`` runs while the dataset's write lock is held, so the head it
    sees is the head the commit lands on. An empty change creates no version (imports
    are idempotent) unless ``allow_empty``. With ``operation`` (and no ``run_id``) the
    commit records its own Run: operation, parameters, code version, outcome.
    """
    author = author or current_user()
    if operation is not None and run_id is None:
        run_id = ws.catalog.start_run(dataset_id=dataset.id, operation=operation,
                                      params={**(params or {}), "branch": branch},
                                      author=author, code_version=code_version())
        try:
            result = commit(ws, dataset, branch, build, message=message, author=author,
                            run_id=run_id, extra=extra, parents_extra=parents_extra,
                            allow_empty=allow_empty)
        except Exception as e:
            ws.catalog.finish_run(run_id, status="failed", error=str(e))
            raise
        ws.catalog.finish_run(run_id, status="succeeded",
                              outputs={"version": result.version.id, "created": result.created})
        return result
    tables = ws.tables(dataset)
    with ws.catalog.dataset_lock(dataset.id) as c:
        ref = ws.catalog.get_ref(dataset.id, branch, c)
        if ref is None:
            raise RefNotFound(f"no branch {branch!r} in dataset {dataset.name!r}", dataset=dataset.name)
        if ref.kind != "branch":
            raise InvalidInput(f"{branch!r} is a tag; versions are committed to branches")
        head = ws.catalog.get_version(dataset.id, ref.version_id, c)
        assert head is not None
        changes = build(head, tables)
        if changes.empty and not allow_empty:
            return CommitResult(head, False)
        sv = tables.apply("samples", head.samples_table_version, changes.samples)
        lv = tables.apply("labels", head.labels_table_version, changes.labels)
        summary = summarize(tables, sv, lv, parent=head, labels_change=changes.labels)
        summary["class_list"] = (changes.classes if changes.classes is not None
                                 else head.summary.get("class_list", []))
        v = VersionRecord(
            id=new_id(), dataset_id=dataset.id, parents=[head.id, *(parents_extra or [])],
            author=author, message=message, created_at=utcnow(), run_id=run_id,
            samples_table_version=sv, labels_table_version=lv,
            summary=summary, changes=changes.counts, extra=extra or {})
        ws.catalog.insert_version(c, v)
        ws.catalog.set_ref(c, dataset.id, branch, "branch", v.id)
        if changes.classes is not None:
            from viewfinder.storage.catalog import datasets as datasets_table

            c.execute(datasets_table.update().where(datasets_table.c.id == dataset.id)
                      .values(classes=changes.classes))
        for hook in _commit_hooks.get():
            hook(c, v)
    return CommitResult(v, True)


@contextmanager
def on_commit(hook: CommitHook) -> Iterator[None]:
    """Run ``hook(connection, version)`` for each version committed inside this block, in
    the catalog transaction that creates the version: if the hook fails, the version is
    not created. (Context-local: other threads' commits do not see it.)"""
    token = _commit_hooks.set((*_commit_hooks.get(), hook))
    try:
        yield
    finally:
        _commit_hooks.reset(token)


def branch_of(ws: Workspace, at: DatasetAt) -> str:
    """The branch a write to ``at`` goes to: the ref if it is a branch, else an error."""
    r = ws.catalog.get_ref(at.dataset.id, at.ref)
    if r is None or r.kind != "branch":
        raise InvalidInput(f"{at.dataset.name}@{at.ref} is not a branch: edits create versions "
                           "on a branch (create one with 'viewfinder branch')")
    return at.ref


# -- history -------------------------------------------------------------------------

def log(ws: Workspace, spec: Spec) -> list[VersionRecord]:
    """Versions reachable from the ref, newest first (first-parent order, then the rest)."""
    at = resolve(ws, spec)
    allv = ws.catalog.all_versions(at.dataset.id)
    out, seen, stack = [], set(), [at.version.id]
    while stack:
        vid = stack.pop(0)
        if vid in seen or vid not in allv:
            continue
        seen.add(vid)
        out.append(allv[vid])
        stack.extend(allv[vid].parents)
    out.sort(key=lambda v: v.created_at, reverse=True)
    return out


def refs_by_version(ws: Workspace, dataset: DatasetRecord) -> dict[str, list[RefRecord]]:
    out: dict[str, list[RefRecord]] = {}
    for r in ws.catalog.list_refs(dataset.id):
        out.setdefault(r.version_id, []).append(r)
    return out


def tag(ws: Workspace, spec: Spec, tag_name: str, *, protected: bool = False) -> RefRecord:
    """Give the version at ``spec`` a fixed name."""
    check_name("tag", tag_name)
    at = resolve(ws, spec)
    with ws.catalog.dataset_lock(at.dataset.id) as c:
        ws.catalog.set_ref(c, at.dataset.id, tag_name, "tag", at.version.id,
                           protected=protected, create=True)
    return RefRecord(tag_name, "tag", at.version.id, protected)


def branch(ws: Workspace, name: str, new: str, *, from_ref: str | None = None) -> RefRecord:
    """Create branch ``new`` at ``from_ref`` (default: ``main``'s head)."""
    check_name("branch", new)
    at = resolve(ws, f"{name}@{from_ref}" if from_ref else name)
    with ws.catalog.dataset_lock(at.dataset.id) as c:
        ws.catalog.set_ref(c, at.dataset.id, new, "branch", at.version.id, create=True)
    return RefRecord(new, "branch", at.version.id, False)


def ancestors(allv: dict[str, VersionRecord], start: str) -> dict[str, int]:
    """Every ancestor of ``start`` (itself included) with its distance."""
    dist, frontier = {start: 0}, [start]
    while frontier:
        nxt = []
        for vid in frontier:
            for p in allv[vid].parents:
                if p not in dist:
                    dist[p] = dist[vid] + 1
                    nxt.append(p)
        frontier = nxt
    return dist


def merge_base(allv: dict[str, VersionRecord], a: str, b: str) -> str | None:
    da, db = ancestors(allv, a), ancestors(allv, b)
    common = set(da) & set(db)
    if not common:
        return None
    return min(common, key=lambda v: (da[v] + db[v], -allv[v].created_at.timestamp()))


def id_array(ids: list[str]) -> pa.Array:
    return pa.array(ids, pa.string())
