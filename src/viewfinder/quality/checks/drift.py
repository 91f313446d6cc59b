"""Drift: class proportions and image sizes compared with a reference version.

The statistic is named in the config: ``psi`` (population stability index; < 0.1 stable,
0.1-0.2 moderate, > 0.2 a real shift) or ``chi2`` (chi-square test of homogeneity; fails
when its p-value falls below ``min_p_value``, so it is very sensitive on large data).
Image sizes are compared as a distribution over pixel-count bins (powers of √2).

Without a ``reference`` the newest release of the dataset (other than this version) is
the baseline; with no release yet there is nothing to drift from and the check passes.
Example suite entry::

    - name: no drift from the last release
      check: drift
      params: {reference: v1, statistic: psi, max_psi: 0.2}
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from viewfinder.quality.checks import CheckConfig, MetadataOnly
from viewfinder.quality.checks.result import Chart, CheckResult, scoped_labels
from viewfinder.quality.context import QualityContext

EPS = 1e-4  # share given to an empty bin so PSI stays finite


class DriftConfig(CheckConfig):
    reference: str | None = Field(None, description="REF to compare with (default: the newest release).")
    statistic: Literal["psi", "chi2"] = "psi"
    max_psi: float = Field(0.2, gt=0, description="Largest PSI allowed (statistic: psi).")
    min_p_value: float = Field(0.001, gt=0, lt=1, description="Smallest p-value allowed (statistic: chi2).")
    image_sizes: bool = Field(True, description="Also compare the image-size distribution.")


def psi(ref: dict[str, float], cur: dict[str, float]) -> float:
    """Population stability index of two count distributions over the same keys."""
    keys = set(ref) | set(cur)
    rt, ct = sum(ref.values()) or 1.0, sum(cur.values()) or 1.0
    total = 0.0
    for k in keys:
        p, q = max(cur.get(k, 0.0) / ct, EPS), max(ref.get(k, 0.0) / rt, EPS)
        total += (p - q) * math.log(p / q)
    return total


def chi2_p(ref: dict[str, float], cur: dict[str, float]) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count distributions: (statistic, p-value)."""
    from scipy.stats import chi2_contingency

    keys = sorted(k for k in set(ref) | set(cur) if ref.get(k, 0) + cur.get(k, 0) > 0)
    if len(keys) < 2 or not sum(ref.values()) or not sum(cur.values()):
        return 0.0, 1.0
    res = chi2_contingency([[ref.get(k, 0) for k in keys], [cur.get(k, 0) for k in keys]])
    return float(res.statistic), float(res.pvalue)


def _size_bins(ctx: QualityContext, scope: str | None) -> dict[str, float]:
    rows = ctx.sql("""SELECT round(log2(greatest(width * height, 1)) * 2) / 2 AS b, count(*) AS n
        FROM {m} WHERE width IS NOT NULL AND height IS NOT NULL GROUP BY 1 ORDER BY 1""",
                   filter=scope).to_pylist()
    return {_bin_label(r["b"]): float(r["n"]) for r in rows}


def _size_stats(ctx: QualityContext, scope: str | None) -> dict[str, float | None]:
    """Mean and median width and height of the images in scope."""
    r = ctx.sql("""SELECT avg(width) AS mean_width, median(width) AS median_width,
        avg(height) AS mean_height, median(height) AS median_height FROM {m}""", filter=scope).to_pylist()[0]
    return {k: (round(float(v), 2) if v is not None else None) for k, v in r.items()}


def _bin_label(b: float) -> str:
    side = math.sqrt(2.0 ** b)
    return f"~{side:.0f}²"


def _class_counts(ctx: QualityContext, scope: str | None) -> dict[str, float]:
    rows = ctx.sql(f"SELECT class_name AS k, count(*) AS n FROM {scoped_labels(scope)} "
                   "WHERE coalesce(l.source, 'ground_truth') = 'ground_truth' GROUP BY 1 ORDER BY 1",
                   filter=scope).to_pylist()
    return {r["k"]: float(r["n"]) for r in rows}


def newest_release(ctx: QualityContext) -> str | None:
    """The tag of the dataset's newest release that is not this version."""
    import sqlalchemy as sa

    from viewfinder.storage.catalog import releases

    with ctx.ws.catalog.engine.connect() as c:
        row = c.execute(sa.select(releases.c.tag).where(
            releases.c.dataset_id == ctx.dataset.id, releases.c.version_id != ctx.version.id)
            .order_by(releases.c.created_at.desc()).limit(1)).first()
    return row.tag if row else None


class DriftCheck(MetadataOnly):
    name = "drift"
    Config = DriftConfig
    description = "class proportions and image sizes against a reference version (PSI or chi-square)"

    def run(self, ctx: QualityContext, config: DriftConfig, scope: str | None) -> CheckResult:
        from viewfinder.quality.context import QualityContext as Ctx
        from viewfinder.services import versions as vs

        ref = config.reference or newest_release(ctx)
        threshold = config.max_psi if config.statistic == "psi" else config.min_p_value
        if ref is None:
            return CheckResult.not_applicable("no reference: the dataset has no release to compare with yet",
                                              threshold)
        ref_at = vs.resolve(ctx.ws, f"{ctx.dataset.name}@{ref}")
        sizes: dict[str, dict[str, float | None]] = {}
        with Ctx(ctx.ws, ref_at) as rctx:
            dims = {"class proportions": (_class_counts(rctx, scope), _class_counts(ctx, scope))}
            if config.image_sizes:
                dims["image sizes"] = (_size_bins(rctx, scope), _size_bins(ctx, scope))
                sizes = {"reference": _size_stats(rctx, scope), "current": _size_stats(ctx, scope)}
        stats: dict[str, dict[str, float]] = {}
        for dim, (r, c) in dims.items():
            if config.statistic == "psi":
                stats[dim] = {"psi": round(psi(r, c), 6)}
            else:
                s, p = chi2_p(r, c)
                stats[dim] = {"chi2": round(s, 4), "p_value": p}
        if config.statistic == "psi":
            worst = max(stats, key=lambda d: stats[d]["psi"])
            value = stats[worst]["psi"]
            passed = value <= config.max_psi
            msg = f"largest PSI {value:.3f} ({worst}) vs {ref} (max {config.max_psi:g})"
        else:
            worst = min(stats, key=lambda d: stats[d]["p_value"])
            value = stats[worst]["p_value"]
            passed = value >= config.min_p_value
            msg = (f"smallest chi-square p-value {value:.3g} ({worst}, chi2 {stats[worst]['chi2']:g}) "
                   f"vs {ref} (min {config.min_p_value:g})")
        charts = [Chart(f"{dim}: {ref} vs this version", {
            f"{ref} (reference)": _shares(r), "this version": _shares(c)}, unit="%")
            for dim, (r, c) in dims.items()]
        return CheckResult(passed=passed, value=value, threshold=threshold, message=msg,
                           details={"reference": ref, "reference_version": ref_at.version.id,
                                    "statistic": config.statistic, "by_dimension": stats,
                                    "image_size_stats": sizes},
                           charts=charts)


def _shares(counts: dict[str, float]) -> dict[str, float]:
    total = sum(counts.values()) or 1.0
    return {k: round(100.0 * v / total, 3) for k, v in counts.items()}


CHECK = DriftCheck()
