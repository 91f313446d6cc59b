"""Dataset pages: the browser (grid, filter bar, class and split facets, bulk tagging),
sample detail, versions (history graph), diff, and quality (check report and findings).

Every read goes through ``services.access`` (or the quality API's slice-aware reads) with
the page user's principal: a dataset the user may not read is a 404 page, and a curator
narrowed to a slice sees only that slice's samples, counts, findings and diffs.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from viewfinder.errors import FilterSyntaxError, PermissionDenied
from viewfinder.governance.principal import Principal
from viewfinder.server.deps import WorkspaceDep
from viewfinder.server.ui.common import PageUserDep, UIRoute, render
from viewfinder.storage.workspace import Workspace

router = APIRouter(route_class=UIRoute, include_in_schema=False)

PAGE_SIZE = 100
"""Samples per request of the grid (the API's page)."""
MAX_PAIRS = 40
"""Changed samples shown side by side on the diff page."""
MAX_LABEL_LOOKUP = 2000
"""Changed labels whose samples the diff page looks up (the rest are counted only)."""

RefQuery = Annotated[str, Query(max_length=200)]
FilterQuery = Annotated[str, Query(max_length=10_000)]


def _spec(name: str, ref: str) -> str:
    return f"{name}@{ref}"


def _q(value: str) -> str:
    return quote(value, safe="")


def class_index(ws: Workspace, name: str, version: str) -> dict[str, int]:
    """Class name -> palette index: the position in the version's class list (the label
    schema's order), so a class keeps its color on every page and in every version that
    has the same schema. Call after the access check."""
    from viewfinder.services import versions as vs

    summary = vs.resolve(ws, _spec(name, version)).version.summary
    names = list(summary.get("class_list") or []) or sorted(summary.get("classes") or {})
    for extra in sorted(summary.get("classes") or {}):
        if extra not in names:
            names.append(extra)
    return {n: i for i, n in enumerate(names)}


def _may(ws: Workspace, principal: Principal, action: str, dataset: str) -> bool:
    from viewfinder.errors import NotFound
    from viewfinder.governance import policy

    try:
        policy.decide(ws, principal, action, dataset=dataset)
    except (PermissionDenied, NotFound):
        return False
    return True


def _is_branch(ws: Workspace, name: str, ref: str) -> bool:
    rec = ws.catalog.get_dataset(name)
    r = ws.catalog.get_ref(rec.id, ref)
    return r is not None and r.kind == "branch"


def _node_text(field: str, value: str | None) -> str:
    """A filter condition printed from the syntax tree (no text pasted together)."""
    from viewfinder.storage.query import Comparison, Field, Literal

    return str(Comparison(Field(field), "==", Literal(value)))


def _and(current: str, condition: str) -> str:
    """``current`` narrowed by ``condition`` (the facet links)."""
    current = current.strip()
    if not current or current == condition:
        return condition
    if condition in current:
        return current
    return f"({current}) and {condition}" if " or " in current.lower() else f"{current} and {condition}"


@router.get("/datasets/{name}", response_class=HTMLResponse)
def browse(request: Request, name: str, ws: WorkspaceDep, page: PageUserDep,
           ref: RefQuery = "main", filter: FilterQuery = "") -> HTMLResponse:
    """The dataset browser: filter bar, class and split counts, and the image grid."""
    from viewfinder.governance.roles import Action
    from viewfinder.server.ui.pages_jobs import export_form
    from viewfinder.services import access
    from viewfinder.services import versions as vs

    p = page.principal
    everything = access.stats(ws, p, _spec(name, ref), None)
    version = everything["version"]
    pinned = _spec(name, version)
    shown: dict[str, Any] | None = everything
    filter_error: dict[str, Any] | None = None
    if filter.strip():
        try:
            shown = access.stats(ws, p, pinned, filter)
        except FilterSyntaxError as e:
            shown = None
            filter_error = {"message": e.message, "column": max(1, e.column),
                            "expression": e.expression}
    counts = shown or everything
    colors = class_index(ws, name, version)
    can_tag = _may(ws, p, Action.DATASET_WRITE, name) and _is_branch(ws, name, ref)
    total = int(shown["samples"]) if shown is not None else 0
    context = {
        "dataset": name, "ref": ref, "version": version, "filter": filter,
        "filter_error": filter_error, "total": total, "can_tag": can_tag,
        "class_counts": sorted((counts.get("classes") or {}).items(), key=lambda kv: (-kv[1], kv[0])),
        "split_counts": sorted((counts.get("splits") or {}).items()),
        "class_index": colors, "no_split": vs.NO_SPLIT,
        "facet_filter": lambda cond: _and("" if filter_error else filter, cond),
        "page_data": {"dataset": name, "ref": ref, "version": version,
                      "filter": "" if filter_error else filter.strip(), "total": total,
                      "class_index": colors, "page_size": PAGE_SIZE, "can_tag": can_tag},
        "facet_class": lambda n: _node_text("label.class", n),
        "facet_split": lambda n: _node_text("split", None if n == vs.NO_SPLIT else n),
        "export_form": export_form(ws, p, name, version, "" if filter_error else filter),
    }
    return render(request, "dataset.html", context, status_code=400 if filter_error else 200)


def _sample_findings(ws: Workspace, principal: Principal, name: str, version: str,
                     sample_id: str) -> list[dict[str, Any]]:
    from viewfinder.services.access_quality import findings

    return findings(ws, principal, f"{name}@{version}", sample_id=sample_id)


@router.get("/datasets/{name}/samples/{sample_id}", response_class=HTMLResponse)
def sample(request: Request, name: str, sample_id: str, ws: WorkspaceDep, page: PageUserDep,
           ref: RefQuery = "main") -> HTMLResponse:
    """One sample: the full image with its labels (zoom, per-class toggles), metadata,
    findings and its history across versions."""
    from viewfinder.services import access

    d = access.sample_detail(ws, page.principal, _spec(name, ref), sample_id)
    version, s = d["version"], d["sample"]
    base = f"/api/v1/datasets/{_q(name)}/samples/{_q(s['id'])}"
    labels = [{k: lab.get(k) for k in ("id", "class_name", "kind", "x", "y", "w", "h",
                                       "polygon", "mask", "score", "source")}
              for lab in s.get("labels", [])]
    per_class: dict[str, int] = {}
    for lab in labels:
        per_class[lab["class_name"]] = per_class.get(lab["class_name"], 0) + 1
    colors = class_index(ws, name, version)
    history = [{"version": h["version"], "created_at": h["created_at"], "author": h["author"],
                "message": h["message"], "change": _history_change(h)}
               for h in reversed(d["history"])]
    sample_view = {"id": s["id"], "key": s["key"], "width": s["width"], "height": s["height"],
                   "split": s.get("split"), "tags": list(s.get("tags") or []),
                   "metadata": s.get("metadata") or {}, "labels": labels,
                   "content_hash": s.get("content_hash"), "media_type": s.get("media_type"),
                   "image": f"{base}/image?ref={_q(version)}", "history": history}
    return render(request, "sample.html", {
        "dataset": name, "ref": ref, "version": version, "sample": sample_view,
        "label_classes": sorted(per_class.items(), key=lambda kv: (colors.get(kv[0], 0), kv[0])),
        "class_index": colors,
        "findings": _sample_findings(ws, page.principal, name, version, s["id"]),
        "page_data": {"width": s["width"], "height": s["height"], "labels": labels,
                      "class_index": colors},
    })


def _history_change(h: dict[str, Any]) -> str:
    parts = []
    if h.get("sample"):
        parts.append(f"sample {h['sample']}")
    for what, n in (h.get("labels") or {}).items():
        if n:
            parts.append(f"{n} label{'s' if n != 1 else ''} {what}")
    return ", ".join(parts) + (f" — {h['message']}" if h.get("message") else "")


@router.get("/datasets/{name}/versions", response_class=HTMLResponse)
def versions(request: Request, name: str, ws: WorkspaceDep, page: PageUserDep,
             ref: RefQuery = "main") -> HTMLResponse:
    """Every version of the dataset (all branches), newest first, as a graph and a table."""
    from viewfinder.services import access
    from viewfinder.services import versions as vs

    at, grant = access.open_dataset(ws, page.principal, _spec(name, ref))
    refs = vs.refs_by_version(ws, at.dataset)
    allv = sorted(ws.catalog.all_versions(at.dataset.id).values(), key=lambda v: v.created_at,
                  reverse=True)
    sliced = grant.slice is not None
    rows = [{"id": v.id, "parents": list(v.parents), "author": v.author, "message": v.message,
             "created_at": v.created_at.isoformat(),
             "refs": [r.name for r in sorted(refs.get(v.id, []), key=lambda r: (r.kind, r.name))],
             # whole-dataset counts are not shown to a user who sees a slice of it
             "summary": {} if sliced else {"samples": v.summary.get("samples", 0),
                                           "labels": v.summary.get("labels", 0)}}
            for v in allv]
    branches = sorted(((r.name, r.version_id) for rs in refs.values() for r in rs if r.kind == "branch"),
                      key=lambda b: (b[0] != vs.DEFAULT_BRANCH, b[0]))
    return render(request, "versions.html", {
        "dataset": name, "ref": ref, "versions": rows, "sliced": sliced,
        "page_data": {"dataset": name, "versions": rows,
                      "branches": [{"name": n, "head": h} for n, h in branches]},
    })


def _find(ws: Workspace, principal: Principal, name: str, version: str,
          sample_ids: list[str], label_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The visible samples of ``version`` among ``sample_ids`` or owning ``label_ids``."""
    from viewfinder.services import access
    from viewfinder.storage.query import Field, InList, Literal, Or

    parts = [InList(Field(f), tuple(Literal(i) for i in ids))
             for f, ids in (("id", sample_ids), ("label.id", label_ids)) if ids]
    if not parts:
        return {}
    expr = parts[0] if len(parts) == 1 else Or(tuple(parts))
    rows = access.samples_page(ws, principal, _spec(name, version), str(expr), limit=10**9)
    return {r["id"]: r for r in rows}


@router.get("/datasets/{name}/diff", response_class=HTMLResponse)
def diff(request: Request, name: str, ws: WorkspaceDep, page: PageUserDep, ref: RefQuery = "main",
         a: Annotated[str | None, Query(max_length=200)] = None,
         b: Annotated[str | None, Query(max_length=200)] = None) -> HTMLResponse:
    """What changed from ``a`` to ``b`` (default: ``ref`` against its parent): counts, then
    the changed samples with their labels before and after, side by side."""
    from viewfinder.services import access

    at_b, _grant = access.open_dataset(ws, page.principal, _spec(name, b or ref))
    if a is None:
        a = at_b.version.parents[0] if at_b.version.parents else at_b.version.id
    d = access.diff(ws, page.principal, name, a, at_b.version.id)
    # only the first MAX_PAIRS changed samples are looked up and shown (by id, then by key):
    # a diff of a million samples costs the page what forty do
    sample_ids = sorted(set(d.samples.changed + d.samples.added + d.samples.removed))
    label_ids = sorted(set(d.labels.changed + d.labels.added + d.labels.removed))
    wanted = sample_ids[:MAX_PAIRS]
    lookup = label_ids[:MAX_LABEL_LOOKUP] if len(wanted) < MAX_PAIRS else []
    before = _find(ws, page.principal, name, d.a.id, wanted, lookup)
    after = _find(ws, page.principal, name, d.b.id, wanted, lookup)
    keys = {sid: r["key"] for sid, r in (before | after).items()}
    ordered = sorted(keys, key=lambda sid: keys[sid])
    more = len(sample_ids) > len(wanted) or len(label_ids) > len(lookup) or len(ordered) > MAX_PAIRS
    colors = class_index(ws, name, d.b.id)
    pairs = []
    for sid in ordered[:MAX_PAIRS]:
        x, y = before.get(sid), after.get(sid)
        if x is None and y is None:
            continue
        pairs.append({"id": sid, "key": (y or x)["key"],  # type: ignore[index]
                      "change": "added" if x is None else "removed" if y is None else "changed",
                      "before": _side(name, d.a.id, x), "after": _side(name, d.b.id, y),
                      "before_count": len(x["labels"]) if x else 0,
                      "after_count": len(y["labels"]) if y else 0,
                      "what": what_changed(x, y)})
    classes = sorted(d.classes.items())
    columns = sorted({k for _, row in classes for k in row})
    return render(request, "diff.html", {
        "dataset": name, "ref": ref, "a": d.a.id, "b": d.b.id,
        "counts": {"samples": d.samples.counts(), "labels": d.labels.counts()},
        "classes": classes, "class_columns": columns, "class_index": colors,
        "pairs": pairs, "more": more,
        "page_data": {"class_index": colors, "pairs": [
            {"id": p["id"], "before": p["before"], "after": p["after"]} for p in pairs]},
    })


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit - 1] + "…"


_GEOMETRY = ("class_name", "kind", "x", "y", "w", "h", "polygon", "mask", "attributes", "score")


def what_changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """One line per change of a sample between two versions, as a reviewer reads them:
    tags, split, metadata keys, labels added/removed/changed.

    Example:
        >>> what_changed({"tags": [], "split": "train", "metadata": {}, "labels": []},
        ...              {"tags": ["hard"], "split": "val", "metadata": {}, "labels": []})
        ['tag + hard', 'split: train → val']
    """
    if before is None or after is None:
        return []
    out: list[str] = []
    tb, ta = set(before.get("tags") or []), set(after.get("tags") or [])
    out += [f"tag + {t}" for t in sorted(ta - tb)] + [f"tag − {t}" for t in sorted(tb - ta)]
    if before.get("split") != after.get("split"):
        out.append(f"split: {before.get('split') or '—'} → {after.get('split') or '—'}")
    mb, ma = before.get("metadata") or {}, after.get("metadata") or {}
    for k in sorted(set(mb) | set(ma)):
        if mb.get(k) != ma.get(k):
            out.append(f"metadata.{k}: {_short(mb[k]) if k in mb else '—'} → "
                       f"{_short(ma[k]) if k in ma else '—'}")
    lb = {lab["id"]: lab for lab in before.get("labels") or []}
    la = {lab["id"]: lab for lab in after.get("labels") or []}
    for verb, ids, side in (("added", la.keys() - lb.keys(), la), ("removed", lb.keys() - la.keys(), lb)):
        for i in sorted(ids, key=lambda i: side[i]["class_name"]):
            out.append(f"label {verb}: {side[i]['class_name']}")
    for i in sorted(lb.keys() & la.keys()):
        old, new = lb[i], la[i]
        if old["class_name"] != new["class_name"]:
            out.append(f"label class: {old['class_name']} → {new['class_name']}")
        elif any(old.get(k) != new.get(k) for k in _GEOMETRY):
            out.append(f"label changed: {new['class_name']}")
    return out


def _side(name: str, version: str, row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"width": row["width"], "height": row["height"],
            "thumbnail": f"/api/v1/datasets/{_q(name)}/samples/{_q(row['id'])}/thumbnail"
                         f"?ref={_q(version)}&size=256",
            "labels": [{k: lab.get(k) for k in ("class_name", "kind", "x", "y", "w", "h",
                                                "polygon", "mask", "source")}
                       for lab in row.get("labels", [])]}


@router.get("/datasets/{name}/quality", response_class=HTMLResponse)
def quality(request: Request, name: str, ws: WorkspaceDep, page: PageUserDep,
            ref: RefQuery = "main") -> HTMLResponse:
    """The version's newest check report and its findings (what the user may see of them)."""
    from viewfinder.services.access import open_dataset
    from viewfinder.services.access_quality import findings, latest_report

    at, _grant = open_dataset(ws, page.principal, f"{name}@{ref}")
    pinned = f"{name}@{at.version.id}"
    report = {"version": at.version.id, "report": latest_report(ws, page.principal, pinned)}
    rows = findings(ws, page.principal, pinned, limit=500)
    per_kind: dict[str, int] = {}
    for f in rows:
        per_kind[f["kind"]] = per_kind.get(f["kind"], 0) + 1
    return render(request, "quality.html", {
        "dataset": name, "ref": ref, "version": report["version"], "report": report["report"],
        "findings": rows, "finding_counts": sorted(per_kind.items()),
    })
