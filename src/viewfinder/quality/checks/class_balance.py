"""Class balance: every class of the schema has enough labels, and the most frequent
class outnumbers the rarest by at most ``max_ratio``.

Example suite entry::

    - name: classes balanced
      check: class_balance
      params: {min_count: 50, max_ratio: 20}
"""

from __future__ import annotations

from pydantic import Field

from viewfinder.quality.checks import CheckConfig, MetadataOnly
from viewfinder.quality.checks.result import Chart, CheckResult, scoped_labels
from viewfinder.quality.context import QualityContext


class ClassBalanceConfig(CheckConfig):
    min_count: int = Field(10, ge=0, description="Fewest labels a class may have.")
    max_ratio: float = Field(10.0, ge=1, description="Largest count / smallest count.")
    classes: list[str] | None = Field(
        None, description="Classes that must be present (default: the version's class list).")
    ground_truth_only: bool = Field(True, description="Count ground-truth labels only.")


class ClassBalanceCheck(MetadataOnly):
    name = "class_balance"
    Config = ClassBalanceConfig
    description = "minimum labels per class, maximum imbalance ratio"

    def run(self, ctx: QualityContext, config: ClassBalanceConfig, scope: str | None) -> CheckResult:
        where = "WHERE coalesce(l.source, 'ground_truth') = 'ground_truth'" if config.ground_truth_only else ""
        rows = ctx.sql(f"SELECT class_name AS k, count(*) AS n FROM {scoped_labels(scope)} {where} "
                       "GROUP BY 1 ORDER BY 1", filter=scope).to_pylist()
        counts = {r["k"]: int(r["n"]) for r in rows}
        expected = config.classes if config.classes is not None else list(
            ctx.version.summary.get("class_list") or ctx.classes)
        for c in expected:
            counts.setdefault(c, 0)
        if not counts:
            return CheckResult(passed=True, value=None, threshold=config.max_ratio,
                               message="no labels to balance")
        rare = sorted(c for c, n in counts.items() if n < config.min_count)
        lo, hi = min(counts.values()), max(counts.values())
        ratio = float("inf") if lo == 0 else hi / lo
        passed = not rare and ratio <= config.max_ratio
        rarest = min(counts, key=lambda c: (counts[c], c))
        commonest = max(counts, key=lambda c: (counts[c], c))
        parts = [f"imbalance {ratio:.1f}x ({commonest} {hi} / {rarest} {lo}; max {config.max_ratio:g}x)"
                 if lo else f"{rarest} has no labels (imbalance unbounded; max {config.max_ratio:g}x)"]
        if rare:
            shown = ", ".join(f"{c} ({counts[c]})" for c in rare[:10])
            parts.append(f"{len(rare)} class(es) under {config.min_count} labels: {shown}")
        return CheckResult(
            passed=passed, value=None if ratio == float("inf") else round(ratio, 4),
            threshold=config.max_ratio, message="; ".join(parts),
            details={"class_counts": dict(sorted(counts.items())), "rare_classes": rare,
                     "min_count": config.min_count},
            charts=[Chart("labels per class", {"labels": {k: float(v) for k, v in sorted(counts.items())}})])


CHECK = ClassBalanceCheck()
