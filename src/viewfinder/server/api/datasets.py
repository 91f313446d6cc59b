"""``/api/v1/datasets``: browse datasets, versions, samples with labels, images, diffs, and
tag samples. Every answer comes from ``services.access``, which checks the caller's roles
(and slice) first; a dataset or sample the caller may not see is a 404."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response

from viewfinder.server.api.schemas import (
    DatasetOut,
    SampleDetail,
    SampleOut,
    SamplesPage,
    TagRequest,
    VersionOut,
)
from viewfinder.server.deps import StateDep, UserDep, WorkspaceDep, origin

router = APIRouter(prefix="/datasets", tags=["datasets"])

MAX_PAGE = 500
RefQuery = Annotated[str, Query(max_length=200, description="Branch, tag or version id.")]
FilterQuery = Annotated[str | None, Query(max_length=10_000, description=(
    'Filter expression, e.g. label.class == "car" and split == "val".'))]


def _spec(name: str, ref: str) -> str:
    return f"{name}@{ref}"


def _urls(name: str, version: str, sample_id: str) -> dict[str, str]:
    """Image URLs pinned to the version id (immutable, so browsers may cache them)."""
    base = f"/api/v1/datasets/{quote(name, safe='')}/samples/{quote(sample_id, safe='')}"
    return {"thumbnail": f"{base}/thumbnail?ref={version}", "image": f"{base}/image?ref={version}"}


def id_filter(sample_id: str) -> str:
    """A filter selecting one sample id, printed from a syntax tree (no text pasted)."""
    from viewfinder.storage.query import Comparison, Field, Literal

    return str(Comparison(Field("id"), "==", Literal(sample_id)))


def _label(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in ("id", "class_name", "kind", "x", "y", "w", "h", "polygon",
                                    "mask", "score", "source")} | {"attributes": row.get("attributes") or {}}


def _sample(name: str, version: str, row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "key": row["key"], "content_hash": row["content_hash"],
            "width": row["width"], "height": row["height"],
            "split": row.get("split"), "tags": list(row.get("tags") or []),
            "metadata": row.get("metadata") or {},
            "labels": [_label(lab) for lab in row.get("labels", [])],
            **_urls(name, version, row["id"])}


@router.get("", response_model=list[DatasetOut])
def list_datasets(ws: WorkspaceDep, principal: UserDep) -> list[dict[str, Any]]:
    """The datasets the caller may see, with their main branch's size."""
    from viewfinder.services import access

    return access.list_datasets(ws, principal)


@router.get("/{name}/versions", response_model=list[VersionOut])
def list_versions(name: str, ws: WorkspaceDep, principal: UserDep,
                  ref: RefQuery = "main") -> list[dict[str, Any]]:
    """The history reachable from ``ref``, newest first, with the branches and tags
    pointing at each. A caller limited to a slice sees no whole-dataset summaries."""
    from viewfinder.services import access
    from viewfinder.services import versions as vs

    at, grant = access.open_dataset(ws, principal, _spec(name, ref))
    refs = vs.refs_by_version(ws, at.dataset)
    return [{"id": v.id, "parents": v.parents, "author": v.author, "message": v.message,
             "created_at": v.created_at.isoformat(),
             "refs": [r.name for r in refs.get(v.id, [])],
             "summary": v.summary if grant.slice is None else {}}
            for v in vs.log(ws, f"{name}@{at.version.id}")]


@router.get("/{name}/samples", response_class=Response,
            responses={200: {"model": SamplesPage, "content": {"application/json": {}}}})
def samples_page(name: str, ws: WorkspaceDep, principal: UserDep, ref: RefQuery = "main",
                 filter: FilterQuery = None,
                 limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
                 offset: Annotated[int, Query(ge=0)] = 0) -> Response:
    """One page of the samples matching ``filter`` (in key order), each with its labels.

    The hot path of the image grid: the page is encoded straight from the service's rows
    (already plain JSON types), without a validation pass over every label."""
    import orjson

    from viewfinder.services import access

    page = access.page(ws, principal, _spec(name, ref), filter or None, limit=limit + 1, offset=offset)
    version, rows = page.version_id, page.rows
    body = {"dataset": name, "version": version,
            "samples": [_sample(name, version, r) for r in rows[:limit]],
            "next_offset": offset + limit if len(rows) > limit else None}
    return Response(orjson.dumps(body),  # ~8x faster than json.dumps on a 1,000-label page
                    media_type="application/json")


@router.get("/{name}/stats")
def stats(name: str, ws: WorkspaceDep, principal: UserDep, ref: RefQuery = "main",
          filter: FilterQuery = None) -> dict[str, Any]:
    """Sample, label, class and split counts and box sizes of the (filtered) version."""
    from viewfinder.services import access

    return access.stats(ws, principal, _spec(name, ref), filter or None)


@router.get("/{name}/samples/{sample_id}", response_model=SampleDetail)
def sample_detail(name: str, sample_id: str, ws: WorkspaceDep, principal: UserDep,
                  ref: RefQuery = "main",
                  history: Annotated[bool, Query(description=(
                      "Include the versions that changed the sample (reads every version's "
                      "tables: slower on large datasets)."))] = True) -> dict[str, Any]:
    """One sample with its labels and, unless ``history=false``, its history."""
    from viewfinder.services import access

    if history:
        d = access.sample_detail(ws, principal, _spec(name, ref), sample_id)
        version, row, changes = d["version"], d["sample"], d["history"]
    else:
        page = access.page(ws, principal, _spec(name, ref), id_filter(sample_id), limit=1)
        version, rows, changes = page.version_id, page.rows, []
        if not rows:
            raise access.SampleNotFound(f"no sample {sample_id!r} in {name}@{ref}", dataset=name,
                                        record=sample_id)
        row = rows[0]
    return {**_sample(name, version, row), "media_type": row.get("media_type"),
            "size_bytes": row.get("size_bytes"), "history": changes}


def _not_modified(request: Request, etag: str) -> bool:
    return etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}


def _cache_control(ref: str, version_id: str) -> str:
    """An image answer may be cached for good only when the request named the version
    itself (versions are immutable; a branch moves). Never in shared caches: every image
    is behind an access check."""
    return "private, max-age=31536000, immutable" if ref == version_id else "private, no-cache"


@router.get("/{name}/samples/{sample_id}/image", response_class=Response,
            responses={200: {"content": {"image/*": {}}}})
def image(name: str, sample_id: str, request: Request, ws: WorkspaceDep, principal: UserDep,
          ref: RefQuery = "main") -> Response:
    """The image's bytes as stored (after the access check). The ETag is the content
    hash, so a revalidation is answered without reading the image."""
    from viewfinder.server.thumbnails import sniff_media_type
    from viewfinder.services import access

    img = access.image_ref(ws, principal, _spec(name, ref), sample_id)
    etag = f'"{img.content_hash[:32]}"'
    headers = {"ETag": etag, "Cache-Control": _cache_control(ref, img.version_id)}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    data = access.read_image(ws, img)
    media_type = sniff_media_type(data)
    headers["Content-Disposition"] = "inline" if media_type else "attachment"
    return Response(data, media_type=media_type or "application/octet-stream", headers=headers)


@router.get("/{name}/samples/{sample_id}/thumbnail", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
def thumbnail(name: str, sample_id: str, request: Request, state: StateDep, principal: UserDep,
              ref: RefQuery = "main",
              size: Annotated[int | None, Query(ge=1, le=4096, description=(
                  "Longest side in pixels; snapped to 64, 128, 256 or 512."))] = None) -> Response:
    """A JPEG thumbnail, rendered once per image and size and then served from the cache.
    ``X-Thumbnail-Cache`` says ``hit`` or ``miss``.

    The hot path of the image grid: one access check (which finds the sample's content
    hash, usually in memory: the page listing it was just served), then the cached file."""
    from viewfinder.server.thumbnails import MEDIA_TYPE, clamp_size, thumbnail_etag
    from viewfinder.services import access

    ws = state.ws
    px = clamp_size(size, state.settings.thumbnail_size)
    img = access.image_ref(ws, principal, _spec(name, ref), sample_id)
    headers = {"ETag": thumbnail_etag(img.content_hash, px),
               "Cache-Control": _cache_control(ref, img.version_id)}
    if _not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    thumb = state.thumbnails.get(img.content_hash, px, lambda _h: access.read_image(ws, img))
    return Response(thumb.data, media_type=MEDIA_TYPE,
                    headers=headers | {"X-Thumbnail-Cache": "hit" if thumb.cached else "miss"})


@router.get("/{name}/diff")
def diff(name: str, ws: WorkspaceDep, principal: UserDep,
         a: Annotated[str, Query(max_length=200)], b: Annotated[str, Query(max_length=200)],
         ids: bool = False) -> dict[str, Any]:
    """What changed from ``a`` to ``b``: sample and label counts (ids with ``ids=true``)."""
    from viewfinder.services import access

    return access.diff(ws, principal, name, a, b).to_dict(ids=ids)


@router.post("/{name}/samples/tags")
def tag_samples(name: str, body: TagRequest, request: Request, ws: WorkspaceDep,
                principal: UserDep) -> dict[str, Any]:
    """Add and remove tags on the listed samples; commits a new version on ``ref``
    (which must be a branch). ``created`` is false when nothing changed."""
    from viewfinder.services import access

    result = access.tag_samples(ws, principal, _spec(name, body.ref), body.sample_ids,
                                add=body.add, remove=body.remove, **origin(request))
    return {"dataset": name, "version": result.version.id, "created": result.created}


__all__ = ["SampleOut", "id_filter", "router"]
