"""``outliers``: images unlike the rest of the dataset, in embedding space.

Each distinct image's outlier distance is its mean cosine distance to its ``k`` nearest
other images. Distances are compared with the dataset's own spread: an image is an
``outlier`` when its distance is more than ``z_threshold`` robust z-scores (median and
MAD) above the median, and at most ``max_fraction`` of the images are flagged (the most
distant first). Byte-identical copies count once, so two copies of a strange image do not
hide each other; near-duplicates do (a pair of strange images is a small cluster, found by
``near_duplicates`` instead).

Score: 0.5 at the threshold, 1 at twice the threshold's z-score. Evidence: the distance,
its z-score, the dataset's median distance, and the nearest samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from viewfinder.quality.findings import Finding

if TYPE_CHECKING:
    from viewfinder.quality.context import QualityContext

KIND = "outlier"


class OutliersConfig(BaseModel):
    """Parameters of ``outliers``."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(5, ge=1, le=100, description="Neighbours whose mean distance is the "
                                                "outlier distance.")
    z_threshold: float = Field(3.5, gt=0, description="Robust z-score above which an image "
                                                      "is an outlier.")
    max_fraction: float = Field(0.05, gt=0, le=1, description="At most this share of the "
                                                              "images is flagged.")
    min_images: int = Field(20, ge=3, description="Smaller versions are not scanned (no "
                                                  "distribution to stand out from).")
    embedding_provider: str = Field("builtin", description="Embedding provider (see "
                                                           "quality.embeddings).")


class Outliers:
    name = "outliers"
    Config = OutliersConfig
    needs_pixels = True
    description = ("Images far from their nearest neighbours in embedding space, compared "
                   "with the dataset's own spread.")

    def run(self, ctx: QualityContext, config: OutliersConfig) -> list[Finding]:
        import numpy as np

        from viewfinder.quality import neighbors
        from viewfinder.quality.embeddings.base import get_provider
        from viewfinder.quality.embeddings.store import compute

        hashes, vectors = compute(ctx, get_provider(config.embedding_provider))
        n = len(hashes)
        if n < max(config.min_images, config.k + 2):
            return []
        ctx.progress("outliers", 0, 1)
        idx, dist = neighbors.knn(vectors, config.k)
        finite = np.where(np.isfinite(dist), dist, np.nan)
        distance = np.nanmean(finite, axis=1)
        median = float(np.median(distance))
        scale = max(1.4826 * float(np.median(np.abs(distance - median))), 1e-6)
        z = (distance - median) / scale
        candidates = np.flatnonzero(z > config.z_threshold)
        cap = max(1, int(config.max_fraction * n))
        flagged = candidates[np.argsort(-z[candidates], kind="stable")][:cap]

        samples: dict[str, list[dict[str, Any]]] = {}
        for r in ctx.sample_hashes.to_pylist():
            samples.setdefault(r["content_hash"], []).append(r)
        out: list[Finding] = []
        for i in flagged.tolist():
            nearest = [{"key": samples[hashes[m]][0]["key"], "sample_id": samples[hashes[m]][0]["id"],
                        "distance": round(float(d), 4)}
                       for m, d in zip(idx[i].tolist(), dist[i].tolist(), strict=True)
                       if m >= 0 and hashes[m] in samples][:3]
            score = min(1.0, 0.5 * float(z[i]) / config.z_threshold)
            for r in samples.get(hashes[i], []):
                out.append(Finding(kind=KIND, score=round(score, 4), sample_id=r["id"], evidence={
                    "mean_distance": round(float(distance[i]), 4), "z": round(float(z[i]), 2),
                    "z_threshold": config.z_threshold, "median_distance": round(median, 4),
                    "k": config.k, "nearest": nearest}))
        ctx.progress("outliers", 1, 1)
        return out


DETECTOR = Outliers()
