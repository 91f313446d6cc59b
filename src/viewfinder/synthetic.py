"""Small synthetic detection datasets with real JPEGs: for the demo, tests and examples.

Each box is a drawn shape of its class's colour, so the labels match the pixels.
(``bench/generate.py`` writes the large benchmark sets.)

Example:
    >>> from viewfinder.synthetic import make_coco
    >>> make_coco("street", n_images=20, seed=1)                     # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

CLASSES = ("car", "person", "bicycle", "dog", "cat", "truck", "bus", "bird", "boat", "sign")
COLOURS = ((220, 40, 40), (40, 160, 40), (40, 40, 220), (200, 160, 0), (160, 0, 160),
           (0, 160, 160), (240, 120, 0), (120, 60, 20), (90, 90, 90), (250, 250, 250))


def render(w: int, h: int, boxes: list[tuple[int, tuple[float, float, float, float]]],
           rng: random.Random) -> Any:
    import numpy as np
    from PIL import Image, ImageDraw

    # a lit scene, not a flat fill: a gradient across the frame with some sensor noise
    colour = [rng.randint(30, 90) for _ in range(3)]
    # seeded from what was drawn already, so `rng` advances exactly as it always has (the
    # splits and boxes of a seed stay the same)
    gen = np.random.default_rng([*colour, w, h, *(int(v) for _, box in boxes for v in box)])
    base = np.array(colour, dtype=np.float32)
    ramp = np.linspace(-25, 25, w, dtype=np.float32)[None, :, None] * gen.choice((-1, 1))
    ramp = ramp + np.linspace(-15, 15, h, dtype=np.float32)[:, None, None]
    pixels = base + ramp + gen.normal(0, 6, (h, w, 3)).astype(np.float32)
    im = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    for cls, (x, y, bw, bh) in boxes:
        shape = d.ellipse if cls % 2 else d.rectangle
        shape([x, y, x + bw - 1, y + bh - 1], fill=COLOURS[cls % len(COLOURS)])
    return im


def make_coco(out: str | Path, *, n_images: int = 10, classes: tuple[str, ...] = CLASSES[:4],
              boxes: tuple[int, int] = (1, 4), size: tuple[int, int] = (160, 120),
              val_fraction: float = 0.2, seed: int = 0, quality: int = 85) -> Path:
    """Write a COCO detection dataset to ``out`` (``images/<split>/``, ``annotations/``)."""
    rng = random.Random(seed)
    out = Path(out)
    w, h = size
    splits: dict[str, dict[str, Any]] = {}
    ann_id = 1
    for i in range(n_images):
        split = "val" if rng.random() < val_fraction else "train"
        doc = splits.setdefault(split, {"images": [], "annotations": [], "categories": [
            {"id": k + 1, "name": c, "supercategory": "object"} for k, c in enumerate(classes)]})
        file_name = f"{i:06d}.jpg"
        drawn = []
        for _ in range(rng.randint(*boxes)):
            cls = rng.randrange(len(classes))
            bw, bh = rng.randint(8, w // 2), rng.randint(8, h // 2)
            x, y = rng.randint(0, w - bw), rng.randint(0, h - bh)
            drawn.append((cls, (float(x), float(y), float(bw), float(bh))))
            doc["annotations"].append({"id": ann_id, "image_id": i + 1, "category_id": cls + 1,
                                       "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0,
                                       "segmentation": []})
            ann_id += 1
        doc["images"].append({"id": i + 1, "file_name": file_name, "width": w, "height": h})
        path = out / "images" / split / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        render(w, h, drawn, rng).save(path, quality=quality)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split, doc in splits.items():
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return out
