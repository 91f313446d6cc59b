"""``exact_duplicates``: samples whose images are byte-identical (same content hash).

Two samples may share an image (identity is the source key, not the content): that is a
finding, not a merge. Each sample of a group gets one ``exact_duplicate`` finding with the
group's id (``exact:<content hash>``, stable across versions) and, as evidence, the other
members' ids, keys and splits; ``cross_split`` marks a group that spans splits (the same
image in train and val leaks evaluation data). Read from the samples table alone: no
pixels, one grouped scan in DuckDB however large the version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from viewfinder.quality.findings import Finding

if TYPE_CHECKING:
    from viewfinder.quality.context import QualityContext

KIND = "exact_duplicate"


class ExactDuplicatesConfig(BaseModel):
    """Parameters of ``exact_duplicates``."""

    model_config = ConfigDict(extra="forbid")

    max_members: int = Field(50, ge=1, description="Other members listed in each finding's "
                                                   "evidence (the count is always exact).")


class ExactDuplicates:
    name = "exact_duplicates"
    Config = ExactDuplicatesConfig
    needs_pixels = False
    description = "Samples whose images are byte-identical (same content hash)."

    def run(self, ctx: QualityContext, config: ExactDuplicatesConfig) -> list[Finding]:
        ctx.progress("exact duplicates", 0, 1)
        rows = ctx.sql("""
            SELECT id, key, content_hash, split FROM (
                SELECT id, key, content_hash, split,
                       count(*) OVER (PARTITION BY content_hash) AS n FROM samples)
            WHERE n > 1 ORDER BY content_hash, key""").to_pylist()
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(r["content_hash"], []).append(r)
        findings: list[Finding] = []
        for content_hash, members in groups.items():
            splits = sorted({m["split"] or "" for m in members})
            for m in members:
                others = [o for o in members if o["id"] != m["id"]]
                findings.append(Finding(
                    kind=KIND, score=1.0, sample_id=m["id"], group_id=f"exact:{content_hash}",
                    evidence={
                        "content_hash": content_hash,
                        "group_size": len(members),
                        "cross_split": len(splits) > 1,
                        "splits": splits,
                        "others": [{"sample_id": o["id"], "key": o["key"], "split": o["split"]}
                                   for o in others[:config.max_members]],
                    }))
        ctx.progress("exact duplicates", 1, 1)
        return findings


DETECTOR = ExactDuplicates()
