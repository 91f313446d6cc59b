"""The policy-checked use cases: what every front door (CLI, Python API, REST, web UI)
calls on behalf of a principal.

Each function asks :func:`viewfinder.governance.policy.decide` first, applies the grant's
slice to every read and write (a sliced curator sees and edits only its samples: pages,
counts, stats, details, images, diffs and exports), and records an audit event for every
mutation, export and bulk download. What the principal may not see raises a
:class:`~viewfinder.errors.NotFound` (404), what it sees but may not do raises
:class:`~viewfinder.errors.PermissionDenied` (403).

Example:
    >>> from viewfinder.governance.tokens import resolve_token
    >>> p = resolve_token(ws, token)                                    # doctest: +SKIP
    >>> page = samples_page(ws, p, "street@main", 'split == "val"', limit=50, offset=0)  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import pyarrow as pa
from sqlalchemy.engine import Connection

from viewfinder.errors import InvalidInput, NotFound
from viewfinder.governance import audit, orgs, policy, roles, tokens, users
from viewfinder.governance.audit import AuditFilter
from viewfinder.governance.policy import Action, Grant, combine_filter
from viewfinder.governance.principal import Principal
from viewfinder.services import diff as diff_service
from viewfinder.services import edit, ingest, look
from viewfinder.services import export as export_service
from viewfinder.services import versions as vs
from viewfinder.storage import duck
from viewfinder.storage.catalog import RefRecord
from viewfinder.storage.workspace import Workspace


class SampleNotFound(NotFound):
    """No sample with that id in the version (or it is outside the caller's slice)."""


def _pinned(at: vs.DatasetAt) -> vs.DatasetAt:
    """``at`` pinned to its version: later reads in one use case see the version checked
    first, without resolving it again."""
    return vs.DatasetAt(at.dataset, at.version, at.version.id)


def ids_filter(sample_ids: list[str]) -> str:
    """A filter selecting these sample ids, printed from a syntax tree (no text pasted)."""
    from viewfinder.storage.query import Comparison, Field, InList, Literal

    if len(sample_ids) == 1:
        return str(Comparison(Field("id"), "==", Literal(sample_ids[0])))
    return str(InList(Field("id"), tuple(Literal(i) for i in sample_ids)))


def open_dataset(ws: Workspace, principal: Principal, spec: str,
                 action: Action | str = Action.DATASET_READ) -> tuple[vs.DatasetAt, Grant]:
    """Check ``action`` on the dataset named in ``spec`` and resolve its version.

    Raises:
        DatasetNotFound: no such dataset, or the principal may not read it.
        PermissionDenied: it may read the dataset but not do ``action``.
        RefNotFound: no such branch, tag or version.
    """
    name, ref = vs.parse_spec(spec)
    dataset = ws.catalog.get_dataset(name)
    grant = policy.decide(ws, principal, action, dataset=dataset)
    return vs.resolve_in(ws, dataset, ref), grant


# -- reading ---------------------------------------------------------------------------

def list_datasets(ws: Workspace, principal: Principal) -> list[dict[str, Any]]:
    """The datasets the principal may read: name, head version of ``main``, samples and
    labels (within its slice), and the owning project's name (or None)."""
    owner = {d: p.name for p in orgs.list_projects(ws) for d in p.datasets}
    out = []
    for d, grant in policy.read_grants(ws, principal):
        at = vs.resolve(ws, d.name)
        if grant.slice is None:
            n_samples, n_labels = at.version.summary["samples"], at.version.summary["labels"]
        else:
            s = look.stats(ws, _pinned(at), combine_filter(grant.slice, None))
            n_samples, n_labels = s["samples"], s["labels"]
        out.append({"name": d.name, "version": at.version.id, "samples": n_samples,
                    "labels": n_labels, "project": owner.get(d.name),
                    "sliced": grant.slice is not None})
    return out


@dataclass(frozen=True)
class Page:
    """One page of samples (each with its labels) and the version it was read from."""

    version_id: str
    rows: list[dict[str, Any]]


def page(ws: Workspace, principal: Principal, spec: str, filter: str | None = None, *,
         limit: int = 100, offset: int = 0) -> Page:
    """One page of the matching samples the principal may see, each with its labels, and
    the version that ``spec``'s ref pointed to (one policy decision for both)."""
    at, grant = open_dataset(ws, principal, spec)
    rows = look.samples_page(ws, _pinned(at), combine_filter(grant.slice, filter),
                             limit=limit, offset=offset)
    _remember_hashes(ws, at, grant, rows)  # the grid asks for these thumbnails next
    return Page(at.version.id, rows)


def samples_page(ws: Workspace, principal: Principal, spec: str, filter: str | None = None, *,
                 limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """One page of the matching samples the principal may see, each with its labels."""
    return page(ws, principal, spec, filter, limit=limit, offset=offset).rows


def count(ws: Workspace, principal: Principal, spec: str, filter: str | None = None) -> int:
    """How many matching samples the principal may see."""
    at, grant = open_dataset(ws, principal, spec)
    return look.count(ws, _pinned(at), combine_filter(grant.slice, filter))


def stats(ws: Workspace, principal: Principal, spec: str, filter: str | None = None) -> dict[str, Any]:
    """Counts per class and split and box sizes, over the samples the principal may see."""
    at, grant = open_dataset(ws, principal, spec)
    out = look.stats(ws, _pinned(at), combine_filter(grant.slice, filter))
    out.pop("filter", None)
    if filter:
        out["filter"] = filter
    if grant.slice is not None:
        out["slice"] = grant.slice
    return out


def _visible_sample(ws: Workspace, at: vs.DatasetAt, grant: Grant, sample_id: str,
                    *, with_labels: bool) -> dict[str, Any]:
    page = look.samples_page(ws, _pinned(at), combine_filter(grant.slice, ids_filter([sample_id])),
                             limit=1, with_labels=with_labels)
    if not page:
        raise SampleNotFound(f"no sample {sample_id!r} in {at.dataset.name}@{at.ref}",
                             dataset=at.dataset.name, record=sample_id)
    return page[0]


def sample_detail(ws: Workspace, principal: Principal, spec: str, sample_id: str) -> dict[str, Any]:
    """One sample with its labels and metadata, and its history: the versions (reachable
    from ``spec``, oldest first) in which the sample or its labels changed.

    Raises:
        SampleNotFound: no such sample, or it is outside the principal's slice.
    """
    at, grant = open_dataset(ws, principal, spec)
    sample = _visible_sample(ws, at, grant, sample_id, with_labels=True)
    return {"dataset": at.dataset.name, "version": at.version.id, "sample": sample,
            "history": _sample_history(ws, at, sample_id)}


def _sample_history(ws: Workspace, at: vs.DatasetAt, sample_id: str) -> list[dict[str, Any]]:
    tables = ws.tables(at.dataset)
    seen_s: dict[int, str | None] = {}
    seen_l: dict[int, dict[str, str]] = {}

    def sample_hash(v: int) -> str | None:
        if v not in seen_s:
            con = duck.connect(s=tables.open("samples", v))
            rows = duck.query(con, "SELECT row_hash FROM s WHERE id = ?", [sample_id]).column(0).to_pylist()
            con.close()
            seen_s[v] = rows[0] if rows else None
        return seen_s[v]

    def label_hashes(v: int) -> dict[str, str]:
        if v not in seen_l:
            con = duck.connect(lab=tables.open("labels", v))
            t = duck.query(con, "SELECT id, row_hash FROM lab WHERE sample_id = ?", [sample_id])
            con.close()
            seen_l[v] = dict(zip(t.column("id").to_pylist(), t.column("row_hash").to_pylist(), strict=True))
        return seen_l[v]

    history: list[dict[str, Any]] = []
    prev_s: str | None = None
    prev_l: dict[str, str] = {}
    for v in sorted(vs.log(ws, _pinned(at)), key=lambda v: v.created_at):
        s, labs = sample_hash(v.samples_table_version), label_hashes(v.labels_table_version)
        sample_change = (None if s == prev_s else "added" if prev_s is None
                         else "removed" if s is None else "changed")
        lc = {"added": sum(1 for i in labs if i not in prev_l),
              "removed": sum(1 for i in prev_l if i not in labs),
              "changed": sum(1 for i, h in labs.items() if i in prev_l and prev_l[i] != h)}
        if sample_change or any(lc.values()):
            history.append({"version": v.id, "created_at": v.created_at.isoformat(),
                            "author": v.author, "message": v.message,
                            "sample": sample_change, "labels": lc})
        prev_s, prev_l = s, labs
    return history


@dataclass(frozen=True)
class ImageRef:
    """A sample's image that a principal was found allowed to see, in one version: what
    the web layer needs to answer an image or thumbnail request (or a revalidation)
    after one access check. Made by :func:`image_ref`; read with :func:`read_image`."""

    dataset: str
    version_id: str
    sample_id: str
    content_hash: str


class _VisibleHashes:
    """A per-process LRU of ``(workspace, dataset id, version id, slice, sample id) ->
    content hash`` for samples found visible: versions are immutable, so a sample's hash
    in a version never changes, and the slice in the key (the one the caller's grant has
    *now*, decided on every request) keeps a sliced caller from reusing what a wider one
    found. Slices that read findings (which a scan adds to an existing version) are never
    cached, nor are misses."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._map: OrderedDict[tuple[str, str, str, str | None, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str, str | None, str]) -> str | None:
        with self._lock:
            h = self._map.get(key)
            if h is not None:
                self._map.move_to_end(key)
            return h

    def put(self, keys_hashes: list[tuple[tuple[str, str, str, str | None, str], str]]) -> None:
        with self._lock:
            for key, h in keys_hashes:
                self._map[key] = h
                self._map.move_to_end(key)
            while len(self._map) > self.max_entries:
                self._map.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._map.clear()


_visible_hashes = _VisibleHashes(max_entries=100_000)
"""About 30 MB at most; a grid page fills it (:func:`samples_page`) just before the
browser asks for that page's thumbnails."""


@lru_cache(maxsize=256)
def _slice_cacheable(slice: str | None) -> bool:
    """Whether a lookup under ``slice`` depends on the immutable version only."""
    from viewfinder.storage.query import compile_filter

    return slice is None or "findings" not in compile_filter(slice).where


def _hash_key(ws: Workspace, at: vs.DatasetAt, grant: Grant,
              sample_id: str) -> tuple[str, str, str, str | None, str] | None:
    if not _slice_cacheable(grant.slice):
        return None
    return (str(ws.path), at.dataset.id, at.version.id, grant.slice, sample_id)


def _remember_hashes(ws: Workspace, at: vs.DatasetAt, grant: Grant,
                     rows: list[dict[str, Any]]) -> None:
    """Remember the content hashes of visible sample rows (see :class:`_VisibleHashes`)."""
    if rows and _slice_cacheable(grant.slice):
        _visible_hashes.put([(key, r["content_hash"]) for r in rows
                             if (key := _hash_key(ws, at, grant, r["id"])) is not None])


def image_ref(ws: Workspace, principal: Principal, spec: str, sample_id: str) -> ImageRef:
    """The image of one sample the principal may see: one policy decision, then the
    sample's content hash from a per-process cache of visible samples or, on a miss, one
    query of the version (its query cache at scale) for that one column.

    Raises:
        DatasetNotFound: no such dataset, or the principal may not read it.
        RefNotFound: no such branch, tag or version.
        SampleNotFound: no such sample, or it is outside the principal's slice.
    """
    from viewfinder.storage.reader import VersionReader

    at, grant = open_dataset(ws, principal, spec)
    key = _hash_key(ws, at, grant, sample_id)
    content_hash = _visible_hashes.get(key) if key is not None else None
    if content_hash is None:
        combined = combine_filter(grant.slice, ids_filter([sample_id]))
        with VersionReader(ws, at, combined, cached=True) as r:
            found = r.query("SELECT content_hash FROM {m} LIMIT 1").column(0).to_pylist()
        if not found:
            raise SampleNotFound(f"no sample {sample_id!r} in {at.dataset.name}@{at.ref}",
                                 dataset=at.dataset.name, record=sample_id)
        content_hash = found[0]
        if key is not None:
            _visible_hashes.put([(key, content_hash)])
    return ImageRef(at.dataset.name, at.version.id, sample_id, content_hash)


def read_image(ws: Workspace, ref: ImageRef) -> bytes:
    """The bytes of an image :func:`image_ref` allowed (no second access check)."""
    return ws.blobs.read(ref.content_hash)


def image_bytes(ws: Workspace, principal: Principal, spec: str, sample_id: str) -> bytes:
    """The image of one sample the principal may see. Single images are not audited;
    bulk downloads are (:func:`download_images`).

    Raises:
        SampleNotFound: no such sample, or it is outside the principal's slice.
    """
    return read_image(ws, image_ref(ws, principal, spec, sample_id))


def download_images(ws: Workspace, principal: Principal, spec: str, filter: str | None,
                    out: str | Path, *, ip: str | None = None,
                    user_agent: str | None = None) -> int:
    """Write the images of the matching visible samples into a zip file (entries named
    by sample key); how many. Needs ``dataset.export``; audited as ``dataset.download``."""
    at, grant = open_dataset(ws, principal, spec, Action.DATASET_EXPORT)
    combined = combine_filter(grant.slice, filter)
    rows = look.samples_page(ws, _pinned(at), combined, limit=2**62, with_labels=False)
    out = Path(out).resolve()
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
            for r in rows:
                parts = [p for p in PurePosixPath(r["key"]).parts if p not in ("", ".", "..", "/")]
                z.writestr("/".join(parts) or r["id"], ws.blobs.read(r["content_hash"]))
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    audit.record(ws, principal, "dataset.download", resource_kind="dataset",
                 resource_id=at.dataset.name, ip=ip, user_agent=user_agent,
                 details={"filter": filter, "slice": grant.slice, "samples": len(rows),
                          "out": str(out)},
                 after={"version": at.version.id})
    return len(rows)


def diff(ws: Workspace, principal: Principal, name: str, a: str, b: str) -> diff_service.Diff:
    """What changed from ``a`` to ``b``, limited to the principal's slice (a sample counts
    when it is in the slice in either version; a label with its sample)."""
    _at, grant = open_dataset(ws, principal, name)
    d = diff_service.diff(ws, name, a, b)
    if grant.slice is None:
        return d
    at_a = vs.DatasetAt(_at.dataset, d.a, a)
    at_b = vs.DatasetAt(_at.dataset, d.b, b)

    def slice_ids(at: vs.DatasetAt) -> set[str]:
        with look.VersionReader(ws, at, combine_filter(grant.slice, None)) as r:
            return set(r.query("SELECT id FROM {m}").column("id").to_pylist())

    in_a, in_b = slice_ids(at_a), slice_ids(at_b)
    samples = diff_service.TableDiff(
        added=[i for i in d.samples.added if i in in_b],
        removed=[i for i in d.samples.removed if i in in_a],
        changed=[i for i in d.samples.changed if i in in_a or i in in_b])
    tables = ws.tables(_at.dataset)
    label_ids = d.labels.added + d.labels.removed + d.labels.changed
    owner: dict[str, str] = {}
    if label_ids:
        con = duck.connect(la=tables.open("labels", d.a.labels_table_version),
                           lb=tables.open("labels", d.b.labels_table_version),
                           ids=pa.table({"id": pa.array(label_ids, pa.string())}))
        t = duck.query(con, """SELECT id, sample_id FROM la SEMI JOIN ids USING (id)
                               UNION SELECT id, sample_id FROM lb SEMI JOIN ids USING (id)""")
        con.close()
        owner = dict(zip(t.column("id").to_pylist(), t.column("sample_id").to_pylist(), strict=False))
    labels = diff_service.TableDiff(
        added=[i for i in d.labels.added if owner.get(i) in in_b],
        removed=[i for i in d.labels.removed if owner.get(i) in in_a],
        changed=[i for i in d.labels.changed if owner.get(i) in in_a or owner.get(i) in in_b])
    ca = look.stats(ws, _pinned(at_a), combine_filter(grant.slice, None))["classes"]
    cb = look.stats(ws, _pinned(at_b), combine_filter(grant.slice, None))["classes"]
    classes = {k: {"a": ca.get(k, 0), "b": cb.get(k, 0), "delta": cb.get(k, 0) - ca.get(k, 0)}
               for k in sorted(set(ca) | set(cb)) if ca.get(k, 0) != cb.get(k, 0)}
    return replace(d, samples=samples, labels=labels, classes=classes)


# -- exporting and writing ---------------------------------------------------------------

def export(ws: Workspace, principal: Principal, spec: str, out: str | Path, format: str, *,
           filter: str | None = None, images: str = "copy", ip: str | None = None,
           user_agent: str | None = None,
           progress: export_service.Progress | None = None) -> export_service.ExportResult:
    """Export the matching visible samples to a training format; audited as
    ``dataset.export``."""
    at, grant = open_dataset(ws, principal, spec, Action.DATASET_EXPORT)
    result = export_service.export(ws, f"{at.dataset.name}@{at.version.id}", format, out,
                                   filter=combine_filter(grant.slice, filter), images=images,
                                   progress=progress)
    audit.record(ws, principal, "dataset.export", resource_kind="dataset",
                 resource_id=at.dataset.name, ip=ip, user_agent=user_agent,
                 details={"format": result.format, "out": result.out, "filter": filter,
                          "slice": grant.slice, "samples": result.samples,
                          "labels": result.labels, "images": images},
                 after={"version": at.version.id})
    return result


def tag_samples(ws: Workspace, principal: Principal, spec: str, sample_ids: list[str],
                add: list[str] | None = None, remove: list[str] | None = None, *,
                message: str | None = None, ip: str | None = None,
                user_agent: str | None = None) -> vs.CommitResult:
    """Add and remove tags on the given samples of a branch (a new version); audited as
    ``dataset.tag_samples`` with the version before and after.

    A sliced curator may only tag samples in its slice: the slice is part of the filter
    the edit runs at the branch head, and a sample id it may not see is not found.

    Raises:
        SampleNotFound: a sample id does not exist or is outside the slice.
        PermissionDenied: the principal may read but not write the dataset.
    """
    ids = sorted(set(sample_ids))
    if not ids:
        raise InvalidInput("give at least one sample id to tag")
    at, grant = open_dataset(ws, principal, spec, Action.DATASET_WRITE)
    combined = combine_filter(grant.slice, ids_filter(ids))
    with look.VersionReader(ws, at, combined) as r:
        found = set(r.query("SELECT id FROM {m}").column("id").to_pylist())
    missing = [i for i in ids if i not in found]
    if missing:
        raise SampleNotFound(f"no sample {missing[0]!r} in {at.dataset.name}@{at.ref}"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                             dataset=at.dataset.name, record=missing[0])
    with audited_commit(ws, principal, "dataset.tag_samples", at,
                        {"samples": len(ids), "add": list(add or []), "remove": list(remove or [])},
                        ip, user_agent):
        return edit.tag_samples(ws, spec, combined, add=add, remove=remove, message=message,
                                author=principal.username)


def tag_matching(ws: Workspace, principal: Principal, spec: str, filter: str | None,
                 add: list[str] | None = None, remove: list[str] | None = None, *,
                 message: str | None = None, ip: str | None = None,
                 user_agent: str | None = None) -> vs.CommitResult:
    """Add and remove tags on the samples matching ``filter`` (within the principal's
    slice) on a branch; audited as ``dataset.tag_samples``."""
    at, grant = open_dataset(ws, principal, spec, Action.DATASET_WRITE)
    with audited_commit(ws, principal, "dataset.tag_samples", at,
                        {"filter": filter, "slice": grant.slice, "add": list(add or []),
                         "remove": list(remove or [])}, ip, user_agent):
        return edit.tag_samples(ws, spec, combine_filter(grant.slice, filter), add=add,
                                remove=remove, message=message, author=principal.username)


def import_source(ws: Workspace, principal: Principal, source: str | Path, dataset: str, *,
                  project: str | None = None, format: str = "auto", split: str | None = None,
                  mode: Literal["add", "sync"] = "add", on_error: Literal["fail", "skip"] = "fail",
                  message: str | None = None, metadata: str | Path | None = None,
                  branch: str = vs.DEFAULT_BRANCH, workers: int | None = None,
                  progress: ingest.Progress | None = None, rehash: bool = False,
                  ip: str | None = None, user_agent: str | None = None) -> ingest.ImportResult:
    """Import ``source`` into ``dataset``; audited as ``dataset.import``.

    Into an existing dataset it needs unsliced ``dataset.write`` (a sync may remove any
    sample). A new dataset needs ``dataset.create`` in ``project`` (and is added to it),
    or anywhere when no project is named.
    """
    try:
        ws.catalog.get_dataset(dataset)
        exists = True
    except NotFound:
        exists = False
    before: str | None = None
    if exists:
        before = whole_dataset(ws, principal, f"{dataset}@{branch}", "importing a source").version.id
    else:
        proj = orgs.get_project(ws, project) if project else None
        policy.decide(ws, principal, Action.DATASET_CREATE,
                      project_id=proj.id if proj is not None else None)

    def details(version: vs.VersionRecord | None) -> dict[str, Any]:
        extra = version.extra if version is not None else {}
        return {"source": str(source), "format": extra.get("format", format), "mode": mode,
                "branch": branch, "skipped": len(extra.get("skipped", [])), "project": project}

    with audited_commit(ws, principal, "dataset.import", (dataset, branch, before), details,
                        ip, user_agent):
        result = ingest.import_source(ws, source, dataset, format=format, split=split, mode=mode,
                                      on_error=on_error, message=message, metadata=metadata,
                                      branch=branch, author=principal.username, workers=workers,
                                      progress=progress, rehash=rehash)
    if not exists and project:
        orgs.add_dataset(ws, principal, project, dataset)
    return result


def whole_dataset(ws: Workspace, principal: Principal, spec: str, what: str,
                  action: Action = Action.DATASET_WRITE) -> vs.DatasetAt:
    """Check ``action`` for a use case that touches every sample (an edit of the whole
    dataset, a report listing any sample): a sliced grant may not."""
    at, grant = open_dataset(ws, principal, spec, action)
    if grant.slice is not None:
        from viewfinder.errors import PermissionDenied

        verb = "write" if action == Action.DATASET_WRITE else "see"
        raise PermissionDenied(f"{what} covers the whole dataset; {principal.username} may "
                               f"{verb} only the samples where {grant.slice}", dataset=at.dataset.name)
    return at


@contextmanager
def audited_commit(ws: Workspace, principal: Principal, action: str,
                   at: vs.DatasetAt | tuple[str, str, str | None],
                   details: dict[str, Any] | Callable[[vs.VersionRecord | None], dict[str, Any]],
                   ip: str | None, user_agent: str | None) -> Iterator[None]:
    """Record ``action`` in the same catalog transaction as the version the block commits,
    so no crash can keep an edit and lose its event (or the reverse). A block that commits
    nothing changed nothing; its event (``created: false``) is recorded after it.

    Args:
        at: the dataset and branch written (a ``DatasetAt``, or ``(name, branch,
            head_version_id)`` for a dataset that may not exist yet).
        details: the event's details, or a function of the new version (None when
            nothing was committed) that gives them.
    """
    if isinstance(at, vs.DatasetAt):
        name, branch, head = at.dataset.name, at.ref, at.version.id
    else:
        name, branch, head = at
    recorded = False

    def describe(version: vs.VersionRecord | None, created: bool) -> dict[str, Any]:
        d = details(version) if callable(details) else details
        return {"branch": branch, "created": created, **d}

    def hook(conn: Connection, version: vs.VersionRecord) -> None:
        nonlocal recorded
        audit.record(ws, principal, action, resource_kind="dataset", resource_id=name, ip=ip,
                     user_agent=user_agent, details=describe(version, True),
                     before={"version": version.parents[0]}, after={"version": version.id},
                     conn=conn)
        recorded = True

    with vs.on_commit(hook):
        yield
    if not recorded:
        version = {"version": head} if head is not None else None
        audit.record(ws, principal, action, resource_kind="dataset", resource_id=name, ip=ip,
                     user_agent=user_agent, details=describe(None, False), before=version,
                     after=version)


def remap(ws: Workspace, principal: Principal, spec: str, mapping: dict[str, str], *,
          message: str | None = None, ip: str | None = None,
          user_agent: str | None = None) -> vs.CommitResult:
    """Rename or merge classes on a branch; needs unsliced ``dataset.write``; audited."""
    at = whole_dataset(ws, principal, spec, "remapping classes")
    with audited_commit(ws, principal, "dataset.remap", at, {"map": mapping}, ip, user_agent):
        return edit.remap(ws, spec, mapping, message=message, author=principal.username)


def split(ws: Workspace, principal: Principal, spec: str, ratios: dict[str, float], *,
          stratify: bool = False, group_by: str | None = None, seed: int = 0,
          message: str | None = None, ip: str | None = None,
          user_agent: str | None = None) -> vs.CommitResult:
    """Assign every sample a split; needs unsliced ``dataset.write``; audited."""
    at = whole_dataset(ws, principal, spec, "assigning splits")
    with audited_commit(ws, principal, "dataset.split", at,
                        {"ratios": ratios, "stratify": stratify, "group_by": group_by, "seed": seed},
                        ip, user_agent):
        return edit.split(ws, spec, ratios, stratify=stratify, group_by=group_by, seed=seed,
                          message=message, author=principal.username)


def create_tag(ws: Workspace, principal: Principal, spec: str, tag: str, *, ip: str | None = None,
               user_agent: str | None = None) -> RefRecord:
    """Name the version at ``spec``; needs ``dataset.write``; audited as ``dataset.tag``."""
    at, _grant = open_dataset(ws, principal, spec, Action.DATASET_WRITE)
    ref = vs.tag(ws, _pinned(at), tag)
    audit.record(ws, principal, "dataset.tag", resource_kind="dataset", resource_id=at.dataset.name,
                 ip=ip, user_agent=user_agent, details={"tag": tag},
                 after={"version": at.version.id})
    return ref


def create_branch(ws: Workspace, principal: Principal, name: str, new: str, *,
                  from_ref: str | None = None, ip: str | None = None,
                  user_agent: str | None = None) -> RefRecord:
    """A new branch; needs ``dataset.write``; audited as ``dataset.branch``."""
    at, _grant = open_dataset(ws, principal, f"{name}@{from_ref}" if from_ref else name,
                              Action.DATASET_WRITE)
    ref = vs.branch(ws, name, new, from_ref=at.version.id)
    audit.record(ws, principal, "dataset.branch", resource_kind="dataset", resource_id=name,
                 ip=ip, user_agent=user_agent, details={"branch": new, "from": at.ref},
                 after={"version": at.version.id})
    return ref


def merge(ws: Workspace, principal: Principal, name: str, source: str, *,
          into: str = vs.DEFAULT_BRANCH, message: str | None = None, ip: str | None = None,
          user_agent: str | None = None) -> vs.CommitResult:
    """Merge ``source`` into branch ``into``; needs unsliced ``dataset.write``; audited."""
    at = whole_dataset(ws, principal, f"{name}@{into}", "merging")
    with audited_commit(ws, principal, "dataset.merge", at, {"source": source}, ip, user_agent):
        return diff_service.merge(ws, name, source, into=into, message=message,
                                  author=principal.username)


def labeling_queue(ws: Workspace, principal: Principal) -> list[dict[str, Any]]:
    """The labeling tasks assigned to the principal.

    Always empty for now: labeling batches, tasks and assignments do not exist yet, so no
    task can be assigned to anyone. The permission check is real (``labeling.queue``).
    """
    policy.decide(ws, principal, Action.LABELING_QUEUE)
    return []


# -- administration: organization, projects ----------------------------------------------

def create_org(ws: Workspace, principal: Principal, name: str) -> orgs.Organization:
    policy.decide(ws, principal, Action.PROJECT_ADMIN)
    return orgs.create_org(ws, principal, name)


def create_team(ws: Workspace, principal: Principal, org: str, name: str) -> orgs.Team:
    policy.decide(ws, principal, Action.PROJECT_ADMIN, org_id=orgs.get_org(ws, org).id)
    return orgs.create_team(ws, principal, org, name)


def create_project(ws: Workspace, principal: Principal, name: str, *, org: str,
                   team: str | None = None, task_type: str = "detection",
                   label_schema: dict[str, Any] | None = None,
                   datasets: list[str] | None = None) -> orgs.Project:
    """A project in ``org`` (or ``team``); the principal needs ``project.admin`` there and
    must see every dataset it assigns."""
    o = orgs.get_org(ws, org)
    if team is not None:
        policy.decide(ws, principal, Action.PROJECT_ADMIN, team_id=orgs.get_team(ws, team).id)
    else:
        policy.decide(ws, principal, Action.PROJECT_ADMIN, org_id=o.id)
    for d in datasets or []:
        policy.decide(ws, principal, Action.DATASET_READ, dataset=d)
    return orgs.create_project(ws, principal, name, org=org, team=team, task_type=task_type,
                               label_schema=label_schema, dataset_names=datasets)


def add_dataset_to_project(ws: Workspace, principal: Principal, project: str, dataset: str) -> None:
    p = _visible_project(ws, principal, project)
    policy.decide(ws, principal, Action.PROJECT_ADMIN, project_id=p.id)
    policy.decide(ws, principal, Action.DATASET_READ, dataset=dataset)
    orgs.add_dataset(ws, principal, project, dataset)


def _visible_project(ws: Workspace, principal: Principal, name: str) -> orgs.Project:
    for p in list_projects(ws, principal):
        if p.name == name:
            return p
    raise orgs.ProjectNotFound(f"no project named {name!r}")


def list_projects(ws: Workspace, principal: Principal) -> list[orgs.Project]:
    """The projects where the principal has any role (all of them for the system)."""
    out = []
    for p in orgs.list_projects(ws):
        if principal.is_system:
            out.append(p)
            continue
        try:
            policy.decide(ws, principal, Action.DATASET_READ, project_id=p.id)
        except (NotFound, PermissionError):
            try:
                policy.decide(ws, principal, Action.LABELING_QUEUE, project_id=p.id)
            except (NotFound, PermissionError):
                continue
        out.append(p)
    return out


# -- administration: members and tokens --------------------------------------------------

def create_user(ws: Workspace, principal: Principal, username: str, password: str | None = None, *,
                display_name: str | None = None, ip: str | None = None,
                user_agent: str | None = None) -> users.User:
    policy.decide(ws, principal, Action.MEMBERS_ADMIN)
    return users.create_user(ws, principal, username, password, display_name=display_name,
                             ip=ip, user_agent=user_agent)


def list_users(ws: Workspace, principal: Principal) -> list[users.User]:
    policy.decide(ws, principal, Action.MEMBERS_ADMIN)
    return users.list_users(ws)


def deactivate_user(ws: Workspace, principal: Principal, username: str, *, ip: str | None = None,
                    user_agent: str | None = None) -> None:
    policy.decide(ws, principal, Action.MEMBERS_ADMIN)
    users.deactivate(ws, principal, username, ip=ip, user_agent=user_agent)


def set_password(ws: Workspace, principal: Principal, username: str, password: str, *,
                 ip: str | None = None, user_agent: str | None = None) -> None:
    """Users change their own password; members admins anyone's."""
    if principal.username != username or principal.kind != "user":
        policy.decide(ws, principal, Action.MEMBERS_ADMIN)
    users.set_password(ws, principal, username, password, ip=ip, user_agent=user_agent)


def _scope_decision(ws: Workspace, principal: Principal, scope_kind: str, scope_name: str) -> None:
    sid = roles.scope_id(ws, scope_kind, scope_name)
    where = {"org": "org_id", "team": "team_id", "project": "project_id"}[scope_kind]
    policy.decide(ws, principal, Action.MEMBERS_ADMIN, **{where: sid})


def grant_role(ws: Workspace, principal: Principal, username: str, role: roles.Role | str, *,
               scope_kind: str, scope_name: str, slice: str | None = None,
               ip: str | None = None, user_agent: str | None = None) -> roles.RoleBinding:
    """Bind ``role`` to ``username`` at a scope; needs ``members.admin`` at that scope."""
    _scope_decision(ws, principal, scope_kind, scope_name)
    return roles.grant(ws, principal, username, role, scope_kind=scope_kind,
                       scope_name=scope_name, slice=slice, ip=ip, user_agent=user_agent)


def revoke_role(ws: Workspace, principal: Principal, username: str, role: roles.Role | str, *,
                scope_kind: str, scope_name: str, slice: str | None = None,
                ip: str | None = None, user_agent: str | None = None) -> int:
    _scope_decision(ws, principal, scope_kind, scope_name)
    return roles.revoke(ws, principal, username, role, scope_kind=scope_kind,
                        scope_name=scope_name, slice=slice, ip=ip, user_agent=user_agent)


def list_bindings(ws: Workspace, principal: Principal, username: str | None = None) -> list[roles.RoleBinding]:
    """Role bindings of ``username``, or all those the principal may see when None:
    everyone's for a members admin, its own for anyone else."""
    return roles.list_bindings(ws, _whose(ws, principal, username))


def _whose(ws: Workspace, principal: Principal, username: str | None) -> str | None:
    """The user name to list for: another user's needs ``members.admin``; None means
    everyone for a members admin and oneself for anyone else."""
    if username is not None and username == principal.username:
        return username
    try:
        policy.decide(ws, principal, Action.MEMBERS_ADMIN)
    except PermissionError:
        if username is None and principal.user_id is not None:
            return principal.username
        raise
    return username


def create_token(ws: Workspace, principal: Principal, username: str, name: str, *,
                 scopes: list[str] | tuple[str, ...] = tokens.DEFAULT_SCOPES,
                 expires_in: timedelta | None = tokens.DEFAULT_EXPIRY, ip: str | None = None,
                 user_agent: str | None = None) -> tuple[str, tokens.TokenInfo]:
    """A token for oneself (any logged-in user) or for anyone (members admins). A token
    can only make tokens with no more scopes than its own."""
    if principal.is_anonymous or username != principal.username:
        policy.decide(ws, principal, Action.MEMBERS_ADMIN)
    if principal.scopes is not None and not set(scopes) <= principal.scopes:
        from viewfinder.errors import PermissionDenied

        raise PermissionDenied(f"a token with scopes {sorted(principal.scopes)} cannot create "
                               f"one with scopes {sorted(set(scopes))}")
    return tokens.create_token(ws, principal, username, name, scopes=scopes,
                               expires_in=expires_in, ip=ip, user_agent=user_agent)


def list_tokens(ws: Workspace, principal: Principal, username: str | None = None) -> list[tokens.TokenInfo]:
    """Tokens of ``username``, or all the principal may see when None (as
    :func:`list_bindings`)."""
    return tokens.list_tokens(ws, _whose(ws, principal, username))


def revoke_token(ws: Workspace, principal: Principal, token_id: str, *, ip: str | None = None,
                 user_agent: str | None = None) -> tokens.TokenInfo:
    """Revoke one's own token, or anyone's as a members admin (others' tokens are not found)."""
    info = tokens.get_token(ws, token_id)
    if info.user_id != principal.user_id:
        try:
            policy.decide(ws, principal, Action.MEMBERS_ADMIN)
        except PermissionError:
            raise tokens.TokenNotFound(f"no API token with id {token_id!r}") from None
    return tokens.revoke_token(ws, principal, token_id, ip=ip, user_agent=user_agent)


# -- audit -------------------------------------------------------------------------------

def audit_verify(ws: Workspace, principal: Principal) -> audit.VerifyResult:
    policy.decide(ws, principal, Action.AUDIT_READ)
    return audit.verify(ws)


def audit_events(ws: Workspace, principal: Principal, filters: AuditFilter | None = None, *,
                 limit: int | None = 1000) -> list[audit.AuditEvent]:
    policy.decide(ws, principal, Action.AUDIT_READ)
    return audit.query(ws, filters, limit=limit)


def audit_export(ws: Workspace, principal: Principal, out: str | Path,
                 filters: AuditFilter | None = None) -> int:
    """Export the matching events as JSON lines; the export itself is audited."""
    policy.decide(ws, principal, Action.AUDIT_READ)
    n = audit.export_jsonl(ws, out, filters)
    f = filters or AuditFilter()
    audit.record(ws, principal, "audit.export", resource_kind="audit", resource_id=None,
                 details={"out": str(Path(out).resolve()), "events": n, "actor": f.actor,
                          "action": f.action, "since": f.since.isoformat() if f.since else None})
    return n
