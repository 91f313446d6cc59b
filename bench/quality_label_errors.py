#!/usr/bin/env python3
"""Precision and recall of the label-error detectors, against planted errors.

    .venv/bin/python bench/quality_label_errors.py [--flip 0.1] [--images 500] [--seed 0]

1. Classification: scikit-learn's handwritten digits (1,797 real 8×8 images), upscaled to
   32×32 PNGs in an image folder, 10% of labels flipped at random to another class;
   imported with Viewfinder and scanned by ``label_errors_classification`` (out-of-fold
   logistic regression on the images' pixel features, cleanlab). Precision and recall of
   the flagged labels against the flipped ones. Target: precision ≥ 0.8, recall ≥ 0.7.
2. Detection: a synthetic COCO set (``viewfinder.synthetic.make_coco``), 5% of its boxes
   corrupted, a quarter each way: class swapped, box shifted to IoU 0.1–0.45 with the
   object, box removed, spurious box added. A simulated imperfect detector predicts from
   the true objects (jittered boxes, 3% missed outright, 10% found only weakly, 3% wrong
   class, some duplicates, 0.5 false positives per image) and its COCO results are
   imported with ``import-predictions``. ``label_errors_detection`` ranks the errors; the
   average precision of that ranking (scikit-learn) is computed over every ground-truth
   box plus every missing-box candidate (the findings without a label, and removed boxes
   that got none), per kind and overall. Target: ≥ 0.8.

Data goes to a fresh folder under /tmp, deleted at the end; figures are printed and
appended to ``bench/RESULTS.md`` with the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import machine

KINDS = ("wrong_class", "badly_placed_box", "missing_box", "spurious_box")


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


# -- 1. classification ---------------------------------------------------------------

def bench_classification(root: Path, flip: float, seed: int, features: str) -> dict[str, Any]:
    from PIL import Image
    from sklearn.datasets import load_digits

    from viewfinder.quality import detectors
    from viewfinder.quality.context import QualityContext
    from viewfinder.services import versions as vs
    from viewfinder.services.ingest import import_source
    from viewfinder.storage import rows
    from viewfinder.storage.workspace import init_workspace

    digits = load_digits()
    rng = np.random.default_rng(seed)
    n = len(digits.target)
    labels = digits.target.copy()
    flipped = rng.choice(n, size=round(flip * n), replace=False)
    for i in flipped:
        labels[i] = rng.choice([c for c in range(10) if c != digits.target[i]])
    src = root / f"digits-{features}"
    keys = []
    for i in range(n):
        key = f"digit_{labels[i]}/{i:04d}.png"
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        px = (digits.images[i] * (255 / 16)).astype(np.uint8)
        Image.fromarray(px, "L").resize((32, 32), Image.Resampling.NEAREST).save(src / key)
        keys.append(key)
    ws = init_workspace(root / f"ws-digits-{features}")
    t0 = time.perf_counter()
    import_source(ws, src, "digits", format="imagefolder")
    t1 = time.perf_counter()
    with QualityContext(ws, vs.resolve(ws, "digits")) as ctx:
        findings = detectors.run(ctx, "label_errors_classification", {"features": features})
    t2 = time.perf_counter()
    ws.close()
    truth = {rows.sample_id(keys[i]) for i in flipped}
    flagged = {f.sample_id for f in findings}
    hits = len(flagged & truth)
    precision = hits / len(flagged) if flagged else 0.0
    recall = hits / len(truth)
    return {"images": n, "flipped": len(truth), "flagged": len(flagged), "true_positives": hits,
            "precision": round(precision, 3), "recall": round(recall, 3),
            "import_s": round(t1 - t0, 2), "detector_s": round(t2 - t1, 2),
            "features": findings[0].evidence["probabilities_from"] if findings else None}


# -- 2. detection --------------------------------------------------------------------

def _iou(a: list[float], b: list[float]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0.0, min(ax1, bx1) - max(a[0], b[0])), max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _clip(b: list[float], w: int, h: int) -> list[float]:
    x0, y0 = min(max(b[0], 0.0), w - 2.0), min(max(b[1], 0.0), h - 2.0)
    x1, y1 = min(max(b[0] + b[2], x0 + 2.0), float(w)), min(max(b[1] + b[3], y0 + 2.0), float(h))
    return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]


def corrupt(doc: dict[str, Any], rate: float, rng: random.Random) -> dict[str, Any]:
    """Corrupt ``rate`` of the boxes in place, a quarter each way; returns the truth."""
    anns = doc["annotations"]
    size = {im["id"]: (im["width"], im["height"]) for im in doc["images"]}
    n_cat = len(doc["categories"])
    n = round(rate * len(anns))
    quarter = [n // 4 + (1 if k < n % 4 else 0) for k in range(4)]
    chosen = rng.sample(range(len(anns)), quarter[0] + quarter[1] + quarter[2])
    swap, shift, remove = (chosen[:quarter[0]], chosen[quarter[0]:quarter[0] + quarter[1]],
                           chosen[quarter[0] + quarter[1]:])
    truth: dict[str, Any] = {"wrong_class": [], "badly_placed_box": [], "missing_box": [], "spurious_box": []}
    for i in swap:
        a = anns[i]
        a["category_id"] = rng.choice([c for c in range(1, n_cat + 1) if c != a["category_id"]])
        truth["wrong_class"].append(a["id"])
    for i in shift:
        a = anns[i]
        w, h = size[a["image_id"]]
        orig = list(map(float, a["bbox"]))
        for _ in range(200):
            dx = rng.uniform(0.3, 0.8) * orig[2] * rng.choice((-1, 1))
            dy = rng.uniform(0.0, 0.5) * orig[3] * rng.choice((-1, 1))
            cand = _clip([orig[0] + dx, orig[1] + dy, orig[2], orig[3]], w, h)
            if 0.1 <= _iou(orig, cand) <= 0.45:
                break
        a["bbox"] = cand
        a["area"] = cand[2] * cand[3]
        truth["badly_placed_box"].append({"id": a["id"], "image_id": a["image_id"], "original": orig})
    removed_ids = {anns[i]["id"] for i in remove}
    truth["missing_box"] = [{"image_id": a["image_id"], "box": list(map(float, a["bbox"]))}
                            for a in anns if a["id"] in removed_ids]
    doc["annotations"] = [a for a in anns if a["id"] not in removed_ids]
    next_id = max(a["id"] for a in anns) + 1
    by_image: dict[int, list[list[float]]] = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(list(map(float, a["bbox"])))
    for _ in range(quarter[3]):
        while True:
            im = rng.choice(doc["images"])
            w, h = im["width"], im["height"]
            bw, bh = rng.randint(8, w // 2), rng.randint(8, h // 2)
            box = [float(rng.randint(0, w - bw)), float(rng.randint(0, h - bh)), float(bw), float(bh)]
            if all(_iou(box, o) < 0.05 for o in by_image.get(im["id"], [])):
                break
        doc["annotations"].append({"id": next_id, "image_id": im["id"], "category_id": rng.randint(1, n_cat),
                                   "bbox": box, "area": bw * bh, "iscrowd": 0, "segmentation": []})
        truth["spurious_box"].append(next_id)
        next_id += 1
    return truth


DETECTORS: dict[str, dict[str, Any]] = {
    # misses concentrate on small objects (as COCO's AP_small << AP_large says); a confused
    # class is predicted with middling confidence, often beside the true class
    "realistic": {"miss": (0.08, 0.01, 0.003), "weak": 0.08, "confuse": 0.03,
                  "confuse_score": (0.3, 0.75), "true_class_too": 0.6, "fp_per_image": 0.5,
                  "fp_high": 0.10, "duplicate": 0.05},
    # the same miss rate at every size, confusions as confident as right answers
    "harsh": {"miss": (0.03, 0.03, 0.03), "weak": 0.10, "confuse": 0.03,
              "confuse_score": None, "true_class_too": 0.0, "fp_per_image": 0.5,
              "fp_high": 0.15, "duplicate": 0.05},
}


def simulate_detector(clean: dict[str, Any], rng: random.Random, preset: dict[str, Any]) -> list[dict[str, Any]]:
    """COCO results of an imperfect detector looking at the true objects."""
    size = {im["id"]: (im["width"], im["height"]) for im in clean["images"]}
    n_cat = len(clean["categories"])
    out: list[dict[str, Any]] = []

    def det(image_id: int, cat: int, box: list[float], score: float) -> None:
        w, h = size[image_id]
        out.append({"image_id": image_id, "category_id": cat, "bbox": _clip(box, w, h),
                    "score": round(min(max(score, 0.01), 1.0), 4)})

    for a in clean["annotations"]:
        x, y, bw, bh = map(float, a["bbox"])
        bucket = (bw * bh >= 32 ** 2) + (bw * bh >= 96 ** 2)
        if rng.random() < preset["miss"][bucket]:
            continue  # missed outright
        weak = rng.random() < preset["weak"]
        score = rng.uniform(0.05, 0.4) if weak else min(0.99, max(0.3, rng.gauss(0.85, 0.1)))
        box = [x + rng.gauss(0, 0.05 * bw), y + rng.gauss(0, 0.05 * bh),
               bw * (1 + rng.gauss(0, 0.06)), bh * (1 + rng.gauss(0, 0.06))]
        cat = a["category_id"]
        if rng.random() < preset["confuse"]:
            cat = rng.choice([c for c in range(1, n_cat + 1) if c != a["category_id"]])
            if preset["confuse_score"] is not None:
                score = rng.uniform(*preset["confuse_score"])
            if rng.random() < preset["true_class_too"]:
                det(a["image_id"], a["category_id"], box, rng.uniform(0.05, 0.35))
        det(a["image_id"], cat, box, score)
        if rng.random() < preset["duplicate"]:  # survived non-maximum suppression
            det(a["image_id"], cat, [v + rng.gauss(0, 0.1 * max(bw, bh)) for v in box[:2]] + box[2:],
                score * rng.uniform(0.3, 0.7))
    for im in clean["images"]:
        for _ in range(np.random.default_rng(rng.randrange(2**32)).poisson(preset["fp_per_image"])):
            w, h = im["width"], im["height"]
            bw, bh = rng.randint(8, w // 2), rng.randint(8, h // 2)
            score = rng.uniform(0.4, 0.8) if rng.random() < preset["fp_high"] else rng.uniform(0.05, 0.4)
            det(im["id"], rng.randint(1, n_cat), [rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh], score)
    return out


def bench_detection(root: Path, n_images: int, rate: float, seed: int, detector: str) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score

    from viewfinder.quality import detectors
    from viewfinder.quality.context import QualityContext
    from viewfinder.services import versions as vs
    from viewfinder.services.ingest import import_source
    from viewfinder.services.predictions import import_predictions
    from viewfinder.storage.workspace import init_workspace
    from viewfinder.synthetic import CLASSES, make_coco

    rng = random.Random(seed)
    src = make_coco(root / f"det-{detector}", n_images=n_images, classes=CLASSES[:6], boxes=(1, 6),
                    size=(192, 144), val_fraction=0.0, seed=seed)
    ann_path = src / "annotations" / "instances_train.json"
    clean = json.loads(ann_path.read_text())
    doc = json.loads(ann_path.read_text())
    truth = corrupt(doc, rate, rng)
    ann_path.write_text(json.dumps(doc))
    results = simulate_detector(clean, rng, DETECTORS[detector])
    res_path = root / f"results-{detector}.json"
    res_path.write_text(json.dumps(results))

    ws = init_workspace(root / f"ws-det-{detector}")
    t0 = time.perf_counter()
    import_source(ws, src, "det", format="coco")
    t1 = time.perf_counter()
    pr = import_predictions(ws, "det", res_path, model="sim", annotations=ann_path)
    t2 = time.perf_counter()
    at = vs.resolve(ws, "det")
    with QualityContext(ws, at) as ctx:
        findings = detectors.run(ctx, "label_errors_detection")
        gt = ctx.sql("SELECT l.id, l.source_id, s.key FROM labels l JOIN samples s ON l.sample_id = s.id "
                     "WHERE l.source = 'ground_truth'").to_pylist()
        keys = {r["id"]: r["key"] for r in ctx.sql("SELECT id, key FROM samples").to_pylist()}
    t3 = time.perf_counter()
    ws.close()

    file_of = {im["id"]: im["file_name"] for im in doc["images"]}
    image_of_key = {f"train/{fn}": iid for iid, fn in file_of.items()}
    kind_of_ann = {a: "wrong_class" for a in truth["wrong_class"]}
    kind_of_ann.update({b["id"]: "badly_placed_box" for b in truth["badly_placed_box"]})
    kind_of_ann.update({a: "spurious_box" for a in truth["spurious_box"]})
    best: dict[str, tuple[float, str]] = {}
    for f in findings:
        if f.label_id is not None and f.score > best.get(f.label_id, (-1.0, ""))[0]:
            best[f.label_id] = (f.score, f.kind)
    items: list[tuple[float, str | None, str | None]] = []  # (score, true kind, found kind)
    for r in gt:
        s, k = best.get(r["id"], (0.0, None))
        items.append((s, kind_of_ann.get(int(r["source_id"])), k))
    # missing-box candidates: each finding without a label is positive when it points at a
    # removed box (or the true place of a shifted one); each such box counts once
    targets: dict[int, list[tuple[str, list[float]]]] = {}
    for i, m in enumerate(truth["missing_box"]):
        targets.setdefault(m["image_id"], []).append((f"removed:{i}", m["box"]))
    for b in truth["badly_placed_box"]:
        targets.setdefault(b["image_id"], []).append((f"shifted:{b['id']}", b["original"]))
    claimed: set[str] = set()
    for f in sorted((f for f in findings if f.label_id is None), key=lambda f: -f.score):
        iid = image_of_key[keys[f.sample_id]]
        hit = next((name for name, box in targets.get(iid, [])
                    if name not in claimed and _iou(box, f.evidence["predicted_box"]) >= 0.5), None)
        if hit is not None:
            claimed.add(hit)
        items.append((f.score, "missing_box" if hit is not None else None, f.kind))
    for i in range(len(truth["missing_box"])):
        if f"removed:{i}" not in claimed:
            items.append((0.0, "missing_box", None))
    scores = np.array([s for s, _, _ in items])
    kinds = [k for _, k, _ in items]
    out: dict[str, Any] = {
        "detector": detector, "images": n_images, "gt_boxes": len(gt), "predictions": pr.predictions,
        "corrupted": {k: len(v) for k, v in truth.items()}, "findings": len(findings),
        "import_s": round(t1 - t0, 2), "import_predictions_s": round(t2 - t1, 2),
        "detector_s": round(t3 - t2, 2),
        "ap_overall": round(float(average_precision_score([k is not None for k in kinds], scores)), 3)}
    for kind in KINDS:
        sel = [i for i, k in enumerate(kinds) if k is None or k == kind]
        y = [kinds[i] == kind for i in sel]
        out[f"ap_{kind}"] = round(float(average_precision_score(y, scores[sel])), 3)
        pos = [(found, s) for s, k, found in items if k == kind]
        out[f"kind_right_{kind}"] = round(sum(found == kind for found, _ in pos) / max(len(pos), 1), 3)
    return out


# -- report --------------------------------------------------------------------------

def write_results(cls: list[dict[str, Any]], dets: list[dict[str, Any]], cmd: str) -> str:
    now = datetime.now(UTC)
    lines = [f"\n## {now:%Y-%m-%d %H:%M} UTC — label-error detectors (quality, issue 3)\n",
             f"Machine: {machine()}", f"Command: `{cmd}`\n",
             "| figure | target | measured |", "|---|---|---|"]
    for c in cls:
        lines += [
            (f"| digits, {c['flipped']} of {c['images']} labels flipped, {c['features']}: precision | ≥ 0.8 | "
             f"{c['precision']} ({c['true_positives']} of {c['flagged']} flagged) |"),
            (f"| — recall | ≥ 0.7 | {c['recall']} ({c['true_positives']} of {c['flipped']}); "
             f"detector {c['detector_s']} s |")]
    for det in dets:
        lines += [
            (f"| detection, {det['detector']} simulated detector, {det['images']} images, "
             f"{sum(det['corrupted'].values())} of {det['gt_boxes']} boxes corrupted: AP of the error "
             f"ranking, overall | ≥ 0.8 | {det['ap_overall']} |"),
            *(f"| — {det['detector']}: AP of {k} ({det['corrupted'][k]} planted; the right kind named "
              f"for {det['kind_right_' + k]:.0%}) | — | {det['ap_' + k]} |" for k in KINDS)]
    lines.append("")
    if cls:
        lines.append("Classification: the digits upscaled to 32×32 PNGs, imported as an image folder; "
                     "out-of-fold logistic regression (5 stratified folds) on 16×16 grayscale pixels or "
                     "on the builtin embedding provider's vectors; cleanlab `find_label_issues`.")
    lines += [("Detection: simulated detectors (presets in the script: `realistic` misses small objects "
               "more and is less sure of confused classes; `harsh` misses 3% at every size and is as sure "
               "of confusions as of right answers), so these figures measure the ranking, not a real model."),
              "", f"Raw figures: `{json.dumps({'classification': cls, 'detection': dets}, sort_keys=True)}`", ""]
    text = "\n".join(lines)
    with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
        f.write(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flip", type=float, default=0.10, help="share of digit labels flipped")
    ap.add_argument("--images", type=int, default=500, help="images of the detection set")
    ap.add_argument("--rate", type=float, default=0.05, help="share of boxes corrupted")
    ap.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=list(DETECTORS),
                    help="simulated detector presets")
    ap.add_argument("--features", nargs="+", default=["pixels", "embeddings"], choices=["pixels", "embeddings"],
                    help="features of the classification detector (embeddings: the builtin provider)")
    ap.add_argument("--skip-classification", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vf-bench-labelerrors-"))
    cls: list[dict[str, Any]] = []
    dets: list[dict[str, Any]] = []
    try:
        for features in [] if args.skip_classification else args.features:
            log(f"classification: digits, {features}")
            cls.append(bench_classification(root, args.flip, args.seed, features))
            log(json.dumps(cls[-1]))
        for name in args.detectors:
            log(f"detection: synthetic set + {name} simulated detector")
            dets.append(bench_detection(root, args.images, args.rate, args.seed, name))
            log(json.dumps(dets[-1]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    cmd = ".venv/bin/python bench/quality_label_errors.py " + " ".join(sys.argv[1:])
    if args.no_write:
        print(json.dumps({"classification": cls, "detection": dets}, indent=2))
    else:
        print(write_results(cls, dets, cmd.strip()))


if __name__ == "__main__":
    main()
