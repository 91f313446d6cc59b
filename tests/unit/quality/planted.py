"""A small COCO detection dataset with planted problems, and its corrected delivery.

Problems (``PLANTED`` names the sample keys and COCO annotation ids):

- a car box sticking 0.8 px out of the right edge (import tolerates 1 px; checks do not),
- a 1x1 person box,
- a label of a class outside the declared schema, named like an XSS attack,
- a sample without a split,
- an unbalanced class (one dog against 24 cars and 24 persons),
- the same image in train and in val,
- a sample whose ``region`` metadata field is missing.

:func:`write_source` with ``fixed=True`` writes the corrected delivery: the box moved in,
the tiny box and the hostile-class label gone, the duplicate image gone, every sample in a
split and with a region. The class fixes (dog, hostile class) are a remap in the tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from viewfinder.storage import rows

HOSTILE = "<script>alert(1)</script>"
SIZE = (64, 48)
N = 24            # images 0..15 train, 16..21 val, 22 = copy of 3 (val), 23 no split
CLASSES = ["car", "person", "dog", HOSTILE]


def key(i: int) -> str:
    split = "train" if i < 16 else "val" if i < 23 else None
    return f"{split}/{i:06d}.png" if split else f"{i:06d}.png"    # relative to images/


PLANTED = {
    "outside": (key(5), 1005),      # (sample key, COCO annotation id)
    "tiny": (key(6), 6006),
    "hostile": (key(7), 7007),
    "dog": (key(0), 9000),
    "no_split": key(23),
    "dup_train": key(3),
    "dup_val": key(22),
    "no_region": key(8),
}


def sample_id(k: str) -> str:
    return rows.sample_id(k)


def _image(i: int) -> Image.Image:
    src = 3 if i == 22 else i
    im = Image.new("RGB", SIZE, (10 * src % 250, 80 + 7 * src % 170, 200 - 5 * src))
    d = ImageDraw.Draw(im)
    d.rectangle([4, 4, 24, 20], fill=(220, 40, 40))
    d.ellipse([30, 10, 50, 40], fill=(40, 160, 40))
    return im


def write_source(root: Path, *, fixed: bool = False) -> Path:
    """Write the COCO source (``images/<split>/``, ``annotations/``) and ``meta.json``."""
    docs: dict[str, dict[str, Any]] = {}
    categories = [{"id": k + 1, "name": c} for k, c in enumerate(CLASSES)]
    meta: dict[str, dict[str, Any]] = {}
    for i in range(N):
        if fixed and i == 22:
            continue
        k = key(i)
        split = (k.split("/")[0] if "/" in k else None) or ("train" if fixed else None)
        path = root / "images" / k
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _image(i).save(path)
        doc = docs.setdefault(split or "default", {"images": [], "annotations": [], "categories": categories})
        doc["images"].append({"id": i + 1, "file_name": Path(k).name, "width": SIZE[0], "height": SIZE[1]})
        anns = [(1000 * i + 1, 1, [4, 4, 21, 17]), (1000 * i + 2, 2, [30, 10, 21, 31])]
        if i == 5:
            anns.append((1005, 1, [44, 20, 19.8 if fixed else 20.8, 10]))
        if i == 6 and not fixed:
            anns.append((6006, 2, [10, 30, 1, 1]))
        if i == 7 and not fixed:
            anns.append((7007, 4, [8, 8, 12, 12]))
        if i == 0:
            anns.append((9000, 3, [40, 2, 12, 6]))
        for aid, cat, box in anns:
            doc["annotations"].append({"id": aid, "image_id": i + 1, "category_id": cat, "bbox": box,
                                       "area": box[2] * box[3], "iscrowd": 0, "segmentation": []})
        if i != 8 or fixed:
            meta[Path(k).name] = {"region": "EU" if i % 2 else "APAC"}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, doc in docs.items():
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def label_id(ws: Any, dataset: str, sample_key: str, ann_id: int) -> str:
    """The stable label id of a COCO annotation of a sample."""
    from viewfinder.services import versions as vs
    from viewfinder.services.look import VersionReader

    with VersionReader(ws, vs.resolve(ws, dataset)) as r:
        t = r.query("SELECT id FROM labels WHERE sample_id = ? AND source_id = ?",
                    [sample_id(sample_key), str(ann_id)])
    return str(t.column("id")[0].as_py())


CUSTOM_SUITE = """\
name: street-release
description: what a release of this dataset must satisfy
checks:
  - name: labels follow the schema
    check: schema
    params:
      classes: [car, person]
  - name: boxes are sane
    check: geometry
    params: {min_size: 2, tolerance: 0}
  - name: everything labeled and split
    check: completeness
    params: {min_labeled: 1.0, splits: [train, val]}
  - name: classes balanced
    check: class_balance
    params: {min_count: 5, max_ratio: 3, classes: [car, person]}
  - name: no leakage
    check: split_hygiene
    params: {near_duplicates: false}
  - name: region recorded
    check: metadata
    params:
      fields:
        region: {type: str, values: [EU, APAC]}
  - name: validation images only
    check: image_integrity
    severity: warning
    filter: split == "val"
    params: {decode: false, min_width: 32, min_height: 32, formats: [png]}
"""
