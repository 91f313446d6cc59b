"""A small COCO dataset a curator would want cleaned, with one instance of each problem.

Sample keys are paths under ``images/`` (``train/dark.jpg``), as the COCO import keys them.

Twenty ordinary street scenes (textured, sharp, colour, 160×120) and, planted among them
(``PLANTED`` maps a problem to its sample key):

- ``dark``: a scene at a tenth of its brightness;
- ``blurry``: a scene under a strong Gaussian blur;
- ``grayscale``: a scene saved as a one-channel image;
- ``strip``: a 2000×50 panorama strip;
- ``copy_a`` / ``copy_b``: one file under two names (``copy_b`` in val: a leak);
- ``resized``: scene 3 resized to 120×90 and re-encoded (a near-duplicate of ``scene3``);
- ``truncated``: a PNG whose second half is lost (its end marker is there, so the import
  takes it; only decoding the whole image shows the damage);
- ``double_box``: a scene whose car is labelled twice with boxes one pixel apart.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from viewfinder.storage import rows

SIZE = (160, 120)
N_SCENES = 20
CLASSES = ["car", "person"]


def scene_key(i: int) -> str:
    return f"train/scene{i:02d}.jpg"


PLANTED = {
    "dark": "train/dark.jpg",
    "blurry": "train/blurry.jpg",
    "grayscale": "train/gray.jpg",
    "strip": "train/strip.jpg",
    "copy_a": "train/copy_a.jpg",
    "copy_b": "val/copy_b.jpg",
    "resized": "train/resized.jpg",
    "scene3": scene_key(3),
    "truncated": "train/broken.png",
    "double_box": scene_key(5),
}


def sample_id(key: str) -> str:
    return rows.sample_id(key)


def scene(i: int, size: tuple[int, int] = SIZE) -> Image.Image:
    """A textured scene: a colour gradient, a few shapes, mild sensor noise (seeded by ``i``)."""
    rng = np.random.default_rng(1000 + i)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h + 1) / 2
    c0, c1 = rng.uniform(40, 220, 3), rng.uniform(40, 220, 3)
    img = c0[None, None, :] * (1 - ramp[..., None]) + c1[None, None, :] * ramp[..., None]
    img += rng.normal(0, 6, img.shape)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(rng.integers(3, 7)):
        x0, y0 = rng.integers(0, w - 20), rng.integers(0, h - 20)
        x1, y1 = x0 + rng.integers(10, w // 2), y0 + rng.integers(10, h // 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0, x1, y1], fill=colour)
    return im


def jpeg(im: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def images() -> dict[str, bytes]:
    """Every image of the dataset by key (encoded bytes)."""
    out = {scene_key(i): jpeg(scene(i)) for i in range(N_SCENES)}
    out[PLANTED["dark"]] = jpeg(scene(30).point(lambda v: v // 10))
    out[PLANTED["blurry"]] = jpeg(scene(31).filter(ImageFilter.GaussianBlur(3)))
    out[PLANTED["grayscale"]] = jpeg(scene(32).convert("L"))
    strip = scene(33, (2000, 50))
    out[PLANTED["strip"]] = jpeg(strip)
    copy = jpeg(scene(34))
    out[PLANTED["copy_a"]] = out[PLANTED["copy_b"]] = copy
    out[PLANTED["resized"]] = jpeg(scene(3).resize((120, 90), Image.Resampling.LANCZOS), 75)
    buf = io.BytesIO()
    scene(35).save(buf, "PNG")
    whole = buf.getvalue()
    out[PLANTED["truncated"]] = whole[: len(whole) // 2] + whole[-12:]  # + the IEND chunk
    return out


Box = tuple[str, list[float]]  # (class, [x, y, w, h])


def write_coco(root: Path, images: dict[str, bytes], boxes: dict[str, list[Box]] | None = None,
               classes: list[str] | None = None) -> Path:
    """Write a COCO source: ``images/<key>`` (the key's first folder is its split) and
    ``annotations/instances_<split>.json``; ``boxes`` by key, in annotation-id order."""
    classes = classes or CLASSES
    docs: dict[str, dict[str, Any]] = {}
    categories = [{"id": k + 1, "name": c} for k, c in enumerate(classes)]
    ann_id = 1
    for n, (key, data) in enumerate(sorted(images.items())):
        path = root / "images" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        split = key.split("/")[0]
        doc = docs.setdefault(split, {"images": [], "annotations": [], "categories": categories})
        w, h = Image.open(io.BytesIO(data)).size
        doc["images"].append({"id": n + 1, "file_name": Path(key).name, "width": w, "height": h})
        for class_name, box in (boxes or {}).get(key, []):
            doc["annotations"].append({"id": ann_id, "image_id": n + 1,
                                       "category_id": classes.index(class_name) + 1, "bbox": box,
                                       "area": box[2] * box[3], "iscrowd": 0, "segmentation": []})
            ann_id += 1
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, doc in docs.items():
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return root


def write_source(root: Path) -> Path:
    """Write the curation dataset: two boxes per image (one where the strip is too low),
    and the car of ``double_box`` labelled twice."""
    data = images()
    boxes: dict[str, list[Box]] = {}
    for key, raw in data.items():
        w, h = Image.open(io.BytesIO(raw)).size
        boxes[key] = [(c, b) for c, b in (("car", [8, 8, 40, 30]), ("person", [60, 40, 30, 50]))
                      if b[0] + b[2] <= w and b[1] + b[3] <= h]
    boxes[PLANTED["double_box"]].append(("car", [9, 8, 40, 30]))  # the same car, 1 px right
    return write_coco(root, data, boxes)
