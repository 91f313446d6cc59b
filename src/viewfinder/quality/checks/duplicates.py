"""Duplicates within a split: the same image (exact: same content hash; near: the
``near_duplicates`` detector's groups) more than once in one split.

Exact duplicates need no pixels; near duplicates read them (perceptual hashes or
embeddings), so ``near_duplicates: true`` is dropped when a suite runs without pixels.
Example suite entry::

    - name: no repeated images
      check: duplicates
      params: {near_duplicates: true, max_duplicates: 0}
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from viewfinder.quality.checks import CheckConfig
from viewfinder.quality.checks.result import Chart, CheckResult, Failing, failing_ids
from viewfinder.quality.context import QualityContext


class DuplicatesConfig(CheckConfig):
    near_duplicates: bool = Field(False, description="Also use the near_duplicates detector (reads pixels).")
    detector_params: dict[str, Any] = Field(default_factory=dict,
                                            description="Parameters of the near_duplicates detector.")
    max_duplicates: int = Field(0, ge=0, description="Redundant copies allowed.")


def near_groups(ctx: QualityContext, params: dict[str, Any], scope: str | None) -> dict[str, list[dict[str, Any]]]:
    """Near-duplicate groups (group id -> in-scope samples with ``id`` and ``split``)."""
    from viewfinder.quality import detectors

    findings = detectors.run(ctx, "near_duplicates", params)
    members: dict[str, set[str]] = {}
    for f in findings:
        if f.group_id is not None:
            members.setdefault(f.group_id, set()).add(f.sample_id)
    ids = sorted({s for m in members.values() for s in m})
    if not ids:
        return {}
    rows = ctx.sql("SELECT m.id, m.split FROM {m} AS m WHERE list_contains(?, m.id)", [ids],
                   filter=scope).to_pylist()
    split_of = {r["id"]: r["split"] for r in rows}
    return {g: [{"id": s, "split": split_of[s]} for s in sorted(m) if s in split_of]
            for g, m in sorted(members.items())}


class DuplicatesCheck:
    name = "duplicates"
    Config = DuplicatesConfig
    needs_pixels = False
    description = "no image appears twice within one split (exact, optionally near duplicates)"

    def without_pixels(self, config: DuplicatesConfig) -> DuplicatesConfig:
        return config.model_copy(update={"near_duplicates": False})

    def run(self, ctx: QualityContext, config: DuplicatesConfig, scope: str | None) -> CheckResult:
        dup = """WITH d AS (SELECT content_hash, coalesce(split, '') AS sp FROM {m}
                            GROUP BY 1, 2 HAVING count(*) > 1)
                 SELECT m.id, m.content_hash, m.split FROM {m} AS m
                 JOIN d ON m.content_hash = d.content_hash AND coalesce(m.split, '') = d.sp"""
        stats = ctx.sql(f"SELECT coalesce(split, '') AS k, count(*) AS n, count(DISTINCT content_hash) AS g "
                        f"FROM ({dup}) GROUP BY 1 ORDER BY 1", filter=scope).to_pylist()
        redundant = sum(r["n"] - r["g"] for r in stats)
        failing = failing_ids(ctx, f"SELECT id FROM ({dup})", scope=scope) if redundant else Failing.empty()
        per_split = {(r["k"] or "(unassigned)"): float(r["n"] - r["g"]) for r in stats}
        near_extra = 0
        if config.near_duplicates:
            near_ids: list[str] = []
            for members in near_groups(ctx, config.detector_params, scope).values():
                by_split: dict[str, list[str]] = {}
                for s in members:
                    by_split.setdefault(s["split"] or "", []).append(s["id"])
                for sp, ids in by_split.items():
                    if len(ids) > 1:
                        near_extra += len(ids) - 1
                        near_ids.extend(ids)
                        key = sp or "(unassigned)"
                        per_split[key] = per_split.get(key, 0.0) + len(ids) - 1
            if near_ids:
                extra = Failing.of(near_ids)
                merged = Failing.of([*failing.ids, *extra.ids])
                failing = Failing(merged.ids, max(merged.count, failing.count + extra.count))
        value = redundant + near_extra
        kind = "exact or near" if config.near_duplicates else "exact"
        msg = (f"{value} redundant {kind} duplicate image(s) within splits ({failing.count} samples involved)"
               if value else f"no {kind} duplicate images within a split")
        return CheckResult(
            passed=value <= config.max_duplicates, value=value, threshold=config.max_duplicates,
            message=msg, sample_ids=failing.ids, sample_count=failing.count,
            details={"exact_redundant": redundant, "near_redundant": near_extra,
                     "near_duplicates_checked": config.near_duplicates},
            charts=[Chart("redundant copies per split", {"copies": per_split})] if per_split else [])


CHECK = DuplicatesCheck()
