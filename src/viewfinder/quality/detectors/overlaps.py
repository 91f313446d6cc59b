"""``overlapping_annotations``: the same object annotated twice.

Two boxes (or polygons and masks, through their boxes) on the same sample, of the same
class and the same source, whose IoU exceeds a threshold (0.9 by default) are almost
always one object labelled twice: a double click in the labeling tool, or two labelers'
work merged. Pairs come from one DuckDB self-join of the labels on (sample, class), so
only labels that could overlap are ever compared: 10M labels are a single hash join, not
10M Python loops. Pairs are then tied into clusters (three copies of one box are one
group); the first label of a cluster (by source id, then id) is the one to keep, and every
other member gets an ``overlapping_annotation`` finding naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from viewfinder.quality.findings import Finding

if TYPE_CHECKING:
    from viewfinder.quality.context import QualityContext

KIND = "overlapping_annotation"


class OverlapsConfig(BaseModel):
    """Parameters of ``overlapping_annotations``."""

    model_config = ConfigDict(extra="forbid")

    iou_threshold: float = Field(0.9, gt=0.0, lt=1.0, description="Pairs whose IoU is above "
                                                                  "this are duplicates.")
    include_predictions: bool = Field(False, description="Also compare model predictions "
                                                         "(labels whose source is a model run).")


_PAIRS = """
WITH boxes AS (
    SELECT id, sample_id, class_name, coalesce(source, 'ground_truth') AS source,
           coalesce(iscrowd, false) AS crowd, x, y, x + w AS x2, y + h AS y2, w * h AS area
    FROM labels
    WHERE w > 0 AND h > 0 AND (? OR coalesce(source, 'ground_truth') = 'ground_truth')
), pairs AS (
    SELECT a.sample_id, a.class_name, a.id AS a_id, b.id AS b_id,
           greatest(0.0, least(a.x2, b.x2) - greatest(a.x, b.x))
         * greatest(0.0, least(a.y2, b.y2) - greatest(a.y, b.y)) AS inter,
           a.area AS a_area, b.area AS b_area
    FROM boxes a JOIN boxes b
      ON a.sample_id = b.sample_id AND a.class_name = b.class_name AND a.source = b.source
     AND a.crowd = b.crowd AND a.id < b.id
    WHERE b.x < a.x2 AND a.x < b.x2 AND b.y < a.y2 AND a.y < b.y2
)
SELECT sample_id, class_name, a_id, b_id, inter / (a_area + b_area - inter) AS iou
FROM pairs WHERE inter / (a_area + b_area - inter) > ?
ORDER BY sample_id, a_id, b_id
"""


class OverlappingAnnotations:
    name = "overlapping_annotations"
    Config = OverlapsConfig
    needs_pixels = False
    description = ("Labels of the same class on the same sample whose boxes overlap almost "
                   "entirely (IoU above the threshold): one object annotated twice.")

    def run(self, ctx: QualityContext, config: OverlapsConfig) -> list[Finding]:
        ctx.progress("overlapping annotations", 0, 1)
        pairs = ctx.sql(_PAIRS, [config.include_predictions, config.iou_threshold]).to_pylist()
        findings = _findings(ctx, pairs) if pairs else []
        ctx.progress("overlapping annotations", 1, 1)
        return findings


def _findings(ctx: QualityContext, pairs: list[dict[str, Any]]) -> list[Finding]:
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = sorted({p["a_id"] for p in pairs} | {p["b_id"] for p in pairs})
    index = {label_id: i for i, label_id in enumerate(ids)}
    a = np.array([index[p["a_id"]] for p in pairs])
    b = np.array([index[p["b_id"]] for p in pairs])
    graph = coo_matrix((np.ones(len(pairs)), (a, b)), shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)

    # the label to keep: the first in source order (numeric source ids as numbers), then id
    order = {r["id"]: r for r in ctx.sql(
        "SELECT id, sample_id, source_id FROM labels WHERE id IN (SELECT unnest(?))",
        [ids]).to_pylist()}

    def rank(label_id: str) -> tuple[int, int, str, str]:
        sid = order[label_id]["source_id"]
        numeric = sid is not None and sid.isdigit()
        return (0 if numeric else 1, int(sid) if numeric else 0, sid or "", label_id)

    members: dict[int, list[str]] = {}
    for label_id, c in zip(ids, component.tolist(), strict=True):
        members.setdefault(c, []).append(label_id)
    best: dict[str, float] = {}
    overlaps: dict[str, dict[str, float]] = {}
    for p in pairs:
        for one, other in ((p["a_id"], p["b_id"]), (p["b_id"], p["a_id"])):
            best[one] = max(best.get(one, 0.0), p["iou"])
            overlaps.setdefault(one, {})[other] = round(float(p["iou"]), 4)
    class_of = {p[k]: p["class_name"] for p in pairs for k in ("a_id", "b_id")}

    findings: list[Finding] = []
    for group in members.values():
        group.sort(key=rank)
        keep = group[0]
        group_id = f"overlap:{keep}"
        for label_id in group[1:]:
            findings.append(Finding(
                kind=KIND, score=float(best[label_id]), sample_id=order[label_id]["sample_id"],
                label_id=label_id, group_id=group_id,
                evidence={"class": class_of[label_id], "duplicate_of": keep,
                          "iou": round(float(best[label_id]), 4),
                          "overlaps": overlaps[label_id], "group_size": len(group)}))
    return findings


DETECTOR = OverlappingAnnotations()
