"""Completeness: enough samples are labeled, and every sample has a split.

A sample counts as labeled when it has at least one ground-truth label (predictions do
not label a sample). Example suite entry::

    - name: everything labeled and split
      check: completeness
      params: {min_labeled: 0.98, splits: [train, val, test]}
"""

from __future__ import annotations

from pydantic import Field

from viewfinder.quality.checks import CheckConfig, MetadataOnly
from viewfinder.quality.checks.result import Chart, CheckResult, Failing, failing_ids
from viewfinder.quality.context import QualityContext
from viewfinder.storage.schema import NO_SPLIT


class CompletenessConfig(CheckConfig):
    min_labeled: float = Field(0.9, ge=0, le=1, description="Smallest share of labeled samples.")
    require_split: bool = Field(True, description="Every sample must have a split.")
    splits: list[str] | None = Field(None, description="Allowed split names (default: any).")


class CompletenessCheck(MetadataOnly):
    name = "completeness"
    Config = CompletenessConfig
    description = "share of samples labeled; every sample has a (known) split"

    def run(self, ctx: QualityContext, config: CompletenessConfig, scope: str | None) -> CheckResult:
        base = """FROM {m} AS m LEFT JOIN (SELECT DISTINCT sample_id FROM labels
                WHERE coalesce(source, 'ground_truth') = 'ground_truth') AS g ON g.sample_id = m.id"""
        rows = ctx.sql(f"SELECT m.split AS k, count(*) AS n, count(*) FILTER (WHERE g.sample_id IS NULL) AS u "
                       f"{base} GROUP BY 1 ORDER BY 1", filter=scope).to_pylist()
        n = sum(r["n"] for r in rows)
        n_unlabeled = sum(r["u"] for r in rows)
        n_no_split = sum(r["n"] for r in rows if r["k"] is None) if config.require_split else 0
        allowed = list(config.splits) if config.splits is not None else None
        n_bad_split = sum(r["n"] for r in rows if allowed is not None and r["k"] is not None
                          and r["k"] not in allowed)
        share = (n - n_unlabeled) / n if n else 1.0
        low = share < config.min_labeled
        conds, params = [], []
        if n_no_split:
            conds.append("m.split IS NULL")
        if n_bad_split:
            conds.append("(m.split IS NOT NULL AND NOT list_contains(?, m.split))")
            params.append(allowed)
        if low:
            conds.append("g.sample_id IS NULL")
        failing = (failing_ids(ctx, f"SELECT m.id {base} WHERE {' OR '.join(conds)}", params, scope=scope)
                   if conds else Failing.empty())
        passed = not low and not n_no_split and not n_bad_split
        parts = [f"{share:.1%} of {n} samples labeled (need {config.min_labeled:.0%})"]
        if n_no_split:
            parts.append(f"{n_no_split} without a split")
        if n_bad_split:
            parts.append(f"{n_bad_split} in a split not in {allowed}")
        return CheckResult(
            passed=passed, value=round(share, 6), threshold=config.min_labeled,
            message="; ".join(parts), sample_ids=failing.ids, sample_count=failing.count,
            details={"samples": n, "unlabeled": n_unlabeled, "without_split": n_no_split,
                     "unknown_split": n_bad_split},
            charts=[Chart("samples per split", {"samples": {(r["k"] or NO_SPLIT): float(r["n"]) for r in rows}})])


CHECK = CompletenessCheck()
