"""A curator finds planted label errors: flipped classes, and wrong, misplaced, missing and
spurious boxes against a model's predictions."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from viewfinder.errors import InvalidInput
from viewfinder.quality import detectors
from viewfinder.quality.context import QualityContext
from viewfinder.services import versions as vs
from viewfinder.services.ingest import import_source
from viewfinder.services.predictions import import_predictions
from viewfinder.storage import rows
from viewfinder.storage.workspace import Workspace, init_workspace
from viewfinder.synthetic import make_coco

PATTERNS = ("top", "left", "centre")
FLIPPED = {"top/007.png": "left", "left/011.png": "centre", "centre/003.png": "top"}


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    w = init_workspace(tmp_path / "ws")
    yield w
    w.close()


def pattern(kind: str, rng: np.random.Generator) -> Image.Image:
    """A noisy 16×16 image whose bright part is the top half, the left half or the centre."""
    y, x = np.mgrid[0:16, 0:16]
    shift = int(rng.integers(-2, 3))
    base = {"top": y < 8 + shift, "left": x < 8 + shift,
            "centre": (abs(x - 7.5 - shift) < 4) & (abs(y - 7.5 + shift) < 4)}[kind]
    px = np.clip(base * 120 + 60 + rng.normal(0, 35, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(px, "L")


def write_patterns(root: Path, n: int = 24) -> dict[str, str]:
    """An image folder of ``n`` images per pattern, three of them filed under the wrong
    class; returns each planted key's true class."""
    rng = np.random.default_rng(5)
    truth = {}
    for kind in PATTERNS:
        for i in range(n):
            key = f"{kind}/{i:03d}.png"
            given = FLIPPED.get(key, kind)
            path = root / given / f"{kind}-{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            pattern(kind, rng).save(path)
            if key in FLIPPED:
                truth[f"{given}/{kind}-{i:03d}.png"] = kind
    return truth


def test_flipped_classification_labels_are_found_from_pixels(ws: Workspace, tmp_path: Path) -> None:
    truth = write_patterns(tmp_path / "src")
    import_source(ws, tmp_path / "src", "patterns", format="imagefolder")
    with QualityContext(ws, vs.resolve(ws, "patterns")) as ctx:
        findings = detectors.run(ctx, "label_errors_classification", {"features": "pixels"})
        keys = {r["id"]: r["key"] for r in ctx.sample_hashes.to_pylist()}
    found = {keys[f.sample_id]: f for f in findings}
    assert set(truth) <= set(found)
    assert len(found) <= len(truth) + 2
    for key, true_class in truth.items():
        f = found[key]
        assert f.kind == "label_error" and f.label_id is not None
        assert f.evidence["given_class"] == key.split("/")[0]
        assert f.evidence["suggested_class"] == true_class
        assert f.evidence["self_confidence"] < 0.5 and 0.5 < f.score <= 1.0
    assert findings == sorted(findings, key=lambda f: -f.score)


def test_classification_from_imported_probabilities(ws: Workspace, tmp_path: Path) -> None:
    truth = write_patterns(tmp_path / "src", n=8)
    import_source(ws, tmp_path / "src", "patterns", format="imagefolder")
    with open(tmp_path / "probs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", *PATTERNS])
        for folder in PATTERNS:
            for p in sorted((tmp_path / "src" / folder).iterdir()):
                key = f"{folder}/{p.name}"
                true_class = truth.get(key, folder)  # a model that sees the right class
                w.writerow([key, *(0.9 if c == true_class else 0.05 for c in PATTERNS)])
    import_predictions(ws, "patterns", tmp_path / "probs.csv", model="clf", format="classification-csv")
    with QualityContext(ws, vs.resolve(ws, "patterns")) as ctx:
        findings = detectors.run(ctx, "label_errors_classification")  # auto: the predictions
    assert {f.sample_id for f in findings} == {rows.sample_id(k) for k in truth}
    assert {f.evidence["probabilities_from"] for f in findings} == {"model:clf"}
    with QualityContext(ws, vs.resolve(ws, "patterns")) as ctx, pytest.raises(InvalidInput, match="gpt"):
        detectors.run(ctx, "label_errors_classification", {"model": "gpt"})


# -- detection -----------------------------------------------------------------------

def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)


@pytest.fixture
def boxes(ws: Workspace, tmp_path: Path) -> dict[str, Any]:
    """A 16-image COCO set with one box of each error kind planted, imported with the
    predictions of a model that saw the true boxes."""
    src = make_coco(tmp_path / "src", n_images=16, boxes=(2, 3), seed=11, val_fraction=0.0)
    ann = src / "annotations" / "instances_train.json"
    doc = json.loads(ann.read_text())
    rng = random.Random(1)
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "score": round(rng.uniform(0.8, 0.95), 3),
                "bbox": [a["bbox"][0] + 1, a["bbox"][1], a["bbox"][2], a["bbox"][3] - 1]}
               for a in doc["annotations"]]
    results.append({"image_id": 2, "category_id": 1, "bbox": [150, 110, 8, 8], "score": 0.1})  # noise
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in doc["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    # pick one box per kind from images whose boxes do not overlap each other
    clean = [i for i, anns in sorted(by_image.items())
             if all(_iou(a["bbox"], b["bbox"]) == 0 for a in anns for b in anns if a is not b)]
    swap, shift, remove = (by_image[i][0] for i in clean[:3])
    swap["category_id"] = swap["category_id"] % 4 + 1
    x, y, w, h = shift["bbox"]
    shift["bbox"] = [x + w * 0.55 if x + w * 1.55 <= 160 else x - w * 0.55, y, w, h]
    doc["annotations"].remove(remove)
    spurious = {"id": 9999, "image_id": clean[3], "category_id": 2, "bbox": [2, 2, 40, 30],
                "area": 1200, "iscrowd": 0, "segmentation": []}
    assert all(_iou(spurious["bbox"], a["bbox"]) == 0 for a in by_image[clean[3]])
    doc["annotations"].append(spurious)
    ann.write_text(json.dumps(doc))
    import_source(ws, src, "boxes")
    (tmp_path / "results.json").write_text(json.dumps(results))
    import_predictions(ws, "boxes", tmp_path / "results.json", model="det", annotations=ann)
    files = {im["id"]: f"train/{im['file_name']}" for im in doc["images"]}
    return {"ws": ws, "swap": swap, "shift": shift, "remove": remove, "spurious": spurious, "files": files}


def test_detection_errors_of_each_kind_are_found_and_ranked_first(boxes: dict[str, Any]) -> None:
    ws, files = boxes["ws"], boxes["files"]
    with QualityContext(ws, vs.resolve(ws, "boxes")) as ctx:
        findings = detectors.run(ctx, "label_errors_detection")
        source_ids = {r["id"]: int(r["source_id"]) for r in ctx.sql(
            "SELECT id, source_id FROM labels WHERE source = 'ground_truth'").to_pylist()}
    top = findings[:4]
    assert {f.kind for f in top} == {"wrong_class", "badly_placed_box", "missing_box", "spurious_box"}
    by_kind = {f.kind: f for f in top}
    assert source_ids[by_kind["wrong_class"].label_id] == boxes["swap"]["id"]
    assert by_kind["wrong_class"].evidence["suggested_class"] != by_kind["wrong_class"].evidence["given_class"]
    assert source_ids[by_kind["badly_placed_box"].label_id] == boxes["shift"]["id"]
    assert source_ids[by_kind["spurious_box"].label_id] == boxes["spurious"]["id"]
    missing = by_kind["missing_box"]
    assert missing.label_id is None
    assert missing.sample_id == rows.sample_id(files[boxes["remove"]["image_id"]])
    assert _iou(missing.evidence["predicted_box"], boxes["remove"]["bbox"]) > 0.8
    assert 0.0 <= missing.evidence["image_label_quality"] <= 1.0
    # the rest (if any) score far lower than the planted errors
    assert all(f.score < min(t.score for t in top) for f in findings[4:])


def test_detection_needs_predictions(ws: Workspace, tmp_path: Path) -> None:
    import_source(ws, make_coco(tmp_path / "src", n_images=3, seed=2), "plain")
    with QualityContext(ws, vs.resolve(ws, "plain")) as ctx, pytest.raises(InvalidInput, match="import some first"):
        detectors.run(ctx, "label_errors_detection")
    with QualityContext(ws, vs.resolve(ws, "plain")) as ctx, pytest.raises(InvalidInput, match="misspelt"):
        detectors.run(ctx, "label_errors_detection", {"misspelt": 1})


def test_detection_confidences_become_label_error_precisions_per_kind() -> None:
    """A kind whose candidates are mostly model errors (many weak unexplained predictions)
    ranks its confident candidates lower than a kind whose candidates are mostly label errors."""
    from viewfinder.quality.detectors.label_errors_detection import Config, _calibrate
    from viewfinder.quality.findings import Finding

    rng = random.Random(3)
    agreeing = np.array([rng.uniform(0.75, 0.98) for _ in range(200)])

    def found(kind: str, confidence: float, error: bool) -> Finding:
        return Finding(kind, confidence, f"s{rng.random()}", None, evidence={"confidence": confidence, "error": error})

    findings = ([found("wrong_class", rng.uniform(0.8, 0.95), True) for _ in range(6)]
                + [found("wrong_class", rng.uniform(0.3, 0.6), False) for _ in range(12)]
                + [found("missing_box", 0.9, True) for _ in range(2)]
                + [found("missing_box", rng.uniform(0.3, 0.5), False) for _ in range(60)]
                + [found("badly_placed_box", 0.8, True), Finding("spurious_box", 0.7, "sp", "l1")])
    out = _calibrate(findings, agreeing, Config())
    assert len(out) == len(findings)
    assert all(0.0 <= f.score <= 1.0 for f in out)
    by_kind: dict[str, list[Finding]] = {}
    for f in out:
        by_kind.setdefault(f.kind, []).append(f)
    for kind in ("wrong_class", "missing_box"):
        errors = [f.score for f in by_kind[kind] if f.evidence["error"]]
        others = [f.score for f in by_kind[kind] if not f.evidence["error"]]
        assert min(errors) > max(others)
    share = {k: by_kind[k][0].evidence["estimated_label_error_share"] for k in ("wrong_class", "missing_box")}
    assert 0.2 < share["wrong_class"] < 0.6 and share["missing_box"] < 0.1
    best = {k: max(f.score for f in by_kind[k]) for k in ("wrong_class", "missing_box")}
    assert best["missing_box"] < best["wrong_class"]
    # too few candidates to measure, or not a prediction-based kind: the score is kept
    assert [f.score for f in by_kind["badly_placed_box"]] == [0.8]
    assert [f.score for f in by_kind["spurious_box"]] == [0.7]
