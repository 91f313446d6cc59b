"""``near_duplicates``: different files of (almost) the same picture.

Re-encoded, resized, slightly cropped or recoloured copies are found two ways, and the
two are merged:

- **perceptual hashes** (from the image scan): images whose 64-bit hashes differ in at
  most ``phash_max_distance`` bits, found exactly by multi-index hashing;
- **embedding neighbours** (optional): images within ``embedding_max_distance`` (cosine)
  among each other's ``k`` nearest neighbours, which also catches crops and colour shifts
  that move the hash.

Pairs from both are joined into groups (connected components: five copies are one group,
not ten pairs) and every sample of a group gets one ``near_duplicate`` finding with the
group's id (``near:<smallest content hash>``). Groups are made of distinct images: byte
identical copies are ``exact_duplicates``' business and never pair with each other here;
when they sit in a near group they are listed with ``"same_image": true``.

Defaults (4 bits, cosine 0.06 with the builtin embedding, ``k`` = 10) are the ones
``bench/quality_duplicates.py`` measured best on its ground truth (see bench/RESULTS.md);
a learned embedding provider needs its own ``embedding_max_distance``.

Score: 1 for identical hashes or embeddings, 0.5 at the distance threshold (the closer of
the two measures counts). Evidence: the nearest other image (sample, key, both distances),
how the group was found (``via``), its size, whether it spans splits, and its members.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from viewfinder.quality.findings import Finding

if TYPE_CHECKING:
    import numpy as np

    from viewfinder.quality.context import QualityContext

KIND = "near_duplicate"


class NearDuplicatesConfig(BaseModel):
    """Parameters of ``near_duplicates``."""

    model_config = ConfigDict(extra="forbid")

    phash_max_distance: int = Field(4, ge=-1, le=32, description="Largest Hamming distance "
                                    "(bits of 64) between near-duplicate hashes; -1: do not "
                                    "use hashes.")
    use_embeddings: bool = Field(True, description="Also pair images by embedding neighbours.")
    embedding_provider: str = Field("builtin", description="Embedding provider (see "
                                                           "quality.embeddings).")
    embedding_max_distance: float = Field(0.06, ge=0, le=2, description="Largest cosine "
                                          "distance between near-duplicate embeddings (for "
                                          "the builtin provider; learned ones need their own).")
    k: int = Field(10, ge=1, le=100, description="Neighbours examined per image.")
    max_members: int = Field(50, ge=1, description="Other members listed in each finding's "
                                                   "evidence (the counts are always exact).")

    @model_validator(mode="after")
    def _some_measure(self) -> NearDuplicatesConfig:
        if self.phash_max_distance < 0 and not self.use_embeddings:
            raise ValueError("phash_max_distance=-1 and use_embeddings=false leave nothing to "
                             "compare images by")
        return self


class _Edges:
    """Image pairs with the distance that joined them, per measure."""

    def __init__(self) -> None:
        self.i: list[np.ndarray] = []
        self.j: list[np.ndarray] = []
        self.phash: list[np.ndarray] = []
        self.embedding: list[np.ndarray] = []

    def add(self, i: np.ndarray, j: np.ndarray, phash: np.ndarray | None,
            embedding: np.ndarray | None) -> None:
        import numpy as np

        nan = np.full(len(i), np.nan)
        self.i.append(np.asarray(i, dtype=np.int64))
        self.j.append(np.asarray(j, dtype=np.int64))
        self.phash.append(nan if phash is None else np.asarray(phash, dtype=np.float64))
        self.embedding.append(nan if embedding is None else np.asarray(embedding, dtype=np.float64))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        import numpy as np

        if not self.i:
            e = np.empty(0)
            return e.astype(np.int64), e.astype(np.int64), e, e
        return (np.concatenate(self.i), np.concatenate(self.j), np.concatenate(self.phash),
                np.concatenate(self.embedding))


class NearDuplicates:
    name = "near_duplicates"
    Config = NearDuplicatesConfig
    needs_pixels = True
    description = ("Different files of (almost) the same picture: perceptual hashes and "
                   "embedding neighbours, merged into groups.")

    def run(self, ctx: QualityContext, config: NearDuplicatesConfig) -> list[Finding]:
        import numpy as np

        from viewfinder.quality import imagescan, neighbors

        node: dict[str, int] = {}  # content hash -> image node
        edges = _Edges()
        if config.phash_max_distance >= 0:
            stats = imagescan.scan(ctx)
            ok = [(r["content_hash"], r["phash"]) for r in stats.select(
                ["content_hash", "ok", "phash"]).to_pylist() if r["ok"] and r["phash"] is not None]
            for h, _ in ok:
                node.setdefault(h, len(node))
            if len(ok) > 1:
                images = np.array([node[h] for h, _ in ok], dtype=np.int64)
                hashes = np.array([p for _, p in ok], dtype=np.int64).view(np.uint64)
                values, inverse = np.unique(hashes, return_inverse=True)
                # images sharing a hash value: a chain of zero-distance edges
                order = np.argsort(inverse, kind="stable")
                same = inverse[order][1:] == inverse[order][:-1]
                a, b = images[order][:-1][same], images[order][1:][same]
                edges.add(a, b, np.zeros(len(a)), None)
                vi, vj, vd = neighbors.phash_pairs(values, config.phash_max_distance)
                first = np.full(len(values), -1, dtype=np.int64)
                first[inverse] = images  # one image per value (any: they are joined above)
                edges.add(first[vi], first[vj], vd, None)
        if config.use_embeddings:
            from viewfinder.quality.embeddings.base import get_provider
            from viewfinder.quality.embeddings.store import compute

            hashes_e, vectors = compute(ctx, get_provider(config.embedding_provider))
            for h in hashes_e:
                node.setdefault(h, len(node))
            if len(hashes_e) > 1:
                ei, ej, ed = neighbors.embedding_pairs(vectors, config.embedding_max_distance,
                                                       config.k)
                ids = np.array([node[h] for h in hashes_e], dtype=np.int64)
                edges.add(ids[ei], ids[ej], None, ed)
        ctx.progress("near duplicates: groups", 0, 1)
        i, j, dp, de = edges.arrays()
        groups = neighbors.components(len(node), i, j)
        findings = _findings(ctx, config, node, groups, i, j, dp, de) if groups else []
        ctx.progress("near duplicates: groups", 1, 1)
        return findings


def _findings(ctx: QualityContext, config: NearDuplicatesConfig, node: dict[str, int],
              groups: list[list[int]], i: np.ndarray, j: np.ndarray, dp: np.ndarray,
              de: np.ndarray) -> list[Finding]:
    import numpy as np

    hash_of = {n: h for h, n in node.items()}
    samples: dict[str, list[dict[str, Any]]] = {}
    for r in ctx.sample_hashes.to_pylist():
        samples.setdefault(r["content_hash"], []).append(r)

    # one row per pair with both distances (a pair may be found by both measures)
    pair: dict[tuple[int, int], list[float]] = {}
    for a, b, p, e in zip(i.tolist(), j.tolist(), dp.tolist(), de.tolist(), strict=True):
        d = pair.setdefault((min(a, b), max(a, b)), [np.nan, np.nan])
        d[0], d[1] = float(np.fmin(d[0], p)), float(np.fmin(d[1], e))
    # each image's nearest partner: the pair with the best score (closest relative distance)
    best: dict[int, tuple[float, int, float, float]] = {}
    via: dict[int, set[str]] = {}
    for (a, b), (p, e) in pair.items():
        s = max(_score(p, config.phash_max_distance), _score(e, config.embedding_max_distance))
        for one, other in ((a, b), (b, a)):
            if one not in best or s > best[one][0]:
                best[one] = (s, other, p, e)
            via.setdefault(one, set()).update(
                (["phash"] if not np.isnan(p) else []) + (["embedding"] if not np.isnan(e) else []))

    out: list[Finding] = []
    for group in groups:
        hashes = [hash_of[n] for n in group]
        members = [r for h in hashes for r in samples.get(h, [])]
        if len({r["content_hash"] for r in members}) < 2:
            continue  # a group of images no sample of this version shows (cannot happen)
        group_id = f"near:{min(hashes)}"
        splits = sorted({r["split"] or "" for r in members})
        for n in group:
            s, partner, p, e = best[n]
            near = samples.get(hash_of[partner], [])
            for r in samples.get(hash_of[n], []):
                others = [o for o in members if o["id"] != r["id"]]
                out.append(Finding(kind=KIND, score=round(float(s), 4), sample_id=r["id"],
                                   group_id=group_id, evidence={
                    "group_size": len(group), "samples_in_group": len(members),
                    "via": sorted(via.get(n, set())), "cross_split": len(splits) > 1,
                    "nearest": {"sample_id": near[0]["id"] if near else None,
                                "key": near[0]["key"] if near else None,
                                "phash_distance": None if np.isnan(p) else int(p),
                                "embedding_distance": None if np.isnan(e) else round(e, 4)},
                    "members": [{"sample_id": o["id"], "key": o["key"], "split": o["split"],
                                 "same_image": o["content_hash"] == r["content_hash"]}
                                for o in others[:config.max_members]],
                }))
    return out


def _score(distance: float, threshold: float) -> float:
    """1 at distance 0, 0.5 at the threshold; NaN (measure not used) scores 0."""
    if math.isnan(distance):
        return 0.0
    if threshold <= 0:
        return 1.0 if distance <= 0 else 0.5
    return 1.0 - 0.5 * min(distance / threshold, 1.0)


DETECTOR = NearDuplicates()
