"""Label errors in boxes: ground truth compared with a model's imported predictions.

The predictions are labels of a model run (``viewfinder import-predictions`` from COCO
results); ``model`` names it (default: the only model in the version). In each image the
ground-truth boxes and the predictions scoring at least ``min_score`` are matched:

1. a ground-truth box and a prediction of its class with IoU ≥ ``match_iou`` agree;
2. an unmatched ground-truth box covered (IoU ≥ ``match_iou``) by a prediction of another
   class is a ``wrong_class``; score: that prediction's confidence;
3. an unmatched box overlapped (IoU > ``touch_iou``) only loosely by a prediction of its
   class is a ``badly_placed_box``; score: that prediction's confidence;
4. any other unmatched box is a ``spurious_box``; score: one minus the model's belief that
   something is there (the highest confidence × min(1, IoU / ``match_iou``) of the
   predictions overlapping it),
   times how rarely the model misses real boxes of that size. Detectors miss small objects
   far more often than large ones, so an empty large box is strong evidence and an empty
   small box weak: per COCO size bucket (area < 32², < 96², larger) the share ``u`` of
   ground-truth boxes no prediction touches is measured on the version itself, and the
   factor is ``min(u) / u`` of the box's bucket (1 for the bucket the model misses least);
5. a prediction scoring at least ``missing_min_score`` that no ground-truth box overlaps
   (IoU < ``match_iou``) and that no rule above used is a ``missing_box``: the finding is
   on the sample (``label_id`` None), its evidence holds the predicted box; score: the
   prediction's confidence.

The confidences of rules 2, 3 and 5 are then turned into estimated precisions (the
probability that the finding is a label error rather than a model error, measured on the
version itself, see :func:`_calibrate`), so that one ranking serves every kind.

Findings carry ``kind``, a score in [0, 1] that ranks errors across kinds, and evidence
with the boxes, the IoU, and cleanlab's object-detection scores (ObjectLab): the image's
label quality (``cleanlab.object_detection.rank.get_label_quality_scores``) and, for
ground-truth boxes, the swap and bad-location box scores (1: looks right).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from viewfinder.core.geometry import box_iou_matrix
from viewfinder.errors import InvalidInput
from viewfinder.quality.findings import Finding

if TYPE_CHECKING:
    from viewfinder.quality.context import QualityContext

GROUND_TRUTH_SQL = "coalesce(source, 'ground_truth') = 'ground_truth'"


class Config(BaseModel):
    """Parameters of the detection label-error detector."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    """The model whose predictions to compare with (default: the only one present)."""
    min_score: float = Field(0.05, ge=0.0, le=1.0)
    """Predictions below this confidence are ignored."""
    match_iou: float = Field(0.5, gt=0.0, le=1.0)
    touch_iou: float = Field(0.1, ge=0.0, lt=1.0)
    """A same-class prediction overlapping more than this (and less than ``match_iou``)
    makes an unmatched box badly placed rather than spurious."""
    missing_min_score: float = Field(0.3, ge=0.0, le=1.0)
    """Predictions this confident with no ground truth are missing boxes."""
    min_finding_score: float = Field(0.05, ge=0.0, le=1.0)
    """Findings scoring lower are dropped."""
    cleanlab: bool = True
    """Add cleanlab's ObjectLab scores to the evidence."""


@dataclass
class _Image:
    sample_id: str
    gt_ids: list[str]
    gt_classes: list[str]
    gt_boxes: np.ndarray       # (L, 4) x, y, w, h
    pred_classes: list[str]
    pred_boxes: np.ndarray     # (M, 4)
    pred_scores: np.ndarray    # (M,)


def _box(b: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in b]


def _model_source(ctx: QualityContext, model: str | None) -> str:
    models = ctx.sql("SELECT DISTINCT source FROM labels WHERE source LIKE 'model:%' "
                     "AND x IS NOT NULL AND kind <> 'classification' ORDER BY 1").column("source").to_pylist()
    names = ", ".join(m.removeprefix("model:") for m in models) or "none"
    if model is not None:
        if f"model:{model}" not in models:
            raise InvalidInput(f"no box predictions of model {model!r} in this version (models: {names}); "
                               "import them with 'viewfinder import-predictions'")
        return f"model:{model}"
    if len(models) != 1:
        raise InvalidInput("label_errors_detection compares the ground truth with a model's "
                           f"predictions; {'name one with model=...' if models else 'import some first'} "
                           f"(models in this version: {names})")
    return str(models[0])


def _images(ctx: QualityContext, source: str, min_score: float) -> list[_Image]:
    rows = ctx.sql(f"""SELECT sample_id, id, class_name, x, y, w, h, score,
            {GROUND_TRUTH_SQL} AS gt
        FROM labels
        WHERE x IS NOT NULL AND kind <> 'classification' AND NOT coalesce(iscrowd, false)
          AND ({GROUND_TRUTH_SQL} OR (source = ? AND coalesce(score, 1.0) >= ?))
        ORDER BY sample_id, id""", [source, min_score]).to_pylist()
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[r["sample_id"]].append(r)
    out = []
    for sid in sorted(by):
        gt = [r for r in by[sid] if r["gt"]]
        pr = [r for r in by[sid] if not r["gt"]]
        out.append(_Image(
            sid, [r["id"] for r in gt], [r["class_name"] for r in gt],
            np.array([[r["x"], r["y"], r["w"], r["h"]] for r in gt], dtype=np.float64).reshape(-1, 4),
            [r["class_name"] for r in pr],
            np.array([[r["x"], r["y"], r["w"], r["h"]] for r in pr], dtype=np.float64).reshape(-1, 4),
            np.array([1.0 if r["score"] is None else r["score"] for r in pr], dtype=np.float64)))
    return out


def _cleanlab_scores(images: list[_Image], classes: list[str]) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """ObjectLab: per-image label quality, per-box swap and bad-location scores."""
    from cleanlab.object_detection.rank import (
        compute_badloc_box_scores,
        compute_swap_box_scores,
        get_label_quality_scores,
    )

    index = {c: i for i, c in enumerate(classes)}

    def xyxy(b: np.ndarray) -> np.ndarray:
        return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1) if len(b) else np.zeros((0, 4))

    labels, predictions = [], []
    for im in images:
        labels.append({"bboxes": xyxy(im.gt_boxes),
                       "labels": np.array([index[c] for c in im.gt_classes], dtype=np.int64)})
        per_class = [np.zeros((0, 5), dtype=np.float32) for _ in classes]
        boxes = xyxy(im.pred_boxes)
        for k in range(len(classes)):
            sel = [j for j, c in enumerate(im.pred_classes) if index[c] == k]
            if sel:
                per_class[k] = np.concatenate([boxes[sel], im.pred_scores[sel, None]], axis=1).astype(np.float32)
        arr = np.empty(len(classes), dtype=object)
        arr[:] = per_class
        predictions.append(arr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quality = get_label_quality_scores(labels, predictions, verbose=False)
        swap = compute_swap_box_scores(labels=labels, predictions=predictions)
        badloc = compute_badloc_box_scores(labels=labels, predictions=predictions)
    return np.asarray(quality, dtype=np.float64), swap, badloc


SIZE_BUCKETS = (32.0 ** 2, 96.0 ** 2)


def _bucket(area: float) -> int:
    return sum(area >= t for t in SIZE_BUCKETS)


def _untouched_rates(images: list[_Image]) -> list[float]:
    """Per size bucket, the share of ground-truth boxes that no prediction overlaps
    (smoothed: (untouched + 1) / (boxes + 2), so an empty bucket reads as 0.5)."""
    untouched, total = [0] * (len(SIZE_BUCKETS) + 1), [0] * (len(SIZE_BUCKETS) + 1)
    for im in images:
        if not len(im.gt_ids):
            continue
        iou = box_iou_matrix(im.gt_boxes, im.pred_boxes) if len(im.pred_classes) else None
        for g, b in enumerate(im.gt_boxes):
            k = _bucket(float(b[2] * b[3]))
            total[k] += 1
            untouched[k] += int(iou is None or not (iou[g] > 0).any())
    return [(u + 1) / (n + 2) for u, n in zip(untouched, total, strict=True)]


def _image_findings(im: _Image, config: Config, extra: dict[str, Any],
                    box_extra: list[dict[str, Any]], untouched: list[float],
                    agreeing: list[float]) -> list[Finding]:
    """The rules of the module docstring, for one image; appends the confidences of the
    predictions that agree with a ground-truth box (rule 1) to ``agreeing``."""
    out: list[Finding] = []
    n_gt, n_pr = len(im.gt_ids), len(im.pred_classes)
    iou = box_iou_matrix(im.gt_boxes, im.pred_boxes) if n_gt and n_pr else np.zeros((n_gt, n_pr))
    same = np.array([[g == p for p in im.pred_classes] for g in im.gt_classes], dtype=bool).reshape(n_gt, n_pr)
    used_pred: set[int] = set()
    matched_gt: set[int] = set()
    # 1. agreement: same class, IoU >= match_iou, greedily by IoU
    pairs = sorted(((float(iou[g, p]), g, p) for g in range(n_gt) for p in range(n_pr)
                    if same[g, p] and iou[g, p] >= config.match_iou), reverse=True)
    for _, g, p in pairs:
        if g not in matched_gt and p not in used_pred:
            matched_gt.add(g)
            used_pred.add(p)
            agreeing.append(float(im.pred_scores[p]))
    # 2-4. each unmatched ground-truth box, the most clearly wrong first
    for g in range(n_gt):
        if g in matched_gt:
            continue
        free = [p for p in range(n_pr) if p not in used_pred]
        other = [p for p in free if not same[g, p] and iou[g, p] >= config.match_iou]
        loose = [p for p in free if same[g, p] and config.touch_iou < iou[g, p] < config.match_iou]
        ev: dict[str, Any] = {"class": im.gt_classes[g], "box": _box(im.gt_boxes[g]), **extra, **box_extra[g]}
        if other:
            p = max(other, key=lambda j: (im.pred_scores[j], iou[g, j]))
            used_pred.add(p)
            kind, score = "wrong_class", float(im.pred_scores[p])
            ev.update(given_class=im.gt_classes[g], suggested_class=im.pred_classes[p],
                      predicted_box=_box(im.pred_boxes[p]), iou=round(float(iou[g, p]), 3),
                      confidence=round(float(im.pred_scores[p]), 4))
        elif loose:
            p = max(loose, key=lambda j: (im.pred_scores[j] * iou[g, j], j))
            used_pred.add(p)
            kind, score = "badly_placed_box", float(im.pred_scores[p])
            ev.update(predicted_box=_box(im.pred_boxes[p]), iou=round(float(iou[g, p]), 3),
                      confidence=round(float(im.pred_scores[p]), 4))
        else:
            # how sure the model is that something is there: confidence × overlap
            seen = im.pred_scores * np.minimum(1.0, iou[g] / config.match_iou) if n_pr else np.zeros(1)
            best = float(seen.max())
            rate = untouched[_bucket(float(im.gt_boxes[g, 2] * im.gt_boxes[g, 3]))]
            kind, score = "spurious_box", (1.0 - best) * min(untouched) / rate
            ev.update(model_sees_object=round(best, 4),
                      model_misses_this_size=round(rate, 4))
        out.append(Finding(kind, score, im.sample_id, im.gt_ids[g], evidence=ev))
    # 5. confident predictions that no ground truth explains
    for p in range(n_pr):
        if p in used_pred or im.pred_scores[p] < config.missing_min_score:
            continue
        if n_gt and float(iou[:, p].max()) >= config.match_iou:
            continue  # a duplicate detection of an annotated object
        out.append(Finding("missing_box", float(im.pred_scores[p]), im.sample_id, None, evidence={
            "predicted_class": im.pred_classes[p], "predicted_box": _box(im.pred_boxes[p]),
            "confidence": round(float(im.pred_scores[p]), 4),
            "max_iou_with_ground_truth": round(float(iou[:, p].max()) if n_gt else 0.0, 3), **extra}))
    return [f for f in out if f.score >= config.min_finding_score]


CALIBRATED_KINDS = ("wrong_class", "badly_placed_box", "missing_box")
MIN_AGREEING, MIN_CANDIDATES = 20, 5
KDE_BANDWIDTH = 0.05


def _density(values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Gaussian kernel density (bandwidth ``KDE_BANDWIDTH``) of confidences ``values`` at
    ``at``; computed on a grid over [0, 1] from a fine histogram, so memory and time stay
    small however many predictions a version has."""
    counts, edges = np.histogram(values, bins=1000, range=(0.0, 1.0))
    centers = (edges[:-1] + edges[1:]) / 2
    grid = np.linspace(0.0, 1.0, 201)
    kernel = np.exp(-0.5 * ((grid[:, None] - centers[None, :]) / KDE_BANDWIDTH) ** 2)
    density = kernel @ counts / (max(len(values), 1) * KDE_BANDWIDTH * np.sqrt(2 * np.pi))
    return np.interp(at, grid, density)


def _calibrate(findings: list[Finding], agreeing: np.ndarray, config: Config) -> list[Finding]:
    """Turn the confidences of the prediction-based findings into estimated precisions.

    A finding of kind ``wrong_class``, ``badly_placed_box`` or ``missing_box`` rests on a
    prediction of confidence ``s``; it is a label error when that prediction is right, and
    a model error when it is wrong. The candidates of one kind mix the two:
    ``g(s) = π f(s) + (1 - π) n(s)``, with ``f`` the confidence density of right
    predictions (measured on the version: predictions agreeing with a ground-truth box)
    and ``n`` that of wrong ones (unknown). Wrong predictions rarely score as high as most
    right ones, so ``π`` is estimated from the candidates above the first quartile ``q``
    of the agreeing confidences: ``π = P_g(s ≥ q) / 0.75``; the probability that a
    candidate is a label error is then ``π f(s) / g(s)`` (kernel density estimates, made
    non-decreasing in ``s``). Rank-comparable across kinds (and with ``spurious_box``,
    already a probability), unlike raw confidences: the kinds differ in how often a
    confident candidate is a model error. Kinds with fewer than ``MIN_CANDIDATES``
    candidates, or versions with fewer than ``MIN_AGREEING`` agreeing predictions, keep
    the confidence as the score.
    """
    if len(agreeing) < MIN_AGREEING:
        return findings
    out = [f for f in findings if f.kind not in CALIBRATED_KINDS]
    for kind in CALIBRATED_KINDS:
        group = [f for f in findings if f.kind == kind]
        lowest = config.missing_min_score if kind == "missing_box" else config.min_score
        right = agreeing[agreeing >= lowest]
        if len(group) < MIN_CANDIDATES or len(right) < MIN_AGREEING:
            out.extend(group)
            continue
        conf = np.array([f.evidence["confidence"] for f in group], dtype=np.float64)
        share = min(0.99, float((conf >= np.quantile(right, 0.25)).mean()) / 0.75)
        precision = np.minimum(1.0, share * _density(right, conf) / np.maximum(_density(conf, conf), 1e-12))
        order = np.argsort(conf, kind="stable")
        precision[order] = np.maximum.accumulate(precision[order])
        for f, p in zip(group, precision, strict=True):
            out.append(replace(f, score=float(p), evidence={
                **f.evidence, "estimated_label_error_share": round(share, 4)}))
    return out


class LabelErrorsDetection:
    name = "label_errors_detection"
    Config = Config
    needs_pixels = False
    description = ("Wrong classes, badly placed, missing and spurious boxes: the ground truth "
                   "compared with a model's predictions (with cleanlab's ObjectLab scores).")

    def run(self, ctx: QualityContext, config: Config) -> list[Finding]:
        source = _model_source(ctx, config.model)
        images = _images(ctx, source, config.min_score)
        classes = list(dict.fromkeys([*ctx.classes, *(c for im in images for c in
                                                      (*im.gt_classes, *im.pred_classes))]))
        if config.cleanlab and images:
            ctx.progress("cleanlab object-detection scores", 0, 1)
            quality, swap, badloc = _cleanlab_scores(images, classes)
            ctx.progress("cleanlab object-detection scores", 1, 1)
        untouched = _untouched_rates(images)
        findings: list[Finding] = []
        agreeing: list[float] = []
        for i, im in enumerate(images):
            extra: dict[str, Any] = {"model": source.removeprefix("model:")}
            box_extra: list[dict[str, Any]] = [{} for _ in im.gt_ids]
            if config.cleanlab:
                extra["image_label_quality"] = round(float(quality[i]), 4)
                box_extra = [{"cleanlab_swap_score": round(float(s), 4),
                              "cleanlab_badloc_score": round(float(b), 4)}
                             for s, b in zip(swap[i], badloc[i], strict=True)]
            findings.extend(_image_findings(im, config, extra, box_extra, untouched, agreeing))
            if i % 1000 == 0 or i + 1 == len(images):
                ctx.progress("matching boxes", i + 1, len(images))
        findings = [f for f in _calibrate(findings, np.asarray(agreeing, dtype=np.float64), config)
                    if f.score >= config.min_finding_score]
        findings.sort(key=lambda f: (-f.score, f.sample_id, f.label_id or ""))
        return findings


DETECTOR = LabelErrorsDetection()
