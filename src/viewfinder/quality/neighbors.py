"""Neighbours and groups: near-duplicate candidates from perceptual hashes and embeddings.

- :func:`phash_groups`: images whose 64-bit hashes differ in at most ``max_distance`` bits,
  found exactly by multi-index hashing (pigeonhole on four 16-bit blocks), in numpy: 100k
  hashes take about a second, not the hours of an all-pairs loop.
- :func:`knn`: the ``k`` nearest vectors of each vector (cosine distance of L2-normalized
  vectors): exact blocked matrix products for small sets, a usearch HNSW index for large.
- :func:`embedding_pairs` / :func:`embedding_groups`: vectors within ``max_distance`` of
  each other (a range search by random-hyperplane hashing, verified exactly), joined.
- :func:`components`: groups (connected components of size >= 2) from pairs, so a set of
  five copies is one group, not ten pairs.

Example:
    >>> import numpy as np
    >>> phash_groups(np.array([0, 1, 7 << 40, 7], dtype=np.uint64), max_distance=2)
    [[0, 1, 3]]
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

EXACT_KNN_MAX = 20_000
"""Up to this many vectors :func:`knn` computes exact neighbours; above, an HNSW index."""


def components(n: int, i: np.ndarray, j: np.ndarray) -> list[list[int]]:
    """Connected components of size >= 2 of the graph on ``n`` nodes with edges ``(i, j)``.

    Returns:
        Groups of node indices, each sorted, ordered by their smallest member.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    if n == 0 or len(i) == 0:
        return []
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    keep = sizes[labels] >= 2
    idx = np.flatnonzero(keep)
    order = np.lexsort((idx, labels[idx]))
    idx, lab = idx[order], labels[idx][order]
    cuts = np.flatnonzero(np.diff(lab)) + 1
    groups = [g.tolist() for g in np.split(idx, cuts)] if len(idx) else []
    groups.sort(key=lambda g: g[0])
    return groups


@lru_cache(maxsize=8)
def _masks(radius: int) -> np.ndarray:
    """Every 16-bit mask with at most ``radius`` bits set."""
    out = [0]
    for r in range(1, radius + 1):
        for bits in itertools.combinations(range(16), r):
            out.append(sum(1 << b for b in bits))
    return np.array(out, dtype=np.int64)


def phash_pairs(phashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``i < j`` of distinct hash values within ``max_distance`` bits.

    Pigeonhole: if two 64-bit hashes differ in at most ``d`` bits, one of their four 16-bit
    blocks differs in at most ``d // 4``; so each block is bucketed (a counting sort) and
    each hash probes the buckets of its block with up to ``d // 4`` bits flipped, and the
    candidates are checked on all 64 bits.

    Args:
        phashes: 1-d array of uint64 or int64 hashes, all distinct.
        max_distance: the largest Hamming distance that pairs (0..32).

    Returns:
        ``(i, j, distance)`` arrays.
    """
    h = np.ascontiguousarray(phashes).view(np.uint64) if phashes.dtype.itemsize == 8 else \
        np.asarray(phashes, dtype=np.uint64)
    n = len(h)
    empty = np.empty(0, dtype=np.int64)
    if n < 2 or max_distance < 0:
        return empty, empty, empty
    if max_distance > 32:
        raise ValueError(f"max_distance {max_distance} is too large for a 64-bit hash (at most 32)")
    masks = _masks(max_distance // 4)
    found_i, found_j, found_d = [], [], []
    for block in range(4):
        keys = ((h >> np.uint64(16 * block)) & np.uint64(0xFFFF)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        starts = np.zeros(65537, dtype=np.int64)
        np.cumsum(np.bincount(keys, minlength=65536), out=starts[1:])
        for m in masks:
            q = keys ^ m
            lo, hi = starts[q], starts[q + 1]
            cnt = hi - lo
            total = int(cnt.sum())
            if total == 0:
                continue
            src = np.repeat(np.arange(n, dtype=np.int64), cnt)
            first = np.repeat(np.cumsum(cnt) - cnt, cnt)
            dst = order[np.repeat(lo, cnt) + (np.arange(total, dtype=np.int64) - first)]
            keep = src < dst
            src, dst = src[keep], dst[keep]
            d = np.bitwise_count(h[src] ^ h[dst]).astype(np.int64)
            close = d <= max_distance
            found_i.append(src[close])
            found_j.append(dst[close])
            found_d.append(d[close])
    if not found_i:
        return empty, empty, empty
    i, j, d = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)
    pair = np.unique(i * n + j, return_index=True)[1]  # a pair may meet in several blocks
    return i[pair], j[pair], d[pair]


def phash_groups(phashes: np.ndarray, max_distance: int) -> list[list[int]]:
    """Groups of images whose perceptual hashes are within ``max_distance`` bits (chained).

    Args:
        phashes: one 64-bit hash per image (uint64 or int64, as the image scan stores it).
        max_distance: the largest Hamming distance between two members of a pair; 0 groups
            equal hashes only.

    Returns:
        Groups of positions into ``phashes`` (size >= 2, sorted).
    """
    h = np.asarray(phashes)
    h = h.view(np.uint64) if h.dtype == np.int64 else h.astype(np.uint64)
    values, inverse = np.unique(h, return_inverse=True)
    i, j, _ = phash_pairs(values, max_distance)
    # images that share a hash value are joined through that value's node
    n_values = len(values)
    img = np.arange(len(h), dtype=np.int64)
    edges_i = np.concatenate([i, img + n_values])
    edges_j = np.concatenate([j, inverse.astype(np.int64)])
    groups = components(n_values + len(h), edges_i, edges_j)
    out = [[m - n_values for m in g if m >= n_values] for g in groups]
    return sorted((g for g in out if len(g) >= 2), key=lambda g: g[0])


def _normalized(vectors: np.ndarray) -> np.ndarray:
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


def nearest(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest of ``vectors`` to each query, exactly (cosine distance).

    Returns:
        ``(indices, distances)``, each ``(len(queries), min(k, len(vectors)))``, nearest first.
    """
    v, q = _normalized(vectors), _normalized(np.atleast_2d(queries))
    k = min(k, len(v))
    idx = np.empty((len(q), k), dtype=np.int64)
    dist = np.empty((len(q), k), dtype=np.float32)
    step = max(1, 50_000_000 // max(1, len(v)))  # bound the similarity block to ~200 MB
    for s in range(0, len(q), step):
        sim = q[s:s + step] @ v.T
        part = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < len(v) else \
            np.tile(np.arange(len(v)), (len(sim), 1))
        psim = np.take_along_axis(sim, part, axis=1)
        order = np.argsort(-psim, axis=1, kind="stable")
        idx[s:s + step] = np.take_along_axis(part, order, axis=1)
        dist[s:s + step] = 1.0 - np.take_along_axis(psim, order, axis=1)
    np.clip(dist, 0.0, 2.0, out=dist)
    return idx, dist


def knn(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other vectors of each vector (cosine distance, self excluded).

    Exact for up to :data:`EXACT_KNN_MAX` vectors; above, a usearch HNSW index (recall
    close to 1 at these sizes). Missing neighbours (fewer than ``k`` others) are index -1,
    distance ``inf``.

    Returns:
        ``(indices, distances)``, each of shape ``(n, k)``, nearest first.
    """
    v = _normalized(vectors)
    n = len(v)
    idx = np.full((n, k), -1, dtype=np.int64)
    dist = np.full((n, k), np.inf, dtype=np.float32)
    if n < 2 or k < 1:
        return idx, dist
    kk = min(k + 1, n)
    if n <= EXACT_KNN_MAX:
        raw_i, raw_d = nearest(v, v, kk)
    else:
        from usearch.index import Index

        index = Index(ndim=v.shape[1], metric="cos", dtype="f16", connectivity=16,
                      expansion_add=64, expansion_search=64)
        index.add(np.arange(n, dtype=np.uint64), v, log=False)
        matches = index.search(v, kk, log=False)
        raw_i = np.asarray(matches.keys, dtype=np.int64).reshape(n, -1)
        raw_d = np.asarray(matches.distances, dtype=np.float32).reshape(n, -1)
        counts = np.asarray(matches.counts).reshape(n)
        invalid = np.arange(raw_i.shape[1])[None, :] >= counts[:, None]
        raw_i[invalid] = -1
        raw_d[invalid] = np.inf
    # drop each row's self match (or its last entry, when self fell out of the top)
    self_hit = raw_i == np.arange(n)[:, None]
    drop = np.where(self_hit.any(axis=1), self_hit.argmax(axis=1), raw_i.shape[1] - 1)
    keep = np.ones_like(raw_i, dtype=bool)
    keep[np.arange(n), drop] = False
    width = raw_i.shape[1] - 1
    idx[:, :width] = raw_i[keep].reshape(n, width)[:, :k]
    dist[:, :width] = raw_d[keep].reshape(n, width)[:, :k]
    return idx, dist


LSH_RECALL = 0.999
"""Chance that :func:`embedding_pairs` finds a pair exactly at ``max_distance`` (closer
pairs: higher)."""


def _run_pairs(order: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs of items sharing a key: ``order`` sorts ``keys``; runs of equal keys pair up."""
    sk = keys[order]
    n = len(sk)
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    ends = np.r_[starts[1:], n]
    run_end = np.repeat(ends, ends - starts)
    active = np.flatnonzero(run_end - np.arange(n) > 1)  # positions with a later run member
    out_i, out_j = [], []
    offset = 1
    while len(active):
        out_i.append(order[active])
        out_j.append(order[active + offset])
        offset += 1
        active = active[active + offset < run_end[active]]
    if not out_i:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(out_i), np.concatenate(out_j)


def embedding_pairs(vectors: np.ndarray, max_distance: float, k: int = 10,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``i < j`` of vectors within ``max_distance`` (cosine), at most ``k`` per vector.

    A range search by random-hyperplane hashing (SimHash): vectors at a small angle fall on
    the same side of most random hyperplanes, so each of ``L`` tables buckets the vectors by
    ``b`` hyperplane signs and only vectors sharing a bucket are compared, exactly. ``b``
    keeps unrelated vectors apart (about log2(n) bits) and ``L`` is chosen so a pair at
    exactly ``max_distance`` is found with probability :data:`LSH_RECALL`. 100k vectors take
    seconds, where an all-pairs comparison or a k-NN graph takes minutes on two cores.

    Args:
        vectors: ``(n, dim)`` embeddings (normalized here if they are not).
        max_distance: the largest cosine distance (1 − cosine similarity) of a pair.
        k: keep each vector's ``k`` nearest partners only (bounds the output when thousands
            of images are copies of each other; groups still form through chains).

    Returns:
        ``(i, j, distance)`` arrays.
    """
    v = _normalized(vectors)
    n = len(v)
    empty = np.empty(0, dtype=np.int64)
    if n < 2:
        return empty, empty, np.empty(0, dtype=np.float32)
    angle = float(np.arccos(np.clip(1.0 - max_distance, -1.0, 1.0)))
    p_same = max(1.0 - angle / np.pi, 1e-6)
    bits = int(np.clip(np.ceil(np.log2(n)) + 1, 8, 30))
    p_bucket = p_same**bits
    tables = 1 if p_bucket >= 1.0 else int(np.ceil(np.log(1 - LSH_RECALL) / np.log1p(-p_bucket)))
    tables = min(tables, 256)
    from scipy.stats import binom

    rng = np.random.default_rng(0)
    # a 64-bit sketch of every vector rules out most bucket mates before the exact check:
    # a pair at the threshold angle differs in Binomial(64, angle/pi) sketch bits
    sketch = np.packbits(v @ rng.standard_normal((v.shape[1], 64)).astype(np.float32) > 0,
                         axis=1).view(">u8").ravel()
    max_bits = int(binom.ppf(1 - (1 - LSH_RECALL) / 10, 64, angle / np.pi))
    weights = (1 << np.arange(bits, dtype=np.int64))
    found_i, found_j, found_d = [], [], []
    for _ in range(tables):
        planes = rng.standard_normal((v.shape[1], bits)).astype(np.float32)
        keys = (v @ planes > 0) @ weights
        i, j = _run_pairs(np.argsort(keys, kind="stable"), keys)
        likely = np.bitwise_count(sketch[i] ^ sketch[j]) <= max_bits
        i, j = i[likely], j[likely]
        if len(i) == 0:
            continue
        d = 1.0 - np.einsum("ij,ij->i", v[i], v[j])
        close = d <= max_distance
        found_i.append(np.minimum(i, j)[close])
        found_j.append(np.maximum(i, j)[close])
        found_d.append(d[close])
    if not found_i:
        return empty, empty, np.empty(0, dtype=np.float32)
    i, j, d = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)
    _, first = np.unique(i * n + j, return_index=True)
    i, j, d = i[first], j[first], np.maximum(d[first], 0.0).astype(np.float32)
    if len(i) > k:  # keep each vector's k nearest partners
        both_i = np.r_[i, j]
        both_d, pair = np.r_[d, d], np.r_[np.arange(len(i)), np.arange(len(i))]
        order = np.lexsort((both_d, both_i))
        rank = np.arange(len(order)) - np.searchsorted(both_i[order], both_i[order])
        keep = np.zeros(len(i), dtype=bool)
        keep[pair[order][rank < k]] = True
        i, j, d = i[keep], j[keep], d[keep]
    return i, j, d


def embedding_groups(vectors: np.ndarray, max_distance: float, k: int = 10) -> list[list[int]]:
    """Groups of vectors within ``max_distance`` (cosine) of a neighbour, chained.

    Args:
        vectors: ``(n, dim)`` embeddings (normalized here if they are not).
        max_distance: the largest cosine distance (1 − cosine similarity) of a pair.
        k: partners kept per vector; a group larger than ``k + 1`` still forms through
            chains of partners.

    Returns:
        Groups of row positions (size >= 2, sorted).
    """
    i, j, _ = embedding_pairs(vectors, max_distance, k)
    return components(len(vectors), i, j)
