"""Split hygiene: no image is shared across splits (train/val/test leakage).

Exact: the same content hash in two splits (no pixels). Near: a group of the
``near_duplicates`` detector spanning two splits (reads pixels; dropped when a suite
runs without pixels). Example suite entry::

    - name: no leakage between splits
      check: split_hygiene
      params: {near_duplicates: true}
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from viewfinder.quality.checks import CheckConfig
from viewfinder.quality.checks.duplicates import near_groups
from viewfinder.quality.checks.result import Chart, CheckResult, Failing, failing_ids
from viewfinder.quality.context import QualityContext


class SplitHygieneConfig(CheckConfig):
    near_duplicates: bool = Field(True, description="Also use the near_duplicates detector (reads pixels).")
    detector_params: dict[str, Any] = Field(default_factory=dict,
                                            description="Parameters of the near_duplicates detector.")
    max_leaked: int = Field(0, ge=0, description="Samples that may share an image with another split.")


LEAKED = """WITH h AS (SELECT content_hash FROM {m} WHERE split IS NOT NULL
                       GROUP BY 1 HAVING count(DISTINCT split) > 1)
            SELECT m.id, m.content_hash, m.split FROM {m} AS m
            JOIN h ON m.content_hash = h.content_hash WHERE m.split IS NOT NULL"""


class SplitHygieneCheck:
    name = "split_hygiene"
    Config = SplitHygieneConfig
    needs_pixels = True
    description = "no exact or near-duplicate image shared across splits"

    def without_pixels(self, config: SplitHygieneConfig) -> SplitHygieneConfig:
        return config.model_copy(update={"near_duplicates": False})

    def run(self, ctx: QualityContext, config: SplitHygieneConfig, scope: str | None) -> CheckResult:
        per_split = {r["k"]: float(r["n"]) for r in ctx.sql(
            f"SELECT split AS k, count(*) AS n FROM ({LEAKED}) GROUP BY 1 ORDER BY 1", filter=scope).to_pylist()}
        exact_n = int(sum(per_split.values()))
        groups = 0
        if exact_n:
            groups = int(ctx.sql(f"SELECT count(DISTINCT content_hash) AS g FROM ({LEAKED})",
                                 filter=scope).column("g")[0].as_py())
        failing = failing_ids(ctx, f"SELECT id FROM ({LEAKED})", scope=scope) if exact_n else Failing.empty()
        near_n = 0
        if config.near_duplicates:
            near_ids: set[str] = set()
            for members in near_groups(ctx, config.detector_params, scope).values():
                splits = {s["split"] for s in members if s["split"] is not None}
                if len(splits) > 1:
                    groups += 1
                    for s in members:
                        if s["split"] is not None:
                            near_ids.add(s["id"])
                            per_split[s["split"]] = per_split.get(s["split"], 0.0) + 1
            if near_ids:
                merged = Failing.of([*failing.ids, *near_ids])
                near_n = len(near_ids - set(failing.ids)) if failing.count <= len(failing.ids) else len(near_ids)
                failing = Failing(merged.ids, failing.count + near_n)
        value = exact_n + near_n
        kind = "exact or near-duplicate" if config.near_duplicates else "exact-duplicate"
        msg = (f"{value} sample(s) in {groups} {kind} group(s) span several splits"
               if value else f"no {kind} image shared across splits")
        return CheckResult(
            passed=value <= config.max_leaked, value=value, threshold=config.max_leaked, message=msg,
            sample_ids=failing.ids, sample_count=failing.count,
            details={"groups": groups, "exact_samples": exact_n, "near_samples": near_n,
                     "near_duplicates_checked": config.near_duplicates},
            charts=[Chart("samples sharing an image with another split", {"samples": per_split})]
            if per_split else [])


CHECK = SplitHygieneCheck()
