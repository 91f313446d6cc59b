"""Similarity search: the samples of a version whose images look most like one sample's.

Vectors come from the stored embeddings (computed on first use, then read back), so the
first search of a version pays for embedding its images and later ones take milliseconds.

Example:
    >>> for hit in similar(ws, "street@main", "9f2c…", k=5):    # doctest: +SKIP
    ...     print(hit["key"], round(hit["distance"], 3))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from viewfinder.errors import InvalidInput, NotFound
from viewfinder.quality.context import Progress, QualityContext
from viewfinder.services import versions as vs
from viewfinder.storage.workspace import Workspace


def similar(ws: Workspace, spec: str, sample_id: str, k: int = 10, provider: str = "builtin", *,
            model: str | None = None, progress: Progress | None = None,
            filter: str | None = None) -> list[dict[str, Any]]:
    """The ``k`` samples of ``spec`` nearest to sample ``sample_id``, nearest first.

    Samples holding the very same image as the query (exact duplicates, distance 0) come
    first; a sample's own row is never returned.

    Args:
        ws: the open workspace.
        spec: ``NAME`` or ``NAME@REF``.
        sample_id: the query sample's id (its key is accepted too).
        k: how many samples to return.
        provider: the embedding provider (``builtin``, ``clip``, ``dinov2``).
        model: weights of a learned provider (local folder or model-hub id).
        progress: ``progress(stage, done, total)`` while embeddings are computed.
        filter: search only among the samples matching it (a caller's slice); the query
            sample must match it too.

    Returns:
        Dicts with ``sample_id``, ``key``, ``split``, ``content_hash`` and ``distance``
        (cosine distance, 0 = same look, 2 = opposite).

    Raises:
        NotFound: no sample ``sample_id`` in the version.
        InvalidInput: ``k`` < 1, or the query sample's image cannot be decoded.
    """
    from viewfinder.quality.embeddings import get_provider, store
    from viewfinder.quality.neighbors import nearest

    if k < 1:
        raise InvalidInput(f"k must be at least 1, got {k}")
    at = vs.resolve(ws, spec)
    emb = get_provider(provider, model=model)
    with QualityContext(ws, at, progress=progress) as ctx:
        samples = ctx.sample_hashes.to_pylist()
        if filter is not None:
            allowed = set(ctx.sql("SELECT id FROM {m}", filter=filter).column("id").to_pylist())
            samples = [s for s in samples if s["id"] in allowed]
        query = next((s for s in samples if s["id"] == sample_id), None) or \
            next((s for s in samples if s["key"] == sample_id), None)
        if query is None:
            raise NotFound(f"no sample {sample_id!r} in {at.dataset.name}@{at.ref}",
                           record=sample_id, dataset=at.dataset.name)
        hashes, vectors = store.compute(ctx, emb)
    position = {h: i for i, h in enumerate(hashes)}
    if query["content_hash"] not in position:
        raise InvalidInput(f"the image of sample {query['key']!r} cannot be decoded, so it has "
                           "no embedding (run a quality scan to see why)", record=query["id"])
    by_hash: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        by_hash.setdefault(s["content_hash"], []).append(s)
    # enough distinct images to fill k samples even when the nearest ones are duplicated
    want = min(len(hashes), k + 1)
    while True:
        idx, dist = nearest(vectors, vectors[position[query["content_hash"]]][None, :], want)
        hits = _expand(idx[0], dist[0], hashes, by_hash, query)
        if len(hits) >= k or want >= len(hashes):
            return hits[:k]
        want = min(len(hashes), want * 2)


def _expand(idx: np.ndarray, dist: np.ndarray, hashes: list[str],
            by_hash: dict[str, list[dict[str, Any]]], query: dict[str, Any]) -> list[dict[str, Any]]:
    """Distinct images → their samples (key order), query image first at distance 0."""
    order = sorted(range(len(idx)), key=lambda r: (hashes[idx[r]] != query["content_hash"], dist[r]))
    out = []
    for r in order:
        h = hashes[int(idx[r])]
        d = 0.0 if h == query["content_hash"] else float(dist[r])
        for s in by_hash.get(h, []):  # an image no searchable sample holds: none
            if s["id"] != query["id"]:
                out.append({"sample_id": s["id"], "key": s["key"], "split": s["split"],
                            "content_hash": h, "distance": d})
    return out
