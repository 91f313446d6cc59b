"""Geometry: boxes inside the image, not too small, polygons not degenerate, and no two
boxes of one class on one image that overlap almost entirely (a double click).

Example suite entry::

    - name: boxes are sane
      check: geometry
      params: {min_size: 4, tolerance: 0.5, max_iou_same_class: 0.9}
"""

from __future__ import annotations

from pydantic import Field

from viewfinder.quality.checks import CheckConfig, MetadataOnly
from viewfinder.quality.checks.result import Chart, CheckResult, Failing, scoped_labels
from viewfinder.quality.context import QualityContext


class GeometryConfig(CheckConfig):
    tolerance: float = Field(0.0, ge=0, description="Pixels a box may stick out of the image.")
    min_size: float = Field(2.0, ge=0, description="Smallest box width and height, in pixels.")
    min_area: float = Field(0.0, ge=0, description="Smallest label area, in square pixels.")
    max_iou_same_class: float = Field(0.95, gt=0, le=1, description=(
        "Two boxes of one class on one image overlapping more than this are duplicates."))
    max_failing: int = Field(0, ge=0, description="Labels that may fail.")


def _problems(c: GeometryConfig) -> dict[str, tuple[str, list[float]]]:
    """Problem name -> (SQL condition over labels ``l`` joined to samples ``s``, params)."""
    return {
        "outside the image": (
            ("l.x IS NOT NULL AND (l.x < -? OR l.y < -? OR l.x + l.w > s.width + ? "
             "OR l.y + l.h > s.height + ?)"), [c.tolerance] * 4),
        "smaller than min_size": (
            "l.w IS NOT NULL AND l.kind <> 'keypoints' AND (l.w < ? OR l.h < ?)", [c.min_size] * 2),
        "area below min_area": (
            "l.area IS NOT NULL AND l.kind IN ('box', 'polygon', 'mask') AND l.area < ?", [c.min_area]),
        "degenerate polygon": (
            ("l.kind = 'polygon' AND (l.polygon IS NULL OR len(l.polygon) = 0 "
             "OR list_min(list_transform(l.polygon, lambda r: len(r))) < 6 OR coalesce(l.area, 0) <= 0)"), []),
    }


def duplicate_boxes(ctx: QualityContext, scope: str | None, max_iou: float) -> tuple[list[str], list[str]]:
    """Label and sample ids of boxes that overlap another box of the same class on the same
    image with IoU > ``max_iou`` (of each such pair, the box with the larger id).

    An exact sweep instead of a SQL self-join (which took over half a minute at 10M
    labels): boxes are grouped by (image, class) with one stable integer argsort, and at
    offset k each box is compared with the k-th next box of its group. The work is the
    number of same-class pairs per image (Σ n²/2), vectorized with NumPy; images with
    thousands of boxes of one class would make it slow.
    """
    import numpy as np
    import pyarrow as pa

    t = ctx.sql(f"""SELECT hash(l.sample_id, l.class_name) AS g, l.x, l.y, l.w, l.h, l.id, l.sample_id
        FROM {scoped_labels(scope)} WHERE l.kind = 'box' AND l.w > 0 AND l.h > 0
          AND l.x IS NOT NULL AND l.y IS NOT NULL""", filter=scope)
    n = t.num_rows
    if n < 2:
        return [], []
    g = t.column("g").to_numpy()
    order = np.argsort(g, kind="stable")     # radix sort on integers: fast (a float sort is not)
    g = g[order]
    same = g[1:] == g[:-1]
    multi = np.zeros(n, dtype=bool)          # only boxes that share image and class
    multi[1:] |= same
    multi[:-1] |= same
    order, g = order[multi], g[multi]
    n = len(order)
    x, y, w, h = (t.column(c).to_numpy()[order] for c in ("x", "y", "w", "h"))
    x1, y1 = x + w, y + h
    area = w * h
    first: list[np.ndarray] = []
    second: list[np.ndarray] = []
    active = np.arange(max(n - 1, 0))
    k = 1
    while active.size:
        active = active[active + k < n]
        j = active + k
        keep = g[j] == g[active]
        active, j = active[keep], j[keep]
        if active.size:
            iw = np.clip(np.minimum(x1[active], x1[j]) - np.maximum(x[active], x[j]), 0, None)
            ih = np.clip(np.minimum(y1[active], y1[j]) - np.maximum(y[active], y[j]), 0, None)
            inter = iw * ih
            hit = inter / (area[active] + area[j] - inter) > max_iou
            first.append(order[active[hit]])
            second.append(order[j[hit]])
        k += 1
    if not first or not sum(len(a) for a in first):
        return [], []
    a, b = np.concatenate(first), np.concatenate(second)
    ids = t.column("id")
    ida, idb = ids.take(pa.array(a)).to_pylist(), ids.take(pa.array(b)).to_pylist()
    dup_rows = [rb if ib > ia else ra for ia, ib, ra, rb in zip(ida, idb, a.tolist(), b.tolist(), strict=True)]
    rows = pa.array(sorted(set(dup_rows)), pa.int64())
    return ids.take(rows).to_pylist(), t.column("sample_id").take(rows).to_pylist()


class GeometryCheck(MetadataOnly):
    name = "geometry"
    Config = GeometryConfig
    description = "boxes inside the image and large enough, polygons valid, no duplicate boxes"

    def run(self, ctx: QualityContext, config: GeometryConfig, scope: str | None) -> CheckResult:
        problems = _problems(config)
        per_problem: dict[str, int] = {}
        label_ids: list[str] = []
        sample_ids: list[str] = []
        # one query per problem: each is a cheap filtered scan, where one query computing
        # every flag costs several times more at 10M labels
        for i, (problem, (cond, params)) in enumerate(problems.items()):
            ctx.progress("geometry", i, len(problems) + 1)
            join = "JOIN samples s ON l.sample_id = s.id" if "s." in cond else ""
            bad = ctx.sql(f"SELECT l.id, l.sample_id FROM {scoped_labels(scope)} {join} WHERE {cond}",
                          params, filter=scope)
            if bad.num_rows:
                per_problem[problem] = bad.num_rows
                label_ids.extend(bad.column("id").to_pylist())
                sample_ids.extend(bad.column("sample_id").to_pylist())
        ctx.progress("geometry", len(problems), len(problems) + 1)
        dup_labels, dup_samples = duplicate_boxes(ctx, scope, config.max_iou_same_class)
        if dup_labels:
            per_problem[f"duplicate box (IoU > {config.max_iou_same_class:g})"] = len(dup_labels)
        labels = Failing.of([*label_ids, *dup_labels])
        samples = Failing.of([*sample_ids, *dup_samples])
        passed = labels.count <= config.max_failing
        msg = (f"{labels.count} label(s) with bad geometry: "
               + ", ".join(f"{k} ({n})" for k, n in per_problem.items())) if labels.count else \
            "every label's geometry is valid"
        charts = [Chart("labels with bad geometry", {"labels": {k: float(v) for k, v in per_problem.items()}})] \
            if per_problem else []
        return CheckResult(passed=passed, value=labels.count, threshold=config.max_failing,
                           message=msg, sample_ids=samples.ids, sample_count=samples.count,
                           label_ids=labels.ids, label_count=labels.count,
                           details={"problems": per_problem}, charts=charts)


CHECK = GeometryCheck()
